//! Pure conversion of Kubernetes objects (k8s-openapi types) into the model: containers with
//! their requests and limits, replicas, HPAs, bare pods, the live pod -> workload map and the
//! VPAs that already manage a workload. Shared by live discovery, snapshots and the demo
//! data, so every path reads objects the same way.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::{Container, Pod, PodSpec, ResourceRequirements};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::api::DynamicObject;

use super::filter::Skipped;
use super::history::Owners;

use crate::model::{
    ContainerRole, ContainerSpec, Hpa, HpaMetric, Resources, Workload, WorkloadKey, WorkloadKind, parse_cpu,
    parse_memory,
};

/// Objects as listed from the API (or generated): the input of `workloads`.
#[derive(Debug, Default, Clone)]
pub struct Objects {
    pub deployments: Vec<Deployment>,
    pub stateful_sets: Vec<StatefulSet>,
    pub daemon_sets: Vec<DaemonSet>,
    pub cron_jobs: Vec<CronJob>,
    pub jobs: Vec<Job>,
    pub hpas: Vec<HorizontalPodAutoscaler>,
}

fn resources(r: Option<&ResourceRequirements>, warn: &mut Vec<String>, who: &str) -> Resources {
    let mut out = Resources::default();
    let Some(r) = r else { return out };
    let mut get = |map: Option<&BTreeMap<String, k8s_openapi::apimachinery::pkg::api::resource::Quantity>>,
                   name: &str,
                   parse: fn(&str) -> Result<f64, crate::model::QuantityError>| {
        let q = map?.get(name)?;
        match parse(&q.0) {
            Ok(v) => Some(v),
            Err(e) => {
                warn.push(format!("{who}: {e}"));
                None
            }
        }
    };
    out.cpu_request = get(r.requests.as_ref(), "cpu", parse_cpu);
    out.memory_request = get(r.requests.as_ref(), "memory", parse_memory);
    out.cpu_limit = get(r.limits.as_ref(), "cpu", parse_cpu);
    out.memory_limit = get(r.limits.as_ref(), "memory", parse_memory);
    // Kubernetes defaults a missing request to the limit.
    out.cpu_request = out.cpu_request.or(out.cpu_limit);
    out.memory_request = out.memory_request.or(out.memory_limit);
    out
}

fn containers(spec: Option<&PodSpec>, key: &WorkloadKey, warn: &mut Vec<String>) -> Vec<ContainerSpec> {
    let Some(spec) = spec else { return Vec::new() };
    let convert = |c: &Container, role: ContainerRole, warn: &mut Vec<String>| ContainerSpec {
        name: c.name.clone(),
        role,
        resources: resources(c.resources.as_ref(), warn, &format!("{key}/{}", c.name)),
    };
    let mut out: Vec<ContainerSpec> = spec
        .containers
        .iter()
        .map(|c| convert(c, ContainerRole::App, warn))
        .collect();
    for c in spec.init_containers.iter().flatten() {
        // Native sidecars are init containers that keep running (`restartPolicy: Always`).
        let role = if c.restart_policy.as_deref() == Some("Always") {
            ContainerRole::Sidecar
        } else {
            ContainerRole::Init
        };
        out.push(convert(c, role, warn));
    }
    out
}

fn key(meta: &ObjectMeta, kind: WorkloadKind) -> WorkloadKey {
    WorkloadKey::new(
        meta.namespace.clone().unwrap_or_default(),
        kind,
        meta.name.clone().unwrap_or_default(),
    )
}

fn workload(
    meta: &ObjectMeta,
    kind: WorkloadKind,
    replicas: Option<u32>,
    spec: Option<&PodSpec>,
    warn: &mut Vec<String>,
) -> Workload {
    let key = key(meta, kind);
    let containers = containers(spec, &key, warn);
    Workload {
        key,
        replicas,
        containers,
        hpa: None,
        labels: meta.labels.clone().unwrap_or_default(),
        annotations: meta.annotations.clone().unwrap_or_default(),
    }
}

fn count(n: Option<i32>) -> Option<u32> {
    n.map(|n| n.max(0) as u32)
}

