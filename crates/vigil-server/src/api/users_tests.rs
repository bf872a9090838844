//! Operators managing operators: roles, and API tokens, through the router as a client calls
//! them.

use axum::http::StatusCode;
use serde_json::json;

use super::test_support::{bearer, guard_refused, login, send, state, token_for, user};
use crate::store::OperatorRole;

#[tokio::test]
async fn an_admin_changes_roles_and_the_change_applies_at_once() {
    let (_dir, st) = state().await;
    let admin = token_for(&st, "root", OperatorRole::Admin).await;
    user(&st, "ann", OperatorRole::Analyst, "ann-password-long").await;
    let ann = login(&st, "ann", "ann-password-long").await;
    let tags = json!({"tags": ["web"]});
    let patch = |role: &str| Some(json!({ "role": role }));

    let a = send(
        &st,
        "PATCH",
        "/api/v1/users/ann",
        &bearer(&admin),
        patch("viewer"),
    )
    .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    assert_eq!(a.body["role"], "viewer");
    // Her open session is a viewer's now.
    let a = send(&st, "PUT", "/api/v1/endpoints/x/tags", &ann, Some(tags)).await;
    assert!(guard_refused(&a), "{}", a.body);
    // An admin now: she manages users with the same session.
    let a = send(
        &st,
        "PATCH",
        "/api/v1/users/ann",
        &bearer(&admin),
        patch("admin"),
    )
    .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    let a = send(&st, "GET", "/api/v1/users", &ann, None).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);

    // Only admins change roles; bad input and unknown users get the error shape.
    let viewer = token_for(&st, "vera", OperatorRole::Viewer).await;
    let a = send(
        &st,
        "PATCH",
        "/api/v1/users/ann",
        &bearer(&viewer),
        patch("viewer"),
    )
    .await;
    assert!(guard_refused(&a));
    let a = send(
        &st,
        "PATCH",
        "/api/v1/users/ann",
        &bearer(&admin),
        patch("root"),
    )
    .await;
    assert_eq!(a.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", a.body);
    assert_eq!(a.body["error"]["code"], "bad_request");
    let a = send(
        &st,
        "PATCH",
        "/api/v1/users/nobody",
        &bearer(&admin),
        patch("viewer"),
    )
    .await;
    assert_eq!(a.status, StatusCode::NOT_FOUND);

    // Two admins: one may step down, the last may not.
    let a = send(
        &st,
        "PATCH",
        "/api/v1/users/root",
        &bearer(&admin),
        patch("analyst"),
    )
    .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    let a = send(&st, "PATCH", "/api/v1/users/ann", &ann, patch("viewer")).await;
    assert_eq!(a.status, StatusCode::CONFLICT, "{}", a.body);
    assert!(
        a.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("last admin"),
        "{}",
        a.body
    );
    let audit = st
        .store
        .audit_log(&crate::store::AuditQuery {
            limit: 100,
            ..Default::default()
        })
        .await
        .unwrap();
    let changes = audit
        .iter()
        .filter(|e| e.action == "user.role_changed")
        .count();
    assert_eq!(changes, 3, "every change is audited");
}

#[tokio::test]
async fn tokens_are_created_used_and_revoked() {
    let (_dir, st) = state().await;
    user(&st, "ann", OperatorRole::Analyst, "ann-password-long").await;
    let c = login(&st, "ann", "ann-password-long").await;
    // Never above the user's role.
    let a = send(
        &st,
        "POST",
        "/api/v1/tokens",
        &c,
        Some(json!({"name": "x", "role": "admin"})),
    )
    .await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST, "{}", a.body);
    let a = send(
        &st,
        "POST",
        "/api/v1/tokens",
        &c,
        Some(json!({"name": "ann-ci", "role": "viewer"})),
    )
    .await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.body);
    let secret = a.body["token"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("vgl_"));
    let me = send(&st, "GET", "/api/v1/auth/me", &bearer(&secret), None).await;
    assert_eq!(
        (me.body["role"].as_str(), me.body["token"].as_str()),
        (Some("viewer"), Some("ann-ci"))
    );
    // The viewer token cannot do what its analyst user can.
    let a = send(
        &st,
        "PUT",
        "/api/v1/endpoints/x/tags",
        &bearer(&secret),
        Some(json!({"tags": []})),
    )
    .await;
    assert!(guard_refused(&a));
    // Nor mint more tokens.
    let a = send(
        &st,
        "POST",
        "/api/v1/tokens",
        &bearer(&secret),
        Some(json!({"name": "more"})),
    )
    .await;
    assert_eq!(a.status, StatusCode::FORBIDDEN);
    // Listed without its secret; others' tokens stay hidden.
    token_for(&st, "other", OperatorRole::Viewer).await;
    let list = send(&st, "GET", "/api/v1/tokens", &c, None).await;
    let items = list.body["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{}", list.body);
    assert!(items[0].get("token").is_none() && items[0].get("token_hash").is_none());
    let a = send(&st, "DELETE", "/api/v1/tokens/ann-ci", &c, None).await;
    assert_eq!(a.status, StatusCode::NO_CONTENT);
    let me = send(&st, "GET", "/api/v1/auth/me", &bearer(&secret), None).await;
    assert_eq!(me.status, StatusCode::UNAUTHORIZED);
    assert_eq!(me.body["error"]["code"], "unauthorized");
}
