//! What a log line says about authentication: parsers for the messages of `sshd`, `sudo`,
//! `su`, `login` and PAM modules. A line none of them understands says nothing (it is still
//! reported as a log line).
//!
//! One attempt is often logged more than once, by the program and by PAM (`Failed password`
//! and `pam_unix(sshd:auth): authentication failure`; `(to root) alice on pts/0` and
//! `pam_unix(su:session): session opened`): each line is its own event, told apart by
//! `status_detail` and `message`.

use vigil_ocsf::LogonType;

use crate::normalise::{Account, AuthFacts, AuthKind, LogRecord, Peer};

/// The authentication `record` reports, if any.
pub(crate) fn parse(record: &LogRecord) -> Option<AuthFacts> {
    let program = record.program.as_deref()?;
    let (message, count) = unrepeat(&record.message);
    let mut facts = match program {
        "sshd" | "sshd-session" | "sshd-auth" => sshd(message),
        "sudo" => sudo(message),
        "su" => su(message),
        "login" => login(message),
        _ => None,
    }
    .or_else(|| pam(message))?;
    if count.is_some() {
        facts.count = count;
    }
    Some(facts)
}

/// rsyslog's `message repeated N times: [ msg]` → (msg, N).
fn unrepeat(message: &str) -> (&str, Option<u32>) {
    let Some(rest) = message.strip_prefix("message repeated ") else {
        return (message, None);
    };
    let Some((n, rest)) = rest.split_once(" times: [") else {
        return (message, None);
    };
    match (n.parse().ok(), rest.strip_suffix(']')) {
        (Some(n), Some(inner)) => (inner.trim(), Some(n)),
        _ => (message, None),
    }
}

/// `U from IP port P ssh2…` (the user name may hold spaces; the last ` from ` ends it) →
/// (user, peer).
fn user_from(text: &str) -> Option<(&str, Option<Peer>)> {
    let (user, rest) = text.rsplit_once(" from ")?;
    let mut words = rest.split(' ');
    let address = words.next()?;
    let port = match (words.next(), words.next()) {
        (Some("port"), Some(port)) => port.trim_end_matches(':').parse().ok(),
        _ => None,
    };
    Some((user, Peer::address(address, port)))
}

/// `U IP port P` (sshd's `Disconnected from user …`) → (user, peer).
fn user_ip_port(text: &str) -> Option<(&str, Option<Peer>)> {
    let (head, port) = text.rsplit_once(" port ")?;
    let port = port.split(' ').next()?.parse().ok();
    let (user, address) = head.rsplit_once(' ')?;
    Some((user, Peer::address(address, port)))
}

fn remote_logon(success: bool, detail: &str, user: Account, src: Option<Peer>) -> AuthFacts {
    let mut facts = AuthFacts::new(AuthKind::Logon, success, detail, user);
    facts.logon_type = Some(LogonType::Network);
    facts.remote = Some(true);
    facts.service = Some("sshd".into());
    facts.src = src;
    facts
}

