use super::*;

fn plan() -> IsolationPlan {
    IsolationPlan {
        fleet_servers: vec!["10.1.2.3".parse().unwrap(), "fd00::1".parse().unwrap()],
        dns_servers: vec!["10.1.2.53".parse().unwrap()],
        also_allow: vec![],
    }
}

#[test]
fn ruleset_replaces_only_the_vigil_table() {
    let v: serde_json::Value = serde_json::from_str(&ruleset(&plan())).unwrap();
    let cmds = v["nftables"].as_array().unwrap();
    assert_eq!(cmds[0]["add"]["table"]["name"], TABLE);
    assert_eq!(cmds[1]["delete"]["table"]["name"], TABLE);
    assert_eq!(cmds[2]["add"]["table"]["name"], TABLE);
    for c in cmds {
        let (_, obj) = c.as_object().unwrap().iter().next().unwrap();
        let (kind, inner) = obj.as_object().unwrap().iter().next().unwrap();
        let table = if kind == "table" {
            &inner["name"]
        } else {
            &inner["table"]
        };
        assert_eq!(table, TABLE, "{c}");
        assert_eq!(inner["family"], "inet");
    }
    let chains: Vec<_> = cmds.iter().filter_map(|c| c["add"].get("chain")).collect();
    assert_eq!(chains.len(), 3);
    assert!(chains.iter().all(|c| c["policy"] == "drop"));
}

#[test]
fn ruleset_allows_fleet_v4_and_v6_and_dns() {
    let text = ruleset(&plan());
    assert!(text.contains(r#"{"payload":{"protocol":"ip","field":"daddr"}},"right":"10.1.2.3""#));
    assert!(text.contains(r#"{"payload":{"protocol":"ip6","field":"saddr"}},"right":"fd00::1""#));
    assert!(text.contains(r#""right":"10.1.2.53""#));
    assert!(text.contains(r#"{"payload":{"protocol":"udp","field":"dport"}},"right":53"#));
    assert!(text.contains(r#""ct":{"key":"state"}"#));
}

#[test]
fn missing_nft_says_how_to_install_it() {
    let empty = tempfile::tempdir().unwrap();
    let err = find_nft([empty.path().to_owned()]).unwrap_err();
    assert!(matches!(err, IsolateError::NftMissing));
    assert!(
        err.to_string().contains("apt-get install nftables"),
        "{err}"
    );
}

#[test]
fn plan_without_fleet_server_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let err = Isolator::new(dir.path())
        .apply(&IsolationPlan::default())
        .unwrap_err();
    assert!(matches!(err, IsolateError::NoFleetServer));
    assert!(!dir.path().join(STATE_FILE).exists());
}

#[test]
fn plan_round_trips_and_rejects_unknown_fields() {
    let p = plan();
    let back: IsolationPlan = serde_json::from_str(&serde_json::to_string(&p).unwrap()).unwrap();
    assert_eq!(back, p);
    assert!(serde_json::from_str::<IsolationPlan>(r#"{"fleet_servers":[],"x":1}"#).is_err());
}
