//! Login rate limiting: failures are counted per user name and per source address; past a
//! threshold, further attempts are refused (without checking the password) for a lockout that
//! doubles with every further failure.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// Failures of one user name before it is locked.
pub const USER_THRESHOLD: u32 = 5;
/// Failures from one address before it is locked (higher: many people share a NAT).
pub const ADDR_THRESHOLD: u32 = 20;
/// The first lockout; each further failure doubles it.
pub const BASE_LOCKOUT: Duration = Duration::from_secs(15);
/// The longest lockout.
pub const MAX_LOCKOUT: Duration = Duration::from_secs(15 * 60);
/// Failures older than this (since the last one) are forgotten.
pub const WINDOW: Duration = Duration::from_secs(30 * 60);
/// Keys tracked at most; past it, forgotten keys are pruned first, then the oldest.
const MAX_KEYS: usize = 10_000;

#[derive(Debug, Clone, Copy)]
struct Failures {
    count: u32,
    last: Instant,
    locked_until: Option<Instant>,
}

/// A refusal: try again after this long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lockout {
    /// How long until the lock ends.
    pub retry_after: Duration,
}

/// Failure counts by key, shared by every login request of the process.
#[derive(Debug, Default)]
pub struct LoginLimiter {
    inner: Mutex<HashMap<String, Failures>>,
}

fn keys(user: &str, addr: Option<IpAddr>) -> Vec<(String, u32)> {
    let mut k = vec![(format!("user:{user}"), USER_THRESHOLD)];
    if let Some(a) = addr {
        k.push((format!("addr:{a}"), ADDR_THRESHOLD));
    }
    k
}

impl LoginLimiter {
    /// `Err` while the user or the address is locked out.
    pub fn check(&self, user: &str, addr: Option<IpAddr>, now: Instant) -> Result<(), Lockout> {
        let map = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        let wait = keys(user, addr)
            .iter()
            .filter_map(|(k, _)| map.get(k)?.locked_until)
            .filter_map(|until| until.checked_duration_since(now))
            .filter(|d| !d.is_zero())
            .max();
        match wait {
            Some(retry_after) => Err(Lockout { retry_after }),
            None => Ok(()),
        }
    }

    /// Counts a failed login; `Some` when it started a lockout.
    pub fn failed(&self, user: &str, addr: Option<IpAddr>, now: Instant) -> Option<Lockout> {
        let mut map = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        if map.len() >= MAX_KEYS {
            map.retain(|_, f| now.saturating_duration_since(f.last) < WINDOW);
            if map.len() >= MAX_KEYS
                && let Some(oldest) = map
                    .iter()
                    .min_by_key(|(_, f)| f.last)
                    .map(|(k, _)| k.clone())
            {
                map.remove(&oldest);
            }
        }
        let mut started = None;
        for (key, threshold) in keys(user, addr) {
            let f = map.entry(key).or_insert(Failures {
                count: 0,
                last: now,
                locked_until: None,
            });
            if now.saturating_duration_since(f.last) >= WINDOW {
                f.count = 0;
                f.locked_until = None;
            }
            f.count += 1;
            f.last = now;
            if f.count >= threshold {
                let doublings = (f.count - threshold).min(16);
                let lock = BASE_LOCKOUT.saturating_mul(1 << doublings).min(MAX_LOCKOUT);
                f.locked_until = Some(now + lock);
                started = Some(started.map_or(lock, |l: Duration| l.max(lock)));
            }
        }
        started.map(|retry_after| Lockout { retry_after })
    }

    /// A successful login clears the user's failures (not the address's: one good password
    /// must not reset an address that is guessing others).
    pub fn succeeded(&self, user: &str) {
        let mut map = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        map.remove(&format!("user:{user}"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn five_failures_lock_the_user_and_the_lock_doubles() {
        let l = LoginLimiter::default();
        let t0 = Instant::now();
        for i in 0..USER_THRESHOLD - 1 {
            assert_eq!(l.failed("alice", None, t0), None, "failure {i}");
            assert!(l.check("alice", None, t0).is_ok());
        }
        let lock = l.failed("alice", None, t0).unwrap();
        assert_eq!(lock.retry_after, BASE_LOCKOUT);
        assert!(l.check("alice", None, t0).is_err());
        assert!(
            l.check("bob", None, t0).is_ok(),
            "other users are not locked"
        );
        let later = t0 + BASE_LOCKOUT;
        assert!(l.check("alice", None, later).is_ok(), "the lock ends");
        assert_eq!(
            l.failed("alice", None, later).unwrap().retry_after,
            BASE_LOCKOUT * 2
        );
        l.succeeded("alice");
        assert!(l.check("alice", None, later).is_ok());
    }

    #[test]
    fn an_address_guessing_many_users_is_locked() {
        let l = LoginLimiter::default();
        let addr: IpAddr = "192.0.2.9".parse().unwrap();
        let t0 = Instant::now();
        for i in 0..ADDR_THRESHOLD {
            l.failed(&format!("user{i}"), Some(addr), t0);
        }
        assert!(l.check("fresh", Some(addr), t0).is_err());
        assert!(l.check("fresh", None, t0).is_ok());
    }
}
