//! Loading and compiling YARA rule files.

use std::fmt;
use std::path::{Path, PathBuf};

use serde_json::Value;

/// One rule file that compiled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleFile {
    /// The file.
    pub path: PathBuf,
    /// The YARA namespace its rules live in.
    pub namespace: String,
    /// How many rules it defines (private and global ones included).
    pub rules: usize,
}

/// What a load compiled.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LoadSummary {
    /// The rule files, in the order they were compiled (sorted by path within each directory).
    pub files: Vec<RuleFile>,
    /// Rules in all.
    pub rules: usize,
    /// The compiler's warnings (slow patterns, unsatisfiable conditions, …), each rendered as
    /// yara-x reports it, file and line included.
    pub warnings: Vec<String>,
}

/// Where and why a rule file did not compile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompileDiagnostic {
    /// The file holding the error (an included file when the error is in one).
    pub path: PathBuf,
    /// 1-based line (0 when yara-x gave no location).
    pub line: usize,
    /// 1-based column (0 when yara-x gave no location).
    pub column: usize,
    /// The error in one line, e.g. `syntax error`, `unknown identifier `foo``.
    pub title: String,
    /// yara-x's full report: the code, the offending lines, labels and hints.
    pub report: String,
}

impl fmt::Display for CompileDiagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}",
            self.path.display(),
            self.line,
            self.column,
            self.title
        )
    }
}

/// Why rules could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum YaraError {
    /// A rule file or directory could not be read.
    #[error("{}: {source}", path.display())]
    Read {
        /// The file or directory.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The paths named hold no `*.yar` or `*.yara` file.
    #[error("no YARA rule file (*.yar, *.yara) in {}", list(paths))]
    NoRuleFiles {
        /// The paths searched.
        paths: Vec<PathBuf>,
    },
    /// Rule files did not compile: every error, each with its file and line.
    #[error("{}", compile_message(.0))]
    Compile(Vec<CompileDiagnostic>),
}

fn list(paths: &[PathBuf]) -> String {
    let names: Vec<_> = paths.iter().map(|p| p.display().to_string()).collect();
    names.join(", ")
}

fn compile_message(errors: &[CompileDiagnostic]) -> String {
    let mut text = match errors {
        [one] => format!("a YARA rule file does not compile: {one}"),
        _ => format!("{} YARA compile errors:", errors.len()),
    };
    if errors.len() > 1 {
        for e in errors {
            text.push_str(&format!("\n  {e}"));
        }
    }
    for e in errors {
        text.push_str("\n\n");
        text.push_str(e.report.trim_end());
    }
    text
}

/// Compiled YARA rules, shared by every [`super::YaraScanner`] (they are `Send + Sync`).
pub struct YaraRules {
    rules: yara_x::Rules,
    summary: LoadSummary,
}

impl fmt::Debug for YaraRules {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("YaraRules")
            .field("summary", &self.summary)
            .finish_non_exhaustive()
    }
}

impl YaraRules {
    /// Compiles every `*.yar` and `*.yara` file under `paths` (directories are walked
    /// recursively, in sorted order, without following symbolic links to directories; a path
    /// that is a file is compiled whatever its extension). Each file gets its own namespace.
    /// Fails when a path cannot be read, when no rule file is found, or when any file does
    /// not compile (then every compile error is reported, not just the first).
    pub fn load(paths: &[PathBuf]) -> Result<Self, YaraError> {
        let mut files = Vec::new();
        for root in paths {
            collect(root, &mut files)?;
        }
        if files.is_empty() {
            return Err(YaraError::NoRuleFiles {
                paths: paths.to_vec(),
            });
        }
        let mut sources: Vec<(PathBuf, String, Vec<u8>)> = Vec::with_capacity(files.len());
        for (path, mut namespace) in files {
            // Two directories may hold files of the same relative name: keep namespaces apart.
            let base = namespace.clone();
            let mut n = 1;
            while sources.iter().any(|(_, ns, _)| *ns == namespace) {
                n += 1;
                namespace = format!("{base}_{n}");
            }
            let text = std::fs::read(&path).map_err(|source| YaraError::Read {
                path: path.clone(),
                source,
            })?;
            sources.push((path, namespace, text));
        }
        Self::compile(
            sources
                .iter()
                .map(|(p, ns, text)| (p.as_path(), ns.as_str(), text.as_slice())),
        )
    }

    /// Compiles one rule text, as if read from `origin`, into namespace `namespace`.
    pub fn from_source(namespace: &str, origin: &Path, text: &str) -> Result<Self, YaraError> {
        Self::compile(std::iter::once((origin, namespace, text.as_bytes())))
    }

