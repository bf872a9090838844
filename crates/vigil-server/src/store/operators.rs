//! Stored types of operator access: users, API tokens and console sessions.
//!
//! Passwords are stored as argon2id PHC strings; API tokens and session ids are random and
//! stored only as SHA-256 hashes (they carry 256 bits of entropy, so a fast hash suffices and
//! lets every request find its token by an index lookup).

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use super::StoreError;

/// What an operator may do. Ordered: every role may do what the roles below it may.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OperatorRole {
    /// Reads everything but the audit log, users and other users' tokens.
    Viewer,
    /// A viewer that may also send response commands and set tags.
    Analyst,
    /// Everything: users, tokens, policies, revocation, the audit log.
    Admin,
}

impl OperatorRole {
    /// Every role, lowest first.
    pub const ALL: [Self; 3] = [Self::Viewer, Self::Analyst, Self::Admin];

    /// `viewer`, `analyst` or `admin`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Viewer => "viewer",
            Self::Analyst => "analyst",
            Self::Admin => "admin",
        }
    }
}

impl std::fmt::Display for OperatorRole {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for OperatorRole {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| format!("unknown role {s:?}: expected admin, analyst or viewer"))
    }
}

/// An operator account (never with its password hash).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct User {
    /// Login name.
    pub name: String,
    /// Role.
    pub role: OperatorRole,
    /// Created (ms).
    pub created_at: i64,
    /// Last changed (ms): role or password.
    pub updated_at: i64,
}

/// A user to create.
#[derive(Debug, Clone)]
pub struct NewUser {
    /// Login name.
    pub name: String,
    /// Role.
    pub role: OperatorRole,
    /// argon2id PHC string.
    pub password_hash: String,
}

/// An API token as listed (never with its secret or hash).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ApiToken {
    /// Token id.
    pub id: String,
    /// Unique name (`ci-export`); the audit log names the token `token:<name>`.
    pub name: String,
    /// Whose it is.
    pub user: String,
    /// The role it carries: the user's or a lower one. A user's later demotion lowers it too.
    pub role: OperatorRole,
    /// Created (ms).
    pub created_at: i64,
    /// Last used, to the minute (ms).
    pub last_used_at: Option<i64>,
}

/// A token to create.
#[derive(Debug, Clone)]
pub struct NewApiToken {
    /// Unique name.
    pub name: String,
    /// Whose it is.
    pub user: String,
    /// The role it carries (at most the user's).
    pub role: OperatorRole,
    /// SHA-256 of the secret, hex.
    pub token_hash: String,
}

/// A console session as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct OperatorSession {
    /// SHA-256 of the session id, hex.
    pub id_hash: String,
    /// Whose it is.
    pub user: User,
    /// The token state-changing requests must carry in `X-CSRF-Token`.
    pub csrf_token: String,
    /// Created (ms).
    pub created_at: i64,
    /// Absolute expiry (ms).
    pub expires_at: i64,
}

/// A session to create.
#[derive(Debug, Clone)]
pub struct NewOperatorSession {
    /// SHA-256 of the session id, hex.
    pub id_hash: String,
    /// Whose it is.
    pub user: String,
    /// The CSRF token.
    pub csrf_token: String,
    /// Absolute expiry (ms).
    pub expires_at: i64,
}

/// A page of users or tokens, by name.
#[derive(Debug, Clone, Default)]
pub struct NameQuery {
    /// Only names after this one (paging).
    pub after: Option<String>,
    /// Only this role.
    pub role: Option<OperatorRole>,
    /// Only tokens of this user (tokens only).
    pub user: Option<String>,
    /// At most this many.
    pub limit: u32,
}

/// Users, tokens and sessions. A part of [`super::Store`].
#[async_trait]
pub trait OperatorStore: Send + Sync {
    /// Creates the first user only when there is none; `false` when users exist already.
    async fn create_first_user(&self, user: &NewUser, now: i64) -> Result<bool, StoreError>;
    /// Creates a user and audits it (`Conflict` when the name is taken).
    async fn create_user(&self, user: &NewUser, actor: &str, now: i64) -> Result<User, StoreError>;
    /// A user with its password hash.
    async fn user_credentials(&self, name: &str) -> Result<Option<(User, String)>, StoreError>;
    /// Users by name.
    async fn users(&self, q: &NameQuery) -> Result<Vec<User>, StoreError>;
    /// Replaces a user's password hash, ends the user's sessions and audits it; `false` when
    /// there is no such user.
    async fn set_password(
        &self,
        name: &str,
        password_hash: &str,
        actor: &str,
        now: i64,
    ) -> Result<bool, StoreError>;
    /// Changes a user's role and audits it; `None` when there is no such user, `Conflict` when
    /// it would leave no admin. Sessions and tokens follow the new role at once (a token's
    /// role is capped at its user's).
    async fn set_role(
        &self,
        name: &str,
        role: OperatorRole,
        actor: &str,
        now: i64,
    ) -> Result<Option<User>, StoreError>;
    /// Removes a user with its tokens and sessions and audits it; `false` when there is no
    /// such user, `Conflict` when it is the last admin.
    async fn delete_user(&self, name: &str, actor: &str, now: i64) -> Result<bool, StoreError>;
    /// Creates an API token and audits it (`Conflict` when the name is taken).
    async fn create_api_token(
        &self,
        token: &NewApiToken,
        actor: &str,
        now: i64,
    ) -> Result<ApiToken, StoreError>;
    /// Tokens by name.
    async fn api_tokens(&self, q: &NameQuery) -> Result<Vec<ApiToken>, StoreError>;
    /// One token by id or name.
    async fn api_token(&self, id_or_name: &str) -> Result<Option<ApiToken>, StoreError>;
    /// Revokes (deletes) a token and audits it; `false` when there is no such token.
    async fn revoke_api_token(&self, id: &str, actor: &str, now: i64) -> Result<bool, StoreError>;
    /// The token with this hash and its user, noting its use; the token's role is already
    /// capped at the user's current role.
    async fn identify_api_token(
        &self,
        token_hash: &str,
        now: i64,
    ) -> Result<Option<(ApiToken, User)>, StoreError>;
    /// Stores a new console session.
    async fn create_session(&self, s: &NewOperatorSession, now: i64) -> Result<(), StoreError>;
    /// A live session by id hash, noting its use; `None` (and the session removed) when it
    /// passed its absolute expiry or was idle longer than `idle_ms`.
    async fn session(
        &self,
        id_hash: &str,
        idle_ms: i64,
        now: i64,
    ) -> Result<Option<OperatorSession>, StoreError>;
    /// Ends a session; `false` when there was none.
    async fn delete_session(&self, id_hash: &str) -> Result<bool, StoreError>;
}