/// Converts discovered objects into workloads sorted by key, with HPAs attached to the
/// workload they target. Bare Jobs only: Jobs owned by a CronJob belong to it. Unparseable
/// quantities become warnings naming the container, never a failed run.
pub fn workloads(objects: &Objects) -> (Vec<Workload>, Vec<String>) {
    let mut warn = Vec::new();
    let mut out = Vec::new();
    for d in &objects.deployments {
        let replicas = count(d.spec.as_ref().and_then(|s| s.replicas)).or(Some(1));
        out.push(workload(
            &d.metadata,
            WorkloadKind::Deployment,
            replicas,
            d.spec.as_ref().and_then(|s| s.template.spec.as_ref()),
            &mut warn,
        ));
    }
    for s in &objects.stateful_sets {
        let replicas = count(s.spec.as_ref().and_then(|s| s.replicas)).or(Some(1));
        out.push(workload(
            &s.metadata,
            WorkloadKind::StatefulSet,
            replicas,
            s.spec.as_ref().and_then(|s| s.template.spec.as_ref()),
            &mut warn,
        ));
    }
    for d in &objects.daemon_sets {
        let replicas = d.status.as_ref().map(|s| s.desired_number_scheduled.max(0) as u32);
        out.push(workload(
            &d.metadata,
            WorkloadKind::DaemonSet,
            replicas,
            d.spec.as_ref().and_then(|s| s.template.spec.as_ref()),
            &mut warn,
        ));
    }
    for c in &objects.cron_jobs {
        let pod = c
            .spec
            .as_ref()
            .and_then(|s| s.job_template.spec.as_ref())
            .and_then(|j| j.template.spec.as_ref());
        let parallelism = c
            .spec
            .as_ref()
            .and_then(|s| s.job_template.spec.as_ref())
            .and_then(|j| j.parallelism);
        out.push(workload(
            &c.metadata,
            WorkloadKind::CronJob,
            count(parallelism).or(Some(1)),
            pod,
            &mut warn,
        ));
    }
    for j in &objects.jobs {
        let owned = j
            .metadata
            .owner_references
            .iter()
            .flatten()
            .any(|o| o.controller == Some(true));
        if owned {
            continue;
        }
        let parallelism = j.spec.as_ref().and_then(|s| s.parallelism);
        out.push(workload(
            &j.metadata,
            WorkloadKind::Job,
            count(parallelism).or(Some(1)),
            j.spec.as_ref().and_then(|s| s.template.spec.as_ref()),
            &mut warn,
        ));
    }
    out.sort_by(|a, b| a.key.cmp(&b.key));
    for h in &objects.hpas {
        let Some(spec) = &h.spec else { continue };
        let Some(kind) = WorkloadKind::from_kind(&spec.scale_target_ref.kind) else {
            continue;
        };
        let target = WorkloadKey::new(
            h.metadata.namespace.clone().unwrap_or_default(),
            kind,
            spec.scale_target_ref.name.clone(),
        );
        match out.binary_search_by(|w| w.key.cmp(&target)) {
            Ok(i) => out[i].hpa = Some(hpa(h)),
            Err(_) => warn.push(format!(
                "HPA {}/{} targets {target}, which was not found",
                target.namespace,
                h.metadata.name.as_deref().unwrap_or("")
            )),
        }
    }
    (out, warn)
}

/// The right-sizing view of an `autoscaling/v2` HPA.
pub fn hpa(h: &HorizontalPodAutoscaler) -> Hpa {
    let spec = h.spec.as_ref();
    let metrics = spec
        .and_then(|s| s.metrics.as_ref())
        .map(|ms| {
            ms.iter()
                .map(|m| match (&m.type_[..], &m.resource) {
                    ("Resource", Some(r)) => match (
                        &r.target.type_[..],
                        r.target.average_utilization,
                        &r.target.average_value,
                    ) {
                        ("Utilization", Some(u), _) => HpaMetric::Utilization {
                            resource: r.name.clone(),
                            target_percent: u.max(0) as u32,
                        },
                        ("AverageValue", _, Some(v)) => {
                            let parsed = if r.name == "cpu" {
                                parse_cpu(&v.0)
                            } else {
                                parse_memory(&v.0)
                            };
                            HpaMetric::AverageValue {
                                resource: r.name.clone(),
                                value: parsed.unwrap_or(f64::NAN),
                            }
                        }
                        (t, _, _) => HpaMetric::Other(format!("Resource/{}/{t}", r.name)),
                    },
                    (t, _) => HpaMetric::Other(t.to_string()),
                })
                .collect()
        })
        // autoscaling/v2 defaults to 80 % average CPU utilization when no metric is given.
        .unwrap_or_else(|| {
            vec![HpaMetric::Utilization {
                resource: "cpu".into(),
                target_percent: 80,
            }]
        });
    Hpa {
        name: h.metadata.name.clone().unwrap_or_default(),
        min_replicas: spec.and_then(|s| s.min_replicas).unwrap_or(1).max(0) as u32,
        max_replicas: spec.map(|s| s.max_replicas).unwrap_or(1).max(0) as u32,
        current_replicas: count(h.status.as_ref().and_then(|s| s.current_replicas)),
        desired_replicas: h.status.as_ref().map(|s| s.desired_replicas.max(0) as u32),
        metrics,
    }
}

