//! A kernel without the tracepoint a scan needs: the real eBPF loader is asked (through the
//! documented `VIGIL_SENSOR_TRACEPOINT_OVERRIDE` test seam) for a tracepoint this kernel does
//! not have, says so clearly, and the fleet view shows the `connection_attempts` capability off
//! with a detail naming the missing tracepoint. Needs root (eBPF); skips by name without it.

mod common;

use std::time::Duration;

use serde_json::Value;

const MISSING: &str = "vigil_no_such_tracepoint";

/// The local agent's capabilities as the fleet view (`GET /api/v1/endpoints`) shows them.
fn capabilities(up: &common::VigilUp) -> Vec<Value> {
    common::wait_for(
        "the local agent in the fleet view",
        Duration::from_secs(20),
        || {
            let endpoints = up.get("/api/v1/endpoints");
            // Enrollment lists the endpoint before its session reports what it can see.
            endpoints["items"][0]["capabilities"]
                .as_array()
                .filter(|c| !c.is_empty())
                .cloned()
        },
    )
}

fn capability<'c>(caps: &'c [Value], name: &str) -> &'c Value {
    caps.iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no {name} capability in {caps:#?}"))
}

fn start(data: &std::path::Path, overriding: &str) -> common::VigilUp {
    let env = format!("{overriding}={MISSING}");
    common::VigilUp::start_with_env(
        None,
        "127.0.0.1:0",
        data,
        &["--sensor", "auto"],
        &[("VIGIL_SENSOR_TRACEPOINT_OVERRIDE", &env)],
    )
}

#[test]
fn without_tcp_send_reset_the_connection_attempts_capability_is_off_and_says_why() {
    if !common::is_root(
        "without_tcp_send_reset_the_connection_attempts_capability_is_off_and_says_why",
    ) {
        return;
    }
    let data = tempfile::tempdir().unwrap();
    let up = start(data.path(), "tcp_send_reset");
    let caps = capabilities(&up);
    eprintln!("capabilities: {caps:#?}");
    // TCP capture runs without its reset program…
    let network = capability(&caps, "network");
    assert_eq!(
        (network["source"].as_str(), network["live"].as_bool()),
        (Some("ebpf"), Some(true))
    );
    // …so connection attempts to closed ports are not seen, and the fleet view says so.
    let attempts = capability(&caps, "connection_attempts");
    assert_eq!(attempts["live"], false, "{attempts:#}");
    let detail = attempts["detail"].as_str().unwrap_or_default();
    assert!(
        detail.contains(&format!(
            "tp_btf/{MISSING} unavailable: the kernel has no tracepoint `{MISSING}` (no \
             `btf_trace_{MISSING}` in /sys/kernel/btf/vmlinux)"
        )),
        "{detail}"
    );
    assert!(
        detail.contains("invisible to port-scan (T1046) detection"),
        "{detail}"
    );
    assert!(up.interrupt().success());
}

#[test]
fn without_inet_sock_set_state_tcp_falls_back_to_polling_and_attempts_are_off() {
    if !common::is_root(
        "without_inet_sock_set_state_tcp_falls_back_to_polling_and_attempts_are_off",
    ) {
        return;
    }
    let data = tempfile::tempdir().unwrap();
    let up = start(data.path(), "inet_sock_set_state");
    let caps = capabilities(&up);
    eprintln!("capabilities: {caps:#?}");
    let network = capability(&caps, "network");
    assert_eq!(network["source"], "proc_net", "{network:#}");
    let attempts = capability(&caps, "connection_attempts");
    assert_eq!(attempts["live"], false, "{attempts:#}");
    let detail = attempts["detail"].as_str().unwrap_or_default();
    assert!(
        detail.contains(&format!("the kernel has no tracepoint `{MISSING}`")),
        "{detail}"
    );
    assert!(
        detail.contains("port scans (T1046) go undetected"),
        "{detail}"
    );
    // Process capture is unaffected.
    assert_eq!(capability(&caps, "process")["source"], "ebpf");
    assert!(up.interrupt().success());
}
