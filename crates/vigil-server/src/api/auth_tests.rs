//! Operator authentication and roles, through the router as a client calls it.

use axum::http::{StatusCode, header};
use serde_json::json;

use super::routes::{Access, routes};
use super::test_support::{Creds, bearer, guard_refused, login, send, state, token_for, user};
use crate::store::OperatorRole;

#[tokio::test]
async fn every_role_against_every_route() {
    let (_dir, st) = state().await;
    let mut tokens = Vec::new();
    for role in OperatorRole::ALL {
        tokens.push((Some(role), token_for(&st, role.as_str(), role).await));
    }
    let mut checked = 0;
    for r in routes() {
        let Some(required) = r.access.role() else {
            continue;
        };
        let path = r
            .path
            .replace("{id}", "nope")
            .replace("{command}", "nope")
            .replace("{name}", "nope");
        let body = (r.method != "GET" && r.method != "DELETE").then(|| json!({}));
        let what = format!("{} {}", r.method, r.path);
        let anon = send(
            &st,
            r.method.as_str(),
            &path,
            &Creds::default(),
            body.clone(),
        )
        .await;
        assert_eq!(anon.status, StatusCode::UNAUTHORIZED, "anonymous {what}");
        assert_eq!(anon.body["error"]["code"], "unauthorized", "{what}");
        for (role, token) in &tokens {
            let role = role.unwrap();
            let a = send(&st, r.method.as_str(), &path, &bearer(token), body.clone()).await;
            if role >= required {
                assert!(
                    a.status != StatusCode::UNAUTHORIZED && !guard_refused(&a),
                    "{role} may call {what}: {} {}",
                    a.status,
                    a.body
                );
            } else {
                assert!(
                    guard_refused(&a),
                    "{role} may not call {what}: {}",
                    a.status
                );
                assert_eq!(a.body["error"]["code"], "forbidden");
            }
            checked += 1;
        }
    }
    assert!(checked >= 90, "{checked}");
    // Public and sensor routes take no operator credentials.
    let health = send(&st, "GET", "/api/v1/health", &Creds::default(), None).await;
    assert_eq!(health.status, StatusCode::OK);
    let doc = send(&st, "GET", "/api/v1/openapi.json", &Creds::default(), None).await;
    assert_eq!(doc.body["openapi"], "3.1.0");
    let admin = &tokens[2].1;
    let edr = send(&st, "GET", "/api/v1/edr/nope/risk", &bearer(admin), None).await;
    assert_eq!(
        edr.status,
        StatusCode::UNAUTHORIZED,
        "an operator token is no sensor token"
    );
    assert!(routes().iter().any(|r| r.access == Access::Sensor));
}

#[tokio::test]
async fn a_viewer_cannot_isolate_and_an_analyst_cannot_manage_users() {
    let (_dir, st) = state().await;
    let viewer = token_for(&st, "vera", OperatorRole::Viewer).await;
    let analyst = token_for(&st, "ann", OperatorRole::Analyst).await;
    let isolate = json!({"action": "isolate"});
    let a = send(
        &st,
        "POST",
        "/api/v1/endpoints/x/commands",
        &bearer(&viewer),
        Some(isolate),
    )
    .await;
    assert_eq!(a.status, StatusCode::FORBIDDEN);
    assert_eq!(a.body["error"]["code"], "forbidden");
    let new_user = json!({"name": "eve", "role": "admin", "password": "a-long-password-1"});
    let a = send(
        &st,
        "POST",
        "/api/v1/users",
        &bearer(&analyst),
        Some(new_user),
    )
    .await;
    assert_eq!(a.status, StatusCode::FORBIDDEN);
    let a = send(&st, "GET", "/api/v1/audit", &bearer(&analyst), None).await;
    assert_eq!(
        a.status,
        StatusCode::FORBIDDEN,
        "the audit log is for admins"
    );
}

