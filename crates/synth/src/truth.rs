//! Ground truth and usage computed straight from the generated raw samples, the way
//! rightsizer reads them from Prometheus: `rate(container_cpu_usage_seconds_total[5m])`
//! evaluated by `query_range` every `eval_step` seconds, pooled over every pod of a
//! workload's container, and the maximum working set over the window.
//!
//! The rate is a re-implementation of Prometheus 2.42's `extrapolatedRate`
//! (`promql/functions.go`): samples in the closed range `[t - 300 s, t]` (2.x range
//! selectors include the left edge), counter resets added back, extrapolation to the range
//! edges when the first/last sample is within 1.1 average intervals of them (else half an
//! interval), and the zero-point clamp for counters. Counter values are written as
//! microseconds in fixed-point decimal, and `micros as f64 / 1e6` is exactly the double
//! Prometheus parses from that text, so the truth matches Prometheus to float precision.
//! Evaluation times are `eval_start(window_start, step) + j * step` up to `end`.

use std::collections::{BTreeMap, VecDeque};

use rightsizer::model::{ContainerKey, ContainerUsage, Resources, Sketch, UsageSet, WorkloadKey};

use super::Cluster;
use super::events::{Frame, SeriesEvents, TruthWorkload, WorkloadSteps, hpa_seconds};
use super::patterns::{ContainerSim, Sample};
use super::plan::WorkloadPlan;
use super::spec::{ClusterSpec, WorkloadSpec};

/// The range of the rate, seconds (`[5m]`).
pub const RATE_RANGE: i64 = 300;
/// The truth's `query_range` step, seconds.
pub const TRUTH_STEP: i64 = 300;
/// Pooled CPU points of the whole cluster up to which the truth keeps every value and takes
/// exact quantiles; above it (benchmark clusters) it uses `model::Sketch` (1 % relative error).
pub const EXACT_LIMIT: u64 = 4_000_000;

/// The first evaluation time: the first multiple of `step` at or after `window_start + 300`,
/// so every evaluation's range lies inside the window.
pub fn eval_start(window_start: i64, step: i64) -> i64 {
    let t = window_start + RATE_RANGE;
    t + (step - t.rem_euclid(step)) % step
}

/// Ground truth of one workload x container.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TruthContainer {
    /// Number of pooled 5-minute rate points (all pods).
    pub cpu_rate_samples: u64,
    /// Nearest-rank quantiles and maximum of the pooled rates, cores.
    pub cpu_p95: f64,
    pub cpu_p50: f64,
    pub cpu_max: f64,
    /// Maximum working set over all pods and the window, bytes.
    pub memory_peak: f64,
    /// OOM kills inside the window, all pods (as the OOM query sees them, see `events.rs`).
    pub oom_kills: u32,
    /// Distinct pods with at least one CPU rate point in the window.
    pub pods: u32,
    /// Requests and limits of the current spec.
    pub requests: Resources,
    /// Restarts inside the window, all pods (OOM kills included), as the restart-delta query
    /// sees them (`events.rs`); the time of the last OOM kill's evaluation step.
    pub restarts: u32,
    pub last_oom: Option<i64>,
    /// `increase()` of the CFS period counters over the window, summed over pods (0 without
    /// a CPU limit).
    pub cfs_periods: f64,
    pub cfs_throttled_periods: f64,
    /// Peak working set per UTC day (day midnight -> bytes).
    pub memory_daily_peaks: BTreeMap<i64, f64>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct GroundTruth {
    pub containers: BTreeMap<ContainerKey, TruthContainer>,
    /// Workload-level truth (total CPU per step, replicas, HPA at max).
    pub workloads: BTreeMap<WorkloadKey, TruthWorkload>,
}

/// Prometheus 2.42 `extrapolatedRate` for a counter, as a per-second rate. `samples` are the
/// (seconds, value) points inside `[range_start, range_end]`.
pub fn extrapolated_rate(samples: &[(i64, f64)], range_start: i64, range_end: i64) -> Option<f64> {
    if samples.len() < 2 {
        return None;
    }
    let (first, last) = (samples[0], samples[samples.len() - 1]);
    let mut result = last.1 - first.1;
    let mut prev = first.1;
    for &(_, v) in &samples[1..] {
        if v < prev {
            result += prev;
        }
        prev = v;
    }
    let mut to_start = (first.0 - range_start) as f64;
    let to_end = (range_end - last.0) as f64;
    let sampled = (last.0 - first.0) as f64;
    let avg = sampled / (samples.len() - 1) as f64;
    if result > 0.0 && first.1 >= 0.0 {
        let to_zero = sampled * (first.1 / result);
        if to_zero < to_start {
            to_start = to_zero;
        }
    }
    let threshold = avg * 1.1;
    let mut interval = sampled;
    interval += if to_start < threshold { to_start } else { avg / 2.0 };
    interval += if to_end < threshold { to_end } else { avg / 2.0 };
    let mut factor = interval / sampled;
    factor /= (range_end - range_start) as f64;
    Some(result * factor)
}

