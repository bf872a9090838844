//! Kernel tests: real processes are started and the sensor must report their execs.
//!
//! They need root (CAP_BPF, CAP_PERFMON and CAP_NET_ADMIN); without it each test says so and
//! passes. The sensor sees every exec on the host, so each test finds its own event by a nonce
//! in the command line or by the child's pid.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::*;
use vigil_sensor::{Sensor, SourceKind, SourceMode};

#[test]
fn ebpf_source_sees_exec_with_arguments() {
    skip_unless_root!();
    let mut h = Harness::start(SourceMode::Ebpf);
    assert_eq!(h.sensor.exec_source(), SourceKind::Ebpf);

    let nonce = nonce("vigil-kernel");
    let mut child = spawn(Command::new("/bin/echo").args([nonce.as_str(), "alpha", "beta"]));
    let pid = child.id();
    let uid = proc_uid(pid); // the child is a zombie at worst: stat is still there
    let event = h.wait_for("/bin/echo with the nonce", cmd_line_contains(&nonce));
    let _ = child.wait();

    assert_eq!(u64_at(&event, "process.pid"), Some(u64::from(pid)));
    assert_eq!(
        str_at(&event, "process.cmd_line"),
        Some(format!("/bin/echo {nonce} alpha beta").as_str())
    );
    let path = str_at(&event, "process.file.path").unwrap_or_default();
    assert!(path.ends_with("/echo"), "file.path {path}");
    assert_eq!(str_at(&event, "process.name"), Some("echo"));
    assert_eq!(str_at(&event, "process.uid"), Some(uid.as_str()));
    assert_child_of_this_test(&event, "ebpf");
    assert_eq!(h.sensor.dropped(), 0);
    h.sensor.stop();
}

#[test]
fn proc_connector_source_sees_exec_with_arguments() {
    skip_unless_root!();
    let mut h = Harness::start(SourceMode::ProcConnector);
    assert_eq!(h.sensor.exec_source(), SourceKind::ProcConnector);

    // The connector only reports the pid; the command line is read from /proc afterwards, so
    // the child must live a moment. `true` is a shell builtin: sh stays the process.
    let nonce = nonce("vigil-cn");
    let script = format!("sleep 1; true {nonce}");
    let mut child = spawn(Command::new("/bin/sh").args(["-c", script.as_str()]));
    let pid = child.id();
    let uid = proc_uid(pid);
    let event = h.wait_for("sh -c with the nonce", cmd_line_contains(&nonce));
    let _ = child.kill();
    let _ = child.wait();

    assert_eq!(u64_at(&event, "process.pid"), Some(u64::from(pid)));
    assert_eq!(
        str_at(&event, "process.cmd_line"),
        Some(format!("/bin/sh -c {script}").as_str())
    );
    let sh = std::fs::canonicalize("/bin/sh").map(|p| p.to_string_lossy().into_owned());
    assert_eq!(
        str_at(&event, "process.file.path").map(str::to_owned),
        sh.ok()
    );
    assert_eq!(str_at(&event, "process.uid"), Some(uid.as_str()));
    assert_child_of_this_test(&event, "proc_connector");
    let caps = h.sensor.capabilities();
    let names: Vec<&str> = caps.iter().map(|c| c.name.as_str()).collect();
    assert!(
        names.starts_with(&["process", "network", "connection_attempts", "file"]),
        "{names:?}"
    );
    assert_eq!(caps[0].source, "proc_connector");
    assert!(caps[0].live);
    assert_eq!(
        (caps[1].name.as_str(), caps[1].source.as_str()),
        ("network", "proc_net")
    );
    // Polling cannot see connection attempts: the port-scan input is off, and says why.
    assert_eq!(
        (caps[2].name.as_str(), caps[2].live),
        ("connection_attempts", false)
    );
    assert!(
        caps[2]
            .detail
            .as_deref()
            .is_some_and(|d| d.contains("cannot see connection attempts")),
        "{:?}",
        caps[2].detail
    );
    h.sensor.stop();
}

#[test]
fn ebpf_resolves_relative_exec_path() {
    skip_unless_root!();
    let mut h = Harness::start(SourceMode::Ebpf);
    // `./sleep` run from /bin: bprm->filename is relative, /proc/<pid>/exe names the file.
    let mut child = spawn(Command::new("./sleep").arg("1").current_dir("/bin"));
    let pid = child.id();
    let event = h.wait_for("./sleep", pid_is(pid));
    let _ = child.kill();
    let _ = child.wait();

    let sleep = std::fs::canonicalize("/bin/sleep").map(|p| p.to_string_lossy().into_owned());
    assert_eq!(
        str_at(&event, "process.file.path").map(str::to_owned),
        sleep.ok()
    );
    assert_eq!(str_at(&event, "process.cmd_line"), Some("./sleep 1"));
    h.sensor.stop();
}

