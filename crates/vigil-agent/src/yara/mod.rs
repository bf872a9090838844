//! YARA-X on the host: every executed file is scanned (once per file version, thanks to a
//! verdict cache), and each match is a finding on the priority lane.
//!
//! Built with the `yara` cargo feature (on by default). The rules come from `--yara-rules`
//! and are compiled once at start ([`vigil_detect::yara::YaraRules::load`]); the scanning
//! itself runs on worker threads fed by a bounded queue ([`ExecScanner`]), so capture never
//! waits for a scan.

mod cache;
mod exec;
#[cfg(test)]
mod tests;

pub use cache::{FileKey, Verdict, VerdictCache, file_key};
pub use exec::{ExecScanConfig, ExecScanCounts, ExecScanner, FindingSink};
