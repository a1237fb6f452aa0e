//! Reference methods that `rightsizer backtest` scores beside rightsizer's own policy: what
//! KRR's `simple` strategy and the Kubernetes VPA recommender (default flags) would have
//! recommended from the same training history. Pure re-statements of their documented
//! rules, written from their sources (cited per function), not ports of their code. Both
//! read per-pod series of one container, as their own Prometheus queries do.

use crate::model::Resources;
use crate::recommend::backtest::PodSeries;

const MIB: f64 = 1024.0 * 1024.0;
const DAY: i64 = 86_400;

/// KRR `simple` (robusta-dev/krr, `robusta_krr/strategies/simple.py`, defaults in
/// `SimpleStrategySettings` and `robusta_krr/core/abstract/strategies.py`):
/// - CPU request: the largest of the per-pod 95th percentiles of the CPU rate
///   (`PercentileCPULoader` in `robusta_krr/core/integrations/prometheus/metrics/cpu.py` is
///   `quantile_over_time(0.95, max(rate(...)) by (container, pod, job) [duration:step])`;
///   `calculate_cpu_proposal` takes `np.max` of those); no CPU limit;
/// - memory request and limit: the largest working set of any pod (`MaxMemoryLoader`,
///   `max_over_time` per pod in `metrics/memory.py`) plus 15 % (`memory_buffer_percentage`);
/// - nothing (`None`) with fewer than 100 points in all (`points_required`).
///
/// KRR's own step is 1.25 minutes (`timeframe_duration`); here the points are the
/// backtest's step (5 minutes by default), the resolution every method is given. The
/// optional OOM bump (`use_oomkill_data`) is off by default and left out.
pub fn krr_simple(pods: &[PodSeries]) -> Resources {
    const POINTS_REQUIRED: usize = 100;
    let finite = |v: &&(i64, f64)| v.1.is_finite() && v.1 >= 0.0;
    let cpu_points: usize = pods.iter().map(|p| p.cpu.iter().filter(finite).count()).sum();
    let memory_points: usize = pods.iter().map(|p| p.memory.iter().filter(finite).count()).sum();
    let cpu = (cpu_points >= POINTS_REQUIRED)
        .then(|| {
            pods.iter()
                .filter_map(|p| {
                    let mut v: Vec<f64> = p.cpu.iter().filter(finite).map(|&(_, v)| v).collect();
                    prometheus_quantile(0.95, &mut v)
                })
                .reduce(f64::max)
        })
        .flatten();
    let memory = (memory_points >= POINTS_REQUIRED)
        .then(|| {
            pods.iter()
                .flat_map(|p| p.memory.iter().filter(finite).map(|&(_, v)| v))
                .reduce(f64::max)
                .map(|peak| peak * 1.15)
        })
        .flatten();
    Resources {
        cpu_request: cpu,
        cpu_limit: None,
        memory_request: memory,
        memory_limit: memory,
    }
}

/// `quantile_over_time` as Prometheus computes it (`promql/quantile.go`, `quantile`): the
/// rank `q * (n - 1)` interpolated linearly between its neighbours.
fn prometheus_quantile(q: f64, values: &mut [f64]) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    values.sort_by(f64::total_cmp);
    let rank = q * (values.len() - 1) as f64;
    let lower = rank.floor() as usize;
    let upper = (lower + 1).min(values.len() - 1);
    let weight = rank - lower as f64;
    Some(values[lower] * (1.0 - weight) + values[upper] * weight)
}

/// The VPA recommender's exponential histogram buckets
/// (`vertical-pod-autoscaler/pkg/recommender/util/histogram_options.go`,
/// `NewExponentialHistogramOptions`; sizes from `model/aggregations_config.go`: CPU first
/// bucket 0.01 cores up to 1000 cores, memory 1e7 bytes up to 1e12, each bucket 5 % larger).
#[derive(Debug, Clone, Copy)]
struct Buckets {
    first: f64,
    ratio: f64,
    count: usize,
}

impl Buckets {
    const RATIO: f64 = 1.05;

    fn cpu() -> Buckets {
        Buckets::new(1000.0, 0.01)
    }

    fn memory() -> Buckets {
        Buckets::new(1e12, 1e7)
    }

    /// `numBuckets = ceil(log_ratio(max * (ratio - 1) / first + 1)) + 1`.
    fn new(max: f64, first: f64) -> Buckets {
        let count = ((max * (Self::RATIO - 1.0) / first + 1.0).ln() / Self::RATIO.ln()).ceil() as usize + 1;
        Buckets {
            first,
            ratio: Self::RATIO,
            count,
        }
    }

