//! Endpoints, their identities, heartbeats and operator-set state.

use sqlx::Row;
use sqlx::postgres::PgRow;

use super::PgStore;
use crate::store::{
    CapabilityRecord, CertRecord, Endpoint, EndpointControls, EndpointFacts, HeartbeatRecord,
    Identity, StoreError,
};

/// Heartbeat history rows kept per endpoint.
const HEARTBEAT_HISTORY: i64 = 1000;

impl PgStore {
    pub(super) async fn upsert_endpoint_impl(
        &self,
        f: &EndpointFacts,
        now: i64,
    ) -> Result<(), StoreError> {
        let caps = serde_json::to_string(&f.capabilities)?;
        sqlx::query(
            "INSERT INTO endpoints (sensor_id, hostname, os_name, kernel_release, agent_version,
                                    capabilities, first_seen, last_seen)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
             ON CONFLICT (sensor_id) DO UPDATE SET
                hostname = excluded.hostname, os_name = excluded.os_name,
                kernel_release = excluded.kernel_release, agent_version = excluded.agent_version,
                capabilities = excluded.capabilities,
                last_seen = GREATEST(endpoints.last_seen, excluded.last_seen)",
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

    pub(super) async fn enroll_impl(
        &self,
        f: &EndpointFacts,
        cert: &CertRecord,
        token_hash: &str,
        now: i64,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        // Two enrollments of one id race on the primary key: the loser stores nothing.
        let inserted = sqlx::query(
            "INSERT INTO endpoints (sensor_id, hostname, os_name, kernel_release, agent_version,
                                    capabilities, first_seen, last_seen)
             VALUES ($1, $2, $3, $4, $5, '[]', $6, $7) ON CONFLICT (sensor_id) DO NOTHING",
        )
        .bind(&f.sensor_id)
        .bind(&f.hostname)
        .bind(&f.os_name)
        .bind(&f.kernel_release)
        .bind(&f.agent_version)
        .bind(now)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        if inserted.rows_affected() == 0 {
            return Err(StoreError::Conflict(format!(
                "endpoint {} is already enrolled",
                f.sensor_id
            )));
        }
        sqlx::query(
            "INSERT INTO certificates (fingerprint, sensor_id, issued_at, not_after)
             VALUES ($1, $2, $3, $4)",
        )
        .bind(&cert.fingerprint)
        .bind(&f.sensor_id)
        .bind(now)
        .bind(cert.not_after)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO sensor_tokens (token_hash, sensor_id, created_at) VALUES ($1, $2, $3)",
        )
        .bind(token_hash)
        .bind(&f.sensor_id)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    pub(super) async fn add_certificate_impl(
        &self,
        sensor_id: &str,
        cert: &CertRecord,
        now: i64,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO certificates (fingerprint, sensor_id, issued_at, not_after)
             VALUES ($1, $2, $3, $4) ON CONFLICT (fingerprint) DO NOTHING",
        )
        .bind(&cert.fingerprint)
        .bind(sensor_id)
        .bind(now)
        .bind(cert.not_after)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub(super) async fn add_token_impl(
        &self,
        sensor_id: &str,
        token_hash: &str,
        now: i64,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO sensor_tokens (token_hash, sensor_id, created_at) VALUES ($1, $2, $3)
             ON CONFLICT (token_hash) DO NOTHING",
        )
        .bind(token_hash)
        .bind(sensor_id)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub(super) async fn identify_cert_impl(
        &self,
        fingerprint: &str,
    ) -> Result<Option<Identity>, StoreError> {
        let row = sqlx::query(
            "SELECT t.sensor_id, c.revoked_at FROM certificates t
             LEFT JOIN endpoint_controls c ON c.sensor_id = t.sensor_id
             WHERE t.fingerprint = $1",
        )
        .bind(fingerprint)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(identity_from).transpose()
    }

    pub(super) async fn identify_token_impl(
        &self,
        token_hash: &str,
    ) -> Result<Option<Identity>, StoreError> {
        let row = sqlx::query(
            "SELECT t.sensor_id, c.revoked_at FROM sensor_tokens t
             LEFT JOIN endpoint_controls c ON c.sensor_id = t.sensor_id
             WHERE t.token_hash = $1",
        )
        .bind(token_hash)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(identity_from).transpose()
    }

