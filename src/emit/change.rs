//! What a run proposes to change, per workload: the one input of every output on the
//! pull-request and cluster paths (patch files, manifest edits, annotations, `--apply`).
//! Built from the recommendation report; a value of `None` means "leave as it is".

use serde::Serialize;

use crate::model::{ContainerRole, Resources, WorkloadKey};

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkloadChange {
    pub key: WorkloadKey,
    pub containers: Vec<ContainerChange>,
    /// The HPA change that must merge together with the container changes.
    pub hpa: Option<HpaChange>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ContainerChange {
    pub name: String,
    pub role: ContainerRole,
    pub current: Resources,
    /// New values; a `None` field is left untouched.
    pub recommended: Resources,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HpaChange {
    pub name: String,
    pub min_replicas: Option<u32>,
    pub max_replicas: Option<u32>,
    /// New `averageUtilization` of the `Resource` metric on cpu / memory.
    pub cpu_utilization: Option<u32>,
    pub memory_utilization: Option<u32>,
}

impl WorkloadChange {
    /// Whether anything would change at all.
    pub fn is_empty(&self) -> bool {
        self.containers.iter().all(|c| c.recommended == Resources::default())
            && self.hpa.as_ref().is_none_or(|h| {
                h.min_replicas.is_none()
                    && h.max_replicas.is_none()
                    && h.cpu_utilization.is_none()
                    && h.memory_utilization.is_none()
            })
    }
}
