//! The Sigma field → OCSF attribute map, as data.
//!
//! Each file under `mappings/` describes one Sigma logsource: the OCSF class (and optionally the
//! activity) its events have, and for every Sigma field the OCSF paths it reads. The files are
//! compiled into the crate so every binary agrees on them.
//!
//! A logsource may have several maps, one per *view*: Sigma's auditd records describe both an
//! exec (Process Activity) and the files a system call wrote (File System Activity), so a rule
//! of that logsource is compiled once for each view it can apply to. The first map of a
//! logsource is its primary one. A file may hold several maps as YAML documents.

use std::collections::HashMap;

use serde::Deserialize;

/// Built-in mapping files, one per supported logsource.
const BUILTIN: &[(&str, &str)] = &[
    (
        "process_creation.yaml",
        include_str!("../mappings/process_creation.yaml"),
    ),
    (
        "network_connection.yaml",
        include_str!("../mappings/network_connection.yaml"),
    ),
    (
        "file_event.yaml",
        include_str!("../mappings/file_event.yaml"),
    ),
    ("auditd.yaml", include_str!("../mappings/auditd.yaml")),
    (
        "auditd_path.yaml",
        include_str!("../mappings/auditd_path.yaml"),
    ),
    ("log_linux.yaml", include_str!("../mappings/log_linux.yaml")),
    (
        "log_syslog.yaml",
        include_str!("../mappings/log_syslog.yaml"),
    ),
    ("log_sshd.yaml", include_str!("../mappings/log_sshd.yaml")),
    ("log_cron.yaml", include_str!("../mappings/log_cron.yaml")),
    (
        "log_vsftpd.yaml",
        include_str!("../mappings/log_vsftpd.yaml"),
    ),
    (
        "log_clamav.yaml",
        include_str!("../mappings/log_clamav.yaml"),
    ),
    (
        "log_guacamole.yaml",
        include_str!("../mappings/log_guacamole.yaml"),
    ),
    ("auth.yaml", include_str!("../mappings/auth.yaml")),
    ("dns_query.yaml", include_str!("../mappings/dns_query.yaml")),
];

/// Why a mapping file is unusable.
#[derive(Debug, thiserror::Error)]
#[error("field map {name}: {source}")]
pub struct FieldMapError {
    name: String,
    #[source]
    source: serde_yaml::Error,
}

/// A Sigma logsource selector.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogSource {
    /// Sigma `category`.
    #[serde(default)]
    pub category: Option<String>,
    /// Sigma `product`.
    #[serde(default)]
    pub product: Option<String>,
    /// Sigma `service`.
    #[serde(default)]
    pub service: Option<String>,
}

/// How one Sigma logsource maps onto OCSF.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FieldMap {
    /// The logsource this map serves.
    pub logsource: LogSource,
    /// The view's name when the logsource has several maps (`path-create`); `None` for the
    /// primary one.
    #[serde(default)]
    pub view: Option<String>,
    /// Whether a Sigma field the map neither maps nor fixes is absent from the view's events
    /// (an auditd PATH record has no `a0`) instead of unknown. A rule naming such a field is
    /// compiled with the field absent; it is kept for the view only if what is left still
    /// depends on the event.
    #[serde(default)]
    pub closed: bool,
    /// OCSF class of the events this logsource describes.
    pub class_uid: u32,
    /// OCSF activity, when the logsource is one activity of the class.
    #[serde(default)]
    pub activity_id: Option<u32>,
    /// Sigma field name → OCSF attribute paths.
    pub fields: HashMap<String, Vec<String>>,
    /// Events of the class that are *not* of this logsource: OCSF path → values. An event whose
    /// attribute at the path equals one of the values is excluded (an absent attribute never
    /// excludes, so third-party events that lack it still apply).
    #[serde(default)]
    pub exclude: HashMap<String, Vec<serde_json::Value>>,
    /// The events of the class that *are* of this logsource: OCSF path → values. When set, an
    /// event applies only if its attribute at one of the paths equals one of the values (an
    /// absent attribute does not qualify). A log service (`sshd`, `cron`) names the programs
    /// whose lines it covers this way.
    #[serde(default)]
    pub include: HashMap<String, Vec<serde_json::Value>>,
    /// Sigma fields whose values are the same for every event of this logsource: the record
    /// types of the auditd view (`type: [EXECVE, SYSCALL, PATH]` for an exec). A rule's test of
    /// such a field is decided when the rule is compiled.
    #[serde(default)]
    pub constants: HashMap<String, Vec<String>>,
}

impl FieldMap {
    /// Whether the event is excluded from this logsource by [`FieldMap::exclude`].
    pub fn excludes(&self, event: &crate::Event) -> bool {
        excluded(&self.exclude, event) || !included(&self.include, event)
    }

    /// The constant values of a Sigma field, matching the name exactly, then ignoring case.
    pub fn constant(&self, sigma_field: &str) -> Option<&[String]> {
        lookup(&self.constants, sigma_field).map(Vec::as_slice)
    }
}

/// Whether `event` qualifies under `include`: it is empty, or the event has one of the listed
/// values at one of its paths.
pub fn included(include: &HashMap<String, Vec<serde_json::Value>>, event: &crate::Event) -> bool {
    include.is_empty()
        || include
            .iter()
            .any(|(path, values)| event.get(path).is_some_and(|v| values.contains(v)))
}

/// A Sigma field's entry, by exact name, else ignoring ASCII case.
fn lookup<'m, T>(map: &'m HashMap<String, T>, sigma_field: &str) -> Option<&'m T> {
    map.get(sigma_field).or_else(|| {
        map.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(sigma_field))
            .map(|(_, v)| v)
    })
}

