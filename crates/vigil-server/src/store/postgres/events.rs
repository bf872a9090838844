//! The event log: day partitions, group-commit inserts and what cursor readers see.
//!
//! **Partitions.** `events` is range-partitioned on the event's own `time`, one partition per
//! UTC day (`events_YYYYMMDD`), made by the `vigil_event_partition(day)` function of the schema.
//! Before a batch is inserted, every day it holds within [`PAST_DAYS`] back and [`FUTURE_DAYS`]
//! ahead gets its partition (once per process: known days are remembered); days outside that
//! window (a clock gone wild, a host that was away for months) go to the default partition, so
//! no event ever fails to insert for want of a partition. A partition made later for a day
//! that has rows waiting in the default partition takes them over.
//!
//! **Idempotency.** The unique key is `(uid, time)`: PostgreSQL requires the partition key in
//! every unique key of a partitioned table. An event id always comes back with the same time (a
//! resent batch carries the same documents, and the agent assigns both once), so the pair
//! refuses a resend exactly as `uid` alone would, and a resend lands in the same partition as
//! the original. (A third-party sensor that reuses an id with another time would get two rows;
//! the SQLite store would keep one.)
//!
//! **Log order.** Cursor readers (`events_after` + `cursor` + `commit_findings`/`index_hunt`)
//! advance past the highest `seq` they saw. With concurrent writers a larger `seq` could commit
//! before a smaller one, and a reader that had moved past it would never see the smaller. So
//! the insert takes a transaction-scoped advisory lock ([`LOG_LOCK`]) before drawing positions
//! from the sequence and keeps it until its commit: positions are drawn and become visible in
//! the same order, and any snapshot sees a prefix of the log. The price is that event inserts
//! commit one at a time; each is one statement per group of batches, so a writer holds the
//! lock for one statement and one commit.

use std::collections::{BTreeSet, HashSet};

use sqlx::{Postgres, QueryBuilder, Row};
use vigil_ocsf::{DetectionFinding, RawEvent};

use super::PgStore;
use crate::store::{BodyPage, EventQuery, InsertOutcome, StoreError, StoredBody};

/// One UTC day in ms.
const DAY_MS: i64 = 86_400_000;
/// Partitions are made on demand for days up to this many days back…
pub(super) const PAST_DAYS: i64 = 31;
/// …and this many ahead; other days wait in the default partition.
pub(super) const FUTURE_DAYS: i64 = 2;
/// The advisory lock (two-key form) event inserts hold from drawing positions to commit. The
/// schema's partition maker uses `(7307418, 1)`.
const LOG_LOCK: (i32, i32) = (7_307_418, 0);

/// The UTC day (since the epoch) of a time in ms.
pub(super) fn day_of(time_ms: i64) -> i64 {
    time_ms.div_euclid(DAY_MS)
}

/// The columns of a group of batches, as the insert binds them: each event once (a uid twice
/// in one group is sent for its first batch only; the others count it as a duplicate).
#[derive(Default)]
struct Columns<'a> {
    batch: Vec<i32>,
    uid: Vec<&'a str>,
    sensor: Vec<&'a str>,
    class: Vec<i32>,
    time: Vec<i64>,
    body: Vec<&'a str>,
    /// Whether one sensor has events in two batches (its count must then be split by batch).
    shared_sensor: bool,
}

