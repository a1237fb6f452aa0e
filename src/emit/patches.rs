//! Patch files for a pull request: one kustomize patch per changed workload, the HPA patch
//! beside it, grouped into one kustomize `Component` per namespace (see [`set`] for the
//! layout, the ownership marker and how targets match bases with or without namespaces).
//!
//! Workload patches are strategic-merge patches by default: containers merge by name, so a
//! patch carries only `name` and `resources` and needs nothing but the [`WorkloadChange`].
//! [`PatchFormat::Json6902`] writes RFC 6902 operations instead; their paths address
//! containers by index, so they need the current object ([`CurrentObjects`]), and every
//! container is guarded by a `test` op on its name: a patch applied to a drifted object fails
//! instead of resizing the wrong container.
//!
//! HPA patches are always RFC 6902. `autoscaling/v2` `spec.metrics` has no patch merge key, so
//! a strategic-merge patch would replace the whole metrics list, dropping every metric it does
//! not repeat. A JSON patch changes `minReplicas`, `maxReplicas` and one metric's
//! `target.averageUtilization` in place; the metric's index comes from the current HPA (guarded
//! by `test` ops on its type and resource name). Without the current HPA only replica changes
//! can be written; a utilization change is then reported as skipped.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Serialize;
use serde_json::{Value, json};

use super::change::{ContainerChange, HpaChange, WorkloadChange};
use crate::model::{ContainerRole, Resources, WorkloadKey, WorkloadKind, format_cpu, format_memory};

/// How workload patches are written (HPA patches are always RFC 6902, see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PatchFormat {
    /// Kustomize strategic-merge patches: containers merged by name.
    #[default]
    Strategic,
    /// RFC 6902 JSON patches (needs the current objects for container indexes).
    Json6902,
}

/// The live objects patches are computed against, as JSON, keyed by kind, namespace and name.
#[derive(Debug, Clone, Default)]
pub struct CurrentObjects {
    objects: BTreeMap<(String, String, String), Value>,
}

impl CurrentObjects {
    /// Adds a typed k8s-openapi object (Deployment, CronJob, HorizontalPodAutoscaler, ...).
    pub fn insert<K>(&mut self, obj: &K)
    where
        K: kube::Resource<DynamicType = ()> + Serialize,
    {
        if let Ok(mut value) = serde_json::to_value(obj) {
            value["kind"] = json!(K::kind(&()));
            self.insert_value(value);
        }
    }

    /// Adds an object given as JSON; it needs `kind` and `metadata.name`.
    pub fn insert_value(&mut self, value: Value) {
        let kind = value["kind"].as_str().unwrap_or_default().to_string();
        let ns = value["metadata"]["namespace"].as_str().unwrap_or_default().to_string();
        let name = value["metadata"]["name"].as_str().unwrap_or_default().to_string();
        self.objects.insert((kind, ns, name), value);
    }

    pub fn get(&self, kind: &str, namespace: &str, name: &str) -> Option<&Value> {
        self.objects.get(&(kind.into(), namespace.into(), name.into()))
    }

    /// The objects as discovery saw them, rebuilt from the workloads: container names and
    /// which resources are set, in spec order (app containers, then init containers and
    /// sidecars), and each HPA's metrics in order. That is all a JSON patch addresses, so
    /// patches can be computed offline (snapshots) too; every container and metric index in
    /// a patch is guarded by a `test` op, so a patch applied to an object that has drifted
    /// since fails instead of resizing the wrong container.
    pub fn from_workloads(workloads: &[crate::model::Workload]) -> Self {
        use crate::model::HpaMetric;
        let mut out = CurrentObjects::default();
        for w in workloads {
            let Some((group, version, path)) = kind_paths(w.key.kind) else {
                continue;
            };
            let mut pod = json!({});
            for c in &w.containers {
                let list = container_list(c.role);
                if pod[list].is_null() {
                    pod[list] = json!([]);
                }
                let mut item = json!({ "name": c.name });
                if c.resources != Resources::default() {
                    item["resources"] = resources_value(&c.resources);
                }
                pod[list].as_array_mut().expect("made a list above").push(item);
            }
            let mut body = pod;
            for key in path.iter().rev() {
                body = json!({ *key: body });
            }
            body["apiVersion"] = json!(format!("{group}/{version}"));
            body["kind"] = json!(w.key.kind.as_str());
            body["metadata"] = json!({ "name": w.key.name, "namespace": w.key.namespace });
            out.insert_value(body);
            if let Some(h) = &w.hpa {
                let metrics: Vec<Value> = h
                    .metrics
                    .iter()
                    .map(|m| match m {
                        HpaMetric::Utilization { resource, target_percent } => {
                            utilization_metric(resource, *target_percent)
                        }
                        HpaMetric::AverageValue { resource, .. } => {
                            json!({ "type": "Resource", "resource": { "name": resource, "target": { "type": "AverageValue" } } })
                        }
                        HpaMetric::Other(kind) => json!({ "type": kind }),
                    })
                    .collect();
                out.insert_value(json!({
                    "apiVersion": "autoscaling/v2",
                    "kind": "HorizontalPodAutoscaler",
                    "metadata": { "name": h.name, "namespace": w.key.namespace },
                    "spec": { "minReplicas": h.min_replicas, "maxReplicas": h.max_replicas, "metrics": metrics },
                }));
            }
        }
        out
    }
}