/// What discovery found: the selected workloads, the mode of each active VPA by the workload
/// it manages, the live pod owners (merged into the Prometheus-side owner map), the workloads
/// skipped on purpose and the warnings of the run.
#[derive(Debug, Default, Clone)]
pub struct Discovered {
    pub workloads: Vec<Workload>,
    /// Workloads a VPA in an active mode (anything but `Off`) already sizes, with the mode.
    pub vpa: BTreeMap<WorkloadKey, String>,
    pub owners: LiveOwners,
    pub skipped: Vec<Skipped>,
    pub warnings: Vec<String>,
}

type Owned = (String, String, String, String);

/// The controller of each live pod, ReplicaSet and Job, as the API reports it now.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct LiveOwners {
    pods: Vec<Owned>,
    replica_sets: Vec<Owned>,
    jobs: Vec<Owned>,
}

fn controller(meta: &ObjectMeta) -> Option<&OwnerReference> {
    meta.owner_references
        .iter()
        .flatten()
        .find(|o| o.controller == Some(true))
}

/// What discovery keeps of a listed pod, made from each page as it arrives so a large
/// cluster's pods are never all held as typed objects (a k8s-openapi `Pod` is ~2 KB before
/// any data; at 7,000 pods the lists were the run's peak heap): its name, its controller,
/// and, when it may turn out to be a workload of its own (no controller, a ReplicaSet that
/// may be bare, a node's static pod), that workload as [`bare_pods`] would build it, with
/// the warnings its conversion gave. Pods of a StatefulSet, DaemonSet or Job always belong to
/// that workload and keep nothing more.
#[derive(Debug, Clone, PartialEq)]
pub struct ListedPod {
    pub namespace: String,
    pub name: String,
    /// The controller's (kind, name).
    pub controller: Option<(String, String)>,
    alone: Option<Box<(Workload, Vec<String>)>>,
}

pub fn listed_pod(p: Pod) -> ListedPod {
    let controller = controller(&p.metadata).map(|c| (c.kind.clone(), c.name.clone()));
    let sized = controller
        .as_ref()
        .is_some_and(|(kind, _)| matches!(kind.as_str(), "StatefulSet" | "DaemonSet" | "Job"));
    let alone = (!sized).then(|| {
        let mut warn = Vec::new();
        let w = workload(&p.metadata, WorkloadKind::Pod, Some(1), p.spec.as_ref(), &mut warn);
        Box::new((w, warn))
    });
    ListedPod {
        namespace: p.metadata.namespace.unwrap_or_default(),
        name: p.metadata.name.unwrap_or_default(),
        controller,
        alone,
    }
}

/// What discovery keeps of a ReplicaSet: it only maps pods to their Deployment.
pub fn trim_replica_set(mut r: ReplicaSet) -> ReplicaSet {
    ReplicaSet {
        metadata: ObjectMeta {
            name: r.metadata.name.take(),
            namespace: r.metadata.namespace.take(),
            owner_references: r.metadata.owner_references.take(),
            ..ObjectMeta::default()
        },
        ..ReplicaSet::default()
    }
}

fn owned(meta: &ObjectMeta) -> Option<Owned> {
    let c = controller(meta)?;
    Some((
        meta.namespace.clone().unwrap_or_default(),
        meta.name.clone().unwrap_or_default(),
        c.kind.clone(),
        c.name.clone(),
    ))
}

impl LiveOwners {
    pub fn from_objects(pods: &[ListedPod], replica_sets: &[ReplicaSet], jobs: &[Job]) -> Self {
        LiveOwners {
            pods: pods
                .iter()
                .filter_map(|p| {
                    let (kind, name) = p.controller.clone()?;
                    Some((p.namespace.clone(), p.name.clone(), kind, name))
                })
                .collect(),
            replica_sets: replica_sets.iter().filter_map(|r| owned(&r.metadata)).collect(),
            jobs: jobs.iter().filter_map(|j| owned(&j.metadata)).collect(),
        }
    }

