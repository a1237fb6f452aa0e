//! What the generator is asked to produce: a cluster of workloads, each with its containers'
//! requests, limits and usage patterns. `ClusterSpec::demo` is the small fixed cluster of the
//! integration tests and the offline demo; `ClusterSpec::generated` mixes the same patterns
//! at any size for benchmarks.

use rightsizer::model::WorkloadKind;

use super::rng::SplitMix;

pub const MI: f64 = 1024.0 * 1024.0;
pub const HOUR: i64 = 3600;
pub const DAY: i64 = 86_400;

#[derive(Debug, Clone, PartialEq)]
pub struct ClusterSpec {
    pub seed: u64,
    /// Unix seconds of the last sample; every sample sits at `end - k * step`.
    pub end: i64,
    /// Seconds of history: samples cover `[end - duration, end]`.
    pub duration: i64,
    /// Scrape interval, seconds.
    pub step: i64,
    pub nodes: u32,
    pub workloads: Vec<WorkloadSpec>,
}

/// An `autoscaling/v2` HPA on CPU utilization.
#[derive(Debug, Clone, PartialEq)]
pub struct HpaSpec {
    pub min_replicas: u32,
    pub max_replicas: u32,
    /// `averageUtilization` of the CPU request, percent.
    pub target_cpu_utilization: u32,
}

