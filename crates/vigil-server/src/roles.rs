//! Which server roles a process runs (`vigil server --roles fleet,ingest,detect,api`).
//!
//! The embedded server runs all four. On the in-process bus only `detect` can be left out:
//! the others share the process's listeners, store and wake-ups. A server without `detect`
//! still stores every event; a server with it, started later on the same data, evaluates
//! everything after the detection cursor, so no event stays unscored. On the NATS bus any
//! subset runs, and any number of instances of each: `fleet` serves agents (gRPC), `api` the
//! operators and the HTTP fleet API, `detect` claims detection partitions, `ingest` keeps the
//! hunting index (both listeners write what they receive through their own ingest path).

use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;

/// One server role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Role {
    /// Agent sessions (gRPC, mTLS) and enrollment.
    Fleet,
    /// Writing events to the store and announcing them on the bus.
    Ingest,
    /// Detection workers: rules and correlations over the event log.
    Detect,
    /// The operator API and the HTTP fleet API.
    Api,
}

impl Role {
    /// Every role, in the order they are listed.
    pub const ALL: [Role; 4] = [Role::Fleet, Role::Ingest, Role::Detect, Role::Api];

    /// The role's name on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Fleet => "fleet",
            Self::Ingest => "ingest",
            Self::Detect => "detect",
            Self::Api => "api",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A set of roles.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Roles(BTreeSet<Role>);

impl Roles {
    /// All four roles (the embedded default).
    pub fn all() -> Self {
        Self(Role::ALL.into_iter().collect())
    }

    /// Whether `role` is in the set.
    pub fn has(&self, role: Role) -> bool {
        self.0.contains(&role)
    }

    /// The set without `role`.
    pub fn without(mut self, role: Role) -> Self {
        self.0.remove(&role);
        self
    }

    /// The roles the in-process bus cannot leave out but the set lacks (everything but
    /// `detect`).
    pub fn unsupported_gaps(&self) -> Vec<Role> {
        Role::ALL
            .into_iter()
            .filter(|r| *r != Role::Detect && !self.has(*r))
            .collect()
    }
}

impl Default for Roles {
    fn default() -> Self {
        Self::all()
    }
}

impl fmt::Display for Roles {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<_> = self.0.iter().map(|r| r.as_str()).collect();
        f.write_str(&names.join(","))
    }
}

impl FromStr for Roles {
    type Err = String;

    /// `fleet,ingest,detect,api` (any order, any subset, at least one).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut set = BTreeSet::new();
        for name in s.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            let role = Role::ALL
                .into_iter()
                .find(|r| r.as_str() == name)
                .ok_or_else(|| {
                    format!("unknown role `{name}` (expected fleet, ingest, detect or api)")
                })?;
            set.insert(role);
        }
        if set.is_empty() {
            return Err("no role given (expected some of fleet, ingest, detect, api)".into());
        }
        Ok(Self(set))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_parse_and_print() {
        let roles: Roles = "api, fleet,ingest"
            .parse()
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(roles.to_string(), "fleet,ingest,api");
        assert!(!roles.has(Role::Detect));
        assert!(roles.unsupported_gaps().is_empty());
        assert_eq!(Roles::all().to_string(), "fleet,ingest,detect,api");
        assert!("fleet,bogus".parse::<Roles>().is_err());
        assert!("".parse::<Roles>().is_err());
        let detect_only: Roles = "detect".parse().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            detect_only.unsupported_gaps(),
            vec![Role::Fleet, Role::Ingest, Role::Api]
        );
    }
}
