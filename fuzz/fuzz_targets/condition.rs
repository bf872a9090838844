//! Any string as a rule's condition, and any modifier chain on a field, over fixed selections.
//! The first line of the input is the condition, the second the modifier chain, the rest the
//! value.
#![no_main]

use std::path::Path;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use vigil_detect::RuleSet;
use vigil_ocsf::Event;
use vigil_ocsf::fieldmap::FieldMaps;

fn maps() -> &'static FieldMaps {
    static MAPS: OnceLock<FieldMaps> = OnceLock::new();
    MAPS.get_or_init(|| FieldMaps::builtin().expect("builtin field maps"))
}

fuzz_target!(|data: &str| {
    let mut parts = data.splitn(3, '\n');
    let condition = parts.next().unwrap_or_default();
    let chain = parts.next().unwrap_or_default();
    let value = parts.next().unwrap_or_default();
    let field = if chain.is_empty() {
        "CommandLine".to_owned()
    } else {
        format!("CommandLine|{}", chain.replace(['\n', ':', '#'], ""))
    };
    let q = |s: &str| serde_json::to_string(s).unwrap_or_default();
    let rule = format!(
        "title: fuzz\nid: 00000000-0000-4000-8000-000000000002\n\
         logsource: {{category: process_creation, product: linux}}\n\
         detection:\n  sel:\n    {}: {}\n  sel_a:\n    Image|endswith: /sh\n  \
         filter:\n    User: root\n  condition: {}\nlevel: low\n",
        q(&field),
        q(value),
        q(condition),
    );
    let (set, _) = RuleSet::load_str(&rule, Path::new("fuzz.yml"), maps());
    let ev = Event::from_json(
        br#"{"class_uid":1007,"activity_id":1,"time":1,"process":{"file":{"path":"/bin/sh"},"cmd_line":"sh -c id","user":{"name":"root"}}}"#,
    )
    .expect("a valid event");
    let _ = set.matches_all(&ev).count();
});
