//! The harness shared by the kernel tests: start a sensor, wait for a matching event, and the
//! assertions every launch of a test child must satisfy.
// Each test binary uses a different subset of these helpers.
#![allow(dead_code)]

pub mod netns;
pub mod ocsf_schema;
pub mod syslog;

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tokio::sync::mpsc::{self, Receiver};
use vigil_sensor::vigil_ocsf::Event;
use vigil_sensor::{FileConfig, Sensor, SensorConfig, SourceMode};

/// Upper bound on waiting for one event; it normally arrives within milliseconds.
pub const EVENT_TIMEOUT: Duration = Duration::from_secs(10);

#[macro_export]
macro_rules! skip_unless_root {
    () => {
        if !nix::unistd::geteuid().is_root() {
            eprintln!("skipping: needs root (CAP_BPF/CAP_NET_ADMIN)");
            return;
        }
    };
}

/// A predicate on events, for [`Harness::wait_for_all`].
pub type Wanted<'a> = dyn Fn(&Event) -> bool + 'a;

pub struct Harness {
    pub sensor: Sensor,
    pub events: Receiver<Event>,
    pub runtime: tokio::runtime::Runtime,
}

impl Harness {
    /// A sensor in `mode` without file capture (its filesystem-wide events would only crowd
    /// the channel of tests about processes and sockets).
    pub fn start(mode: SourceMode) -> Self {
        Self::start_with(SensorConfig {
            mode,
            files: FileConfig::disabled(),
            ..Default::default()
        })
    }

    pub fn start_with(config: SensorConfig) -> Self {
        let mode = config.mode;
        let (sink, events) = mpsc::channel(4096);
        let started = Instant::now();
        let sensor = Sensor::start(config, sink)
            .unwrap_or_else(|error| panic!("sensor did not start in {mode:?}: {error}"));
        eprintln!(
            "Sensor::start({mode:?}) -> {} in {:?}",
            sensor.exec_source(),
            started.elapsed()
        );
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap_or_else(|error| panic!("tokio runtime: {error}"));
        Self {
            sensor,
            events,
            runtime,
        }
    }

    /// The first event matching `wanted`, waiting at most [`EVENT_TIMEOUT`].
    pub fn wait_for(&mut self, what: &str, wanted: impl Fn(&Event) -> bool) -> Event {
        self.collect_until(what, wanted)
            .pop()
            .unwrap_or_else(|| unreachable!())
    }

    /// Every event up to and including the first one matching `wanted`.
    pub fn collect_until(&mut self, what: &str, wanted: impl Fn(&Event) -> bool) -> Vec<Event> {
        let deadline = Instant::now() + EVENT_TIMEOUT;
        let mut seen = Vec::new();
        loop {
            let event = self.next_event(what, deadline);
            let done = wanted(&event);
            seen.push(event);
            if done {
                return seen;
            }
        }
    }

    /// The first event matching each of `wanted`, in whatever order they arrive.
    pub fn wait_for_all(&mut self, wanted: &[(&str, &Wanted<'_>)]) -> Vec<Event> {
        let deadline = Instant::now() + EVENT_TIMEOUT;
        let mut found: Vec<Option<Event>> = vec![None; wanted.len()];
        while found.iter().any(Option::is_none) {
            let missing: Vec<&str> = wanted
                .iter()
                .zip(&found)
                .filter(|(_, f)| f.is_none())
                .map(|((what, _), _)| *what)
                .collect();
            let event = self.next_event(&missing.join(", "), deadline);
            for ((_, matches), slot) in wanted.iter().zip(found.iter_mut()) {
                if slot.is_none() && matches(&event) {
                    *slot = Some(event.clone());
                }
            }
        }
        found.into_iter().flatten().collect()
    }

    fn next_event(&mut self, what: &str, deadline: Instant) -> Event {
        let left = deadline.saturating_duration_since(Instant::now());
        let events = &mut self.events;
        let next = self
            .runtime
            .block_on(async { tokio::time::timeout(left, events.recv()).await });
        match next {
            Ok(Some(event)) => {
                ocsf_schema::assert_valid(&event);
                event
            }
            Ok(None) => panic!("sensor closed its channel while waiting for {what}"),
            Err(_) => panic!(
                "no event for {what} within {EVENT_TIMEOUT:?} (dropped: {})",
                self.sensor.dropped()
            ),
        }
    }
}

pub fn nonce(prefix: &str) -> String {
    let random = RandomState::new().hash_one(Instant::now());
    format!("{prefix}-{random:016x}")
}

pub fn str_at<'e>(event: &'e Event, path: &str) -> Option<&'e str> {
    event.get(path).and_then(|v| v.as_str())
}

