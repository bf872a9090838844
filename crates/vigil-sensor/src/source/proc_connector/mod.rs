//! Process lifecycle capture through the netlink process connector (`CONFIG_PROC_EVENTS`): the
//! fallback when eBPF cannot load.
//!
//! The kernel only says "pid N exec'd", "N forked M", "N exited with status S"; everything else
//! is read from `/proc/N` afterwards (`listener`) or taken from the process cache. That races
//! with short-lived processes: a process that exits before the read yields an exec event with
//! only its pid and time, and one that exec's again in between is reported with its newer image.
//! Exits are those of thread-group leaders. `message` parses datagrams, `socket` owns the netlink
//! socket.

mod listener;
pub(crate) mod message;
mod socket;

pub(crate) use listener::run;
pub(crate) use socket::ProcConnectorSocket;
