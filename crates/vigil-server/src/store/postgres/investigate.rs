//! The hunting index, live queries and triage packages.

use sqlx::postgres::PgRow;
use sqlx::{Postgres, QueryBuilder, Row};

use super::PgStore;
use crate::store::{HuntQuery, HuntTerm, StoreError};

impl PgStore {
    pub(super) async fn index_hunt_impl(
        &self,
        consumer: &str,
        through_seq: i64,
        terms: &[HuntTerm],
        cmd_lines: &[(i64, String)],
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        if !terms.is_empty() {
            let kinds: Vec<&str> = terms.iter().map(|t| t.kind).collect();
            let values: Vec<&str> = terms.iter().map(|t| t.value.as_str()).collect();
            let seqs: Vec<i64> = terms.iter().map(|t| t.seq).collect();
            let sensors: Vec<&str> = terms.iter().map(|t| t.sensor_id.as_str()).collect();
            let times: Vec<i64> = terms.iter().map(|t| t.time).collect();
            sqlx::query(
                "INSERT INTO hunt_terms (kind, value, seq, sensor_id, time)
                 SELECT * FROM UNNEST($1::text[], $2::text[], $3::int8[], $4::text[], $5::int8[])
                 ON CONFLICT DO NOTHING",
            )
            .bind(&kinds)
            .bind(&values)
            .bind(&seqs)
            .bind(&sensors)
            .bind(&times)
            .execute(&mut *tx)
            .await?;
        }
        if !cmd_lines.is_empty() {
            let seqs: Vec<i64> = cmd_lines.iter().map(|(seq, _)| *seq).collect();
            let lines: Vec<&str> = cmd_lines.iter().map(|(_, c)| c.as_str()).collect();
            // Each distinct text once (most command lines of a page repeat), then every event
            // pointed at its text. An event indexed twice (a cursor that did not advance) keeps
            // one row, the last of the page.
            sqlx::query(
                "INSERT INTO hunt_cmdline_texts (digest, cmd_line)
                 SELECT DISTINCT ON (md5(c)) md5(c), c FROM UNNEST($1::text[]) AS u(c)
                 ON CONFLICT (digest) DO NOTHING",
            )
            .bind(&lines)
            .execute(&mut *tx)
            .await?;
            sqlx::query(
                "INSERT INTO hunt_cmdlines (seq, text_id)
                 SELECT u.seq, x.id
                 FROM (SELECT DISTINCT ON (seq) seq, cmd_line
                       FROM UNNEST($1::int8[], $2::text[]) WITH ORDINALITY AS u(seq, cmd_line, ord)
                       ORDER BY seq, ord DESC) u
                 JOIN hunt_cmdline_texts x ON x.digest = md5(u.cmd_line)
                 ON CONFLICT (seq) DO UPDATE SET text_id = excluded.text_id",
            )
            .bind(&seqs)
            .bind(&lines)
            .execute(&mut *tx)
            .await?;
        }
        super::events::advance_cursor(&mut tx, consumer, through_seq).await?;
        tx.commit().await?;
        Ok(())
    }

    pub(super) async fn hunt_impl(
        &self,
        q: &HuntQuery,
    ) -> Result<Vec<(String, serde_json::Value)>, StoreError> {
        let Some(((kind, value), others)) = q.terms.split_first() else {
            return self.hunt_cmd_line(q).await;
        };
        // The first term's index rows, newest first, joined to their events (the time prunes
        // the partitions); every other criterion is an exact lookup per row, so the walk stops
        // at the limit.
        let mut qb: QueryBuilder<Postgres> = QueryBuilder::new(
            "SELECT e.sensor_id, e.body::text AS body FROM hunt_terms t
             JOIN events e ON e.seq = t.seq AND e.time = t.time
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
            qb.push(
                " AND t.seq IN (SELECT c.seq FROM hunt_cmdlines c
                   JOIN hunt_cmdline_texts x ON x.id = c.text_id WHERE x.cmd_line ILIKE ",
            )
            .push_bind(like_pattern(cmd))
            .push(")");
        }
        qb.push(" ORDER BY t.time DESC, t.seq DESC LIMIT ")
            .push_bind(super::limit(q.limit));
        hits(&qb.build().fetch_all(&self.pool).await?)
    }

