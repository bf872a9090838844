//! `vigil bench sensor` end to end, at rates any machine sustains: the probe starts the real
//! sensor, the bench drives real execs and loopback connections, and every step must report every
//! expected event captured, none missing and none dropped. Figures come from the bench itself
//! (docs/PERFORMANCE.md), not from this test. Needs root; without it the test says so and passes.

mod common;

use std::process::Command;

#[test]
fn a_short_bench_counts_every_exec_and_connection() {
    if !common::is_root("a_short_bench_counts_every_exec_and_connection") {
        return;
    }
    let output = Command::new(env!("CARGO_BIN_EXE_vigil"))
        .args(["bench", "sensor", "--exec-rates", "50", "--tcp-rates", "50"])
        .args(["--duration", "1", "--steady", "1"])
        .output()
        .unwrap_or_else(|e| panic!("vigil bench sensor: {e}"));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "{}\n{stdout}\n{stderr}",
        output.status
    );
    let steps: Vec<&str> = stdout
        .lines()
        .filter(|l| l.starts_with("exec:") || l.starts_with("tcp :"))
        .collect();
    assert_eq!(steps.len(), 2, "{stdout}");
    for step in steps {
        assert!(step.contains(" 0 missing, 0 dropped"), "{step}");
    }
    assert!(stdout.contains("50/50 events captured"), "{stdout}");
    assert!(
        stdout.contains("300/300 events captured"),
        "six per connection: {stdout}"
    );
    let steady = stdout
        .lines()
        .find(|l| l.starts_with("steady:"))
        .unwrap_or_else(|| panic!("no steady step: {stdout}"));
    assert!(
        steady.contains("167/167 launches captured, 0 dropped"),
        "{steady}"
    );
}
