//! The durable outbound buffer: SQLite in WAL mode, bounded, oldest-first eviction.
//!
//! Every captured event is written here before anything is sent; a row is deleted only after
//! the server acknowledged the batch that carried it. `synchronous = NORMAL` in WAL mode keeps
//! every committed row across a crash or `kill -9` of the agent (only a power cut can lose the
//! last commits), at a fraction of the fsync cost of `FULL`.

use std::path::Path;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
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

/// The durable outbound buffer.
#[derive(Debug)]
pub struct Buffer {
    pool: SqlitePool,
    max_events: u64,
    len: AtomicU64,
    evicted: AtomicU64,
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
        let evicted: Option<i64> =
            sqlx::query_scalar("SELECT value FROM counters WHERE name = 'evicted'")
                .fetch_optional(&pool)
                .await?;
        Ok(Self {
            pool,
            max_events: max_events.max(1),
            len: AtomicU64::new(u64::try_from(len).unwrap_or(0)),
            evicted: AtomicU64::new(evicted.and_then(|v| u64::try_from(v).ok()).unwrap_or(0)),
        })
    }

    /// Events waiting to be acknowledged.
    pub fn len(&self) -> u64 {
        self.len.load(Ordering::Relaxed)
    }

    /// Whether nothing is waiting.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
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
        let excess = len.saturating_sub(self.max_events);
        if excess > 0 {
            let excess_i = i64::try_from(excess).unwrap_or(i64::MAX);
            sqlx::query(
                "DELETE FROM events WHERE seq IN (SELECT seq FROM events ORDER BY seq LIMIT ?)",
            )
            .bind(excess_i)
            .execute(&mut *tx)
            .await?;
            sqlx::query(
                "INSERT INTO counters (name, value) VALUES ('evicted', ?)
                 ON CONFLICT (name) DO UPDATE SET value = value + excluded.value",
            )
            .bind(excess_i)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        if excess > 0 {
            self.evicted.fetch_add(excess, Ordering::Relaxed);
            tracing::warn!(
                evicted = excess,
                bound = self.max_events,
                "Agent buffer full: oldest events evicted"
            );
        }
        // Acks may have run while this transaction did: adjust, never overwrite.
        let added = events.len() as u64;
        let _ = self
            .len
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                Some((n + added).saturating_sub(excess))
            });
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
        let _ = self
            .len
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                Some(n.saturating_sub(res.rows_affected()))
            });
        Ok(())
    }

    /// Closes the database, checkpointing the WAL.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}