impl<'a> Columns<'a> {
    fn of(batches: &'a [(String, Vec<RawEvent>)]) -> Result<Self, StoreError> {
        let n = batches.iter().map(|(_, e)| e.len()).sum();
        let mut c = Self {
            batch: Vec::with_capacity(n),
            uid: Vec::with_capacity(n),
            sensor: Vec::with_capacity(n),
            class: Vec::with_capacity(n),
            time: Vec::with_capacity(n),
            body: Vec::with_capacity(n),
            shared_sensor: false,
        };
        let mut seen = HashSet::with_capacity(n);
        let mut sensors = HashSet::new();
        for (i, (sensor, events)) in batches.iter().enumerate() {
            let i = i32::try_from(i).map_err(|_| engine("too many batches in one group"))?;
            if !events.is_empty() && !sensors.insert(sensor.as_str()) {
                c.shared_sensor = true;
            }
            for e in events {
                if !seen.insert((e.uid.as_str(), e.time)) {
                    continue;
                }
                c.batch.push(i);
                c.uid.push(&e.uid);
                c.sensor.push(sensor);
                c.class.push(
                    i32::try_from(e.class_uid).map_err(|_| engine("class_uid out of range"))?,
                );
                c.time.push(e.time);
                c.body
                    .push(std::str::from_utf8(&e.json).map_err(|_| engine("event is not UTF-8"))?);
            }
        }
        Ok(c)
    }
}

/// The group insert when every sensor has one batch in the group: new rows counted by sensor.
/// Rows go in in array order (the function scan feeds the insert), so positions follow the
/// batches.
const INSERT_BY_SENSOR: &str = "
    WITH stored AS (
        INSERT INTO events (uid, sensor_id, class_uid, time, body)
        SELECT uid, sensor_id, class_uid, time, body::json
        FROM UNNEST($1::text[], $2::text[], $3::int4[], $4::int8[], $5::text[])
            AS u(uid, sensor_id, class_uid, time, body)
        ON CONFLICT (uid, time) DO NOTHING
        RETURNING sensor_id
    )
    SELECT sensor_id, count(*) FROM stored GROUP BY sensor_id";

/// The group insert when a sensor has several batches in the group: new rows matched back to
/// their batch.
const INSERT_BY_BATCH: &str = r#"
    WITH input AS (
        SELECT * FROM UNNEST($1::text[], $2::text[], $3::int4[], $4::int8[], $5::text[],
                             $6::int4[])
            AS u(uid, sensor_id, class_uid, time, body, batch)
    ), stored AS (
        INSERT INTO events (uid, sensor_id, class_uid, time, body)
        SELECT uid, sensor_id, class_uid, time, body::json FROM input
        ON CONFLICT (uid, time) DO NOTHING
        RETURNING uid, time
    )
    SELECT i.batch, count(*) FROM stored s
    JOIN input i ON i.uid COLLATE "C" = s.uid AND i.time = s.time
    GROUP BY i.batch"#;

fn engine(msg: &str) -> StoreError {
    StoreError::Engine(msg.to_owned())
}

impl PgStore {
    /// Makes the partitions of `days` that this process does not know to exist.
    pub(super) async fn ensure_partitions(
        &self,
        days: impl IntoIterator<Item = i64>,
    ) -> Result<(), StoreError> {
        let missing: BTreeSet<i64> = {
            let known = self
                .partitions
                .lock()
                .map_err(|_| engine("partition cache poisoned"))?;
            days.into_iter().filter(|d| !known.contains(d)).collect()
        };
        for day in missing {
            let made: bool = sqlx::query_scalar("SELECT vigil_event_partition($1)")
                .bind(day)
                .fetch_one(&self.pool)
                .await?;
            if made {
                tracing::info!(day, "Made an event partition");
            }
            if let Ok(mut known) = self.partitions.lock() {
                known.insert(day);
            }
        }
        Ok(())
    }

