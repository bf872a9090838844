use serde_json::json;
use vigil_ocsf::Event;

use super::Buffer;

fn ev(uid: &str) -> Event {
    Event::from_value(json!({"class_uid": 1007, "time": 1, "metadata": {"uid": uid}})).unwrap()
}

#[tokio::test]
async fn events_survive_reopen_until_acked() {
    let dir = tempfile::tempdir().unwrap();
    {
        let buf = Buffer::open(dir.path(), 100).await.unwrap();
        buf.push(&[ev("a"), ev("b"), ev("c")]).await.unwrap();
        let rows = buf.read_after(0, 2).await.unwrap();
        assert_eq!(rows.len(), 2);
        buf.ack(rows[0].seq, rows[1].seq).await.unwrap();
        assert_eq!(buf.len(), 1);
        buf.close().await;
    }
    let buf = Buffer::open(dir.path(), 100).await.unwrap();
    assert_eq!(buf.len(), 1);
    let rows = buf.read_after(0, 10).await.unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].event.uid, "c");
    let doc: serde_json::Value = serde_json::from_slice(&rows[0].event.ocsf_json).unwrap();
    assert_eq!(doc["metadata"]["uid"], "c");
}

#[tokio::test]
async fn full_buffer_evicts_oldest_first_and_counts() {
    let dir = tempfile::tempdir().unwrap();
    let buf = Buffer::open(dir.path(), 3).await.unwrap();
    buf.push(&[ev("1"), ev("2")]).await.unwrap();
    buf.push(&[ev("3"), ev("4"), ev("5")]).await.unwrap();
    assert_eq!(buf.len(), 3);
    assert_eq!(buf.evicted(), 2);
    let uids: Vec<_> = buf
        .read_after(0, 10)
        .await
        .unwrap()
        .into_iter()
        .map(|b| b.event.uid)
        .collect();
    assert_eq!(uids, ["3", "4", "5"]);
    buf.close().await;
    let buf = Buffer::open(dir.path(), 3).await.unwrap();
    assert_eq!(buf.evicted(), 2, "the eviction count survives a restart");
}

/// Stress check for the length counter under interleaved pushes and acks. The bug it guards
/// (push overwrote the length computed before its transaction, losing concurrent acks) was
/// reproduced by `fleet_crash` (about one run in three); this test rarely hits the window.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn length_stays_exact_when_pushes_and_acks_interleave() {
    let dir = tempfile::tempdir().unwrap();
    let buf = std::sync::Arc::new(Buffer::open(dir.path(), 1_000_000).await.unwrap());
    let pusher = {
        let buf = std::sync::Arc::clone(&buf);
        tokio::spawn(async move {
            for round in 0..200 {
                let batch: Vec<_> = (0..20).map(|i| ev(&format!("{round}-{i}"))).collect();
                buf.push(&batch).await.unwrap();
            }
        })
    };
    let mut acked = 0;
    while acked < 4000 {
        let rows = buf.read_after(0, 50).await.unwrap();
        if let (Some(first), Some(last)) = (rows.first(), rows.last()) {
            buf.ack(first.seq, last.seq).await.unwrap();
            acked += rows.len();
        } else {
            tokio::task::yield_now().await;
        }
    }
    pusher.await.unwrap();
    assert_eq!(buf.len(), 0);
    assert!(buf.read_after(0, 10).await.unwrap().is_empty());
}
