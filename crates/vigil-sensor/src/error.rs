//! The sensor's error type.

use std::error::Error;
use std::fmt;
use std::io;

/// Why the sensor, or one of its capture sources, could not start.
///
/// Each message already spells out its causes down to the OS error (for aya errors that
/// includes the verifier log), so logging `%error` alone tells the operator what to fix; the
/// causes also stay reachable through [`Error::source`].
#[derive(Debug, thiserror::Error)]
pub enum SensorError {
    /// The running kernel's BTF (`/sys/kernel/btf/vmlinux`) could not be read or parsed; CO-RE
    /// programs cannot be relocated without it.
    #[error("cannot read kernel BTF from /sys/kernel/btf/vmlinux: {}", Chain(.source.as_ref()))]
    Btf {
        /// The aya BTF error.
        #[source]
        source: Box<aya::BtfError>,
    },
    /// The embedded eBPF object could not be loaded: ELF parsing, map creation or CO-RE
    /// relocation failed.
    #[error("cannot load eBPF object `{object}`: {}", Chain(.source.as_ref()))]
    Object {
        /// The object's name (`process.bpf.o`).
        object: &'static str,
        /// The aya load error.
        #[source]
        source: Box<aya::EbpfError>,
    },
    /// The eBPF object lacks a program or map this crate expects (a build mismatch).
    #[error("eBPF object `{object}` has no {kind} named `{name}`")]
    Missing {
        /// The object's name.
        object: &'static str,
        /// `program` or `map`.
        kind: &'static str,
        /// The missing program's or map's name.
        name: &'static str,
    },
    /// An eBPF program failed to load (verifier) or attach.
    #[error("cannot {action} eBPF program `{program}` ({hook}): {}", Chain(.source.as_ref()))]
    Program {
        /// The program's name.
        program: &'static str,
        /// The hook it is for, e.g. `tp_btf/sched_process_exec`.
        hook: &'static str,
        /// `load` or `attach`.
        action: &'static str,
        /// The aya error; for `load` it carries the verifier log.
        #[source]
        source: Box<aya::programs::ProgramError>,
    },
    /// The running kernel has no such tracepoint: its BTF has no `btf_trace_<name>`.
    #[error(
        "the kernel has no tracepoint `{tracepoint}` (no `btf_trace_{tracepoint}` in \
         /sys/kernel/btf/vmlinux), so eBPF program `{program}` cannot attach"
    )]
    NoTracepoint {
        /// The program's name.
        program: &'static str,
        /// The tracepoint asked for.
        tracepoint: String,
    },
    /// An eBPF map could not be opened as the expected type (ring buffer, array).
    #[error("cannot open eBPF map `{map}`: {}", Chain(.source.as_ref()))]
    Map {
        /// The map's name.
        map: &'static str,
        /// The aya map error.
        #[source]
        source: Box<aya::maps::MapError>,
    },
    /// A step of setting up the netlink proc connector failed (needs CAP_NET_ADMIN, the initial
    /// network namespace and `CONFIG_PROC_EVENTS`).
    #[error("proc connector: cannot {step}: {source}")]
    ProcConnector {
        /// What was being done (`open the netlink socket`, `subscribe`, …).
        step: &'static str,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// A step of setting up file activity capture failed (needs Linux 5.9+ for
    /// `FAN_REPORT_DFID_NAME`, CAP_SYS_ADMIN for filesystem marks and CAP_DAC_READ_SEARCH to
    /// name directories).
    #[error("fanotify: cannot {step}: {source}")]
    Fanotify {
        /// What was being done (`create the fanotify group`, `mark the file systems …`).
        step: &'static str,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// Login capture could not start: nothing to read, or no inotify instance.
    #[error("login capture: cannot {step}: {source}")]
    Auth {
        /// What was being done (`find something to read`, `create an inotify instance`).
        step: &'static str,
        /// The OS error, or why nothing could be read.
        #[source]
        source: io::Error,
    },
    /// DNS capture could not start: the packet socket could not be opened, filtered or bound
    /// (it needs CAP_NET_RAW).
    #[error("DNS capture: cannot {step}: {source}")]
    Dns {
        /// What was being done (`open a packet socket`, `attach the port-53 filter`, …).
        step: &'static str,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// A capture thread or its stop signal could not be created.
    #[error("cannot start the {source_kind} capture thread: {source}")]
    Thread {
        /// Which source the thread was for.
        source_kind: &'static str,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// `SourceMode::Auto` tried every process source and none started.
    #[error(
        "no process capture source could start; eBPF: {ebpf}; proc connector: {proc_connector}"
    )]
    NoSource {
        /// Why eBPF failed.
        ebpf: Box<SensorError>,
        /// Why the proc connector failed.
        proc_connector: Box<SensorError>,
    },
}

/// Renders an error and its causes as `a: b: c`, skipping a cause whose text is already shown
/// (aya often repeats its source in its own message).
struct Chain<'a>(&'a (dyn Error + 'static));

impl fmt::Display for Chain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut text = self.0.to_string();
        let mut cause = self.0.source();
        while let Some(error) = cause {
            let more = error.to_string();
            if !text.contains(&more) {
                text.push_str(": ");
                text.push_str(&more);
            }
            cause = error.source();
        }
        f.write_str(&text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn map_error_shows_the_os_error_once() {
        let source = aya::maps::MapError::CreateError {
            name: "EXEC_EVENTS".into(),
            io_error: io::Error::from_raw_os_error(libc::EPERM),
        };
        let error = SensorError::Map {
            map: "EXEC_EVENTS",
            source: Box::new(source),
        };
        let text = error.to_string();
        assert!(
            text.starts_with("cannot open eBPF map `EXEC_EVENTS`: "),
            "{text}"
        );
        assert_eq!(text.matches("Operation not permitted").count(), 1, "{text}");
    }
}
