-- Vigil server store, scale-out (PostgreSQL) flavour. Version 1: everything the embedded
-- (SQLite) store holds at its version 13, in one step. Times are ms since the epoch (bigint);
-- small JSON documents are kept as text, exactly as the SQLite store keeps them. Identifiers
-- that are sorted or compared (names, ids) use the "C" collation, so they order byte-wise as
-- they do in SQLite, whatever the database's locale.

-- Trigram indexes for command-line substring search (a trusted extension: the database owner
-- may create it).
CREATE EXTENSION IF NOT EXISTS pg_trgm;

CREATE TABLE endpoints (
    sensor_id      text COLLATE "C" PRIMARY KEY,
    hostname       text NOT NULL,
    os_name        text NOT NULL,
    kernel_release text NOT NULL,
    agent_version  text NOT NULL,
    capabilities   text NOT NULL,               -- JSON array of {name, source, live, detail}
    first_seen     bigint NOT NULL,
    last_seen      bigint NOT NULL,
    last_heartbeat text,                        -- the latest heartbeat, JSON
    transport      text NOT NULL DEFAULT 'grpc',
    isolation      text NOT NULL DEFAULT 'none', -- as the endpoint last confirmed it
    isolation_at   bigint
);

-- The event log, partitioned by UTC day of the event's own time (see events.rs for how
-- partitions are made). `seq` is the durable log position cursor readers consume; it is
-- assigned from `events_seq` under a transaction-scoped advisory lock, so positions become
-- visible in order (see events.rs).
CREATE SEQUENCE events_seq AS bigint;
CREATE TABLE events (
    seq       bigint NOT NULL DEFAULT nextval('events_seq'),
    uid       text COLLATE "C" NOT NULL,
    sensor_id text COLLATE "C" NOT NULL,
    class_uid integer NOT NULL,
    time      bigint NOT NULL,
    body      json NOT NULL,
    -- A unique key on a partitioned table must hold the partition key. An event id always
    -- comes back with the same time (a resend is the same document), so (uid, time) is as
    -- good as uid alone for refusing a resent event.
    CONSTRAINT events_uid_time UNIQUE (uid, time)
) PARTITION BY RANGE (time);
ALTER SEQUENCE events_seq OWNED BY events.seq;
-- Days no partition is made for (far past, far future) land here; a partition made later
-- takes its rows over.
CREATE TABLE events_default PARTITION OF events DEFAULT;
CREATE INDEX events_by_seq ON events (seq);
CREATE INDEX events_class_time ON events (class_uid, time);
CREATE INDEX events_sensor_time ON events (sensor_id, time);

-- Makes the partition of UTC day `day` (days since the epoch) unless it exists: a plain
-- table, filled with the day's rows that waited in the default partition, then attached
-- (which takes only a SHARE UPDATE EXCLUSIVE lock on `events`, so inserts and readers go on).
-- Makers are serialised by an advisory lock; the check makes it idempotent.
CREATE FUNCTION vigil_event_partition(day bigint) RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
    lo   bigint := day * 86400000;
    hi   bigint := (day + 1) * 86400000;
    part text := 'events_' || to_char(to_timestamp(day * 86400) AT TIME ZONE 'UTC', 'YYYYMMDD');
