//! One module per subcommand.

pub mod bench;
pub mod rules;
pub mod up;
