//! Table-style tests of every rule, through a builder that reads as a sentence:
//! `Case::test().cpu_p95(0.3).oom_killed(2).with_hpa(2, 10).run()`. The default case is a
//! two-replica Deployment `shop/web` with one `app` container requesting 500m / 512 MiB,
//! using p95 200m and peak 300 MiB over 14 days of 5-minute samples.

mod changes;
mod hpa;
mod policy;
mod properties;
mod strategy;

use crate::model::{
    ContainerKey, ContainerRole, ContainerSpec, ContainerUsage, Hpa, HpaMetric, Resources, SKETCH_ALPHA, Sketch,
    UsageSet, Workload, WorkloadKey, WorkloadKind, WorkloadUsage,
};

use super::policy::MIB;
use super::strategy::round_up;
use super::{Overrides, Policy, Recommendation, WorkloadRecommendation, recommend};

pub const DAY: i64 = 86_400;
const END: i64 = 1_793_491_200;

/// Usage of one container, built into a `ContainerUsage` when the case runs.
#[derive(Debug, Clone)]
pub struct UsageSpec {
    pub cpu_p95: f64,
    /// The top 5 % of samples sit at `cpu_p95 x tail`: p99 and the maximum.
    pub tail: f64,
    pub samples: u64,
    pub span: i64,
    pub pods: u32,
    pub memory_peak: f64,
    pub daily_peaks: Vec<f64>,
    pub oom_kills: u32,
    pub throttling: Option<f64>,
    /// Per-day CPU levels, oldest first, ending at `END`: when set, the pooled CPU and the
    /// per-day sketches are built from them (288 points a day per pod, the day's points at
    /// its level, its top 5 % at level x `tail`), replacing `cpu_p95`.
    pub cpu_days: Vec<f64>,
    /// History fields the collector fills from kube-state-metrics.
    pub oom_limit: Option<f64>,
    pub throttled_limit: Option<f64>,
    pub cpu_short_peak: Option<f64>,
    /// Seconds between the last sample and the window's end (0: still running).
    pub gone_for: i64,
}

impl UsageSpec {
    fn typical() -> Self {
        UsageSpec {
            cpu_p95: 0.2,
            tail: 1.3,
            samples: 2 * 14 * 288,
            span: 14 * DAY,
            pods: 2,
            memory_peak: 300.0 * MIB,
            daily_peaks: Vec::new(),
            oom_kills: 0,
            throttling: None,
            cpu_days: Vec::new(),
            oom_limit: None,
            throttled_limit: None,
            cpu_short_peak: None,
            gone_for: 0,
        }
    }

    pub fn build(&self) -> ContainerUsage {
        let mut u = ContainerUsage {
            cpu: Sketch::new(),
            pods: self.pods,
            oom_kills: self.oom_kills,
            ..Default::default()
        };
        if self.cpu_days.is_empty() {
            let body = ((0.95 * self.samples as f64).ceil() as u64).min(self.samples);
            u.cpu.add_n(self.cpu_p95, body as u32);
            u.cpu.add_n(self.cpu_p95 * self.tail, (self.samples - body) as u32);
        } else {
            let n = self.cpu_days.len() as i64;
            let per_day = 288 * u64::from(self.pods);
            for (i, &level) in self.cpu_days.iter().enumerate() {
                let day = END - (n - i as i64) * DAY;
                for k in 0..per_day {
                    let v = if k % 20 == 19 { level * self.tail } else { level };
                    u.observe_cpu(day, v);
                }
            }
        }
        u.oom_limit = self.oom_limit;
        u.throttled_limit = self.throttled_limit;
        u.cpu_short_peak = self.cpu_short_peak;
        u.saw(END - self.span - self.gone_for);
        u.saw(END - self.gone_for);
        for (i, &p) in self.daily_peaks.iter().enumerate() {
            u.observe_daily_peak(END - (i as i64 + 1) * DAY, p);
        }
        u.observe_memory(self.memory_peak);
        if let Some(t) = self.throttling {
            u.cfs_periods = 1e6;
            u.cfs_throttled_periods = t * 1e6;
        }
        u
    }
}

#[derive(Debug, Clone)]
pub struct Case {
    pub workload: Workload,
    pub usage: Vec<Option<UsageSpec>>,
    pub workload_usage: Option<WorkloadUsage>,
    pub policy: Policy,
}