BEGIN
    PERFORM pg_advisory_xact_lock(7307418, 1);
    IF to_regclass(quote_ident(part)) IS NOT NULL THEN
        RETURN false;
    END IF;
    EXECUTE format('CREATE TABLE %I (LIKE events INCLUDING DEFAULTS)', part);
    EXECUTE format(
        'WITH moved AS (DELETE FROM events_default WHERE time >= %s AND time < %s RETURNING *)
         INSERT INTO %I SELECT * FROM moved', lo, hi, part);
    EXECUTE format('ALTER TABLE events ATTACH PARTITION %I FOR VALUES FROM (%s) TO (%s)',
                   part, lo, hi);
    RETURN true;
END
$$;

CREATE TABLE findings (
    seq         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    uid         text COLLATE "C" NOT NULL UNIQUE,
    sensor_id   text COLLATE "C" NOT NULL,
    rule_id     text COLLATE "C" NOT NULL,
    severity_id integer NOT NULL,
    time        bigint NOT NULL,
    body        text NOT NULL,
    status      text NOT NULL DEFAULT 'new',   -- new -> acknowledged -> closed
    verdict     text,                          -- true_positive, false_positive once closed
    assignee    text,
    updated_at  bigint
);
CREATE INDEX findings_time ON findings (time, seq);
CREATE INDEX findings_status_time ON findings (status, time);
CREATE INDEX findings_sensor_time ON findings (sensor_id, time);

-- How far each durable consumer has read the event log.
CREATE TABLE cursors (
    name text COLLATE "C" PRIMARY KEY,
    seq  bigint NOT NULL
);

CREATE TABLE certificates (
    fingerprint text COLLATE "C" PRIMARY KEY,   -- SHA-256 of the DER, hex
    sensor_id   text COLLATE "C" NOT NULL,
    issued_at   bigint NOT NULL,
    not_after   bigint NOT NULL
);
CREATE INDEX certificates_sensor ON certificates (sensor_id);

CREATE TABLE sensor_tokens (
    token_hash text COLLATE "C" PRIMARY KEY,
    sensor_id  text COLLATE "C" NOT NULL,
    created_at bigint NOT NULL
);
CREATE INDEX sensor_tokens_sensor ON sensor_tokens (sensor_id);

-- What operators decided about an endpoint; only operator actions write here.
CREATE TABLE endpoint_controls (
    sensor_id           text COLLATE "C" PRIMARY KEY,
    revoked_at          bigint,
    isolation_requested boolean NOT NULL DEFAULT false,
    tags                text NOT NULL DEFAULT '[]',
    updated_at          bigint NOT NULL
);

CREATE TABLE heartbeats (
    id        bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    sensor_id text COLLATE "C" NOT NULL,
    time      bigint NOT NULL,
    body      text NOT NULL
);
CREATE INDEX heartbeats_sensor_id ON heartbeats (sensor_id, id);

CREATE TABLE endpoint_risk (
    sensor_id     text COLLATE "C" PRIMARY KEY,
    score         double precision NOT NULL,
    updated_at    bigint NOT NULL,
    high_water    double precision NOT NULL,
    high_water_at bigint NOT NULL
);

-- Response commands: queued -> delivered -> succeeded | failed (| expired).
CREATE TABLE commands (
    id           text COLLATE "C" PRIMARY KEY,
    sensor_id    text COLLATE "C" NOT NULL,
    action       text NOT NULL,
    args         text NOT NULL,               -- JSON object
    state        text NOT NULL,
    requested_by text NOT NULL,
    reason       text NOT NULL,
    created_at   bigint NOT NULL,
    delivered_at bigint,
    completed_at bigint,
    result       text,                        -- JSON reported by the endpoint
    expires_at   bigint,
    backend      text NOT NULL DEFAULT 'agent'
);
CREATE INDEX commands_sensor_state ON commands (sensor_id, state, created_at);
CREATE INDEX commands_sensor_created ON commands (sensor_id, created_at, id);

CREATE TABLE command_transitions (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    command_id text COLLATE "C" NOT NULL,
    state      text NOT NULL,
    time       bigint NOT NULL,
    detail     text
);
CREATE INDEX command_transitions_command ON command_transitions (command_id, id);

-- Append-only: who did what to which target.
CREATE TABLE audit_log (
    seq    bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    time   bigint NOT NULL,
    actor  text NOT NULL,
    action text NOT NULL,
    target text COLLATE "C" NOT NULL,
    detail text NOT NULL                      -- JSON object
);
CREATE INDEX audit_log_time ON audit_log (time);
CREATE INDEX audit_log_target ON audit_log (target, seq);

CREATE TABLE policies (
    id          text COLLATE "C" PRIMARY KEY,
    name        text COLLATE "C" NOT NULL UNIQUE,
    description text NOT NULL,
    rules       text NOT NULL,                -- JSON array
    endpoints   text NOT NULL,                -- JSON array of sensor ids
    tags        text NOT NULL,                -- JSON array of tags; "*" is every endpoint
    enabled     boolean NOT NULL,
    revision    bigint NOT NULL,
    created_at  bigint NOT NULL,
    updated_at  bigint NOT NULL
);

CREATE TABLE users (
    name          text COLLATE "C" PRIMARY KEY,
    role          text NOT NULL,              -- admin, analyst, viewer
    password_hash text NOT NULL,              -- PHC string ($argon2id$…)
    created_at    bigint NOT NULL,
    updated_at    bigint NOT NULL
);

CREATE TABLE api_tokens (
    id           text COLLATE "C" PRIMARY KEY,
    name         text COLLATE "C" NOT NULL UNIQUE,
    user_name    text COLLATE "C" NOT NULL REFERENCES users (name) ON DELETE CASCADE,
    role         text NOT NULL,
    token_hash   text COLLATE "C" NOT NULL UNIQUE,
    created_at   bigint NOT NULL,
    last_used_at bigint
);
CREATE INDEX api_tokens_user ON api_tokens (user_name);

CREATE TABLE operator_sessions (
    id_hash    text COLLATE "C" PRIMARY KEY,
    user_name  text COLLATE "C" NOT NULL REFERENCES users (name) ON DELETE CASCADE,
    csrf_token text NOT NULL,
    created_at bigint NOT NULL,
    last_seen  bigint NOT NULL,
    expires_at bigint NOT NULL
);
CREATE INDEX operator_sessions_user ON operator_sessions (user_name);
CREATE INDEX operator_sessions_expiry ON operator_sessions (expires_at);

CREATE TABLE alert_comments (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    finding_uid text COLLATE "C" NOT NULL,
    time        bigint NOT NULL,
    author      text NOT NULL,
    text        text NOT NULL
);
CREATE INDEX alert_comments_finding ON alert_comments (finding_uid, id);

CREATE TABLE rule_switches (
    rule_id    text COLLATE "C" PRIMARY KEY,
    enabled    boolean NOT NULL,
    updated_at bigint NOT NULL,
    updated_by text NOT NULL
);

CREATE TABLE triage_packages (
    id        text COLLATE "C" PRIMARY KEY,   -- the command's id
    sensor_id text COLLATE "C" NOT NULL,
    time      bigint NOT NULL,
    size      bigint NOT NULL,
    summary   text NOT NULL,                  -- JSON
    body      text NOT NULL                   -- the package (JSON, schema vigil.triage/1)
);
CREATE INDEX triage_packages_sensor_time ON triage_packages (sensor_id, time);

CREATE TABLE live_queries (
    id           text COLLATE "C" PRIMARY KEY,
    sql          text NOT NULL,
    requested_by text NOT NULL,
    created_at   bigint NOT NULL,
    deadline     bigint NOT NULL,
    targets      text NOT NULL               -- JSON: [{sensor_id, command_id, refused}]
);
CREATE INDEX live_queries_created ON live_queries (created_at, id);

-- The hunting index, filled from the event log by its own durable consumer: one row per
-- searchable value of an event, in the order searches read it (newest first per value).
CREATE TABLE hunt_terms (
    kind      text COLLATE "C" NOT NULL,     -- hash, name, path, ip, domain, user
    value     text COLLATE "C" NOT NULL,
    seq       bigint NOT NULL,               -- the event's position in the log
    sensor_id text COLLATE "C" NOT NULL,
    time      bigint NOT NULL,
    PRIMARY KEY (kind, value, time, seq)
);

-- Command lines for substring search through a trigram index.
CREATE TABLE hunt_cmdlines (
    seq      bigint PRIMARY KEY,             -- the event's position in the log
    cmd_line text NOT NULL
);
CREATE INDEX hunt_cmdlines_trgm ON hunt_cmdlines USING gin (cmd_line gin_trgm_ops);

CREATE TABLE result_parts (
    command_id  text COLLATE "C" NOT NULL,
    part        integer NOT NULL,
    parts       integer NOT NULL,
    body        bytea NOT NULL,
    received_at bigint NOT NULL,
    PRIMARY KEY (command_id, part)
);

CREATE TABLE detector_state (
    consumer   text COLLATE "C" NOT NULL,
    sensor_id  text COLLATE "C" NOT NULL,
    state      bytea NOT NULL,
    updated_at bigint NOT NULL,
    PRIMARY KEY (consumer, sensor_id)
);
