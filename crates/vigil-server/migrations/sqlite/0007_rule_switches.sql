-- Version 7: operators switch rules off (and on again) without editing rule files.
CREATE TABLE IF NOT EXISTS rule_switches (
    rule_id    TEXT PRIMARY KEY,
    enabled    INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    updated_by TEXT NOT NULL
);
