//! YARA-X: rule files compiled once, files scanned against them, matches turned into findings.
//!
//! Behind the `yara` cargo feature (yara-x costs minutes to build and megabytes of binary), so
//! the rest of the engine builds without it. The pieces:
//! - [`YaraRules::load`] compiles every `*.yar`/`*.yara` under some directories, one YARA
//!   namespace per file (the file's path under its directory, without extension, in which
//!   characters other than letters, digits and `_` become `_`), so two files may name a rule
//!   alike. A file that does not compile fails the whole load with its path, line and column
//!   and yara-x's own report.
//! - [`YaraScanner`] is one thread's scanner over those rules (yara-x scanners are not `Sync`):
//!   [`YaraScanner::scan_file`] reads a file at most [`ScanLimits::max_file_size`] long,
//!   hashes it (SHA-256) and scans the very bytes it hashed, under a timeout; a larger file or
//!   one that is not a regular file is skipped with the reason ([`SkipReason`]), never
//!   silently.
//! - [`yara_finding`] makes the OCSF Detection Finding of a match (see its documentation for
//!   the mapping of metadata and tags to severity and ATT&CK).

mod finding;
mod rules;
mod scanner;
#[cfg(test)]
mod tests;

pub use finding::{FileFacts, attack_tags, yara_finding};
pub use rules::{CompileDiagnostic, LoadSummary, RuleFile, YaraError, YaraRules};
pub use scanner::{
    DEFAULT_MAX_FILE_SIZE, DEFAULT_TIMEOUT, FileScan, FileVerdict, ScanError, ScanLimits,
    SkipReason, YaraMatch, YaraScanner,
};
