//! Login records: `struct utmpx` as glibc appends it to wtmp (sessions started and ended) and
//! btmp (failed logins), read with libc's layout (384 bytes on x86_64).
//!
//! | file | `ut_type`       | event                                                  |
//! |------|-----------------|--------------------------------------------------------|
//! | wtmp | `USER_PROCESS`  | Logon, success: user, terminal, remote host, pid        |
//! | wtmp | `DEAD_PROCESS`  | Logoff, for a terminal with a session the sensor knows  |
//! | wtmp | `BOOT_TIME`, `RUN_LVL` | every known session ends (nothing reported)      |
//! | btmp | any, with a user | Logon, failure                                        |
//!
//! A logout record names only the terminal (`ut_user` is empty), so the sensor remembers which
//! user holds each terminal: learned from the records it reads and, at start, from the last
//! [`SEED_RECORDS`] records of wtmp (sessions opened before the sensor started).

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::Path;

use vigil_ocsf::LogonType;

use crate::enrich::BoundedCache;
use crate::normalise::{Account, AuthFacts, AuthKind, Peer};

/// Bytes of one record.
pub(crate) const RECORD_SIZE: usize = size_of::<libc::utmpx>();

#[cfg(all(target_arch = "x86_64", target_env = "gnu"))]
const _: () = assert!(RECORD_SIZE == 384);

/// Records of wtmp read at start to learn the open sessions.
pub(crate) const SEED_RECORDS: usize = 4096;
/// Terminals whose session is remembered.
const MAX_SESSIONS: usize = 4096;

/// One login record, decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LoginRecord {
    pub(crate) kind: i16,
    pub(crate) pid: u32,
    /// `ut_line`: the terminal (`pts/0`, `tty1`) or `ssh:notty`.
    pub(crate) line: String,
    pub(crate) user: String,
    pub(crate) host: String,
    pub(crate) addr: Option<IpAddr>,
    pub(crate) time_ms: i64,
}

fn text(chars: &[libc::c_char]) -> String {
    let bytes: Vec<u8> = chars
        .iter()
        .map(|&c| c.to_ne_bytes()[0])
        .take_while(|&b| b != 0)
        .collect();
    String::from_utf8_lossy(&bytes).into_owned()
}

/// Decodes one record; `None` unless `bytes` is exactly [`RECORD_SIZE`] long.
pub(crate) fn decode(bytes: &[u8]) -> Option<LoginRecord> {
    if bytes.len() != RECORD_SIZE {
        return None;
    }
    // SAFETY: `bytes` holds RECORD_SIZE bytes, read unaligned; `utmpx` is made of integers and
    // arrays of integers only, so every bit pattern is a valid value.
    let ut: libc::utmpx = unsafe { std::ptr::read_unaligned(bytes.as_ptr().cast()) };
    let words = ut.ut_addr_v6.map(i32::to_ne_bytes);
    let addr = if words[1..].iter().all(|w| *w == [0; 4]) {
        (words[0] != [0; 4]).then(|| IpAddr::V4(Ipv4Addr::from(words[0])))
    } else {
        let mut octets = [0u8; 16];
        for (chunk, word) in octets.chunks_exact_mut(4).zip(words) {
            chunk.copy_from_slice(&word);
        }
        Some(IpAddr::V6(Ipv6Addr::from(octets)))
    };
    #[allow(clippy::useless_conversion)] // i32 on x86_64, i64 on aarch64
    let (sec, usec) = (i64::from(ut.ut_tv.tv_sec), i64::from(ut.ut_tv.tv_usec));
    Some(LoginRecord {
        kind: ut.ut_type,
        pid: u32::try_from(ut.ut_pid).unwrap_or(0),
        line: text(&ut.ut_line),
        user: text(&ut.ut_user),
        host: text(&ut.ut_host),
        addr,
        time_ms: sec.saturating_mul(1000).saturating_add(usec / 1000),
    })
}

