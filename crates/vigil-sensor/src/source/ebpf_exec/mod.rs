//! Exec capture with the `tp_btf/sched_process_exec` eBPF program (`bpf/exec.bpf.c`).
//!
//! `loader` loads and attaches it, `record` mirrors its ring buffer record, `drain` reads the
//! ring buffer on a dedicated thread.

mod drain;
mod loader;
pub(crate) mod record;

pub(crate) use drain::run;
pub(crate) use loader::{LoadedExec, load_and_attach};
