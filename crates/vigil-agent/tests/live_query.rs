//! Live query on this host: the tables answer with what the test started, and the limits hold
//! (read-only, one statement, deadline, row cap, path-constrained file tables).

use std::net::TcpListener;
use std::process::Command;
use std::time::Duration;

use serde_json::json;
use vigil_agent::query::{self, QueryError};

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    if !root {
        eprintln!("skipping live_query tests: they read every process's /proc entries (root)");
    }
    root
}

const T: Duration = Duration::from_secs(10);

#[tokio::test]
async fn a_query_finds_the_process_and_socket_the_test_started() {
    if !is_root() {
        return;
    }
    let mut child = Command::new("/bin/sleep").arg("30").spawn().unwrap();
    let pid = child.id();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();

    let r = query::run(
        &format!("SELECT pid, ppid, name, path FROM processes WHERE pid = {pid}"),
        T,
        query::MAX_ROWS,
    )
    .await
    .unwrap();
    assert_eq!(r.columns, ["pid", "ppid", "name", "path"]);
    assert_eq!(r.rows.len(), 1, "{:?}", r.rows);
    assert_eq!(r.rows[0][0], json!(pid));
    assert_eq!(r.rows[0][1], json!(std::process::id()));
    assert_eq!(r.rows[0][2], json!("sleep"));

    let r = query::run(
        &format!(
            "SELECT l.pid, p.name FROM listening_ports l JOIN processes p USING (pid) \
             WHERE l.port = {port} AND l.protocol = 'tcp'"
        ),
        T,
        query::MAX_ROWS,
    )
    .await
    .unwrap();
    assert_eq!(r.rows.len(), 1, "{:?}", r.rows);
    assert_eq!(r.rows[0][0], json!(std::process::id()));

    let users = query::run("SELECT username FROM users WHERE uid = 0", T, 10)
        .await
        .unwrap();
    assert_eq!(users.rows, [vec![json!("root")]]);
    let modules = query::run("SELECT count(*) FROM kernel_modules", T, 10).await;
    assert!(modules.is_ok(), "{modules:?}");

    drop(listener);
    let _ = child.kill();
    let _ = child.wait();
}

#[tokio::test]
async fn file_and_hash_answer_for_the_paths_the_query_names() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("payload.bin");
    std::fs::write(&file, b"vigil").unwrap();
    let expected = {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(b"vigil"))
    };
    let r = query::run(
        &format!(
            "SELECT sha256, size FROM hash WHERE path = '{}'",
            file.display()
        ),
        T,
        10,
    )
    .await
    .unwrap();
    assert_eq!(r.rows, [vec![json!(expected), json!(5)]]);
    let r = query::run(
        &format!(
            "SELECT filename, type FROM file WHERE directory = '{}'",
            dir.path().display()
        ),
        T,
        10,
    )
    .await
    .unwrap();
    assert_eq!(r.rows, [vec![json!("payload.bin"), json!("regular")]]);
    let err = query::run("SELECT * FROM file", T, 10).await.unwrap_err();
    assert!(
        matches!(err, QueryError::Refused(ref m) if m.contains("where to look")),
        "{err}"
    );
}

#[tokio::test]
async fn writes_are_refused_long_queries_stopped_and_rows_capped() {
    for sql in [
        "DELETE FROM processes",
        "WITH x AS (SELECT 1) DELETE FROM processes",
        "SELECT 1; DROP TABLE processes",
        "ATTACH DATABASE '/tmp/vigil-x.db' AS x",
    ] {
        let err = query::run(sql, T, 10).await.unwrap_err();
        assert!(matches!(err, QueryError::Refused(_)), "{sql}: {err}");
    }
    let started = std::time::Instant::now();
    let err = query::run(
        "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c",
        Duration::from_millis(300),
        10,
    )
    .await
    .unwrap_err();
    assert!(matches!(err, QueryError::Timeout(_)), "{err}");
    assert!(err.to_string().contains("was stopped"), "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "stopped near its deadline"
    );
    let r = query::run("SELECT column1 FROM (VALUES (1), (2), (3))", T, 2)
        .await
        .unwrap();
    assert_eq!(r.rows.len(), 2);
    assert!(r.truncated);
    let err = query::run("SELECT nope FROM processes", T, 10)
        .await
        .unwrap_err();
    assert!(matches!(err, QueryError::Sql(_)), "{err}");
}
