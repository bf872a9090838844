-- Version 2: enrollment identity, operator-set endpoint state, heartbeat history.

-- Every client certificate the fleet CA issued; the TLS layer checks the chain and expiry,
-- this table says which endpoint a certificate belongs to.
CREATE TABLE IF NOT EXISTS certificates (
    fingerprint TEXT PRIMARY KEY,          -- SHA-256 of the DER, hex
    sensor_id   TEXT NOT NULL,
    issued_at   INTEGER NOT NULL,
    not_after   INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS certificates_sensor ON certificates (sensor_id);

-- Tokens for the HTTP fleet API, stored as SHA-256 hashes.
CREATE TABLE IF NOT EXISTS sensor_tokens (
    token_hash TEXT PRIMARY KEY,
    sensor_id  TEXT NOT NULL,
    created_at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS sensor_tokens_sensor ON sensor_tokens (sensor_id);

-- What operators decided about an endpoint. Only operator actions write here: no heartbeat,
-- batch or session can change it.
CREATE TABLE IF NOT EXISTS endpoint_controls (
    sensor_id           TEXT PRIMARY KEY,
    revoked_at          INTEGER,
    isolation_requested INTEGER NOT NULL DEFAULT 0,
    tags                TEXT NOT NULL DEFAULT '[]',
    updated_at          INTEGER NOT NULL
);

-- What the agent last reported about itself (its latest heartbeat, JSON) and how it talks.
ALTER TABLE endpoints ADD COLUMN last_heartbeat TEXT;
ALTER TABLE endpoints ADD COLUMN transport TEXT NOT NULL DEFAULT 'grpc';

-- Heartbeat history, newest kept (pruned per endpoint).
CREATE TABLE IF NOT EXISTS heartbeats (
    id        INTEGER PRIMARY KEY AUTOINCREMENT,
    sensor_id TEXT NOT NULL,
    time      INTEGER NOT NULL,
    body      TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS heartbeats_sensor_time ON heartbeats (sensor_id, time);

-- Buffer counters moved into the heartbeat.
ALTER TABLE endpoints DROP COLUMN buffered;
ALTER TABLE endpoints DROP COLUMN dropped;
