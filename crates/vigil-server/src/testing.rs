//! The deployment Vigil's own system tests run on, chosen by `VIGIL_TEST_DEPLOYMENT`:
//! `embedded` (the default: SQLite in the data directory, the in-process bus) or `scaleout`
//! (a fresh PostgreSQL database on `VIGIL_TEST_POSTGRES` and a bus prefix of its own on
//! `VIGIL_TEST_NATS`, both removed by [`TestDeployment::remove`]). CI runs the system tests
//! both ways, so one behaviour is proven on both deployments.
//!
//! For the project's tests; not part of the server's interface.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use crate::ServerConfig;
use crate::bus::nats::{NatsBus, NatsConfig};
use crate::store::Store;
use crate::store::postgres::PgStore;
use crate::store::sqlite::SqliteStore;

/// The deployment of the servers a test starts over `data_dir`: made on first use (from
/// `VIGIL_TEST_DEPLOYMENT`) and the same for every later server over that directory, so a
/// restarted server finds what the first one stored. A scale-out deployment made this way
/// stays until the test process ends (its database and prefix are named `vigil_t_…`/`vt…`;
/// `scripts/test` drops the databases a run leaves).
pub async fn for_data_dir(data_dir: &Path) -> Arc<TestDeployment> {
    static ALL: std::sync::OnceLock<
        tokio::sync::Mutex<std::collections::HashMap<std::path::PathBuf, Arc<TestDeployment>>>,
    > = std::sync::OnceLock::new();
    let mut all = ALL.get_or_init(Default::default).lock().await;
    if let Some(d) = all.get(data_dir) {
        return Arc::clone(d);
    }
    let d = Arc::new(TestDeployment::from_env().await);
    all.insert(data_dir.to_owned(), Arc::clone(&d));
    d
}

/// Where a test's server keeps its state.
#[derive(Debug)]
pub struct TestDeployment {
    scale: Option<Scale>,
}

#[derive(Debug)]
struct Scale {
    admin: String,
    db_name: String,
    db_url: String,
    nats: NatsConfig,
}

impl TestDeployment {
    /// The deployment `VIGIL_TEST_DEPLOYMENT` names (for `scaleout`: a fresh database and
    /// prefix). Panics on another value, or when the scale-out services cannot be reached.
    pub async fn from_env() -> Self {
        match std::env::var("VIGIL_TEST_DEPLOYMENT").as_deref() {
            Err(_) | Ok("" | "embedded") => Self { scale: None },
            Ok("scaleout") => Self::scale_out().await,
            Ok(other) => panic!("VIGIL_TEST_DEPLOYMENT={other}: expected embedded or scaleout"),
        }
    }

    /// A fresh scale-out deployment.
    pub async fn scale_out() -> Self {
        let admin = std::env::var("VIGIL_TEST_POSTGRES")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned());
        let nats_url =
            std::env::var("VIGIL_TEST_NATS").unwrap_or_else(|_| "nats://127.0.0.1:4222".to_owned());
        let tag = uuid::Uuid::new_v4().simple().to_string()[..12].to_owned();
        let db_name = format!("vigil_t_{tag}");
        let mut conn = <sqlx::postgres::PgConnection as sqlx::Connection>::connect(&admin)
            .await
            .unwrap_or_else(|e| panic!("the scale-out tests need PostgreSQL at {admin}: {e}"));
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {db_name}")))
            .execute(&mut conn)
            .await
            .expect("CREATE DATABASE");
        let db_url = format!(
            "{}/{db_name}",
            admin.rsplit_once('/').map_or(admin.as_str(), |(b, _)| b)
        );
        let mut nats = NatsConfig::new(&nats_url);
        nats.prefix = format!("vt{tag}");
        nats.partitions = 4;
        nats.lease_ttl = Duration::from_secs(2);
        nats.ack_wait = Duration::from_secs(5);
        Self {
            scale: Some(Scale {
                admin,
                db_name,
                db_url,
                nats,
            }),
        }
    }

    /// Whether this is the scale-out deployment.
    pub fn is_scale_out(&self) -> bool {
        self.scale.is_some()
    }

    /// Points a server configuration at this deployment.
    pub fn apply(&self, cfg: &mut ServerConfig) {
        if let Some(s) = &self.scale {
            cfg.nats = Some(s.nats.clone());
            cfg.postgres = Some(s.db_url.clone());
        }
    }

    /// The store a server of this deployment over `data_dir` wrote, opened again (after the
    /// server stopped, or beside it).
    pub async fn open_store(&self, data_dir: &Path) -> Arc<dyn Store> {
        match &self.scale {
            None => Arc::new(SqliteStore::open(data_dir).await.expect("the SQLite store")),
            Some(s) => Arc::new(
                PgStore::open(&s.db_url)
                    .await
                    .expect("the PostgreSQL store"),
            ),
        }
    }

    /// Removes the database and the bus prefix (stop the servers first).
    pub async fn remove(self) {
        let Some(s) = self.scale else { return };
        if let Ok(bus) = NatsBus::connect(s.nats.clone()).await {
            let _ = bus.remove().await;
        }
        if let Ok(mut conn) =
            <sqlx::postgres::PgConnection as sqlx::Connection>::connect(&s.admin).await
        {
            let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                s.db_name
            )))
            .execute(&mut conn)
            .await;
        }
    }
}
