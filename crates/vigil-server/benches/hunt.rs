//! Hunting over a large event log: seeds N stored events (default 1,000,000; `VIGIL_BENCH_EVENTS`)
//! of a realistic mix, lets the hunting indexer catch up, then times searches by hash, name,
//! IP, command-line substring and a combination, each repeated.
//!
//! `cargo bench -p vigil-server --bench hunt`

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use vigil_ocsf::Event;
use vigil_server::hunt::HuntIndexer;
use vigil_server::store::sqlite::SqliteStore;
use vigil_server::store::{HuntQuery, Store};

fn event(i: u64) -> Event {
    let t = 1_700_000_000_000 + i64::try_from(i).unwrap_or(0);
    if i % 4 == 3 {
        Event::from_value(json!({"class_uid": 4001, "activity_id": 1, "time": t,
            "metadata": {"uid": format!("n{i}")},
            "src_endpoint": {"ip": format!("10.{}.{}.{}", i % 7, i % 251, i % 13), "port": 40000 + i % 20000},
            "dst_endpoint": {"ip": format!("192.0.2.{}", (i / 4) % 200), "port": 443}}))
        .unwrap()
    } else {
        let user = ["root", "alice", "bob"][(i % 3) as usize];
        let bin = [
            "bash", "curl", "python3", "ls", "cat", "sshd", "cron", "kworkerd",
        ][((i / 4) % 8) as usize];
        Event::from_value(json!({"class_uid": 1007, "activity_id": 1, "time": t,
            "metadata": {"uid": format!("p{i}")},
            "process": {"pid": i % 65536, "cmd_line": format!("/usr/bin/{bin} --job {i} --opt value{}", i % 977),
                "file": {"path": format!("/usr/bin/{bin}"), "name": bin,
                    "hashes": [{"algorithm_id": 3, "algorithm": "SHA-256", "value": format!("{:064x}", i % 5000)}]},
                "user": {"name": user}}}))
        .unwrap()
    }
}

fn time<F: std::future::Future<Output = usize>>(
    rt: &tokio::runtime::Runtime,
    what: &str,
    runs: usize,
    mut f: impl FnMut() -> F,
) {
    let mut samples = Vec::with_capacity(runs);
    let mut found = 0;
    for _ in 0..runs {
        let start = Instant::now();
        found = rt.block_on(f());
        samples.push(start.elapsed());
    }
    samples.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    println!(
        "{what}: {found} events, p50 {:.1} ms, max {:.1} ms over {runs} runs",
        ms(samples[runs / 2]),
        ms(samples[runs - 1])
    );
}

fn main() {
    let n: u64 = std::env::var("VIGIL_BENCH_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> = Arc::new(rt.block_on(SqliteStore::open(dir.path())).unwrap());
    let start = Instant::now();
    let mut i = 0;
    while i < n {
        let batch: Vec<Event> = (i..(i + 10_000).min(n)).map(event).collect();
        rt.block_on(store.insert_events("bench", &batch)).unwrap();
        i += 10_000;
    }
    println!(
        "seeded {n} events in {:.1} s",
        start.elapsed().as_secs_f64()
    );
    let start = Instant::now();
    rt.block_on(
        HuntIndexer::new(
            Arc::clone(&store),
            Arc::new(vigil_server::bus::InProcessBus::new()),
        )
        .drain(),
    )
    .unwrap();
    println!("indexed in {:.1} s", start.elapsed().as_secs_f64());
    let q = |terms: Vec<(&str, &str)>, cmd: Option<&str>| HuntQuery {
        terms: terms
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect(),
        cmd_line: cmd.map(str::to_owned),
        since: None,
        until: None,
        limit: 100,
    };
    let hash = format!("{:064x}", 4242);
    let runs = 20;
    let cases = [
        ("hash", q(vec![("hash", hash.as_str())], None)),
        ("name", q(vec![("name", "kworkerd")], None)),
        ("ip", q(vec![("ip", "192.0.2.17")], None)),
        ("cmdline substring", q(vec![], Some("--opt value123"))),
        (
            "user and name",
            q(vec![("user", "alice"), ("name", "curl")], None),
        ),
    ];
    for (what, query) in cases {
        time(&rt, what, runs, || {
            let store = Arc::clone(&store);
            let query = query.clone();
            async move { store.hunt(&query).await.unwrap().len() }
        });
    }
}
