//! Facts about the host the agent runs on, read once at start.

use std::path::Path;

/// What the agent tells the server about its host.
#[derive(Debug, Clone, Default)]
pub struct HostInfo {
    /// Host name.
    pub hostname: String,
    /// OS name (`PRETTY_NAME` of /etc/os-release, else `Linux`).
    pub os_name: String,
    /// Kernel release.
    pub kernel_release: String,
    /// /etc/machine-id, when present.
    pub machine_id: String,
}

impl HostInfo {
    /// Reads the facts from /proc and /etc; anything unreadable is left empty.
    pub fn read() -> Self {
        let trimmed = |p: &str| {
            std::fs::read_to_string(p)
                .map(|s| s.trim().to_owned())
                .unwrap_or_default()
        };
        Self {
            hostname: trimmed("/proc/sys/kernel/hostname"),
            os_name: os_pretty_name(Path::new("/etc/os-release")).unwrap_or_else(|| "Linux".into()),
            kernel_release: trimmed("/proc/sys/kernel/osrelease"),
            machine_id: trimmed("/etc/machine-id"),
        }
    }
}

fn os_pretty_name(path: &Path) -> Option<String> {
    let text = std::fs::read_to_string(path).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("PRETTY_NAME="))
        .map(|v| v.trim_matches('"').to_owned())
}

/// The sensor id kept in `<data_dir>/sensor_id`, created on first start.
pub fn sensor_id(data_dir: &Path) -> std::io::Result<String> {
    let path = data_dir.join("sensor_id");
    match std::fs::read_to_string(&path) {
        Ok(id) if !id.trim().is_empty() => Ok(id.trim().to_owned()),
        Ok(_) => write_new_id(&path),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => write_new_id(&path),
        Err(e) => Err(e),
    }
}

fn write_new_id(path: &Path) -> std::io::Result<String> {
    let id = uuid::Uuid::new_v4().to_string();
    std::fs::write(path, format!("{id}\n"))?;
    Ok(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sensor_id_is_created_once_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let a = sensor_id(dir.path()).unwrap();
        let b = sensor_id(dir.path()).unwrap();
        assert_eq!(a, b);
        assert_eq!(a.len(), 36);
    }

    #[test]
    fn pretty_name_is_unquoted() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("os-release");
        std::fs::write(&p, "NAME=x\nPRETTY_NAME=\"Debian GNU/Linux 12\"\n").unwrap();
        assert_eq!(os_pretty_name(&p).as_deref(), Some("Debian GNU/Linux 12"));
    }
}
