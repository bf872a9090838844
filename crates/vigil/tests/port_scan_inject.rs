//! `vigil inject scan`, the real binary, against a server started by the test: with no agent
//! at all, and under a `vigil up` whose agent runs without eBPF. Each injected scan raises
//! exactly one T1046 alert naming the scanner, the target, the distinct port count and the
//! time span; bad input gets a clear error.

mod common;

use std::process::{Command, Output};
use std::time::Duration;

use common::scan::{alerts_from, assert_names_scan, wait_for_alert_from};
use common::server::InProcess;
use vigil_server::Roles;

/// Runs `vigil inject scan`; without `--sensor`, with an admin's API token for the server it
/// names (so it can register a sensor).
fn inject(args: &[&str]) -> Output {
    let server = args
        .iter()
        .position(|a| *a == "--server")
        .and_then(|i| args.get(i + 1))
        .filter(|s| s.starts_with("http://") && !args.contains(&"--sensor"));
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_vigil"));
    cmd.args(["inject", "scan"])
        .args(args)
        .env_remove("VIGIL_SENSOR_TOKEN")
        .env_remove("VIGIL_API_TOKEN");
    if let Some(server) = server {
        cmd.env("VIGIL_API_TOKEN", common::operator::admin_token(server));
    }
    cmd.output().expect("run vigil inject")
}

fn text(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The sensor id and token `inject` printed after registering a sensor.
fn registered(stdout: &str) -> (String, String) {
    let line = stdout
        .lines()
        .find(|l| l.contains("registered a new third-party sensor"))
        .unwrap_or_else(|| panic!("no registration line in {stdout}"));
    let id = line
        .split("third-party sensor ")
        .nth(1)
        .and_then(|rest| rest.split(';').next())
        .expect("sensor id")
        .to_owned();
    let token = line.rsplit(' ').next().expect("token").to_owned();
    (id, token)
}

#[test]
fn injected_scan_into_a_server_without_agents_raises_one_t1046_alert() {
    let data = tempfile::tempdir().unwrap();
    let server = InProcess::start(data.path(), Roles::all());
    let api = server.api.clone();

    // No --sensor: a third-party sensor is registered and the scan sent as it.
    let out = inject(&[
        "--server",
        &api,
        "--ports",
        "100",
        "--source",
        "198.51.100.77",
        "--target",
        "192.0.2.10",
    ]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("100 inbound connection attempts from 198.51.100.77 to 192.0.2.10"));
    assert!(stdout.contains("100 stored, 0 duplicates"), "{stdout}");
    let (sensor, token) = registered(&stdout);

    let (alert, _) = wait_for_alert_from(&api, "198.51.100.77", Duration::from_secs(20))
        .expect("a T1046 alert for the injected scan");
    let facts = assert_names_scan(&alert, "198.51.100.77", "192.0.2.10");
    assert_eq!(alert["device"]["uid"], sensor.as_str());
    // Attempts every 5 ms: the 25th distinct port comes 120 ms after the first.
    assert_eq!((facts.distinct_ports, facts.span_ms), (25, 120));
    assert_eq!(facts.ports, (1..=25).collect::<Vec<_>>());
    eprintln!("injected scan alert: {facts:?}");

    // With --sensor and --token: a second scanner, a second alert, the first stays alone.
    let out = inject(&[
        "--server",
        &api,
        "--sensor",
        &sensor,
        "--token",
        &token,
        "--source",
        "198.51.100.78",
        "--target",
        "192.0.2.10",
        "--first-port",
        "1000",
        "--ports",
        "150",
        "--every-ms",
        "20",
    ]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    let (alert, _) = wait_for_alert_from(&api, "198.51.100.78", Duration::from_secs(20))
        .expect("a T1046 alert for the second scan");
    let facts = assert_names_scan(&alert, "198.51.100.78", "192.0.2.10");
    assert_eq!((facts.distinct_ports, facts.span_ms), (25, 24 * 20));
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        alerts_from(&api, "198.51.100.77").len(),
        1,
        "one alert per scan"
    );
    assert_eq!(
        alerts_from(&api, "198.51.100.78").len(),
        1,
        "one alert per scan"
    );

    // Clear errors.
    let cases: [(&[&str], &str); 5] = [
        (&["--server", "127.0.0.1:8080"], "is not a URL"),
        (&["--server", "https://127.0.0.1:1"], "plain HTTP"),
        (
            &["--server", &api, "--sensor", &sensor, "--token", "wrong"],
            "refused the token (401 Unauthorized: unknown sensor token)",
        ),
        (
            &[
                "--server",
                &api,
                "--sensor",
                "no-such-sensor",
                "--token",
                &token,
            ],
            "refused sensor no-such-sensor (403 Forbidden",
        ),
        (
            &["--server", &api, "--sensor", &sensor],
            "no token for sensor",
        ),
    ];
    for (args, expected) in cases {
        let out = inject(args);
        let (_, stderr) = text(&out);
        assert!(!out.status.success(), "{args:?} should fail");
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
    }
    // Registering a sensor is an admin's act.
    let out = Command::new(env!("CARGO_BIN_EXE_vigil"))
        .args(["inject", "scan", "--server", &api])
        .env_remove("VIGIL_SENSOR_TOKEN")
        .env_remove("VIGIL_API_TOKEN")
        .output()
        .expect("run vigil inject");
    let (_, stderr) = text(&out);
    assert!(!out.status.success());
    assert!(stderr.contains("needs an admin's API token"), "{stderr}");
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let unreachable = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let out = inject(&[
        "--server",
        &unreachable,
        "--sensor",
        &sensor,
        "--token",
        &token,
    ]);
    assert!(
        text(&out).1.contains("cannot reach the server at"),
        "{:?}",
        text(&out)
    );
    server.stop();
}

#[test]
fn injected_scan_is_detected_under_vigil_up_whose_agent_runs_without_ebpf() {
    if !common::is_root("injected_scan_is_detected_under_vigil_up_whose_agent_runs_without_ebpf") {
        return;
    }
    let data = tempfile::tempdir().unwrap();
    let up = common::VigilUp::start(data.path(), &["--sensor", "proc-connector"]);
    // The local agent says it cannot see connection attempts.
    let caps = common::wait_for(
        "the local agent in the fleet view",
        Duration::from_secs(20),
        || {
            let endpoints = up.get("/api/v1/endpoints");
            let caps = endpoints["items"][0]["capabilities"].clone();
            // Enrollment lists the endpoint before its session reports what it can see.
            caps.as_array()
                .is_some_and(|c| !c.is_empty())
                .then_some(caps)
        },
    );
    let attempts = caps
        .as_array()
        .and_then(|c| c.iter().find(|c| c["name"] == "connection_attempts"))
        .unwrap_or_else(|| panic!("no connection_attempts capability: {caps:#}"));
    assert_eq!(attempts["live"], false, "{attempts:#}");
    assert!(
        attempts["detail"]
            .as_str()
            .unwrap_or_default()
            .contains("port scans (T1046) go undetected"),
        "{attempts:#}"
    );

    let out = inject(&["--server", &up.api, "--source", "198.51.100.90"]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    let (alert, _) = wait_for_alert_from(&up.api, "198.51.100.90", Duration::from_secs(20))
        .expect("a T1046 alert for the injected scan");
    assert_names_scan(&alert, "198.51.100.90", "192.0.2.10");
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(alerts_from(&up.api, "198.51.100.90").len(), 1);
    let status = up.interrupt();
    assert!(status.success(), "vigil up exits cleanly: {status}");
}
