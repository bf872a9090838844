//! The store contract on PostgreSQL, and what only PostgreSQL has to prove: day partitions,
//! concurrent writers under a cursor reader, competing command takers, lost connections.
//!
//! Every test makes its own database on the server named by `VIGIL_TEST_POSTGRES` (default
//! `postgres://postgres@127.0.0.1:5432/postgres`, an account that may create databases) and
//! drops it at the end. A server that cannot be reached fails the test: these tests are never
//! skipped.

use std::collections::{BTreeMap, HashSet};
use std::str::FromStr;
use std::sync::Arc;

use serde_json::json;
use sqlx::postgres::PgConnectOptions;
use sqlx::{AssertSqlSafe, Connection, PgConnection};
use vigil_ocsf::RawEvent;

use super::PgStore;
use super::events::{FUTURE_DAYS, day_of};
use crate::store::contract_tests::{Backend, event, store_contract};
use crate::store::{NewCommand, Store, StoreError};

const DEFAULT_ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";
const DAY_MS: i64 = 86_400_000;

fn admin_url() -> String {
    std::env::var("VIGIL_TEST_POSTGRES").unwrap_or_else(|_| DEFAULT_ADMIN_URL.to_owned())
}

async fn admin() -> PgConnection {
    let url = admin_url();
    PgConnection::connect(&url).await.unwrap_or_else(|e| {
        panic!(
            "PostgreSQL is not reachable at {url} ({e}); the PostgreSQL store tests need a \
             server: start one or point VIGIL_TEST_POSTGRES at an account that may create \
             databases"
        )
    })
}

/// A database made for one test, dropped when the value is.
#[derive(Debug)]
pub(crate) struct PgTestDb {
    name: String,
    opts: PgConnectOptions,
}

impl PgTestDb {
    pub(crate) async fn new() -> Self {
        let name = format!("vigil_t_{}", uuid::Uuid::new_v4().simple());
        let mut conn = admin().await;
        let create = format!("CREATE DATABASE {name}");
        sqlx::raw_sql(AssertSqlSafe(create))
            .execute(&mut conn)
            .await
            .unwrap_or_else(|e| panic!("cannot create the test database {name}: {e}"));
        conn.close().await.ok();
        let opts = PgConnectOptions::from_str(&admin_url())
            .unwrap()
            .database(&name);
        Self { name, opts }
    }

    /// A store on this database with a small pool (tests run side by side).
    pub(crate) async fn store(&self) -> PgStore {
        PgStore::open_with(self.opts.clone(), 6).await.unwrap()
    }

    /// A store that owns the database: it is dropped with the store's last clone.
    pub(crate) async fn into_store(self) -> PgStore {
        let mut store = self.store().await;
        store.test_db = Some(Arc::new(self));
        store
    }
}

impl Drop for PgTestDb {
    fn drop(&mut self) {
        let name = self.name.clone();
        // Drop runs inside the test's runtime (or while unwinding): drop the database from a
        // thread of its own.
        let dropped = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            rt.block_on(async {
                let mut conn = PgConnection::connect(&admin_url()).await.ok()?;
                let drop = format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)");
                sqlx::raw_sql(AssertSqlSafe(drop))
                    .execute(&mut conn)
                    .await
                    .ok()
            })
        })
        .join();
        if !matches!(dropped, Ok(Some(_))) {
            eprintln!("could not drop the test database {}", self.name);
        }
    }
}

impl Backend for PgTestDb {
    type S = PgStore;

    async fn open(&self) -> PgStore {
        self.store().await
    }

    async fn close(&self, store: PgStore) {
        store.close().await;
    }

    async fn result_parts_held(&self, store: &PgStore) -> i64 {
        sqlx::query_scalar("SELECT COUNT(*) FROM result_parts")
            .fetch_one(store.pool())
            .await
            .unwrap()
    }
}

store_contract!(PgTestDb::new().await);

fn raw(uid: &str, time: i64) -> RawEvent {
    RawEvent::from_event(&event(uid, time))
}

/// Rows per partition of `events`.
async fn rows_per_partition(store: &PgStore) -> BTreeMap<String, i64> {
    let rows: Vec<(String, i64)> = sqlx::query_as(
        "SELECT tableoid::regclass::text, count(*) FROM events GROUP BY 1 ORDER BY 1",
    )
    .fetch_all(store.pool())
    .await
    .unwrap();
    rows.into_iter().collect()
}

fn partition_name(day: i64) -> String {
    let date = time::OffsetDateTime::UNIX_EPOCH + time::Duration::days(day);
    format!(
        "events_{:04}{:02}{:02}",
        date.year(),
        u8::from(date.month()),
        date.day()
    )
}

