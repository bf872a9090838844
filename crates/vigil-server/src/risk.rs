//! Endpoint risk: every finding adds a contribution by severity; the score decays with a
//! half-life, is capped, and its high-water mark is kept.
//!
//! score(t) = min(CAP, score(t0) · 2^(−(t − t0) / HALF_LIFE) + Σ contributions at t)

use vigil_ocsf::Severity;

/// The score halves over this many milliseconds without new findings (24 h).
pub const HALF_LIFE_MS: f64 = 24.0 * 3600.0 * 1000.0;
/// The highest score.
pub const CAP: f64 = 100.0;

/// What one finding of a severity adds.
pub fn contribution(severity: u8) -> f64 {
    match severity {
        s if s == Severity::Critical as u8 => 50.0,
        s if s == Severity::High as u8 => 25.0,
        s if s == Severity::Medium as u8 => 10.0,
        s if s == Severity::Low as u8 => 5.0,
        _ => 1.0,
    }
}

/// `score` measured at `then`, decayed to `now`.
pub fn decayed(score: f64, then: i64, now: i64) -> f64 {
    let elapsed = now.saturating_sub(then).max(0) as f64;
    score * (-elapsed / HALF_LIFE_MS).exp2()
}

/// An endpoint's risk as the API and agents see it.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize)]
pub struct Risk {
    /// Current score, 0–100.
    pub score: f64,
    /// Highest score ever reached.
    pub high_water: f64,
    /// When the high-water mark was reached (ms), 0 if never.
    pub high_water_at: i64,
}

/// The score over `[from, to]` at `samples` evenly spaced times, from findings given as
/// (time, severity id): each adds its contribution at its time, the sum decays and is capped.
pub fn history(findings: &[(i64, u8)], from: i64, to: i64, samples: usize) -> Vec<(i64, f64)> {
    let mut sorted = findings.to_vec();
    sorted.sort_unstable();
    let samples = samples.max(2);
    let step = (to - from).max(1) as f64 / (samples - 1) as f64;
    let mut out = Vec::with_capacity(samples);
    let (mut score, mut at, mut next) = (0.0f64, i64::MIN, 0usize);
    for i in 0..samples {
        let t = from + (step * i as f64).round() as i64;
        while next < sorted.len() && sorted[next].0 <= t {
            let (ft, sev) = sorted[next];
            score = if at == i64::MIN {
                0.0
            } else {
                decayed(score, at, ft)
            };
            score = (score + contribution(sev)).min(CAP);
            at = ft;
            next += 1;
        }
        let now = if at == i64::MIN {
            0.0
        } else {
            decayed(score, at, t)
        };
        out.push((t, now));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn score_halves_per_half_life() {
        let h = HALF_LIFE_MS as i64;
        assert!((decayed(80.0, 0, h) - 40.0).abs() < 1e-9);
        assert!((decayed(80.0, 0, 2 * h) - 20.0).abs() < 1e-9);
        assert_eq!(decayed(10.0, 5, 5), 10.0);
        assert!(contribution(5) > contribution(4) && contribution(4) > contribution(1));
    }

    #[test]
    fn history_rises_with_findings_and_decays_between() {
        let h = HALF_LIFE_MS as i64;
        let pts = history(&[(h, 4), (h, 4)], 0, 3 * h, 4);
        let scores: Vec<f64> = pts.iter().map(|p| (p.1 * 1e6).round() / 1e6).collect();
        assert_eq!(scores, [0.0, 50.0, 25.0, 12.5]);
        assert!(history(&[(0, 5), (0, 5), (0, 5)], 0, 1, 2)[0].1 <= CAP);
    }
}