fn sshd(message: &str) -> Option<AuthFacts> {
    if let Some(rest) = message.strip_prefix("Accepted ") {
        let (method, rest) = rest.split_once(" for ")?;
        let (user, src) = user_from(rest)?;
        let mut facts = remote_logon(
            true,
            &format!("Accepted {method}"),
            Account::named(user),
            src,
        );
        facts.method = Some(method.to_owned());
        return Some(facts);
    }
    if let Some(rest) = message.strip_prefix("Failed ") {
        let (method, rest) = rest.split_once(" for ")?;
        let (invalid, rest) = match rest.strip_prefix("invalid user ") {
            Some(rest) => (true, rest),
            None => (false, rest),
        };
        let (user, src) = user_from(rest)?;
        let mut detail = format!("Failed {method}");
        if invalid {
            detail.push_str(" (invalid user)");
        }
        let mut facts = remote_logon(false, &detail, account(user, !invalid), src);
        facts.method = Some(method.to_owned());
        return Some(facts);
    }
    if let Some(rest) = message.strip_prefix("Invalid user ") {
        let (user, src) = user_from(rest)?;
        return Some(remote_logon(
            false,
            "Invalid user",
            account(user, false),
            src,
        ));
    }
    let exceeded = message
        .strip_prefix("error: ")
        .unwrap_or(message)
        .strip_prefix("maximum authentication attempts exceeded for ");
    if let Some(rest) = exceeded {
        let (invalid, rest) = match rest.strip_prefix("invalid user ") {
            Some(rest) => (true, rest),
            None => (false, rest),
        };
        let (user, src) = user_from(rest)?;
        let detail = "maximum authentication attempts exceeded";
        return Some(remote_logon(false, detail, account(user, !invalid), src));
    }
    if let Some(rest) = message.strip_prefix("Disconnected from user ") {
        let (user, src) = user_ip_port(rest)?;
        let mut facts = remote_logon(true, "Disconnected", Account::named(user), src);
        facts.kind = AuthKind::Logoff;
        return Some(facts);
    }
    None
}

fn account(name: &str, exists: bool) -> Account {
    Account {
        name: name.to_owned(),
        uid: None,
        exists,
    }
}

/// `alice : TTY=pts/0 ; PWD=/home/alice ; USER=root ; COMMAND=/usr/bin/id`, with a reason
/// before `TTY=` when sudo refused (`3 incorrect password attempts`, `user NOT in sudoers`).
fn sudo(message: &str) -> Option<AuthFacts> {
    let (invoker, rest) = message.split_once(" : ")?;
    let invoker = invoker.trim();
    if invoker.is_empty() || invoker.contains(' ') {
        return None;
    }
    let (fields, command) = match rest.split_once("COMMAND=") {
        Some((fields, command)) => (fields, Some(command.trim())),
        None => (rest, None),
    };
    let mut target = None;
    let mut terminal = None;
    let mut cwd = None;
    let mut reasons = Vec::new();
    for field in fields.split(" ; ").map(str::trim).filter(|f| !f.is_empty()) {
        let field = field.trim_end_matches(';').trim();
        match field.split_once('=') {
            Some(("TTY", tty)) => terminal = terminal_name(tty),
            Some(("PWD", dir)) => cwd = Some(dir.to_owned()),
            Some(("USER", user)) => target = Some(user.to_owned()),
            Some((key, _)) if key.bytes().all(|b| b.is_ascii_uppercase()) => {}
            _ => reasons.push(field),
        }
    }
    // A line with neither a target nor a command is not about running one (`unable to …`).
    if target.is_none() && command.is_none() {
        return None;
    }
    let detail = reasons.join("; ");
    let success = reasons.is_empty();
    let target = target.unwrap_or_else(|| "root".to_owned());
    let mut facts = AuthFacts::new(
        AuthKind::AccountSwitch,
        success,
        &detail,
        Account::named(&target),
    );
    facts.actor_user = Some(Account::named(invoker));
    facts.service = Some("sudo".into());
    facts.terminal = terminal;
    facts.cwd = cwd;
    facts.command = command.map(str::to_owned);
    facts.count = reasons.iter().find_map(|r| {
        let (n, rest) = r.split_once(' ')?;
        rest.starts_with("incorrect password attempt")
            .then(|| n.parse().ok())?
    });
    Some(facts)
}

/// `(to root) alice on pts/0`, `FAILED SU (to root) alice on pts/0`.
fn su(message: &str) -> Option<AuthFacts> {
    let (success, rest) = match message.strip_prefix("FAILED SU ") {
        Some(rest) => (false, rest),
        None => (true, message),
    };
    let rest = rest.strip_prefix("(to ")?;
    let (target, rest) = rest.split_once(") ")?;
    let (invoker, tty) = match rest.rsplit_once(" on ") {
        Some((invoker, tty)) => (invoker, terminal_name(tty)),
        None => (rest, None),
    };
    let detail = if success { "" } else { "FAILED SU" };
    let mut facts = AuthFacts::new(
        AuthKind::AccountSwitch,
        success,
        detail,
        Account::named(target),
    );
    facts.actor_user = Some(Account::named(invoker.trim()));
    facts.service = Some("su".into());
    facts.terminal = tty;
    Some(facts)
}

