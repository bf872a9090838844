//! The `Auto` fallback, for real: eBPF is refused by the kernel (the thread starting the sensor
//! lacks CAP_BPF, CAP_PERFMON and CAP_SYS_ADMIN), so the sensor must fall back to the proc
//! connector (it keeps CAP_NET_ADMIN) for processes and to `/proc/net/tcp` polling for TCP, and
//! say why. File capture (fanotify needs CAP_SYS_ADMIN too) cannot start: its capability is off,
//! with the reason, and nothing else suffers.
//!
//! This is its own test binary on purpose: aya probes kernel features once per process
//! (`aya::FEATURES`), and a probe made without privilege would poison every later load in the
//! same process.

mod common;

use std::process::Command;

use common::*;
use vigil_sensor::{FileConfig, SensorConfig, SourceKind, SourceMode};

/// Drops capabilities from the *calling thread's* effective set (capabilities are per thread,
/// so the rest of the test binary keeps them).
fn drop_effective_caps_of_this_thread(caps: &[u32]) {
    #[repr(C)]
    struct Header {
        version: u32,
        pid: i32,
    }
    #[repr(C)]
    #[derive(Clone, Copy, Default)]
    struct Data {
        effective: u32,
        permitted: u32,
        inheritable: u32,
    }
    const LINUX_CAPABILITY_VERSION_3: u32 = 0x2008_0522;
    let mut header = Header {
        version: LINUX_CAPABILITY_VERSION_3,
        pid: 0,
    };
    let mut data = [Data::default(); 2];
    // SAFETY: capget with a v3 header writes exactly two Data structs into `data`.
    let rc = unsafe { libc::syscall(libc::SYS_capget, &raw mut header, data.as_mut_ptr()) };
    assert_eq!(rc, 0, "capget: {}", std::io::Error::last_os_error());
    for &cap in caps {
        let word = usize::try_from(cap / 32).unwrap_or(0);
        data[word].effective &= !(1 << (cap % 32));
    }
    // SAFETY: capset reads the v3 header and two Data structs; pid 0 is this thread.
    let rc = unsafe { libc::syscall(libc::SYS_capset, &raw mut header, data.as_ptr()) };
    assert_eq!(rc, 0, "capset: {}", std::io::Error::last_os_error());
}

#[test]
fn auto_mode_falls_back_to_proc_connector_without_bpf_privilege() {
    skip_unless_root!();
    const CAP_SYS_ADMIN: u32 = 21;
    const CAP_PERFMON: u32 = 38;
    const CAP_BPF: u32 = 39;
    // Start on a thread without the capabilities eBPF needs but with CAP_NET_ADMIN.
    let mut h = std::thread::spawn(|| {
        drop_effective_caps_of_this_thread(&[CAP_SYS_ADMIN, CAP_PERFMON, CAP_BPF]);
        Harness::start_with(SensorConfig {
            mode: SourceMode::Auto,
            files: FileConfig::watching([std::env::temp_dir()]),
            ..Default::default()
        })
    })
    .join()
    .unwrap_or_else(|_| panic!("sensor start thread panicked"));
    assert_eq!(h.sensor.exec_source(), SourceKind::ProcConnector);
    let caps = h.sensor.capabilities();
    assert_eq!(caps[0].source, "proc_connector");
    assert!(caps[0].live);
    let detail = caps[0].detail.clone().unwrap_or_default();
    assert!(detail.starts_with("eBPF unavailable: "), "detail: {detail}");
    eprintln!("fallback detail: {detail}");
    // TCP falls back on its own, to /proc/net/tcp polling, and says it is lossy.
    assert_eq!(
        (caps[1].name.as_str(), caps[1].source.as_str()),
        ("network", "proc_net")
    );
    assert!(caps[1].live);
    let detail = caps[1].detail.clone().unwrap_or_default();
    assert!(detail.starts_with("eBPF unavailable: "), "detail: {detail}");
    assert!(detail.contains("lossy"), "detail: {detail}");
    assert_eq!(
        (caps[3].name.as_str(), caps[3].source.as_str(), caps[3].live),
        ("file", "fanotify", false)
    );
    // (Since Linux 5.13 an unprivileged group can be created; its filesystem marks are refused.)
    let detail = caps[3].detail.clone().unwrap_or_default();
    assert!(
        detail.starts_with("fanotify: cannot ") && detail.contains("Operation not permitted"),
        "detail: {detail}"
    );
    // DNS capture needs CAP_NET_RAW, not eBPF: it stays live.
    let dns = caps
        .iter()
        .find(|c| c.name == "dns")
        .unwrap_or_else(|| panic!("no dns capability: {caps:?}"));
    assert_eq!((dns.source.as_str(), dns.live), ("packet", true));

    let nonce = nonce("vigil-fallback");
    let script = format!("sleep 1; true {nonce}");
    let mut child = spawn(Command::new("/bin/sh").args(["-c", script.as_str()]));
    let event = h.wait_for("sh -c after fallback", cmd_line_contains(&nonce));
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(str_at(&event, "metadata.log_name"), Some("proc_connector"));
    h.sensor.stop();
}
