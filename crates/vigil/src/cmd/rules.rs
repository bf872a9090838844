//! `vigil rules check DIR…`: what Vigil makes of a rule corpus.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Subcommand;
use vigil_detect::{LoadReport, RuleSet, RuleStatus};
use vigil_ocsf::fieldmap::FieldMaps;

/// `vigil rules …`
#[derive(Debug, Subcommand)]
pub enum RulesCommand {
    /// Load every rule under the folders; list each one that does not load, with the reason, and
    /// a summary by logsource. Exits 1 when a rule is malformed.
    Check {
        /// Rule folders (searched recursively for *.yml / *.yaml).
        #[arg(required = true)]
        dirs: Vec<PathBuf>,
    },
    /// Replay a file of events (OCSF or flat Sysmon-style JSON lines) through the rules and
    /// write the findings as JSON lines, with a summary on stderr.
    Eval(super::eval::EvalArgs),
}

/// Runs a rules subcommand.
pub fn run(cmd: RulesCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        RulesCommand::Check { dirs } => check(&dirs),
        RulesCommand::Eval(args) => super::eval::run(&args),
    }
}

fn check(dirs: &[PathBuf]) -> anyhow::Result<ExitCode> {
    let maps = FieldMaps::builtin()?;
    let (_, report) = RuleSet::load_dirs(dirs, &maps)?;
    for r in report.problems() {
        let (kind, reason) = match &r.status {
            RuleStatus::Loaded => continue,
            RuleStatus::NotApplicable(why) => ("not applicable", why),
            RuleStatus::Unsupported(why) => ("unsupported", why),
            RuleStatus::Malformed(why) => ("MALFORMED", why),
        };
        println!("{}: {kind}: {reason}", r.path.display());
    }
    print_summary(&report);
    Ok(if report.malformed() > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

fn print_summary(report: &LoadReport) {
    println!();
    println!(
        "{:<48} {:>7} {:>9} {:>12} {:>10}",
        "logsource", "loaded", "n/a", "unsupported", "malformed"
    );
    for (logsource, c) in report.counts_by_logsource() {
        let name = if logsource.is_empty() {
            "(unreadable)"
        } else {
            logsource
        };
        println!(
            "{name:<48} {:>7} {:>9} {:>12} {:>10}",
            c.loaded, c.not_applicable, c.unsupported, c.malformed
        );
    }
    let c = report.counts();
    println!(
        "{:<48} {:>7} {:>9} {:>12} {:>10}",
        "total", c.loaded, c.not_applicable, c.unsupported, c.malformed
    );
}
