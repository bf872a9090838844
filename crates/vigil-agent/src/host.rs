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

/// The agent's own CPU and memory use, for heartbeats.
#[derive(Debug)]
pub struct SelfUsage {
    started: std::time::Instant,
    last: Option<(std::time::Instant, u64)>,
    ticks_per_s: u64,
}

impl SelfUsage {
    /// Starts measuring now.
    pub fn new() -> Self {
        let ticks = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
            .ok()
            .flatten()
            .and_then(|t| u64::try_from(t).ok())
            .unwrap_or(100);
        Self {
            started: std::time::Instant::now(),
            last: None,
            ticks_per_s: ticks.max(1),
        }
    }

    /// Seconds since the agent started.
    pub fn uptime_s(&self) -> u64 {
        self.started.elapsed().as_secs()
    }

    /// CPU percent of one core since the previous sample (0 on the first), and RSS bytes.
    pub fn sample(&mut self) -> (f64, u64) {
        let now = std::time::Instant::now();
        let ticks = cpu_ticks().unwrap_or(0);
        let cpu = match self.last {
            Some((at, before)) => {
                let secs = now.duration_since(at).as_secs_f64();
                let used = ticks.saturating_sub(before) as f64 / self.ticks_per_s as f64;
                if secs > 0.0 { 100.0 * used / secs } else { 0.0 }
            }
            None => 0.0,
        };
        self.last = Some((now, ticks));
        (cpu, rss_bytes().unwrap_or(0))
    }
}

impl Default for SelfUsage {
    fn default() -> Self {
        Self::new()
    }
}

/// utime + stime of this process, in clock ticks.
fn cpu_ticks() -> Option<u64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name, which is parenthesised and may contain spaces.
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // rest[0] is field 3 (state); utime and stime are fields 14 and 15.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

fn rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kb * 1024)
}

#[cfg(test)]
mod usage_tests {
    use super::*;

    #[test]
    fn self_usage_reads_proc() {
        let mut u = SelfUsage::new();
        assert!(cpu_ticks().is_some());
        let (_, rss) = u.sample();
        assert!(rss > 0);
        let (cpu, _) = u.sample();
        assert!(cpu >= 0.0);
    }
}
