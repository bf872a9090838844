//! Loads an eBPF object (embedded at build time), relocates it against the running kernel's
//! BTF, and attaches its programs to their `tp_btf` tracepoints.

use std::time::{Duration, Instant};

use aya::maps::{Array, HashMap, MapData, RingBuf};
use aya::programs::{BtfTracePoint, ProgramError};
use aya::{Btf, BtfError, Ebpf, EbpfLoader};

use super::record::{Listener, ListenerKey, Owner};
use crate::source::proc_net::ListeningSocket;
use crate::{SensorError, clock};

/// One program of an object and its hook.
#[derive(Debug)]
pub(crate) struct ProgramSpec {
    /// The C function's name.
    pub(crate) name: &'static str,
    /// The tracepoint, as BTF names it (`btf_trace_<name>`).
    pub(crate) tracepoint: &'static str,
    /// For messages: `tp_btf/<tracepoint>`.
    pub(crate) hook: &'static str,
    /// Whether the object is useless without it. Other programs that fail to load or attach
    /// leave the source running, degraded, and say so in its capability.
    pub(crate) required: bool,
}

/// An object file and what it holds.
#[derive(Debug)]
pub(crate) struct ObjectSpec {
    pub(crate) object: &'static str,
    pub(crate) bytes: fn() -> &'static [u8],
    pub(crate) events: &'static str,
    pub(crate) drops: &'static str,
    pub(crate) programs: &'static [ProgramSpec],
}

/// `bpf/process.bpf.c`.
pub(crate) const PROCESS: ObjectSpec = ObjectSpec {
    object: "process.bpf.o",
    bytes: || aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/process.bpf.o")),
    events: "PROCESS_EVENTS",
    drops: "PROCESS_DROPS",
    programs: &[
        ProgramSpec {
            name: "handle_exec",
            tracepoint: "sched_process_exec",
            hook: "tp_btf/sched_process_exec",
            required: true,
        },
        ProgramSpec {
            name: "handle_fork",
            tracepoint: "sched_process_fork",
            hook: "tp_btf/sched_process_fork",
            required: false,
        },
        ProgramSpec {
            name: "handle_exit",
            tracepoint: "sched_process_exit",
            hook: "tp_btf/sched_process_exit",
            required: false,
        },
    ],
};

/// `bpf/tcp.bpf.c`.
pub(crate) const TCP: ObjectSpec = ObjectSpec {
    object: "tcp.bpf.o",
    bytes: || aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/tcp.bpf.o")),
    events: "TCP_EVENTS",
    drops: "TCP_DROPS",
    programs: &[
        ProgramSpec {
            name: "handle_set_state",
            tracepoint: "inet_sock_set_state",
            hook: "tp_btf/inet_sock_set_state",
            required: true,
        },
        ProgramSpec {
            name: "handle_send_reset",
            tracepoint: "tcp_send_reset",
            hook: "tp_btf/tcp_send_reset",
            required: false,
        },
    ],
};

const LISTENERS_MAP: &str = "LISTENERS";
/// `BPF_NOEXIST` of `include/uapi/linux/bpf.h`: insert only if the key is absent.
const BPF_NOEXIST: u64 = 1;

/// A loaded object with its programs attached.
pub(crate) struct LoadedObject {
    /// Owns the programs and their links: dropping it detaches them.
    pub(crate) ebpf: Ebpf,
    /// The ring buffer of records.
    pub(crate) events: RingBuf<MapData>,
    /// One u64: ring buffer reservations that failed in the kernel.
    pub(crate) drops: Array<MapData, u64>,
    /// Optional programs that are not running, each with why.
    pub(crate) degraded: Vec<String>,
    /// Time from loading to the last program being attached.
    pub(crate) load_time: Duration,
}

/// The running kernel's BTF, read once for every object.
pub(crate) fn read_btf() -> Result<Btf, SensorError> {
    Btf::from_sys_fs().map_err(|source| SensorError::Btf {
        source: Box::new(source),
    })
}

/// Loads `spec` and attaches its programs. When this returns, every later event of the
/// attached hooks lands in `events`.
pub(crate) fn load(spec: &ObjectSpec, btf: &Btf) -> Result<LoadedObject, SensorError> {
    let started = Instant::now();
    let mut ebpf = EbpfLoader::new()
        .btf(Some(btf))
        .load((spec.bytes)())
        .map_err(|source| SensorError::Object {
            object: spec.object,
            source: Box::new(source),
        })?;
    let missing = |kind, name| SensorError::Missing {
        object: spec.object,
        kind,
        name,
    };
    let map_error = |map, source| SensorError::Map {
        map,
        source: Box::new(source),
    };
    let events = ebpf
        .take_map(spec.events)
        .ok_or_else(|| missing("map", spec.events))?;
    let events = RingBuf::try_from(events).map_err(|e| map_error(spec.events, e))?;
    let drops = ebpf
        .take_map(spec.drops)
        .ok_or_else(|| missing("map", spec.drops))?;
    let drops = Array::try_from(drops).map_err(|e| map_error(spec.drops, e))?;

    let mut degraded = Vec::new();
    for program in spec.programs {
        let tracepoint = tracepoint_of(program);
        match attach(&mut ebpf, program, &tracepoint, btf) {
            Ok(()) => {}
            Err(error) if !program.required => {
                tracing::warn!(%error, hook = program.hook, "An optional eBPF program is off");
                degraded.push(format!("tp_btf/{tracepoint} unavailable: {error}"));
            }
            Err(error) => return Err(error),
        }
    }
    Ok(LoadedObject {
        ebpf,
        events,
        drops,
        degraded,
        load_time: started.elapsed(),
    })
}

