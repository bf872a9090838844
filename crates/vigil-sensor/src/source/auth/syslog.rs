//! Syslog lines as log files hold them: the header (time, host, program, pid) and the message.
//!
//! Two header forms are understood, as rsyslog writes them:
//! - classic (`RSYSLOG_TraditionalFileFormat`, RHEL's default): `Nov 23 10:00:01 host
//!   prog[pid]: msg`, local time without a year;
//! - RFC 3339 (`RSYSLOG_FileFormat`, Debian 12's default): `2026-11-23T10:00:01.123456+00:00
//!   host prog[pid]: msg`.
//!
//! A line in neither form is still a record: its whole text is the message and its time is
//! when it was read.

use crate::normalise::LogRecord;

/// Longest program name (tag) looked for before the `:` that ends it.
const MAX_TAG: usize = 64;

/// Splits one line read from `log_name` at `read_ms` into a record.
pub(crate) fn parse(line: &str, log_name: &str, read_ms: i64) -> LogRecord {
    let mut record = LogRecord {
        log_name: log_name.to_owned(),
        time_ms: read_ms,
        hostname: None,
        program: None,
        pid: None,
        facility: None,
        message: line.trim_end().to_owned(),
        raw: line.to_owned(),
    };
    let Some((time_ms, rest)) = timestamp(line, read_ms) else {
        return record;
    };
    record.time_ms = time_ms;
    let rest = rest.trim_start_matches(' ');
    let (host, rest) = rest.split_once(' ').unwrap_or((rest, ""));
    if !host.is_empty() {
        record.hostname = Some(host.to_owned());
    }
    match tag(rest) {
        Some((program, pid, message)) => {
            record.program = Some(program.to_owned());
            record.pid = pid;
            record.message = message.trim().to_owned();
        }
        None => record.message = rest.trim().to_owned(),
    }
    record
}

/// `prog[pid]: msg` or `prog: msg` → (prog, pid, msg).
fn tag(rest: &str) -> Option<(&str, Option<u32>, &str)> {
    let end = rest
        .char_indices()
        .take(MAX_TAG)
        .find(|&(_, c)| c == ':')?
        .0;
    let (tag, message) = (&rest[..end], &rest[end + 1..]);
    if tag.is_empty() || tag.contains(' ') {
        return None;
    }
    match tag.split_once('[') {
        Some((program, pid)) => {
            let pid = pid.strip_suffix(']')?;
            (!program.is_empty()).then_some((program, pid.parse().ok(), message))
        }
        None => Some((tag, None, message)),
    }
}

/// The header's time stamp, in ms since the epoch, and the text after it.
fn timestamp(line: &str, read_ms: i64) -> Option<(i64, &str)> {
    let first = line.split(' ').next()?;
    if first.len() >= 19 && first.as_bytes().get(4) == Some(&b'-') {
        return Some((rfc3339_ms(first)?, &line[first.len()..]));
    }
    let head = line.get(..15)?;
    Some((classic_ms(head, read_ms)?, &line[15..]))
}

