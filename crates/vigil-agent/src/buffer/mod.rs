//! The durable outbound buffer: SQLite in WAL mode, bounded, oldest-first eviction.
//!
//! Every captured event is written here before anything is sent; a row is deleted only after
//! the server acknowledged the batch that carried it. `synchronous = NORMAL` in WAL mode keeps
//! every committed row across a crash or `kill -9` of the agent (only a power cut can lose the
//! last commits), at a fraction of the fsync cost of `FULL`.

use std::path::Path;
use std::str::FromStr;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Row, SqlitePool};
use vigil_ocsf::Event;
use vigil_proto::fleet;

#[cfg(test)]
mod tests;

/// A buffer failure.
#[derive(Debug, thiserror::Error)]
pub enum BufferError {
    /// SQLite refused or failed an operation.
    #[error("agent buffer database error: {0}")]
    Db(#[from] sqlx::Error),
    /// The schema could not be created or migrated.
    #[error("agent buffer schema migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

/// A buffered event ready to send.
#[derive(Debug, Clone)]
pub struct Buffered {
    /// Position in the buffer.
    pub seq: i64,
    /// The wire form.
    pub event: fleet::Event,
}

/// An item of the priority lane.
#[derive(Debug, Clone)]
pub enum PriorityItem {
    /// A Detection Finding the agent raised (OCSF JSON).
    Finding(fleet::Event),
    /// A command's result.
    Result(fleet::CommandResult),
}

/// The durable outbound buffer.
#[derive(Debug)]
pub struct Buffer {
    pool: SqlitePool,
    max_events: u64,
    /// Rows in each table. Signed and never clamped: an ack may delete rows (and subtract
    /// them) before the push that wrote them has added them, and the sum must still be exact.
    len: AtomicI64,
    priority_len: AtomicI64,
    evicted: AtomicU64,
    /// Largest piece of a command result queued as one priority item.
    part_bytes: usize,
}

impl Buffer {
    /// Opens (creating if needed) `buffer.db` in `dir`, holding at most `max_events` events.
    pub async fn open(dir: &Path, max_events: u64) -> Result<Self, BufferError> {
        let opts = SqliteConnectOptions::from_str("sqlite://")?
            .filename(dir.join("buffer.db"))
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(10));
        let pool = SqlitePoolOptions::new()
            .max_connections(2)
            .connect_with(opts)
            .await?;
        sqlx::migrate!("./migrations").run(&pool).await?;
        let len: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM events")
            .fetch_one(&pool)
            .await?;
        let priority_len: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM priority")
            .fetch_one(&pool)
            .await?;
        let evicted: Option<i64> =
            sqlx::query_scalar("SELECT value FROM counters WHERE name = 'evicted'")
                .fetch_optional(&pool)
                .await?;
        Ok(Self {
            pool,
            max_events: max_events.max(1),
            len: AtomicI64::new(len),
            priority_len: AtomicI64::new(priority_len),
            evicted: AtomicU64::new(evicted.and_then(|v| u64::try_from(v).ok()).unwrap_or(0)),
            part_bytes: vigil_proto::RESULT_PART_BYTES,
        })
    }

    /// Splits command results larger than `bytes` into parts of at most `bytes` (default
    /// [`vigil_proto::RESULT_PART_BYTES`]).
    #[must_use]
    pub fn with_result_part_bytes(mut self, bytes: usize) -> Self {
        self.part_bytes = bytes.max(1);
        self
    }

    /// Events waiting to be acknowledged.
    pub fn len(&self) -> u64 {
        u64::try_from(self.len.load(Ordering::Relaxed)).unwrap_or(0)
    }

    /// Priority items (findings, command results) waiting to be acknowledged.
    pub fn priority_len(&self) -> u64 {
        u64::try_from(self.priority_len.load(Ordering::Relaxed)).unwrap_or(0)
    }

    /// Whether nothing is waiting, in either lane.
    pub fn is_empty(&self) -> bool {
        self.len() == 0 && self.priority_len() == 0
    }

    /// Events evicted (lost) because the buffer was full, since the buffer was created.
    pub fn evicted(&self) -> u64 {
        self.evicted.load(Ordering::Relaxed)
    }

    /// Appends events in one transaction, evicting the oldest if the bound is exceeded.
    pub async fn push(&self, events: &[Event]) -> Result<(), BufferError> {
        if events.is_empty() {
            return Ok(());
        }
        let mut tx = self.pool.begin().await?;
        for ev in events {
            sqlx::query("INSERT INTO events (uid, class_uid, time, body) VALUES (?, ?, ?, ?)")
                .bind(&ev.uid)
                .bind(ev.class_uid)
                .bind(ev.time)
                .bind(ev.to_json())
                .execute(&mut *tx)
                .await?;
        }
        let len = self.len() + events.len() as u64;
        let mut evicted = 0u64;
        if len > self.max_events {
            let excess = i64::try_from(len - self.max_events).unwrap_or(i64::MAX);
            let done = sqlx::query(
                "DELETE FROM events WHERE seq IN (SELECT seq FROM events ORDER BY seq LIMIT ?)",
            )
            .bind(excess)
            .execute(&mut *tx)
            .await?;
            evicted = done.rows_affected();
            sqlx::query(
                "INSERT INTO counters (name, value) VALUES ('evicted', ?)
                 ON CONFLICT (name) DO UPDATE SET value = value + excluded.value",
            )
            .bind(i64::try_from(evicted).unwrap_or(i64::MAX))
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        if evicted > 0 {
            self.evicted.fetch_add(evicted, Ordering::Relaxed);
            tracing::warn!(
                evicted,
                bound = self.max_events,
                "Agent buffer full: oldest events evicted"
            );
        }
        // Acks may have run while this transaction did: adjust, never overwrite.
        let added = i64::try_from(events.len()).unwrap_or(i64::MAX);
        self.len.fetch_add(
            added - i64::try_from(evicted).unwrap_or(i64::MAX),
            Ordering::Relaxed,
        );
        Ok(())
    }

    /// Up to `limit` events after position `seq`, oldest first.
    pub async fn read_after(&self, seq: i64, limit: u32) -> Result<Vec<Buffered>, BufferError> {
        let rows = sqlx::query(
            "SELECT seq, uid, class_uid, time, body FROM events WHERE seq > ? ORDER BY seq LIMIT ?",
        )
        .bind(seq)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter()
            .map(|r| {
                Ok(Buffered {
                    seq: r.try_get("seq")?,
                    event: fleet::Event {
                        uid: r.try_get("uid")?,
                        class_uid: r.try_get("class_uid")?,
                        time: r.try_get("time")?,
                        ocsf_json: r.try_get("body")?,
                    },
                })
            })
            .collect()
    }

    /// Deletes the acknowledged positions `first..=last`.
    pub async fn ack(&self, first: i64, last: i64) -> Result<(), BufferError> {
        let res = sqlx::query("DELETE FROM events WHERE seq BETWEEN ? AND ?")
            .bind(first)
            .bind(last)
            .execute(&self.pool)
            .await?;
        self.len.fetch_sub(
            i64::try_from(res.rows_affected()).unwrap_or(i64::MAX),
            Ordering::Relaxed,
        );
        Ok(())
    }

    /// Queues a finding on the priority lane. Findings are never evicted.
    pub async fn push_finding(&self, finding: &fleet::Event) -> Result<(), BufferError> {
        sqlx::query("INSERT INTO priority (kind, uid, time, body) VALUES ('finding', ?, ?, ?)")
            .bind(&finding.uid)
            .bind(finding.time)
            .bind(&finding.ocsf_json)
            .execute(&self.pool)
            .await?;
        self.priority_len.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// Records that a command was carried out and queues its result on the priority lane, in
    /// one transaction: a command recorded here is never run again.
    pub async fn record_result(&self, result: &fleet::CommandResult) -> Result<(), BufferError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO executed (id, succeeded, result, time) VALUES (?, ?, ?, ?)
             ON CONFLICT (id) DO NOTHING",
        )
        .bind(&result.id)
        .bind(result.succeeded)
        .bind(&result.result_json)
        .bind(result.time)
        .execute(&mut *tx)
        .await?;
        let queued = self.queue_result(&mut tx, result).await?;
        tx.commit().await?;
        self.priority_len.fetch_add(queued, Ordering::Relaxed);
        Ok(())
    }

    /// Queues a result as one priority item, or as parts of at most `part_bytes` each.
    async fn queue_result(
        &self,
        tx: &mut sqlx::SqliteConnection,
        result: &fleet::CommandResult,
    ) -> Result<i64, BufferError> {
        let pieces: Vec<&[u8]> = if result.result_json.len() > self.part_bytes {
            result.result_json.chunks(self.part_bytes).collect()
        } else {
            vec![&result.result_json[..]]
        };
        let parts = u32::try_from(pieces.len()).unwrap_or(u32::MAX);
        for (part, piece) in (0u32..).zip(&pieces) {
            let part = (parts > 1).then_some((part, parts));
            sqlx::query("INSERT INTO priority (kind, uid, time, body) VALUES ('result', ?, ?, ?)")
                .bind(&result.id)
                .bind(result.time)
                .bind(encode_result(result.succeeded, part, piece))
                .execute(&mut *tx)
                .await?;
        }
        Ok(i64::from(parts))
    }

    /// The recorded result of a command the agent already carried out.
    pub async fn executed(&self, id: &str) -> Result<Option<fleet::CommandResult>, BufferError> {
        let row = sqlx::query("SELECT succeeded, result, time FROM executed WHERE id = ?")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| {
            Ok(fleet::CommandResult {
                id: id.to_owned(),
                succeeded: r.try_get("succeeded")?,
                result_json: r.try_get("result")?,
                time: r.try_get("time")?,
                ..Default::default()
            })
        })
        .transpose()
    }

