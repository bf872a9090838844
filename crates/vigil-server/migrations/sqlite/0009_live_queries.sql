-- Version 9: live queries sent to a selection of the fleet; each host's answer is the result
-- of its `query` command.
CREATE TABLE IF NOT EXISTS live_queries (
    id           TEXT PRIMARY KEY,
    sql          TEXT NOT NULL,
    requested_by TEXT NOT NULL,
    created_at   INTEGER NOT NULL,
    deadline     INTEGER NOT NULL,      -- hosts that have not answered by then did not answer in time
    targets      TEXT NOT NULL          -- JSON: [{sensor_id, command_id, refused}]
);
CREATE INDEX IF NOT EXISTS live_queries_created ON live_queries (created_at);