    pub(super) async fn insert_batches_impl(
        &self,
        batches: &[(String, Vec<RawEvent>)],
    ) -> Result<Vec<InsertOutcome>, StoreError> {
        let mut outs = vec![InsertOutcome::default(); batches.len()];
        if batches.iter().all(|(_, e)| e.is_empty()) {
            return Ok(outs);
        }
        let today = day_of(vigil_ocsf::now_ms());
        let window = today - PAST_DAYS..=today + FUTURE_DAYS;
        let days: BTreeSet<i64> = batches
            .iter()
            .flat_map(|(_, events)| events.iter().map(|e| day_of(e.time)))
            .filter(|d| window.contains(d))
            .collect();
        self.ensure_partitions(days).await?;
        let c = Columns::of(batches)?;
        if c.uid.is_empty() {
            return Ok(outs);
        }
        let mut tx = self.pool.begin().await?;
        sqlx::query("SELECT pg_advisory_xact_lock($1, $2)")
            .bind(LOG_LOCK.0)
            .bind(LOG_LOCK.1)
            .execute(&mut *tx)
            .await?;
        // One statement for the whole group, answering per sensor (or per batch) how many
        // rows were new.
        let query = if c.shared_sensor {
            INSERT_BY_BATCH
        } else {
            INSERT_BY_SENSOR
        };
        let mut q = sqlx::query(query)
            .bind(&c.uid)
            .bind(&c.sensor)
            .bind(&c.class)
            .bind(&c.time)
            .bind(&c.body);
        if c.shared_sensor {
            q = q.bind(&c.batch);
        }
        let rows = q.fetch_all(&mut *tx).await?;
        tx.commit().await?;
        for r in rows {
            let n = u32::try_from(r.try_get::<i64, _>(1)?).unwrap_or(u32::MAX);
            let batch = if c.shared_sensor {
                usize::try_from(r.try_get::<i32, _>(0)?).ok()
            } else {
                let sensor: &str = r.try_get(0)?;
                batches
                    .iter()
                    .position(|(s, events)| s == sensor && !events.is_empty())
            };
            if let Some(out) = batch.and_then(|b| outs.get_mut(b)) {
                out.stored = n;
            }
        }
        for (out, (_, events)) in outs.iter_mut().zip(batches) {
            let n = u32::try_from(events.len()).unwrap_or(u32::MAX);
            out.duplicates = n.saturating_sub(out.stored);
        }
        Ok(outs)
    }

    pub(super) async fn event_bodies_after_impl(
        &self,
        seq: i64,
        limit: u32,
    ) -> Result<BodyPage, StoreError> {
        let rows = sqlx::query(
            "SELECT seq, uid, sensor_id, class_uid, time, body::text AS body FROM events
             WHERE seq > $1 ORDER BY seq LIMIT $2",
        )
        .bind(seq)
        .bind(super::limit(limit))
        .fetch_all(&self.pool)
        .await?;
        let mut out = BodyPage {
            events: Vec::with_capacity(rows.len()),
            last_seq: None,
        };
        for r in rows {
            let seq: i64 = r.try_get("seq")?;
            out.last_seq = Some(seq);
            out.events.push(StoredBody {
                seq,
                sensor_id: r.try_get("sensor_id")?,
                uid: r.try_get("uid")?,
                class_uid: u32::try_from(r.try_get::<i32, _>("class_uid")?).unwrap_or(0),
                time: r.try_get("time")?,
                body: r.try_get("body")?,
            });
        }
        Ok(out)
    }

    pub(super) async fn query_events_impl(
        &self,
        q: &EventQuery,
    ) -> Result<Vec<serde_json::Value>, StoreError> {
        let mut qb: QueryBuilder<Postgres> =
            QueryBuilder::new("SELECT body::text AS body FROM events WHERE true");
        if let Some(class) = q.class_uid {
            qb.push(" AND class_uid = ")
                .push_bind(i32::try_from(class).unwrap_or(-1));
        }
        if let Some(since) = q.since {
            qb.push(" AND time >= ").push_bind(since);
        }
        if let Some(sensor) = &q.sensor_id {
            qb.push(" AND sensor_id = ").push_bind(sensor.clone());
        }
        if let Some(until) = q.until {
            qb.push(" AND time < ").push_bind(until);
        }
        if let Some(text) = &q.text {
            qb.push(" AND strpos(lower(body::text), lower(")
                .push_bind(text.clone())
                .push(")) > 0");
        }
        if let Some((path, value)) = &q.field {
            // A `\u0000` escape cannot be extracted as PostgreSQL text (the extraction would
            // fail the whole query): such a document does not match.
            qb.push(r" AND (CASE WHEN strpos(body::text, '\u0000') > 0 THEN NULL ELSE body #>> ")
                .push_bind(json_path(path))
                .push(" END) = ")
                .push_bind(value.clone());
        }
        qb.push(" ORDER BY time DESC, seq DESC LIMIT ")
            .push_bind(super::limit(q.limit));
        let rows = qb.build().fetch_all(&self.pool).await?;
        rows.iter()
            .map(|r| Ok(serde_json::from_str(r.try_get::<&str, _>("body")?)?))
            .collect()
    }