/// The `ut_type` name.
pub(crate) fn type_name(kind: i16) -> &'static str {
    match kind {
        libc::EMPTY => "EMPTY",
        libc::RUN_LVL => "RUN_LVL",
        libc::BOOT_TIME => "BOOT_TIME",
        libc::NEW_TIME => "NEW_TIME",
        libc::OLD_TIME => "OLD_TIME",
        libc::INIT_PROCESS => "INIT_PROCESS",
        libc::LOGIN_PROCESS => "LOGIN_PROCESS",
        libc::USER_PROCESS => "USER_PROCESS",
        libc::DEAD_PROCESS => "DEAD_PROCESS",
        libc::ACCOUNTING => "ACCOUNTING",
        _ => "UNKNOWN",
    }
}

/// Who holds a terminal.
#[derive(Debug, Clone)]
struct Holder {
    user: String,
    peer: Option<Peer>,
}

/// The sessions open on each terminal, as wtmp told them.
#[derive(Debug)]
pub(crate) struct Sessions {
    open: BoundedCache<String, Holder>,
}

impl Sessions {
    pub(crate) fn new() -> Self {
        Self {
            open: BoundedCache::new(MAX_SESSIONS),
        }
    }

    /// Learns the sessions open at the end of the wtmp file at `path` from its last
    /// [`SEED_RECORDS`] records; nothing when it cannot be read.
    pub(crate) fn seed(&mut self, path: &Path) -> io::Result<usize> {
        let mut file = File::open(path)?;
        let len = file.metadata()?.len();
        let size = RECORD_SIZE as u64;
        let end = len - len % size;
        let start = end.saturating_sub(SEED_RECORDS as u64 * size);
        file.seek(SeekFrom::Start(start))?;
        let mut bytes = Vec::new();
        file.take(end - start).read_to_end(&mut bytes)?;
        let mut seen = 0;
        for record in bytes.chunks_exact(RECORD_SIZE).filter_map(decode) {
            let _ = self.wtmp(&record);
            seen += 1;
        }
        Ok(seen)
    }

    /// What a wtmp record reports, remembering sessions as they start and end.
    pub(crate) fn wtmp(&mut self, record: &LoginRecord) -> Option<AuthFacts> {
        match record.kind {
            libc::USER_PROCESS if !record.user.is_empty() => {
                let facts = login(record, AuthKind::Logon, true, "session started", None);
                self.open.insert(
                    record.line.clone(),
                    Holder {
                        user: record.user.clone(),
                        peer: facts.src.clone(),
                    },
                );
                Some(facts)
            }
            libc::DEAD_PROCESS => {
                let holder = self.open.remove(&record.line);
                let named = !record.user.is_empty() && record.user != "LOGIN";
                if holder.is_none() && !named {
                    return None;
                }
                Some(login(
                    record,
                    AuthKind::Logoff,
                    true,
                    "session ended",
                    holder,
                ))
            }
            libc::BOOT_TIME | libc::RUN_LVL => {
                self.open.clear();
                None
            }
            _ => None,
        }
    }
}

/// What a btmp record reports: a failed login.
pub(crate) fn btmp(record: &LoginRecord) -> Option<AuthFacts> {
    if record.user.is_empty() {
        return None;
    }
    Some(login(record, AuthKind::Logon, false, "failed login", None))
}