/// What [`write_patches`] wrote and what it could not write.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PatchReport {
    /// Every file of the patch set (written, or already holding its content), each
    /// namespace's files with its `kustomization.yaml` last, the top `kustomization.yaml` last
    /// of all.
    pub files: Vec<PathBuf>,
    /// Workloads (or their HPA changes) left out, with the reason.
    pub skipped: Vec<(WorkloadKey, String)>,
    /// rightsizer's own files of an earlier run that no longer have a change: removed.
    pub removed: Vec<PathBuf>,
    /// Files in the way that rightsizer did not write (or that were edited since): left as
    /// they are, with the consequence.
    pub kept: Vec<(PathBuf, String)>,
    /// Values adjusted so that the patch is valid against the live object (a limit raised
    /// to fit the new request), per workload.
    pub adjusted: Vec<(WorkloadKey, String)>,
}

/// API group/version and the JSON path of the pod spec of a patchable kind (not bare pods).
pub(crate) fn kind_paths(kind: WorkloadKind) -> Option<(&'static str, &'static str, &'static [&'static str])> {
    const TEMPLATE: &[&str] = &["spec", "template", "spec"];
    match kind {
        WorkloadKind::Deployment | WorkloadKind::StatefulSet | WorkloadKind::DaemonSet => {
            Some(("apps", "v1", TEMPLATE))
        }
        WorkloadKind::Job => Some(("batch", "v1", TEMPLATE)),
        WorkloadKind::CronJob => Some(("batch", "v1", &["spec", "jobTemplate", "spec", "template", "spec"])),
        WorkloadKind::Pod => None,
    }
}

/// The pod spec list a container lives in: sidecars are init containers with `restartPolicy: Always`.
pub(crate) fn container_list(role: ContainerRole) -> &'static str {
    match role {
        ContainerRole::App => "containers",
        ContainerRole::Init | ContainerRole::Sidecar => "initContainers",
    }
}

/// The quantities to set, as Kubernetes spells them: (section, resource, value).
pub(crate) fn quantities(r: &Resources) -> Vec<(&'static str, &'static str, String)> {
    let mut out = Vec::new();
    let fields = [
        ("requests", "cpu", r.cpu_request.map(format_cpu)),
        ("requests", "memory", r.memory_request.map(format_memory)),
        ("limits", "cpu", r.cpu_limit.map(format_cpu)),
        ("limits", "memory", r.memory_limit.map(format_memory)),
    ];
    for (section, resource, value) in fields {
        if let Some(v) = value {
            out.push((section, resource, v));
        }
    }
    out
}

/// `{requests: {...}, limits: {...}}` for a container's recommended values.
fn resources_value(r: &Resources) -> Value {
    let mut out = json!({});
    for (section, resource, value) in quantities(r) {
        out[section][resource] = json!(value);
    }
    out
}

pub(crate) fn changed(containers: &[ContainerChange]) -> impl Iterator<Item = &ContainerChange> {
    containers.iter().filter(|c| c.recommended != Resources::default())
}

/// The strategic-merge patch of one workload.
pub fn strategic_patch(change: &WorkloadChange) -> Option<Value> {
    let (group, version, path) = kind_paths(change.key.kind)?;
    let mut spec = json!({});
    for c in changed(&change.containers) {
        let list = container_list(c.role);
        if spec[list].is_null() {
            spec[list] = json!([]);
        }
        let item = json!({ "name": c.name, "resources": resources_value(&c.recommended) });
        spec[list].as_array_mut().expect("made a list above").push(item);
    }
    let mut body = spec;
    for key in path.iter().rev() {
        body = json!({ *key: body });
    }
    body["apiVersion"] = json!(format!("{group}/{version}"));
    body["kind"] = json!(change.key.kind.as_str());
    body["metadata"] = json!({ "name": change.key.name, "namespace": change.key.namespace });
    Some(body)
}

