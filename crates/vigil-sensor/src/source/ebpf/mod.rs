//! Capture with the eBPF programs in `bpf/`: `process.bpf.c` (exec, fork, exit) and `tcp.bpf.c`
//! (TCP state transitions and resets for closed ports).
//!
//! `loader` loads and attaches an object, `record` mirrors the records they write, `drain` reads
//! both ring buffers on one thread, in event order, and `observe` and `tcp` turn records into
//! observations.
//!
//! Who owns a socket (`actor` of Network Activity): the process that called `connect()` for
//! outbound connections, the process that called `listen()` on the port for inbound ones (also
//! for listeners older than the sensor: `/proc` seeds the kernel's listener table at start), and
//! nobody for resets of closed ports. Inbound transitions are never attributed to the task the
//! softirq happens to run in; see `bpf/tcp.bpf.c`.

mod drain;
mod loader;
mod observe;
pub(crate) mod record;
mod tcp;

pub(crate) use drain::{Rings, run};
pub(crate) use loader::{LoadedObject, PROCESS, TCP, load, read_btf, seed_listeners};
