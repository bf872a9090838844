//! The server side of `vigil bench fleet`: the embedded default (one `vigil server` on SQLite)
//! or the scale-out deployment (fleet and detection instances as separate `vigil server`
//! processes on NATS JetStream and PostgreSQL), started fresh and removed at the end.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::str::FromStr;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use super::bench::SECRET;

/// Detection partitions of the bench's bus.
const PARTITIONS: u16 = 32;

/// A `vigil server` child, killed (by pid) on drop.
pub struct Child {
    /// What it runs (`server`, `fleet 1`, `detect 2`…).
    pub name: String,
    pub child: std::process::Child,
}

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// How the scale-out deployment is laid out.
pub struct ScaleOut {
    /// `nats://…`.
    pub bus: String,
    /// A PostgreSQL URL whose server the bench makes its database on.
    pub store: String,
    pub fleet_instances: usize,
    pub detect_instances: usize,
}

/// A running deployment.
pub struct Deployment {
    pub dir: tempfile::TempDir,
    pub children: Vec<Child>,
    /// Fleet service URLs (`https://…`), agents spread over them.
    pub fleet_urls: Vec<String>,
    scale: Option<ScaleState>,
}

struct ScaleState {
    bus: std::sync::Arc<vigil_server::bus::nats::NatsBus>,
    admin_url: String,
    db_name: String,
    db_url: String,
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

fn spawn(name: String, args: &[String], rules: &[PathBuf], dir: &Path) -> anyhow::Result<Child> {
    let mut cmd = std::process::Command::new(std::env::current_exe()?);
    cmd.arg("server")
        .args(args)
        .args(["--enroll-secret", SECRET])
        .arg("--data-dir")
        .arg(dir)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped());
    for r in rules {
        cmd.arg("--rules").arg(r);
    }
    let child = cmd
        .spawn()
        .with_context(|| format!("cannot start vigil server ({name})"))?;
    Ok(Child { name, child })
}

/// Waits for the child to print a line starting with `prefix`, then lets the rest of its
/// output drain in the background.
fn wait_line(c: &mut Child, prefix: &str) -> anyhow::Result<String> {
    let out = c.child.stdout.take().context("no stdout")?;
    let (tx, rx) = std::sync::mpsc::channel();
    let want = prefix.to_owned();
    std::thread::spawn(move || {
        let mut found = false;
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            if !found && line.starts_with(&want) {
                found = true;
                let _ = tx.send(line);
            }
        }
    });
    rx.recv_timeout(Duration::from_secs(120))
        .with_context(|| format!("{} never printed {prefix:?}", c.name))
}

fn fleet_url_of(line: &str) -> anyhow::Result<String> {
    line.split_whitespace()
        .find(|w| w.starts_with("https://"))
        .map(str::to_owned)
        .context("no fleet address")
}

impl Deployment {
    /// One `vigil server` with every role on SQLite.
    pub fn embedded(rules: &[PathBuf]) -> anyhow::Result<Self> {
        let dir = tempfile::tempdir().context("cannot create a temporary data directory")?;
        let fleet = format!("127.0.0.1:{}", free_port()?);
        let args: Vec<String> = ["--listen", "127.0.0.1:0", "--fleet-listen", &fleet]
            .map(str::to_owned)
            .to_vec();
        let mut server = spawn("server".into(), &args, rules, dir.path())?;
        let line = wait_line(&mut server, "fleet:")?;
        Ok(Self {
            fleet_urls: vec![fleet_url_of(&line)?],
            children: vec![server],
            dir,
            scale: None,
        })
    }