/// Whether `event` has, at any path of `exclude`, one of the values listed for it.
pub fn excluded(exclude: &HashMap<String, Vec<serde_json::Value>>, event: &crate::Event) -> bool {
    exclude
        .iter()
        .any(|(path, values)| event.get(path).is_some_and(|v| values.contains(v)))
}

impl FieldMap {
    /// The OCSF paths for a Sigma field, matching the field name exactly, then ignoring case.
    pub fn paths(&self, sigma_field: &str) -> Option<&[String]> {
        lookup(&self.fields, sigma_field).map(Vec::as_slice)
    }
}

/// All field maps Vigil knows.
#[derive(Debug, Clone)]
pub struct FieldMaps {
    maps: Vec<FieldMap>,
}

impl FieldMaps {
    /// The maps compiled into Vigil.
    pub fn builtin() -> Result<Self, FieldMapError> {
        let mut maps = Vec::new();
        for (name, text) in BUILTIN {
            for doc in serde_yaml::Deserializer::from_str(text) {
                let map = FieldMap::deserialize(doc).map_err(|source| FieldMapError {
                    name: (*name).into(),
                    source,
                })?;
                maps.push(map);
            }
        }
        Ok(Self { maps })
    }

    /// The map for a rule's logsource. `product` must match when both name one; `category` and
    /// `service` must be equal.
    pub fn for_logsource(&self, ls: &LogSource) -> Option<&FieldMap> {
        self.views(ls).next()
    }

    /// Every map of a rule's logsource, the primary one first.
    pub fn views<'a, 'l>(
        &'a self,
        ls: &'l LogSource,
    ) -> impl Iterator<Item = &'a FieldMap> + use<'a, 'l> {
        self.maps.iter().filter(move |m| {
            m.logsource.category == ls.category
                && m.logsource.service == ls.service
                && match (&m.logsource.product, &ls.product) {
                    (Some(a), Some(b)) => a.eq_ignore_ascii_case(b),
                    _ => true,
                }
        })
    }

    /// The map of one view of a logsource (`None`: the primary one).
    pub fn view(&self, ls: &LogSource, view: Option<&str>) -> Option<&FieldMap> {
        self.views(ls).find(|m| m.view.as_deref() == view)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_maps_parse_and_resolve_process_creation() {
        let maps = FieldMaps::builtin().unwrap();
        let ls = LogSource {
            category: Some("process_creation".into()),
            product: Some("linux".into()),
            service: None,
        };
        let map = maps.for_logsource(&ls).unwrap();
        assert_eq!(map.class_uid, 1007);
        assert_eq!(map.paths("commandline").unwrap(), ["process.cmd_line"]);
        assert!(map.paths("NoSuchField").is_none());
        let exec = crate::Event::from_value(serde_json::json!(
            {"class_uid": 1007, "time": 1, "launch_type_id": 3}))
        .unwrap();
        let fork = crate::Event::from_value(serde_json::json!(
            {"class_uid": 1007, "time": 1, "launch_type_id": 2}))
        .unwrap();
        let bare =
            crate::Event::from_value(serde_json::json!({"class_uid": 1007, "time": 1})).unwrap();
        assert!(map.excludes(&fork), "a fork runs no new program");
        assert!(!map.excludes(&exec));
        assert!(!map.excludes(&bare), "an absent attribute never excludes");
        let windows = LogSource {
            product: Some("windows".into()),
            ..ls
        };
        assert!(maps.for_logsource(&windows).is_none());
    }

    #[test]
    fn file_event_reads_file_activity_paths() {
        use crate::{Actor, Device, File, FileActivity, FileActivityId, Metadata, Process};
        let maps = FieldMaps::builtin().unwrap();
        let ls = LogSource {
            category: Some("file_event".into()),
            product: Some("linux".into()),
            service: None,
        };
        let map = maps.for_logsource(&ls).unwrap();
        assert_eq!(map.class_uid, 1001);
        let event = |activity, new: Option<&str>| {
            let actor = Actor {
                process: Some(Process {
                    pid: 7,
                    name: "wget".into(),
                    file: Some(File::regular("/usr/bin/wget")),
                    ..Default::default()
                }),
                user: None,
            };
            let mut record = FileActivity::new(
                activity,
                1,
                Metadata::vigil("test"),
                Device::default(),
                actor,
                File::at("/tmp/payload", 1),
            );
            record.file_result = new.map(|p| File::at(p, 1));
            crate::Event::from_record(&record).unwrap()
        };
        // Every path the map names is where a FileActivity puts it.
        let rename = event(FileActivityId::Rename, Some("/etc/cron.d/job"));
        for (field, want) in [
            ("TargetFilename", "/etc/cron.d/job"),
            ("Image", "/usr/bin/wget"),
            ("ProcessId", "7"),
        ] {
            let paths = map.paths(field).unwrap();
            let found = paths.iter().find_map(|p| rename.get(p)).map(|v| match v {
                serde_json::Value::String(s) => s.clone(),
                other => other.to_string(),
            });
            assert_eq!(found.as_deref(), Some(want), "{field}");
        }
        assert!(!map.excludes(&event(FileActivityId::Create, None)));
        assert!(!map.excludes(&event(FileActivityId::Update, None)));
        assert!(!map.excludes(&rename));
        assert!(map.excludes(&event(FileActivityId::Delete, None)));
        assert!(map.excludes(&event(FileActivityId::SetAttributes, None)));
    }
}