    /// Adds the live owners to `owners` (e.g. the map read from kube-state-metrics): the live
    /// answer wins where both know a pod.
    pub fn fill(&self, owners: &mut Owners) {
        for (ns, pod, kind, name) in &self.pods {
            owners.insert_pod(ns, pod, kind, name);
        }
        for (ns, rs, kind, name) in &self.replica_sets {
            owners.insert_replica_set(ns, rs, kind, name);
        }
        for (ns, job, kind, name) in &self.jobs {
            owners.insert_job(ns, job, kind, name);
        }
    }

    /// The live owners alone.
    pub fn owners(&self) -> Owners {
        let mut owners = Owners::default();
        self.fill(&mut owners);
        owners
    }

    /// Live pods that have a controller.
    pub fn pods(&self) -> usize {
        self.pods.len()
    }
}

/// Pods whose owner chain ends in no workload rightsizer sizes (no controller, a bare
/// ReplicaSet, a Node for static pods, an operator's custom resource): each is a workload of
/// kind `Pod`, exactly as `Owners::resolve` attributes their history.
pub fn bare_pods(pods: &[ListedPod], owners: &Owners, warn: &mut Vec<String>) -> Vec<Workload> {
    pods.iter()
        .filter(|p| owners.resolve(&p.namespace, &p.name).kind == WorkloadKind::Pod)
        .filter_map(|p| {
            let (w, warnings) = p.alone.as_deref()?;
            warn.extend(warnings.iter().cloned());
            Some(w.clone())
        })
        .collect()
}

/// `spec.updatePolicy.updateMode` when unset: `Auto` in `autoscaling.k8s.io/v1` (which VPA
/// 1.4+ runs as `Recreate`).
const VPA_DEFAULT_MODE: &str = "Auto";

