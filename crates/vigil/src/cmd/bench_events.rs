//! The bench's synthetic events: what `vigil bench fleet`'s agents send.

use vigil_proto::fleet::Event as WireEvent;

/// One synthetic Process Activity event. Written straight as text (the bench shares the
/// machine with the server, so its own cost must stay small); the same document as the OCSF
/// types would produce, with a time-ordered UUIDv7 id as Vigil's sensor gives every event.
/// (`VIGIL_BENCH_SCATTERED_IDS=1`: ids that sort by agent instead, `<sensor>-<seq>-<k>`, as a
/// third-party sensor might send, which spreads each group commit over the whole id index.)
pub(super) fn synthetic(sensor: &str, seq: u64, k: usize, scattered: bool) -> WireEvent {
    use std::fmt::Write as _;
    let uid = if scattered {
        format!("{sensor}-{seq}-{k}")
    } else {
        uuid::Uuid::now_v7().to_string()
    };
    let time = vigil_ocsf::now_ms();
    let mut doc = String::with_capacity(480);
    let _ = write!(
        doc,
        concat!(
            r#"{{"class_uid":1007,"activity_id":1,"category_uid":1,"type_uid":100701,"#,
            r#""time":{time},"metadata":{{"uid":"{uid}","version":"1.8.0"}},"#,
            r#""process":{{"pid":{pid},"cmd_line":"/usr/bin/python3 worker.py --job {seq}","#,
            r#""file":{{"path":"/usr/bin/python3","name":"python3"}},"#,
            r#""user":{{"uid":"1000","name":"app"}}}},"#,
            r#""actor":{{"process":{{"pid":999,"cmd_line":"/bin/bash ./run.sh","#,
            r#""file":{{"path":"/usr/bin/bash"}}}}}}}}"#
        ),
        time = time,
        uid = uid,
        pid = 1000 + k,
        seq = seq
    );
    WireEvent {
        uid,
        class_uid: 1007,
        time,
        ocsf_json: doc.into_bytes(),
    }
}

/// A marker event: `cat /etc/shadow`, which [`MARKER_RULE`] flags; its id carries its
/// creation time.
pub(super) fn marker(sensor: &str, seq: u64) -> WireEvent {
    let time = vigil_ocsf::now_ms();
    let uid = format!("mark-{time}-{sensor}-{seq}");
    let doc = format!(
        concat!(
            r#"{{"class_uid":1007,"activity_id":1,"category_uid":1,"type_uid":100701,"#,
            r#""time":{time},"metadata":{{"uid":"{uid}","version":"1.8.0"}},"#,
            r#""process":{{"pid":4242,"cmd_line":"cat /etc/shadow","#,
            r#""file":{{"path":"/usr/bin/cat","name":"cat"}}}}}}"#
        ),
        time = time,
        uid = uid
    );
    WireEvent {
        uid,
        class_uid: 1007,
        time,
        ocsf_json: doc.into_bytes(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn synthetic_events_are_valid_ocsf() {
        for scattered in [false, true] {
            let wire = synthetic("s", 7, 3, scattered);
            check_synthetic(&wire);
        }
        assert_ne!(
            synthetic("s", 7, 3, false).uid,
            synthetic("s", 7, 3, false).uid
        );
    }

    fn check_synthetic(wire: &WireEvent) {
        let ev = vigil_ocsf::Event::from_json(&wire.ocsf_json).unwrap();
        assert_eq!(ev.uid, wire.uid);
        assert_eq!(ev.class_uid, 1007);
        assert_eq!(ev.time, wire.time);
        assert_eq!(
            ev.get("process.cmd_line").and_then(|v| v.as_str()),
            Some("/usr/bin/python3 worker.py --job 7")
        );
        assert_eq!(
            ev.get("actor.process.file.path").and_then(|v| v.as_str()),
            Some("/usr/bin/bash")
        );
    }
}