pub fn u64_at(event: &Event, path: &str) -> Option<u64> {
    event.get(path).and_then(|v| v.as_u64())
}

pub fn i64_at(event: &Event, path: &str) -> Option<i64> {
    event.get(path).and_then(|v| v.as_i64())
}

/// A Process Activity Launch by exec (launch type 3).
pub fn is_exec(event: &Event) -> bool {
    event.class_uid == 1007
        && u64_at(event, "activity_id") == Some(1)
        && u64_at(event, "launch_type_id") == Some(3)
}

/// A Process Activity Launch by fork (launch type 2).
pub fn is_fork(event: &Event) -> bool {
    event.class_uid == 1007
        && u64_at(event, "activity_id") == Some(1)
        && u64_at(event, "launch_type_id") == Some(2)
}

/// A Process Activity Terminate.
pub fn is_exit(event: &Event) -> bool {
    event.class_uid == 1007 && u64_at(event, "activity_id") == Some(2)
}

/// The exec whose command line holds `nonce`.
pub fn cmd_line_contains(nonce: &str) -> impl Fn(&Event) -> bool + '_ {
    move |event| {
        is_exec(event) && str_at(event, "process.cmd_line").is_some_and(|c| c.contains(nonce))
    }
}

/// The exec of `pid`.
pub fn pid_is(pid: u32) -> impl Fn(&Event) -> bool {
    move |event| is_exec(event) && u64_at(event, "process.pid") == Some(u64::from(pid))
}

/// `process.pid` of a process event.
pub fn pid_of(event: &Event) -> Option<u32> {
    u64_at(event, "process.pid").and_then(|p| u32::try_from(p).ok())
}

/// `<pid>-<starttime>` from `/proc/<pid>/stat`, readable until the child is reaped.
pub fn proc_uid(pid: u32) -> String {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .unwrap_or_else(|error| panic!("reading /proc/{pid}/stat: {error}"));
    let after_comm = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let start = after_comm.split_whitespace().nth(19).unwrap_or("?");
    format!("{pid}-{start}")
}

pub fn test_binary() -> String {
    std::env::current_exe()
        .unwrap_or_else(|error| panic!("current_exe: {error}"))
        .to_string_lossy()
        .into_owned()
}

pub fn spawn(command: &mut Command) -> Child {
    command
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|error| panic!("spawning {command:?}: {error}"))
}

/// What every launch event of a child of this test must say about its parent and user.
pub fn assert_child_of_this_test(event: &Event, log_name: &str) {
    assert_eq!(str_at(event, "metadata.log_name"), Some(log_name));
    assert_eq!(u64_at(event, "class_uid"), Some(1007));
    assert_eq!(u64_at(event, "activity_id"), Some(1), "Launch");
    assert_eq!(
        u64_at(event, "process.parent_process.pid"),
        Some(u64::from(std::process::id()))
    );
    assert_eq!(
        str_at(event, "process.parent_process.file.path"),
        Some(test_binary().as_str())
    );
    assert_eq!(str_at(event, "process.user.uid"), Some("0"));
    assert_eq!(str_at(event, "process.user.name"), Some("root"));
    assert_eq!(u64_at(event, "process.euid"), Some(0));
    assert_eq!(u64_at(event, "process.egid"), Some(0));
    let now = vigil_sensor::vigil_ocsf::now_ms();
    assert!(
        (event.time - now).abs() < 60_000,
        "time {} vs now {now}",
        event.time
    );
    let created = event.get("process.created_time").and_then(|v| v.as_i64());
    assert!(
        created.is_some_and(|c| c <= event.time + 20),
        "created {created:?}"
    );
}