    /// A search by command-line substring alone, through the trigram index.
    async fn hunt_cmd_line(
        &self,
        q: &HuntQuery,
    ) -> Result<Vec<(String, serde_json::Value)>, StoreError> {
        let mut qb: QueryBuilder<Postgres> = QueryBuilder::new(
            "SELECT e.sensor_id, e.body::text AS body FROM events e
             WHERE e.seq IN (SELECT c.seq FROM hunt_cmdlines c
               JOIN hunt_cmdline_texts x ON x.id = c.text_id WHERE x.cmd_line ILIKE ",
        );
        qb.push_bind(like_pattern(q.cmd_line.as_deref().unwrap_or_default()))
            .push(")");
        if let Some(since) = q.since {
            qb.push(" AND e.time >= ").push_bind(since);
        }
        if let Some(until) = q.until {
            qb.push(" AND e.time < ").push_bind(until);
        }
        qb.push(" ORDER BY e.time DESC, e.seq DESC LIMIT ")
            .push_bind(super::limit(q.limit));
        hits(&qb.build().fetch_all(&self.pool).await?)
    }

    pub(super) async fn triage_packages_impl(
        &self,
        sensor_id: &str,
        limit: u32,
    ) -> Result<Vec<crate::store::TriageSummary>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, time, size, summary FROM triage_packages WHERE sensor_id = $1
             ORDER BY time DESC, id DESC LIMIT $2",
        )
        .bind(sensor_id)
        .bind(super::limit(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(crate::store::TriageSummary {
                    id: r.try_get("id")?,
                    time: r.try_get("time")?,
                    size: r.try_get("size")?,
                    summary: serde_json::from_str(r.try_get::<&str, _>("summary")?)?,
                })
            })
            .collect()
    }

    pub(super) async fn triage_package_impl(
        &self,
        sensor_id: &str,
        id: &str,
    ) -> Result<Option<String>, StoreError> {
        Ok(
            sqlx::query_scalar("SELECT body FROM triage_packages WHERE sensor_id = $1 AND id = $2")
                .bind(sensor_id)
                .bind(id)
                .fetch_optional(&self.pool)
                .await?,
        )
    }

    pub(super) async fn create_live_query_impl(
        &self,
        q: &crate::store::LiveQuery,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO live_queries (id, sql, requested_by, created_at, deadline, targets)
             VALUES ($1, $2, $3, $4, $5, $6)",
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
        let row = sqlx::query("SELECT * FROM live_queries WHERE id = $1")
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
            sqlx::query("SELECT * FROM live_queries ORDER BY created_at DESC, id DESC LIMIT $1")
                .bind(super::limit(limit))
                .fetch_all(&self.pool)
                .await?;
        rows.iter().map(live_query_from).collect()
    }
}

/// Search answers: each event's endpoint and document.
fn hits(rows: &[PgRow]) -> Result<Vec<(String, serde_json::Value)>, StoreError> {
    rows.iter()
        .map(|r| {
            Ok((
                r.try_get("sensor_id")?,
                serde_json::from_str(r.try_get::<&str, _>("body")?)?,
            ))
        })
        .collect()
}

/// A substring as an `ILIKE` pattern (case-insensitive, as the SQLite trigram index is):
/// wildcards and the escape character taken literally.
fn like_pattern(substring: &str) -> String {
    let mut out = String::with_capacity(substring.len() + 2);
    out.push('%');
    for c in substring.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('%');
    out
}

fn live_query_from(r: &PgRow) -> Result<crate::store::LiveQuery, StoreError> {
    Ok(crate::store::LiveQuery {
        id: r.try_get("id")?,
        sql: r.try_get("sql")?,
        requested_by: r.try_get("requested_by")?,
        created_at: r.try_get("created_at")?,
        deadline: r.try_get("deadline")?,
        targets: serde_json::from_str(r.try_get::<&str, _>("targets")?)?,
    })
}