    pub(super) async fn record_heartbeat_impl(
        &self,
        sensor_id: &str,
        hb: &HeartbeatRecord,
        transport: &str,
        now: i64,
    ) -> Result<(), StoreError> {
        let body = serde_json::to_string(hb)?;
        let caps = serde_json::to_string(&hb.capabilities)?;
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "UPDATE endpoints SET last_seen = GREATEST(last_seen, $1), last_heartbeat = $2,
                    capabilities = $3, agent_version = $4, os_name = $5, kernel_release = $6,
                    transport = $7
             WHERE sensor_id = $8",
        )
        .bind(now)
        .bind(&body)
        .bind(caps)
        .bind(&hb.agent_version)
        .bind(&hb.os_name)
        .bind(&hb.kernel_release)
        .bind(transport)
        .bind(sensor_id)
        .execute(&mut *tx)
        .await?;
        sqlx::query("INSERT INTO heartbeats (sensor_id, time, body) VALUES ($1, $2, $3)")
            .bind(sensor_id)
            .bind(now)
            .bind(&body)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "DELETE FROM heartbeats WHERE sensor_id = $1 AND id <= (
                SELECT id FROM heartbeats WHERE sensor_id = $2 ORDER BY id DESC LIMIT 1 OFFSET $3)",
        )
        .bind(sensor_id)
        .bind(sensor_id)
        .bind(HEARTBEAT_HISTORY)
        .execute(&mut *tx)
        .await?;
        if !hb.isolation.is_empty() {
            super::response::set_isolation(&mut tx, sensor_id, &hb.isolation, now).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    pub(super) async fn touch_endpoint_impl(
        &self,
        sensor_id: &str,
        now: i64,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE endpoints SET last_seen = GREATEST(last_seen, $1)
             WHERE sensor_id = $2 AND last_seen < $1",
        )
        .bind(now)
        .bind(sensor_id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub(super) async fn heartbeats_impl(
        &self,
        sensor_id: &str,
        limit: u32,
    ) -> Result<Vec<HeartbeatRecord>, StoreError> {
        let rows = sqlx::query(
            "SELECT body FROM heartbeats WHERE sensor_id = $1 ORDER BY id DESC LIMIT $2",
        )
        .bind(sensor_id)
        .bind(super::limit(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| Ok(serde_json::from_str(r.try_get::<&str, _>("body")?)?))
            .collect()
    }

    pub(super) async fn set_revoked_impl(
        &self,
        sensor_id: &str,
        revoked: bool,
        now: i64,
    ) -> Result<bool, StoreError> {
        let known: Option<String> =
            sqlx::query_scalar("SELECT sensor_id FROM endpoints WHERE sensor_id = $1")
                .bind(sensor_id)
                .fetch_optional(&self.pool)
                .await?;
        if known.is_none() {
            return Ok(false);
        }
        sqlx::query(
            "INSERT INTO endpoint_controls (sensor_id, revoked_at, updated_at) VALUES ($1, $2, $3)
             ON CONFLICT (sensor_id) DO UPDATE SET revoked_at = excluded.revoked_at,
                updated_at = excluded.updated_at",
        )
        .bind(sensor_id)
        .bind(revoked.then_some(now))
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(true)
    }

    pub(super) async fn controls_impl(
        &self,
        sensor_id: &str,
    ) -> Result<EndpointControls, StoreError> {
        let row = sqlx::query(
            "SELECT revoked_at, isolation_requested, tags FROM endpoint_controls
             WHERE sensor_id = $1",
        )
        .bind(sensor_id)
        .fetch_optional(&self.pool)
        .await?;
        row.map_or(Ok(EndpointControls::default()), |r| controls_from(&r))
    }

    pub(super) async fn endpoints_impl(&self) -> Result<Vec<Endpoint>, StoreError> {
        let rows = sqlx::query(
            "SELECT e.sensor_id, e.hostname, e.os_name, e.kernel_release, e.agent_version,
                    e.capabilities, e.first_seen, e.last_seen, e.last_heartbeat, e.transport,
                    e.isolation, e.isolation_at, c.revoked_at, COALESCE(c.isolation_requested, false) AS isolation_requested,
                    COALESCE(c.tags, '[]') AS tags
             FROM endpoints e LEFT JOIN endpoint_controls c ON c.sensor_id = e.sensor_id
             ORDER BY e.last_seen DESC",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(endpoint_from).collect()
    }
}

fn identity_from(r: &PgRow) -> Result<Identity, StoreError> {
    Ok(Identity {
        sensor_id: r.try_get("sensor_id")?,
        revoked: r.try_get::<Option<i64>, _>("revoked_at")?.is_some(),
    })
}

fn controls_from(r: &PgRow) -> Result<EndpointControls, StoreError> {
    Ok(EndpointControls {
        revoked_at: r.try_get("revoked_at")?,
        isolation_requested: r.try_get::<bool, _>("isolation_requested")?,
        tags: serde_json::from_str(r.try_get::<&str, _>("tags")?)?,
    })
}

fn endpoint_from(r: &PgRow) -> Result<Endpoint, StoreError> {
    let caps: Vec<CapabilityRecord> = serde_json::from_str(r.try_get::<&str, _>("capabilities")?)?;
    let heartbeat = r
        .try_get::<Option<&str>, _>("last_heartbeat")?
        .map(serde_json::from_str)
        .transpose()?;
    Ok(Endpoint {
        facts: EndpointFacts {
            sensor_id: r.try_get("sensor_id")?,
            hostname: r.try_get("hostname")?,
            os_name: r.try_get("os_name")?,
            kernel_release: r.try_get("kernel_release")?,
            agent_version: r.try_get("agent_version")?,
            capabilities: caps,
        },
        heartbeat,
        controls: controls_from(r)?,
        transport: r.try_get("transport")?,
        first_seen: r.try_get("first_seen")?,
        last_seen: r.try_get("last_seen")?,
        isolation: r.try_get("isolation")?,
        isolation_at: r.try_get("isolation_at")?,
    })
}
