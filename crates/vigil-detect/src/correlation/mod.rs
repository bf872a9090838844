//! Sigma correlation rules (specification 2.1.0): `event_count`, `value_count`, `temporal`
//! and `temporal_ordered`, evaluated by a pure, synchronous engine.
//!
//! A [`Correlator`] holds the state of one partition (the server keys partitions by sensor or
//! host, so a group never mixes two hosts). The caller feeds it each event with the rules the
//! event matched ([`crate::RuleSet::matches_all`]) and gets back the hits the event completes;
//! [`correlation_finding`] turns a hit into an OCSF Detection Finding. The caller owns
//! persistence and the clock.
//!
//! ```
//! # use std::path::Path;
//! use vigil_detect::{CorrelationLimits, Correlator, RuleSet};
//! use vigil_ocsf::{Event, fieldmap::FieldMaps};
//!
//! let text = r#"
//! title: Many shells
//! correlation: {type: event_count, rules: [shell], group-by: [User], timespan: 1m,
//!               condition: {gte: 3}}
//! level: high
//! ---
//! title: Shell
//! name: shell
//! logsource: {category: process_creation, product: linux}
//! detection: {sel: {Image|endswith: /sh}, condition: sel}
//! "#;
//! let maps = FieldMaps::builtin().unwrap();
//! let (set, report) = RuleSet::load_str(text, Path::new("shells.yml"), &maps);
//! assert_eq!(report.loaded(), 2);
//! let mut correlator = Correlator::new(&set, CorrelationLimits::default());
//! let mut hits = Vec::new();
//! for t in 0..5 {
//!     let event = Event::from_json(format!(r#"{{"class_uid": 1007, "activity_id": 1,
//!         "time": {t}, "process": {{"file": {{"path": "/bin/sh"}},
//!         "user": {{"name": "bob"}}}}}}"#).as_bytes()).unwrap();
//!     // The base rule feeds only the correlation: `matches` leaves it out.
//!     assert_eq!(set.matches(&event).count(), 0);
//!     let matched: Vec<_> = set.matches_all(&event).collect();
//!     hits.extend(correlator.observe(&event, &matched));
//! }
//! assert_eq!(hits.len(), 1, "one hit per window");
//! assert_eq!(hits[0].group, [("User".to_owned(), "bob".to_owned())]);
//! assert_eq!(hits[0].count, 3);
//! ```
//!
//! # Semantics
//!
//! - **Event time** is the event's `time` (ms since the epoch); arrival order only matters for
//!   late events (below).
//! - **Groups.** Each correlation keeps one group per distinct tuple of `group-by` values.
//!   A `group-by` name is an alias (`aliases`, looked up by the referenced rule's `name` or
//!   id) or a Sigma field, read through the referenced rule's logsource field map (so
//!   `SourceIp` is `src_endpoint.ip` for `network_connection`); the first non-null attribute
//!   counts, its text is the value, and an absent field is the empty value (still grouped).
//!   Without `group-by` a correlation has one group per partition. Along a chain
//!   (a correlation referring to another), only the inner correlation's group-by values
//!   travel, so the outer one must group by (aliases of) those.
//! - **Windows** slide: a group's window is the `timespan` (inclusive) ending at the newest
//!   event time the group has seen. At each event the condition is compared with the window's
//!   count: events (`event_count`; one event counts once even when it matched several of the
//!   referenced rules), distinct values of `field` (`value_count`; several fields count
//!   distinct combinations, and an event without the field is not counted), referenced rules
//!   seen (`temporal`), or the length of the chain of referenced rules seen in the listed
//!   order, each at or after the one before (`temporal_ordered`). Every comparison of the
//!   condition must hold (`{gt: 100, lte: 200}` is a range); `temporal` without a condition
//!   needs all the rules. Conditions are checked as events arrive, so `lt`/`lte` hold from the
//!   first event on.
//! - **One hit per window.** When the condition holds, the group fires once: the hit reports
//!   the count at that moment, the window's first and last event times and its most recent
//!   event ids. The window is then emptied and the group stays quiet until the window that
//!   fired has passed (`timespan` after its newest event); events keep filling the new window
//!   meanwhile, so a scan that goes on fires again once per window, never once per extra port.
//! - **Late events.** An event up to `timespan` older than the newest event of its group is
//!   counted in its place; an older one falls outside every window the group can still fire
//!   for, and is ignored and counted in [`CorrelationStats::late_events`].
//! - **Bounded state.** [`CorrelationLimits`] caps the groups (evicting the group whose window
//!   ends first), the events remembered per group, the distinct values per group and the
//!   event ids kept; every cut is counted in [`CorrelationStats`]. [`Correlator::expire`] drops
//!   groups whose window has passed, in the order windows end.
//! - **`generate`.** A rule referred to by a correlation without `generate: true` (the Sigma
//!   default) feeds the correlation only: [`crate::Rule::standalone`] is false and
//!   [`crate::RuleSet::matches`] leaves it out. This holds even when the correlation cannot be
//!   loaded, since such rules were written as building blocks. A correlation referred to by
//!   another the same way feeds it without returning hits of its own.
//! - **Loading.** Correlations and their rules may share a file (YAML documents separated by
//!   `---`) or not; references are by id, then by `name`. A reference to a rule that is not
//!   loaded makes the correlation not applicable (or unsupported, as that rule), with a reason
//!   naming the rule and why it did not load; a cycle of correlations is malformed;
//!   `value_sum`, `value_avg`, `value_percentile` and expression conditions are unsupported.

mod engine;
mod finding;
pub(crate) mod rule;
mod window;

pub use engine::{CorrelationHit, CorrelationLimits, CorrelationStats, Correlator};
pub use finding::correlation_finding;
pub use rule::{CorrelationRule, CorrelationType, CountCondition, CountOp};

#[cfg(test)]
mod tests;