    fn find(&self, v: f64) -> usize {
        if v < self.first {
            return 0;
        }
        let b = ((v * (self.ratio - 1.0) / self.first + 1.0).ln() / self.ratio.ln()) as usize;
        b.min(self.count - 1)
    }

    fn start(&self, b: usize) -> f64 {
        if b == 0 {
            0.0
        } else {
            self.first * (self.ratio.powi(b as i32) - 1.0) / (self.ratio - 1.0)
        }
    }
}

/// A decaying histogram (`util/decaying_histogram.go`): a sample at `t` weighs
/// `weight * 2^((t - reference) / half_life)`, so one a half-life older counts half.
struct Decaying {
    buckets: Buckets,
    weights: Vec<f64>,
    reference: i64,
    half_life: f64,
}

impl Decaying {
    fn new(buckets: Buckets, reference: i64) -> Decaying {
        Decaying {
            buckets,
            weights: vec![0.0; buckets.count],
            reference,
            // Both decay half-lives default to 24 h (`DefaultCPUHistogramDecayHalfLife`,
            // `DefaultMemoryHistogramDecayHalfLife` in `model/aggregations_config.go`).
            half_life: DAY as f64,
        }
    }

    fn add(&mut self, v: f64, weight: f64, t: i64) {
        let decay = ((t - self.reference) as f64 / self.half_life).exp2();
        self.weights[self.buckets.find(v)] += weight * decay;
    }

    /// `histogram.Percentile` (`util/histogram.go`): the end of the first bucket where the
    /// cumulative weight reaches `p` of the total (the start of the last bucket if it is
    /// that one); `None` when empty.
    fn percentile(&self, p: f64) -> Option<f64> {
        let total: f64 = self.weights.iter().sum();
        if total <= 0.0 {
            return None;
        }
        let mut sum = 0.0;
        let mut bucket = self.buckets.count - 1;
        for (b, w) in self.weights.iter().enumerate() {
            sum += w;
            if *w > 0.0 && sum >= p * total {
                bucket = b;
                break;
            }
        }
        Some(if bucket < self.buckets.count - 1 {
            self.buckets.start(bucket + 1)
        } else {
            self.buckets.start(bucket)
        })
    }
}

/// What the VPA recommender (default flags) would recommend for one container at `now`
/// from its pods' training series (`vertical-pod-autoscaler/pkg/recommender`):
/// - CPU: every CPU point into a decaying histogram (24 h half-life) with the same weight
///   (`minSampleWeight`, `model/aggregate_container_state.go` `addCPUSample`); the target
///   is its 90th percentile (`TargetCPUPercentile`, `config/config.go`) times 1.15
///   (`SafetyMarginFraction` 0.15, `logic/recommender.go` `WithCPUMargin`);
/// - memory: one peak per pod per 24 h aggregation interval (`model/container.go`
///   `addMemorySample`: the interval starts at the pod's first sample; the peak is stamped
///   with the interval's end) into a decaying histogram; target: its 90th percentile x 1.15;
/// - an OOM kill (`RecordOOM`) raises its interval's peak to
///   `max(used + 100 MiB, used x 1.2)` where `used` is the larger of the memory request and
///   the interval's usage peak so far, earlier kills' bumps left out
///   (`DefaultOOMBumpUpRatio`, `DefaultOOMMinBumpUp`); the request is today's (the one in
///   force at the kill is not read);
/// - both at least the pod minimum (25 millicores, 250 MiB: `PodMinCPUMillicores`,
///   `PodMinMemoryMb`) shared evenly by the pod's `containers` (`GetRecommendedPodResources`).
///
/// Limits: the VPA admission controller keeps each limit's ratio to its request
/// (`controlledValues: RequestsAndLimits`), so a current limit scales with the request and
/// no limit stays none. The VPA reads metrics-server every minute; here the points are the
/// backtest's step, as for every method.
pub fn vpa(pods: &[PodSeries], ooms: &[(String, i64)], current: &Resources, containers: usize, now: i64) -> Resources {
    let share = 1.0 / containers.max(1) as f64;
    let mut cpu = Decaying::new(Buckets::cpu(), now);
    let mut memory = Decaying::new(Buckets::memory(), now);
    for pod in pods {
        for &(t, v) in pod.cpu.iter().filter(|(_, v)| v.is_finite() && *v >= 0.0) {
            cpu.add(v, 0.1, t);
        }
        let mut pod_ooms: Vec<i64> = ooms.iter().filter(|(p, _)| *p == pod.pod).map(|&(_, t)| t).collect();
        pod_ooms.sort_unstable();
        for (end, peak) in daily_peaks(&pod.memory, &pod_ooms, current.memory_request) {
            memory.add(peak, 1.0, end);
        }
    }
    let cpu_target = cpu.percentile(0.9).map(|p| (p * 1.15).max(0.025 * share));
    let memory_target = memory.percentile(0.9).map(|p| (p * 1.15).max(250.0 * MIB * share));
    let scaled = |limit: Option<f64>, request: Option<f64>, target: Option<f64>| match (limit, request, target) {
        (Some(l), Some(r), Some(t)) if r > 0.0 => Some(l * t / r),
        (limit, _, None) => limit,
        _ => None,
    };
    Resources {
        cpu_request: cpu_target.or(current.cpu_request),
        cpu_limit: scaled(current.cpu_limit, current.cpu_request, cpu_target),
        memory_request: memory_target.or(current.memory_request),
        memory_limit: scaled(current.memory_limit, current.memory_request, memory_target),
    }
}