/// Streams one series' samples and emits `(t, rate)` at every evaluation time.
#[derive(Debug)]
pub struct RateEval {
    next: i64,
    step: i64,
    end: i64,
    buf: VecDeque<(i64, f64)>,
    scratch: Vec<(i64, f64)>,
}

impl RateEval {
    pub fn new(first_eval: i64, step: i64, end: i64) -> Self {
        RateEval {
            next: first_eval,
            step,
            end,
            buf: VecDeque::new(),
            scratch: Vec::new(),
        }
    }

    fn eval(&mut self, out: &mut impl FnMut(i64, f64)) {
        let lo = self.next - RATE_RANGE;
        while self.buf.front().is_some_and(|s| s.0 < lo) {
            self.buf.pop_front();
        }
        self.scratch.clear();
        self.scratch.extend(self.buf.iter().copied());
        if let Some(r) = extrapolated_rate(&self.scratch, lo, self.next) {
            out(self.next, r);
        }
    }

    pub fn push(&mut self, t: i64, v: f64, out: &mut impl FnMut(i64, f64)) {
        while self.next < t && self.next <= self.end {
            self.eval(out);
            self.next += self.step;
        }
        self.buf.push_back((t, v));
        let lo = self.next - RATE_RANGE;
        while self.buf.front().is_some_and(|s| s.0 < lo) {
            self.buf.pop_front();
        }
    }

    pub fn finish(&mut self, out: &mut impl FnMut(i64, f64)) {
        while self.next <= self.end {
            let lo = self.next - RATE_RANGE;
            while self.buf.front().is_some_and(|s| s.0 < lo) {
                self.buf.pop_front();
            }
            if self.buf.is_empty() {
                break;
            }
            self.eval(out);
            self.next += self.step;
        }
    }
}

pub fn workload_key(w: &WorkloadSpec) -> WorkloadKey {
    WorkloadKey::new(&w.namespace, w.kind, &w.name)
}

pub fn resources(c: &super::spec::ContainerProfile) -> Resources {
    Resources {
        cpu_request: c.cpu_request,
        cpu_limit: c.cpu_limit,
        memory_request: c.memory_request,
        memory_limit: c.memory_limit,
    }
}

/// Visits every container sample of a workload once: `f(pod index, container index, sample)`,
/// pod by pod, container by container, samples in time order.
pub fn each_sample(
    spec: &ClusterSpec,
    w: &WorkloadSpec,
    wp: &WorkloadPlan,
    mut f: impl FnMut(usize, usize, &Sample, bool),
) {
    for (pi, pod) in wp.pods.iter().enumerate() {
        for (ci, c) in w.containers.iter().enumerate() {
            let mut sim = ContainerSim::new(w, wp, c, ci, pod, spec.start(), spec.end, spec.step).peekable();
            while let Some(s) = sim.next() {
                f(pi, ci, &s, sim.peek().is_none());
            }
        }
    }
}

/// Per-container pooled CPU rates, memory peaks, events and counts of one workload.
struct Acc {
    rates: Vec<f64>,
    sketch: Sketch,
    usage: ContainerUsage,
    pods: u32,
}

/// One workload's accumulation: per container, per step, HPA seconds, and the final samples.
struct WorkloadAcc {
    containers: Vec<Acc>,
    steps: WorkloadSteps,
    hpa: (i64, i64),
    finals: Finals,
}

/// The last sample of each container of the pods alive at `end`: (pod, container, sample).
pub type Finals = Vec<(usize, usize, Sample)>;