    fn compile<'s>(
        sources: impl Iterator<Item = (&'s Path, &'s str, &'s [u8])>,
    ) -> Result<Self, YaraError> {
        let mut compiler = yara_x::Compiler::new();
        let mut errors = Vec::new();
        let mut files = Vec::new();
        for (path, namespace, text) in sources {
            compiler.new_namespace(namespace);
            let before = compiler.errors().len();
            let source = yara_x::SourceCode::from(text).with_origin(path.display().to_string());
            // The error returned is also in `errors()`, which holds every error of the file.
            let _ = compiler.add_source(source);
            errors.extend(
                compiler.errors()[before..]
                    .iter()
                    .map(|e| diagnostic(path, e)),
            );
            files.push(RuleFile {
                path: path.to_owned(),
                namespace: namespace.to_owned(),
                rules: 0,
            });
        }
        if !errors.is_empty() {
            return Err(YaraError::Compile(errors));
        }
        let rules = compiler.build();
        for rule in rules.iter() {
            if let Some(file) = files.iter_mut().find(|f| f.namespace == rule.namespace()) {
                file.rules += 1;
            }
        }
        let summary = LoadSummary {
            rules: rules.iter().count(),
            warnings: rules.warnings().iter().map(|w| w.to_string()).collect(),
            files,
        };
        Ok(Self { rules, summary })
    }

    /// What was compiled.
    pub fn summary(&self) -> &LoadSummary {
        &self.summary
    }

    /// How many rules there are.
    pub fn len(&self) -> usize {
        self.summary.rules
    }

    /// Every rule's id, `<namespace>.<rule>` (as [`super::YaraMatch::id`]), in compile order.
    pub fn rule_ids(&self) -> Vec<String> {
        self.rules
            .iter()
            .map(|r| format!("{}.{}", r.namespace(), r.identifier()))
            .collect()
    }

    /// Whether there is no rule at all (a file may hold only comments).
    pub fn is_empty(&self) -> bool {
        self.summary.rules == 0
    }

    pub(super) fn compiled(&self) -> &yara_x::Rules {
        &self.rules
    }
}

/// Adds the rule files of `root` (a file, or a directory walked recursively) to `out`, with
/// their namespaces.
fn collect(root: &Path, out: &mut Vec<(PathBuf, String)>) -> Result<(), YaraError> {
    let read_err = |path: &Path| {
        let path = path.to_owned();
        move |source| YaraError::Read { path, source }
    };
    let meta = std::fs::metadata(root).map_err(read_err(root))?;
    if meta.is_file() {
        let stem = root.file_stem().unwrap_or(root.as_os_str());
        out.push((root.to_owned(), namespace(Path::new(stem))));
        return Ok(());
    }
    let mut pending = vec![root.to_owned()];
    let mut found = Vec::new();
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).map_err(read_err(&dir))? {
            let entry = entry.map_err(read_err(&dir))?;
            let path = entry.path();
            let kind = entry.file_type().map_err(read_err(&path))?;
            if kind.is_dir() {
                pending.push(path);
            } else if is_rule_file(&path)
                && (kind.is_file() || std::fs::metadata(&path).is_ok_and(|m| m.is_file()))
            {
                found.push(path);
            }
        }
    }
    found.sort();
    for path in found {
        let relative = path.strip_prefix(root).unwrap_or(&path);
        let ns = namespace(&relative.with_extension(""));
        out.push((path, ns));
    }
    Ok(())
}

fn is_rule_file(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e.eq_ignore_ascii_case("yar") || e.eq_ignore_ascii_case("yara"))
}

/// A namespace from a relative path without extension: `linux/miners` → `linux_miners`.
fn namespace(relative: &Path) -> String {
    let ns: String = relative
        .to_string_lossy()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    if ns.is_empty() { "default".into() } else { ns }
}

/// The location and text of a compile error. yara-x serialises each label with its origin,
/// line and column; the first label at error level locates the error.
fn diagnostic(path: &Path, error: &yara_x::errors::CompileError) -> CompileDiagnostic {
    let labels: Vec<Value> = error
        .labels()
        .filter_map(|l| serde_json::to_value(&l).ok())
        .collect();
    let label = labels
        .iter()
        .find(|l| l["level"] == "error")
        .or(labels.first());
    let number = |key: &str| {
        label
            .and_then(|l| l[key].as_u64())
            .and_then(|n| usize::try_from(n).ok())
            .unwrap_or(0)
    };
    CompileDiagnostic {
        path: label
            .and_then(|l| l["code_origin"].as_str())
            .map_or_else(|| path.to_owned(), PathBuf::from),
        line: number("line"),
        column: number("column"),
        title: error.title().to_owned(),
        report: error.to_string(),
    }
}
