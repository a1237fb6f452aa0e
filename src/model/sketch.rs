//! A mergeable quantile sketch with a guaranteed relative error (the DDSketch construction:
//! logarithmic buckets of ratio `GAMMA`). It is how a workload's CPU distribution pools the
//! samples of all its pods (what the VPA does) in bounded memory: one sketch per workload x
//! container, a few hundred counters whatever the number of samples.
//!
//! Error bound: for any quantile `q`, the returned value `v` and the exact nearest-rank sample
//! quantile `x` satisfy `|v - x| <= ALPHA * x` (ALPHA = 1 %), for values above `MIN_VALUE`.

use serde::{Deserialize, Serialize};

/// Relative accuracy. 1 % is far below the noise of a 5-minute CPU rate and keeps a sketch
/// that spans a 1000x range of usage under 350 buckets.
pub const ALPHA: f64 = 0.01;
const GAMMA: f64 = (1.0 + ALPHA) / (1.0 - ALPHA);
/// Values at or below this (1 microcore, 1 byte) count as zero: they are idle, not signal.
pub const MIN_VALUE: f64 = 1e-6;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Sketch {
    /// Index of `counts[0]`; bucket `i` holds values in `(GAMMA^(i-1), GAMMA^i]`.
    offset: i32,
    counts: Vec<u32>,
    zeros: u64,
    total: u64,
    max: f64,
}

pub(crate) fn index_of(v: f64) -> i32 {
    (v.ln() / GAMMA.ln()).ceil() as i32
}

/// The representative of bucket `i`: the point whose relative distance to both edges is ALPHA.
pub(crate) fn value_of(i: i32) -> f64 {
    2.0 * GAMMA.powi(i) / (GAMMA + 1.0)
}

impl Sketch {
    pub fn new() -> Self {
        Sketch::default()
    }

    /// Adds one sample. NaN, infinite and negative values are refused (returns false): a
    /// counter reset or a broken exporter must not poison the distribution.
    pub fn add(&mut self, v: f64) -> bool {
        self.add_n(v, 1)
    }

    pub fn add_n(&mut self, v: f64, n: u32) -> bool {
        if !v.is_finite() || v < 0.0 {
            return false;
        }
        if n == 0 {
            return true;
        }
        self.total += u64::from(n);
        self.max = self.max.max(v);
        if v <= MIN_VALUE {
            self.zeros += u64::from(n);
            return true;
        }
        let i = index_of(v);
        self.bump(i, n);
        true
    }

    fn bump(&mut self, i: i32, n: u32) {
        if self.counts.is_empty() {
            self.offset = i;
            self.counts.push(0);
        } else if i < self.offset {
            let grow = (self.offset - i) as usize;
            self.counts.splice(0..0, std::iter::repeat_n(0, grow));
            self.offset = i;
        } else if i >= self.offset + self.counts.len() as i32 {
            self.counts.resize((i - self.offset + 1) as usize, 0);
        }
        let slot = &mut self.counts[(i - self.offset) as usize];
        *slot = slot.saturating_add(n);
    }

    /// Pools another sketch into this one (pods of one workload, or chunks of one window).
    pub fn merge(&mut self, other: &Sketch) {
        if other.total == 0 {
            return;
        }
        self.max = if self.total == 0 {
            other.max
        } else {
            self.max.max(other.max)
        };
        self.total += other.total;
        self.zeros += other.zeros;
        for (j, &c) in other.counts.iter().enumerate() {
            if c > 0 {
                self.bump(other.offset + j as i32, c);
            }
        }
    }

    pub fn count(&self) -> u64 {
        self.total
    }

    pub fn is_empty(&self) -> bool {
        self.total == 0
    }

    /// The exact largest sample seen.
    pub fn max(&self) -> Option<f64> {
        (self.total > 0).then_some(self.max)
    }

