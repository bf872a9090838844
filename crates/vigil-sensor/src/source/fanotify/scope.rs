//! Which paths are reported: at or under a watched path and not at or under an excluded one.
//!
//! The filesystem-wide mark delivers every change on the file system, most of it elsewhere, so
//! the answer is worked out once per *directory* ([`DirScope`], cached with the directory's
//! handle): for most events a cache hit and one comparison decide, with no allocation.

/// The watched and excluded path prefixes, as absolute paths without a trailing `/`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Scope {
    watched: Vec<String>,
    excluded: Vec<String>,
}

/// What is reported of a directory's entries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Children {
    /// Every entry: the directory is watched and nothing right inside it is excluded.
    All,
    /// No entry: the directory is excluded, or neither it nor any entry of it is watched.
    None,
    /// Some entries: a watched or excluded path is an entry of this directory, so each entry's
    /// full path must be checked.
    Check,
}

/// The verdict for one directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct DirScope {
    /// For its entries.
    pub(crate) children: Children,
    /// For the directory itself (events reported with the name `.`).
    pub(crate) itself: bool,
}

/// Whether `path` is `prefix` or below it, by whole components.
pub(crate) fn is_under(path: &str, prefix: &str) -> bool {
    prefix == "/"
        || path
            .strip_prefix(prefix)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

/// `path` without its last component (`/` for `/x`, `None` for `/`).
fn parent(path: &str) -> Option<&str> {
    match path.rsplit_once('/')? {
        ("", "") => None,
        ("", _) => Some("/"),
        (parent, _) => Some(parent),
    }
}

/// `dir/name`.
pub(crate) fn join(dir: &str, name: &str) -> String {
    let mut path = String::with_capacity(dir.len() + 1 + name.len());
    path.push_str(dir);
    if !dir.ends_with('/') {
        path.push('/');
    }
    path.push_str(name);
    path
}

/// An absolute path with `.`/`..`/empty components folded and no trailing `/`; `None` for a
/// relative path.
pub(crate) fn normalise(path: &str) -> Option<String> {
    if !path.starts_with('/') {
        return None;
    }
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            part => parts.push(part),
        }
    }
    Some(format!("/{}", parts.join("/")))
}

impl Scope {
    /// A scope over normalised absolute paths (see [`normalise`]).
    pub(crate) fn new(watched: Vec<String>, excluded: Vec<String>) -> Self {
        Self { watched, excluded }
    }

    /// The watched paths.
    pub(crate) fn watched(&self) -> &[String] {
        &self.watched
    }

    /// The excluded paths.
    pub(crate) fn excluded(&self) -> &[String] {
        &self.excluded
    }

    /// Whether activity on `path` is reported.
    pub(crate) fn reports(&self, path: &str) -> bool {
        self.watched.iter().any(|w| is_under(path, w))
            && !self.excluded.iter().any(|e| is_under(path, e))
    }

    /// What is reported in and of the directory `dir`.
    pub(crate) fn dir(&self, dir: &str) -> DirScope {
        let child_of_dir = |p: &String| parent(p) == Some(dir);
        let children = if self.excluded.iter().any(|e| is_under(dir, e)) {
            Children::None
        } else if self.watched.iter().any(|w| is_under(dir, w)) {
            if self.excluded.iter().any(child_of_dir) {
                Children::Check
            } else {
                Children::All
            }
        } else if self.watched.iter().any(child_of_dir) {
            Children::Check
        } else {
            Children::None
        };
        DirScope {
            children,
            itself: self.reports(dir),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scope(watched: &[&str], excluded: &[&str]) -> Scope {
        let own = |v: &[&str]| v.iter().map(|s| (*s).to_owned()).collect();
        Scope::new(own(watched), own(excluded))
    }

    #[test]
    fn prefixes_match_whole_components() {
        assert!(is_under("/etc/passwd", "/etc"));
        assert!(is_under("/etc", "/etc"));
        assert!(!is_under("/etcetera", "/etc"));
        assert!(!is_under("/", "/etc"));
        assert!(is_under("/anything", "/"));
        assert_eq!(parent("/etc/cron.d"), Some("/etc"));
        assert_eq!(parent("/etc"), Some("/"));
        assert_eq!(parent("/"), None);
        assert_eq!(join("/", "etc"), "/etc");
        assert_eq!(join("/etc", "passwd"), "/etc/passwd");
    }

    #[test]
    fn paths_are_normalised() {
        assert_eq!(normalise("/etc/").as_deref(), Some("/etc"));
        assert_eq!(
            normalise("//usr/./bin/../sbin").as_deref(),
            Some("/usr/sbin")
        );
        assert_eq!(normalise("/").as_deref(), Some("/"));
        assert_eq!(normalise("etc"), None);
    }

    #[test]
    fn watched_and_excluded_paths_decide() {
        let s = scope(&["/etc", "/tmp"], &["/tmp/vigil-data"]);
        assert!(s.reports("/etc/cron.d/job"));
        assert!(s.reports("/tmp/x"));
        assert!(!s.reports("/tmp/vigil-data"));
        assert!(!s.reports("/tmp/vigil-data/buffer.db"));
        assert!(!s.reports("/var/log/syslog"));
        assert!(!s.reports("/etcetera"));
    }

    #[test]
    fn directory_verdicts() {
        let s = scope(&["/etc", "/tmp", "/var/spool/cron"], &["/tmp/vigil-data"]);
        let all = |itself| DirScope {
            children: Children::All,
            itself,
        };
        let check = |itself| DirScope {
            children: Children::Check,
            itself,
        };
        let none = |itself| DirScope {
            children: Children::None,
            itself,
        };
        assert_eq!(s.dir("/etc"), all(true));
        assert_eq!(s.dir("/etc/cron.d"), all(true));
        // An excluded entry right inside: each entry is checked.
        assert_eq!(s.dir("/tmp"), check(true));
        assert_eq!(s.dir("/tmp/vigil-data"), none(false));
        assert_eq!(s.dir("/tmp/vigil-data/sub"), none(false));
        assert_eq!(s.dir("/tmp/other"), all(true));
        // A watched path right inside: `rm -r /tmp` or `mkdir /var/spool/cron` is seen.
        assert_eq!(s.dir("/"), check(false));
        assert_eq!(s.dir("/var/spool"), check(false));
        // Deeper watched paths do not make a directory interesting.
        assert_eq!(s.dir("/var"), none(false));
        assert_eq!(s.dir("/usr/lib"), none(false));
    }
}
