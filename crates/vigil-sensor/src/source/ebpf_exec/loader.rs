//! Loads `exec.bpf.o` (embedded at build time) and attaches it to `sched_process_exec`.

use std::time::{Duration, Instant};

use aya::maps::{Array, MapData, RingBuf};
use aya::programs::BtfTracePoint;
use aya::{Btf, Ebpf, EbpfLoader};

use crate::SensorError;

const OBJECT: &str = "exec.bpf.o";
const PROGRAM: &str = "handle_exec";
const TRACEPOINT: &str = "sched_process_exec";
const HOOK: &str = "tp_btf/sched_process_exec";
const EVENTS_MAP: &str = "EXEC_EVENTS";
const DROPS_MAP: &str = "EXEC_DROPS";

/// The loaded, attached exec program and its maps.
pub(crate) struct LoadedExec {
    /// Owns the program and its link: dropping it detaches the program.
    pub(crate) ebpf: Ebpf,
    /// The ring buffer of `struct vigil_exec_record`.
    pub(crate) events: RingBuf<MapData>,
    /// One u64: ring buffer reservations that failed in the kernel.
    pub(crate) drops: Array<MapData, u64>,
    /// Time from reading BTF to the program being attached.
    pub(crate) load_time: Duration,
}

/// Loads the program, relocating it against the running kernel's BTF, and attaches it. When
/// this returns, every later exec on the host lands in `events`.
pub(crate) fn load_and_attach() -> Result<LoadedExec, SensorError> {
    let started = Instant::now();
    let btf = Btf::from_sys_fs().map_err(|source| SensorError::Btf {
        source: Box::new(source),
    })?;
    let object = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/exec.bpf.o"));
    let mut ebpf = EbpfLoader::new()
        .btf(Some(&btf))
        .load(object)
        .map_err(|source| SensorError::Object {
            object: OBJECT,
            source: Box::new(source),
        })?;

    let events = ebpf.take_map(EVENTS_MAP).ok_or(SensorError::Missing {
        object: OBJECT,
        kind: "map",
        name: EVENTS_MAP,
    })?;
    let events = RingBuf::try_from(events).map_err(|source| SensorError::Map {
        map: EVENTS_MAP,
        source: Box::new(source),
    })?;
    let drops = ebpf.take_map(DROPS_MAP).ok_or(SensorError::Missing {
        object: OBJECT,
        kind: "map",
        name: DROPS_MAP,
    })?;
    let drops = Array::try_from(drops).map_err(|source| SensorError::Map {
        map: DROPS_MAP,
        source: Box::new(source),
    })?;

    let program: &mut BtfTracePoint = ebpf
        .program_mut(PROGRAM)
        .ok_or(SensorError::Missing {
            object: OBJECT,
            kind: "program",
            name: PROGRAM,
        })?
        .try_into()
        .map_err(|source| program_error("load", source))?;
    program
        .load(TRACEPOINT, &btf)
        .map_err(|source| program_error("load", source))?;
    program
        .attach()
        .map_err(|source| program_error("attach", source))?;

    Ok(LoadedExec {
        ebpf,
        events,
        drops,
        load_time: started.elapsed(),
    })
}

fn program_error(action: &'static str, source: aya::programs::ProgramError) -> SensorError {
    SensorError::Program {
        program: PROGRAM,
        hook: HOOK,
        action,
        source: Box::new(source),
    }
}
