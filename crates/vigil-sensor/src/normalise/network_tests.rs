use vigil_ocsf::Process;

use super::*;

fn transition(old: TcpState, new: TcpState, sk_err: i32) -> TcpChange {
    TcpChange::Transition { old, new, sk_err }
}

fn activity(change: TcpChange) -> Option<(NetworkActivityId, Option<StatusId>)> {
    classify(&change).map(|c| (c.activity, c.status))
}

#[test]
fn transitions_map_to_the_ocsf_activities() {
    use NetworkActivityId as A;
    use TcpState as S;
    let cases = [
        (transition(S::Close, S::Listen, 0), Some((A::Listen, None))),
        (transition(S::Listen, S::Close, 0), Some((A::Close, None))),
        (transition(S::Close, S::SynSent, 0), Some((A::Open, None))),
        (
            transition(S::SynSent, S::Established, 0),
            Some((A::Open, Some(StatusId::Success))),
        ),
        (transition(S::Listen, S::SynRecv, 0), Some((A::Open, None))),
        (
            transition(S::SynRecv, S::Established, 0),
            Some((A::Open, Some(StatusId::Success))),
        ),
        (
            transition(S::SynSent, S::Close, 111),
            Some((A::Refuse, Some(StatusId::Failure))),
        ),
        (
            transition(S::SynSent, S::Close, 110),
            Some((A::Fail, Some(StatusId::Failure))),
        ),
        (
            transition(S::SynSent, S::Close, 0),
            Some((A::Fail, Some(StatusId::Failure))),
        ),
        (
            transition(S::Established, S::Close, 0),
            Some((A::Close, None)),
        ),
        (transition(S::FinWait2, S::Close, 0), Some((A::Close, None))),
        (transition(S::LastAck, S::Close, 0), Some((A::Close, None))),
        (transition(S::Established, S::FinWait1, 0), None),
        (transition(S::Close, S::Close, 0), None),
        (
            TcpChange::NoSocketReset {
                reason: 1,
                tcp_flags: Some(0x02),
            },
            Some((A::Refuse, Some(StatusId::Failure))),
        ),
        (TcpChange::Listening, Some((A::Listen, None))),
        (
            TcpChange::Connected,
            Some((A::Open, Some(StatusId::Success))),
        ),
        (TcpChange::Disconnected, Some((A::Close, None))),
    ];
    for (change, expected) in cases {
        assert_eq!(activity(change), expected, "{change:?}");
    }
    let refused = classify(&transition(S::SynSent, S::Close, 111));
    assert_eq!(
        refused.and_then(|c| c.status_code).as_deref(),
        Some("ECONNREFUSED")
    );
    let timeout = classify(&transition(S::SynSent, S::Close, 110));
    assert_eq!(
        timeout.and_then(|c| c.status_code).as_deref(),
        Some("ETIMEDOUT")
    );
}

#[test]
fn states_and_reasons_have_kernel_names() {
    assert_eq!(TcpState::from_u8(3).map(TcpState::name), Some("SYN_RECV"));
    assert_eq!(TcpState::from_u8(12), Some(TcpState::NewSynRecv));
    assert_eq!(TcpState::from_u8(0), None);
    assert_eq!(TcpState::from_u8(13), None);
    assert_eq!(reset_reason_name(1), "NO_SOCKET");
    assert_eq!(reset_reason_name(24), "ERROR");
    assert_eq!(reset_reason_name(25), "UNKNOWN");
}

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
}

fn event(obs: &TcpObservation, actor: Option<Actor>) -> Event {
    network_event(obs, actor, &Device::default(), SourceKind::Ebpf)
        .unwrap_or_else(|e| panic!("{e}"))
        .unwrap_or_else(|| panic!("not reported"))
}

fn s(ev: &Event, path: &str) -> Option<String> {
    ev.get(path).and_then(|v| v.as_str()).map(str::to_owned)
}

fn n(ev: &Event, path: &str) -> Option<u64> {
    ev.get(path).and_then(|v| v.as_u64())
}

#[test]
fn inbound_events_put_the_remote_peer_in_src() {
    let obs = TcpObservation {
        time_ms: 1,
        change: transition(TcpState::Listen, TcpState::SynRecv, 0),
        direction: Direction::Inbound,
        local: addr("10.251.3.1:8080"),
        remote: Some(addr("10.251.3.2:50000")),
        netns: Some(4026531840),
        owner: None,
    };
    let ev = event(&obs, None);
    assert_eq!(ev.class_uid, 4001);
    assert_eq!(n(&ev, "type_uid"), Some(400101));
    assert_eq!(s(&ev, "src_endpoint.ip").as_deref(), Some("10.251.3.2"));
    assert_eq!(n(&ev, "src_endpoint.port"), Some(50000));
    assert_eq!(s(&ev, "dst_endpoint.ip").as_deref(), Some("10.251.3.1"));
    assert_eq!(n(&ev, "dst_endpoint.port"), Some(8080));
    assert_eq!(n(&ev, "connection_info.direction_id"), Some(1));
    assert_eq!(
        s(&ev, "connection_info.direction").as_deref(),
        Some("Inbound")
    );
    assert_eq!(n(&ev, "connection_info.protocol_num"), Some(6));
    assert_eq!(n(&ev, "connection_info.protocol_ver_id"), Some(4));
    assert_eq!(s(&ev, "unmapped.initiated").as_deref(), Some("false"));
    assert_eq!(s(&ev, "unmapped.tcp_state").as_deref(), Some("SYN_RECV"));
    assert_eq!(s(&ev, "unmapped.tcp_old_state").as_deref(), Some("LISTEN"));
    assert_eq!(s(&ev, "unmapped.source_is_ipv6").as_deref(), Some("false"));
    assert_eq!(n(&ev, "unmapped.netns"), Some(4026531840));
    assert!(ev.get("actor").is_none(), "no owner, no actor");
    assert_eq!(
        ev.get("is_src_dst_assignment_known")
            .and_then(|v| v.as_bool()),
        Some(true)
    );
}

