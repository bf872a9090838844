-- Version 13: what a detection consumer keeps per endpoint between runs (the behaviour
-- baseline), saved in the transaction that advances its cursor, so a restart neither
-- relearns nor counts an event twice.
CREATE TABLE IF NOT EXISTS detector_state (
    consumer   TEXT NOT NULL,
    sensor_id  TEXT NOT NULL,
    state      BLOB NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (consumer, sensor_id)
) WITHOUT ROWID;
