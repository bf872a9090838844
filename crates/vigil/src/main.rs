//! `vigil`: the server roles, `vigil up`, and the operator CLI. Argument parsing and dispatch
//! only; the work happens in the library crates.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod cmd;
mod output;

/// Vigil: endpoint detection and response for Linux fleets.
#[derive(Debug, Parser)]
#[command(version, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the server and a local agent in one process (SQLite, in-process bus).
    Up(cmd::up::UpArgs),
    /// Run the server roles only; agents connect to the fleet address.
    Server(cmd::up::ServerArgs),
    /// Work with detection rules.
    #[command(subcommand)]
    Rules(cmd::rules::RulesCommand),
    /// Benchmarks that print figures (see docs/PERFORMANCE.md).
    #[command(subcommand)]
    Bench(cmd::bench::BenchCommand),
    /// Feed synthetic, deterministic telemetry into a server (see docs/DETECTION.md).
    #[command(subcommand)]
    Inject(cmd::inject::InjectCommand),
    /// Collect this host's live triage package (read-only): processes, connections,
    /// persistence, recent files.
    Triage(cmd::triage::TriageArgs),
    /// Manage operators (on the data directory's store; see docs/API.md).
    #[command(subcommand)]
    User(cmd::user::UserCommand),
    /// Manage operator API tokens (on the data directory's store).
    #[command(subcommand)]
    Token(cmd::user::TokenCommand),
    /// Compile YARA rules and scan files and folders with them on demand.
    #[cfg(feature = "yara")]
    #[command(subcommand)]
    Yara(cmd::yara::YaraCommand),
}

fn main() -> ExitCode {
    vigil_server::pki::install_crypto_provider();
    let cli = Cli::parse();
    output::init_logging();
    let result = match cli.command {
        Command::Up(args) => cmd::up::up(args),
        Command::Server(args) => cmd::up::server(args),
        Command::Rules(c) => cmd::rules::run(c),
        Command::Bench(c) => cmd::bench::run(c),
        Command::Inject(c) => cmd::inject::run(c),
        Command::Triage(a) => cmd::triage::run(a),
        Command::User(c) => cmd::user::run_user(c),
        Command::Token(c) => cmd::user::run_token(c),
        #[cfg(feature = "yara")]
        Command::Yara(c) => cmd::yara::run(c),
    };
    match result {
        Ok(code) => code,
        Err(error) => {
            eprintln!("vigil: error: {}", output::error_line(&error));
            ExitCode::FAILURE
        }
    }
}