    /// Queues an already recorded result again (the server redelivered its command).
    pub async fn resend_result(&self, result: &fleet::CommandResult) -> Result<(), BufferError> {
        let mut tx = self.pool.begin().await?;
        let queued = self.queue_result(&mut tx, result).await?;
        tx.commit().await?;
        self.priority_len.fetch_add(queued, Ordering::Relaxed);
        Ok(())
    }

    /// Up to `limit` priority items after position `seq`, oldest first, together at most
    /// [`vigil_proto::PRIORITY_BATCH_BYTES`] of payload (one larger item goes alone).
    pub async fn read_priority_after(
        &self,
        seq: i64,
        limit: u32,
    ) -> Result<Vec<(i64, PriorityItem)>, BufferError> {
        let rows = sqlx::query(
            "SELECT seq, kind, uid, time, body FROM priority WHERE seq > ? ORDER BY seq LIMIT ?",
        )
        .bind(seq)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        let mut out = Vec::with_capacity(rows.len());
        let mut bytes = 0usize;
        for r in rows {
            let seq: i64 = r.try_get("seq")?;
            let uid: String = r.try_get("uid")?;
            let time: i64 = r.try_get("time")?;
            let body: Vec<u8> = r.try_get("body")?;
            let item = if r.try_get::<&str, _>("kind")? == "finding" {
                PriorityItem::Finding(fleet::Event {
                    uid,
                    class_uid: vigil_ocsf::class::DETECTION_FINDING,
                    time,
                    ocsf_json: body,
                })
            } else {
                let (succeeded, (part, parts), result_json) = decode_result(&body);
                PriorityItem::Result(fleet::CommandResult {
                    id: uid,
                    succeeded,
                    result_json,
                    time,
                    part,
                    parts,
                })
            };
            bytes += match &item {
                PriorityItem::Finding(f) => f.ocsf_json.len(),
                PriorityItem::Result(r) => r.result_json.len(),
            };
            if bytes > vigil_proto::PRIORITY_BATCH_BYTES && !out.is_empty() {
                break;
            }
            out.push((seq, item));
        }
        Ok(out)
    }

