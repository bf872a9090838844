//! Vigil's detection engine.
//!
//! This crate owns detection content and its evaluation: it parses Sigma rules, compiles their
//! detections into hand-written matchers (literal, prefix, suffix, substring and glob matchers
//! chosen at compile time; regular expressions only for `|re`), maps Sigma fields to OCSF paths
//! through the logsource's [`vigil_ocsf::fieldmap::FieldMap`], applies Sigma global filters,
//! indexes rules by OCSF class and by the literals they need (one Aho-Corasick pass over an
//! event's attributes picks the few rules worth evaluating), maps rule tags to MITRE ATT&CK,
//! and builds the OCSF Detection Finding for a match. It is the hot path of the product:
//! evaluating an event allocates nothing. It also resolves Sigma correlation rules and runs
//! them in a [`Correlator`], a pure, synchronous state machine per host whose semantics
//! (windows, late events, one hit per window, bounds, `generate`) are set out in
//! [`correlation`]. Behind the `yara` cargo feature, the `yara` module compiles YARA rule
//! files with yara-x, scans files and makes findings of the matches.
//!
//! It is pure and must stay so: it must never depend on an async runtime, a database, the
//! network or eBPF (no tokio, sqlx, tonic, aya), so the agent and the server run the very same
//! engine.
//!
//! ```
//! # use std::path::Path;
//! use vigil_detect::{RuleSet, finding_for};
//! use vigil_ocsf::{Event, fieldmap::FieldMaps};
//!
//! let maps = FieldMaps::builtin().unwrap();
//! let rule = r#"
//! title: Decode Base64 Encoded Text
//! id: e2072cab-8c9a-459b-b63c-40ae79e27031
//! tags: [attack.stealth, attack.t1027]
//! logsource: {category: process_creation, product: linux}
//! detection:
//!     selection:
//!         Image|endswith: /base64
//!         CommandLine|contains: -d
//!     condition: selection
//! level: low
//! "#;
//! let (rules, _reports) = RuleSet::from_yaml_str(rule, Path::new("b64.yml"), &maps);
//! let set = RuleSet::new(rules);
//! let event = Event::from_json(br#"{"class_uid": 1007, "activity_id": 1, "time": 0,
//!     "process": {"file": {"path": "/usr/bin/base64"}, "cmd_line": "base64 -d payload"}}"#).unwrap();
//! let hits: Vec<_> = set.matches(&event).collect();
//! assert_eq!(hits.len(), 1);
//! let finding = finding_for(hits[0], &event, vigil_ocsf::now_ms());
//! assert_eq!(finding.finding_info.analytic.uid, "e2072cab-8c9a-459b-b63c-40ae79e27031");
//! ```
//!
//! Matching semantics, where Sigma leaves a choice to the engine:
//! - A Sigma field maps to one or more OCSF paths; a value matches when any present path does.
//!   `Field: null` means every path is absent or null; `Field|exists: true` means some path is
//!   present (even as JSON null); `Field|neq: v` holds when no path equals `v`, so also when
//!   the field is absent. An array attribute matches when any element does.
//! - Strings compare without regard to case (ASCII always; other letters by simple Unicode
//!   lower case) unless `|cased`; `|re` is case-sensitive unless `|re|i`. A number in a rule
//!   matches an equal number or its text; a string in a rule meets a number by its text.
//! - Keyword searches (Sigma lists of plain values) look for each keyword, as a substring, in
//!   the string values of every OCSF attribute the rule's logsource map names (for process
//!   creation: paths, command lines, working directory, user names), never in the event's
//!   bookkeeping (`metadata`, `device`).
//! - `|all` on a single value is accepted (it means the value itself).
//! - A global filter's condition is ANDed to each rule it names as written (so a filter that
//!   suppresses its selection says `condition: not selection`), as pySigma does.
//! - [`RuleSet::matches`] returns the rules whose matches are findings; a base rule that only
//!   feeds correlations (Sigma `generate` left false) is returned by
//!   [`RuleSet::matches_all`] alone, which is what a [`Correlator`] is fed.
#![deny(missing_docs)]
#![warn(clippy::print_stdout, clippy::print_stderr)]

pub mod attack;
pub mod baseline;
pub mod correlation;
mod detection;
mod evaluator;
mod finding;
mod lookup;
mod matcher;
mod prefilter;
mod reader;
mod rule;
mod ruleset;
mod sigma;
#[cfg(feature = "yara")]
pub mod yara;

pub use baseline::{BaselineConfig, HostBaseline};
pub use correlation::{
    CorrelationHit, CorrelationLimits, CorrelationRule, CorrelationStats, CorrelationType,
    Correlator, CountCondition, CountOp, correlation_finding,
};
pub use evaluator::Evaluator;
pub use finding::{finding_for, finding_uid};
pub use prefilter::PrefilterStats;
pub use rule::{LoadReport, Rule, RuleReport, RuleStatus, StatusCounts};
pub use ruleset::{LoadError, RuleSet};