#[tokio::test]
async fn partitions_are_made_on_demand_for_every_day_of_a_batch() {
    let db = PgTestDb::new().await;
    let store = db.store().await;
    let today = day_of(vigil_ocsf::now_ms());
    let at = |day: i64| day * DAY_MS + 1_000;
    let batch = vec![
        raw("d-3", at(today - 3)),
        raw("d-1", at(today - 1)),
        raw("d0", at(today)),
        raw("d+1", at(today + 1)),
        raw("d+1b", at(today + 1) + 5),
        // Outside the window: the default partition takes them.
        raw("epoch", 5),
        raw("far", at(today + 400)),
    ];
    let out = store
        .insert_event_batches(vec![("s1".into(), batch.clone())])
        .await
        .unwrap();
    assert_eq!((out[0].stored, out[0].duplicates), (7, 0));
    let parts = rows_per_partition(&store).await;
    for (day, n) in [(today - 3, 1), (today - 1, 1), (today, 1), (today + 1, 2)] {
        assert_eq!(parts.get(&partition_name(day)), Some(&n), "{parts:?}");
    }
    assert_eq!(parts.get("events_default"), Some(&2), "{parts:?}");
    assert_eq!(store.events_after(0, 100).await.unwrap().events.len(), 7);

    // A day that waited in the default partition gets its partition once it comes into the
    // window; its rows move over, and a resend is still recognised.
    let later = today + FUTURE_DAYS + 3;
    let waiting = raw("waiting", at(later));
    store
        .insert_event_batches(vec![("s1".into(), vec![waiting.clone()])])
        .await
        .unwrap();
    assert_eq!(
        rows_per_partition(&store).await.get("events_default"),
        Some(&3)
    );
    store.ensure_partitions([later]).await.unwrap();
    let parts = rows_per_partition(&store).await;
    assert_eq!(parts.get(&partition_name(later)), Some(&1), "{parts:?}");
    assert_eq!(parts.get("events_default"), Some(&2), "{parts:?}");
    let again = store
        .insert_event_batches(vec![("s1".into(), vec![waiting])])
        .await
        .unwrap();
    assert_eq!((again[0].stored, again[0].duplicates), (0, 1));
    // A second maker (another server process) finds the partition there.
    let other = db.store().await;
    other.ensure_partitions([later, today]).await.unwrap();
    assert_eq!(rows_per_partition(&other).await, parts);
}

#[tokio::test]
async fn a_resent_batch_is_stored_once_also_when_sent_twice_at_once() {
    let db = PgTestDb::new().await;
    let store = Arc::new(db.store().await);
    let today = day_of(vigil_ocsf::now_ms());
    let batch: Vec<RawEvent> = (0..300)
        .map(|i| raw(&format!("e{i}"), (today - i % 3) * DAY_MS + i))
        .chain([raw("old", 7)])
        .collect();
    let sends = (0..2).map(|_| {
        let (store, batch) = (store.clone(), batch.clone());
        tokio::spawn(async move {
            store
                .insert_event_batches(vec![("s1".into(), batch)])
                .await
                .unwrap()[0]
        })
    });
    let outs = futures::future::try_join_all(sends).await.unwrap();
    assert_eq!(outs.iter().map(|o| o.stored).sum::<u32>(), 301);
    let resend = store
        .insert_event_batches(vec![("s1".into(), batch)])
        .await
        .unwrap();
    assert_eq!((resend[0].stored, resend[0].duplicates), (0, 301));
    let total: i64 = sqlx::query_scalar("SELECT count(*) FROM events")
        .fetch_one(store.pool())
        .await
        .unwrap();
    assert_eq!(total, 301);
}

