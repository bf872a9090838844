//! A log line as an OCSF Base Event (class 0): what Sigma's keyword rules on system logs
//! (`service: sshd`, `cron`, `syslog`, …) read.
//!
//! The line's program is in `metadata.log_provider` (`sshd`, `CRON`, `sudo`), so a logsource map
//! selects the lines of one service by it; `message` is the text after the syslog header and
//! `raw_data` the whole line.

use serde::{Deserialize, Serialize};

use crate::{Device, Metadata, class};

/// `activity_id` of every log line: 99 Other (the Base Event has no other activity).
pub const LOG_LINE_ACTIVITY: u8 = 99;

/// The syslog header's facts that OCSF has no attribute for.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyslogHeader {
    /// The host name the header names.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    /// The logging process's id (`sshd[1234]`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<u32>,
    /// The facility (`auth`, `authpriv`, `cron`, …), when the source says it (the journal
    /// does; a log file does not).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub facility: Option<String>,
}

/// `unmapped` of a log line.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogLineUnmapped {
    /// The syslog header.
    pub syslog: SyslogHeader,
}

/// One log line, as an OCSF Base Event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LogLine {
    /// Always 99 (Other).
    pub activity_id: u8,
    /// Always `Other`.
    pub activity_name: String,
    /// Always 0 (Uncategorized).
    pub category_uid: u8,
    /// Always 0 (Base Event).
    pub class_uid: u32,
    /// `class_uid * 100 + activity_id`: 99.
    pub type_uid: u32,
    /// Severity (1 = Informational).
    pub severity_id: u8,
    /// When the line was logged (its header's time stamp), milliseconds since the epoch.
    pub time: i64,
    /// `log_name` is the log (`/var/log/auth.log`, `journal`), `log_provider` the program.
    pub metadata: Metadata,
    /// The host.
    pub device: Device,
    /// The text after the syslog header.
    pub message: String,
    /// The whole line.
    pub raw_data: String,
    /// The syslog header.
    pub unmapped: LogLineUnmapped,
}

impl LogLine {
    /// A log line read from `metadata.log_name`.
    pub fn new(
        time: i64,
        metadata: Metadata,
        device: Device,
        message: String,
        raw_data: String,
        syslog: SyslogHeader,
    ) -> Self {
        Self {
            activity_id: LOG_LINE_ACTIVITY,
            activity_name: "Other".into(),
            category_uid: 0,
            class_uid: class::BASE_EVENT,
            type_uid: class::BASE_EVENT * 100 + u32::from(LOG_LINE_ACTIVITY),
            severity_id: 1,
            time,
            metadata,
            device,
            message,
            raw_data,
            unmapped: LogLineUnmapped { syslog },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Event;

    #[test]
    fn log_line_is_a_base_event_with_its_provider() {
        let mut metadata = Metadata::vigil("/var/log/auth.log");
        metadata.log_provider = Some("CRON".into());
        let line = LogLine::new(
            5,
            metadata,
            Device::default(),
            "pam_unix(cron:session): session closed for user root".into(),
            "Nov 23 10:00:01 web01 CRON[77]: pam_unix(cron:session): session closed for user root"
                .into(),
            SyslogHeader {
                hostname: Some("web01".into()),
                pid: Some(77),
                facility: None,
            },
        );
        let ev = Event::from_record(&line).unwrap();
        let s = |p: &str| ev.get(p).and_then(|v| v.as_str()).map(str::to_owned);
        let n = |p: &str| ev.get(p).and_then(|v| v.as_u64());
        assert_eq!(ev.class_uid, 0);
        assert_eq!(n("category_uid"), Some(0));
        assert_eq!(n("activity_id"), Some(99));
        assert_eq!(n("type_uid"), Some(99));
        assert_eq!(s("metadata.log_provider").as_deref(), Some("CRON"));
        assert_eq!(s("metadata.log_name").as_deref(), Some("/var/log/auth.log"));
        assert_eq!(s("unmapped.syslog.hostname").as_deref(), Some("web01"));
        assert_eq!(n("unmapped.syslog.pid"), Some(77));
        assert!(ev.get("unmapped.syslog.facility").is_none());
        assert!(s("raw_data").is_some_and(|r| r.ends_with(&line.message)));
    }
}