/// When the pods of a CronJob (or a bare Job) run.
#[derive(Debug, Clone, PartialEq)]
pub struct BatchSpec {
    /// Period of a CronJob in seconds (divides an hour, or is a whole number of hours that
    /// divides a day); 0 for a bare Job, which runs once.
    pub every: i64,
    /// CronJob: offset of each run within its period (a whole minute). Bare Job: start time.
    pub offset: i64,
    /// How long each run's pod lives, seconds.
    pub run_for: i64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct WorkloadSpec {
    pub namespace: String,
    pub name: String,
    pub kind: WorkloadKind,
    /// Desired replicas (Deployment, StatefulSet); with an HPA, the replica count at which
    /// `ContainerProfile::cpu_base` is the per-pod usage. Ignored by DaemonSets (one pod per
    /// node) and batch kinds (one pod per run).
    pub replicas: u32,
    pub containers: Vec<ContainerProfile>,
    pub hpa: Option<HpaSpec>,
    /// Times a Deployment rollout replaced all pods (a new ReplicaSet each).
    pub rollouts: Vec<i64>,
    /// Creation time of the workload (may be long before the window).
    pub created: i64,
    /// Timezone of the workload's users, hours east of UTC: the daily peak is at 14:00 local.
    pub tz_offset_hours: i32,
    /// Amplitude of the daily cycle (0 = flat, 0.8 = night is 80 % below the mean).
    pub diurnal: f64,
    /// Multiplier on Saturdays and Sundays (1 = no weekly cycle).
    pub weekend: f64,
    /// Expected short bursts per day, their multiplier and length.
    pub bursts_per_day: f64,
    pub burst_multiplier: f64,
    pub burst_minutes: i64,
    /// StatefulSet: usage multiplier of ordinal 0 (1 = all replicas alike).
    pub hot_replica: f64,
    pub batch: Option<BatchSpec>,
    /// A release that changed the load for good: from this time on, times this multiplier.
    pub level_shift: Option<(i64, f64)>,
    /// Steady growth: the load is multiplied by `(1 + per_day)` per day since the anchor
    /// time (so it is 1 at the anchor, less before it).
    pub growth: Option<(i64, f64)>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ContainerProfile {
    pub name: String,
    /// Image without tag (the tag is the ReplicaSet revision, `:1.<revision>.0`); empty for
    /// the default chosen by `WorkloadSpec::with`.
    pub image: String,
    /// Requests and limits: CPU in cores, memory in bytes; `None` is "not set".
    pub cpu_request: Option<f64>,
    pub cpu_limit: Option<f64>,
    pub memory_request: Option<f64>,
    pub memory_limit: Option<f64>,
    /// Mean CPU usage of one pod (cores) when the workload's load factor is 1.
    pub cpu_base: f64,
    /// Relative standard deviation of per-sample CPU noise.
    pub cpu_noise: f64,
    /// Working set right after start, bytes.
    pub memory_base: f64,
    /// Leak: bytes per hour the working set grows since the container started. With a
    /// memory limit the container is OOM-killed when it reaches it, and restarts.
    pub memory_growth: f64,
    /// Relative standard deviation of the working set.
    pub memory_noise: f64,
    /// An init container: runs `init_seconds` at pod start, then exits.
    pub init: bool,
    pub init_seconds: i64,
}

impl ContainerProfile {
    /// A container with the given requests (limits unset) and usage.
    pub fn new(name: &str, cpu_request: f64, memory_request: f64) -> Self {
        ContainerProfile {
            name: name.into(),
            image: String::new(),
            cpu_request: Some(cpu_request),
            cpu_limit: None,
            memory_request: Some(memory_request),
            memory_limit: None,
            cpu_base: cpu_request * 0.5,
            cpu_noise: 0.15,
            memory_base: memory_request * 0.6,
            memory_growth: 0.0,
            memory_noise: 0.02,
            init: false,
            init_seconds: 0,
        }
    }

    pub fn usage(mut self, cpu_base: f64, memory_base: f64) -> Self {
        self.cpu_base = cpu_base;
        self.memory_base = memory_base;
        self
    }

    pub fn limits(mut self, cpu: Option<f64>, memory: Option<f64>) -> Self {
        self.cpu_limit = cpu;
        self.memory_limit = memory;
        self
    }

    pub fn leak(mut self, bytes_per_hour: f64) -> Self {
        self.memory_growth = bytes_per_hour;
        self
    }

    pub fn noise(mut self, cpu: f64) -> Self {
        self.cpu_noise = cpu;
        self
    }

    pub fn init_for(mut self, seconds: i64) -> Self {
        self.init = true;
        self.init_seconds = seconds;
        self
    }

    pub fn no_requests(mut self) -> Self {
        self.cpu_request = None;
        self.memory_request = None;
        self
    }
}

impl WorkloadSpec {
    /// A workload with defaults: created 60 days before `end`, mild daily cycle, no HPA.
    pub fn new(namespace: &str, kind: WorkloadKind, name: &str, replicas: u32, end: i64) -> Self {
        WorkloadSpec {
            namespace: namespace.into(),
            name: name.into(),
            kind,
            replicas,
            containers: Vec::new(),
            hpa: None,
            rollouts: Vec::new(),
            created: end - 60 * DAY,
            tz_offset_hours: 0,
            diurnal: 0.3,
            weekend: 1.0,
            bursts_per_day: 0.0,
            burst_multiplier: 1.0,
            burst_minutes: 0,
            hot_replica: 1.0,
            batch: None,
            level_shift: None,
            growth: None,
        }
    }

    /// Adds a container; an empty image becomes `registry.example.com/<namespace>/<workload>`
    /// (or `.../<workload>-<container>` for the second and later containers).
    pub fn with(mut self, mut c: ContainerProfile) -> Self {
        if c.image.is_empty() {
            c.image = if self.containers.is_empty() {
                format!("registry.example.com/{}/{}", self.namespace, self.name)
            } else {
                format!("registry.example.com/{}/{}-{}", self.namespace, self.name, c.name)
            };
        }
        self.containers.push(c);
        self
    }

    pub fn cycles(mut self, diurnal: f64, weekend: f64, tz_offset_hours: i32) -> Self {
        self.diurnal = diurnal;
        self.weekend = weekend;
        self.tz_offset_hours = tz_offset_hours;
        self
    }

    pub fn bursts(mut self, per_day: f64, multiplier: f64, minutes: i64) -> Self {
        self.bursts_per_day = per_day;
        self.burst_multiplier = multiplier;
        self.burst_minutes = minutes;
        self
    }

    pub fn hpa(mut self, min: u32, max: u32, target: u32) -> Self {
        self.hpa = Some(HpaSpec {
            min_replicas: min,
            max_replicas: max,
            target_cpu_utilization: target,
        });
        self
    }

    pub fn batch(mut self, every: i64, offset: i64, run_for: i64) -> Self {
        self.batch = Some(BatchSpec { every, offset, run_for });
        self
    }
}

impl ClusterSpec {
    /// The small fixed cluster used by integration tests and the demo: 13 workloads in four
    /// namespaces, every kind and pattern at least once (see the comment on each).
    pub fn demo(end: i64, duration: i64) -> ClusterSpec {
        use WorkloadKind::*;
        let start = end - duration;
        let at = |frac: f64| start + ((duration as f64 * frac) as i64 / 60) * 60;
        let w = |ns, kind, name, replicas| WorkloadSpec::new(ns, kind, name, replicas, end);
        let c = ContainerProfile::new;
        let workloads = vec![
            // Diurnal + weekly cycle, two rollouts, an init container and a sidecar.
            w("shop", Deployment, "web", 3)
                .cycles(0.6, 0.5, 1)
                .with(c("app", 0.5, 512.0 * MI).usage(0.22, 300.0 * MI))
                .with(c("envoy", 0.1, 128.0 * MI).usage(0.04, 60.0 * MI).noise(0.3))
                .with(c("migrate", 0.2, 64.0 * MI).usage(0.15, 40.0 * MI).init_for(90))
                .rollouts_at(vec![at(0.45), at(0.8)]),
            // HPA following load, with bursts: pods appear and disappear.
            w("shop", Deployment, "api", 3)
                .cycles(0.7, 0.6, -5)
                .bursts(3.0, 2.5, 20)
                .hpa(2, 10, 70)
                .with(c("app", 0.4, 256.0 * MI).usage(0.25, 180.0 * MI)),
            // Over-provisioned: requests 2 cores and 4 GiB, uses a few percent.
            w("shop", Deployment, "cart", 2).with(c("app", 2.0, 4096.0 * MI).usage(0.05, 200.0 * MI)),
            // Under-provisioned and CPU-limited: throttled most of the day.
            w("shop", Deployment, "checkout", 2).cycles(0.4, 0.8, 1).with(
                c("app", 0.1, 128.0 * MI)
                    .limits(Some(0.2), Some(256.0 * MI))
                    .usage(0.17, 150.0 * MI),
            ),
            // Memory leak against a limit: OOM kills and restarts every few hours.
            w("shop", Deployment, "worker", 2).with(
                c("app", 0.3, 256.0 * MI)
                    .limits(Some(1.0), Some(512.0 * MI))
                    .usage(0.12, 200.0 * MI)
                    .leak(45.0 * MI),
            ),
            // Created recently: a few hours of history only.
            w("shop", Deployment, "search", 2)
                .created_at(end - 6 * HOUR)
                .with(c("app", 0.25, 256.0 * MI).usage(0.08, 120.0 * MI)),
            // One hot replica (ordinal 0 is the primary).
            w("data", StatefulSet, "postgres", 3)
                .cycles(0.3, 0.9, 0)
                .hot(4.0)
                .with(c("postgres", 1.0, 2048.0 * MI).usage(0.1, 900.0 * MI))
                .with(c("exporter", 0.05, 64.0 * MI).usage(0.01, 30.0 * MI)),
            // Slow leak with no limit: memory peak keeps climbing, no OOM.
            w("data", StatefulSet, "redis", 1).with(c("redis", 0.2, 512.0 * MI).usage(0.03, 200.0 * MI).leak(0.5 * MI)),
            // One pod per node.
            w("platform", DaemonSet, "node-agent", 0)
                .with(c("agent", 0.1, 128.0 * MI).usage(0.03, 70.0 * MI))
                .with(c("reloader", 0.01, 16.0 * MI).usage(0.001, 8.0 * MI)),
            // No requests at all (BestEffort).
            w("platform", Deployment, "metrics-proxy", 1)
                .with(c("proxy", 0.0, 0.0).no_requests().usage(0.02, 40.0 * MI)),
            // Hourly CronJob: short-lived pods, old Jobs only in history.
            w("batch", CronJob, "report", 1)
                .batch(HOUR, 7 * 60, 8 * 60)
                .with(c("report", 1.0, 1024.0 * MI).usage(0.7, 600.0 * MI).noise(0.1)),
            // Every 15 minutes, very short.
            w("batch", CronJob, "cleanup", 1)
                .batch(15 * 60, 0, 3 * 60)
                .with(c("cleanup", 0.1, 64.0 * MI).usage(0.05, 20.0 * MI)),
            // A bare Job, still running at `end`.
            w("batch", Job, "backfill", 1)
                .batch(0, end - 3 * HOUR, 4 * HOUR)
                .with(c("backfill", 0.5, 512.0 * MI).usage(0.45, 350.0 * MI)),
        ];
        ClusterSpec {
            seed: 20_240_601,
            end,
            duration,
            step: 60,
            nodes: 4,
            workloads,
        }
    }

    /// A varied cluster of `n` workloads across a few namespaces, mixing every kind and
    /// pattern of `demo` with randomised sizes.
    pub fn generated(n: usize, seed: u64, end: i64, duration: i64) -> ClusterSpec {
        use WorkloadKind::*;
        let mut r = SplitMix(seed ^ 0xC1A5_7E12);
        let namespaces = [
            "default", "shop", "data", "platform", "batch", "ml", "payments", "search",
        ];
        // About 20 workloads per node, and a dozen DaemonSets at most, as in real clusters
        // (every DaemonSet adds a pod per node).
        let nodes = ((n / 20) as u32).clamp(3, 100);
        let mut daemon_sets = 0;
        let start = end - duration;
        let mut workloads = Vec::with_capacity(n);
        for i in 0..n {
            let ns = namespaces[i % namespaces.len()];
            let pick = r.below(100);
            let kind = match pick {
                0..=64 => Deployment,
                65..=79 => StatefulSet,
                80..=84 if daemon_sets < 12 => {
                    daemon_sets += 1;
                    DaemonSet
                }
                80..=84 => Deployment,
                85..=94 => CronJob,
                _ => Job,
            };
            let name = format!("{}-{i}", ["svc", "app", "db", "agent", "job"][kind as usize % 5]);
            let replicas = 1 + r.below(4) as u32;
            let mut w = WorkloadSpec::new(ns, kind, &name, replicas, end).cycles(
                r.range(0.0, 0.8),
                r.range(0.4, 1.0),
                r.below(24) as i32 - 11,
            );
            // 1 to 4 containers, 2.5 on average: the app and its sidecars (mesh proxy, log
            // shipper, metrics exporter).
            let containers = 1 + r.below(4) as usize;
            for k in 0..containers {
                let req = [0.05, 0.1, 0.25, 0.5, 1.0, 2.0][r.below(6) as usize];
                let mem = [64.0, 128.0, 256.0, 512.0, 1024.0, 2048.0][r.below(6) as usize] * MI;
                let ratio = r.range(0.05, 1.3);
                let mut p = ContainerProfile::new(["app", "sidecar", "logs", "exporter"][k], req, mem)
                    .usage(req * ratio, mem * r.range(0.2, 0.9))
                    .noise(r.range(0.05, 0.4));
                if r.below(5) == 0 {
                    p = p.limits(Some(req * 2.0), Some(mem));
                }
                if r.below(15) == 0 {
                    let cpu_limit = p.cpu_limit;
                    p = p.limits(cpu_limit, Some(mem)).leak(mem * r.range(0.02, 0.1));
                }
                w = w.with(p);
            }
            if kind == Deployment && r.below(8) == 0 {
                w = w.with(
                    ContainerProfile::new("init", 0.1, 64.0 * MI)
                        .usage(0.08, 30.0 * MI)
                        .init_for(60),
                );
            }
            match kind {
                Deployment => {
                    if r.below(6) == 0 {
                        w = w
                            .hpa(2, 8 + r.below(10) as u32, 60 + 5 * r.below(5) as u32)
                            .bursts(2.0, 2.0, 15);
                    }
                    if r.below(3) == 0 {
                        let t = start + (r.range(0.1, 0.95) * duration as f64) as i64;
                        w.rollouts.push(t - t % 60);
                    }
                    if r.below(25) == 0 {
                        w.created = end - (r.range(0.02, 0.3) * duration as f64) as i64;
                    }
                }
                StatefulSet if r.below(3) == 0 => w.hot_replica = r.range(2.0, 5.0),
                CronJob => {
                    let every = [15 * 60, 30 * 60, HOUR, 2 * HOUR, 6 * HOUR][r.below(5) as usize];
                    let run_for = (every / 4).min(20 * 60);
                    w = w.batch(every, 60 * r.below((every.min(HOUR) / 60) as u64) as i64, run_for);
                }
                Job => {
                    let t = start + (r.range(0.0, 1.0) * duration as f64) as i64;
                    w = w.batch(0, t - t % 60, HOUR + r.below(4) as i64 * HOUR);
                }
                _ => {}
            }
            if r.below(4) == 0 {
                w = w.bursts(r.range(0.5, 4.0), r.range(1.5, 3.0), 5 + r.below(25) as i64);
            }
            workloads.push(w);
        }
        ClusterSpec {
            seed,
            end,
            duration,
            step: 60,
            nodes,
            workloads,
        }
    }

    pub fn start(&self) -> i64 {
        self.end - self.duration
    }
}

impl WorkloadSpec {
    pub fn rollouts_at(mut self, times: Vec<i64>) -> Self {
        self.rollouts = times;
        self
    }

    pub fn created_at(mut self, t: i64) -> Self {
        self.created = t;
        self
    }

    pub fn hot(mut self, multiplier: f64) -> Self {
        self.hot_replica = multiplier;
        self
    }

    /// From `at` on, the load is `multiplier` times what it was (a release, a new client).
    pub fn shift_at(mut self, at: i64, multiplier: f64) -> Self {
        self.level_shift = Some((at, multiplier));
        self
    }

    /// The load grows by `per_day` (0.03 = 3 %) a day, and is 1 at `anchor`.
    pub fn growing(mut self, per_day: f64, anchor: i64) -> Self {
        self.growth = Some((anchor, per_day));
        self
    }
}
