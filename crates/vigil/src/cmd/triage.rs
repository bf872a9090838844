//! `vigil triage`: the live triage package of this host, collected read-only.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use vigil_agent::triage::{self, TriageOptions};

/// Options of `vigil triage`.
#[derive(Debug, Args)]
pub struct TriageArgs {
    /// Write the package here (created 0600; an existing file is refused) instead of stdout.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Read the file-system phases (persistence, recent files) under this root instead of `/`
    /// (a mounted image, say).
    #[arg(long, default_value = "/")]
    root: PathBuf,
    /// Use the built-in file walk even where `find` exists.
    #[arg(long)]
    builtin_walk: bool,
}

pub fn run(args: TriageArgs) -> anyhow::Result<ExitCode> {
    let opts = TriageOptions {
        root: args.root,
        builtin_walk: args.builtin_walk,
    };
    let pkg = triage::collect(&opts);
    let json = serde_json::to_vec_pretty(&pkg).context("encoding the package")?;
    let p = &pkg.phases;
    let summary = [
        (
            "processes",
            p.processes.items.len(),
            p.processes.truncated,
            &p.processes.error,
        ),
        (
            "connections",
            p.connections.items.len(),
            p.connections.truncated,
            &p.connections.error,
        ),
        (
            "persistence",
            p.persistence.items.len(),
            p.persistence.truncated,
            &p.persistence.error,
        ),
        (
            "recent files",
            p.recent_files.items.len(),
            p.recent_files.truncated,
            &p.recent_files.error,
        ),
    ];
    for (name, n, truncated, error) in summary {
        let cut = if truncated { " (bounded)" } else { "" };
        match error {
            Some(e) => eprintln!("triage: {name}: {n}{cut}, error: {e}"),
            None => eprintln!("triage: {name}: {n}{cut}"),
        }
    }
    match args.out {
        Some(path) => {
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&path)
                .with_context(|| format!("cannot create {}", path.display()))?;
            f.write_all(&json)
                .with_context(|| format!("cannot write {}", path.display()))?;
            eprintln!("triage: {} bytes written to {}", json.len(), path.display());
        }
        None => {
            let mut out = std::io::stdout().lock();
            out.write_all(&json)?;
            out.write_all(b"\n")?;
        }
    }
    Ok(ExitCode::SUCCESS)
}
