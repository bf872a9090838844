//! Evaluating one event: the prefilter picks the candidates, which are evaluated in load
//! order.
//!
//! The prefilter's working memory lives in a per-thread slot: an iterator takes it when made
//! and gives it back, cleared, when dropped, so matching allocates nothing once a thread has
//! evaluated its first event. (Two iterators alive at once on one thread: the second gets a
//! fresh one.)

use std::cell::Cell;

use vigil_ocsf::Event;

use crate::lookup::Lookups;
use crate::prefilter::Scratch;
use crate::rule::{Rule, activity_of};
use crate::ruleset::gate::{CACHED_GATES, Gates};
use crate::ruleset::{ClassIndex, RuleSet};

thread_local! {
    static SCRATCH: Cell<Scratch> = Cell::new(Scratch::default());
}

/// The rules matching one event, found lazily.
pub(super) struct Matches<'a, 'e> {
    rules: &'a [Rule],
    gates: &'a Gates,
    /// This event's verdict on each gate, once worked out.
    verdicts: [u8; CACHED_GATES],
    class: Option<&'a ClassIndex>,
    activity: Option<u64>,
    lookups: Lookups<'e>,
    scratch: Scratch,
    next_always: usize,
    next_candidate: usize,
    standalone_only: bool,
    /// The last rule returned, so a rule with several views (variants next to each other) is
    /// reported once per event.
    last: Option<&'a Rule>,
}

impl<'a, 'e> Matches<'a, 'e> {
    pub(super) fn new(set: &'a RuleSet, event: &'e Event, standalone_only: bool) -> Self {
        let class = set.class(event.class_uid);
        let mut lookups = Lookups::new(&event.data);
        let mut scratch = SCRATCH.try_with(Cell::take).unwrap_or_default();
        if let Some(class) = class {
            lookups.prefetch(&class.paths);
            class.prefilter.scan(&mut lookups, &mut scratch);
        }
        Self {
            rules: &set.rules,
            gates: &set.gates,
            verdicts: [0; CACHED_GATES],
            class,
            activity: activity_of(event),
            lookups,
            scratch,
            next_always: 0,
            next_candidate: 0,
            standalone_only,
            last: None,
        }
    }
}

impl<'a> Iterator for Matches<'a, '_> {
    type Item = &'a Rule;

    fn next(&mut self) -> Option<&'a Rule> {
        let class = self.class?;
        let always = class.prefilter.always();
        loop {
            let a = always.get(self.next_always).copied();
            let c = self.scratch.candidates.get(self.next_candidate).copied();
            let local = match (a, c) {
                (None, None) => return None,
                (Some(a), Some(c)) if a < c => {
                    self.next_always += 1;
                    a
                }
                (Some(a), None) => {
                    self.next_always += 1;
                    a
                }
                (_, Some(c)) => {
                    self.next_candidate += 1;
                    if !class.prefilter.holds(c, &self.scratch) {
                        continue;
                    }
                    c
                }
            };
            let Some(&index) = class.rules.get(local as usize) else {
                continue;
            };
            let Some(rule) = self.rules.get(index) else {
                continue;
            };
            if self.standalone_only && !rule.standalone {
                continue;
            }
            if rule.view.is_some() && self.last.is_some_and(|last| last.id == rule.id) {
                continue;
            }
            if rule.applies_to_activity(self.activity)
                && self
                    .gates
                    .admits(index, &mut self.lookups, &mut self.verdicts)
                && rule.detection.is_match_in(&mut self.lookups)
            {
                self.last = Some(rule);
                return Some(rule);
            }
        }
    }
}

impl Drop for Matches<'_, '_> {
    fn drop(&mut self) {
        self.scratch.reset();
        // During thread teardown the slot may be gone; the memory is then simply freed.
        let _ = SCRATCH.try_with(|slot| {
            let held = slot.replace(std::mem::take(&mut self.scratch));
            // The slot is empty unless another iterator on this thread gave its memory back
            // meanwhile: keep whichever has grown larger.
            if held.capacity() > 0 {
                let mine = slot.take();
                slot.set(if held.capacity() > mine.capacity() {
                    held
                } else {
                    mine
                });
            }
        });
    }
}
