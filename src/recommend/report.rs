//! What `recommend` returns: one unit per workload (its containers' recommendations and its
//! HPA's, which merge as one change), savings and totals. Serialized as the JSON report
//! (camelCase, `apiVersion: rightsizer.dev/v1alpha1`), so field names are a public schema.

use serde::Serialize;

use crate::model::{ContainerKey, ContainerRole, Resources, WorkloadKey};

/// The Kubernetes QoS class a pod gets from its containers' requests and limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum QosClass {
    Guaranteed,
    Burstable,
    BestEffort,
}

impl QosClass {
    /// The class Kubernetes assigns (init containers included; a request left unset
    /// defaults to the limit).
    pub fn of<'a>(containers: impl IntoIterator<Item = &'a Resources>) -> QosClass {
        let (mut any, mut guaranteed) = (false, true);
        for r in containers {
            let cpu_req = r.cpu_request.or(r.cpu_limit);
            let mem_req = r.memory_request.or(r.memory_limit);
            any |= [cpu_req, r.cpu_limit, mem_req, r.memory_limit]
                .iter()
                .any(|v| v.is_some_and(|v| v > 0.0));
            guaranteed &= r.cpu_limit.is_some()
                && r.memory_limit.is_some()
                && cpu_req == r.cpu_limit
                && mem_req == r.memory_limit;
        }
        match (any, guaranteed) {
            (false, _) => QosClass::BestEffort,
            (true, true) => QosClass::Guaranteed,
            (true, false) => QosClass::Burstable,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            QosClass::Guaranteed => "Guaranteed",
            QosClass::Burstable => "Burstable",
            QosClass::BestEffort => "BestEffort",
        }
    }
}

/// Why a container (or a whole workload) got no recommendation.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase", tag = "reason", content = "detail")]
pub enum Skip {
    NoHistory,
    TooFewSamples {
        samples: u64,
        needed: u64,
    },
    TooShortHistory {
        seconds: i64,
        needed: i64,
    },
    /// `rightsizer.dev/ignore: "true"`, or `ignore: true` in the policy.
    Ignored {
        by: String,
    },
}

impl std::fmt::Display for Skip {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Skip::NoHistory => f.write_str("no usage history in the window"),
            Skip::TooFewSamples { samples, needed } => write!(f, "only {samples} CPU samples, {needed} needed"),
            Skip::TooShortHistory { seconds, needed } => write!(
                f,
                "only {:.1} h of history, {:.1} h needed",
                *seconds as f64 / 3600.0,
                *needed as f64 / 3600.0
            ),
            Skip::Ignored { by } => write!(f, "ignored ({by})"),
        }
    }
}

/// The reason behind each recommended value, in plain language.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Reasons {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpu_request: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpu_limit: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory_request: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory_limit: Option<String>,
}

/// One container's recommendation. When skipped, `recommended` equals `current`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Recommendation {
    pub key: ContainerKey,
    pub role: ContainerRole,
    pub current: Resources,
    pub recommended: Resources,
    /// Observed: pooled CPU percentile (cores, at the policy's percentile) and peak working
    /// set (bytes).
    pub cpu_percentile: Option<f64>,
    pub memory_peak: Option<f64>,
    pub samples: u64,
    pub pods: u32,
    pub history_seconds: i64,
    /// 0..1, from history span and sample count (see `confidence`).
    pub confidence: f64,
    /// QoS class of the workload's pods with the recommended values.
    pub qos: QosClass,
    pub oom_kills: u32,
    pub throttling_ratio: Option<f64>,
    /// CFS throttling today above the policy's target.
    pub throttled: bool,
    /// Monthly cost of the current minus the recommended requests (positive = saved), all
    /// replicas.
    pub monthly_savings: f64,
    pub reasons: Reasons,
    /// Flags and general remarks (OOM kills, throttling, hysteresis, caps).
    pub notes: Vec<String>,
    pub skip: Option<Skip>,
}

impl Recommendation {
    /// True when the recommendation proposes a change to the spec.
    pub fn changed(&self) -> bool {
        self.skip.is_none() && self.recommended != self.current
    }
}

/// The recommendation for one target metric of an HPA.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HpaTarget {
    /// `cpu` or `memory`.
    pub resource: String,
    pub current_percent: u32,
    pub recommended_percent: u32,
    /// The target hit the policy's range and the requests were adjusted instead.
    pub clamped: bool,
    pub reason: String,
}

/// The HPA half of a workload's recommendation.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HpaRecommendation {
    pub name: String,
    pub current_min_replicas: u32,
    pub current_max_replicas: u32,
    pub min_replicas: u32,
    pub max_replicas: u32,
    pub targets: Vec<HpaTarget>,
    /// Seconds in the window the HPA sat at maxReplicas.
    pub at_max_seconds: i64,
    pub sat_at_max: bool,
    pub reasons: Vec<String>,
}

impl HpaRecommendation {
    pub fn changed(&self) -> bool {
        self.min_replicas != self.current_min_replicas
            || self.max_replicas != self.current_max_replicas
            || self.targets.iter().any(|t| t.recommended_percent != t.current_percent)
    }
}

/// One workload's containers and HPA: one change, emitted together.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkloadRecommendation {
    pub key: WorkloadKey,
    /// Replicas the savings are multiplied by: the average from usage when known, else the
    /// spec's.
    pub replicas: f64,
    pub current_qos: QosClass,
    pub qos: QosClass,
    pub containers: Vec<Recommendation>,
    pub hpa: Option<HpaRecommendation>,
    pub monthly_savings: f64,
    pub notes: Vec<String>,
    pub skip: Option<Skip>,
}

impl WorkloadRecommendation {
    pub fn changed(&self) -> bool {
        self.containers.iter().any(Recommendation::changed) || self.hpa.as_ref().is_some_and(HpaRecommendation::changed)
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Totals {
    pub workloads: usize,
    pub containers: usize,
    pub changed: usize,
    pub skipped: usize,
    pub monthly_savings: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    pub window_start: i64,
    pub window_end: i64,
    /// One unit per workload, in workload order; per-container consumers iterate
    /// `containers()` (JSON: `workloads[].containers[]`).
    pub workloads: Vec<WorkloadRecommendation>,
    pub totals: Totals,
    /// Invalid annotations and other problems that did not stop the run.
    pub warnings: Vec<String>,
}

impl Report {
    /// Every container's recommendation, in workload order.
    pub fn containers(&self) -> impl Iterator<Item = &Recommendation> {
        self.workloads.iter().flat_map(|w| w.containers.iter())
    }
}
