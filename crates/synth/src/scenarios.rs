//! The backtest's scenario set (issue 12's quality suite): one workload per way usage can
//! change between the training window and the held-out days after it, written for the
//! backtest rather than taken from the demo. `held_out` is the length of the held-out window
//! at the end of the history; shifts and ages are placed relative to it.

use rightsizer::model::WorkloadKind;

use super::spec::{ClusterSpec, ContainerProfile, DAY, MI, WorkloadSpec};

impl ClusterSpec {
    /// Twelve workloads in namespace `scenarios`, history `(end - duration, end]` scraped
    /// every minute, for a backtest that holds out the last `held_out` seconds.
    pub fn scenarios(end: i64, duration: i64, held_out: i64) -> ClusterSpec {
        use WorkloadKind::*;
        let as_of = end - held_out;
        let w = |name, replicas| WorkloadSpec::new("scenarios", Deployment, name, replicas, end);
        let c = ContainerProfile::new;
        let workloads = vec![
            // A release doubled CPU 3 days before the training window ends.
            w("level-shift", 2)
                .cycles(0.4, 0.9, 0)
                .shift_at(as_of - 3 * DAY, 2.0)
                .with(c("app", 0.5, 512.0 * MI).usage(0.2, 300.0 * MI)),
            // Traffic growing 3 % a day through training and held-out days.
            w("growth", 2)
                .cycles(0.4, 0.9, 0)
                .growth(0.03, as_of)
                .with(c("app", 0.5, 512.0 * MI).usage(0.25, 300.0 * MI)),
            // Busy weekdays, quiet weekends: which days end the training matters.
            w("quiet-weekend", 2)
                .cycles(0.5, 0.3, 0)
                .with(c("app", 0.5, 512.0 * MI).usage(0.25, 250.0 * MI)),
            // Short bursts at 3x, several a day.
            w("bursts", 2)
                .bursts(4.0, 3.0, 10)
                .with(c("app", 0.5, 256.0 * MI).usage(0.15, 150.0 * MI)),
            // The peak of the week is on the weekend.
            w("weekly-peak", 2)
                .cycles(0.3, 2.5, 0)
                .with(c("app", 0.5, 512.0 * MI).usage(0.15, 250.0 * MI)),
            // A leak against its limit: OOM-killed every few hours.
            w("repeated-oom", 2).with(
                c("app", 0.2, 256.0 * MI)
                    .limits(Some(1.0), Some(400.0 * MI))
                    .usage(0.1, 200.0 * MI)
                    .leak(40.0 * MI),
            ),
            // A JVM: flat heap near its request, noisy CPU under a CPU limit.
            w("jvm", 2).cycles(0.3, 0.9, 0).with(
                c("app", 1.0, 2048.0 * MI)
                    .limits(Some(2.0), Some(2048.0 * MI))
                    .usage(0.6, 1600.0 * MI)
                    .noise(0.4),
            ),
            // Rollouts: new pods with a CPU-heavy init container each time.
            w("rollouts", 3)
                .rollouts_at(vec![as_of - 4 * DAY, as_of - DAY, as_of + DAY])
                .with(c("app", 0.3, 256.0 * MI).usage(0.12, 150.0 * MI))
                .with(c("warmup", 1.0, 256.0 * MI).usage(0.9, 100.0 * MI).init_for(300)),
            // An HPA-scaled service: pods come and go with the daily cycle and bursts.
            w("hpa-churn", 3)
                .cycles(0.8, 0.7, 0)
                .bursts(2.0, 2.0, 20)
                .hpa(2, 12, 60)
                .with(c("app", 0.4, 256.0 * MI).usage(0.24, 180.0 * MI)),
            // Two days old at the start of the held-out window.
            w("young", 2)
                .created_at(as_of - 2 * DAY)
                .with(c("app", 0.5, 512.0 * MI).usage(0.2, 200.0 * MI)),
            // An app with a proxy sidecar, sized separately.
            w("sidecar", 2)
                .cycles(0.5, 0.8, 0)
                .with(c("app", 0.5, 512.0 * MI).usage(0.25, 300.0 * MI))
                .with(c("proxy", 0.1, 128.0 * MI).usage(0.03, 50.0 * MI).noise(0.3)),
            // Near idle: a few millicores and a small working set.
            w("near-idle", 1).with(c("app", 0.25, 256.0 * MI).usage(0.002, 20.0 * MI).noise(0.5)),
        ];
        ClusterSpec {
            seed: 20_261_202,
            end,
            duration,
            step: 60,
            nodes: 3,
            workloads,
        }
    }
}