    /// Fleet and detection instances on NATS and a fresh PostgreSQL database.
    pub async fn scale_out(rules: &[PathBuf], s: &ScaleOut) -> anyhow::Result<Self> {
        if s.fleet_instances == 0 || s.detect_instances == 0 {
            bail!("--fleet-instances and --detect-instances must be at least 1");
        }
        let dir = tempfile::tempdir().context("cannot create a temporary data directory")?;
        let tag = format!("{}_{}", std::process::id(), vigil_ocsf::now_ms());
        let db_name = format!("vigil_bench_{tag}");
        let prefix = format!("vbench{tag}");
        let opts = sqlx::postgres::PgConnectOptions::from_str(&s.store)
            .with_context(|| format!("--store {:?} is not a PostgreSQL URL", s.store))?;
        let mut admin = <sqlx::postgres::PgConnection as sqlx::Connection>::connect_with(&opts)
            .await
            .with_context(|| format!("cannot reach PostgreSQL at {}", s.store))?;
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {db_name}")))
            .execute(&mut admin)
            .await
            .context("cannot create the bench's database")?;
        let db_url = format!(
            "{}/{db_name}",
            s.store
                .split('?')
                .next()
                .and_then(|u| u.rsplit_once('/'))
                .map_or(s.store.as_str(), |(base, _)| base)
        );
        let mut nats = vigil_server::bus::nats::NatsConfig::new(&s.bus);
        nats.prefix = prefix.clone();
        nats.partitions = PARTITIONS;
        let bus = vigil_server::bus::nats::NatsBus::connect(nats)
            .await
            .context("cannot reach NATS")?;
        let mut me = Self {
            dir,
            children: Vec::new(),
            fleet_urls: Vec::new(),
            scale: Some(ScaleState {
                bus,
                admin_url: s.store.clone(),
                db_name,
                db_url: db_url.clone(),
            }),
        };
        let common = |roles: &str| -> Vec<String> {
            [
                "--roles",
                roles,
                "--listen",
                "127.0.0.1:0",
                "--fleet-listen",
                "127.0.0.1:0",
                "--bus",
                &s.bus,
                "--bus-prefix",
                &prefix,
                "--bus-partitions",
                &PARTITIONS.to_string(),
                "--store",
                &db_url,
            ]
            .map(str::to_owned)
            .to_vec()
        };
        // The first fleet instance makes the fleet CA; the others read it. It also keeps the
        // hunting index (`ingest`), unless VIGIL_BENCH_NO_HUNT is set: a diagnostic, to see
        // what the index costs PostgreSQL (docs/PERFORMANCE.md).
        for i in 0..s.fleet_instances {
            let roles = if i == 0 && std::env::var_os("VIGIL_BENCH_NO_HUNT").is_none() {
                "fleet,ingest"
            } else {
                "fleet"
            };
            let mut c = spawn(
                format!("fleet {}", i + 1),
                &common(roles),
                rules,
                me.dir.path(),
            )?;
            let line = wait_line(&mut c, "fleet:")?;
            me.fleet_urls.push(fleet_url_of(&line)?);
            me.children.push(c);
        }
        for i in 0..s.detect_instances {
            let mut c = spawn(
                format!("detect {}", i + 1),
                &common("detect"),
                rules,
                me.dir.path(),
            )?;
            wait_line(&mut c, "detect:")?;
            me.children.push(c);
        }
        Ok(me)
    }

    /// The fleet CA agents trust.
    pub fn ca(&self) -> anyhow::Result<String> {
        Ok(std::fs::read_to_string(
            self.dir.path().join("fleet-ca.crt"),
        )?)
    }

