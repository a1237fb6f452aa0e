//! A mergeable quantile sketch with a guaranteed relative error (the DDSketch construction:
//! logarithmic buckets of ratio `GAMMA`). It is how a workload's CPU distribution pools the
//! samples of all its pods (what the VPA does) in bounded memory: one sketch per workload x
//! container, a few hundred counters whatever the number of samples.
//!
//! Error bound: for any quantile `q`, the returned value `v` and the exact nearest-rank sample
//! quantile `x` satisfy `|v - x| <= ALPHA * x` (ALPHA = 1 %), for values above `MIN_VALUE`.
//!
//! Memory: the counters are as narrow as the largest count needs (`Counts`: one byte each
//! until a bucket passes 255, then two, then four) and sized exactly to the buckets spanned.
//! A container keeps one sketch for the window and one per UTC day, and most of them (a day of
//! 5-minute points is 288 per replica) never count past 255 in a bucket: a quarter of the
//! memory of `u32` counters, the same counts (issue 16: 10,000 workloads in 256 MiB).

use serde::{Deserialize, Serialize};

use super::counts::Counts;

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
    counts: Counts,
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
            self.counts.grow_back(1);
        } else if i < self.offset {
            self.counts.grow_front((self.offset - i) as usize);
            self.offset = i;
        } else if i >= self.offset + self.counts.len() as i32 {
            self.counts.grow_back((i - self.offset + 1) as usize);
        }
        self.counts.add((i - self.offset) as usize, n);
    }

    /// Extends the counters to buckets `lo..=hi` (and what they held), in one allocation.
    fn cover(&mut self, lo: i32, hi: i32) {
        let (from, to, front) = if self.counts.is_empty() {
            (lo, hi, 0)
        } else {
            let from = lo.min(self.offset);
            let to = hi.max(self.offset + self.counts.len() as i32 - 1);
            (from, to, (self.offset - from) as usize)
        };
        self.counts.grow(front, (to - from + 1) as usize);
        self.offset = from;
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
        let Some((lo, hi)) = other.counts.nonzero_span() else {
            return;
        };
        // Grown once to the buckets both span (bucket by bucket, a merge into an empty sketch
        // reallocated its counters once per bucket: hundreds of reallocations per container).
        self.cover(other.offset + lo as i32, other.offset + hi as i32);
        for (j, c) in other.counts.iter().enumerate().take(hi + 1).skip(lo) {
            if c > 0 {
                self.counts.add((other.offset + j as i32 - self.offset) as usize, c);
            }
        }
    }

    /// [`Sketch::merge`], taking `other`: into an empty sketch it is moved, not copied
    /// (the same buckets, counts and maximum as the copy would have).
    pub fn merge_owned(&mut self, other: Sketch) {
        if self.total == 0
            && self.counts.is_empty()
            && other
                .counts
                .nonzero_span()
                .is_none_or(|(lo, hi)| lo == 0 && hi + 1 == other.counts.len())
        {
            if other.total > 0 {
                *self = other;
            }
            return;
        }
        self.merge(&other);
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
        for (j, c) in self.counts.iter().enumerate() {
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
            .filter(|&(_, c)| c > 0)
            .map(|(j, c)| f64::from(c) * value_of(self.offset + j as i32).min(self.max))
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
                .filter(|&(_, c)| c > 0)
                .map(|(j, c)| (value_of(self.offset + j as i32).min(self.max), u64::from(c))),
        )
    }

    /// Number of buckets held: the sketch's memory is 1 to 4 bytes each (`Counts`).
    pub fn buckets(&self) -> usize {
        self.counts.len()
    }

    /// Bytes the sketch holds on the heap (its counters).
    pub fn heap_bytes(&self) -> usize {
        self.counts.heap_bytes()
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
    fn merging_is_adding_the_samples_whatever_the_order_and_ownership() {
        let groups: [&[f64]; 5] = [
            &[0.5, 0.5, 0.51, 0.0],
            &[0.001, 40.0],
            &[],
            &[2.0, 0.7, 0.0, 1e-9],
            &[3.0; 300],
        ];
        let sketch = |vs: &[f64]| {
            let mut s = Sketch::new();
            for &v in vs {
                s.add(v);
            }
            s
        };
        for order in [[0, 1, 2, 3, 4], [4, 3, 2, 1, 0], [2, 3, 0, 4, 1], [1, 0, 4, 2, 3]] {
            let all: Vec<f64> = order.iter().flat_map(|&i| groups[i].iter().copied()).collect();
            let want = sketch(&all);
            let (mut copied, mut owned) = (Sketch::new(), Sketch::new());
            for i in order {
                copied.merge(&sketch(groups[i]));
                owned.merge_owned(sketch(groups[i]));
            }
            for got in [&copied, &owned] {
                assert_eq!(*got, want, "order {order:?}");
                assert_eq!((got.offset, got.buckets()), (want.offset, want.buckets()));
                assert_eq!(got.heap_bytes(), got.buckets() * 2, "u16 counters, laid out exactly");
            }
        }
        // A sketch whose counters end in zeros (as read from a snapshot) is copied bucket by
        // bucket, as before: the zeros are not taken over.
        let padded: Sketch =
            serde_json::from_str(r#"{"offset":-3,"counts":[0,2,0],"zeros":0,"total":2,"max":1.0}"#).unwrap();
        let mut owned = Sketch::new();
        owned.merge_owned(padded.clone());
        let mut copied = Sketch::new();
        copied.merge(&padded);
        assert_eq!((owned.offset, owned.buckets()), (-2, 1));
        assert_eq!(owned, copied);
    }

    #[test]
    fn narrow_counters_widen_without_changing_an_answer() {
        // A day of one container's 5-minute points (288) fits one byte per bucket; 100 days
        // of a steady value pile 28,800 points into one bucket and need two.
        let mut day = Sketch::new();
        let mut steady = Sketch::new();
        let mut samples = Vec::new();
        for i in 0..288u32 {
            let v = 0.05 + 0.001 * f64::from(i % 97);
            day.add(v);
            samples.push(v);
        }
        assert_eq!(day.heap_bytes(), day.buckets(), "one byte per bucket");
        for _ in 0..100 {
            steady.merge(&day);
        }
        // Each of the day's ranks covers 100 ranks of the merged days: the same buckets.
        for q in [0.01, 0.2, 0.5, 0.7, 0.95, 0.99, 1.0] {
            assert_eq!(steady.quantile(q), day.quantile(q), "q={q}");
        }
        steady.add_n(0.25, 70_000);
        assert_eq!(steady.count(), 28_800 + 70_000);
        assert_eq!(steady.heap_bytes(), 4 * steady.buckets(), "widened to four bytes");
        for q in [0.1, 0.5, 0.9, 0.95, 0.99] {
            let want = exact(&mut samples, q);
            let got = day.quantile(q).unwrap();
            assert!(
                (got - want).abs() <= ALPHA * want + 1e-12,
                "q={q}: got {got}, want {want}"
            );
        }
        assert_eq!(steady.quantile(0.99), Some(0.25_f64.min(value_of(index_of(0.25)))));
    }

    #[test]
    fn serialized_form_is_the_u32_counter_list_and_round_trips() {
        let mut s = Sketch::new();
        for v in [0.5, 0.5, 0.51, 2.0, 0.0] {
            s.add(v);
        }
        s.add_n(0.5, 400);
        let json = serde_json::to_value(&s).unwrap();
        let counts: Vec<u32> = serde_json::from_value(json["counts"].clone()).unwrap();
        assert_eq!(counts.len(), s.buckets());
        assert_eq!(counts[0], 402);
        assert_eq!(counts.iter().map(|&c| u64::from(c)).sum::<u64>() + 1, s.count());
        let back: Sketch = serde_json::from_value(json).unwrap();
        assert_eq!(back, s);
        assert_eq!(back.quantile(0.9), s.quantile(0.9));
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