#[test]
fn outbound_attempt_without_a_port_yet_and_with_an_actor() {
    let obs = TcpObservation {
        time_ms: 1,
        change: transition(TcpState::Close, TcpState::SynSent, 0),
        direction: Direction::Outbound,
        local: addr("[::ffff:127.0.0.1]:0"),
        remote: Some(addr("[::ffff:127.0.0.1]:9")),
        netns: None,
        owner: None,
    };
    let actor = Actor {
        process: Some(Process {
            pid: 3,
            name: "nc".into(),
            ..Default::default()
        }),
        user: None,
    };
    let ev = event(&obs, Some(actor));
    assert_eq!(
        s(&ev, "src_endpoint.ip").as_deref(),
        Some("127.0.0.1"),
        "v4-mapped → v4"
    );
    assert!(ev.get("src_endpoint.port").is_none(), "port not chosen yet");
    assert_eq!(n(&ev, "dst_endpoint.port"), Some(9));
    assert_eq!(n(&ev, "connection_info.protocol_ver_id"), Some(4));
    assert_eq!(s(&ev, "unmapped.initiated").as_deref(), Some("true"));
    assert_eq!(s(&ev, "actor.process.name").as_deref(), Some("nc"));
}

#[test]
fn listen_has_only_a_destination_and_reset_carries_flags() {
    let listen = TcpObservation {
        time_ms: 1,
        change: transition(TcpState::Close, TcpState::Listen, 0),
        direction: Direction::Inbound,
        local: addr("[::]:22"),
        remote: Some(addr("[::]:0")),
        netns: None,
        owner: None,
    };
    let ev = event(&listen, None);
    assert_eq!(n(&ev, "activity_id"), Some(7));
    assert_eq!(s(&ev, "activity_name").as_deref(), Some("Listen"));
    assert!(ev.get("src_endpoint").is_none());
    assert_eq!(s(&ev, "dst_endpoint.ip").as_deref(), Some("::"));
    assert_eq!(n(&ev, "connection_info.protocol_ver_id"), Some(6));
    assert_eq!(
        s(&ev, "unmapped.destination_is_ipv6").as_deref(),
        Some("true")
    );

    let reset = TcpObservation {
        change: TcpChange::NoSocketReset {
            reason: 1,
            tcp_flags: Some(0x02),
        },
        local: addr("127.0.0.1:1"),
        remote: Some(addr("127.0.0.1:40000")),
        ..listen
    };
    let ev = event(&reset, None);
    assert_eq!(n(&ev, "activity_id"), Some(5));
    assert_eq!(n(&ev, "connection_info.tcp_flags"), Some(2));
    assert_eq!(s(&ev, "status_code").as_deref(), Some("NO_SOCKET"));
    assert_eq!(
        s(&ev, "unmapped.tcp_reset_reason").as_deref(),
        Some("NO_SOCKET")
    );
    assert_eq!(n(&ev, "src_endpoint.port"), Some(40000));
    assert_eq!(n(&ev, "dst_endpoint.port"), Some(1));
    assert_eq!(
        s(&ev, "status_detail").as_deref(),
        Some("SYN to a closed port answered with RST")
    );
}

#[test]
fn unknown_direction_is_local_first_and_says_so() {
    let obs = TcpObservation {
        time_ms: 1,
        change: transition(TcpState::Established, TcpState::Close, 0),
        direction: Direction::Unknown,
        local: addr("10.0.0.1:22"),
        remote: Some(addr("10.0.0.2:5000")),
        netns: None,
        owner: None,
    };
    let ev = event(&obs, None);
    assert_eq!(n(&ev, "src_endpoint.port"), Some(22));
    assert!(ev.get("unmapped.initiated").is_none());
    assert_eq!(
        ev.get("is_src_dst_assignment_known")
            .and_then(|v| v.as_bool()),
        Some(false)
    );
    let ignored = TcpObservation {
        change: transition(TcpState::Established, TcpState::CloseWait, 0),
        ..obs
    };
    let none = network_event(&ignored, None, &Device::default(), SourceKind::Ebpf);
    assert!(matches!(none, Ok(None)));
}