impl Case {
    pub fn test() -> Self {
        Case {
            workload: Workload {
                key: WorkloadKey::new("shop", WorkloadKind::Deployment, "web"),
                replicas: Some(2),
                containers: vec![ContainerSpec {
                    name: "app".into(),
                    role: ContainerRole::App,
                    resources: Resources {
                        cpu_request: Some(0.5),
                        memory_request: Some(512.0 * MIB),
                        ..Default::default()
                    },
                }],
                hpa: None,
                labels: Default::default(),
                annotations: Default::default(),
            },
            usage: vec![Some(UsageSpec::typical())],
            workload_usage: None,
            policy: Policy::default(),
        }
    }

    fn last(&mut self) -> &mut UsageSpec {
        self.usage
            .last_mut()
            .and_then(Option::as_mut)
            .expect("last container has usage")
    }

    fn resources(&mut self) -> &mut Resources {
        &mut self.workload.containers.last_mut().expect("a container").resources
    }

    pub fn cpu_p95(mut self, cores: f64) -> Self {
        self.last().cpu_p95 = cores;
        self
    }

    pub fn cpu_tail(mut self, factor: f64) -> Self {
        self.last().tail = factor;
        self
    }

    pub fn memory_peak_mib(mut self, mib: f64) -> Self {
        self.last().memory_peak = mib * MIB;
        self
    }

    pub fn daily_peaks_mib(mut self, peaks: &[f64]) -> Self {
        self.last().daily_peaks = peaks.iter().map(|p| p * MIB).collect();
        self
    }

    pub fn samples(mut self, n: u64) -> Self {
        self.last().samples = n;
        self
    }

    /// `days` of history from the spec's replicas at 5-minute steps.
    pub fn history_days(mut self, days: f64) -> Self {
        let u = self.last();
        u.span = (days * DAY as f64) as i64;
        u.samples = (days * 288.0 * f64::from(u.pods)).round() as u64;
        self
    }

    pub fn oom_killed(mut self, times: u32) -> Self {
        self.last().oom_kills = times;
        self
    }

    /// The memory limit (MiB) in force when the container was OOM killed.
    pub fn killed_at_limit_mib(mut self, mib: f64) -> Self {
        self.last().oom_limit = Some(mib * MIB);
        self
    }

    /// The CPU limit (cores) the container was throttled against.
    pub fn throttled_at(mut self, cores: f64) -> Self {
        self.last().throttled_limit = Some(cores);
        self
    }

    /// The container stopped reporting `days` before the window's end (deleted halfway).
    pub fn gone_for_days(mut self, days: f64) -> Self {
        self.last().gone_for = (days * DAY as f64) as i64;
        self
    }

    pub fn short_peak(mut self, cores: f64) -> Self {
        self.last().cpu_short_peak = Some(cores);
        self
    }

    /// Daily CPU levels (cores), oldest first, ending at the window's end.
    pub fn cpu_days(mut self, levels: &[f64]) -> Self {
        let u = self.last();
        u.cpu_days = levels.to_vec();
        u.span = levels.len() as i64 * DAY;
        self
    }

    /// The recommendation applied: its values become the current ones (the history stays).
    pub fn applied(mut self) -> Self {
        let unit = self.run();
        for (c, r) in self.workload.containers.iter_mut().zip(&unit.containers) {
            c.resources = r.recommended;
        }
        if let (Some(h), Some(rec)) = (self.workload.hpa.as_mut(), unit.hpa.as_ref()) {
            h.min_replicas = rec.min_replicas;
            h.max_replicas = rec.max_replicas;
            for m in &mut h.metrics {
                if let HpaMetric::Utilization {
                    resource,
                    target_percent,
                } = m
                    && let Some(t) = rec.targets.iter().find(|t| t.resource == *resource)
                {
                    *target_percent = t.recommended_percent;
                }
            }
        }
        self
    }

    pub fn throttled(mut self, ratio: f64) -> Self {
        self.last().throttling = Some(ratio);
        self
    }

    pub fn requests(mut self, cpu: Option<f64>, memory_mib: Option<f64>) -> Self {
        let r = self.resources();
        r.cpu_request = cpu;
        r.memory_request = memory_mib.map(|m| m * MIB);
        self
    }

    pub fn limits(mut self, cpu: Option<f64>, memory_mib: Option<f64>) -> Self {
        let r = self.resources();
        r.cpu_limit = cpu;
        r.memory_limit = memory_mib.map(|m| m * MIB);
        self
    }

    /// Limits equal to requests: a Guaranteed pod.
    pub fn guaranteed(mut self) -> Self {
        for c in &mut self.workload.containers {
            c.resources.cpu_limit = c.resources.cpu_request;
            c.resources.memory_limit = c.resources.memory_request;
        }
        self
    }

