-- Version 4: response. Command transitions and expiry, the audit log, policies, and the
-- isolation state as the endpoint itself last confirmed it.

-- When an undelivered command stops being worth delivering (NULL: never).
ALTER TABLE commands ADD COLUMN expires_at INTEGER;
-- Who carries it out: `agent` (the endpoint's own sensor) or `webhook` (the external action
-- backend, for endpoints without a Vigil sensor).
ALTER TABLE commands ADD COLUMN backend TEXT NOT NULL DEFAULT 'agent';

-- Every state a command went through, with its time (queued, delivered, redelivered,
-- succeeded, failed, expired).
CREATE TABLE IF NOT EXISTS command_transitions (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    command_id TEXT NOT NULL,
    state      TEXT NOT NULL,
    time       INTEGER NOT NULL,
    detail     TEXT
);
CREATE INDEX IF NOT EXISTS command_transitions_command ON command_transitions (command_id, id);

-- Who did what to which target, and why: response actions, their outcomes, policy changes,
-- operator changes to endpoints. Append-only.
CREATE TABLE IF NOT EXISTS audit_log (
    seq    INTEGER PRIMARY KEY AUTOINCREMENT,
    time   INTEGER NOT NULL,
    actor  TEXT NOT NULL,
    action TEXT NOT NULL,
    target TEXT NOT NULL,
    detail TEXT NOT NULL            -- JSON object
);
CREATE INDEX IF NOT EXISTS audit_log_time ON audit_log (time);

-- Policies: rules with their responses, assigned to endpoints by id or tag.
CREATE TABLE IF NOT EXISTS policies (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    description TEXT NOT NULL,
    rules       TEXT NOT NULL,      -- JSON array of {rule_id, response} or {sigma, response}
    endpoints   TEXT NOT NULL,      -- JSON array of sensor ids
    tags        TEXT NOT NULL,      -- JSON array of tags; "*" means every endpoint
    enabled     INTEGER NOT NULL,
    revision    INTEGER NOT NULL,
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL
);

-- Isolation as the endpoint last confirmed it (`none`, `isolated`), and when.
ALTER TABLE endpoints ADD COLUMN isolation TEXT NOT NULL DEFAULT 'none';
ALTER TABLE endpoints ADD COLUMN isolation_at INTEGER;
