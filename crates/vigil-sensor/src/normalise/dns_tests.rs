use std::net::Ipv4Addr;

use simple_dns::rdata::{A, CNAME, MX, TXT};
use simple_dns::{CLASS, Name, PacketFlag, Question, RCODE, TYPE};
use vigil_ocsf::schema::Schemas;

use super::*;

fn obs(message: Vec<u8>, src: &str, dst: &str) -> DnsObservation {
    DnsObservation {
        time_ms: 1_000,
        src: src.parse().unwrap(),
        dst: dst.parse().unwrap(),
        direction: Direction::Outbound,
        interface: Some("eth0".into()),
        message,
        owner: None,
        query_time_ms: Some(990),
    }
}

fn question(name: &str, qtype: TYPE) -> Question<'_> {
    Question::new(
        Name::new_unchecked(name),
        qtype.into(),
        CLASS::IN.into(),
        false,
    )
}

fn event(o: &DnsObservation) -> Event {
    let event = dns_event(o, None, &Device::default()).unwrap();
    let schemas = Schemas::linux_edr().unwrap();
    if let Err(problems) = schemas.check(&event) {
        panic!(
            "not valid OCSF: {problems:?}\n{}",
            String::from_utf8_lossy(&event.to_json())
        );
    }
    event
}

fn s(e: &Event, path: &str) -> Option<String> {
    e.get(path).and_then(|v| v.as_str()).map(str::to_owned)
}

fn n(e: &Event, path: &str) -> Option<u64> {
    e.get(path).and_then(|v| v.as_u64())
}

#[test]
fn a_query_names_the_question_and_the_client_as_source() {
    let mut packet = Packet::new_query(0x1234);
    packet.set_flags(PacketFlag::RECURSION_DESIRED);
    packet
        .questions
        .push(question("www.example.org", TYPE::AAAA));
    let e = event(&obs(
        packet.build_bytes_vec().unwrap(),
        "10.0.0.5:40000",
        "192.0.2.53:53",
    ));
    assert_eq!((e.class_uid, n(&e, "type_uid")), (4003, Some(400301)));
    assert_eq!(s(&e, "query.hostname").as_deref(), Some("www.example.org"));
    assert_eq!(s(&e, "query.type").as_deref(), Some("AAAA"));
    assert_eq!(s(&e, "query.class").as_deref(), Some("IN"));
    assert_eq!(n(&e, "query.packet_uid"), Some(0x1234));
    assert_eq!(s(&e, "query.opcode").as_deref(), Some("Query"));
    assert_eq!(s(&e, "src_endpoint.ip").as_deref(), Some("10.0.0.5"));
    assert_eq!(n(&e, "dst_endpoint.port"), Some(53));
    assert_eq!(
        s(&e, "connection_info.protocol_name").as_deref(),
        Some("udp")
    );
    assert!(e.get("rcode_id").is_none() && e.get("response_time").is_none());
}