/// `2026-11-23T10:00:01.123456+00:00` (or `Z`, or no fraction) → ms since the epoch.
pub(crate) fn rfc3339_ms(text: &str) -> Option<i64> {
    let b = text.as_bytes();
    let num = |from: usize, len: usize| -> Option<i64> {
        let digits = text.get(from..from + len)?;
        digits
            .bytes()
            .all(|d| d.is_ascii_digit())
            .then(|| digits.parse().ok())?
    };
    if b.get(4) != Some(&b'-') || b.get(7) != Some(&b'-') || !matches!(b.get(10), Some(b'T' | b' '))
    {
        return None;
    }
    if b.get(13) != Some(&b':') || b.get(16) != Some(&b':') {
        return None;
    }
    let (year, month, day) = (num(0, 4)?, num(5, 2)?, num(8, 2)?);
    let (hour, minute, second) = (num(11, 2)?, num(14, 2)?, num(17, 2)?);
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || minute > 59 {
        return None;
    }
    let mut pos = 19;
    let mut millis = 0;
    if b.get(pos) == Some(&b'.') {
        let digits = b[pos + 1..]
            .iter()
            .take_while(|d| d.is_ascii_digit())
            .count();
        if digits == 0 {
            return None;
        }
        let frac = &text[pos + 1..pos + 1 + digits];
        let padded = format!("{:0<3}", &frac[..digits.min(3)]);
        millis = padded.parse::<i64>().ok()?;
        pos += 1 + digits;
    }
    let offset_s = match b.get(pos) {
        Some(b'Z' | b'z') if pos + 1 == b.len() => 0,
        Some(sign @ (b'+' | b'-')) if pos + 6 == b.len() && b.get(pos + 3) == Some(&b':') => {
            let value = num(pos + 1, 2)? * 3600 + num(pos + 4, 2)? * 60;
            if *sign == b'-' { -value } else { value }
        }
        _ => return None,
    };
    let days = days_from_civil(year, month, day);
    let seconds = days * 86_400 + hour * 3600 + minute * 60 + second.min(60) - offset_s;
    Some(seconds * 1000 + millis)
}

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// `Nov 23 10:00:01` (local time, no year) → ms since the epoch: the latest such time that is
/// not more than a day after `read_ms` (a line from December read in January is last year's).
fn classic_ms(head: &str, read_ms: i64) -> Option<i64> {
    let b = head.as_bytes();
    if b.get(3) != Some(&b' ') || b.get(6) != Some(&b' ') || b.get(9) != Some(&b':') {
        return None;
    }
    let month = MONTHS.iter().position(|m| *m == &head[..3])?;
    let day: i32 = head[4..6].trim_start().parse().ok()?;
    let field = |from: usize| -> Option<i32> {
        let digits = head.get(from..from + 2)?;
        digits
            .bytes()
            .all(|d| d.is_ascii_digit())
            .then(|| digits.parse().ok())?
    };
    let (hour, minute, second) = (field(7)?, field(10)?, field(13)?);
    if b.get(12) != Some(&b':') || !(1..=31).contains(&day) || hour > 23 || minute > 59 {
        return None;
    }
    let this_year = local_year(read_ms)?;
    for year in [this_year, this_year - 1] {
        let ms = local_ms(year, month, day, hour, minute, second)?;
        if ms <= read_ms + 86_400_000 {
            return Some(ms);
        }
    }
    None
}

/// The local calendar year at `ms`.
fn local_year(ms: i64) -> Option<i32> {
    let secs = libc::time_t::try_from(ms.div_euclid(1000)).ok()?;
    // SAFETY: an all-zero `tm` is a valid value; localtime_r writes into it and reads `secs`.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    // SAFETY: both pointers are to live locals; localtime_r is the thread-safe variant.
    let ok = unsafe { libc::localtime_r(&secs, &mut tm) };
    (!ok.is_null()).then_some(tm.tm_year + 1900)
}

