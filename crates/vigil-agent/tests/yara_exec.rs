//! YARA scanning of executed files through the whole path: the kernel reports an exec (eBPF),
//! the agent scans the executed file with its `--yara-rules`, and the match arrives at the
//! server as a finding, once per exec; and rules that do not compile stop the agent.
#![cfg(feature = "yara")]

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use sha2::{Digest, Sha256};
use vigil_agent::{Agent, AgentConfig, AgentError, SourceMode};

mod common;
use common::system::{SECRET, TestServer, wait_for};

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    if !root {
        eprintln!(
            "skipping an_executed_file_matching_a_yara_rule_is_a_finding_on_the_server: needs root (eBPF)"
        );
    }
    root
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_executed_file_matching_a_yara_rule_is_a_finding_on_the_server() {
    if !is_root() {
        return;
    }
    let nonce = uuid::Uuid::new_v4().simple().to_string();
    let marker = format!("vigil-yara-exec-marker-{nonce}");
    let rule = format!("Exec_Marker_{}", &nonce[..12]);
    let (server_data, agent_data) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (bins, rules) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    std::fs::write(
        rules.path().join("exec_test.yar"),
        format!(
            "rule {rule} : attack_execution attack_t1204_002 {{\n  meta:\n    \
             description = \"Test marker in an executed file\"\n    severity = \"high\"\n  \
             strings:\n    $m = \"{marker}\"\n  condition:\n    $m\n}}\n"
        ),
    )
    .unwrap();
    // /bin/true with the marker appended: still a working executable.
    let exe = bins.path().join(format!("vigil-yara-{}", &nonce[..12]));
    let mut bytes = std::fs::read("/bin/true").unwrap();
    bytes.extend_from_slice(marker.as_bytes());
    std::fs::write(&exe, &bytes).unwrap();
    std::fs::set_permissions(&exe, std::fs::Permissions::from_mode(0o755)).unwrap();
    let sha = hex::encode(Sha256::digest(&bytes));

    let server = TestServer::start(server_data.path(), "127.0.0.1:0".parse().unwrap()).await;
    let mut cfg = AgentConfig::new(
        agent_data.path().to_owned(),
        format!("https://{}", server.fleet),
    );
    cfg.sensor = Some(SourceMode::Ebpf);
    cfg.ca_pem = Some(std::fs::read_to_string(&server.ca).unwrap());
    cfg.enroll_secret = Some(SECRET.into());
    cfg.heartbeat = Duration::from_secs(1);
    cfg.yara_rules = vec![rules.path().to_owned()];
    let agent = Agent::start(cfg).await.expect("agent starts");
    let capability = agent
        .capabilities()
        .iter()
        .find(|c| c.name == "yara")
        .expect("a yara capability");
    assert!(capability.live);
    assert!(
        capability.detail.starts_with("1 rules from "),
        "{}",
        capability.detail
    );

    for _ in 0..2 {
        let status = Command::new(&exe).status().unwrap();
        assert!(status.success(), "the marked copy of true still runs");
    }
    let analytic = format!("yara:exec_test.{rule}");
    let findings = wait_for(
        "a finding per exec on the server",
        Duration::from_secs(60),
        async || {
            let alerts = server.get("/api/v1/alerts").await;
            let ours: Vec<_> = alerts["items"]
                .as_array()?
                .iter()
                .filter(|f| f["finding_info"]["analytic"]["uid"] == analytic.as_str())
                .cloned()
                .collect();
            (ours.len() >= 2).then_some(ours)
        },
    )
    .await;
    assert_eq!(findings.len(), 2, "one finding per exec: {findings:#?}");
    for f in &findings {
        let evidence = &f["evidences"][0];
        assert_eq!(evidence["file"]["path"], exe.to_str().unwrap(), "{f:#}");
        assert_eq!(
            evidence["file"]["hashes"][0]["value"],
            sha.as_str(),
            "{f:#}"
        );
        assert_eq!(
            evidence["process"]["file"]["path"],
            exe.to_str().unwrap(),
            "{f:#}"
        );
        assert_eq!(f["finding_info"]["analytic"]["category"], "yara");
        assert_eq!(
            f["finding_info"]["attacks"][0]["technique"]["uid"],
            "T1204.002"
        );
        assert_eq!(f["severity_id"], 4);
    }
    let counts = agent.yara_counts().expect("scanning runs");
    // Other processes of the host are scanned too; ours matched twice, the second time
    // answered from the cache (same file, or same hash on the event).
    assert!(counts.scanned >= 1, "{counts:?}");
    assert!(counts.cache_hits >= 1, "{counts:?}");
    assert_eq!(counts.findings, 2, "{counts:?}");
    agent.shutdown().await;
    server.stop().await;
}

#[tokio::test]
async fn yara_rules_that_do_not_compile_stop_the_agent_naming_file_and_line() {
    let (data, rules) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let bad = rules.path().join("broken.yar");
    std::fs::write(&bad, "rule Broken {\n  condition:\n    $nowhere\n}\n").unwrap();
    let mut cfg = AgentConfig::new(data.path().to_owned(), "https://127.0.0.1:9".into());
    cfg.sensor = None;
    cfg.yara_rules = vec![rules.path().to_owned()];
    let Err(error) = Agent::start(cfg).await else {
        panic!("the agent must not start with broken rules");
    };
    assert!(matches!(error, AgentError::Yara(_)), "{error}");
    let text = error.to_string();
    assert!(
        text.contains(&format!("{}:3:5", bad.display())),
        "names file and line: {text}"
    );
    assert!(
        !Path::new(&data.path().join("buffer.db")).exists(),
        "nothing started before the rules compiled"
    );
}
