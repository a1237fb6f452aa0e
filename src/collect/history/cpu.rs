//! The CPU half of the query plan's reduction: one range-query chunk of per-container 5-minute
//! rates streams into a `CpuChunk`, which pools each container's points into its workload's
//! sketch and sums them per step into the workload's total demand and replica count. A chunk
//! holds one sketch per workload x container, one row of `points` per workload and one bit per
//! series and step, never the samples; chunks merge into the `UsageSet` as they complete.
//!
//! The query is the bare `rate()`, not `sum by (namespace, pod, container)`: the aggregation
//! made Prometheus evaluate three times longer (it hashes every series' labels at every
//! step). cAdvisor can still answer more than one series for a `(namespace, pod, container)`:
//! the same container scraped by two jobs (identical points that a sum would double), or a
//! restarted container whose old cgroup series overlaps the new one for a step. Here each
//! `(namespace, pod, container)` has at most one point per step: the first series that has a
//! point at a step gives it, later ones are counted in `duplicates` and left out.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use super::Owners;
use crate::collect::promparse::{Labels, SeriesSink};
use crate::collect::remote_read::RawSink;
use crate::model::{ContainerKey, ContainerUsage, CpuUsage, UsageSet, WorkloadKey};

/// A series' identity: (namespace, pod, container).
pub(super) type SeriesId = (String, String, String);

/// The pods whose CPU series were pooled so far, per workload x container: one string per
/// series (three per series when keyed by `SeriesId`, issue 16).
pub(super) type SeenPods = HashMap<ContainerKey, HashSet<Box<str>>>;

/// `(namespace, pod, container)` of a series, or `None` when a label is missing.
pub(super) fn series_id(labels: &Labels) -> Option<SeriesId> {
    let get = |k: &str| labels.get(k).filter(|v| !v.is_empty()).cloned();
    Some((get("namespace")?, get("pod")?, get("container")?))
}

/// The reduction of one CPU chunk (evaluation times `first + k * step`, `k < points`).
#[derive(Debug)]
pub(super) struct CpuChunk {
    owners: Arc<Owners>,
    first: i64,
    step: i64,
    points: usize,
    /// Each key is held once, in its index (a key is three strings: a second copy beside the
    /// usage was a sixth of the chunk, issue 16).
    index: HashMap<ContainerKey, usize>,
    /// Per container: only what the CPU pass fills (a whole `ContainerUsage` was twice the
    /// size, issue 16), and the container's workload slot.
    containers: Vec<(CpuUsage, usize)>,
    workload_index: HashMap<WorkloadKey, usize>,
    /// Per workload: the total CPU (cores) at each step, over all pods and containers.
    totals: Vec<Vec<f32>>,
    /// Per `(namespace, pod, container)`, keyed as (container slot, pod): the container's key
    /// holds the namespace and the container name, so a series owns one string, not three
    /// (issue 16). Its slot: `bits[slot * words..][..words]` has one bit per step that has a
    /// point (one array for every series: a `Vec` per series cost 40 bytes besides its bits).
    /// The workload's replica count at a step is counted from these bits when the chunk is
    /// merged: per container name, the number of pods with a point, the largest of them
    /// (init containers and sidecars that come and go do not add replicas). A row of counts
    /// per container name, kept while reading, was the largest part of a chunk (issue 16).
    series: HashMap<(usize, Box<str>), usize>,
    bits: Vec<u64>,
    /// (container slot, workload slot, series slot) of the series being read.
    current: Option<(usize, usize, usize)>,
    pub(super) dropped: u64,
    /// Points left out because another series of the same container had one at that step.
    pub(super) duplicates: u64,
    pub(super) bad_series: u64,
}

impl CpuChunk {
    pub(super) fn new(owners: Arc<Owners>, first: i64, last: i64, step: i64) -> Self {
        CpuChunk {
            owners,
            first,
            step,
            points: ((last - first) / step + 1).max(0) as usize,
            index: HashMap::new(),
            containers: Vec::new(),
            workload_index: HashMap::new(),
            totals: Vec::new(),
            series: HashMap::new(),
            bits: Vec::new(),
            current: None,
            dropped: 0,
            duplicates: 0,
            bad_series: 0,
        }
    }

