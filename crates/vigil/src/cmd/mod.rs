//! One module per subcommand.

pub mod bench;
pub mod bench_deploy;
mod bench_events;
pub mod bench_sensor;
pub mod eval;
pub mod inject;
pub mod rules;
pub mod triage;
pub mod up;
pub mod user;
#[cfg(feature = "yara")]
pub mod yara;