#[test]
fn a_response_carries_answers_rcode_and_timing() {
    let mut packet = Packet::new_reply(7);
    packet.set_flags(PacketFlag::RECURSION_AVAILABLE | PacketFlag::AUTHORITATIVE_ANSWER);
    packet.questions.push(question("example.org", TYPE::A));
    let name = Name::new_unchecked("example.org");
    packet.answers.push(ResourceRecord::new(
        name.clone(),
        CLASS::IN,
        60,
        RData::CNAME(CNAME(Name::new_unchecked("edge.example.net"))),
    ));
    packet.answers.push(ResourceRecord::new(
        name.clone(),
        CLASS::IN,
        300,
        RData::A(A {
            address: u32::from(Ipv4Addr::new(192, 0, 2, 1)),
        }),
    ));
    packet.answers.push(ResourceRecord::new(
        name.clone(),
        CLASS::IN,
        300,
        RData::MX(MX {
            preference: 10,
            exchange: Name::new_unchecked("mx.example.org"),
        }),
    ));
    let txt: TXT<'_> = "v=spf1 -all".try_into().unwrap();
    packet
        .answers
        .push(ResourceRecord::new(name, CLASS::IN, 5, RData::TXT(txt)));
    let e = event(&obs(
        packet.build_bytes_vec().unwrap(),
        "192.0.2.53:53",
        "10.0.0.5:40000",
    ));
    assert_eq!(n(&e, "activity_id"), Some(2));
    assert_eq!(
        s(&e, "src_endpoint.ip").as_deref(),
        Some("10.0.0.5"),
        "client"
    );
    assert_eq!(s(&e, "dst_endpoint.ip").as_deref(), Some("192.0.2.53"));
    assert_eq!(
        (n(&e, "rcode_id"), s(&e, "rcode").as_deref()),
        (Some(0), Some("NoError"))
    );
    assert_eq!(s(&e, "status").as_deref(), Some("Success"));
    assert_eq!(
        (n(&e, "query_time"), n(&e, "response_time")),
        (Some(990), Some(1000))
    );
    let rdata: Vec<String> = (0..4)
        .map(|i| s(&e, &format!("answers.{i}.rdata")).unwrap())
        .collect();
    assert_eq!(
        rdata,
        [
            "edge.example.net",
            "192.0.2.1",
            "10 mx.example.org",
            "v=spf1 -all"
        ]
    );
    assert_eq!(s(&e, "answers.0.type").as_deref(), Some("CNAME"));
    assert_eq!(n(&e, "answers.1.ttl"), Some(300));
    let flags: Vec<u64> = e
        .get("answers.0.flag_ids")
        .and_then(|v| v.as_array())
        .map(|a| a.iter().filter_map(|v| v.as_u64()).collect())
        .unwrap_or_default();
    assert_eq!(flags, [1, 4]);
    assert_eq!(
        s(&e, "unmapped.query_results").as_deref(),
        Some("edge.example.net;192.0.2.1;10 mx.example.org;v=spf1 -all")
    );
}

#[test]
fn nxdomain_is_a_failed_response_without_answers() {
    let mut packet = Packet::new_reply(9);
    *packet.rcode_mut() = RCODE::NameError;
    packet.questions.push(question("nope.example", TYPE::TXT));
    let e = event(&obs(
        packet.build_bytes_vec().unwrap(),
        "[2001:db8::53]:53",
        "[2001:db8::5]:5353",
    ));
    assert_eq!(
        (n(&e, "rcode_id"), s(&e, "rcode").as_deref()),
        (Some(3), Some("NXDomain"))
    );
    assert_eq!(s(&e, "status").as_deref(), Some("Failure"));
    assert!(e.get("answers").is_none());
    assert_eq!(n(&e, "connection_info.protocol_ver_id"), Some(6));
    assert_eq!(s(&e, "query.type").as_deref(), Some("TXT"));
}

#[test]
fn unreadable_messages_are_traffic_with_the_reason() {
    let mut packet = Packet::new_query(3);
    packet.questions.push(question("cut.example", TYPE::A));
    let mut bytes = packet.build_bytes_vec().unwrap();
    bytes.truncate(bytes.len() - 3);
    let e = event(&obs(bytes, "10.0.0.5:40000", "192.0.2.53:53"));
    assert_eq!(n(&e, "activity_id"), Some(6));
    assert!(e.get("query").is_none());
    assert!(
        s(&e, "unmapped.malformed").is_some_and(|m| m.starts_with("not a readable DNS message")),
        "{}",
        String::from_utf8_lossy(&e.to_json())
    );
    let short = event(&obs(vec![1, 2, 3], "10.0.0.5:40000", "192.0.2.53:53"));
    assert_eq!(
        s(&short, "status_detail").as_deref(),
        Some("shorter than a DNS header")
    );
    assert_eq!(n(&short, "unmapped.size"), Some(3));
}

#[test]
fn type_names_follow_the_registry() {
    assert_eq!(type_name(1), "A");
    assert_eq!(type_name(65), "HTTPS");
    assert_eq!(type_name(65280), "TYPE65280");
    assert_eq!(class_name(1), "IN");
    assert_eq!(
        class_name(0x8001),
        "IN",
        "the mDNS cache-flush bit is not the class"
    );
}
