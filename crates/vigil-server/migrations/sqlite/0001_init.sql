-- Vigil server store, embedded (SQLite) flavour. Version 1.

CREATE TABLE IF NOT EXISTS endpoints (
    sensor_id      TEXT PRIMARY KEY,
    hostname       TEXT NOT NULL,
    os_name        TEXT NOT NULL,
    kernel_release TEXT NOT NULL,
    agent_version  TEXT NOT NULL,
    capabilities   TEXT NOT NULL,          -- JSON array of {name, source, live, detail}
    first_seen     INTEGER NOT NULL,       -- ms since epoch
    last_seen      INTEGER NOT NULL,
    buffered       INTEGER NOT NULL DEFAULT 0,
    dropped        INTEGER NOT NULL DEFAULT 0
);

-- Every event ever accepted, in arrival order. `seq` is the durable log detection consumes.
CREATE TABLE IF NOT EXISTS events (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    uid        TEXT NOT NULL UNIQUE,
    sensor_id  TEXT NOT NULL,
    class_uid  INTEGER NOT NULL,
    time       INTEGER NOT NULL,
    body       TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS events_class_time ON events (class_uid, time);
CREATE INDEX IF NOT EXISTS events_sensor_time ON events (sensor_id, time);

CREATE TABLE IF NOT EXISTS findings (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    uid         TEXT NOT NULL UNIQUE,
    sensor_id   TEXT NOT NULL,
    rule_id     TEXT NOT NULL,
    severity_id INTEGER NOT NULL,
    time        INTEGER NOT NULL,
    body        TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS findings_time ON findings (time);

-- How far each durable consumer (e.g. the detection worker) has read the event log.
CREATE TABLE IF NOT EXISTS cursors (
    name TEXT PRIMARY KEY,
    seq  INTEGER NOT NULL
);