    /// Waits until detection has scored everything stored; returns (stored, scored, seconds
    /// waited past the call).
    pub async fn wait_scored(&self, sent: u64) -> anyhow::Result<(u64, u64)> {
        match &self.scale {
            None => super::bench::wait_scored_sqlite(self.dir.path(), sent).await,
            Some(s) => {
                let deadline = Instant::now() + Duration::from_secs(600);
                loop {
                    let left = s.bus.unscored().await?;
                    if left == 0 || Instant::now() > deadline {
                        let mut conn =
                            <sqlx::postgres::PgConnection as sqlx::Connection>::connect(&s.db_url)
                                .await?;
                        let stored: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM events")
                            .fetch_one(&mut conn)
                            .await?;
                        // Every batch published is stored first; what is left unscored is
                        // counted in messages, so report events only when none is left.
                        let stored = u64::try_from(stored).unwrap_or(0);
                        return Ok((stored, if left == 0 { stored } else { 0 }));
                    }
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        }
    }

    /// A connection to the embedded server's database.
    async fn sqlite(&self) -> anyhow::Result<sqlx::sqlite::SqliteConnection> {
        let opts = sqlx::sqlite::SqliteConnectOptions::from_str("sqlite://")?
            .filename(self.dir.path().join("server.db"));
        Ok(<sqlx::sqlite::SqliteConnection as sqlx::Connection>::connect_with(&opts).await?)
    }

    /// Waits until the hunting index has indexed everything stored (its cursor at the log's
    /// end); false if it had not after ten minutes.
    pub async fn wait_indexed(&self) -> anyhow::Result<bool> {
        const BEHIND: &str = "SELECT COALESCE((SELECT MAX(seq) FROM events), 0)
             > COALESCE((SELECT seq FROM cursors WHERE name = 'hunt'), 0)";
        let deadline = Instant::now() + Duration::from_secs(600);
        loop {
            let behind: bool = match &self.scale {
                None => {
                    sqlx::query_scalar(BEHIND)
                        .fetch_one(&mut self.sqlite().await?)
                        .await?
                }
                Some(s) => {
                    let mut conn =
                        <sqlx::postgres::PgConnection as sqlx::Connection>::connect(&s.db_url)
                            .await?;
                    sqlx::query_scalar(BEHIND).fetch_one(&mut conn).await?
                }
            };
            if !behind {
                return Ok(true);
            }
            if Instant::now() > deadline {
                return Ok(false);
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Times from a marker event's creation to its finding's, for findings of `rule`.
    pub async fn finding_latencies(&self, rule: &str) -> anyhow::Result<Vec<Duration>> {
        let rows: Vec<(i64, String)> = match &self.scale {
            None => {
                sqlx::query_as("SELECT time, body FROM findings WHERE rule_id = ?")
                    .bind(rule)
                    .fetch_all(&mut self.sqlite().await?)
                    .await?
            }
            Some(s) => {
                let mut conn =
                    <sqlx::postgres::PgConnection as sqlx::Connection>::connect(&s.db_url).await?;
                sqlx::query_as("SELECT time, body FROM findings WHERE rule_id = $1")
                    .bind(rule)
                    .fetch_all(&mut conn)
                    .await?
            }
        };
        let mut out = Vec::new();
        for (time, body) in rows {
            let v: serde_json::Value = serde_json::from_str(&body)?;
            // Markers carry their creation time in their id: `mark-<ms>-…`.
            let created = v["finding_info"]["related_events"][0]["uid"]
                .as_str()
                .and_then(|u| u.strip_prefix("mark-"))
                .and_then(|u| u.split('-').next())
                .and_then(|ms| ms.parse::<i64>().ok());
            if let Some(c) = created {
                out.push(Duration::from_millis(
                    u64::try_from(time.saturating_sub(c)).unwrap_or(0),
                ));
            }
        }
        Ok(out)
    }

    /// Stops everything and removes the bench's database and streams.
    pub async fn remove(mut self) {
        self.children.clear();
        if let Some(s) = self.scale.take() {
            let _ = s.bus.remove().await;
            if let Ok(opts) = sqlx::postgres::PgConnectOptions::from_str(&s.admin_url)
                && let Ok(mut admin) =
                    <sqlx::postgres::PgConnection as sqlx::Connection>::connect_with(&opts).await
            {
                let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
                    "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                    s.db_name
                )))
                .execute(&mut admin)
                .await;
            }
        }
    }
}