    /// Deletes the acknowledged priority positions `first..=last`.
    pub async fn ack_priority(&self, first: i64, last: i64) -> Result<(), BufferError> {
        let res = sqlx::query("DELETE FROM priority WHERE seq BETWEEN ? AND ?")
            .bind(first)
            .bind(last)
            .execute(&self.pool)
            .await?;
        self.priority_len.fetch_sub(
            i64::try_from(res.rows_affected()).unwrap_or(i64::MAX),
            Ordering::Relaxed,
        );
        Ok(())
    }

    /// Closes the database, checkpointing the WAL.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// A result row's body: `1` or `0` (succeeded), then `;<part>/<parts>` for a part of a larger
/// result, then `:` and the (piece of the) result JSON.
fn encode_result(succeeded: bool, part: Option<(u32, u32)>, json: &[u8]) -> Vec<u8> {
    let mut body = Vec::with_capacity(json.len() + 24);
    body.push(if succeeded { b'1' } else { b'0' });
    if let Some((part, parts)) = part {
        body.extend_from_slice(format!(";{part}/{parts}").as_bytes());
    }
    body.push(b':');
    body.extend_from_slice(json);
    body
}

/// The flag, the part (`(0, 0)` for a whole result) and the JSON of a result row's body.
fn decode_result(body: &[u8]) -> (bool, (u32, u32), Vec<u8>) {
    let Some((&flag, rest)) = body.split_first() else {
        return (false, (0, 0), Vec::new());
    };
    let succeeded = flag == b'1';
    match rest {
        [b':', json @ ..] => (succeeded, (0, 0), json.to_vec()),
        [b';', tail @ ..] => {
            let colon = tail.iter().position(|&b| b == b':').unwrap_or(tail.len());
            let part = std::str::from_utf8(&tail[..colon])
                .ok()
                .and_then(|p| p.split_once('/'))
                .and_then(|(a, b)| Some((a.parse().ok()?, b.parse().ok()?)))
                .unwrap_or((0, 0));
            (
                succeeded,
                part,
                tail.get(colon + 1..).unwrap_or_default().to_vec(),
            )
        }
        _ => (false, (0, 0), body.to_vec()),
    }
}
