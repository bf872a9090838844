//! Rules an operator switched off: they raise no finding on the server and are not pushed to
//! agents, until switched on again. Kept in the store; read on every evaluation (a set lookup).

use std::collections::HashSet;
use std::sync::{Arc, PoisonError, RwLock};

use crate::bus::{Notice, Relay};

/// The switched-off rules, shared by the detection workers, the policy resolver and the API.
#[derive(Debug, Clone, Default)]
pub struct RuleSwitches {
    off: Arc<RwLock<HashSet<String>>>,
    /// Tells the other server instances of each switch.
    relay: Relay,
}

impl RuleSwitches {
    /// Switches with these rules off.
    pub fn new(off: impl IntoIterator<Item = String>) -> Self {
        Self {
            off: Arc::new(RwLock::new(off.into_iter().collect())),
            relay: Relay::default(),
        }
    }

    /// Also tells the other server instances of every switch made here.
    #[must_use]
    pub fn with_relay(mut self, relay: Relay) -> Self {
        self.relay = relay;
        self
    }

    /// Whether the rule may raise findings.
    pub fn enabled(&self, rule_id: &str) -> bool {
        !self
            .off
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .contains(rule_id)
    }

    /// Switches a rule on or off, here and on the other server instances.
    pub fn set(&self, rule_id: &str, enabled: bool) {
        self.apply(rule_id, enabled);
        self.relay.send(Notice::RuleSwitch {
            rule_id: rule_id.to_owned(),
            enabled,
        });
    }

    /// Switches a rule on or off in this instance only (another instance's notice).
    pub fn apply(&self, rule_id: &str, enabled: bool) {
        let mut off = self.off.write().unwrap_or_else(PoisonError::into_inner);
        if enabled {
            off.remove(rule_id);
        } else {
            off.insert(rule_id.to_owned());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn switches_turn_rules_off_and_on() {
        let s = RuleSwitches::new(["a".to_owned()]);
        assert!(!s.enabled("a"));
        assert!(s.enabled("b"));
        s.set("a", true);
        s.set("b", false);
        assert!(s.enabled("a"));
        assert!(!s.enabled("b"));
    }
}