/// The workloads VPAs manage in a mode that changes pods, with the mode. `Off` only
/// recommends; `Initial` sets requests when pods are created; `Recreate`, `Auto` (deprecated,
/// same as `Recreate`) and `InPlaceOrRecreate` also update running pods (VPA docs,
/// quickstart.md "several modes"). A mode we do not know is reported as active: a VPA that
/// might write requests must not be fought silently.
pub fn vpa_modes(vpas: &[DynamicObject]) -> BTreeMap<WorkloadKey, String> {
    let mut out = BTreeMap::new();
    for v in vpas {
        let spec = &v.data["spec"];
        let mode = spec["updatePolicy"]["updateMode"].as_str().unwrap_or(VPA_DEFAULT_MODE);
        if mode == "Off" {
            continue;
        }
        let Some(kind) = spec["targetRef"]["kind"].as_str().and_then(WorkloadKind::from_kind) else {
            continue;
        };
        let Some(name) = spec["targetRef"]["name"].as_str() else {
            continue;
        };
        let ns = v.metadata.namespace.clone().unwrap_or_default();
        out.insert(WorkloadKey::new(ns, kind, name), mode.to_string());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn vpa(ns: &str, target: &str, mode: Option<&str>) -> DynamicObject {
        let mut spec = json!({"targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": target}});
        if let Some(m) = mode {
            spec["updatePolicy"] = json!({"updateMode": m});
        }
        serde_json::from_value(json!({
            "apiVersion": "autoscaling.k8s.io/v1", "kind": "VerticalPodAutoscaler",
            "metadata": {"name": format!("{target}-vpa"), "namespace": ns}, "spec": spec,
        }))
        .unwrap()
    }

    fn pod(name: &str, owner: Option<(&str, &str)>) -> Pod {
        let owners = owner.map(
            |(kind, n)| json!([{"apiVersion": "apps/v1", "kind": kind, "name": n, "uid": "u", "controller": true}]),
        );
        serde_json::from_value(json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": "shop", "ownerReferences": owners,
                "labels": {"app": "x"}, "annotations": {"rightsizer.dev/cpu-buffer": "1.3"},
                "managedFields": [{"manager": "kubelet", "operation": "Update"}]},
            "spec": {
                "containers": [{"name": "app", "image": "app:1", "env": [{"name": "A", "value": "b"}],
                    "resources": {"requests": {"cpu": "250m", "memory": "256Mi"}}}],
                "initContainers": [{"name": "proxy", "image": "envoy", "restartPolicy": "Always",
                    "resources": {"requests": {"cpu": "50m", "memory": "lots"}}}],
                "nodeName": "node-1", "volumes": [{"name": "data", "emptyDir": {}}]},
            "status": {"phase": "Running", "podIP": "10.0.0.1"},
        }))
        .unwrap()
    }

    #[test]
    fn listed_pods_keep_what_discovery_reads() {
        let bare = pod("lone", None);
        let mut warn = Vec::new();
        let direct = workload(
            &bare.metadata,
            WorkloadKind::Pod,
            Some(1),
            bare.spec.as_ref(),
            &mut warn,
        );
        assert_eq!(warn.len(), 1, "{warn:?}");
        let listed = listed_pod(bare);
        let mut got_warn = Vec::new();
        let workloads = bare_pods(std::slice::from_ref(&listed), &Owners::default(), &mut got_warn);
        assert_eq!(workloads, [direct]);
        assert_eq!(got_warn, warn, "conversion warnings are kept for bare pods");
        assert_eq!(workloads[0].containers.len(), 2);
        assert_eq!(workloads[0].annotations.len(), 1);

        // Pods of a ReplicaSet might be bare (a ReplicaSet without a Deployment): kept.
        let rs_pod = listed_pod(pod("web-1", Some(("ReplicaSet", "web-a"))));
        assert!(rs_pod.alone.is_some());
        // Pods of a StatefulSet never are: name, namespace and owner only, and no warning.
        let sts = listed_pod(pod("db-0", Some(("StatefulSet", "db"))));
        assert!(sts.alone.is_none());
        assert_eq!(sts.controller, Some(("StatefulSet".into(), "db".into())));
        let live = LiveOwners::from_objects(std::slice::from_ref(&sts), &[], &[]);
        assert_eq!(
            live.pods,
            [("shop".into(), "db-0".into(), "StatefulSet".into(), "db".into())]
        );
        let mut none = Vec::new();
        assert!(bare_pods(&[sts], &Owners::default(), &mut none).is_empty() && none.is_empty());
    }

    #[test]
    fn vpa_modes_keep_only_modes_that_change_pods() {
        let vpas = [
            vpa("shop", "a", Some("Auto")),
            vpa("shop", "b", Some("Off")),
            vpa("shop", "c", Some("Initial")),
            vpa("shop", "d", Some("InPlaceOrRecreate")),
            vpa("shop", "e", None),
            vpa("shop", "f", Some("Recreate")),
        ];
        let modes = vpa_modes(&vpas);
        let got: Vec<(&str, &str)> = modes.iter().map(|(k, m)| (k.name.as_str(), m.as_str())).collect();
        assert_eq!(
            got,
            [
                ("a", "Auto"),
                ("c", "Initial"),
                ("d", "InPlaceOrRecreate"),
                ("e", "Auto"),
                ("f", "Recreate")
            ]
        );
    }

    #[test]
    fn bare_pods_are_pods_without_a_sized_controller() {
        let pod = |name: &str, owner: Option<(&str, &str)>| -> Pod {
            let mut meta = json!({"name": name, "namespace": "shop"});
            if let Some((kind, n)) = owner {
                meta["ownerReferences"] =
                    json!([{"apiVersion": "v1", "kind": kind, "name": n, "uid": "u", "controller": true}]);
            }
            serde_json::from_value(json!({"metadata": meta, "spec": {"containers": [{"name": "app"}]}})).unwrap()
        };
        let pods = [
            pod("debug", None),
            pod("web-1", Some(("ReplicaSet", "web-abc"))),
            pod("static-node1", Some(("Node", "node1"))),
            pod("db-0", Some(("StatefulSet", "db"))),
        ];
        let rs: ReplicaSet = serde_json::from_value(json!({"metadata": {"name": "web-abc", "namespace": "shop",
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": "web", "uid": "w", "controller": true}]}}))
        .unwrap();
        let pods: Vec<ListedPod> = pods.into_iter().map(listed_pod).collect();
        let live = LiveOwners::from_objects(&pods, &[rs], &[]);
        let mut warn = Vec::new();
        let bare: Vec<String> = bare_pods(&pods, &live.owners(), &mut warn)
            .into_iter()
            .map(|w| w.key.to_string())
            .collect();
        assert_eq!(bare, ["shop/Pod/debug", "shop/Pod/static-node1"]);
        assert_eq!(
            live.owners().resolve("shop", "web-1"),
            WorkloadKey::new("shop", WorkloadKind::Deployment, "web")
        );
    }
}
