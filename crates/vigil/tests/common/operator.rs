//! How the tests authenticate to the operator API, as an operator would: every server a test
//! starts gets its first admin `admin` with [`ADMIN_PASSWORD`] (`VIGIL_ADMIN_PASSWORD` for a
//! `vigil up` child, `ServerConfig::first_admin` in process); [`admin_token`] logs in with it
//! and creates an API token over the API, once per server address.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

use serde_json::{Value, json};

/// The first admin's password in every test server.
pub const ADMIN_PASSWORD: &str = "vigil-test-admin-password";

/// An admin API token for the server whose API is at `api` (`http://host:port`, or any URL
/// under it). Blocking; safe to call from async code too.
pub fn admin_token(api: &str) -> String {
    let base = match api.find("/api/") {
        Some(i) => api[..i].to_owned(),
        None => api.trim_end_matches('/').to_owned(),
    };
    static TOKENS: OnceLock<Mutex<HashMap<String, String>>> = OnceLock::new();
    let tokens = TOKENS.get_or_init(Mutex::default);
    if let Some(t) = tokens.lock().unwrap().get(&base) {
        return t.clone();
    }
    let b = base.clone();
    let token = std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime")
            .block_on(login_and_mint(&b))
    })
    .join()
    .expect("admin token thread");
    tokens.lock().unwrap().insert(base, token.clone());
    token
}

async fn login_and_mint(base: &str) -> String {
    vigil_server::pki::install_crypto_provider();
    let client = reqwest::Client::new();
    let res = client
        .post(format!("{base}/api/v1/auth/login"))
        .json(&json!({ "username": "admin", "password": ADMIN_PASSWORD }))
        .send()
        .await
        .expect("POST login");
    assert!(
        res.status().is_success(),
        "login as admin: {}",
        res.status()
    );
    let cookie = res
        .headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .expect("session cookie")
        .to_owned();
    let login: Value = res.json().await.expect("login JSON");
    let csrf = login["csrf_token"].as_str().expect("csrf token").to_owned();
    let name = format!("test-{}", uuid::Uuid::new_v4().simple());
    let res = client
        .post(format!("{base}/api/v1/tokens"))
        .header("cookie", cookie)
        .header("x-csrf-token", csrf)
        .json(&json!({ "name": name }))
        .send()
        .await
        .expect("POST tokens");
    assert_eq!(res.status().as_u16(), 201, "create token");
    let t: Value = res.json().await.expect("token JSON");
    t["token"].as_str().expect("token").to_owned()
}
