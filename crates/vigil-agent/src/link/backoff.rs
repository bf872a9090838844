//! Reconnect delays: exponential from 50 ms to a 12.8 s cap, with jitter so a fleet that lost its
//! server does not reconnect in lock-step.

use std::time::Duration;

use rand::Rng;

/// First delay.
pub const BASE: Duration = Duration::from_millis(50);
/// Largest delay (50 ms × 2⁸).
pub const CAP: Duration = Duration::from_millis(12_800);

/// Exponential backoff with "equal jitter": each delay is drawn from `[d/2, d]`.
#[derive(Debug, Clone)]
pub struct Backoff {
    next: Duration,
}

impl Backoff {
    /// Starts at [`BASE`].
    pub fn new() -> Self {
        Self { next: BASE }
    }

    /// Back to [`BASE`] after a successful connection.
    pub fn reset(&mut self) {
        self.next = BASE;
    }

    /// The delay to wait now; doubles the next one up to [`CAP`].
    pub fn next_delay(&mut self) -> Duration {
        let d = self.next;
        self.next = (d * 2).min(CAP);
        let half = d / 2;
        let jitter_ms = rand::rng().random_range(0..=u64::try_from(half.as_millis()).unwrap_or(0));
        half + Duration::from_millis(jitter_ms)
    }
}

impl Default for Backoff {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_within_jitter_and_cap() {
        let mut b = Backoff::new();
        let mut ceiling = BASE;
        for _ in 0..12 {
            let d = b.next_delay();
            assert!(
                d >= ceiling / 2 && d <= ceiling,
                "{d:?} not in [{:?}, {ceiling:?}]",
                ceiling / 2
            );
            ceiling = (ceiling * 2).min(CAP);
        }
        assert_eq!(ceiling, CAP);
        b.reset();
        assert!(b.next_delay() <= BASE);
    }
}
