-- Version 3: endpoint risk and the durable command queue.

-- Risk decays exponentially (see src/risk.rs); `score` is the value at `updated_at`.
CREATE TABLE IF NOT EXISTS endpoint_risk (
    sensor_id     TEXT PRIMARY KEY,
    score         REAL NOT NULL,
    updated_at    INTEGER NOT NULL,
    high_water    REAL NOT NULL,
    high_water_at INTEGER NOT NULL
);

-- Response commands: queued -> delivered -> succeeded | failed (| expired).
CREATE TABLE IF NOT EXISTS commands (
    id           TEXT PRIMARY KEY,
    sensor_id    TEXT NOT NULL,
    action       TEXT NOT NULL,
    args         TEXT NOT NULL,          -- JSON object
    state        TEXT NOT NULL,
    requested_by TEXT NOT NULL,
    reason       TEXT NOT NULL,
    created_at   INTEGER NOT NULL,
    delivered_at INTEGER,
    completed_at INTEGER,
    result       TEXT                    -- JSON object reported by the sensor
);
CREATE INDEX IF NOT EXISTS commands_sensor_state ON commands (sensor_id, state, created_at);