    /// The last evaluation time of the chunk.
    fn last(&self) -> i64 {
        self.first + (self.points as i64 - 1) * self.step
    }

    pub(super) fn series_count(&self) -> usize {
        self.series.len()
    }

    /// Words of `bits` per series.
    fn words(&self) -> usize {
        self.points.div_ceil(64)
    }

    /// Pools this chunk into `usage`; `seen` holds the pods of each container in earlier
    /// chunks, so a pod counts once per container however many chunks it spans.
    pub(super) fn merge_into(self, usage: &mut UsageSet, seen: &mut SeenPods) {
        let words = self.words();
        let mut containers = self.containers;
        // Per container: its pods and their series slots.
        let mut series: Vec<Vec<(Box<str>, usize)>> = (0..containers.len()).map(|_| Vec::new()).collect();
        for ((c, pod), slot) in self.series {
            series[c].push((pod, slot));
        }
        let mut of_workload: Vec<Vec<usize>> = (0..self.totals.len()).map(|_| Vec::new()).collect();
        for (c, (_, w)) in containers.iter().enumerate() {
            of_workload[*w].push(c);
        }
        let (mut replicas, mut present) = (vec![0u16; self.points], vec![0u16; self.points]);
        for (key, w) in self.workload_index {
            replicas.fill(0);
            for &c in &of_workload[w] {
                present.fill(0);
                for &(_, slot) in &series[c] {
                    for (i, &word) in self.bits[slot * words..][..words].iter().enumerate() {
                        let mut word = word;
                        while word != 0 {
                            let n = &mut present[i * 64 + word.trailing_zeros() as usize];
                            *n = n.saturating_add(1);
                            word &= word - 1;
                        }
                    }
                }
                for (r, &n) in replicas.iter_mut().zip(&present) {
                    *r = (*r).max(n);
                }
            }
            let total = &self.totals[w];
            let w = usage.workloads.entry(key).or_default();
            for (&replicas, &total) in replicas.iter().zip(total) {
                if replicas > 0 {
                    w.total_cpu.add(f64::from(total));
                    w.replicas.add(f64::from(replicas));
                }
            }
        }
        // Each key once per chunk, and merging is commutative: the map's order changes nothing.
        for (key, c) in self.index {
            let mut part = std::mem::take(&mut containers[c].0);
            let known = match seen.get_mut(&key) {
                Some(known) => known,
                None => seen.entry(key.clone()).or_default(),
            };
            for (pod, _) in std::mem::take(&mut series[c]) {
                if known.insert(pod) {
                    part.pods += 1;
                }
            }
            usage.containers.entry(key).or_default().merge_cpu(part);
        }
    }
}

impl CpuChunk {
    /// A short-window rate of the series being read (remote read computes them from the same
    /// raw samples as the 5-minute rates).
    fn short_rate(&mut self, v: f64) {
        if let Some((c, ..)) = self.current {
            self.containers[c].0.observe_short_cpu(v);
        }
    }
}

impl SeriesSink for CpuChunk {
    fn series(&mut self, labels: &Labels) {
        let Some(id) = series_id(labels) else {
            self.bad_series += 1;
            self.current = None;
            return;
        };
        let workload = self.owners.resolve(&id.0, &id.1);
        let points = self.points;
        let w = match self.workload_index.get(&workload) {
            Some(&w) => w,
            None => {
                self.totals.push(vec![0.0; points]);
                self.workload_index.insert(workload.clone(), self.totals.len() - 1);
                self.totals.len() - 1
            }
        };
        let key = ContainerKey::new(workload, id.2.as_str());
        let c = *self.index.entry(key).or_insert_with(|| {
            self.containers.push((CpuUsage::default(), w));
            self.containers.len() - 1
        });
        let (words, next) = (self.words(), self.series.len());
        let s = *self.series.entry((c, id.1.into_boxed_str())).or_insert_with(|| {
            self.bits.resize(self.bits.len() + words, 0);
            next
        });
        self.current = Some((c, w, s));
    }