    /// Nearest-rank quantile: the value of the `ceil(q * n)`-th smallest sample, within ALPHA.
    /// `q = 1` returns the exact maximum.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        if self.total == 0 || !(0.0..=1.0).contains(&q) {
            return None;
        }
        if q >= 1.0 {
            return Some(self.max);
        }
        let rank = ((q * self.total as f64).ceil() as u64).max(1);
        if rank <= self.zeros {
            return Some(0.0);
        }
        let mut seen = self.zeros;
        for (j, &c) in self.counts.iter().enumerate() {
            seen += u64::from(c);
            if seen >= rank {
                return Some(value_of(self.offset + j as i32).min(self.max));
            }
        }
        Some(self.max)
    }

    /// Mean of the samples, within ALPHA (every bucket counts at its representative value,
    /// which is within ALPHA of each of its samples). Computed from the buckets, so the
    /// serialized form is unchanged. Used for average replicas from a replica-count sketch.
    pub fn mean(&self) -> Option<f64> {
        if self.total == 0 {
            return None;
        }
        let sum: f64 = self
            .counts
            .iter()
            .enumerate()
            .filter(|&(_, &c)| c > 0)
            .map(|(j, &c)| f64::from(c) * value_of(self.offset + j as i32).min(self.max))
            .sum();
        Some(sum / self.total as f64)
    }

    /// Every bucket's representative value (capped at the maximum) and count, zeros first:
    /// how a sketch is replayed into another structure (a recency-weighted sketch).
    pub fn weighted_values(&self) -> impl Iterator<Item = (f64, u64)> + '_ {
        let zeros = (self.zeros > 0).then_some((0.0, self.zeros));
        zeros.into_iter().chain(
            self.counts
                .iter()
                .enumerate()
                .filter(|&(_, &c)| c > 0)
                .map(|(j, &c)| (value_of(self.offset + j as i32).min(self.max), u64::from(c))),
        )
    }

    /// Number of buckets held: the sketch's memory is about 4 bytes each.
    pub fn buckets(&self) -> usize {
        self.counts.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exact(samples: &mut [f64], q: f64) -> f64 {
        samples.sort_by(f64::total_cmp);
        let rank = ((q * samples.len() as f64).ceil() as usize).max(1);
        samples[rank - 1]
    }

    #[test]
    fn quantiles_stay_within_alpha_of_exact() {
        // A skewed, spiky distribution like container CPU: mostly low, long tail.
        let mut samples: Vec<f64> = (0..20_000u64)
            .map(|i| {
                let x = ((i * 2654435761) % 10_007) as f64 / 10_007.0;
                0.01 + 0.2 * x * x * x + if i % 97 == 0 { 1.5 * x } else { 0.0 }
            })
            .collect();
        let mut sketch = Sketch::new();
        for &s in &samples {
            sketch.add(s);
        }
        for q in [0.01, 0.5, 0.9, 0.95, 0.99, 0.999] {
            let want = exact(&mut samples, q);
            let got = sketch.quantile(q).unwrap();
            assert!(
                (got - want).abs() <= ALPHA * want + 1e-12,
                "q={q}: got {got}, want {want}"
            );
        }
        assert_eq!(sketch.quantile(1.0), Some(exact(&mut samples, 1.0)));
    }

    #[test]
    fn merging_equals_pooling() {
        let (mut a, mut b, mut pooled) = (Sketch::new(), Sketch::new(), Sketch::new());
        for i in 0..1000 {
            let v = 0.001 * f64::from(i);
            if i % 3 == 0 {
                a.add(v)
            } else {
                b.add(v)
            };
            pooled.add(v);
        }
        a.merge(&b);
        assert_eq!(a.count(), pooled.count());
        for q in [0.1, 0.5, 0.95] {
            assert_eq!(a.quantile(q), pooled.quantile(q));
        }
    }

    #[test]
    fn mean_is_within_alpha() {
        let mut s = Sketch::new();
        assert_eq!(s.mean(), None);
        for v in [2.0, 3.0, 3.0, 4.0, 0.0] {
            s.add(v);
        }
        let m = s.mean().unwrap();
        assert!((m - 2.4).abs() <= 2.4 * ALPHA, "{m}");
    }

    #[test]
    fn refuses_bad_values_and_handles_empty() {
        let mut s = Sketch::new();
        assert_eq!(s.quantile(0.5), None);
        assert!(!s.add(f64::NAN));
        assert!(!s.add(-1.0));
        assert!(!s.add(f64::INFINITY));
        assert!(s.is_empty());
        s.add(0.0);
        s.add(0.0);
        s.add(2.0);
        assert_eq!(s.quantile(0.5), Some(0.0));
        assert_eq!(s.max(), Some(2.0));
    }
}