/// One pod's memory peaks per 24 h aggregation interval, `(interval end, peak)`, with each
/// OOM kill raising its interval's peak to the VPA's bump. The bump is taken from the
/// larger of the request and the usage peak of the interval so far, never from an earlier
/// kill's bump (`RecordOOM` in `model/container.go` leaves `oomPeak` out "to protect against
/// recommendation running too high on subsequent OOMs"): repeated kills do not compound.
fn daily_peaks(memory: &[(i64, f64)], ooms: &[i64], request: Option<f64>) -> Vec<(i64, f64)> {
    let mut points: Vec<(i64, f64)> = memory
        .iter()
        .copied()
        .filter(|(_, v)| v.is_finite() && *v >= 0.0)
        .collect();
    points.sort_by_key(|p| p.0);
    let Some(&(first, _)) = points.first() else {
        return Vec::new();
    };
    let end_of = |t: i64| first + ((t - first).div_euclid(DAY) + 1) * DAY;
    let mut peaks: Vec<(i64, f64)> = Vec::new();
    for &(t, v) in &points {
        let end = end_of(t);
        match peaks.last_mut() {
            Some((e, p)) if *e == end => *p = p.max(v),
            _ => peaks.push((end, v)),
        }
    }
    for &t in ooms.iter().filter(|&&t| t >= first) {
        let end = end_of(t);
        let so_far = points
            .iter()
            .filter(|&&(pt, _)| pt <= t && end_of(pt) == end)
            .map(|&(_, v)| v)
            .fold(0.0, f64::max);
        let used = so_far.max(request.unwrap_or(0.0));
        let needed = (used + 100.0 * MIB).max(used * 1.2);
        match peaks.iter_mut().find(|(e, _)| *e == end) {
            Some((_, p)) => *p = p.max(needed),
            None => {
                peaks.push((end, needed));
                peaks.sort_by_key(|p| p.0);
            }
        }
    }
    peaks
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(name: &str, cpu: &[f64], memory: &[f64], start: i64, step: i64) -> PodSeries {
        let at = |v: &[f64]| {
            v.iter()
                .enumerate()
                .map(|(i, &v)| (start + i as i64 * step, v))
                .collect()
        };
        PodSeries {
            pod: name.into(),
            cpu: at(cpu),
            memory: at(memory),
        }
    }

    fn bucket_end(b: Buckets, v: f64) -> f64 {
        b.start(b.find(v) + 1)
    }

    #[test]
    fn buckets_are_the_vpa_ones() {
        // 176 buckets for both (the same max / first ratio), each 5 % larger.
        assert_eq!(Buckets::cpu().count, 176);
        assert_eq!(Buckets::memory().count, 176);
        let cpu = Buckets::cpu();
        assert_eq!(cpu.find(0.0), 0);
        assert_eq!(cpu.find(1e9), 175);
        assert!((cpu.start(1) - 0.01).abs() < 1e-12);
        let b = cpu.find(0.5);
        assert!(cpu.start(b) <= 0.5 && 0.5 < cpu.start(b + 1));
    }

    #[test]
    fn prometheus_quantile_interpolates_linearly() {
        assert_eq!(prometheus_quantile(0.95, &mut []), None);
        assert_eq!(prometheus_quantile(0.5, &mut [3.0, 1.0, 2.0]), Some(2.0));
        // rank 0.95 * 4 = 3.8: 4 + 0.8 * (5 - 4).
        let q = prometheus_quantile(0.95, &mut [5.0, 1.0, 2.0, 3.0, 4.0]).unwrap();
        assert!((q - 4.8).abs() < 1e-12);
    }

    #[test]
    fn krr_takes_the_largest_per_pod_p95_and_the_peak_plus_15_percent() {
        // Pod a: 100 points 0.00..0.99 (p95 0.9405); pod b: 100 points of 0.5.
        let a: Vec<f64> = (0..100).map(|i| i as f64 / 100.0).collect();
        let b = vec![0.5; 100];
        let mem_a = vec![100.0 * MIB; 100];
        let mut mem_b = vec![50.0 * MIB; 100];
        mem_b[7] = 200.0 * MIB;
        let pods = [pod("a", &a, &mem_a, 0, 300), pod("b", &b, &mem_b, 0, 300)];
        let r = krr_simple(&pods);
        assert!((r.cpu_request.unwrap() - 0.9405).abs() < 1e-9, "{r:?}");
        assert_eq!(r.cpu_limit, None);
        let m = r.memory_request.unwrap();
        assert!((m - 230.0 * MIB).abs() < 1.0, "{m}");
        assert_eq!(r.memory_limit, Some(m));
        // Pooled, the p95 would be lower than pod a's own (half the points are 0.5).
        let mut pooled: Vec<f64> = a.iter().chain(&b).copied().collect();
        assert!(prometheus_quantile(0.95, &mut pooled).unwrap() < r.cpu_request.unwrap());
        // Under 100 points in all: no recommendation.
        let few = krr_simple(&[pod("a", &a[..99], &mem_a[..99], 0, 300)]);
        assert_eq!((few.cpu_request, few.memory_request), (None, None));
    }

    #[test]
    fn vpa_targets_p90_of_decayed_samples_with_margin() {
        // Steady 1 core for 13 days, then 2 cores for the last day: with a 24 h half-life
        // the last day weighs as much as everything before it (sum of 2^-k, k >= 1, = 1),
        // so p90 lands in the 2-core bucket.
        let step = 3600;
        let now = 14 * DAY;
        let cpu: Vec<f64> = (0..14 * 24).map(|h| if h >= 13 * 24 { 2.0 } else { 1.0 }).collect();
        let mem = vec![300.0 * MIB; cpu.len()];
        let current = Resources {
            cpu_request: Some(1.0),
            cpu_limit: Some(2.0),
            memory_request: Some(400.0 * MIB),
            memory_limit: None,
        };
        let r = vpa(&[pod("a", &cpu, &mem, 0, step)], &[], &current, 1, now);
        let cpu_target = r.cpu_request.unwrap();
        // The end of 2.0's bucket, times 1.15.
        assert_eq!(cpu_target, bucket_end(Buckets::cpu(), 2.0) * 1.15);
        assert!(cpu_target > 2.3 && cpu_target < 2.3 * 1.06, "{cpu_target}");
        // The limit keeps its ratio to the request (2:1); no memory limit stays none.
        assert!((r.cpu_limit.unwrap() - 2.0 * cpu_target).abs() < 1e-9);
        assert_eq!(r.memory_limit, None);
        let m = r.memory_request.unwrap();
        assert_eq!(m, bucket_end(Buckets::memory(), 300.0 * MIB) * 1.15);
        // Undecayed, the p90 of the same points is 1 core (13 of 14 days).
        let mut pooled = cpu.clone();
        assert_eq!(prometheus_quantile(0.9, &mut pooled), Some(1.0));
    }

    #[test]
    fn vpa_bumps_memory_after_an_oom_kill_and_keeps_the_pod_minimum() {
        let mem = vec![100.0 * MIB; 48];
        let cpu = vec![0.001; 48];
        let current = Resources {
            cpu_request: None,
            cpu_limit: None,
            memory_request: Some(200.0 * MIB),
            memory_limit: Some(200.0 * MIB),
        };
        let pods = [pod("a", &cpu, &mem, 0, 3600)];
        let calm = vpa(&pods, &[], &current, 2, 2 * DAY);
        // Tiny usage: the pod minimum shared by 2 containers (12.5m, 125 MiB).
        assert_eq!(calm.cpu_request, Some(0.0125));
        assert_eq!(calm.memory_request, Some(125.0 * MIB));
        // An OOM kill on day 2: max(200 Mi + 100 Mi, 200 Mi x 1.2) = 300 Mi is that day's
        // peak; p90 of the two days' peaks is it, plus 15 %.
        let oom = vpa(&pods, &[("a".into(), DAY + 600)], &current, 2, 2 * DAY);
        let m = oom.memory_request.unwrap();
        assert_eq!(m, bucket_end(Buckets::memory(), 300.0 * MIB) * 1.15, "{}", m / MIB);
        // The limit keeps its 1:1 ratio.
        assert_eq!(oom.memory_limit, Some(m));
        // Five kills that day: the same bump, not compounded (the VPA leaves earlier OOM
        // peaks out of the next bump).
        let kills: Vec<(String, i64)> = (1..=5).map(|i| ("a".into(), DAY + 600 * i)).collect();
        let repeated = vpa(&pods, &kills, &current, 2, 2 * DAY);
        assert_eq!(repeated.memory_request, Some(m));
    }
}