/// Events in batch `b` of writer `w`: mostly small, now and then large, so transactions take
/// very different times and commit out of the order they drew positions in (were it not for
/// the log lock).
fn batch_size(w: usize, b: usize) -> usize {
    if (w + b).is_multiple_of(7) {
        1_500
    } else {
        1 + (w * 7 + b * 13) % 40
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_inserters_and_a_cursor_reader_never_miss_an_event() {
    const WRITERS: usize = 4;
    const BATCHES: usize = 60;
    let db = PgTestDb::new().await;
    let store = Arc::new(PgStore::open_with(db.opts.clone(), 12).await.unwrap());
    let now = vigil_ocsf::now_ms();
    let writers: Vec<_> = (0..WRITERS)
        .map(|w| {
            let store = store.clone();
            tokio::spawn(async move {
                for b in 0..BATCHES {
                    let batch = (0..batch_size(w, b))
                        .map(|i| raw(&format!("w{w}-b{b}-{i}"), now + i64::try_from(i).unwrap()))
                        .collect();
                    store
                        .insert_event_batches(vec![(format!("s{w}"), batch)])
                        .await
                        .unwrap();
                }
            })
        })
        .collect();
    let expected: usize = (0..WRITERS)
        .flat_map(|w| (0..BATCHES).map(move |b| batch_size(w, b)))
        .sum();
    // The reader commits its cursor the way the hunt indexer does, while the writers run.
    let mut seen = HashSet::new();
    let mut cursor = 0;
    let mut pages = 0;
    loop {
        let done = writers.iter().all(|w| w.is_finished());
        let page = store.events_after(cursor, 97).await.unwrap();
        if let Some(last) = page.last_seq {
            for e in page.events {
                assert!(e.seq > cursor);
                assert!(seen.insert(e.event.uid), "an event read twice");
            }
            store.index_hunt("reader", last, &[], &[]).await.unwrap();
            cursor = store.cursor("reader").await.unwrap();
            assert_eq!(cursor, last);
            pages += 1;
        } else if done {
            break;
        }
    }
    for w in writers {
        w.await.unwrap();
    }
    assert_eq!(seen.len(), expected, "events missed by the cursor reader");
    assert!(pages > 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_concurrent_takers_never_deliver_one_command_twice() {
    let db = PgTestDb::new().await;
    let store = Arc::new(db.store().await);
    let mut queued = HashSet::new();
    for i in 0..60 {
        let cmd = NewCommand {
            sensor_id: "s1".into(),
            action: "kill".into(),
            args: json!({ "pid": i }),
            requested_by: "operator".into(),
            reason: "test".into(),
            ttl_ms: None,
            backend: String::new(),
        };
        queued.insert(store.enqueue_command(&cmd, 10).await.unwrap().id);
    }
    let takers: Vec<_> = (0..2)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move {
                let mut got = Vec::new();
                for round in 0..20 {
                    let taken = store
                        .take_pending_commands("s1", false, 20 + round)
                        .await
                        .unwrap();
                    got.extend(taken.into_iter().map(|c| c.id));
                }
                got
            })
        })
        .collect();
    let mut delivered = Vec::new();
    for t in takers {
        delivered.extend(t.await.unwrap());
    }
    let unique: HashSet<_> = delivered.iter().cloned().collect();
    assert_eq!(
        unique.len(),
        delivered.len(),
        "a command was delivered twice"
    );
    assert_eq!(unique, queued);
    // Every command went through `delivered` exactly once.
    let transitions: i64 =
        sqlx::query_scalar("SELECT count(*) FROM command_transitions WHERE state = 'delivered'")
            .fetch_one(store.pool())
            .await
            .unwrap();
    assert_eq!(transitions, 60);
}

#[tokio::test]
async fn a_lost_connection_is_a_db_error_and_the_next_call_reconnects() {
    let db = PgTestDb::new().await;
    let store = db.store().await;
    store.insert_events("s1", &[event("a", 1)]).await.unwrap();
    // What a PostgreSQL restart does to the pool's connections: every one of them is gone.
    let mut conn = admin().await;
    sqlx::query(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
         WHERE datname = $1 AND pid <> pg_backend_pid()",
    )
    .bind(&db.name)
    .execute(&mut conn)
    .await
    .unwrap();
    // A call either fails with a database error or finds a fresh connection; never a panic,
    // never a dead store.
    for _ in 0..3 {
        match store.events_after(0, 10).await {
            Ok(page) => assert_eq!(page.events.len(), 1),
            Err(StoreError::Db(_)) => {}
            Err(other) => panic!("unexpected error kind: {other}"),
        }
    }
    let out = store.insert_events("s1", &[event("b", 2)]).await.unwrap();
    assert_eq!(out.stored, 1);
    assert_eq!(store.events_after(0, 10).await.unwrap().events.len(), 2);
}

#[tokio::test]
async fn a_server_that_cannot_be_reached_is_a_db_error() {
    let err = PgStore::open("postgres://postgres@127.0.0.1:1/none")
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Db(_)), "{err}");
}

/// Measures the group insert (run with `--run-ignored only`; prints events/s). Not a pass/fail
/// test: the figure depends on the machine.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement, run on demand"]
async fn bulk_insert_rate() {
    const GROUPS: usize = 40;
    const PER_GROUP: usize = 5_000;
    let db = PgTestDb::new().await;
    let store = db.store().await;
    let now = vigil_ocsf::now_ms();
    let groups: Vec<Vec<(String, Vec<RawEvent>)>> = (0..GROUPS)
        .map(|g| {
            (0..10)
                .map(|s| {
                    let batch = (0..PER_GROUP / 10)
                        .map(|i| {
                            let ev = vigil_ocsf::Event::from_value(json!({
                                "class_uid": 1007, "activity_id": 1, "time": now + i64::try_from(i).unwrap(),
                                "metadata": {"uid": format!("g{g}-s{s}-{i}"), "version": "1.8.0"},
                                "device": {"uid": format!("s{s}"), "hostname": "web-01"},
                                "process": {"pid": i, "cmd_line": "/usr/bin/python3 -m http.server 8080",
                                    "file": {"path": "/usr/bin/python3", "name": "python3"},
                                    "user": {"name": "www-data", "uid": 33}},
                                "actor": {"process": {"pid": 1, "file": {"path": "/usr/lib/systemd/systemd"}}}
                            }))
                            .unwrap();
                            RawEvent::from_event(&ev)
                        })
                        .collect();
                    (format!("s{s}"), batch)
                })
                .collect()
        })
        .collect();
    let bytes: usize = groups[0]
        .iter()
        .flat_map(|(_, b)| b.iter().map(|e| e.json.len()))
        .sum();
    let started = std::time::Instant::now();
    for group in groups {
        store.insert_event_batches(group).await.unwrap();
    }
    let secs = started.elapsed().as_secs_f64();
    let n = GROUPS * PER_GROUP;
    eprintln!(
        "inserted {n} events ({} bytes each) in {secs:.2} s: {:.0} events/s",
        bytes / PER_GROUP,
        n as f64 / secs
    );
}
