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

/// A field to write: the recommended value when it differs from the current one.
fn differs(current: Option<f64>, recommended: Option<f64>) -> Option<f64> {
    recommended.filter(|r| current.is_none_or(|c| (c - r).abs() > f64::EPSILON * r.abs().max(1.0)))
}

fn differs_u32(current: u32, recommended: u32) -> Option<u32> {
    (current != recommended).then_some(recommended)
}

/// What the report proposes to change: every workload that is not skipped and has at least
/// one value that differs from today, its containers with only the differing fields, and its
/// HPA change. A recommended removal (a value that is set today and `None` in the
/// recommendation) is left alone: the PR path only writes values.
pub fn changes(report: &crate::recommend::Report) -> Vec<WorkloadChange> {
    report
        .workloads
        .iter()
        .filter(|w| w.skip.is_none())
        .map(|w| {
            let containers = w
                .containers
                .iter()
                .filter(|c| c.skip.is_none())
                .map(|c| ContainerChange {
                    name: c.key.container.clone(),
                    role: c.role,
                    current: c.current,
                    recommended: Resources {
                        cpu_request: differs(c.current.cpu_request, c.recommended.cpu_request),
                        cpu_limit: differs(c.current.cpu_limit, c.recommended.cpu_limit),
                        memory_request: differs(c.current.memory_request, c.recommended.memory_request),
                        memory_limit: differs(c.current.memory_limit, c.recommended.memory_limit),
                    },
                })
                .filter(|c| c.recommended != Resources::default())
                .collect();
            let hpa = w.hpa.as_ref().map(|h| {
                let target = |resource: &str| {
                    h.targets
                        .iter()
                        .find(|t| t.resource == resource)
                        .and_then(|t| differs_u32(t.current_percent, t.recommended_percent))
                };
                HpaChange {
                    name: h.name.clone(),
                    min_replicas: differs_u32(h.current_min_replicas, h.min_replicas),
                    max_replicas: differs_u32(h.current_max_replicas, h.max_replicas),
                    cpu_utilization: target("cpu"),
                    memory_utilization: target("memory"),
                }
            });
            WorkloadChange {
                key: w.key.clone(),
                containers,
                hpa,
            }
        })
        .filter(|c| !c.is_empty())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{ContainerKey, WorkloadKind};
    use crate::recommend::{Policy, recommend};

    #[test]
    fn only_differing_values_become_changes() {
        // The bundled demo snapshot (its generator is a dev crate that depends on this one).
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("demo/cluster.snapshot.json.gz");
        let snapshot = crate::collect::snapshot::Snapshot::read(&path).unwrap();
        let report = recommend(&snapshot.workloads, &snapshot.usage, &Policy::default());
        let changes = changes(&report);
        assert!(!changes.is_empty());
        for change in &changes {
            let w = report.workloads.iter().find(|w| w.key == change.key).unwrap();
            assert!(w.skip.is_none());
            for c in &change.containers {
                let rec = w.containers.iter().find(|r| r.key.container == c.name).unwrap();
                for (cur, new, want) in [
                    (
                        rec.current.cpu_request,
                        c.recommended.cpu_request,
                        rec.recommended.cpu_request,
                    ),
                    (
                        rec.current.memory_request,
                        c.recommended.memory_request,
                        rec.recommended.memory_request,
                    ),
                    (
                        rec.current.cpu_limit,
                        c.recommended.cpu_limit,
                        rec.recommended.cpu_limit,
                    ),
                    (
                        rec.current.memory_limit,
                        c.recommended.memory_limit,
                        rec.recommended.memory_limit,
                    ),
                ] {
                    match new {
                        Some(v) => assert!(Some(v) == want && cur != Some(v), "{}: {cur:?} -> {v}", rec.key),
                        None => assert!(want.is_none() || want == cur, "{}: {want:?} dropped", rec.key),
                    }
                }
            }
        }
        // Skipped containers and unchanged workloads propose nothing.
        let skipped = ContainerKey::new(
            crate::model::WorkloadKey::new("batch", WorkloadKind::Job, "backfill"),
            "backfill",
        );
        assert!(!changes.iter().any(|c| c.key == skipped.workload));
        // The HPA of the demo's api Deployment moves with its request.
        let api = changes.iter().find(|c| c.key.name == "api").expect("api changes");
        assert!(
            api.hpa
                .as_ref()
                .is_some_and(|h| h.cpu_utilization.is_some() || h.max_replicas.is_some())
        );
    }
}