/// `FAILED LOGIN 1 FROM tty1 FOR alice, Authentication failure` (util-linux), `FAILED LOGIN
/// (1) on '/dev/tty1' FOR 'alice', Authentication failure` (shadow), `LOGIN ON tty1 BY alice`,
/// `ROOT LOGIN ON tty1`.
fn login(message: &str) -> Option<AuthFacts> {
    if let Some(rest) = message.strip_prefix("FAILED LOGIN ") {
        let (place, rest) = rest.split_once(" FOR ")?;
        let (user, reason) = rest.split_once(", ").unwrap_or((rest, ""));
        let user = user.trim_matches('\'');
        let mut facts = AuthFacts::new(AuthKind::Logon, false, reason, Account::named(user));
        facts.service = Some("login".into());
        let mut words = place.split(' ').map(|w| w.trim_matches('\''));
        let mut terminal = None;
        let mut host = None;
        while let Some(word) = words.next() {
            match word {
                "on" | "ON" => terminal = words.next().and_then(terminal_name),
                "from" | "FROM" => match words.next() {
                    Some(from) if looks_like_terminal(from) => terminal = terminal_name(from),
                    Some(from) => host = Peer::address(from, None),
                    None => {}
                },
                _ => {}
            }
        }
        facts.terminal = terminal;
        facts.remote = Some(host.is_some());
        facts.logon_type = Some(if host.is_some() {
            LogonType::RemoteInteractive
        } else {
            LogonType::Interactive
        });
        facts.src = host;
        return Some(facts);
    }
    let (user, tty) = if let Some(rest) = message.strip_prefix("ROOT LOGIN ") {
        let tty = rest
            .trim()
            .trim_start_matches("ON ")
            .trim_start_matches("on ");
        ("root", tty.trim().trim_matches('\''))
    } else if let Some(rest) = message.strip_prefix("LOGIN ON ") {
        let (tty, user) = rest.split_once(" BY ")?;
        (user.trim(), tty)
    } else {
        return None;
    };
    let mut facts = AuthFacts::new(AuthKind::Logon, true, "", Account::named(user));
    facts.service = Some("login".into());
    facts.terminal = terminal_name(tty);
    facts.logon_type = Some(LogonType::Interactive);
    facts.remote = Some(false);
    Some(facts)
}

/// `pam_unix(SERVICE:auth): authentication failure; logname=… uid=… euid=… tty=… ruser=…
/// rhost=…  user=…` and `pam_unix(SERVICE:session): session opened for user U(uid=N) by
/// L(uid=M)` / `session closed for user U`, from any PAM module.
fn pam(message: &str) -> Option<AuthFacts> {
    let rest = message.strip_prefix("pam_")?;
    let (_module, rest) = rest.split_once('(')?;
    let (service, rest) = rest.split_once(':')?;
    let (kind, text) = rest.split_once("): ")?;
    match kind {
        "auth" => pam_auth_failure(service, text.strip_prefix("authentication failure;")?),
        "session" => pam_session(service, text),
        _ => None,
    }
}

fn pam_auth_failure(service: &str, fields: &str) -> Option<AuthFacts> {
    let value = |key: &str| {
        fields.split_whitespace().find_map(|kv| {
            let (k, v) = kv.split_once('=')?;
            (k == key && !v.is_empty()).then_some(v)
        })
    };
    // Without `user=` PAM did not know the account (sshd's unknown users): nothing to name.
    let user = value("user")?;
    let invoker = value("ruser").or_else(|| value("logname"));
    let mut facts = match switch_service(service) {
        true => {
            let mut facts = AuthFacts::new(
                AuthKind::AccountSwitch,
                false,
                "authentication failure",
                Account::named(user),
            );
            facts.actor_user = invoker.map(Account::named);
            facts
        }
        false => {
            let mut facts = AuthFacts::new(
                AuthKind::Logon,
                false,
                "authentication failure",
                Account::named(user),
            );
            facts.src = value("rhost").and_then(|host| Peer::address(host, None));
            facts.logon_type = logon_type(service);
            facts.remote = remote(service, facts.src.is_some());
            facts
        }
    };
    facts.service = Some(service.to_owned());
    facts.terminal = value("tty").and_then(terminal_name);
    Some(facts)
}

