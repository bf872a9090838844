//! Detection stopped during a scan: a server without the detect role stores the scan's events
//! and raises nothing; the same data directory served again with detection on raises the one
//! T1046 alert, from the detection cursor, and a third start raises no second one.

mod common;

use std::process::Command;
use std::time::Duration;

use common::scan::{alerts_from, assert_names_scan, t1046_alerts, wait_for_alert_from};
use common::server::InProcess;
use vigil_server::{Role, Roles};

/// Network Activity events stored for `sensor`.
fn stored_network_events(api: &str, sensor: &str) -> usize {
    let events = common::get_json(&format!(
        "{api}/api/v1/events?class_uid=4001&sensor_id={sensor}&limit=1000"
    ));
    events["items"].as_array().map_or(0, Vec::len)
}

#[test]
fn a_scan_stored_while_detection_is_off_is_alerted_when_it_comes_back() {
    let data = tempfile::tempdir().unwrap();

    // 1. Fleet, ingest and API only: the scan arrives and is stored, nothing scores it.
    let server = InProcess::start(data.path(), Roles::all().without(Role::Detect));
    let out = Command::new(env!("CARGO_BIN_EXE_vigil"))
        .args(["inject", "scan", "--server", &server.api, "--ports", "120"])
        .args(["--source", "198.51.100.99", "--target", "192.0.2.20"])
        .env_remove("VIGIL_SENSOR_TOKEN")
        .env("VIGIL_API_TOKEN", server.token())
        .output()
        .expect("run vigil inject");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let sensor = stdout
        .split("third-party sensor ")
        .nth(1)
        .and_then(|rest| rest.split(';').next())
        .expect("the registered sensor id")
        .to_owned();
    assert_eq!(stored_network_events(&server.api, &sensor), 120);
    // Detection would take well under a second (see port_scan_inject); give it three.
    std::thread::sleep(Duration::from_secs(3));
    assert!(
        t1046_alerts(&server.api).is_empty(),
        "no detection without the detect role"
    );
    server.stop();

    // 2. The same data, all roles: the worker resumes from its cursor and raises the alert.
    let server = InProcess::start(data.path(), Roles::all());
    let (alert, _) = wait_for_alert_from(&server.api, "198.51.100.99", Duration::from_secs(20))
        .expect("the scan is alerted once detection is back");
    let facts = assert_names_scan(&alert, "198.51.100.99", "192.0.2.20");
    assert_eq!(facts.distinct_ports, 25);
    assert_eq!(alert["device"]["uid"], sensor.as_str());
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(alerts_from(&server.api, "198.51.100.99").len(), 1);
    server.stop();

    // 3. Started once more: the cursor is past the scan, so it is not scored (or alerted) twice.
    let server = InProcess::start(data.path(), Roles::all());
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(alerts_from(&server.api, "198.51.100.99").len(), 1);
    server.stop();
}
