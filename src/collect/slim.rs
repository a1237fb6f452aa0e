//! Slim views of the Kubernetes objects discovery lists: only the fields `objects` reads
//! (metadata's name, namespace, labels, annotations and controller; replicas, parallelism,
//! a DaemonSet's desired pod count; the pod template's containers with their requests,
//! limits and restart policy). Every other field of a list page (managedFields, status,
//! env, volumes, ...) is skipped by serde as it is read, without being allocated: a list
//! page becomes these and then the model's workloads and owner tuples, never whole
//! k8s-openapi objects.
//!
//! Every field is optional and a `null` reads as missing, as k8s-openapi reads them; a
//! k8s-openapi object converts with [`from_typed`] (through its own JSON), so the demo data
//! and the tests' typed objects take the same path as a list page.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use serde::de::{DeserializeOwned, IgnoredAny};
use serde::{Deserialize, Serialize};

/// An object of any kind: its metadata, and the spec and status of the kind's shape.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(bound(deserialize = "S: Deserialize<'de>, T: Deserialize<'de>"))]
pub struct Object<S = IgnoredAny, T = IgnoredAny> {
    #[serde(default)]
    pub metadata: Meta,
    pub spec: Option<S>,
    pub status: Option<T>,
}

/// The apps/v1 Deployment and StatefulSet.
pub type Deployment = Object<ControllerSpec>;
pub type StatefulSet = Object<ControllerSpec>;
/// The apps/v1 DaemonSet: its replicas are the status' desired pod count.
pub type DaemonSet = Object<ControllerSpec, DaemonSetStatus>;
pub type CronJob = Object<CronJobSpec>;
pub type Job = Object<JobSpec>;
pub type Pod = Object<PodSpec>;
/// A ReplicaSet only maps pods to their Deployment: metadata alone.
pub type ReplicaSet = Object;

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Meta {
    pub name: Option<String>,
    pub namespace: Option<String>,
    pub labels: Option<BTreeMap<String, String>>,
    pub annotations: Option<BTreeMap<String, String>>,
    pub owner_references: Option<Vec<OwnerReference>>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct OwnerReference {
    pub kind: Option<String>,
    pub name: Option<String>,
    pub controller: Option<bool>,
}

impl Meta {
    /// The controller's (kind, name).
    pub fn controller(&self) -> Option<(String, String)> {
        let c = self
            .owner_references
            .iter()
            .flatten()
            .find(|o| o.controller == Some(true))?;
        Some((c.kind.clone().unwrap_or_default(), c.name.clone().unwrap_or_default()))
    }
}

/// The spec of a Deployment, StatefulSet or DaemonSet.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct ControllerSpec {
    pub replicas: Option<i32>,
    pub template: Option<PodTemplate>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DaemonSetStatus {
    pub desired_number_scheduled: Option<i32>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CronJobSpec {
    pub job_template: Option<JobTemplate>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct JobTemplate {
    pub spec: Option<JobSpec>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct JobSpec {
    pub parallelism: Option<i32>,
    pub template: Option<PodTemplate>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct PodTemplate {
    pub spec: Option<PodSpec>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodSpec {
    pub containers: Option<Vec<Container>>,
    pub init_containers: Option<Vec<Container>>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Container {
    pub name: Option<String>,
    pub resources: Option<Resources>,
    /// `Always` on an init container makes it a native sidecar.
    pub restart_policy: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct Resources {
    pub requests: Option<Quantities>,
    pub limits: Option<Quantities>,
}

/// The cpu and memory entries of a requests or limits map (extended resources are skipped).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Quantities {
    pub cpu: Option<Quantity>,
    pub memory: Option<Quantity>,
}

/// The slim view of a k8s-openapi object, read from the JSON it serializes to: the one way
/// typed objects (the demo data, tests) reach the conversion a list page takes.
pub fn from_typed<K: Serialize, S: DeserializeOwned>(object: &K) -> S {
    let json = serde_json::to_value(object).expect("a k8s-openapi object serializes to JSON");
    // Every slim field is optional and of the type k8s-openapi writes, so this cannot fail.
    serde_json::from_value(json).expect("the slim view reads what k8s-openapi writes")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn unread_fields_of_any_shape_are_skipped_and_nulls_are_missing() {
        let page = json!({
            "metadata": {"name": "web", "namespace": null, "uid": "u", "generation": 7,
                "managedFields": [{"manager": "kubectl", "fieldsV1": {"f:spec": {"f:replicas": {}}}}],
                "ownerReferences": [{"kind": "Node", "name": "n1"}, {"kind": "ReplicaSet", "name": "rs", "controller": true, "blockOwnerDeletion": true}]},
            "spec": {"containers": [{"name": "app", "image": "x", "futureField": {"deep": [1, 2, {"a": null}]},
                "resources": {"requests": {"cpu": 1, "nvidia.com/gpu": "1"}, "claims": [{"name": "gpu"}]}}],
                "initContainers": null, "someNewField": true},
            "status": {"phase": "Running", "conditions": [{"type": "Ready"}]},
        });
        let pod: Pod = serde_json::from_value(page).unwrap();
        assert_eq!(pod.metadata.name.as_deref(), Some("web"));
        assert_eq!(pod.metadata.namespace, None);
        assert_eq!(pod.metadata.controller(), Some(("ReplicaSet".into(), "rs".into())));
        let spec = pod.spec.unwrap();
        assert!(spec.init_containers.is_none());
        let requests = spec.containers.unwrap()[0].resources.clone().unwrap().requests.unwrap();
        // A number reads as k8s-openapi reads it.
        assert_eq!(requests.cpu, Some(Quantity("1".into())));
        assert_eq!(requests.memory, None);
    }
}
