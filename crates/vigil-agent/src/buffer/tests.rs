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

fn result(id: &str, json: Vec<u8>) -> vigil_proto::fleet::CommandResult {
    vigil_proto::fleet::CommandResult {
        id: id.into(),
        succeeded: true,
        result_json: json,
        time: 7,
        ..Default::default()
    }
}

/// All priority items, batch by batch as the link reads them, acking each batch.
async fn drain_priority(buf: &Buffer) -> Vec<Vec<super::PriorityItem>> {
    let mut batches = Vec::new();
    loop {
        let items = buf.read_priority_after(0, 1000).await.unwrap();
        let (Some(&(first, _)), Some(&(last, _))) = (items.first(), items.last()) else {
            return batches;
        };
        buf.ack_priority(first, last).await.unwrap();
        batches.push(items.into_iter().map(|(_, i)| i).collect());
    }
}

#[tokio::test]
async fn a_large_result_goes_in_parts_that_join_to_the_whole() {
    let dir = tempfile::tempdir().unwrap();
    let buf = Buffer::open(dir.path(), 100)
        .await
        .unwrap()
        .with_result_part_bytes(1000);
    let whole: Vec<u8> = (0..3500u32).map(|i| b'a' + (i % 26) as u8).collect();
    buf.record_result(&result("big", whole.clone()))
        .await
        .unwrap();
    buf.record_result(&result("small", b"{}".to_vec()))
        .await
        .unwrap();
    assert_eq!(buf.priority_len(), 5, "four parts and one whole result");
    buf.close().await;

    // The parts survive a restart, and so does the recorded whole.
    let buf = Buffer::open(dir.path(), 100).await.unwrap();
    assert_eq!(
        buf.executed("big").await.unwrap().unwrap().result_json,
        whole
    );
    let items: Vec<_> = drain_priority(&buf).await.into_iter().flatten().collect();
    let mut joined = Vec::new();
    for (i, item) in items.iter().take(4).enumerate() {
        let super::PriorityItem::Result(r) = item else {
            panic!("a result part");
        };
        assert_eq!((r.id.as_str(), r.part, r.parts), ("big", i as u32, 4));
        assert!(r.succeeded && r.result_json.len() <= 1000);
        joined.extend_from_slice(&r.result_json);
    }
    assert_eq!(joined, whole);
    let super::PriorityItem::Result(r) = &items[4] else {
        panic!("the small result");
    };
    assert_eq!((r.part, r.parts, &r.result_json[..]), (0, 0, &b"{}"[..]));
    assert_eq!(buf.priority_len(), 0);
}

#[tokio::test]
async fn priority_batches_stay_under_the_byte_bound() {
    let dir = tempfile::tempdir().unwrap();
    let buf = Buffer::open(dir.path(), 100).await.unwrap();
    let part = vigil_proto::RESULT_PART_BYTES;
    // Five parts of 1 MiB: batches of at most two (the 2 MiB bound), never one over it.
    let whole = vec![b'x'; 5 * part];
    buf.record_result(&result("big", whole)).await.unwrap();
    let batches = drain_priority(&buf).await;
    let sizes: Vec<usize> = batches.iter().map(Vec::len).collect();
    assert_eq!(sizes, [2, 2, 1]);
    for batch in &batches {
        let bytes: usize = batch
            .iter()
            .map(|i| match i {
                super::PriorityItem::Result(r) => r.result_json.len(),
                super::PriorityItem::Finding(f) => f.ocsf_json.len(),
            })
            .sum();
        assert!(bytes <= vigil_proto::PRIORITY_BATCH_BYTES, "{bytes}");
    }
}