    fn sample(&mut self, t: f64, v: f64) {
        let Some((c, w, s)) = self.current else { return };
        if !v.is_finite() || v < 0.0 {
            self.dropped += 1;
            return;
        }
        let t = t.round() as i64;
        let k = (t - self.first).div_euclid(self.step);
        let in_chunk = (0..self.points as i64).contains(&k);
        if in_chunk {
            let (word, bit) = (k as usize / 64, 1u64 << (k % 64));
            let words = self.words();
            let taken = &mut self.bits[s * words + word];
            if *taken & bit != 0 {
                self.duplicates += 1;
                return;
            }
            *taken |= bit;
        }
        let usage = &mut self.containers[c].0;
        usage.observe_cpu(super::day_of(t), v);
        usage.saw(t);
        if in_chunk {
            self.totals[w][k as usize] += v as f32;
        }
    }
}

/// Prometheus 2's `extrapolatedRate` for a counter (`promql/functions.go`, 2.42): `samples`
/// are the (milliseconds, value) points in the closed range `[start_ms, end_ms]`; counter
/// resets are added back, and the increase is extrapolated to the range edges when the first
/// and last samples are within 1.1 average intervals of them (else by half an interval), never
/// below zero at the start. Same operations in the same order, so the same doubles.
pub(super) fn extrapolated_rate(samples: &[(i64, f64)], start_ms: i64, end_ms: i64) -> Option<f64> {
    if samples.len() < 2 {
        return None;
    }
    let (first, last) = (samples[0], samples[samples.len() - 1]);
    let mut result = last.1 - first.1;
    let mut prev = 0.0;
    for &(_, v) in samples {
        if v < prev {
            result += prev;
        }
        prev = v;
    }
    let mut to_start = (first.0 - start_ms) as f64 / 1000.0;
    let to_end = (end_ms - last.0) as f64 / 1000.0;
    let sampled = (last.0 - first.0) as f64 / 1000.0;
    let average = sampled / (samples.len() - 1) as f64;
    if result > 0.0 && first.1 >= 0.0 {
        let to_zero = sampled * (first.1 / result);
        if to_zero < to_start {
            to_start = to_zero;
        }
    }
    let threshold = average * 1.1;
    let mut interval = sampled;
    interval += if to_start < threshold { to_start } else { average / 2.0 };
    interval += if to_end < threshold { to_end } else { average / 2.0 };
    let mut factor = interval / sampled;
    factor /= (end_ms - start_ms) as f64 / 1000.0;
    Some(result * factor)
}

/// Remote read's raw counter samples, one series at a time, turned into the points
/// `rate(container_cpu_usage_seconds_total[range])` has at each step of the chunk, and handed
/// to the chunk as the range query's answer would be.
#[derive(Debug)]
pub(super) struct RateSink {
    pub(super) chunk: CpuChunk,
    range_ms: i64,
    labels: Option<Labels>,
    samples: Vec<(i64, f64)>,
    rates: Vec<(f64, f64)>,
}

impl RateSink {
    pub(super) fn new(chunk: CpuChunk, range_ms: i64) -> Self {
        RateSink {
            chunk,
            range_ms,
            labels: None,
            samples: Vec::new(),
            rates: Vec::new(),
        }
    }
}

impl RawSink for RateSink {
    fn series(&mut self, labels: &Labels) {
        self.labels = Some(labels.clone());
        self.samples.clear();
    }

    fn samples(&mut self, samples: &[(i64, f64)]) {
        self.samples.extend_from_slice(samples);
    }