    pub(super) async fn cursor_impl(&self, consumer: &str) -> Result<i64, StoreError> {
        let seq = sqlx::query_scalar("SELECT seq FROM cursors WHERE name = $1")
            .bind(consumer)
            .fetch_optional(&self.pool)
            .await?;
        Ok(seq.unwrap_or(0))
    }

    pub(super) async fn commit_findings_impl(
        &self,
        consumer: &str,
        through_seq: i64,
        findings: &[(String, DetectionFinding)],
        state: &[(String, Vec<u8>)],
    ) -> Result<(), StoreError> {
        let now = vigil_ocsf::now_ms();
        let mut tx = self.pool.begin().await?;
        super::response::insert_findings(&mut tx, findings, now).await?;
        if !state.is_empty() {
            let sensors: Vec<&str> = state.iter().map(|(s, _)| s.as_str()).collect();
            let blobs: Vec<&[u8]> = state.iter().map(|(_, b)| b.as_slice()).collect();
            sqlx::query(
                "INSERT INTO detector_state (consumer, sensor_id, state, updated_at)
                 SELECT $1, s, b, $4 FROM UNNEST($2::text[], $3::bytea[]) AS u(s, b)
                 ON CONFLICT (consumer, sensor_id)
                 DO UPDATE SET state = excluded.state, updated_at = excluded.updated_at",
            )
            .bind(consumer)
            .bind(&sensors)
            .bind(&blobs)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        }
        advance_cursor(&mut tx, consumer, through_seq).await?;
        tx.commit().await?;
        Ok(())
    }

    pub(super) async fn detector_states_impl(
        &self,
        consumer: &str,
    ) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT sensor_id, state FROM detector_state WHERE consumer = $1 ORDER BY sensor_id",
        )
        .bind(consumer)
        .fetch_all(&self.pool)
        .await?)
    }
}

/// Moves a consumer's cursor forward (never back) inside a transaction.
pub(super) async fn advance_cursor(
    tx: &mut sqlx::PgConnection,
    consumer: &str,
    through_seq: i64,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO cursors (name, seq) VALUES ($1, $2)
         ON CONFLICT (name) DO UPDATE SET seq = GREATEST(cursors.seq, excluded.seq)",
    )
    .bind(consumer)
    .bind(through_seq)
    .execute(tx)
    .await?;
    Ok(())
}

/// A dotted OCSF path (`process.file.path`, `a.b[0]`) as a PostgreSQL JSON path array.
fn json_path(path: &str) -> Vec<String> {
    path.split('.')
        .flat_map(|seg| seg.split('['))
        .map(|seg| seg.trim_end_matches(']').to_owned())
        .filter(|seg| !seg.is_empty())
        .collect()
}

#[cfg(test)]
mod unit {
    use super::*;

    #[test]
    fn days_split_at_utc_midnight_also_before_the_epoch() {
        assert_eq!(day_of(0), 0);
        assert_eq!(day_of(DAY_MS - 1), 0);
        assert_eq!(day_of(DAY_MS), 1);
        assert_eq!(day_of(-1), -1);
    }

    #[test]
    fn dotted_paths_become_path_arrays() {
        assert_eq!(json_path("process.file.path"), ["process", "file", "path"]);
        assert_eq!(json_path("a.b[0].c"), ["a", "b", "0", "c"]);
    }
}
