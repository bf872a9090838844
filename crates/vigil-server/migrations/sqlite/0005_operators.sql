-- Version 5: operators. Users with argon2id password hashes, API tokens for automation and
-- console sessions. Tokens and session ids are random and stored only as SHA-256 hashes.

CREATE TABLE IF NOT EXISTS users (
    name          TEXT PRIMARY KEY,
    role          TEXT NOT NULL,      -- admin, analyst, viewer
    password_hash TEXT NOT NULL,      -- PHC string ($argon2id$…)
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL
);

CREATE TABLE IF NOT EXISTS api_tokens (
    id           TEXT PRIMARY KEY,
    name         TEXT NOT NULL UNIQUE,
    user_name    TEXT NOT NULL REFERENCES users (name) ON DELETE CASCADE,
    role         TEXT NOT NULL,       -- the user's role or a lower one
    token_hash   TEXT NOT NULL UNIQUE,
    created_at   INTEGER NOT NULL,
    last_used_at INTEGER
);

CREATE TABLE IF NOT EXISTS operator_sessions (
    id_hash    TEXT PRIMARY KEY,
    user_name  TEXT NOT NULL REFERENCES users (name) ON DELETE CASCADE,
    csrf_token TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    last_seen  INTEGER NOT NULL,
    expires_at INTEGER NOT NULL       -- absolute expiry
);
CREATE INDEX IF NOT EXISTS operator_sessions_user ON operator_sessions (user_name);