    fn end_series(&mut self) {
        let Some(labels) = self.labels.take() else { return };
        let s = &mut self.samples;
        if !s.is_sorted_by_key(|p| p.0) {
            s.sort_by_key(|p| p.0);
        }
        s.dedup_by_key(|p| p.0);
        self.rates.clear();
        let (mut lo, mut hi) = (0, 0);
        for k in 0..self.chunk.points as i64 {
            let t = (self.chunk.first + k * self.chunk.step) * 1000;
            let start = t - self.range_ms;
            while lo < s.len() && s[lo].0 < start {
                lo += 1;
            }
            hi = hi.max(lo);
            while hi < s.len() && s[hi].0 <= t {
                hi += 1;
            }
            if let Some(r) = extrapolated_rate(&s[lo..hi], start, t) {
                self.rates.push(((t / 1000) as f64, r));
            }
        }
        // Like the range query, a series without a point in the chunk is not there at all.
        if !self.rates.is_empty() {
            self.chunk.series(&labels);
            for &(t, r) in &self.rates {
                self.chunk.sample(t, r);
            }
            if let Some(peak) = super::short_rate::short_peak(s, self.chunk.first - self.chunk.step, self.chunk.last())
            {
                self.chunk.short_rate(peak);
            }
        }
    }
}

/// Remote read's raw working-set samples, one series at a time, reduced to the peak of each
/// UTC day (days run `(midnight, next midnight]` in milliseconds, as the PromQL plan's
/// ranges; the window's first sample, at its start, counts for the first day), handed to a
/// `PerContainer` as points at each day's end. Remote read sends whole chunks: samples
/// outside `[start, end]` are left out here.
pub(super) struct DailyPeaks {
    pub(super) out: PerContainer,
    /// The window, milliseconds.
    range: (i64, i64),
    labels: Option<Labels>,
    peaks: std::collections::BTreeMap<i64, f64>,
}

impl DailyPeaks {
    pub(super) fn new(out: PerContainer, range: (i64, i64)) -> Self {
        DailyPeaks {
            out,
            range,
            labels: None,
            peaks: std::collections::BTreeMap::new(),
        }
    }
}

impl RawSink for DailyPeaks {
    fn series(&mut self, labels: &Labels) {
        self.labels = Some(labels.clone());
        self.peaks.clear();
    }

    fn samples(&mut self, samples: &[(i64, f64)]) {
        const DAY_MS: i64 = 86_400_000;
        let (start, end) = self.range;
        for &(t, v) in samples {
            if v.is_finite() && (start..=end).contains(&t) {
                let t = t.max(start + 1);
                let day = (t - 1).div_euclid(DAY_MS) * (DAY_MS / 1000);
                let peak = self.peaks.entry(day).or_insert(v);
                *peak = peak.max(v);
            }
        }
    }

    fn end_series(&mut self) {
        let Some(labels) = self.labels.take() else { return };
        if self.peaks.is_empty() {
            return;
        }
        self.out.series(&labels);
        for (&day, &peak) in &self.peaks {
            self.out.sample((day + 86_400) as f64, peak);
        }
    }
}

/// A reduction of per-container points into `ContainerUsage` fields (daily peaks, restarts,
/// OOM kills, CFS counters), for answers with few points per series.
///
/// Memory: an answer's points are kept as they came, `(t, v)` per container in answer order,
/// and `apply` runs on them when they are merged into the one `UsageSet`. A whole
/// `ContainerUsage` per container per query (a sketch, two maps and a B-tree node for a daily
/// peak: ~500 bytes where one point takes 16) held in each of the six queries' answers until
/// the CPU chunks were done was the largest part of the heap after them (issue 16). Applying
/// the same points in the same order to the merged usage gives the same fields: the reductions
/// are maxima and minima, and each sum (CFS periods) is filled by one query only.
pub(super) struct PerContainer {
    owners: Arc<Owners>,
    pub(super) apply: fn(&mut ContainerUsage, i64, f64),
    current: Option<ContainerKey>,
    /// The answer's points per container, in answer order, not yet applied.
    pub(super) points: HashMap<ContainerKey, Vec<(i64, f64)>>,
    /// Usage built in Rust (restarts, OOM kills and their limits: restarted containers only).
    pub(super) out: HashMap<ContainerKey, ContainerUsage>,
    pub(super) series: u64,
    pub(super) bad_series: u64,
}