#[tokio::test]
async fn login_lockout_and_logout() {
    let (_dir, st) = state().await;
    user(&st, "alice", OperatorRole::Analyst, "alice-password-1").await;
    let c = login(&st, "alice", "alice-password-1").await;
    let me = send(&st, "GET", "/api/v1/auth/me", &c, None).await;
    assert_eq!(me.status, StatusCode::OK);
    assert_eq!(
        (me.body["user"].as_str(), me.body["via"].as_str()),
        (Some("alice"), Some("session"))
    );
    assert_eq!(me.body["csrf_token"].as_str(), c.csrf.as_deref());

    // Wrong passwords: 401 until the fifth, then 429 with Retry-After, even for the right one.
    let wrong = json!({"username": "alice", "password": "not-her-password"});
    for i in 0..crate::auth::limiter::USER_THRESHOLD {
        let a = send(
            &st,
            "POST",
            "/api/v1/auth/login",
            &Creds::default(),
            Some(wrong.clone()),
        )
        .await;
        assert_eq!(a.status, StatusCode::UNAUTHORIZED, "failure {i}");
        assert_eq!(a.body["error"]["code"], "unauthorized");
    }
    let right = json!({"username": "alice", "password": "alice-password-1"});
    let a = send(
        &st,
        "POST",
        "/api/v1/auth/login",
        &Creds::default(),
        Some(right),
    )
    .await;
    assert_eq!(a.status, StatusCode::TOO_MANY_REQUESTS, "{}", a.body);
    assert_eq!(a.body["error"]["code"], "rate_limited");
    let retry: u64 = a.headers[header::RETRY_AFTER]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=15).contains(&retry), "{retry}");
    // An unknown user fails the same way (and is limited on its own).
    let ghost = json!({"username": "ghost", "password": "whatever-it-is"});
    let a = send(
        &st,
        "POST",
        "/api/v1/auth/login",
        &Creds::default(),
        Some(ghost),
    )
    .await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED);

    // The session from before the lockout still works; logout ends it.
    let out = send(&st, "POST", "/api/v1/auth/logout", &c, None).await;
    assert_eq!(out.status, StatusCode::NO_CONTENT);
    assert!(
        out.headers[header::SET_COOKIE]
            .to_str()
            .unwrap()
            .contains("Max-Age=0")
    );
    let me = send(&st, "GET", "/api/v1/auth/me", &c, None).await;
    assert_eq!(me.status, StatusCode::UNAUTHORIZED);

    let audit = st
        .store
        .audit_log(&crate::store::AuditQuery {
            target: Some("user:alice".into()),
            limit: 100,
            ..Default::default()
        })
        .await
        .unwrap();
    let actions: Vec<_> = audit.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(actions.first(), Some(&"auth.logout"), "{actions:?}");
    assert_eq!(
        actions
            .iter()
            .filter(|a| **a == "auth.login_failed")
            .count(),
        5
    );
    assert!(actions.contains(&"auth.login"));
    let login = audit.iter().find(|e| e.action == "auth.login").unwrap();
    assert_eq!(login.actor, "user:alice");
    assert!(login.detail["source"].is_string());
}

#[tokio::test]
async fn cookie_writes_need_the_csrf_token_and_bearer_writes_do_not() {
    let (_dir, st) = state().await;
    user(&st, "boss", OperatorRole::Admin, "boss-password-1").await;
    let c = login(&st, "boss", "boss-password-1").await;
    let body = json!({"hostname": "fw-1"});
    let no_csrf = Creds {
        csrf: None,
        ..c.clone()
    };
    let a = send(
        &st,
        "POST",
        "/api/v1/endpoints",
        &no_csrf,
        Some(body.clone()),
    )
    .await;
    assert_eq!(a.status, StatusCode::FORBIDDEN);
    assert_eq!(a.body["error"]["code"], "csrf_failed");
    let wrong = Creds {
        csrf: Some("0".repeat(64)),
        ..c.clone()
    };
    let a = send(&st, "POST", "/api/v1/endpoints", &wrong, Some(body.clone())).await;
    assert_eq!(a.body["error"]["code"], "csrf_failed");
    let a = send(&st, "POST", "/api/v1/endpoints", &c, Some(body.clone())).await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.body);
    // Reads need none.
    let a = send(&st, "GET", "/api/v1/endpoints", &no_csrf, None).await;
    assert_eq!(a.status, StatusCode::OK);
    // A token is no ambient credential: no CSRF token needed.
    let t = token_for(&st, "robot", OperatorRole::Admin).await;
    let a = send(&st, "POST", "/api/v1/endpoints", &bearer(&t), Some(body)).await;
    assert_eq!(a.status, StatusCode::CREATED);
}

