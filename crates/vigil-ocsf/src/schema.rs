//! Validation of events against the OCSF 1.8.0 JSON Schema of their class (cargo feature
//! `schema`).
//!
//! The schemas under `schemas/` are compiled from the OCSF schema source with the profiles Vigil's
//! events use applied (`host`, `container`, `linux/linux_users`, `security_control`,
//! `datetime`). Every OCSF record in them forbids attributes OCSF does not define, so an invented
//! attribute, a wrong enum value or a missing required attribute is caught; `unmapped` stays
//! open for what OCSF has no place for.
//!
//! ```
//! # use vigil_ocsf::{Event, schema::Schemas};
//! let schemas = Schemas::linux_edr().unwrap();
//! let event = Event::from_value(serde_json::json!({"class_uid": 1007, "time": 1})).unwrap();
//! let problems = schemas.check(&event).unwrap_err();
//! assert!(problems.iter().any(|p| p.contains("activity_id")));
//! ```

use serde_json::Value;

use crate::{Event, class};

/// The schema files, one per class Vigil emits.
const SCHEMAS: &[(u32, &str, &str)] = &[
    (
        class::FILE_ACTIVITY,
        "file_activity",
        include_str!("../schemas/file_activity.linux-edr.schema.json"),
    ),
    (
        class::PROCESS_ACTIVITY,
        "process_activity",
        include_str!("../schemas/process_activity.linux-edr.schema.json"),
    ),
    (
        class::DETECTION_FINDING,
        "detection_finding",
        include_str!("../schemas/detection_finding.linux-edr.schema.json"),
    ),
    (
        class::AUTHENTICATION,
        "authentication",
        include_str!("../schemas/authentication.linux-edr.schema.json"),
    ),
    (
        class::NETWORK_ACTIVITY,
        "network_activity",
        include_str!("../schemas/network_activity.linux-edr.schema.json"),
    ),
    (
        class::DNS_ACTIVITY,
        "dns_activity",
        include_str!("../schemas/dns_activity.linux-edr.schema.json"),
    ),
];

/// Why the schemas could not be loaded.
#[derive(Debug, thiserror::Error)]
#[error("OCSF schema {name}: {reason}")]
pub struct SchemaError {
    name: &'static str,
    reason: String,
}

/// Compiled validators for every class Vigil emits.
pub struct Schemas {
    validators: Vec<(u32, &'static str, jsonschema::Validator)>,
}

impl std::fmt::Debug for Schemas {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.validators.iter().map(|(_, name, _)| name))
            .finish()
    }
}

impl Schemas {
    /// Compiles the vendored schemas (about a tenth of a second; do it once).
    pub fn linux_edr() -> Result<Self, SchemaError> {
        let validators = SCHEMAS
            .iter()
            .map(|&(class_uid, name, text)| {
                let fail = |reason: String| SchemaError { name, reason };
                let schema: Value = serde_json::from_str(text).map_err(|e| fail(e.to_string()))?;
                let validator =
                    jsonschema::validator_for(&schema).map_err(|e| fail(e.to_string()))?;
                Ok((class_uid, name, validator))
            })
            .collect::<Result<_, SchemaError>>()?;
        Ok(Self { validators })
    }

    /// The schema's name (`process_activity`, …) for a class, `None` for a class with no
    /// schema here.
    pub fn name(&self, class_uid: u32) -> Option<&'static str> {
        self.validators
            .iter()
            .find(|(c, _, _)| *c == class_uid)
            .map(|(_, name, _)| *name)
    }

    /// Validates an event against its class's schema. The error lists every problem as
    /// `<JSON pointer>: <what is wrong>`; a class with no schema is itself a problem.
    pub fn check(&self, event: &Event) -> Result<(), Vec<String>> {
        let Some((_, _, validator)) = self
            .validators
            .iter()
            .find(|(c, _, _)| *c == event.class_uid)
        else {
            return Err(vec![format!(
                "class_uid {} has no OCSF schema here",
                event.class_uid
            )]);
        };
        let problems: Vec<String> = validator
            .iter_errors(&event.data)
            .map(|error| format!("{}: {error}", error.instance_path()))
            .collect();
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_schema_compiles_and_names_its_class() {
        let schemas = Schemas::linux_edr().unwrap();
        assert_eq!(schemas.name(class::DNS_ACTIVITY), Some("dns_activity"));
        assert_eq!(schemas.name(0), None);
    }

    #[test]
    fn a_valid_event_passes_and_an_invented_attribute_or_wrong_enum_value_does_not() {
        let schemas = Schemas::linux_edr().unwrap();
        let valid = serde_json::json!({
            "class_uid": 1007, "category_uid": 1, "activity_id": 1, "type_uid": 100701,
            "severity_id": 1, "time": 1,
            "metadata": {"version": "1.8.0", "product": {"name": "Vigil"}},
            "device": {"type_id": 0, "hostname": "h"},
            "actor": {"process": {"pid": 1}},
            "process": {"pid": 2, "cmd_line": "/bin/true"},
        });
        assert_eq!(
            schemas.check(&Event::from_value(valid.clone()).unwrap()),
            Ok(())
        );
        let mut bad = valid;
        bad["invented"] = Value::from(1);
        bad["activity_id"] = Value::from(77);
        let problems = schemas.check(&Event::from_value(bad).unwrap()).unwrap_err();
        assert!(
            problems.iter().any(|p| p.contains("invented")),
            "{problems:?}"
        );
        assert!(
            problems.iter().any(|p| p.starts_with("/activity_id")),
            "{problems:?}"
        );
        let unknown = Event::from_value(serde_json::json!({"class_uid": 0, "time": 1})).unwrap();
        assert!(schemas.check(&unknown).is_err());
    }
}
