use vigil_ocsf::{ProcessEntity, User};

use super::*;
use crate::enrich::KnownProcess;

fn task() -> TaskFacts {
    TaskFacts {
        pid: 4400,
        tid: Some(4400),
        ppid: Some(4321),
        start_ticks: Some(98_765),
        created_ms: Some(1_700_000_000_100),
        parent_start_ticks: Some(12_345),
        ids: Some(Ids {
            uid: 1000,
            euid: 0,
            gid: 1000,
            egid: 0,
        }),
        auid: Some(1000),
        sessionid: Some(7),
        tty: Some("pts/1".into()),
        comm: "curl".into(),
    }
}

fn observation() -> ExecObservation {
    ExecObservation {
        time_ms: 1_700_000_000_123,
        task: task(),
        exe: Some("/usr/bin/curl".into()),
        cmd_line: Some("curl -s http://x".into()),
        argv: vec!["curl".into(), "-s".into(), "http://x".into()],
    }
}

fn enrichment() -> Enrichment {
    Enrichment {
        user: Some(User {
            name: Some("alice".into()),
            uid: "1000".into(),
            type_id: 1,
        }),
        parent: Some(Process {
            pid: 4321,
            name: "bash".into(),
            cmd_line: Some("-bash".into()),
            file: Some(File::regular("/usr/bin/bash")),
            ..Default::default()
        }),
        ancestry: vec![ProcessEntity {
            pid: 4321,
            name: "bash".into(),
            ..Default::default()
        }],
        image: None,
        exe_sha256: None,
    }
}

fn s(ev: &Event, path: &str) -> Option<String> {
    ev.get(path).and_then(|v| v.as_str()).map(str::to_owned)
}

fn n(ev: &Event, path: &str) -> Option<u64> {
    ev.get(path).and_then(|v| v.as_u64())
}

#[test]
fn launch_event_carries_process_parent_session_and_source() {
    let ev = launch_event(
        &observation(),
        enrichment(),
        &Device::default(),
        SourceKind::Ebpf,
    )
    .unwrap_or_else(|e| panic!("event: {e}"));
    assert_eq!(ev.class_uid, 1007);
    assert_eq!(ev.time, 1_700_000_000_123);
    assert_eq!(n(&ev, "activity_id"), Some(1));
    assert_eq!(n(&ev, "launch_type_id"), Some(3));
    assert_eq!(s(&ev, "launch_type").as_deref(), Some("Exec"));
    assert_eq!(s(&ev, "metadata.log_name").as_deref(), Some("ebpf"));
    assert_eq!(s(&ev, "process.uid").as_deref(), Some("4400-98765"));
    assert_eq!(s(&ev, "process.name").as_deref(), Some("curl"));
    assert_eq!(
        s(&ev, "process.file.path").as_deref(),
        Some("/usr/bin/curl")
    );
    assert_eq!(s(&ev, "process.user.name").as_deref(), Some("alice"));
    assert_eq!(n(&ev, "process.euid"), Some(0));
    assert_eq!(n(&ev, "process.auid"), Some(1000));
    assert_eq!(n(&ev, "process.tid"), Some(4400));
    assert_eq!(s(&ev, "process.session.uid").as_deref(), Some("7"));
    assert_eq!(s(&ev, "process.session.terminal").as_deref(), Some("pts/1"));
    assert_eq!(
        s(&ev, "process.parent_process.cmd_line").as_deref(),
        Some("-bash")
    );
    assert_eq!(
        s(&ev, "actor.process.file.path").as_deref(),
        Some("/usr/bin/bash")
    );
    let ancestry = ev.get("process.ancestry").and_then(|v| v.as_array());
    assert_eq!(ancestry.map(Vec::len), Some(1));
}

#[test]
fn fork_event_describes_the_child_by_its_inherited_image() {
    let mut e = enrichment();
    e.image = Some(KnownProcess {
        name: "bash".into(),
        exe: Some("/usr/bin/bash".into()),
        cmd_line: Some("bash -c x".into()),
        start_ticks: Some(12_345),
        ppid: Some(1),
        uid: Some(0),
        forked: true,
    });
    let obs = ForkObservation {
        time_ms: 5,
        task: task(),
    };
    let ev = fork_event(&obs, e, &Device::default(), SourceKind::ProcConnector)
        .unwrap_or_else(|e| panic!("event: {e}"));
    assert_eq!(n(&ev, "activity_id"), Some(1));
    assert_eq!(n(&ev, "launch_type_id"), Some(2));
    assert_eq!(s(&ev, "launch_type").as_deref(), Some("Fork"));
    assert_eq!(s(&ev, "process.name").as_deref(), Some("bash"));
    assert_eq!(s(&ev, "process.cmd_line").as_deref(), Some("bash -c x"));
    assert_eq!(
        s(&ev, "process.file.path").as_deref(),
        Some("/usr/bin/bash")
    );
    assert_eq!(s(&ev, "process.uid").as_deref(), Some("4400-98765"));
}

#[test]
fn exit_event_reports_code_signal_and_end_time() {
    let obs = ExitObservation {
        time_ms: 9,
        task: task(),
        status: ExitStatus::from_wait_status(9),
    };
    let ev = exit_event(
        &obs,
        Enrichment::default(),
        &Device::default(),
        SourceKind::Ebpf,
    )
    .unwrap_or_else(|e| panic!("event: {e}"));
    assert_eq!(n(&ev, "activity_id"), Some(2));
    assert_eq!(n(&ev, "type_uid"), Some(100702));
    assert!(ev.get("launch_type_id").is_none());
    assert_eq!(n(&ev, "exit_code"), Some(137));
    assert_eq!(n(&ev, "unmapped.signal"), Some(9));
    assert_eq!(s(&ev, "unmapped.signal_name").as_deref(), Some("SIGKILL"));
    assert_eq!(n(&ev, "process.terminated_time"), Some(9));
    assert_eq!(s(&ev, "process.name").as_deref(), Some("curl"), "comm");
}

#[test]
fn name_falls_back_to_comm_and_strips_deleted() {
    assert_eq!(image_name(Some("/tmp/x (deleted)"), "curl"), "x");
    assert_eq!(image_name(None, "curl"), "curl");
    assert_eq!(image_name(Some(""), "curl"), "curl");
}