impl PerContainer {
    pub(super) fn new(owners: Arc<Owners>, apply: fn(&mut ContainerUsage, i64, f64)) -> Self {
        PerContainer {
            owners,
            apply,
            current: None,
            points: HashMap::new(),
            out: HashMap::new(),
            series: 0,
            bad_series: 0,
        }
    }

    /// Adds another answer of the same query (its points after this one's).
    pub(super) fn extend(&mut self, other: PerContainer) {
        self.series += other.series;
        self.bad_series += other.bad_series;
        for (key, points) in other.points {
            self.points.entry(key).or_default().extend(points);
        }
        for (key, u) in other.out {
            self.out.entry(key).or_default().merge(&u);
        }
    }

    /// Applies the points to the containers `usage` has, leaving out the others (a value
    /// that only adds to what the CPU pass found).
    pub(super) fn apply_to_known(self, usage: &mut UsageSet) {
        for (key, points) in self.points {
            if let Some(u) = usage.containers.get_mut(&key) {
                for (t, v) in points {
                    (self.apply)(u, t, v);
                }
            }
        }
    }

    pub(super) fn merge_into(self, usage: &mut UsageSet) {
        for (key, points) in self.points {
            let u = usage.containers.entry(key).or_default();
            for (t, v) in points {
                (self.apply)(u, t, v);
            }
        }
        for (key, u) in self.out {
            usage.containers.entry(key).or_default().merge(&u);
        }
    }
}

impl SeriesSink for PerContainer {
    fn series(&mut self, labels: &Labels) {
        self.current = series_id(labels).map(|(ns, pod, container)| {
            self.series += 1;
            ContainerKey::new(self.owners.resolve(&ns, &pod), container)
        });
        if self.current.is_none() {
            self.bad_series += 1;
        }
    }

