//! Scanning bytes and files with compiled rules.

use std::fmt;
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Duration;

use sha2::{Digest, Sha256};

use super::FileFacts;
use super::rules::YaraRules;

/// Files larger than this are skipped by default (the sensor hashes executables up to the same
/// size).
pub const DEFAULT_MAX_FILE_SIZE: u64 = 64 * 1024 * 1024;
/// How long one scan may run by default.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// A scanner keeps its read buffer between files unless it grew beyond this.
const KEPT_BUFFER: usize = 8 * 1024 * 1024;

/// Bounds on one scan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScanLimits {
    /// Larger files are skipped ([`SkipReason::TooLarge`]) rather than read.
    pub max_file_size: u64,
    /// A scan that runs longer fails with [`ScanError::Timeout`].
    pub timeout: Duration,
}

impl Default for ScanLimits {
    fn default() -> Self {
        Self {
            max_file_size: DEFAULT_MAX_FILE_SIZE,
            timeout: DEFAULT_TIMEOUT,
        }
    }
}

/// One rule that matched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct YaraMatch {
    /// The rule's identifier.
    pub rule: String,
    /// Its namespace (one per rule file, see [`super::YaraRules::load`]).
    pub namespace: String,
    /// Its tags, as written.
    pub tags: Vec<String>,
    /// Its metadata, in order, values as text (`true`, `42`, strings as written).
    pub metadata: Vec<(String, String)>,
    /// The identifiers of its patterns that matched (`$a`, …).
    pub patterns: Vec<String>,
}

impl YaraMatch {
    /// The rule's id, stable across loads: `<namespace>.<rule>`.
    pub fn id(&self) -> String {
        format!("{}.{}", self.namespace, self.rule)
    }

    /// The first metadata value under `key` (compared without regard to ASCII case).
    pub fn meta(&self, key: &str) -> Option<&str> {
        self.metadata
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v.as_str())
    }
}

/// A file that was read and scanned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileScan {
    /// The file as scanned: its SHA-256 is that of the very bytes the rules saw.
    pub file: FileFacts,
    /// The rules that matched (none for a clean file).
    pub matches: Vec<YaraMatch>,
}

/// What became of a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileVerdict {
    /// It was scanned.
    Scanned(FileScan),
    /// It was not scanned, for this reason.
    Skipped(SkipReason),
}

/// Why a file was not scanned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SkipReason {
    /// It is larger than [`ScanLimits::max_file_size`].
    TooLarge {
        /// Its size (or the bytes read before it passed the limit, when it grew meanwhile).
        size: u64,
        /// The limit.
        max: u64,
    },
    /// It is not a regular file (a directory, device, socket or pipe).
    NotRegularFile,
}

impl fmt::Display for SkipReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TooLarge { size, max } => {
                write!(f, "larger than the limit ({size} > {max} bytes)")
            }
            Self::NotRegularFile => f.write_str("not a regular file"),
        }
    }
}

/// Why a scan failed.
#[derive(Debug, thiserror::Error)]
pub enum ScanError {
    /// The file could not be opened or read.
    #[error("cannot read {}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The scan ran past [`ScanLimits::timeout`].
    #[error("the scan timed out after {} s", timeout.as_secs_f64())]
    Timeout {
        /// The limit.
        timeout: Duration,
    },
    /// yara-x reported another error (a module failing on the data).
    #[error("the scan failed: {0}")]
    Engine(String),
}

/// One thread's scanner. yara-x scanners hold per-scan state and are not `Sync`: make one per
/// thread over shared [`YaraRules`] (creating one costs about as much as a small scan).
pub struct YaraScanner<'r> {
    scanner: yara_x::Scanner<'r>,
    limits: ScanLimits,
    buf: Vec<u8>,
}

