-- Version 8: triage packages an endpoint sent as the result of a `triage` command.
CREATE TABLE IF NOT EXISTS triage_packages (
    id         TEXT PRIMARY KEY,        -- the command's id
    sensor_id  TEXT NOT NULL,
    time       INTEGER NOT NULL,
    size       INTEGER NOT NULL,
    summary    TEXT NOT NULL,           -- JSON: per phase, item count, truncation, error
    body       TEXT NOT NULL            -- the package (JSON, schema vigil.triage/1)
);
CREATE INDEX IF NOT EXISTS triage_packages_sensor_time ON triage_packages (sensor_id, time);
