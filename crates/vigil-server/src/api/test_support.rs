//! Operators for the API's unit tests: each test authenticates explicitly, as a client would.

use crate::api::ApiState;
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