impl<'r> YaraScanner<'r> {
    /// A scanner over `rules` within `limits`.
    pub fn new(rules: &'r YaraRules, limits: ScanLimits) -> Self {
        let mut scanner = yara_x::Scanner::new(rules.compiled());
        scanner.set_timeout(limits.timeout);
        // A finding needs which rules matched, not every occurrence of their patterns.
        scanner.fast_scan(true);
        Self {
            scanner,
            limits,
            buf: Vec::new(),
        }
    }

    /// The limits in force.
    pub fn limits(&self) -> ScanLimits {
        self.limits
    }

    /// The rules matching `data` (no size limit: the caller holds the bytes already).
    pub fn scan_bytes(&mut self, data: &[u8]) -> Result<Vec<YaraMatch>, ScanError> {
        let timeout = self.limits.timeout;
        let results = self.scanner.scan(data).map_err(|e| match e {
            yara_x::ScanError::Timeout => ScanError::Timeout { timeout },
            other => ScanError::Engine(other.to_string()),
        })?;
        Ok(results.matching_rules().map(|r| to_match(&r)).collect())
    }

    /// Opens, reads, hashes and scans the file at `path`.
    pub fn scan_file(&mut self, path: &Path) -> Result<FileVerdict, ScanError> {
        let file = File::open(path).map_err(|source| ScanError::Io {
            path: path.to_owned(),
            source,
        })?;
        self.scan_open(path, &file)
    }

    /// Reads, hashes and scans `file`, already open, known as `path`. A file that is not a
    /// regular file or is larger than the limit is skipped without being read.
    pub fn scan_open(&mut self, path: &Path, file: &File) -> Result<FileVerdict, ScanError> {
        let io_err = |source| ScanError::Io {
            path: path.to_owned(),
            source,
        };
        let meta = file.metadata().map_err(io_err)?;
        if !meta.is_file() {
            return Ok(FileVerdict::Skipped(SkipReason::NotRegularFile));
        }
        let max = self.limits.max_file_size;
        if meta.len() > max {
            return Ok(FileVerdict::Skipped(SkipReason::TooLarge {
                size: meta.len(),
                max,
            }));
        }
        let mut buf = std::mem::take(&mut self.buf);
        buf.clear();
        let read = file.take(max.saturating_add(1)).read_to_end(&mut buf);
        let verdict = match read {
            Err(source) => Err(io_err(source)),
            Ok(_) if buf.len() as u64 > max => Ok(FileVerdict::Skipped(SkipReason::TooLarge {
                size: buf.len() as u64,
                max,
            })),
            Ok(_) => self.scan_bytes(&buf).map(|matches| {
                FileVerdict::Scanned(FileScan {
                    file: FileFacts {
                        path: path.display().to_string(),
                        sha256: hex::encode(Sha256::digest(&buf)),
                        size: buf.len() as u64,
                    },
                    matches,
                })
            }),
        };
        if buf.capacity() <= KEPT_BUFFER {
            self.buf = buf;
        }
        verdict
    }
}

fn to_match(rule: &yara_x::Rule<'_, '_>) -> YaraMatch {
    YaraMatch {
        rule: rule.identifier().to_owned(),
        namespace: rule.namespace().to_owned(),
        tags: rule.tags().map(|t| t.identifier().to_owned()).collect(),
        metadata: rule
            .metadata()
            .map(|(key, value)| {
                let value = match value {
                    yara_x::MetaValue::Integer(i) => i.to_string(),
                    yara_x::MetaValue::Float(f) => f.to_string(),
                    yara_x::MetaValue::Bool(b) => b.to_string(),
                    yara_x::MetaValue::String(s) => s.to_owned(),
                    yara_x::MetaValue::Bytes(b) => String::from_utf8_lossy(b).into_owned(),
                };
                (key.to_owned(), value)
            })
            .collect(),
        patterns: rule
            .patterns()
            .filter(|p| p.matches().next().is_some())
            .map(|p| p.identifier().to_owned())
            .collect(),
    }
}
