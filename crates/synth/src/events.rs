//! The ground truth of everything besides the pooled CPU distribution, computed from the raw
//! samples the way rightsizer's queries see them (`collect::history`): per-UTC-day memory
//! peaks (days run `(midnight, next midnight]`, the first from the window start inclusive),
//! restart and OOM-kill counts from the restart counter's increase per evaluation step
//! (`R - R offset step > 0`, so an increase is seen at the first evaluation time at or after
//! it, when the pod already had a sample one step earlier), CFS period counters through
//! Prometheus' extrapolated `increase()` over the window, workload totals and replica counts
//! per evaluation time, and HPA time at `maxReplicas`.

use std::collections::BTreeMap;

use rightsizer::model::{ContainerUsage, WorkloadUsage};

use super::patterns::Sample;
use super::plan::WorkloadPlan;
use super::spec::{ClusterSpec, WorkloadSpec};
use super::truth::extrapolated_rate;

const DAY: i64 = 86_400;

/// The day (its midnight) a sample at `t` counts in, for a window starting at `start`.
pub fn day_of(t: i64, start: i64) -> i64 {
    (t.max(start + 1) - 1).div_euclid(DAY) * DAY
}

/// Ground truth of a workload as a whole.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TruthWorkload {
    /// Evaluation times with at least one CPU point.
    pub steps: u64,
    /// Nearest-rank p95 and maximum of the total CPU (cores summed over pods and containers).
    pub total_cpu_p95: f64,
    pub total_cpu_max: f64,
    /// Smallest and largest replica count over those steps.
    pub replicas_min: u32,
    pub replicas_max: u32,
    /// Seconds of HPA status history and at `maxReplicas` (evaluation steps x step).
    pub hpa_seconds: i64,
    pub hpa_at_max_seconds: i64,
}

/// Per-series state while one pod x container's samples stream by.
#[derive(Debug)]
pub struct SeriesEvents {
    first_t: i64,
    prev_restarts: u32,
    cfs: Vec<(i64, f64, f64)>,
}

/// What the window looks like to the queries.
#[derive(Debug, Clone, Copy)]
pub struct Frame {
    pub start: i64,
    pub end: i64,
    pub step: i64,
    pub first_eval: i64,
    pub last_eval: i64,
}

impl Frame {
    pub fn new(spec: &ClusterSpec, step: i64, first_eval: i64) -> Self {
        Frame {
            start: spec.start(),
            end: spec.end,
            step,
            first_eval,
            last_eval: spec.end.div_euclid(step) * step,
        }
    }
}

impl SeriesEvents {
    pub fn new(s: &Sample) -> Self {
        SeriesEvents {
            first_t: s.t,
            prev_restarts: s.restarts,
            cfs: Vec::new(),
        }
    }

    /// Feeds one sample into the container's usage.
    pub fn push(&mut self, f: &Frame, s: &Sample, limited: bool, u: &mut ContainerUsage) {
        u.observe_daily_peak(day_of(s.t, f.start), s.working_set as f64);
        if s.restarts > self.prev_restarts {
            let inc = s.restarts - self.prev_restarts;
            let tau = (s.t + f.step - 1).div_euclid(f.step) * f.step;
            if tau >= f.first_eval && tau <= f.last_eval && self.first_t <= tau - f.step {
                u.restarts += inc;
                if s.oom_killed {
                    u.oom_kills += inc;
                    u.last_oom = u.last_oom.max(Some(tau));
                }
            }
        }
        self.prev_restarts = s.restarts;
        if limited {
            self.cfs.push((s.t, s.cfs_periods as f64, s.cfs_throttled as f64));
        }
    }

    /// Ends the series: `increase()` of its CFS counters over the window.
    pub fn finish(&self, f: &Frame, u: &mut ContainerUsage) {
        let length = (f.end - f.start) as f64;
        let series = |pick: fn(&(i64, f64, f64)) -> f64| {
            let pts: Vec<(i64, f64)> = self.cfs.iter().map(|p| (p.0, pick(p))).collect();
            extrapolated_rate(&pts, f.start, f.end).map_or(0.0, |r| r * length)
        };
        u.cfs_periods += series(|p| p.1);
        u.cfs_throttled_periods += series(|p| p.2);
    }
}

/// Per evaluation time: total CPU and, per container index, the number of pods with a point.
#[derive(Debug, Default)]
pub struct WorkloadSteps(BTreeMap<i64, (f64, Vec<u32>)>);

impl WorkloadSteps {
    pub fn add(&mut self, t: i64, container: usize, rate: f64) {
        let e = self.0.entry(t).or_default();
        e.0 += rate;
        if e.1.len() <= container {
            e.1.resize(container + 1, 0);
        }
        e.1[container] += 1;
    }

    fn replicas(counts: &[u32]) -> u32 {
        counts.iter().copied().max().unwrap_or(0)
    }

    /// The workload's usage (totals and replica sketches, HPA seconds).
    pub fn usage(&self, hpa: (i64, i64)) -> WorkloadUsage {
        let mut u = WorkloadUsage::default();
        for (total, counts) in self.0.values() {
            u.total_cpu.add(*total);
            u.replicas.add(f64::from(Self::replicas(counts)));
        }
        (u.hpa_seconds, u.hpa_at_max_seconds) = hpa;
        u
    }

    /// The exact truth (nearest-rank quantiles).
    pub fn truth(&self, hpa: (i64, i64)) -> TruthWorkload {
        let mut totals: Vec<f64> = self.0.values().map(|v| v.0).collect();
        totals.sort_by(f64::total_cmp);
        let replicas = self.0.values().map(|v| Self::replicas(&v.1));
        let mut t = TruthWorkload {
            steps: totals.len() as u64,
            replicas_min: replicas.clone().min().unwrap_or(0),
            replicas_max: replicas.max().unwrap_or(0),
            hpa_seconds: hpa.0,
            hpa_at_max_seconds: hpa.1,
            ..Default::default()
        };
        if !totals.is_empty() {
            let rank = ((0.95 * totals.len() as f64).ceil() as usize).clamp(1, totals.len());
            t.total_cpu_p95 = totals[rank - 1];
            t.total_cpu_max = totals[totals.len() - 1];
        }
        t
    }
}

/// HPA seconds and seconds at `maxReplicas` as `current >= bool max` evaluated every `step`
/// over `[first_eval, last_eval]` sees them (the KSM series exist from the workload's creation,
/// sampled on the scrape grid).
pub fn hpa_seconds(spec: &ClusterSpec, w: &WorkloadSpec, wp: &WorkloadPlan, f: &Frame) -> (i64, i64) {
    let Some(h) = &w.hpa else { return (0, 0) };
    if w.kind != rightsizer::model::WorkloadKind::Deployment {
        return (0, 0);
    }
    let first_sample = super::patterns::grid_at_or_after(spec.start().max(w.created), spec.end, spec.step);
    let (mut seen, mut at_max) = (0, 0);
    let mut tau = f.first_eval;
    while tau <= f.last_eval {
        // The newest scrape at or before tau, within the 5-minute lookback.
        let latest = spec.end - (spec.end - tau + spec.step - 1).div_euclid(spec.step) * spec.step;
        if latest >= first_sample && tau - latest <= 300 {
            seen += f.step;
            if wp.replicas_at(latest, w.replicas) >= h.max_replicas {
                at_max += f.step;
            }
        }
        tau += f.step;
    }
    (seen, at_max)
}