fn login(
    record: &LoginRecord,
    kind: AuthKind,
    success: bool,
    detail: &str,
    holder: Option<Holder>,
) -> AuthFacts {
    let user = match (&holder, record.user.as_str()) {
        (_, user) if !user.is_empty() && user != "LOGIN" => user.to_owned(),
        (Some(holder), _) => holder.user.clone(),
        (None, _) => String::new(),
    };
    let mut facts = AuthFacts::new(kind, success, detail, Account::named(&user));
    let peer = match record.addr {
        Some(ip) => Some(Peer {
            ip: Some(ip.to_string()),
            hostname: (!record.host.is_empty() && record.host.parse::<IpAddr>().is_err())
                .then(|| record.host.clone()),
            port: None,
        }),
        None => Peer::address(&record.host, None),
    };
    let peer = peer.or(holder.and_then(|h| h.peer));
    let ssh = record.line.starts_with("ssh:");
    facts.logon_type = Some(match (ssh, peer.is_some()) {
        (true, _) => LogonType::Network,
        (false, true) => LogonType::RemoteInteractive,
        (false, false) => LogonType::Interactive,
    });
    facts.remote = Some(ssh || peer.is_some());
    facts.service = ssh.then(|| "sshd".to_owned());
    facts.src = peer;
    facts.terminal = Some(record.line.clone()).filter(|l| !l.is_empty() && !l.contains(':'));
    facts.utmp_type = Some(type_name(record.kind));
    facts.pid = Some(record.pid);
    facts
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A record as glibc writes it.
    pub(crate) fn encode(
        kind: i16,
        pid: i32,
        line: &str,
        user: &str,
        host: &str,
        ip: Option<IpAddr>,
        sec: i32,
    ) -> Vec<u8> {
        // SAFETY: an all-zero utmpx is valid (integers and arrays of integers).
        let mut ut: libc::utmpx = unsafe { std::mem::zeroed() };
        let fill = |dst: &mut [libc::c_char], src: &str| {
            for (d, s) in dst.iter_mut().zip(src.bytes()) {
                *d = libc::c_char::from_ne_bytes([s]);
            }
        };
        ut.ut_type = kind;
        ut.ut_pid = pid;
        fill(&mut ut.ut_line, line);
        fill(&mut ut.ut_user, user);
        fill(&mut ut.ut_host, host);
        #[allow(clippy::useless_conversion)]
        {
            ut.ut_tv.tv_sec = sec.into();
        }
        match ip {
            Some(IpAddr::V4(v4)) => ut.ut_addr_v6[0] = i32::from_ne_bytes(v4.octets()),
            Some(IpAddr::V6(v6)) => {
                for (word, chunk) in ut.ut_addr_v6.iter_mut().zip(v6.octets().chunks_exact(4)) {
                    *word = i32::from_ne_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
                }
            }
            None => {}
        }
        // SAFETY: reads the bytes of a live, fully initialised (zeroed, then set) value.
        unsafe { std::slice::from_raw_parts((&raw const ut).cast::<u8>(), RECORD_SIZE) }.to_vec()
    }

    #[test]
    fn records_decode_with_libc_layout() {
        let v4: IpAddr = "192.0.2.7"
            .parse()
            .unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST));
        let bytes = encode(
            libc::USER_PROCESS,
            4321,
            "pts/3",
            "alice",
            "192.0.2.7",
            Some(v4),
            1_700_000_000,
        );
        let record = decode(&bytes).unwrap_or_else(|| panic!("decode"));
        assert_eq!(record.kind, libc::USER_PROCESS);
        assert_eq!(
            (record.pid, record.line.as_str(), record.user.as_str()),
            (4321, "pts/3", "alice")
        );
        assert_eq!(record.addr, Some(v4));
        assert_eq!(record.time_ms, 1_700_000_000_000);
        let v6: IpAddr = "2001:db8::9"
            .parse()
            .unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST));
        let record = decode(&encode(
            libc::USER_PROCESS,
            1,
            "pts/4",
            "bob",
            "",
            Some(v6),
            1,
        ));
        assert_eq!(record.and_then(|r| r.addr), Some(v6));
        assert_eq!(decode(&bytes[1..]), None);
    }

    #[test]
    fn wtmp_logon_then_logoff_names_the_user_from_the_session() {
        let mut sessions = Sessions::new();
        let login_bytes = encode(
            libc::USER_PROCESS,
            10,
            "pts/7",
            "carol",
            "bastion.example",
            None,
            5,
        );
        let on = sessions.wtmp(&decode(&login_bytes).unwrap_or_else(|| panic!()));
        let on = on.unwrap_or_else(|| panic!("logon"));
        assert_eq!((on.kind, on.success), (AuthKind::Logon, true));
        assert_eq!(on.terminal.as_deref(), Some("pts/7"));
        assert_eq!(
            on.src.as_ref().and_then(|p| p.hostname.as_deref()),
            Some("bastion.example")
        );
        assert_eq!(on.logon_type, Some(LogonType::RemoteInteractive));
        assert_eq!(on.utmp_type, Some("USER_PROCESS"));

        let logout = encode(libc::DEAD_PROCESS, 10, "pts/7", "", "", None, 6);
        let off = sessions.wtmp(&decode(&logout).unwrap_or_else(|| panic!()));
        let off = off.unwrap_or_else(|| panic!("logoff"));
        assert_eq!(
            (off.kind, off.user.name.as_str()),
            (AuthKind::Logoff, "carol")
        );
        assert_eq!(
            off.src.and_then(|p| p.hostname).as_deref(),
            Some("bastion.example")
        );
        // The session is over: another logout on the terminal says nothing.
        assert_eq!(
            sessions.wtmp(&decode(&logout).unwrap_or_else(|| panic!())),
            None
        );
        // Boot records end every session.
        let _ = sessions.wtmp(&decode(&login_bytes).unwrap_or_else(|| panic!()));
        let boot = encode(libc::BOOT_TIME, 0, "~", "reboot", "6.1.0", None, 7);
        assert_eq!(
            sessions.wtmp(&decode(&boot).unwrap_or_else(|| panic!())),
            None
        );
        assert_eq!(
            sessions.wtmp(&decode(&logout).unwrap_or_else(|| panic!())),
            None
        );
    }

    #[test]
    fn btmp_records_are_failed_logons() {
        let ip: IpAddr = "203.0.113.4"
            .parse()
            .unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST));
        let bytes = encode(
            libc::LOGIN_PROCESS,
            99,
            "ssh:notty",
            "admin",
            "203.0.113.4",
            Some(ip),
            9,
        );
        let failed = btmp(&decode(&bytes).unwrap_or_else(|| panic!())).unwrap_or_else(|| panic!());
        assert_eq!((failed.kind, failed.success), (AuthKind::Logon, false));
        assert_eq!(failed.terminal, None, "ssh:notty is no terminal");
        assert_eq!(failed.service.as_deref(), Some("sshd"));
        assert_eq!(failed.logon_type, Some(LogonType::Network));
        assert_eq!(
            failed.src.and_then(|p| p.ip).as_deref(),
            Some("203.0.113.4")
        );
        let local = encode(libc::LOGIN_PROCESS, 99, "tty2", "root", "", None, 9);
        let failed = btmp(&decode(&local).unwrap_or_else(|| panic!())).unwrap_or_else(|| panic!());
        assert_eq!(
            (failed.remote, failed.logon_type),
            (Some(false), Some(LogonType::Interactive))
        );
        let nameless = encode(libc::LOGIN_PROCESS, 99, "tty2", "", "", None, 9);
        assert_eq!(btmp(&decode(&nameless).unwrap_or_else(|| panic!())), None);
    }

    #[test]
    fn sessions_are_seeded_from_the_end_of_wtmp() {
        let path = std::env::temp_dir().join(format!("vigil-wtmp-seed-{}", std::process::id()));
        let mut bytes = encode(libc::USER_PROCESS, 1, "tty1", "dave", "", None, 1);
        bytes.extend(encode(libc::USER_PROCESS, 2, "pts/1", "erin", "", None, 2));
        bytes.extend(encode(libc::DEAD_PROCESS, 2, "pts/1", "", "", None, 3));
        std::fs::write(&path, &bytes).unwrap_or_else(|e| panic!("{e}"));
        let mut sessions = Sessions::new();
        let seeded = sessions.seed(&path);
        let _ = std::fs::remove_file(&path);
        assert_eq!(seeded.ok(), Some(3));
        let logout = |line: &str| decode(&encode(libc::DEAD_PROCESS, 1, line, "", "", None, 4));
        let off = logout("tty1").and_then(|r| sessions.wtmp(&r));
        assert_eq!(off.map(|f| f.user.name), Some("dave".to_owned()));
        assert_eq!(logout("pts/1").and_then(|r| sessions.wtmp(&r)), None);
    }
}