fn accumulate(spec: &ClusterSpec, w: &WorkloadSpec, wp: &WorkloadPlan, eval_step: i64, exact: bool) -> WorkloadAcc {
    let mut finals = Vec::new();
    let mut acc: Vec<Acc> = w
        .containers
        .iter()
        .map(|_| Acc {
            rates: Vec::new(),
            sketch: Sketch::new(),
            usage: ContainerUsage::default(),
            pods: 0,
        })
        .collect();
    let first_eval = eval_start(spec.start(), eval_step);
    let frame = Frame::new(spec, eval_step, first_eval);
    let mut steps = WorkloadSteps::default();
    let mut eval: Option<(RateEval, SeriesEvents, bool)> = None;
    each_sample(spec, w, wp, |pi, ci, s, last| {
        let a = &mut acc[ci];
        let (ev, events, counted) = eval.get_or_insert_with(|| {
            (
                RateEval::new(first_eval, eval_step, spec.end),
                SeriesEvents::new(s),
                false,
            )
        });
        events.push(&frame, s, w.containers[ci].cpu_limit.is_some(), &mut a.usage);
        let mut sink = |t: i64, r: f64| {
            // A pod counts once it has a rate point: what the CPU query can see.
            if !*counted {
                *counted = true;
                a.pods += 1;
            }
            if exact {
                a.rates.push(r);
            } else {
                a.sketch.add(r);
                // The per-day sketches the collector fills (days run (midnight, midnight]).
                a.usage
                    .cpu_days
                    .entry_or_default((t - 1).div_euclid(86_400) * 86_400)
                    .add(r);
            }
            a.usage.saw(t);
            steps.add(t, ci, r);
        };
        ev.push(s.t, s.cpu_us as f64 / 1e6, &mut sink);
        if last {
            ev.finish(&mut sink);
            events.finish(&frame, &mut a.usage);
            eval = None;
            if wp.pods[pi].deleted.is_none() {
                finals.push((pi, ci, *s));
            }
        }
    });
    WorkloadAcc {
        containers: acc,
        steps,
        hpa: hpa_seconds(spec, w, wp, &frame),
        finals,
    }
}

/// Runs `f` on every index on all cores, results in index order (deterministic).
pub fn par_map<T: Send>(n: usize, f: impl Fn(usize) -> T + Sync) -> Vec<T> {
    let threads = std::thread::available_parallelism()
        .map_or(1, |p| p.get())
        .clamp(1, 8)
        .min(n.max(1));
    if threads <= 1 {
        return (0..n).map(f).collect();
    }
    let f = &f;
    let mut parts: Vec<Vec<(usize, T)>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|k| s.spawn(move || (k..n).step_by(threads).map(|i| (i, f(i))).collect::<Vec<_>>()))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("generator thread panicked"))
            .collect()
    });
    let mut out: Vec<Option<T>> = (0..n).map(|_| None).collect();
    for part in parts.iter_mut() {
        for (i, v) in part.drain(..) {
            out[i] = Some(v);
        }
    }
    out.into_iter().map(|v| v.expect("every index computed")).collect()
}

