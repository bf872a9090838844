//! Command lines and executable paths: the pure string work shared by every source.

/// Joins raw argv bytes (NUL-separated, as in `/proc/<pid>/cmdline` or `mm->arg_start`) with
/// single spaces; trailing NULs are dropped and invalid UTF-8 is replaced.
pub(crate) fn join_argv(raw: &[u8]) -> String {
    let end = raw.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1);
    let joined: Vec<u8> = raw[..end]
        .iter()
        .map(|&b| if b == 0 { b' ' } else { b })
        .collect();
    String::from_utf8_lossy(&joined).into_owned()
}

/// The arguments in raw argv bytes, each whole (spaces kept); trailing NULs are dropped and
/// invalid UTF-8 is replaced.
pub(crate) fn split_argv(raw: &[u8]) -> Vec<String> {
    let end = raw.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1);
    if end == 0 {
        return Vec::new();
    }
    raw[..end]
        .split(|&b| b == 0)
        .map(|arg| String::from_utf8_lossy(arg).into_owned())
        .collect()
}

/// The last path component (`/usr/bin/echo` → `echo`).
pub(crate) fn basename(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

/// The absolute path of an executed file, given the name passed to `execve` (`bprm->filename`),
/// and, if they could be read, the process's `/proc/<pid>/exe` and `/proc/<pid>/cwd`.
///
/// - An absolute name is kept as given (the kernel opened exactly that; symlinks are not
///   resolved, so `/bin/echo` stays `/bin/echo`).
/// - `execveat`/`fexecve` names (`/dev/fd/<n>…`) and relative names take `exe` when it names
///   the same file. `exe` is the *interpreter* for scripts, so when the base names differ the
///   name is joined to `cwd` instead.
/// - With neither available the name is returned unchanged.
pub(crate) fn resolve_exec_path(filename: &str, exe: Option<&str>, cwd: Option<&str>) -> String {
    let by_fd = filename.starts_with("/dev/fd/");
    if filename.starts_with('/') && !by_fd {
        return filename.to_owned();
    }
    let exe = exe.filter(|e| e.starts_with('/'));
    if let Some(exe) = exe {
        let exe_base = basename(exe.strip_suffix(" (deleted)").unwrap_or(exe));
        if by_fd || filename.is_empty() || exe_base == basename(filename) {
            return exe.to_owned();
        }
    }
    if !by_fd
        && !filename.is_empty()
        && let Some(cwd) = cwd.filter(|c| c.starts_with('/'))
    {
        return join_lexically(cwd, filename);
    }
    exe.map_or_else(|| filename.to_owned(), str::to_owned)
}

/// `base` + `rel`, with `.` and `..` components folded without touching the file system.
fn join_lexically(base: &str, rel: &str) -> String {
    let mut parts: Vec<&str> = base.split('/').filter(|p| !p.is_empty()).collect();
    for part in rel.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            part => parts.push(part),
        }
    }
    format!("/{}", parts.join("/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argv_is_joined_with_spaces_and_trailing_nul_trimmed() {
        assert_eq!(join_argv(b"/bin/echo\0a b\0c\0"), "/bin/echo a b c");
        assert_eq!(join_argv(b"sleep\0\0\0"), "sleep");
        assert_eq!(join_argv(b""), "");
        assert_eq!(join_argv(b"\0\0"), "");
        // setproctitle-style command lines have no NULs at all.
        assert_eq!(join_argv(b"nginx: worker process"), "nginx: worker process");
        assert_eq!(join_argv(b"x\xff\0y"), "x\u{fffd} y");
        assert_eq!(
            split_argv(b"/bin/echo\0a b\0\0c\0"),
            ["/bin/echo", "a b", "", "c"]
        );
        assert!(split_argv(b"\0\0").is_empty());
    }

    #[test]
    fn absolute_filename_is_kept_as_executed() {
        assert_eq!(
            resolve_exec_path("/bin/echo", Some("/usr/bin/echo"), None),
            "/bin/echo"
        );
    }

    #[test]
    fn relative_filename_resolves_through_exe_or_cwd() {
        assert_eq!(
            resolve_exec_path("./tool", Some("/opt/x/tool"), Some("/opt/x")),
            "/opt/x/tool"
        );
        // A script: exe is the interpreter, so the cwd join names the script itself.
        assert_eq!(
            resolve_exec_path("../bin/run.sh", Some("/usr/bin/dash"), Some("/srv/app/lib")),
            "/srv/app/bin/run.sh"
        );
        assert_eq!(resolve_exec_path("tool", None, Some("/")), "/tool");
        assert_eq!(resolve_exec_path("tool", None, None), "tool");
        assert_eq!(
            resolve_exec_path("tool", Some("/opt/tool (deleted)"), None),
            "/opt/tool (deleted)"
        );
    }

    #[test]
    fn fexecve_names_take_exe() {
        assert_eq!(
            resolve_exec_path("/dev/fd/3", Some("/memfd:x (deleted)"), Some("/root")),
            "/memfd:x (deleted)"
        );
        assert_eq!(
            resolve_exec_path("/dev/fd/3", None, Some("/root")),
            "/dev/fd/3"
        );
    }

    #[test]
    fn basename_of_paths() {
        assert_eq!(basename("/usr/bin/echo"), "echo");
        assert_eq!(basename("echo"), "echo");
    }
}