/// Local wall-clock time → ms since the epoch (`mktime`, daylight saving time decided by the
/// time zone rules).
fn local_ms(year: i32, month: usize, day: i32, hour: i32, minute: i32, second: i32) -> Option<i64> {
    // SAFETY: an all-zero `tm` is a valid value.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    tm.tm_year = year - 1900;
    tm.tm_mon = i32::try_from(month).ok()?;
    tm.tm_mday = day;
    tm.tm_hour = hour;
    tm.tm_min = minute;
    tm.tm_sec = second;
    tm.tm_isdst = -1;
    // SAFETY: `tm` is a live, initialised struct; mktime only reads and normalises it.
    let secs = unsafe { libc::mktime(&mut tm) };
    #[allow(clippy::useless_conversion)] // time_t is not i64 everywhere
    (secs != -1).then(|| i64::from(secs) * 1000)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's `days_from_civil`).
pub(crate) fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// `ms` since the epoch as RFC 3339 in UTC with microseconds, as rsyslog writes it
/// (`2026-11-23T10:00:01.123000+00:00`).
pub(crate) fn rfc3339_utc(ms: i64) -> String {
    let days = ms.div_euclid(86_400_000);
    let in_day = ms.rem_euclid(86_400_000);
    // H. Hinnant's `civil_from_days`.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}000+00:00",
        in_day / 3_600_000,
        in_day / 60_000 % 60,
        in_day / 1000 % 60,
        in_day % 1000
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const READ: i64 = 1_795_500_000_000; // 2026-11-24T06:00Z

    #[test]
    fn rfc3339_header_splits_into_host_program_pid_and_message() {
        let line = "2026-11-23T10:00:01.123456+00:00 web01 sshd[1234]: Accepted publickey for \
                    alice from 192.0.2.7 port 52222 ssh2: ED25519 SHA256:abc";
        let r = parse(line, "/var/log/auth.log", READ);
        assert_eq!(r.time_ms, 1_795_428_001_123);
        assert_eq!(r.hostname.as_deref(), Some("web01"));
        assert_eq!(r.program.as_deref(), Some("sshd"));
        assert_eq!(r.pid, Some(1234));
        assert!(r.message.starts_with("Accepted publickey for alice"));
        assert_eq!(r.raw, line);
        assert_eq!(r.log_name, "/var/log/auth.log");
    }

    #[test]
    fn classic_header_is_local_time_of_the_latest_fitting_year() {
        let line = "Nov 23 10:00:01 web01 CRON[77]: (root) CMD (true)";
        let r = parse(line, "/var/log/secure", READ);
        let expected = local_ms(2026, 10, 23, 10, 0, 1).unwrap_or_default();
        assert_eq!(r.time_ms, expected);
        assert_eq!(r.program.as_deref(), Some("CRON"));
        assert_eq!(r.pid, Some(77));
        assert_eq!(r.message, "(root) CMD (true)");
        // Read early in January, a December line is last year's.
        let january = 1_798_848_000_000; // 2027-01-02
        let dec = parse("Dec 31 23:59:59 h su: x", "f", january);
        assert_eq!(dec.time_ms, local_ms(2026, 11, 31, 23, 59, 59).unwrap_or(0));
        // Space-padded day.
        let padded = parse(
            "Nov  3 01:02:03 h login[9]: LOGIN ON tty1 BY bob",
            "f",
            READ,
        );
        assert_eq!(padded.time_ms, local_ms(2026, 10, 3, 1, 2, 3).unwrap_or(0));
        assert_eq!(padded.message, "LOGIN ON tty1 BY bob");
    }

    #[test]
    fn tag_without_pid_and_padded_message() {
        let line = "2026-11-23T10:00:01+01:00 h sudo:    alice : TTY=pts/0 ; PWD=/ ; USER=root ; COMMAND=/usr/bin/id";
        let r = parse(line, "f", READ);
        assert_eq!(r.time_ms, 1_795_424_401_000);
        assert_eq!(r.program.as_deref(), Some("sudo"));
        assert_eq!(r.pid, None);
        assert!(r.message.starts_with("alice : TTY=pts/0"));
    }

    #[test]
    fn lines_that_are_not_syslog_keep_their_text_and_the_read_time() {
        for line in [
            "",
            "garbage",
            "Nov 99 10:00:01 h p: m",
            "2026-13-01T00:00:00Z h p: m",
            "2026-11-23T10:00:01.+00:00 h p: m",
            "Xyz 23 10:00:01 h p: m",
            "\u{fffd}\u{fffd}\u{fffd}\u{fffd}\u{fffd}\u{fffd}\u{fffd}\u{fffd}",
        ] {
            let r = parse(line, "f", READ);
            assert_eq!((r.time_ms, r.program), (READ, None), "{line:?}");
            assert_eq!(r.message, line.trim_end());
        }
        // A header whose tag is not `prog:` keeps the text after the host.
        let r = parse("2026-11-23T10:00:01Z h no tag here", "f", READ);
        assert_eq!(r.program, None);
        assert_eq!(r.message, "no tag here");
        let r = parse("2026-11-23T10:00:01Z h prog[x]: m", "f", READ);
        assert_eq!((r.program.as_deref(), r.pid), (Some("prog"), None));
    }

    #[test]
    fn civil_dates_round_trip() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
        assert_eq!(rfc3339_utc(0), "1970-01-01T00:00:00.000000+00:00");
        assert_eq!(
            rfc3339_utc(1_795_428_001_123),
            "2026-11-23T10:00:01.123000+00:00"
        );
        assert_eq!(
            rfc3339_ms(&rfc3339_utc(951_782_400_007)),
            Some(951_782_400_007)
        );
        assert_eq!(
            rfc3339_ms("2026-11-23T10:00:01.5Z"),
            Some(1_795_428_001_500)
        );
        assert_eq!(
            rfc3339_ms("2026-11-23T10:00:01-05:30"),
            Some(1_795_447_801_000)
        );
    }
}
