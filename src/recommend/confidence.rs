//! How much the history can be trusted, and how much wider the margin gets when it cannot.
//!
//! The VPA's heuristic (`getConfidence` in its recommender's estimator): the smaller of the
//! history's span in days and the sample count normalized to days (it assumes one sample a
//! minute; we use the usage's step, pooled over pods as the VPA pools them). rightsizer caps
//! it at `fullConfidenceDays` (a week: one weekly cycle) to get a score in 0..1, and widens
//! every value by `1 + lowConfidenceMargin x (1 - score)`: a day of history adds about 21 %,
//! a full week adds nothing. Memory is widened only while the history is shorter than a day:
//! its figure is already the peak, not a percentile estimated from too few points, and one
//! day holds the daily cycle's peak (the buffer covers what comes above it; a wider margin
//! on two days of a flat working set only reserved memory no pod used).

use crate::model::ContainerUsage;

use super::policy::Rules;

/// Step assumed when the usage does not say (the default `--step`).
const DEFAULT_STEP: i64 = 300;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Confidence {
    /// VPA-style confidence: min(span in days, samples normalized to days).
    pub days: f64,
    /// `days / fullConfidenceDays`, capped at 1.
    pub score: f64,
    /// Multiplier applied to recommended CPU values (>= 1).
    pub margin: f64,
    /// Multiplier applied to the memory figure (>= 1): full confidence at one day.
    pub memory_margin: f64,
}

/// Days of history at which the memory figure (a peak) is no longer widened.
const MEMORY_FULL_CONFIDENCE_DAYS: f64 = 1.0;

pub fn confidence(u: &ContainerUsage, step: i64, rules: &Rules) -> Confidence {
    let step = if step > 0 { step } else { DEFAULT_STEP };
    let span_days = u.span_seconds() as f64 / 86_400.0;
    let sample_days = u.cpu.count() as f64 * step as f64 / 86_400.0;
    let days = span_days.min(sample_days);
    let score = (days / rules.full_confidence_days).clamp(0.0, 1.0);
    Confidence {
        days,
        score,
        margin: 1.0 + rules.low_confidence_margin * (1.0 - score),
        memory_margin: 1.0 + rules.low_confidence_margin * (1.0 - (days / MEMORY_FULL_CONFIDENCE_DAYS).clamp(0.0, 1.0)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn usage(samples: u64, span: i64) -> ContainerUsage {
        let mut u = ContainerUsage::default();
        u.cpu.add_n(0.1, samples as u32);
        u.saw(0);
        u.saw(span);
        u
    }

    #[test]
    fn grows_with_days_and_samples_and_caps_at_a_week() {
        let r = Rules::default();
        // (samples at 5 min, span seconds, expected days, expected score)
        let cases = [
            (4_032, 14 * 86_400, 14.0, 1.0),
            (288, 86_400, 1.0, 1.0 / 7.0),
            // Sparse (a CronJob): 14 days apart but only a day's worth of samples.
            (288, 14 * 86_400, 1.0, 1.0 / 7.0),
            (3 * 288 * 7, 7 * 86_400, 7.0, 1.0),
        ];
        for (samples, span, days, score) in cases {
            let c = confidence(&usage(samples, span), 300, &r);
            assert!((c.days - days).abs() < 1e-9, "{samples}/{span}: {c:?}");
            assert!((c.score - score).abs() < 1e-9, "{samples}/{span}: {c:?}");
            assert!((c.margin - (1.0 + 0.25 * (1.0 - score))).abs() < 1e-9);
            assert_eq!(c.memory_margin, 1.0, "a day or more: memory is not widened");
        }
        // Half a day: memory widened by half the margin.
        let c = confidence(&usage(144, 43_200), 300, &r);
        assert!((c.memory_margin - 1.125).abs() < 1e-9, "{c:?}");
    }
}