fn pointer(parts: &[&str]) -> String {
    parts
        .iter()
        .map(|p| format!("/{}", p.replace('~', "~0").replace('/', "~1")))
        .collect()
}

/// The RFC 6902 patch of one workload's containers against its current object.
pub fn json_patch(change: &WorkloadChange, current: &Value) -> Result<Vec<Value>, String> {
    let (_, _, path) = kind_paths(change.key.kind).ok_or("bare pods are never patched")?;
    let mut pod = current;
    for key in path {
        pod = &pod[*key];
    }
    let mut ops = Vec::new();
    for c in changed(&change.containers) {
        let list = container_list(c.role);
        let index = pod[list]
            .as_array()
            .and_then(|items| items.iter().position(|i| i["name"] == c.name.as_str()))
            .ok_or_else(|| format!("container {} not found in the current object's {list}", c.name))?;
        let resources = &pod[list][index]["resources"];
        let index = index.to_string();
        let base: Vec<&str> = path.iter().copied().chain([list, index.as_str()]).collect();
        let at = |rest: &[&str]| pointer(&[&base[..], rest].concat());
        ops.push(json!({ "op": "test", "path": at(&["name"]), "value": c.name }));
        if !resources.is_object() {
            ops.push(json!({ "op": "add", "path": at(&["resources"]), "value": resources_value(&c.recommended) }));
            continue;
        }
        let wanted = resources_value(&c.recommended);
        for section in ["requests", "limits"] {
            let Some(values) = wanted[section].as_object() else {
                continue;
            };
            if !resources[section].is_object() {
                ops.push(json!({ "op": "add", "path": at(&["resources", section]), "value": values }));
                continue;
            }
            for (name, value) in values {
                let op = if resources[section][name].is_null() {
                    "add"
                } else {
                    "replace"
                };
                ops.push(json!({ "op": op, "path": at(&["resources", section, name]), "value": value }));
            }
        }
    }
    Ok(ops)
}

/// The RFC 6902 patch of an HPA; `current` is needed only for utilization targets.
pub fn hpa_patch(hpa: &HpaChange, current: Option<&Value>) -> Result<Vec<Value>, String> {
    let mut ops = Vec::new();
    if let Some(min) = hpa.min_replicas {
        // `minReplicas` is optional (defaults to 1): `add` sets it whether or not it is there.
        ops.push(json!({ "op": "add", "path": "/spec/minReplicas", "value": min }));
    }
    if let Some(max) = hpa.max_replicas {
        ops.push(json!({ "op": "replace", "path": "/spec/maxReplicas", "value": max }));
    }
    for (resource, target) in [("cpu", hpa.cpu_utilization), ("memory", hpa.memory_utilization)] {
        let Some(target) = target else { continue };
        let current = current.ok_or_else(|| {
            format!(
                "HPA {}: changing the {resource} utilization target needs the current HPA",
                hpa.name
            )
        })?;
        let Some(metrics) = current["spec"]["metrics"].as_array() else {
            if resource == "cpu" {
                // No metrics: autoscaling/v2 defaults to 80 % cpu; write that one metric explicitly.
                ops.push(json!({ "op": "add", "path": "/spec/metrics", "value": [utilization_metric("cpu", target)] }));
                continue;
            }
            return Err(format!("HPA {} has no {resource} utilization metric", hpa.name));
        };
        let index = metrics
            .iter()
            .position(|m| {
                m["type"] == "Resource"
                    && m["resource"]["name"] == resource
                    && m["resource"]["target"]["type"] == "Utilization"
            })
            .ok_or_else(|| format!("HPA {} has no {resource} utilization metric", hpa.name))?;
        let at = |rest: &str| format!("/spec/metrics/{index}/{rest}");
        ops.push(json!({ "op": "test", "path": at("type"), "value": "Resource" }));
        ops.push(json!({ "op": "test", "path": at("resource/name"), "value": resource }));
        ops.push(json!({ "op": "replace", "path": at("resource/target/averageUtilization"), "value": target }));
    }
    Ok(ops)
}

fn utilization_metric(resource: &str, target: u32) -> Value {
    json!({ "type": "Resource", "resource": { "name": resource, "target": { "type": "Utilization", "averageUtilization": target } } })
}

mod set;

pub use set::{MARKER, write_patches};