    fn sample(&mut self, t: f64, v: f64) {
        if let Some(key) = &self.current {
            let points = match self.points.get_mut(key) {
                Some(p) => p,
                None => self.points.entry(key.clone()).or_insert_with(|| Vec::with_capacity(1)),
            };
            points.push((t.round() as i64, v));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::WorkloadKind;

    fn labels(pod: &str, container: &str) -> Labels {
        [("namespace", "shop"), ("pod", pod), ("container", container)]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn a_chunk_pools_pods_and_sums_steps_per_workload() {
        let mut owners = Owners::default();
        owners.insert_pod("shop", "web-1", "ReplicaSet", "web-a");
        owners.insert_pod("shop", "web-2", "ReplicaSet", "web-a");
        owners.insert_replica_set("shop", "web-a", "Deployment", "web");
        let mut chunk = CpuChunk::new(Arc::new(owners), 600, 1200, 300);
        for (pod, container, points) in [
            ("web-1", "app", vec![(600.0, 0.5), (900.0, 0.25)]),
            ("web-1", "envoy", vec![(600.0, 0.125), (900.0, f64::NAN)]),
            ("web-2", "app", vec![(900.0, 1.0), (1200.0, 2.0)]),
        ] {
            chunk.series(&labels(pod, container));
            for (t, v) in points {
                chunk.sample(t, v);
            }
        }
        chunk.series(&Labels::new());
        chunk.sample(600.0, 1.0);
        assert_eq!((chunk.dropped, chunk.bad_series), (1, 1));
        let mut usage = UsageSet::default();
        let mut seen = SeenPods::new();
        chunk.merge_into(&mut usage, &mut seen);
        let web = WorkloadKey::new("shop", WorkloadKind::Deployment, "web");
        let app = &usage.containers[&ContainerKey::new(web.clone(), "app")];
        assert_eq!(
            (app.pods, app.cpu.count(), app.first_seen, app.last_seen),
            (2, 4, Some(600), Some(1200))
        );
        let w = &usage.workloads[&web];
        // Totals per step: 0.625, 1.25, 2.0; replicas 1, 2, 1.
        assert_eq!(w.total_cpu.count(), 3);
        assert_eq!(w.total_cpu.max(), Some(2.0));
        assert_eq!(w.replicas.max(), Some(2.0));
        let low = w.replicas.quantile(0.3).unwrap();
        assert!((low - 1.0).abs() <= 0.01, "{low}");
        assert_eq!(seen.values().map(HashSet::len).sum::<usize>(), 3);
    }

    #[test]
    fn replicas_are_the_most_pods_of_any_container_name_at_each_step() {
        let mut owners = Owners::default();
        for pod in ["web-1", "web-2", "web-3"] {
            owners.insert_pod("shop", pod, "StatefulSet", "web");
        }
        // 100 steps: the presence bits span two words.
        let mut chunk = CpuChunk::new(Arc::new(owners), 0, 99 * 300, 300);
        let at = |steps: std::ops::Range<u32>| steps.map(|k| (f64::from(k) * 300.0, 0.25)).collect::<Vec<_>>();
        for (pod, container, points) in [
            ("web-1", "app", at(0..100)),
            ("web-2", "app", at(50..100)),
            // Three sidecars at once outnumber the two apps; one is also seen twice.
            ("web-1", "envoy", at(60..70)),
            ("web-2", "envoy", at(60..70)),
            ("web-3", "envoy", at(60..70)),
            ("web-3", "envoy", at(64..66)),
        ] {
            chunk.series(&labels(pod, container));
            for (t, v) in points {
                chunk.sample(t, v);
            }
        }
        assert_eq!((chunk.duplicates, chunk.series_count()), (2, 5));
        let mut usage = UsageSet::default();
        chunk.merge_into(&mut usage, &mut SeenPods::new());
        let mut want = crate::model::Sketch::new();
        for k in 0..100 {
            want.add(match k {
                0..50 => 1.0,
                60..70 => 3.0,
                _ => 2.0,
            });
        }
        let w = &usage.workloads[&WorkloadKey::new("shop", WorkloadKind::StatefulSet, "web")];
        assert_eq!(w.replicas, want);
        // Totals: 0.25 a pod and container with a point: 0.25, 0.5, 1.25, 0.5.
        assert_eq!((w.total_cpu.count(), w.total_cpu.max()), (100, Some(1.25)));
        let envoy =
            &usage.containers[&ContainerKey::new(WorkloadKey::new("shop", WorkloadKind::StatefulSet, "web"), "envoy")];
        assert_eq!((envoy.pods, envoy.cpu.count()), (3, 30));
    }

    #[test]
    fn a_second_series_of_a_container_fills_only_the_steps_the_first_left_empty() {
        let mut owners = Owners::default();
        owners.insert_pod("shop", "web-1", "StatefulSet", "web");
        let mut chunk = CpuChunk::new(Arc::new(owners), 600, 1500, 300);
        // The old cgroup (steps 600-900), then the restarted container's (900-1500): they
        // overlap at 900, where the first series' point stands.
        for points in [
            vec![(600.0, 0.5), (900.0, 0.25)],
            vec![(900.0, 4.0), (1200.0, 1.0), (1500.0, 2.0)],
        ] {
            chunk.series(&labels("web-1", "app"));
            for (t, v) in points {
                chunk.sample(t, v);
            }
        }
        assert_eq!((chunk.duplicates, chunk.series_count()), (1, 1));
        let mut usage = UsageSet::default();
        chunk.merge_into(&mut usage, &mut SeenPods::new());
        let web = WorkloadKey::new("shop", WorkloadKind::StatefulSet, "web");
        let app = &usage.containers[&ContainerKey::new(web.clone(), "app")];
        assert_eq!((app.pods, app.cpu.count(), app.cpu.max()), (1, 4, Some(2.0)));
        let w = &usage.workloads[&web];
        assert_eq!((w.total_cpu.count(), w.total_cpu.max()), (4, Some(2.0)));
        assert_eq!(w.replicas.max(), Some(1.0));
    }
}
