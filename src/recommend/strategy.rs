//! The default strategy (see DESIGN.md, "Default strategy and why"):
//! - CPU request = p95 of the pooled 5-minute usage of all replicas over the window
//!   (KRR's default; the VPA targets p90 x 1.15, about the same point);
//! - memory request = limit = peak working set + 15 % (KRR's buffer), so a container that
//!   once needed its peak is never OOM-killed for lack of it;
//! - floors of 10m CPU and 16 MiB, values rounded up to 5m and 1 MiB steps;
//! - too few samples gives no recommendation and says why (KRR needs 100 points).

use serde::Serialize;

use crate::model::{ContainerKey, ContainerUsage, Resources, UsageSet, Workload, format_cpu, format_memory};

const MIB: f64 = 1024.0 * 1024.0;

#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    pub cpu_percentile: f64,
    pub memory_buffer: f64,
    pub min_cpu: f64,
    pub min_memory: f64,
    pub min_samples: u64,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            // p95: KRR's default CPU percentile; the VPA's p90 x 1.15 lands close to it.
            cpu_percentile: 0.95,
            // +15 %: KRR's memory buffer over the peak working set.
            memory_buffer: 0.15,
            // 10m / 16 MiB: below these a request only adds scheduling noise.
            min_cpu: 0.010,
            min_memory: 16.0 * MIB,
            // 100 points: KRR's minimum before it trusts a percentile.
            min_samples: 100,
        }
    }
}

/// Why a container got no recommendation.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase", tag = "reason", content = "detail")]
pub enum Skip {
    NoHistory,
    TooFewSamples { samples: u64, needed: u64 },
}

impl std::fmt::Display for Skip {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Skip::NoHistory => f.write_str("no usage history in the window"),
            Skip::TooFewSamples { samples, needed } => write!(f, "only {samples} CPU samples, {needed} needed"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Recommendation {
    pub key: ContainerKey,
    pub current: Resources,
    /// Observed: pooled CPU percentile (cores) and peak working set (bytes).
    pub cpu_percentile: Option<f64>,
    pub memory_peak: Option<f64>,
    pub samples: u64,
    pub pods: u32,
    pub history_seconds: i64,
    pub recommended: Resources,
    pub reasons: Vec<String>,
    pub skip: Option<Skip>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    pub window_start: i64,
    pub window_end: i64,
    pub recommendations: Vec<Recommendation>,
}

fn round_up(v: f64, step: f64) -> f64 {
    (v / step - 1e-9).ceil() * step
}

fn one(key: ContainerKey, current: Resources, usage: Option<&ContainerUsage>, policy: &Policy) -> Recommendation {
    let mut r = Recommendation {
        key,
        current,
        cpu_percentile: None,
        memory_peak: None,
        samples: 0,
        pods: 0,
        history_seconds: 0,
        recommended: Resources::default(),
        reasons: Vec::new(),
        skip: None,
    };
    let Some(u) = usage else {
        r.skip = Some(Skip::NoHistory);
        return r;
    };
    r.samples = u.cpu.count();
    r.pods = u.pods;
    r.history_seconds = u.span_seconds();
    r.cpu_percentile = u.cpu.quantile(policy.cpu_percentile);
    r.memory_peak = u.memory_peak;
    if r.samples < policy.min_samples {
        r.skip = Some(if r.samples == 0 {
            Skip::NoHistory
        } else {
            Skip::TooFewSamples {
                samples: r.samples,
                needed: policy.min_samples,
            }
        });
        return r;
    }
    let days = r.history_seconds as f64 / 86_400.0;
    if let Some(p) = r.cpu_percentile {
        let cpu = round_up(p.max(policy.min_cpu), 0.005);
        r.recommended.cpu_request = Some(cpu);
        r.reasons.push(format!(
            "cpu: p{} of {} samples from {} pods over {days:.1} d = {}{}",
            (policy.cpu_percentile * 100.0).round(),
            r.samples,
            r.pods,
            format_cpu(p),
            if p < policy.min_cpu {
                ", raised to the floor"
            } else {
                ""
            }
        ));
    }
    if let Some(peak) = r.memory_peak {
        let mem = round_up((peak * (1.0 + policy.memory_buffer)).max(policy.min_memory), MIB);
        r.recommended.memory_request = Some(mem);
        r.recommended.memory_limit = Some(mem);
        r.reasons.push(format!(
            "memory: peak {} over {days:.1} d, +{:.0} % buffer",
            format_memory(peak),
            policy.memory_buffer * 100.0
        ));
    }
    r
}

/// One recommendation per container of every workload, in workload order.
pub fn recommend(workloads: &[Workload], usage: &UsageSet, policy: &Policy) -> Report {
    let recommendations = workloads
        .iter()
        .flat_map(|w| {
            w.containers.iter().map(|c| {
                let key = ContainerKey::new(w.key.clone(), c.name.clone());
                let u = usage.containers.get(&key);
                one(key, c.resources, u, policy)
            })
        })
        .collect();
    Report {
        window_start: usage.start,
        window_end: usage.end,
        recommendations,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{ContainerRole, ContainerSpec, WorkloadKey, WorkloadKind};

    fn workload() -> Workload {
        Workload {
            key: WorkloadKey::new("shop", WorkloadKind::Deployment, "web"),
            replicas: Some(2),
            containers: vec![ContainerSpec {
                name: "app".into(),
                role: ContainerRole::App,
                resources: Resources::default(),
            }],
            hpa: None,
            labels: Default::default(),
            annotations: Default::default(),
        }
    }

    fn usage_with(samples: &[f64], peak: f64) -> UsageSet {
        let mut u = ContainerUsage::default();
        for (i, &s) in samples.iter().enumerate() {
            u.cpu.add(s);
            u.saw(i as i64 * 300);
        }
        u.observe_memory(peak);
        u.pods = 1;
        let mut set = UsageSet::default();
        set.containers.insert(ContainerKey::new(workload().key, "app"), u);
        set
    }

    #[test]
    fn p95_cpu_and_buffered_peak_memory() {
        let samples: Vec<f64> = (1..=200).map(|i| f64::from(i) * 0.001).collect();
        let report = recommend(&[workload()], &usage_with(&samples, 100.0 * MIB), &Policy::default());
        let r = &report.recommendations[0];
        assert_eq!(r.skip, None);
        // p95 of 1..200 m is 190m (within the sketch's 1 %), rounded up to a 5m step.
        let cpu = r.recommended.cpu_request.unwrap();
        assert!((0.190..=0.195 + 1e-9).contains(&cpu), "{cpu}");
        assert_eq!(r.recommended.memory_request, Some(115.0 * MIB));
        assert_eq!(r.recommended.memory_limit, r.recommended.memory_request);
    }

    #[test]
    fn floors_apply() {
        let samples = vec![0.0001; 200];
        let r = &recommend(&[workload()], &usage_with(&samples, 1.0 * MIB), &Policy::default()).recommendations[0];
        assert_eq!(r.recommended.cpu_request, Some(0.010));
        assert_eq!(r.recommended.memory_request, Some(16.0 * MIB));
    }

    #[test]
    fn too_little_history_is_skipped_with_a_reason() {
        let r = &recommend(&[workload()], &usage_with(&[0.1; 10], MIB), &Policy::default()).recommendations[0];
        assert_eq!(
            r.skip,
            Some(Skip::TooFewSamples {
                samples: 10,
                needed: 100
            })
        );
        assert_eq!(r.recommended, Resources::default());
        let none = &recommend(&[workload()], &UsageSet::default(), &Policy::default()).recommendations[0];
        assert_eq!(none.skip, Some(Skip::NoHistory));
    }
}
