//! Every event a kernel test receives is checked against the OCSF 1.8.0 schema of its class, so
//! the capture tests prove, with real activity, that what the sensor emits is valid OCSF.

use std::sync::OnceLock;

use vigil_ocsf::schema::Schemas;
use vigil_sensor::vigil_ocsf::Event;

fn schemas() -> &'static Schemas {
    static SCHEMAS: OnceLock<Schemas> = OnceLock::new();
    SCHEMAS.get_or_init(|| {
        Schemas::linux_edr().unwrap_or_else(|error| panic!("loading the OCSF schemas: {error}"))
    })
}

/// Panics, naming every problem, when `event` does not validate against its class's schema.
/// Base Events (class 0, raw log lines) have no class schema beyond the envelope.
pub fn assert_valid(event: &Event) {
    if event.class_uid == 0 {
        return;
    }
    // A process the fallback source saw only after it was gone has no known actor, and says
    // so: that one requirement is excused, nothing else.
    let actor_unknown = event.get("unmapped.actor_unknown") == Some(&serde_json::Value::Bool(true));
    let problems = match schemas().check(event) {
        Ok(()) => return,
        Err(problems) if actor_unknown => problems
            .into_iter()
            .filter(|p| !p.starts_with("/actor:"))
            .collect(),
        Err(problems) => problems,
    };
    if !problems.is_empty() {
        panic!(
            "event of class {} is not valid OCSF 1.8.0:\n  {}\nevent: {}",
            event.class_uid,
            problems.join("\n  "),
            event.data
        );
    }
}
