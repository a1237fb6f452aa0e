//! Pure data shared by every stage of the pipeline: workload identities, Kubernetes
//! quantities, the discovered shape of a workload and the usage summary that the
//! `recommend` stage reads. Nothing here touches the network or async code.

mod counts;
mod days;
mod decaying;
mod quantity;
mod run;
mod sketch;
mod usage;
mod workload;

pub use days::Days;
pub use decaying::DecayingSketch;
pub use quantity::{QuantityError, format_cpu, format_memory, parse_cpu, parse_memory};
pub use run::{CurrentUsage, CurrentUsageMap, Skipped, Window};
pub use sketch::{ALPHA as SKETCH_ALPHA, Sketch};
pub use usage::{ContainerUsage, CpuUsage, UsageSet, WorkloadUsage};
pub use workload::{ContainerRole, ContainerSpec, Hpa, HpaMetric, Resources, Workload};

use std::fmt;

use serde::{Deserialize, Serialize};

/// The controller kinds rightsizer recommends for. Pods are resolved to the top of their
/// owner chain (pod -> ReplicaSet -> Deployment, pod -> Job -> CronJob).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum WorkloadKind {
    Deployment,
    StatefulSet,
    DaemonSet,
    CronJob,
    Job,
    /// A pod with no controller: reported, never patched.
    Pod,
}

impl WorkloadKind {
    pub const ALL: [WorkloadKind; 6] = [
        WorkloadKind::Deployment,
        WorkloadKind::StatefulSet,
        WorkloadKind::DaemonSet,
        WorkloadKind::CronJob,
        WorkloadKind::Job,
        WorkloadKind::Pod,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            WorkloadKind::Deployment => "Deployment",
            WorkloadKind::StatefulSet => "StatefulSet",
            WorkloadKind::DaemonSet => "DaemonSet",
            WorkloadKind::CronJob => "CronJob",
            WorkloadKind::Job => "Job",
            WorkloadKind::Pod => "Pod",
        }
    }

    /// Parses the `kind` as Kubernetes spells it (also what kube-state-metrics puts in
    /// `owner_kind`).
    pub fn from_kind(kind: &str) -> Option<WorkloadKind> {
        WorkloadKind::ALL.into_iter().find(|k| k.as_str() == kind)
    }

    /// As [`WorkloadKind::from_kind`], in any case (`deployment`, `StatefulSet`).
    pub fn from_kind_ignore_case(kind: &str) -> Option<WorkloadKind> {
        WorkloadKind::ALL
            .into_iter()
            .find(|k| k.as_str().eq_ignore_ascii_case(kind))
    }
}

impl fmt::Display for WorkloadKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Identity of a workload: `namespace/Kind/name`. Orders by namespace, then kind, then name,
/// which is the stable order of every report.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct WorkloadKey {
    pub namespace: String,
    pub kind: WorkloadKind,
    pub name: String,
}

impl WorkloadKey {
    pub fn new(namespace: impl Into<String>, kind: WorkloadKind, name: impl Into<String>) -> Self {
        WorkloadKey {
            namespace: namespace.into(),
            kind,
            name: name.into(),
        }
    }
}

impl fmt::Display for WorkloadKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}/{}", self.namespace, self.kind, self.name)
    }
}

/// One container of one workload: the unit a recommendation is made for.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ContainerKey {
    pub workload: WorkloadKey,
    pub container: String,
}

impl ContainerKey {
    pub fn new(workload: WorkloadKey, container: impl Into<String>) -> Self {
        ContainerKey {
            workload,
            container: container.into(),
        }
    }
}

impl fmt::Display for ContainerKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.workload, self.container)
    }
}
