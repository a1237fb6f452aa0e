//! The short-window CPU peak: the highest 2-minute rate, evaluated every minute, that a CPU
//! limit must leave room for. By remote read it comes from the raw samples the 5-minute
//! rates are computed from (`cpu::RateSink`); without, from one PromQL subquery
//! (`history::cpu`), and both evaluate the same rates at the same times.

use super::cpu::extrapolated_rate;

/// Width of the short-window CPU rate: 2 minutes, the shortest window that holds two samples
/// at the common 60 s cAdvisor scrape interval (a 1-minute rate is empty there). Evaluated
/// every minute, its peak is what a CPU limit must leave room for: 5-minute rates average a
/// 30 s GC or start-up burst down to a tenth of its height.
pub(super) const SHORT_RATE_SECONDS: i64 = 120;
pub(super) const SHORT_RATE_STEP: i64 = 60;

/// The highest `rate(counter[2m])` evaluated at the whole minutes in `(from, to]` (unix
/// seconds), from a series' sorted raw samples (milliseconds): what the PromQL plan's
/// `max_over_time(rate(...[2m])[window:1m])` computes, so both paths agree.
pub(super) fn short_peak(samples: &[(i64, f64)], from: i64, to: i64) -> Option<f64> {
    let mut peak: Option<f64> = None;
    let first = (from.div_euclid(SHORT_RATE_STEP) + 1) * SHORT_RATE_STEP;
    let (mut lo, mut hi) = (0, 0);
    let mut t = first;
    while t <= to {
        let (end, start) = (t * 1000, (t - SHORT_RATE_SECONDS) * 1000);
        while lo < samples.len() && samples[lo].0 < start {
            lo += 1;
        }
        hi = hi.max(lo);
        while hi < samples.len() && samples[hi].0 <= end {
            hi += 1;
        }
        if let Some(r) = extrapolated_rate(&samples[lo..hi], start, end).filter(|r| r.is_finite() && *r >= 0.0) {
            peak = Some(peak.map_or(r, |p: f64| p.max(r)));
        }
        t += SHORT_RATE_STEP;
    }
    peak
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_shorter_than_five_minutes_shows_in_the_two_minute_peak() {
        // A counter at 0.5 core, with a 90 s burst at 2 cores, sampled every 15 s.
        let mut samples = Vec::new();
        let mut v = 0.0;
        for i in 0..120i64 {
            let t = i * 15;
            samples.push((t * 1000, v));
            v += if (600..690).contains(&t) {
                2.0 * 15.0
            } else {
                0.5 * 15.0
            };
        }
        let peak = short_peak(&samples, 0, 1800).unwrap();
        assert!(peak > 1.5 && peak <= 2.0 + 1e-9, "{peak}");
        // A 5-minute window around the burst averages it down to under 1 core.
        let five = extrapolated_rate(&samples[40..60], 600_000, 900_000).unwrap();
        assert!(five < 1.0, "{five}");
        assert_eq!(short_peak(&samples[..1], 0, 1800), None);
    }
}
