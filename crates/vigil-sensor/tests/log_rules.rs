//! Log lines and authentications captured through the host's syslog daemon meet the rules
//! written for them: SigmaHQ's builtin `service: sshd` keyword rule, loaded unmodified, fires on
//! the Base Event of an sshd error line, and Vigil's own `service: auth` rule on the
//! Authentication of a failed password.
//!
//! Needs root, rsyslogd (the test runs one of its own, `common::syslog`; scripts/setup installs
//! rsyslog) and the SigmaHQ rules in `../shared/sigma`; without one the test says so and passes.

mod common;

use std::path::{Path, PathBuf};

use common::syslog::Syslogd;
use common::*;
use vigil_detect::{RuleSet, RuleStatus};
use vigil_ocsf::fieldmap::FieldMaps;
use vigil_sensor::vigil_ocsf::Event;
use vigil_sensor::{AuthConfig, FileConfig, SensorConfig, SourceMode};

const SSHD_RULES: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../../shared/sigma/rules/linux/builtin/sshd"
);
const VIGIL_AUTH_RULES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../rules/linux/auth");
/// SigmaHQ "Suspicious OpenSSH Daemon Error" (keywords such as `error in libcrypto`).
const SSHD_ERROR_RULE: &str = "e76b413a-83d0-4b94-8e4c-85db4a5b8bdc";
/// Vigil "Failed SSH or su Authentication" (`Service: sshd`, `Status: Failure`).
const AUTH_FAILURE_RULE: &str = "6f660fad-3384-45a7-be59-cb623165de0e";

fn rules(dirs: &[&str]) -> RuleSet {
    let maps = FieldMaps::builtin().expect("field maps");
    let dirs: Vec<PathBuf> = dirs.iter().map(PathBuf::from).collect();
    let (set, report) = RuleSet::load_dirs(&dirs, &maps).expect("load rules");
    for r in &report.rules {
        assert!(
            matches!(r.status, RuleStatus::Loaded),
            "{}: {:?}",
            r.path.display(),
            r.status
        );
    }
    set
}

fn ids(set: &RuleSet, event: &Event) -> Vec<String> {
    set.matches_all(event).map(|r| r.id.clone()).collect()
}

#[test]
fn builtin_and_auth_rules_fire_on_lines_through_syslog() {
    skip_unless_root!();
    let syslogd = Syslogd::start("rules").filter(|_| Path::new(SSHD_RULES).is_dir());
    let Some(syslogd) = syslogd else {
        eprintln!(
            "skipping builtin_and_auth_rules_fire_on_lines_through_syslog: needs rsyslogd \
             (scripts/setup installs it) and {SSHD_RULES}"
        );
        return;
    };
    let set = rules(&[SSHD_RULES, VIGIL_AUTH_RULES]);
    let mut h = Harness::start_with(SensorConfig {
        mode: SourceMode::Auto,
        files: FileConfig::disabled(),
        auth: AuthConfig::reading([syslogd.auth_log()], None, None),
        ..Default::default()
    });
    let marker = nonce("vigil-log-rules");

    let error = format!("error: {marker}: error in libcrypto");
    syslogd.log("sshd", None, &error);
    let line = h.wait_for("the sshd error line", |e| {
        e.class_uid == 0 && str_at(e, "message").is_some_and(|m| m.contains(&marker))
    });
    assert_eq!(str_at(&line, "metadata.log_provider"), Some("sshd"));
    assert!(ids(&set, &line).contains(&SSHD_ERROR_RULE.to_owned()));

    // The same words from another program are not an sshd line.
    let other = format!("{marker}-cron: error in libcrypto");
    syslogd.log("CRON", None, &other);
    let line = h.wait_for("the cron line", |e| {
        e.class_uid == 0 && str_at(e, "message").is_some_and(|m| m.contains(&other))
    });
    assert!(ids(&set, &line).is_empty(), "{:?}", ids(&set, &line));

    let user = format!("{marker}-user");
    syslogd.log(
        "sshd",
        None,
        &format!("Failed password for {user} from 127.0.0.78 port 6000 ssh2"),
    );
    let auth = h.wait_for("the failed password", |e| {
        e.class_uid == 3002 && str_at(e, "user.name") == Some(user.as_str())
    });
    assert!(ids(&set, &auth).contains(&AUTH_FAILURE_RULE.to_owned()));
    h.sensor.stop();
}
