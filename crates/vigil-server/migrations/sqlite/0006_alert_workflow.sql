-- Version 6: the analyst's workflow on alerts. (Version 5 belongs to operator accounts.)

-- new -> acknowledged -> closed (with a verdict); a closed alert may be reopened.
ALTER TABLE findings ADD COLUMN status TEXT NOT NULL DEFAULT 'new';
-- `true_positive` or `false_positive`, set when closed.
ALTER TABLE findings ADD COLUMN verdict TEXT;
ALTER TABLE findings ADD COLUMN assignee TEXT;
ALTER TABLE findings ADD COLUMN updated_at INTEGER;
CREATE INDEX IF NOT EXISTS findings_status_time ON findings (status, time);
CREATE INDEX IF NOT EXISTS findings_sensor_time ON findings (sensor_id, time);

CREATE TABLE IF NOT EXISTS alert_comments (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    finding_uid TEXT NOT NULL,
    time        INTEGER NOT NULL,
    author      TEXT NOT NULL,
    text        TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS alert_comments_finding ON alert_comments (finding_uid, id);