#[test]
fn auto_mode_prefers_ebpf_and_stops_when_receiver_is_gone() {
    skip_unless_root!();
    let Harness { sensor, events, .. } = Harness::start(SourceMode::Auto);
    assert_eq!(sensor.exec_source(), SourceKind::Ebpf);
    assert_eq!(sensor.network_source(), Some(SourceKind::Ebpf));
    let caps = sensor.capabilities();
    let names: Vec<&str> = caps.iter().map(|c| c.name.as_str()).collect();
    assert!(
        names.starts_with(&["process", "network", "connection_attempts", "file"]),
        "{names:?}"
    );
    assert_eq!(
        (caps[0].name.as_str(), caps[0].source.as_str(), caps[0].live),
        ("process", "ebpf", true)
    );
    assert_eq!(
        (caps[2].name.as_str(), caps[2].source.as_str(), caps[2].live),
        ("connection_attempts", "ebpf", true)
    );
    assert_eq!(
        (caps[1].name.as_str(), caps[1].source.as_str(), caps[1].live),
        ("network", "ebpf", true)
    );
    assert_eq!(
        (caps[3].name.as_str(), caps[3].source.as_str(), caps[3].live),
        ("file", "fanotify", false)
    );
    assert_eq!(caps[3].detail.as_deref(), Some("disabled by configuration"));
    assert_eq!(caps[0].detail, None, "every process program attached");
    assert_eq!(caps[1].detail, None, "every TCP program attached");

    // With the receiver gone, the next exec makes the capture thread stop on its own.
    drop(events);
    let deadline = Instant::now() + EVENT_TIMEOUT;
    while sensor.capabilities()[0].live {
        assert!(Instant::now() < deadline, "capture thread still live");
        let _ = spawn(&mut Command::new("/bin/true")).wait();
        std::thread::sleep(Duration::from_millis(20));
    }
    sensor.stop();
}

#[test]
fn ebpf_truncates_long_command_lines_at_the_buffer() {
    skip_unless_root!();
    let mut h = Harness::start(SourceMode::Ebpf);
    let nonce = nonce("vigil-long");
    let long = "x".repeat(6000);
    let mut child = spawn(Command::new("/bin/echo").args([nonce.as_str(), long.as_str()]));
    let event = h.wait_for("/bin/echo with a long argument", cmd_line_contains(&nonce));
    let _ = child.wait();

    let cmd_line = str_at(&event, "process.cmd_line").unwrap_or_default();
    let expected_prefix = format!("/bin/echo {nonce} xxx");
    assert!(
        cmd_line.starts_with(&expected_prefix),
        "cmd_line starts {:?}",
        &cmd_line[..40]
    );
    // 4096 bytes were copied out of the 6,000-odd byte argv.
    assert_eq!(cmd_line.len(), 4096);
    h.sensor.stop();
}

#[test]
fn sensor_can_move_between_threads() {
    fn send_and_sync<T: Send + Sync>() {}
    send_and_sync::<Sensor>();
}

#[test]
fn ebpf_exec_carries_the_sha256_of_the_image() {
    skip_unless_root!();
    let mut h = Harness::start(SourceMode::Ebpf);
    let nonce = nonce("vigil-hash");
    // sh stays while it sleeps, so its image is there to read.
    let script = format!("sleep 1; true {nonce}");
    let mut child = spawn(Command::new("/bin/sh").args(["-c", script.as_str()]));
    let event = h.wait_for("sh -c with the nonce", cmd_line_contains(&nonce));
    let _ = child.kill();
    let _ = child.wait();
    let image = std::fs::canonicalize("/bin/sh").unwrap();
    let expected = {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(std::fs::read(&image).unwrap()))
    };
    let hashes = event
        .get("process.file.hashes")
        .and_then(|h| h.as_array())
        .cloned()
        .unwrap_or_default();
    assert_eq!(hashes.len(), 1, "{hashes:?}");
    assert_eq!(hashes[0]["algorithm_id"], 3);
    assert_eq!(hashes[0]["value"], expected.as_str());
    h.sensor.stop();
}