    /// Adds a container with its own usage (requests 100m / 128 MiB).
    pub fn container(mut self, name: &str, role: ContainerRole, cpu_p95: f64, memory_mib: f64) -> Self {
        self.workload.containers.push(ContainerSpec {
            name: name.into(),
            role,
            resources: Resources {
                cpu_request: Some(0.1),
                memory_request: Some(128.0 * MIB),
                ..Default::default()
            },
        });
        self.usage.push(Some(UsageSpec {
            cpu_p95,
            memory_peak: memory_mib * MIB,
            ..UsageSpec::typical()
        }));
        self
    }

    pub fn container_without_usage(mut self, name: &str) -> Self {
        self = self.container(name, ContainerRole::App, 0.1, 10.0);
        *self.usage.last_mut().unwrap() = None;
        self
    }

    pub fn annotated(mut self, key: &str, value: &str) -> Self {
        self.workload.annotations.insert(key.into(), value.into());
        self
    }

    pub fn namespace_rules(mut self, o: Overrides) -> Self {
        self.policy.namespaces.insert(self.workload.key.namespace.clone(), o);
        self
    }

    pub fn policy(mut self, f: impl FnOnce(&mut Policy)) -> Self {
        f(&mut self.policy);
        self
    }

    /// An HPA on CPU utilization at 70 %.
    pub fn with_hpa(mut self, min: u32, max: u32) -> Self {
        self.workload.hpa = Some(Hpa {
            name: self.workload.key.name.clone(),
            min_replicas: min,
            max_replicas: max,
            current_replicas: None,
            desired_replicas: None,
            metrics: vec![HpaMetric::Utilization {
                resource: "cpu".into(),
                target_percent: 70,
            }],
        });
        self
    }

    pub fn hpa_metrics(mut self, metrics: Vec<HpaMetric>) -> Self {
        self.workload.hpa.as_mut().expect("with_hpa first").metrics = metrics;
        self
    }

    pub fn hpa_target(self, percent: u32) -> Self {
        self.hpa_metrics(vec![HpaMetric::Utilization {
            resource: "cpu".into(),
            target_percent: percent,
        }])
    }

    /// Workload-level history: total CPU demand between `low` (p10 and below) and `peak`
    /// cores, and `replicas` on average.
    pub fn total_cpu(mut self, low: f64, peak: f64, replicas: f64) -> Self {
        let wu = self.workload_usage.get_or_insert_with(WorkloadUsage::default);
        wu.total_cpu.add_n(low, 100);
        wu.total_cpu.add_n((low + peak) / 2.0, 800);
        wu.total_cpu.add_n(peak, 100);
        wu.replicas.add_n(replicas, 1000);
        self
    }

    pub fn at_max_for(mut self, seconds: i64) -> Self {
        let wu = self.workload_usage.get_or_insert_with(WorkloadUsage::default);
        wu.hpa_at_max_seconds = seconds;
        wu.hpa_seconds = 14 * DAY;
        self
    }

    pub fn usage_set(&self) -> UsageSet {
        let mut set = UsageSet {
            start: END - 14 * DAY,
            end: END,
            step: 300,
            ..Default::default()
        };
        for (c, u) in self.workload.containers.iter().zip(&self.usage) {
            if let Some(u) = u {
                set.containers
                    .insert(ContainerKey::new(self.workload.key.clone(), c.name.clone()), u.build());
            }
        }
        if let Some(wu) = &self.workload_usage {
            set.workloads.insert(self.workload.key.clone(), wu.clone());
        }
        set
    }

    pub fn run(&self) -> WorkloadRecommendation {
        self.run_with_warnings().0
    }

    pub fn run_with_warnings(&self) -> (WorkloadRecommendation, Vec<String>) {
        let report = recommend(std::slice::from_ref(&self.workload), &self.usage_set(), &self.policy);
        let unit = report.workloads.into_iter().next().expect("one workload");
        (unit, report.warnings)
    }

    /// The first container's recommendation.
    pub fn app(&self) -> Recommendation {
        self.run().containers.swap_remove(0)
    }
}

/// `got` is `want` (a sketch quantile, within 1 %) rounded up to `step`.
pub fn near(got: Option<f64>, want: f64, step: f64) -> bool {
    let got = got.expect("a value");
    let lo = round_up(want * (1.0 - SKETCH_ALPHA), step) - 1e-12;
    let hi = round_up(want * (1.0 + SKETCH_ALPHA), step) + 1e-12;
    (lo..=hi).contains(&got)
}

pub fn mib(v: f64) -> Option<f64> {
    Some(v * MIB)
}
