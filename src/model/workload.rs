//! What discovery found about a workload: its containers with their current resources,
//! its replica count and the HPA that scales it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::WorkloadKey;

/// Requests and limits of one container: CPU in cores, memory in bytes. `None` is "not set".
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Resources {
    pub cpu_request: Option<f64>,
    pub cpu_limit: Option<f64>,
    pub memory_request: Option<f64>,
    pub memory_limit: Option<f64>,
}

/// Init containers and sidecars (init containers with `restartPolicy: Always`) are sized on
/// their own and never mixed up with the app containers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum ContainerRole {
    #[default]
    App,
    Init,
    Sidecar,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContainerSpec {
    pub name: String,
    pub role: ContainerRole,
    pub resources: Resources,
}

/// One metric of an `autoscaling/v2` HPA, as far as right-sizing cares.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum HpaMetric {
    /// `type: Resource` with `target.type: Utilization`: scales on usage / request.
    Utilization { resource: String, target_percent: u32 },
    /// `type: Resource` with `target.type: AverageValue`: independent of requests.
    AverageValue { resource: String, value: f64 },
    /// Pods, Object, External or ContainerResource metrics, named for the report.
    Other(String),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Hpa {
    pub name: String,
    pub min_replicas: u32,
    pub max_replicas: u32,
    pub current_replicas: Option<u32>,
    pub desired_replicas: Option<u32>,
    pub metrics: Vec<HpaMetric>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Workload {
    pub key: WorkloadKey,
    /// Desired replicas from the spec (DaemonSets: desired scheduled pods).
    pub replicas: Option<u32>,
    pub containers: Vec<ContainerSpec>,
    pub hpa: Option<Hpa>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

impl Workload {
    pub fn container(&self, name: &str) -> Option<&ContainerSpec> {
        self.containers.iter().find(|c| c.name == name)
    }
}
