//! A quantile sketch whose samples lose weight with age: the recency weighting of the VPA
//! recommender (its CPU histogram decays with a 24 h half-life), on the same logarithmic
//! buckets as `Sketch` (relative error `SKETCH_ALPHA`). A sample at time `t` weighs
//! `2^((t - reference) / half_life)`: recent samples count more, and the weights are
//! renormalized when they grow large, so only ratios matter. `recommend` builds one per
//! container from the per-day CPU sketches the collector fills (`ContainerUsage::cpu_days`,
//! each day weighted at its midpoint: day granularity, so one collection serves any
//! half-life the policy asks for) when the policy sets `recencyHalfLifeHours`.

use serde::{Deserialize, Serialize};

use super::sketch::{MIN_VALUE, index_of, value_of};

/// Renormalize once the newest weight passes 2^40: far from f64 overflow, and the oldest
/// samples of a 14-day window at a 24 h half-life still weigh 2^-14, well above underflow.
const RENORMALIZE_EXPONENT: f64 = 40.0;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DecayingSketch {
    /// Seconds after which a sample's weight halves.
    half_life_seconds: f64,
    /// Unix seconds at which a sample weighs 1.
    reference: i64,
    offset: i32,
    weights: Vec<f64>,
    zero_weight: f64,
    total_weight: f64,
    samples: u64,
    max: f64,
}

impl DecayingSketch {
    /// An empty sketch with the given half-life (seconds, > 0).
    pub fn new(half_life_seconds: f64) -> Self {
        DecayingSketch {
            half_life_seconds: if half_life_seconds > 0.0 {
                half_life_seconds
            } else {
                f64::INFINITY
            },
            reference: 0,
            offset: 0,
            weights: Vec::new(),
            zero_weight: 0.0,
            total_weight: 0.0,
            samples: 0,
            max: 0.0,
        }
    }

    pub fn half_life_seconds(&self) -> f64 {
        self.half_life_seconds
    }

    /// Number of samples added (unweighted).
    pub fn count(&self) -> u64 {
        self.samples
    }

    pub fn is_empty(&self) -> bool {
        self.samples == 0
    }

    fn scale(&mut self, factor: f64) {
        for w in &mut self.weights {
            *w *= factor;
        }
        self.zero_weight *= factor;
        self.total_weight *= factor;
    }

    /// Moves the reference to `t` (rescaling the stored weights) when `t` is later.
    fn rebase(&mut self, t: i64) {
        if self.samples == 0 {
            self.reference = t;
            return;
        }
        if t > self.reference {
            let factor = (-((t - self.reference) as f64) / self.half_life_seconds).exp2();
            self.scale(factor);
            self.reference = t;
        }
    }

    /// Adds a sample `v` observed at unix time `t`. Refuses NaN, infinite and negative values.
    pub fn add(&mut self, v: f64, t: i64) -> bool {
        if !v.is_finite() || v < 0.0 {
            return false;
        }
        if self.samples == 0 {
            self.reference = t;
        }
        let mut exponent = (t - self.reference) as f64 / self.half_life_seconds;
        if exponent > RENORMALIZE_EXPONENT {
            self.rebase(t);
            exponent = 0.0;
        }
        let w = exponent.exp2();
        self.samples += 1;
        self.total_weight += w;
        self.max = self.max.max(v);
        if v <= MIN_VALUE {
            self.zero_weight += w;
            return true;
        }
        self.bump(index_of(v), w);
        true
    }

    /// Adds `n` samples of value `v` observed at `t` (same as `n` calls of `add`).
    pub fn add_n(&mut self, v: f64, n: u64, t: i64) -> bool {
        if n == 0 || !v.is_finite() || v < 0.0 {
            return n == 0;
        }
        if self.samples == 0 {
            self.reference = t;
        }
        let mut exponent = (t - self.reference) as f64 / self.half_life_seconds;
        if exponent > RENORMALIZE_EXPONENT {
            self.rebase(t);
            exponent = 0.0;
        }
        let w = exponent.exp2() * n as f64;
        self.samples += n;
        self.total_weight += w;
        self.max = self.max.max(v);
        if v <= MIN_VALUE {
            self.zero_weight += w;
        } else {
            self.bump(index_of(v), w);
        }
        true
    }

