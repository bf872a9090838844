//! Operators for the API's unit tests: each test authenticates explicitly, as a client would.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use serde_json::{Value, json};
use tower::ServiceExt;

use crate::api::{ApiState, app};
use crate::store::{NewApiToken, NewUser, OperatorRole};

/// Creates user `name` with `role` and `password` (ignoring one that exists already).
pub(crate) async fn user(st: &ApiState, name: &str, role: OperatorRole, password: &str) {
    let user = NewUser {
        name: name.into(),
        role,
        password_hash: crate::auth::hash_password(password).unwrap(),
    };
    let _ = st.store.create_user(&user, "test", 0).await;
}

/// Creates user `name` with `role` (password `<name>-password-long`) and a new API token for
/// it; returns the token.
pub(crate) async fn token_for(st: &ApiState, name: &str, role: OperatorRole) -> String {
    user(st, name, role, &format!("{name}-password-long")).await;
    let secret = crate::auth::new_token();
    let token = NewApiToken {
        name: format!("{name}-{}", &secret[4..12]),
        user: name.into(),
        role,
        token_hash: crate::pki::hash_secret(&secret),
    };
    st.store.create_api_token(&token, "test", 0).await.unwrap();
    secret
}

/// The API token of the test admin `root`, created on first use (the same token every call,
/// so tests may ask for it wherever they call an operator route).
pub(crate) async fn admin(st: &ApiState) -> String {
    const SECRET: &str = "vgl_test-admin-token";
    let user = NewUser {
        name: "root".into(),
        role: OperatorRole::Admin,
        // Not a valid PHC string: this operator never logs in with a password.
        password_hash: "!".into(),
    };
    let _ = st.store.create_user(&user, "test", 0).await;
    let token = NewApiToken {
        name: "root-test".into(),
        user: "root".into(),
        role: OperatorRole::Admin,
        token_hash: crate::pki::hash_secret(SECRET),
    };
    let _ = st.store.create_api_token(&token, "test", 0).await;
    SECRET.to_owned()
}

/// A fresh store and the API's state over it.
pub(crate) async fn state() -> (tempfile::TempDir, ApiState) {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn crate::store::Store> =
        crate::store::contract_tests::test_store(dir.path()).await;
    (dir, ApiState::for_tests(store, &Default::default()))
}

/// What a call sends besides method and path.
#[derive(Default, Clone)]
pub(crate) struct Creds {
    pub(crate) bearer: Option<String>,
    pub(crate) cookie: Option<String>,
    pub(crate) csrf: Option<String>,
}

pub(crate) struct Answer {
    pub(crate) status: StatusCode,
    pub(crate) body: Value,
    pub(crate) headers: axum::http::HeaderMap,
}

pub(crate) async fn send(
    st: &ApiState,
    method: &str,
    uri: &str,
    c: &Creds,
    body: Option<Value>,
) -> Answer {
    let mut req = Request::builder().method(method).uri(uri);
    if let Some(t) = &c.bearer {
        req = req.header(header::AUTHORIZATION, format!("Bearer {t}"));
    }
    if let Some(k) = &c.cookie {
        req = req.header(header::COOKIE, k);
    }
    if let Some(x) = &c.csrf {
        req = req.header("x-csrf-token", x);
    }
    let req = match body {
        Some(b) => req
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(b.to_string())),
        None => req.body(Body::empty()),
    }
    .unwrap();
    let res = app(st.clone()).oneshot(req).await.unwrap();
    let status = res.status();
    let headers = res.headers().clone();
    let bytes = axum::body::to_bytes(res.into_body(), 1 << 20)
        .await
        .unwrap();
    Answer {
        status,
        body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        headers,
    }
}

pub(crate) fn bearer(t: &str) -> Creds {
    Creds {
        bearer: Some(t.to_owned()),
        ..Default::default()
    }
}

/// Logs in; the session cookie and CSRF token.
pub(crate) async fn login(st: &ApiState, name: &str, password: &str) -> Creds {
    let a = send(
        st,
        "POST",
        "/api/v1/auth/login",
        &Creds::default(),
        Some(json!({"username": name, "password": password})),
    )
    .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    let set = a.headers[header::SET_COOKIE].to_str().unwrap().to_owned();
    assert!(
        set.contains("HttpOnly") && set.contains("SameSite=Strict"),
        "{set}"
    );
    Creds {
        cookie: Some(set.split(';').next().unwrap().to_owned()),
        csrf: a.body["csrf_token"].as_str().map(str::to_owned),
        bearer: None,
    }
}

pub(crate) fn guard_refused(a: &Answer) -> bool {
    a.status == StatusCode::FORBIDDEN
        && a.body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("this needs the"))
}
