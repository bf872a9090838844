//! The embedded store: one SQLite database (WAL) in the data directory.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{QueryBuilder, Row, SqlitePool};
use vigil_ocsf::{DetectionFinding, Event};

use super::{
    CapabilityRecord, Endpoint, EndpointFacts, EventPage, EventQuery, FindingQuery, InsertOutcome,
    StoreError, StoredEvent,
};

#[cfg(test)]
mod tests;

/// SQLite-backed [`super::Store`].
#[derive(Debug, Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
}

impl SqliteStore {
    /// Opens (creating if needed) `server.db` in `dir` and migrates it.
    ///
    /// `synchronous = FULL`: an ack is sent only after the batch's commit is on disk, so an
    /// acknowledged event survives a power cut as well as a crash.
    pub async fn open(dir: &Path) -> Result<Self, StoreError> {
        let opts = SqliteConnectOptions::from_str("sqlite://")?
            .filename(dir.join("server.db"))
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(Duration::from_secs(10))
            .foreign_keys(true);
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(opts)
            .await?;
        sqlx::migrate!("migrations/sqlite").run(&pool).await?;
        Ok(Self { pool })
    }

    /// Closes the pool, checkpointing the WAL.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

#[async_trait]
impl super::Store for SqliteStore {
    async fn upsert_endpoint(&self, f: &EndpointFacts, now: i64) -> Result<(), StoreError> {
        let caps = serde_json::to_string(&f.capabilities)?;
        sqlx::query(
            "INSERT INTO endpoints (sensor_id, hostname, os_name, kernel_release, agent_version,
                                    capabilities, first_seen, last_seen)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?)
             ON CONFLICT (sensor_id) DO UPDATE SET
                hostname = excluded.hostname, os_name = excluded.os_name,
                kernel_release = excluded.kernel_release, agent_version = excluded.agent_version,
                capabilities = excluded.capabilities, last_seen = excluded.last_seen",
        )
        .bind(&f.sensor_id)
        .bind(&f.hostname)
        .bind(&f.os_name)
        .bind(&f.kernel_release)
        .bind(&f.agent_version)
        .bind(caps)
        .bind(now)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn touch_endpoint(
        &self,
        sensor_id: &str,
        now: i64,
        buffered: u64,
        dropped: u64,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE endpoints SET last_seen = MAX(last_seen, ?), buffered = ?, dropped = ?
             WHERE sensor_id = ?",
        )
        .bind(now)
        .bind(to_i64(buffered))
        .bind(to_i64(dropped))
        .bind(sensor_id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn endpoints(&self) -> Result<Vec<Endpoint>, StoreError> {
        let rows = sqlx::query(
            "SELECT sensor_id, hostname, os_name, kernel_release, agent_version, capabilities,
                    first_seen, last_seen, buffered, dropped
             FROM endpoints ORDER BY last_seen DESC",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter()
            .map(|r| {
                let caps: Vec<CapabilityRecord> =
                    serde_json::from_str(r.try_get::<&str, _>("capabilities")?)?;
                Ok(Endpoint {
                    facts: EndpointFacts {
                        sensor_id: r.try_get("sensor_id")?,
                        hostname: r.try_get("hostname")?,
                        os_name: r.try_get("os_name")?,
                        kernel_release: r.try_get("kernel_release")?,
                        agent_version: r.try_get("agent_version")?,
                        capabilities: caps,
                    },
                    first_seen: r.try_get("first_seen")?,
                    last_seen: r.try_get("last_seen")?,
                    buffered: u64::try_from(r.try_get::<i64, _>("buffered")?).unwrap_or(0),
                    dropped: u64::try_from(r.try_get::<i64, _>("dropped")?).unwrap_or(0),
                })
            })
            .collect()
    }

    async fn insert_events(
        &self,
        sensor_id: &str,
        events: &[Event],
    ) -> Result<InsertOutcome, StoreError> {
        let mut tx = self.pool.begin().await?;
        let mut out = InsertOutcome::default();
        for ev in events {
            let body = serde_json::to_string(&ev.data)?;
            let res = sqlx::query(
                "INSERT INTO events (uid, sensor_id, class_uid, time, body) VALUES (?, ?, ?, ?, ?)
                 ON CONFLICT (uid) DO NOTHING",
            )
            .bind(&ev.uid)
            .bind(sensor_id)
            .bind(ev.class_uid)
            .bind(ev.time)
            .bind(body)
            .execute(&mut *tx)
            .await?;
            if res.rows_affected() == 1 {
                out.stored += 1;
            } else {
                out.duplicates += 1;
            }
        }
        tx.commit().await?;
        Ok(out)
    }

    async fn events_after(&self, seq: i64, limit: u32) -> Result<EventPage, StoreError> {
        let rows = sqlx::query(
            "SELECT seq, sensor_id, body FROM events WHERE seq > ? ORDER BY seq LIMIT ?",
        )
        .bind(seq)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        let mut out = EventPage {
            events: Vec::with_capacity(rows.len()),
            last_seq: None,
        };
        for r in rows {
            out.last_seq = Some(r.try_get("seq")?);
            let body: &str = r.try_get("body")?;
            let value: serde_json::Value = serde_json::from_str(body)?;
            // Stored bodies passed envelope validation on the way in; a row that no longer does
            // is skipped rather than wedging the log.
            let Ok(event) = Event::from_value(value) else {
                tracing::warn!(
                    seq = r.try_get::<i64, _>("seq")?,
                    "Skipping malformed stored event"
                );
                continue;
            };
            out.events.push(StoredEvent {
                seq: r.try_get("seq")?,
                sensor_id: r.try_get("sensor_id")?,
                event,
            });
        }
        Ok(out)
    }

    async fn query_events(&self, q: &EventQuery) -> Result<Vec<serde_json::Value>, StoreError> {
        let mut qb = QueryBuilder::new("SELECT body FROM events WHERE 1 = 1");
        if let Some(class) = q.class_uid {
            qb.push(" AND class_uid = ").push_bind(class);
        }
        if let Some(since) = q.since {
            qb.push(" AND time >= ").push_bind(since);
        }
        if let Some(sensor) = &q.sensor_id {
            qb.push(" AND sensor_id = ").push_bind(sensor.clone());
        }
        qb.push(" ORDER BY time DESC, seq DESC LIMIT ")
            .push_bind(q.limit);
        let rows = qb.build().fetch_all(&self.pool).await?;
        rows.iter()
            .map(|r| Ok(serde_json::from_str(r.try_get::<&str, _>("body")?)?))
            .collect()
    }

    async fn cursor(&self, consumer: &str) -> Result<i64, StoreError> {
        let seq = sqlx::query_scalar("SELECT seq FROM cursors WHERE name = ?")
            .bind(consumer)
            .fetch_optional(&self.pool)
            .await?;
        Ok(seq.unwrap_or(0))
    }

    async fn commit_findings(
        &self,
        consumer: &str,
        through_seq: i64,
        findings: &[(String, DetectionFinding)],
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        for (sensor_id, f) in findings {
            sqlx::query(
                "INSERT INTO findings (uid, sensor_id, rule_id, severity_id, time, body)
                 VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (uid) DO NOTHING",
            )
            .bind(&f.finding_info.uid)
            .bind(sensor_id)
            .bind(&f.finding_info.analytic.uid)
            .bind(f.severity_id)
            .bind(f.time)
            .bind(serde_json::to_string(f)?)
            .execute(&mut *tx)
            .await?;
        }
        sqlx::query(
            "INSERT INTO cursors (name, seq) VALUES (?, ?)
             ON CONFLICT (name) DO UPDATE SET seq = MAX(seq, excluded.seq)",
        )
        .bind(consumer)
        .bind(through_seq)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn query_findings(&self, q: &FindingQuery) -> Result<Vec<serde_json::Value>, StoreError> {
        let rows = sqlx::query(
            "SELECT body FROM findings WHERE time >= ? ORDER BY time DESC, seq DESC LIMIT ?",
        )
        .bind(q.since.unwrap_or(i64::MIN))
        .bind(q.limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| Ok(serde_json::from_str(r.try_get::<&str, _>("body")?)?))
            .collect()
    }
}
