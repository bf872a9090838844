//! Command-line options shared by the binaries that run an agent (`vigil-agent`, `vigil up`).

use std::path::PathBuf;

use clap::{ArgAction, Args};
use vigil_sensor::{AuthConfig, DEFAULT_AUTH_LOGS, DEFAULT_WATCH_PATHS, DnsConfig, FileConfig};

/// Which file activity the sensor reports.
#[derive(Debug, Clone, Args)]
pub struct FileActivityArgs {
    /// Report file activity (fanotify): creations, writes, deletions, renames, mode and owner
    /// changes under the watched paths.
    #[arg(long, env = "VIGIL_FILE_ACTIVITY", default_value_t = true, action = ArgAction::Set)]
    pub file_activity: bool,
    /// Paths whose file activity is reported, comma-separated [default: /etc, /usr/bin,
    /// /usr/sbin, /usr/local/bin, /root, /home, /tmp, /var/spool/cron, /etc/systemd].
    #[arg(
        long,
        env = "VIGIL_WATCH_PATHS",
        value_delimiter = ',',
        value_name = "PATHS"
    )]
    pub watch_paths: Vec<PathBuf>,
    /// Paths whose file activity is never reported, even under a watched path,
    /// comma-separated (the agent's data directory is always excluded).
    #[arg(
        long,
        env = "VIGIL_WATCH_EXCLUDE",
        value_delimiter = ',',
        value_name = "PATHS"
    )]
    pub watch_exclude: Vec<PathBuf>,
}

impl FileActivityArgs {
    /// The sensor's file configuration these options ask for.
    pub fn config(&self) -> FileConfig {
        FileConfig {
            enabled: self.file_activity,
            paths: if self.watch_paths.is_empty() {
                DEFAULT_WATCH_PATHS.iter().map(PathBuf::from).collect()
            } else {
                self.watch_paths.clone()
            },
            exclude: self.watch_exclude.clone(),
        }
    }
}

/// Where the sensor reads logins and authentications.
#[derive(Debug, Clone, Args)]
pub struct AuthActivityArgs {
    /// Report logins and authentications (sshd, sudo, su, login, PAM lines of the
    /// authentication log or the journal; wtmp/btmp records) and the log's lines.
    #[arg(long, env = "VIGIL_AUTH_ACTIVITY", default_value_t = true, action = ArgAction::Set)]
    pub auth_activity: bool,
    /// Syslog files to follow, comma-separated [default: /var/log/auth.log, /var/log/secure];
    /// when none exists at start, the journal is read instead.
    #[arg(
        long,
        env = "VIGIL_AUTH_LOGS",
        value_delimiter = ',',
        value_name = "PATHS"
    )]
    pub auth_logs: Vec<PathBuf>,
}

impl AuthActivityArgs {
    /// The sensor's login capture configuration these options ask for.
    pub fn config(&self) -> AuthConfig {
        AuthConfig {
            enabled: self.auth_activity,
            logs: if self.auth_logs.is_empty() {
                DEFAULT_AUTH_LOGS.iter().map(PathBuf::from).collect()
            } else {
                self.auth_logs.clone()
            },
            ..AuthConfig::default()
        }
    }
}

/// Whether the sensor reports DNS.
#[derive(Debug, Clone, Args)]
pub struct DnsActivityArgs {
    /// Report DNS queries and responses over UDP port 53 (a packet socket on every interface).
    #[arg(long, env = "VIGIL_DNS_ACTIVITY", default_value_t = true, action = ArgAction::Set)]
    pub dns_activity: bool,
}

impl DnsActivityArgs {
    /// The sensor's DNS capture configuration these options ask for.
    pub fn config(&self) -> DnsConfig {
        DnsConfig {
            enabled: self.dns_activity,
        }
    }
}

/// YARA scanning of executed files.
#[derive(Debug, Clone, Args)]
pub struct YaraArgs {
    /// YARA rule files or folders (folders are searched recursively for *.yar and *.yara),
    /// comma-separated or repeated. When set, the rules are compiled at start (an error stops
    /// the agent) and every executed file is scanned; a match is a finding.
    #[arg(
        long = "yara-rules",
        env = "VIGIL_YARA_RULES",
        value_delimiter = ',',
        value_name = "PATHS"
    )]
    pub yara_rules: Vec<PathBuf>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        files: FileActivityArgs,
        #[command(flatten)]
        auth: AuthActivityArgs,
        #[command(flatten)]
        yara: YaraArgs,
    }

    #[test]
    fn yara_rule_paths_are_repeated_or_comma_separated() {
        assert!(Cli::parse_from(["x"]).yara.yara_rules.is_empty());
        let cli = Cli::parse_from(["x", "--yara-rules", "/a,/b", "--yara-rules", "/c.yar"]);
        assert_eq!(
            cli.yara.yara_rules,
            [
                PathBuf::from("/a"),
                PathBuf::from("/b"),
                PathBuf::from("/c.yar")
            ]
        );
    }

    #[test]
    fn defaults_and_lists_parse() {
        let cli = Cli::parse_from(["x"]);
        assert_eq!(cli.files.config(), FileConfig::default());
        let cli = Cli::parse_from([
            "x",
            "--watch-paths",
            "/srv,/opt/app",
            "--watch-exclude",
            "/srv/cache",
            "--file-activity",
            "false",
        ]);
        let config = cli.files.config();
        assert!(!config.enabled);
        assert_eq!(
            config.paths,
            [PathBuf::from("/srv"), PathBuf::from("/opt/app")]
        );
        assert_eq!(config.exclude, [PathBuf::from("/srv/cache")]);
    }

    #[test]
    fn auth_defaults_and_log_paths_parse() {
        let cli = Cli::parse_from(["x"]);
        assert_eq!(cli.auth.config(), AuthConfig::default());
        let cli = Cli::parse_from([
            "x",
            "--auth-logs",
            "/var/log/auth.log,/srv/log/secure",
            "--auth-activity",
            "false",
        ]);
        let config = cli.auth.config();
        assert!(!config.enabled);
        assert_eq!(
            config.logs,
            [
                PathBuf::from("/var/log/auth.log"),
                PathBuf::from("/srv/log/secure")
            ]
        );
        assert!(config.journal, "the journal stays the fallback");
    }
}