fn nearest_rank(sorted: &[f64], q: f64) -> f64 {
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

/// The ground truth (CPU quantiles exact up to `EXACT_LIMIT` pooled points in the cluster,
/// from `model::Sketch` above) and the final samples of the live pods.
pub fn ground_truth(spec: &ClusterSpec, plans: &[WorkloadPlan]) -> (GroundTruth, Vec<Finals>) {
    let points: u64 = spec
        .workloads
        .iter()
        .zip(plans)
        .map(|(w, p)| {
            let span: i64 = p
                .pods
                .iter()
                .map(|pp| pp.last_alive(spec.end).min(spec.end) - pp.created.max(spec.start()))
                .sum();
            (span.max(0) / TRUTH_STEP) as u64 * w.containers.len() as u64
        })
        .sum();
    let exact = points <= EXACT_LIMIT;
    let per = par_map(spec.workloads.len(), |i| {
        accumulate(spec, &spec.workloads[i], &plans[i], TRUTH_STEP, exact)
    });
    let mut containers = BTreeMap::new();
    let mut workloads = BTreeMap::new();
    let mut finals = Vec::with_capacity(per.len());
    for (w, wa) in spec.workloads.iter().zip(per) {
        finals.push(wa.finals);
        workloads.insert(workload_key(w), wa.steps.truth(wa.hpa));
        for (c, mut a) in w.containers.iter().zip(wa.containers) {
            let u = &a.usage;
            let mut t = TruthContainer {
                memory_peak: u.memory_peak.unwrap_or(0.0),
                oom_kills: u.oom_kills,
                pods: a.pods,
                requests: resources(c),
                restarts: u.restarts,
                last_oom: u.last_oom,
                cfs_periods: u.cfs_periods,
                cfs_throttled_periods: u.cfs_throttled_periods,
                memory_daily_peaks: u.memory_daily_peaks.clone(),
                ..Default::default()
            };
            if exact {
                a.rates.sort_by(f64::total_cmp);
                if !a.rates.is_empty() {
                    t.cpu_rate_samples = a.rates.len() as u64;
                    t.cpu_p95 = nearest_rank(&a.rates, 0.95);
                    t.cpu_p50 = nearest_rank(&a.rates, 0.5);
                    t.cpu_max = a.rates[a.rates.len() - 1];
                }
            } else {
                t.cpu_rate_samples = a.sketch.count();
                t.cpu_p95 = a.sketch.quantile(0.95).unwrap_or(0.0);
                t.cpu_p50 = a.sketch.quantile(0.5).unwrap_or(0.0);
                t.cpu_max = a.sketch.max().unwrap_or(0.0);
            }
            containers.insert(ContainerKey::new(workload_key(w), &c.name), t);
        }
    }
    (GroundTruth { containers, workloads }, finals)
}

impl Cluster {
    /// The `UsageSet` rightsizer would build from this history with a `query_range` step of
    /// `eval_step`: per top-owner workload x container, the pooled `Sketch` of 5-minute CPU
    /// rates, the peak and daily peaks of the working set, restarts, OOM kills, CFS counters,
    /// the number of pods with samples, and first/last seen = the first and last evaluation
    /// time with a rate point; per workload, the total CPU and replica sketches and HPA
    /// seconds (see `events.rs` for how each is counted).
    pub fn usage(&self, eval_step: i64) -> UsageSet {
        let spec = &self.spec;
        let per = par_map(spec.workloads.len(), |i| {
            accumulate(spec, &spec.workloads[i], &self.plans[i], eval_step, false)
        });
        let mut containers = BTreeMap::new();
        let mut workloads = BTreeMap::new();
        for (w, wa) in spec.workloads.iter().zip(per) {
            let wu = wa.steps.usage(wa.hpa);
            if !wu.total_cpu.is_empty() || wu.hpa_seconds > 0 {
                workloads.insert(workload_key(w), wu);
            }
            for (c, a) in w.containers.iter().zip(wa.containers) {
                let mut u = a.usage;
                u.cpu = a.sketch;
                u.pods = a.pods;
                // The limits in force at kills and throttling: the generator's never change.
                u.oom_limit = c.memory_limit.filter(|_| u.oom_kills > 0);
                u.throttled_limit = c.cpu_limit;
                if u.pods > 0 {
                    containers.insert(ContainerKey::new(workload_key(w), &c.name), u);
                }
            }
        }
        UsageSet {
            start: spec.start(),
            end: spec.end,
            step: eval_step,
            containers,
            workloads,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_of_aligned_window_is_mean_of_intervals() {
        let s = [
            (0, 10.0),
            (60, 16.0),
            (120, 22.0),
            (180, 40.0),
            (240, 46.0),
            (300, 52.0),
        ];
        let r = extrapolated_rate(&s, 0, 300).unwrap();
        assert!((r - 42.0 / 300.0).abs() < 1e-15);
    }

    #[test]
    fn rate_handles_resets_and_extrapolation() {
        // Reset after 30: increase = (30 - 10) + 5 = 25 over 120 s sampled, extrapolated to the
        // zero point 48 s before the first sample (120 x 10 / 25) and 0 s at the end.
        let s = [(60, 10.0), (120, 30.0), (180, 5.0)];
        let r = extrapolated_rate(&s, 0, 180).unwrap();
        assert!((r - 25.0 * (168.0 / 120.0) / 180.0).abs() < 1e-12);
        // A young counter: extrapolation stops at its zero point.
        let s = [(200, 1.0), (260, 7.0)];
        let r = extrapolated_rate(&s, 0, 300).unwrap();
        let want = 6.0 * ((60.0 + 10.0 + 40.0) / 60.0) / 300.0;
        assert!((r - want).abs() < 1e-12, "{r} vs {want}");
        assert_eq!(extrapolated_rate(&s[..1], 0, 300), None);
    }

    #[test]
    fn streaming_eval_matches_windows() {
        let mut ev = RateEval::new(600, 300, 1200);
        let mut got = Vec::new();
        let mut sink = |t, r| got.push((t, r));
        for k in 0..=20 {
            ev.push(k * 60, (k * k) as f64, &mut sink);
        }
        ev.finish(&mut sink);
        let times: Vec<i64> = got.iter().map(|g| g.0).collect();
        assert_eq!(times, vec![600, 900, 1200]);
        // Window [300, 600]: samples k = 5..=10, increase 100 - 25 over exactly 300 s.
        assert!((got[0].1 - 75.0 / 300.0).abs() < 1e-12);
        assert_eq!(eval_start(1000, 300), 1500);
        assert_eq!(eval_start(1200, 300), 1500);
    }
}
