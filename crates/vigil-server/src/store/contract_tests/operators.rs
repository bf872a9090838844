//! The contract on operators: users, API tokens, console sessions.

use super::{Backend, audit_actions};
use crate::store::{
    NameQuery, NewApiToken, NewOperatorSession, NewUser, OperatorRole, OperatorStore, StoreError,
    User,
};

fn user(name: &str, role: OperatorRole) -> NewUser {
    NewUser {
        name: name.into(),
        role,
        password_hash: format!("$argon2id$fake${name}"),
    }
}

pub(crate) async fn operators_users_tokens_and_sessions<B: Backend>(b: &B) {
    let store = b.open().await;
    assert!(
        store
            .create_first_user(&user("root", OperatorRole::Admin), 1)
            .await
            .unwrap()
    );
    assert!(
        !store
            .create_first_user(&user("other", OperatorRole::Admin), 2)
            .await
            .unwrap()
    );
    store
        .create_user(&user("bob", OperatorRole::Viewer), "user:root", 3)
        .await
        .unwrap();
    store
        .create_user(&user("Alice", OperatorRole::Analyst), "user:root", 4)
        .await
        .unwrap();
    let dup = store
        .create_user(&user("bob", OperatorRole::Admin), "user:root", 5)
        .await
        .unwrap_err();
    assert!(matches!(dup, StoreError::Conflict(_)), "{dup}");
    let names = |users: Vec<User>| users.into_iter().map(|u| u.name).collect::<Vec<_>>();
    let all = NameQuery {
        limit: 10,
        ..Default::default()
    };
    assert_eq!(
        names(store.users(&all).await.unwrap()),
        ["Alice", "bob", "root"]
    );
    let after = NameQuery {
        after: Some("Alice".into()),
        limit: 1,
        ..Default::default()
    };
    assert_eq!(names(store.users(&after).await.unwrap()), ["bob"]);
    let admins = NameQuery {
        role: Some(OperatorRole::Admin),
        limit: 10,
        ..Default::default()
    };
    assert_eq!(names(store.users(&admins).await.unwrap()), ["root"]);
    let (bob, hash) = store.user_credentials("bob").await.unwrap().unwrap();
    assert_eq!(
        (bob.role, hash.as_str()),
        (OperatorRole::Viewer, "$argon2id$fake$bob")
    );
    assert!(store.user_credentials("nobody").await.unwrap().is_none());

    // Tokens: unique names, capped at the user's role, found by hash.
    let token = NewApiToken {
        name: "ci".into(),
        user: "Alice".into(),
        role: OperatorRole::Analyst,
        token_hash: "th1".into(),
    };
    let t = store
        .create_api_token(&token, "user:root", 10)
        .await
        .unwrap();
    let dup = store
        .create_api_token(&token, "user:root", 11)
        .await
        .unwrap_err();
    assert!(matches!(dup, StoreError::Conflict(_)), "{dup}");
    let orphan = NewApiToken {
        name: "orphan".into(),
        user: "nobody".into(),
        role: OperatorRole::Viewer,
        token_hash: "th2".into(),
    };
    let err = store
        .create_api_token(&orphan, "user:root", 11)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "{err}");
    assert_eq!(store.api_token("ci").await.unwrap().unwrap().id, t.id);
    assert_eq!(store.api_token(&t.id).await.unwrap().unwrap().name, "ci");
    let (found, owner) = store
        .identify_api_token("th1", 100_000)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (found.id.as_str(), owner.name.as_str()),
        (t.id.as_str(), "Alice")
    );
    assert_eq!(
        store.api_token("ci").await.unwrap().unwrap().last_used_at,
        Some(100_000)
    );
    store
        .set_role("Alice", OperatorRole::Viewer, "user:root", 12)
        .await
        .unwrap()
        .unwrap();
    let (capped, _) = store
        .identify_api_token("th1", 100_001)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(capped.role, OperatorRole::Viewer);
    let mine = NameQuery {
        user: Some("Alice".into()),
        limit: 10,
        ..Default::default()
    };
    assert_eq!(store.api_tokens(&mine).await.unwrap().len(), 1);
    assert!(
        store
            .revoke_api_token(&t.id, "user:root", 13)
            .await
            .unwrap()
    );
    assert!(
        !store
            .revoke_api_token(&t.id, "user:root", 13)
            .await
            .unwrap()
    );
    assert!(store.identify_api_token("th1", 14).await.unwrap().is_none());

    // Sessions: idle and absolute expiry, ended by a password change.
    let session = |id: &str, expires_at: i64| NewOperatorSession {
        id_hash: id.into(),
        user: "bob".into(),
        csrf_token: format!("csrf-{id}"),
        expires_at,
    };
    store
        .create_session(&session("s1", 10_000), 1_000)
        .await
        .unwrap();
    store
        .create_session(&session("s2", 10_000), 1_000)
        .await
        .unwrap();
    store
        .create_session(&session("s3", 2_000), 1_000)
        .await
        .unwrap();
    let live = store.session("s1", 5_000, 1_500).await.unwrap().unwrap();
    assert_eq!(
        (live.user.name.as_str(), live.csrf_token.as_str()),
        ("bob", "csrf-s1")
    );
    assert!(
        store.session("s3", 5_000, 2_000).await.unwrap().is_none(),
        "expired"
    );
    assert!(
        store.session("s2", 100, 1_500).await.unwrap().is_none(),
        "idle"
    );
    assert!(
        !store.delete_session("s2").await.unwrap(),
        "an idle session is removed"
    );
    assert!(
        store
            .set_password("bob", "$argon2id$new", "user:bob", 1_600)
            .await
            .unwrap()
    );
    assert!(
        !store
            .set_password("nobody", "x", "user:bob", 1_600)
            .await
            .unwrap()
    );
    assert!(store.session("s1", 5_000, 1_700).await.unwrap().is_none());
    store
        .create_session(&session("s4", 10_000), 1_800)
        .await
        .unwrap();
    assert!(store.delete_session("s4").await.unwrap());

    assert!(store.delete_user("bob", "user:root", 1_900).await.unwrap());
    assert!(!store.delete_user("bob", "user:root", 1_900).await.unwrap());
    let actions = audit_actions(&store, Some("user:bob".into())).await;
    assert_eq!(
        actions,
        ["user.removed", "user.password_changed", "user.created"]
    );
}

pub(crate) async fn the_last_admin_stays<B: Backend>(b: &B) {
    let store = b.open().await;
    store
        .create_first_user(&user("root", OperatorRole::Admin), 1)
        .await
        .unwrap();
    let err = store
        .set_role("root", OperatorRole::Viewer, "user:root", 2)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "{err}");
    let err = store.delete_user("root", "user:root", 2).await.unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "{err}");
    store
        .create_user(&user("second", OperatorRole::Admin), "user:root", 3)
        .await
        .unwrap();
    let demoted = store
        .set_role("root", OperatorRole::Analyst, "user:second", 4)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (demoted.role, demoted.updated_at),
        (OperatorRole::Analyst, 4)
    );
    assert!(
        store
            .set_role("nobody", OperatorRole::Admin, "user:second", 5)
            .await
            .unwrap()
            .is_none()
    );
    let err = store
        .delete_user("second", "user:second", 6)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "{err}");
}
