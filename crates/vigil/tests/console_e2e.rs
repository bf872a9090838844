//! The web console in headless Chromium against a real `vigil up`, at 1366×768 and on a wide
//! screen: the fleet, an alert raised by a real process with its process tree, the workflow,
//! a response action's confirmation, event search, rules and the ATT&CK matrix, and a new alert
//! appearing without a reload — with no console or page error. The browser part is
//! `console/tests/e2e.mjs` (playwright-core with Debian's chromium, both installed by
//! `scripts/setup`).

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::{CONSOLE, VigilUp, is_root, nonce, wait_for};

fn ready(test: &str) -> bool {
    is_root(test) && common::console_testable(test)
}

fn marker_rule(dir: &Path, marker: &str) {
    let rule = format!(
        "title: Console test marker\nid: 7d2f5a10-3c4b-4e8f-9a1d-2b6c8e0f4a55\nstatus: test\n\
         tags: [attack.execution, attack.t1059.004]\n\
         logsource: {{category: process_creation, product: linux}}\n\
         detection:\n  selection:\n    Image|endswith: [/sh, /dash]\n    CommandLine|contains: '{marker}'\n  condition: selection\n\
         level: high\n"
    );
    std::fs::write(dir.join("console_marker.yml"), rule).unwrap();
}

/// Where the browser tests keep their screenshots (`docs/screenshots/`, shown in the README).
fn screenshots() -> std::path::PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn an_analyst_works_an_alert_in_the_console() {
    if !ready("an_analyst_works_an_alert_in_the_console") {
        return;
    }
    let data = tempfile::tempdir().unwrap();
    let rules = tempfile::tempdir().unwrap();
    let marker = format!("vigil-console-{}", nonce());
    marker_rule(rules.path(), &marker);
    let own = concat!(env!("CARGO_MANIFEST_DIR"), "/../../rules");
    let vigil = VigilUp::start(
        data.path(),
        &[
            "--sensor",
            "ebpf",
            "--rules",
            own,
            "--rules",
            rules.path().to_str().unwrap(),
        ],
    );
    // A process that matches, with a child of its own for the tree.
    let status = Command::new("/bin/sh")
        .args(["-c", &format!("/bin/sleep 0.1; echo {marker}")])
        .status()
        .unwrap();
    assert!(status.success());
    wait_for("the marker alert", Duration::from_secs(30), || {
        let alerts = vigil.get("/api/v1/alerts?limit=1000");
        alerts["items"]
            .as_array()?
            .iter()
            .find(|a| a["finding_info"]["title"] == "Console test marker")
            .cloned()
    });

    let out = Command::new("node")
        .current_dir(CONSOLE)
        .env("VIGIL_E2E_PASSWORD", common::operator::ADMIN_PASSWORD)
        // The main pages, as the README shows them.
        .env("E2E_SHOTS", screenshots())
        .args(["tests/e2e.mjs", &vigil.api, &marker])
        .output()
        .expect("run node");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    eprintln!("{stdout}{stderr}");
    assert!(
        out.status.success(),
        "the console e2e run failed:\n{stdout}{stderr}"
    );
    let status = vigil.interrupt();
    assert!(status.success());
}