fn pam_session(service: &str, text: &str) -> Option<AuthFacts> {
    let (opened, rest) = if let Some(rest) = text.strip_prefix("session opened for user ") {
        (true, rest)
    } else {
        (false, text.strip_prefix("session closed for user ")?)
    };
    let (user, by) = match rest.split_once(" by ") {
        Some((user, by)) => (user, Some(by)),
        None => (rest, None),
    };
    let user = with_uid(user.trim())?;
    let invoker = by
        .and_then(|by| with_uid(by.trim()))
        .filter(|a| !a.name.is_empty());
    let switch = switch_service(service);
    let kind = match (switch, opened) {
        (true, true) => AuthKind::AccountSwitch,
        (false, true) => AuthKind::Logon,
        (_, false) => AuthKind::Logoff,
    };
    let detail = if opened {
        "session opened"
    } else {
        "session closed"
    };
    let mut facts = AuthFacts::new(kind, true, detail, user);
    facts.service = Some(service.to_owned());
    if switch {
        facts.actor_user = invoker;
    } else {
        facts.logon_type = logon_type(service);
        facts.remote = remote(service, false);
    }
    Some(facts)
}

/// `alice(uid=1000)`, `alice`, `(uid=0)` (no name) → the account.
fn with_uid(text: &str) -> Option<Account> {
    let (name, uid) = match text.split_once("(uid=") {
        Some((name, uid)) => (name, uid.strip_suffix(')')?.parse().ok()),
        None => (text, None),
    };
    if name.is_empty() && uid.is_none() {
        return None;
    }
    Some(Account {
        name: name.to_owned(),
        uid,
        exists: true,
    })
}

/// PAM services that switch accounts rather than log on.
fn switch_service(service: &str) -> bool {
    matches!(
        service,
        "su" | "su-l" | "sudo" | "sudo-i" | "runuser" | "runuser-l"
    )
}

/// The logon type a PAM service stands for, where it is clear.
fn logon_type(service: &str) -> Option<LogonType> {
    match service {
        "sshd" => Some(LogonType::Network),
        "login" | "gdm-password" | "gdm-autologin" | "lightdm" | "sddm" | "xscreensaver" => {
            Some(LogonType::Interactive)
        }
        "cron" | "atd" => Some(LogonType::Batch),
        "systemd-user" => Some(LogonType::OsService),
        _ => None,
    }
}

fn remote(service: &str, has_peer: bool) -> Option<bool> {
    match service {
        "sshd" => Some(true),
        _ if has_peer => Some(true),
        "login" | "cron" | "atd" | "systemd-user" => Some(false),
        _ => None,
    }
}

fn looks_like_terminal(text: &str) -> bool {
    let name = text.strip_prefix("/dev/").unwrap_or(text);
    ["tty", "pts/", "console", "hvc", "ttyS"]
        .iter()
        .any(|prefix| name.starts_with(prefix))
}

/// `/dev/pts/0` → `pts/0`; `ssh`, `unknown` and empty are no terminal.
fn terminal_name(text: &str) -> Option<String> {
    let name = text.trim().trim_matches('\'');
    let name = name.strip_prefix("/dev/").unwrap_or(name);
    match name {
        "" | "unknown" | "ssh" | "(none)" => None,
        name => Some(name.to_owned()),
    }
}

#[cfg(test)]
#[path = "lines_tests.rs"]
mod tests;