/// Test seam, documented in docs/DETECTION.md: a comma-separated list of `real=replacement`
/// tracepoint names. A program whose tracepoint is named there attaches to the replacement
/// instead, so a test can ask for a tracepoint the kernel does not have and watch the real
/// loader fail. Unset (the default), every program attaches to its own tracepoint.
pub(crate) const TRACEPOINT_OVERRIDE_ENV: &str = "VIGIL_SENSOR_TRACEPOINT_OVERRIDE";

/// The tracepoint `spec` attaches to: its own, unless [`TRACEPOINT_OVERRIDE_ENV`] renames it.
fn tracepoint_of(spec: &ProgramSpec) -> String {
    let overrides = std::env::var(TRACEPOINT_OVERRIDE_ENV).unwrap_or_default();
    match override_for(&overrides, spec.tracepoint) {
        Some(replacement) => {
            tracing::warn!(
                tracepoint = spec.tracepoint,
                replacement,
                "{TRACEPOINT_OVERRIDE_ENV} renames a tracepoint (a test seam)"
            );
            replacement.to_owned()
        }
        None => spec.tracepoint.to_owned(),
    }
}

/// The replacement `overrides` (`real=replacement,…`) names for `tracepoint`.
fn override_for<'a>(overrides: &'a str, tracepoint: &str) -> Option<&'a str> {
    overrides.split(',').find_map(|pair| {
        let (real, replacement) = pair.split_once('=')?;
        (real.trim() == tracepoint && !replacement.trim().is_empty()).then(|| replacement.trim())
    })
}

fn attach(
    ebpf: &mut Ebpf,
    spec: &ProgramSpec,
    tracepoint: &str,
    btf: &Btf,
) -> Result<(), SensorError> {
    let error = |action, source| SensorError::Program {
        program: spec.name,
        hook: spec.hook,
        action,
        source: Box::new(source),
    };
    let program: &mut BtfTracePoint = ebpf
        .program_mut(spec.name)
        .ok_or(SensorError::Missing {
            object: "eBPF object",
            kind: "program",
            name: spec.name,
        })?
        .try_into()
        .map_err(|source| error("load", source))?;
    program
        .load(tracepoint, btf)
        .map_err(|source| match source {
            ProgramError::Btf(BtfError::UnknownBtfTypeName { .. }) => SensorError::NoTracepoint {
                program: spec.name,
                tracepoint: tracepoint.to_owned(),
            },
            source => error("load", source),
        })?;
    program.attach().map_err(|source| error("attach", source))?;
    Ok(())
}

/// Tells the TCP program who owns the listening sockets that existed before it was attached, so
/// inbound connections to them are attributed. Returns how many were written.
pub(crate) fn seed_listeners(
    tcp: &mut LoadedObject,
    netns: u32,
    listeners: &[ListeningSocket],
) -> Result<usize, SensorError> {
    let map = tcp
        .ebpf
        .map_mut(LISTENERS_MAP)
        .ok_or(SensorError::Missing {
            object: TCP.object,
            kind: "map",
            name: LISTENERS_MAP,
        })?;
    let mut map: HashMap<_, ListenerKey, Listener> =
        HashMap::try_from(map).map_err(|source| SensorError::Map {
            map: LISTENERS_MAP,
            source: Box::new(source),
        })?;
    let hz = clock::ticks_per_sec();
    let mut written = 0;
    for socket in listeners {
        let Some(owner) = &socket.owner else {
            continue;
        };
        let key = ListenerKey {
            netns,
            port: socket.local.port(),
            _pad: 0,
        };
        let mut comm = [0u8; super::record::COMM_LEN];
        let name = owner.comm.as_bytes();
        let len = name.len().min(comm.len() - 1);
        comm[..len].copy_from_slice(&name[..len]);
        let value = Listener {
            owner: Owner {
                start_boottime_ns: clock::ticks_to_boot_ns(owner.start_ticks, hz),
                pid: owner.pid,
                tid: owner.pid,
                uid: owner.uid,
                _pad: 0,
                comm,
            },
            sk: 0,
        };
        // BPF_NOEXIST: a listener the program saw itself is fresher than our /proc reading.
        match map.insert(key, value, BPF_NOEXIST) {
            Ok(()) => written += 1,
            Err(error) => {
                tracing::debug!(%error, port = socket.local.port(), "Listener not seeded");
            }
        }
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::override_for;

    #[test]
    fn tracepoint_overrides_rename_only_what_they_name() {
        let env = "tcp_send_reset=vigil_no_such_tracepoint, sched_process_fork = other";
        assert_eq!(
            override_for(env, "tcp_send_reset"),
            Some("vigil_no_such_tracepoint")
        );
        assert_eq!(override_for(env, "sched_process_fork"), Some("other"));
        assert_eq!(override_for(env, "inet_sock_set_state"), None);
        assert_eq!(override_for("", "tcp_send_reset"), None);
        assert_eq!(override_for("tcp_send_reset=", "tcp_send_reset"), None);
    }
}
