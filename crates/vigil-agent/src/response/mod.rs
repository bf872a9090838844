//! Response actions the agent carries out on its own host (issue #6).
//!
//! One file per action, each with its own error type; [`dispatch`] turns a command from the
//! server (an action name and JSON arguments) into a call and an [`Outcome`]. Everything here acts
//! on the local host only and verifies what it did by reading the kernel back (/proc, the nftables
//! ruleset, the file system): a report says what *is*, not what was asked.
//!
//! | action | module | undo |
//! |---|---|---|
//! | isolate the host (nftables) | [`isolate`] | [`isolate::Isolator::release`] |
//! | kill a process or tree, suspend, resume | [`process`] | — / [`process::resume`] |
//! | quarantine a file | [`quarantine`] | [`quarantine::Vault::restore`] |
//! | log a user off | [`logoff`] | — |
//! | deny execution by path or SHA-256 (fanotify) | [`exec_deny`] | `allow_*` |
//!
//! State that must survive an agent restart (the isolation plan, the deny list, the quarantine
//! manifests) is kept in the agent's data directory in files readable by root only.

pub mod dispatch;
pub mod exec_deny;
pub mod isolate;
pub mod logoff;
mod persist;
pub mod process;
mod procfs;
pub mod quarantine;

pub use dispatch::{Outcome, Responder, ResponderConfig};