    /// A sketch of per-day sketches (day start -> samples of that day), each day's samples
    /// weighted at the day's midpoint.
    pub fn from_days<'a>(half_life_seconds: f64, days: impl IntoIterator<Item = (i64, &'a super::Sketch)>) -> Self {
        let mut d = DecayingSketch::new(half_life_seconds);
        for (day, s) in days {
            for (v, n) in s.weighted_values() {
                d.add_n(v, n, day + 43_200);
            }
        }
        d
    }

    fn bump(&mut self, i: i32, w: f64) {
        if self.weights.is_empty() {
            self.offset = i;
            self.weights.push(0.0);
        } else if i < self.offset {
            let grow = (self.offset - i) as usize;
            self.weights.splice(0..0, std::iter::repeat_n(0.0, grow));
            self.offset = i;
        } else if i >= self.offset + self.weights.len() as i32 {
            self.weights.resize((i - self.offset + 1) as usize, 0.0);
        }
        self.weights[(i - self.offset) as usize] += w;
    }

    /// Pools another sketch (same half-life) into this one.
    pub fn merge(&mut self, other: &DecayingSketch) {
        if other.samples == 0 {
            return;
        }
        let mut other = other.clone();
        if self.samples == 0 {
            *self = other;
            return;
        }
        let reference = self.reference.max(other.reference);
        self.rebase(reference);
        other.rebase(reference);
        self.samples += other.samples;
        self.total_weight += other.total_weight;
        self.zero_weight += other.zero_weight;
        self.max = self.max.max(other.max);
        for (j, &w) in other.weights.iter().enumerate() {
            if w > 0.0 {
                self.bump(other.offset + j as i32, w);
            }
        }
    }

    /// Weighted quantile: the smallest bucket value at which the cumulative weight reaches
    /// `q` of the total, within `SKETCH_ALPHA`. `q = 1` returns the exact maximum.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        if self.samples == 0 || !(0.0..=1.0).contains(&q) {
            return None;
        }
        if q >= 1.0 {
            return Some(self.max);
        }
        let target = q * self.total_weight * (1.0 - 1e-12);
        if self.zero_weight >= target && self.zero_weight > 0.0 {
            return Some(0.0);
        }
        let mut seen = self.zero_weight;
        for (j, &w) in self.weights.iter().enumerate() {
            seen += w;
            if w > 0.0 && seen >= target {
                return Some(value_of(self.offset + j as i32).min(self.max));
            }
        }
        Some(self.max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{SKETCH_ALPHA, Sketch};

    #[test]
    fn without_decay_it_matches_the_plain_sketch() {
        let (mut d, mut s) = (DecayingSketch::new(f64::INFINITY), Sketch::new());
        for i in 0..2000i64 {
            let v = 0.01 + ((i * 7919) % 1000) as f64 / 1000.0;
            d.add(v, i * 300);
            s.add(v);
        }
        for q in [0.5, 0.9, 0.95] {
            let (a, b) = (d.quantile(q).unwrap(), s.quantile(q).unwrap());
            assert!((a - b).abs() <= 2.0 * SKETCH_ALPHA * b, "q={q}: {a} vs {b}");
        }
    }

    #[test]
    fn recent_samples_dominate() {
        // A week at 1 core, then a day at 0.1 core: with a 24 h half-life the last day holds
        // about half of the weight, so the median moves to the recent level.
        let mut d = DecayingSketch::new(86_400.0);
        for i in 0..(7 * 288) {
            d.add(1.0, i * 300);
        }
        for i in (7 * 288)..(8 * 288) {
            d.add(0.1, i * 300);
        }
        let median = d.quantile(0.5).unwrap();
        assert!((median - 0.1).abs() <= 0.1 * SKETCH_ALPHA, "{median}");
        assert_eq!(d.count(), 8 * 288);
    }

    #[test]
    fn built_from_days_it_follows_the_recent_days() {
        // Ten days at 1 core, then two at 3 cores: with a 24 h half-life the last two days
        // hold 75 % of the weight, so the median is the new level; without decay, the old.
        let mut days = std::collections::BTreeMap::new();
        for d in 0..12i64 {
            let mut s = Sketch::new();
            s.add_n(if d < 10 { 1.0 } else { 3.0 }, 288);
            days.insert(d * 86_400, s);
        }
        let recent = DecayingSketch::from_days(86_400.0, days.iter().map(|(&d, s)| (d, s)));
        let flat = DecayingSketch::from_days(f64::INFINITY, days.iter().map(|(&d, s)| (d, s)));
        assert_eq!(recent.count(), 12 * 288);
        let (a, b) = (recent.quantile(0.5).unwrap(), flat.quantile(0.5).unwrap());
        assert!((a - 3.0).abs() <= 3.0 * SKETCH_ALPHA, "{a}");
        assert!((b - 1.0).abs() <= SKETCH_ALPHA, "{b}");
    }

    #[test]
    fn long_histories_renormalize_and_merge() {
        let (mut a, mut b) = (DecayingSketch::new(3600.0), DecayingSketch::new(3600.0));
        for i in 0..(60 * 24 * 12) {
            a.add(0.5, i * 60);
        }
        b.add(2.0, 60 * 24 * 12 * 60);
        a.merge(&b);
        assert!(a.total_weight.is_finite() && a.total_weight > 0.0);
        assert_eq!(a.quantile(1.0), Some(2.0));
        let p50 = a.quantile(0.5).unwrap();
        assert!((p50 - 0.5).abs() <= 0.5 * SKETCH_ALPHA, "{p50}");
    }
}