#[tokio::test]
async fn actions_record_the_authenticated_operator() {
    let (_dir, st) = state().await;
    let admin = token_for(&st, "root2", OperatorRole::Admin).await;
    let reg = send(
        &st,
        "POST",
        "/api/v1/endpoints",
        &bearer(&admin),
        Some(json!({"hostname": "h"})),
    )
    .await;
    let sensor = reg.body["sensor_id"].as_str().unwrap().to_owned();
    let token_name = st
        .store
        .api_tokens(&crate::store::NameQuery {
            user: Some("root2".into()),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap()[0]
        .name
        .clone();
    user(&st, "ann", OperatorRole::Analyst, "ann-password-long").await;
    let c = login(&st, "ann", "ann-password-long").await;
    let tags = send(
        &st,
        "PUT",
        &format!("/api/v1/endpoints/{sensor}/tags"),
        &c,
        Some(json!({"tags": ["prod"]})),
    )
    .await;
    assert_eq!(tags.status, StatusCode::OK, "{}", tags.body);
    send(
        &st,
        "POST",
        &format!("/api/v1/endpoints/{sensor}/revoke"),
        &bearer(&admin),
        None,
    )
    .await;
    let audit = send(
        &st,
        "GET",
        &format!("/api/v1/audit?target=endpoint:{sensor}"),
        &bearer(&admin),
        None,
    )
    .await;
    let by: Vec<(String, String)> = audit.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["action"].as_str().unwrap().into(),
                e["actor"].as_str().unwrap().into(),
            )
        })
        .collect();
    let t = format!("token:{token_name}");
    assert_eq!(
        by,
        [
            ("endpoint.revoked".into(), t.clone()),
            ("endpoint.tags_set".into(), "user:ann".to_owned()),
            ("endpoint.registered".into(), t),
        ],
    );
    // Users and tokens changes are audited too.
    let a = send(
        &st,
        "POST",
        "/api/v1/users",
        &bearer(&admin),
        Some(json!({"name": "newbie", "role": "viewer"})),
    )
    .await;
    assert_eq!(a.status, StatusCode::CREATED);
    assert!(
        a.body["password"].as_str().unwrap().len() >= 12,
        "generated once"
    );
    let log = send(
        &st,
        "GET",
        "/api/v1/audit?target=user:newbie",
        &bearer(&admin),
        None,
    )
    .await;
    assert_eq!(log.body["items"][0]["action"], "user.created");
}

#[tokio::test]
async fn lists_page_with_a_next_cursor() {
    let (_dir, st) = state().await;
    let admin = token_for(&st, "root3", OperatorRole::Admin).await;
    for i in 0..5 {
        let a = send(
            &st,
            "POST",
            "/api/v1/users",
            &bearer(&admin),
            Some(
                json!({"name": format!("u{i}"), "role": "viewer", "password": "a-long-password-1"}),
            ),
        )
        .await;
        assert_eq!(a.status, StatusCode::CREATED);
        send(
            &st,
            "POST",
            "/api/v1/endpoints",
            &bearer(&admin),
            Some(json!({"hostname": format!("web-{i}")})),
        )
        .await;
    }
    let mut seen = Vec::new();
    let mut uri = "/api/v1/users?limit=2".to_owned();
    loop {
        let a = send(&st, "GET", &uri, &bearer(&admin), None).await;
        let items = a.body["items"].as_array().unwrap();
        assert!(items.len() <= 2);
        seen.extend(items.iter().map(|u| u["name"].as_str().unwrap().to_owned()));
        match a.body["next"].as_str() {
            Some(n) => uri = format!("/api/v1/users?limit=2&cursor={n}"),
            None => break,
        }
    }
    assert_eq!(seen, ["root3", "u0", "u1", "u2", "u3", "u4"]);
    let eps = send(
        &st,
        "GET",
        "/api/v1/endpoints?limit=3&hostname=WEB",
        &bearer(&admin),
        None,
    )
    .await;
    assert_eq!(eps.body["items"].as_array().unwrap().len(), 3);
    let next = eps.body["next"].as_str().unwrap().to_owned();
    let rest = send(
        &st,
        "GET",
        &format!("/api/v1/endpoints?limit=3&hostname=web&cursor={next}"),
        &bearer(&admin),
        None,
    )
    .await;
    assert_eq!(rest.body["items"].as_array().unwrap().len(), 2);
    assert!(rest.body.get("next").is_none());
    let bad = send(
        &st,
        "GET",
        "/api/v1/endpoints?status=sleepy",
        &bearer(&admin),
        None,
    )
    .await;
    assert_eq!(bad.body["error"]["code"], "bad_request");
}

#[tokio::test]
async fn first_admin_is_created_once() {
    let (_dir, st) = state().await;
    let made = crate::auth::ensure_first_admin(&*st.store, "admin", None)
        .await
        .unwrap()
        .unwrap();
    let pw = made.generated_password.unwrap();
    assert_eq!(pw.len(), 24);
    login(&st, "admin", &pw).await;
    assert_eq!(
        crate::auth::ensure_first_admin(&*st.store, "admin", Some("another-password"))
            .await
            .unwrap(),
        None,
        "never again once an operator exists"
    );
    let (_dir2, st2) = state().await;
    let made = crate::auth::ensure_first_admin(&*st2.store, "chief", Some("from-the-environment"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(made.generated_password, None);
    login(&st2, "chief", "from-the-environment").await;
}
