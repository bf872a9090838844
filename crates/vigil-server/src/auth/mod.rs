//! Operator authentication: password hashing, API tokens, console sessions, the first admin
//! and login rate limiting. The HTTP side (cookies, headers, CSRF) lives in `api::auth`.

use std::time::Duration;

use argon2::Argon2;
use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};

use crate::store::{NewUser, OperatorRole, Store, StoreError};

pub mod limiter;

pub use limiter::{Lockout, LoginLimiter};

/// Shortest password accepted.
pub const MIN_PASSWORD_LEN: usize = 12;
/// Prefix of operator API tokens, so they are recognisable in a secret scanner.
pub const TOKEN_PREFIX: &str = "vgl_";

/// How operator sessions behave.
#[derive(Debug, Clone)]
pub struct AuthConfig {
    /// Mark the session cookie `Secure` (set it when the API is served over HTTPS, e.g.
    /// behind a TLS-terminating proxy).
    pub cookie_secure: bool,
    /// A session unused this long ends.
    pub session_idle: Duration,
    /// A session ends this long after login, used or not.
    pub session_absolute: Duration,
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            cookie_secure: false,
            session_idle: Duration::from_secs(30 * 60),
            session_absolute: Duration::from_secs(12 * 3600),
        }
    }
}

/// Why a password was refused or could not be hashed.
#[derive(Debug, thiserror::Error)]
pub enum PasswordError {
    /// Too short.
    #[error("passwords must be at least {MIN_PASSWORD_LEN} characters")]
    TooShort,
    /// Longer than anyone types (and than argon2 should be asked to hash).
    #[error("passwords must be at most 1024 bytes")]
    TooLong,
    /// The hasher failed.
    #[error("hashing the password failed: {0}")]
    Hash(String),
}

/// An argon2id PHC string for `password` (argon2's default parameters: 19 MiB, 2 passes).
pub fn hash_password(password: &str) -> Result<String, PasswordError> {
    if password.chars().count() < MIN_PASSWORD_LEN {
        return Err(PasswordError::TooShort);
    }
    if password.len() > 1024 {
        return Err(PasswordError::TooLong);
    }
    Argon2::default()
        .hash_password(password.as_bytes())
        .map(|h| h.to_string())
        .map_err(|e| PasswordError::Hash(e.to_string()))
}

/// Whether `password` matches the PHC string `hash`. A malformed hash never matches.
pub fn verify_password(password: &str, hash: &str) -> bool {
    PasswordHash::new(hash).is_ok_and(|h| {
        Argon2::default()
            .verify_password(password.as_bytes(), &h)
            .is_ok()
    })
}

/// A hash to verify against when the user does not exist, so a login for an unknown name
/// takes as long as one for a known name.
pub fn dummy_hash() -> &'static str {
    static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DUMMY.get_or_init(|| hash_password("no-such-user-placeholder").unwrap_or_default())
}

/// A new random API token (`vgl_` + 64 hex digits).
pub fn new_token() -> String {
    format!("{TOKEN_PREFIX}{}", crate::pki::random_secret())
}

/// A password for a user nobody chose one for: 24 characters from an unambiguous alphabet
/// (~137 bits).
pub fn generate_password() -> String {
    const ALPHABET: &[u8] = b"abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    (0..24)
        .map(|_| char::from(ALPHABET[rand::random_range(0..ALPHABET.len())]))
        .collect()
}

/// Whether a user or token name is acceptable: 1 to 64 of `[A-Za-z0-9._@-]`.
pub fn valid_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '@'))
}

/// The first administrator, as created at start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FirstAdmin {
    /// Login name.
    pub name: String,
    /// The password, when it was generated (to be shown once); `None` when it was given.
    pub generated_password: Option<String>,
}

/// Why the first admin could not be created.
#[derive(Debug, thiserror::Error)]
pub enum FirstAdminError {
    /// The name is not acceptable.
    #[error("admin user name {0:?}: use 1 to 64 letters, digits, '.', '_', '-' or '@'")]
    Name(String),
    /// The password given is not acceptable.
    #[error("the admin password: {0}")]
    Password(#[from] PasswordError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Creates the first admin when no user exists: `name` with `password`, or a generated
/// password when none is given. `None` when users exist already (nothing changes).
pub async fn ensure_first_admin(
    store: &dyn Store,
    name: &str,
    password: Option<&str>,
) -> Result<Option<FirstAdmin>, FirstAdminError> {
    if !valid_name(name) {
        return Err(FirstAdminError::Name(name.to_owned()));
    }
    if !store
        .users(&crate::store::NameQuery {
            limit: 1,
            ..Default::default()
        })
        .await?
        .is_empty()
    {
        return Ok(None);
    }
    let generated = password.is_none().then(generate_password);
    let chosen = password.or(generated.as_deref()).unwrap_or_default();
    let password_hash = hash_password(chosen)?;
    let user = NewUser {
        name: name.to_owned(),
        role: OperatorRole::Admin,
        password_hash,
    };
    if !store.create_first_user(&user, vigil_ocsf::now_ms()).await? {
        return Ok(None);
    }
    Ok(Some(FirstAdmin {
        name: name.to_owned(),
        generated_password: generated,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_hash_as_argon2id_and_verify() {
        let h = hash_password("correct horse battery").unwrap();
        assert!(h.starts_with("$argon2id$"), "{h}");
        assert!(verify_password("correct horse battery", &h));
        assert!(!verify_password("correct horse batterY", &h));
        assert!(!verify_password("x", "not a phc string"));
        assert!(matches!(
            hash_password("short"),
            Err(PasswordError::TooShort)
        ));
    }

    #[test]
    fn generated_secrets_are_long_and_distinct() {
        let (a, b) = (generate_password(), generate_password());
        assert_eq!(a.len(), 24);
        assert_ne!(a, b);
        assert!(new_token().starts_with(TOKEN_PREFIX));
        assert!(valid_name("ops.bot-1@corp"));
        assert!(!valid_name("has space"));
        assert!(!valid_name(""));
    }
}
