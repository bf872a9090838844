//! The hunting index and live queries.

use sqlx::{QueryBuilder, Row};

use super::SqliteStore;
use crate::store::StoreError;

impl SqliteStore {
    pub(super) async fn hunt_impl(
        &self,
        q: &crate::store::HuntQuery,
    ) -> Result<Vec<(String, serde_json::Value)>, StoreError> {
        let Some(((kind, value), others)) = q.terms.split_first() else {
            return self.hunt_cmd_line(q).await;
        };
        // The first term's index rows, newest first, joined to their events; every other
        // criterion is an exact lookup per row, so the walk stops at the limit.
        let mut qb = QueryBuilder::new(
            "SELECT e.sensor_id, e.body FROM hunt_terms t JOIN events e ON e.seq = t.seq
             WHERE t.kind = ",
        );
        qb.push_bind(kind.clone())
            .push(" AND t.value = ")
            .push_bind(value.clone());
        if let Some(since) = q.since {
            qb.push(" AND t.time >= ").push_bind(since);
        }
        if let Some(until) = q.until {
            qb.push(" AND t.time < ").push_bind(until);
        }
        for (kind, value) in others {
            qb.push(" AND EXISTS (SELECT 1 FROM hunt_terms o WHERE o.kind = ")
                .push_bind(kind.clone())
                .push(" AND o.value = ")
                .push_bind(value.clone())
                .push(" AND o.time = t.time AND o.seq = t.seq)");
        }
        if let Some(cmd) = &q.cmd_line {
            qb.push(" AND t.seq IN (")
                .push(EVENTS_RUNNING)
                .push_bind(trigram_phrase(cmd))
                .push("))");
        }
        qb.push(" ORDER BY t.time DESC, t.seq DESC LIMIT ")
            .push_bind(q.limit);
        hits(&qb.build().fetch_all(&self.pool).await?)
    }

    /// A search by command-line substring alone, through the trigram index.
    async fn hunt_cmd_line(
        &self,
        q: &crate::store::HuntQuery,
    ) -> Result<Vec<(String, serde_json::Value)>, StoreError> {
        let mut qb = QueryBuilder::new("SELECT e.sensor_id, e.body FROM events e WHERE e.seq IN (");
        qb.push(EVENTS_RUNNING)
            .push_bind(trigram_phrase(q.cmd_line.as_deref().unwrap_or_default()))
            .push("))");
        if let Some(since) = q.since {
            qb.push(" AND e.time >= ").push_bind(since);
        }
        if let Some(until) = q.until {
            qb.push(" AND e.time < ").push_bind(until);
        }
        qb.push(" ORDER BY e.time DESC, e.seq DESC LIMIT ")
            .push_bind(q.limit);
        hits(&qb.build().fetch_all(&self.pool).await?)
    }

    pub(super) async fn create_live_query_impl(
        &self,
        q: &crate::store::LiveQuery,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO live_queries (id, sql, requested_by, created_at, deadline, targets)
             VALUES (?, ?, ?, ?, ?, ?)",
        )
        .bind(&q.id)
        .bind(&q.sql)
        .bind(&q.requested_by)
        .bind(q.created_at)
        .bind(q.deadline)
        .bind(serde_json::to_string(&q.targets)?)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub(super) async fn live_query_impl(
        &self,
        id: &str,
    ) -> Result<Option<crate::store::LiveQuery>, StoreError> {
        let row = sqlx::query("SELECT * FROM live_queries WHERE id = ?")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(live_query_from).transpose()
    }

    pub(super) async fn live_queries_impl(
        &self,
        limit: u32,
    ) -> Result<Vec<crate::store::LiveQuery>, StoreError> {
        let rows =
            sqlx::query("SELECT * FROM live_queries ORDER BY created_at DESC, id DESC LIMIT ?")
                .bind(limit)
                .fetch_all(&self.pool)
                .await?;
        rows.iter().map(live_query_from).collect()
    }
}

/// Search answers: each event's endpoint and document.
fn hits(rows: &[sqlx::sqlite::SqliteRow]) -> Result<Vec<(String, serde_json::Value)>, StoreError> {
    rows.iter()
        .map(|r| {
            Ok((
                r.try_get("sensor_id")?,
                serde_json::from_str(r.try_get::<&str, _>("body")?)?,
            ))
        })
        .collect()
}

/// The events whose command line matches the trigram phrase bound after it (close with `))`).
const EVENTS_RUNNING: &str = "SELECT r.seq FROM hunt_cmdline_refs r WHERE r.text_id IN \
     (SELECT rowid FROM hunt_cmdline_trigrams WHERE hunt_cmdline_trigrams MATCH ";

/// A substring as an FTS5 trigram phrase: quoted, inner quotes doubled.
fn trigram_phrase(substring: &str) -> String {
    format!("\"{}\"", substring.replace('"', "\"\""))
}

fn live_query_from(r: &sqlx::sqlite::SqliteRow) -> Result<crate::store::LiveQuery, StoreError> {
    Ok(crate::store::LiveQuery {
        id: r.try_get("id")?,
        sql: r.try_get("sql")?,
        requested_by: r.try_get("requested_by")?,
        created_at: r.try_get("created_at")?,
        deadline: r.try_get("deadline")?,
        targets: serde_json::from_str(r.try_get::<&str, _>("targets")?)?,
    })
}
