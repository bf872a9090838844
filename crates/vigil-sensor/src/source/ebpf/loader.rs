//! Loads an eBPF object (embedded at build time), relocates it against the running kernel's
//! BTF, and attaches its programs to their `tp_btf` tracepoints.

use std::time::{Duration, Instant};

use aya::maps::{Array, HashMap, MapData, RingBuf};
use aya::programs::BtfTracePoint;
use aya::{Btf, Ebpf, EbpfLoader};

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
        match attach(&mut ebpf, program, btf) {
            Ok(()) => {}
            Err(error) if !program.required => {
                tracing::warn!(%error, hook = program.hook, "An optional eBPF program is off");
                degraded.push(format!("{} unavailable: {error}", program.hook));
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

fn attach(ebpf: &mut Ebpf, spec: &ProgramSpec, btf: &Btf) -> Result<(), SensorError> {
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
        .load(spec.tracepoint, btf)
        .map_err(|source| error("load", source))?;
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
