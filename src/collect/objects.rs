//! Pure conversion of Kubernetes objects into the model: containers with their requests and
//! limits, replicas, HPAs, bare pods, the live pod -> workload map and the VPAs that already
//! manage a workload. Objects arrive as their slim views ([`slim`]): a list page is decoded
//! into them and converted object by object as it arrives, and typed k8s-openapi objects (the
//! demo data, tests) are read into the same views first, so every path reads objects the
//! same way.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::batch::v1::{CronJob, Job};
use kube::api::DynamicObject;

use super::filter::Skipped;
use super::history::Owners;
use super::slim::{self, Meta, PodSpec, Quantities};

use crate::model::{
    ContainerRole, ContainerSpec, Hpa, HpaMetric, Resources, Workload, WorkloadKey, WorkloadKind, parse_cpu,
    parse_memory,
};

/// Objects as generated (the demo data) or built by tests: the input of [`workloads`].
#[derive(Debug, Default, Clone)]
pub struct Objects {
    pub deployments: Vec<Deployment>,
    pub stateful_sets: Vec<StatefulSet>,
    pub daemon_sets: Vec<DaemonSet>,
    pub cron_jobs: Vec<CronJob>,
    pub jobs: Vec<Job>,
    pub hpas: Vec<HorizontalPodAutoscaler>,
}

fn resources(r: Option<&slim::Resources>, warn: &mut Vec<String>, who: &str) -> Resources {
    let mut out = Resources::default();
    let Some(r) = r else { return out };
    let mut get =
        |q: Option<&Quantities>, memory: bool, parse: fn(&str) -> Result<f64, crate::model::QuantityError>| {
            let q = q?;
            let q = if memory { q.memory.as_ref() } else { q.cpu.as_ref() }?;
            match parse(&q.0) {
                Ok(v) => Some(v),
                Err(e) => {
                    warn.push(format!("{who}: {e}"));
                    None
                }
            }
        };
    out.cpu_request = get(r.requests.as_ref(), false, parse_cpu);
    out.memory_request = get(r.requests.as_ref(), true, parse_memory);
    out.cpu_limit = get(r.limits.as_ref(), false, parse_cpu);
    out.memory_limit = get(r.limits.as_ref(), true, parse_memory);
    // Kubernetes defaults a missing request to the limit.
    out.cpu_request = out.cpu_request.or(out.cpu_limit);
    out.memory_request = out.memory_request.or(out.memory_limit);
    out
}

fn containers(spec: Option<&PodSpec>, key: &WorkloadKey, warn: &mut Vec<String>) -> Vec<ContainerSpec> {
    let Some(spec) = spec else { return Vec::new() };
    let convert = |c: &slim::Container, role: ContainerRole, warn: &mut Vec<String>| {
        let name = c.name.clone().unwrap_or_default();
        let resources = resources(c.resources.as_ref(), warn, &format!("{key}/{name}"));
        ContainerSpec { name, role, resources }
    };
    let mut out: Vec<ContainerSpec> = spec
        .containers
        .iter()
        .flatten()
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

fn workload(
    meta: Meta,
    kind: WorkloadKind,
    replicas: Option<u32>,
    spec: Option<&PodSpec>,
    warn: &mut Vec<String>,
) -> Workload {
    let key = WorkloadKey::new(meta.namespace.unwrap_or_default(), kind, meta.name.unwrap_or_default());
    let containers = containers(spec, &key, warn);
    Workload {
        key,
        replicas,
        containers,
        hpa: None,
        labels: meta.labels.unwrap_or_default(),
        annotations: meta.annotations.unwrap_or_default(),
    }
}

fn count(n: Option<i32>) -> Option<u32> {
    n.map(|n| n.max(0) as u32)
}

/// A workload converted from one listed object, with the warnings of its conversion
/// (unparseable quantities, naming the container).
pub type Converted = (Workload, Vec<String>);

fn converted(meta: Meta, kind: WorkloadKind, replicas: Option<u32>, spec: Option<&PodSpec>) -> Converted {
    let mut warn = Vec::new();
    let w = workload(meta, kind, replicas, spec, &mut warn);
    (w, warn)
}

fn template(t: Option<&slim::PodTemplate>) -> Option<&PodSpec> {
    t.and_then(|t| t.spec.as_ref())
}

pub fn deployment(d: slim::Deployment) -> Converted {
    controller(d, WorkloadKind::Deployment)
}

pub fn stateful_set(s: slim::StatefulSet) -> Converted {
    controller(s, WorkloadKind::StatefulSet)
}

fn controller(o: slim::Deployment, kind: WorkloadKind) -> Converted {
    let spec = o.spec.as_ref();
    let replicas = count(spec.and_then(|s| s.replicas)).or(Some(1));
    converted(
        o.metadata,
        kind,
        replicas,
        template(spec.and_then(|s| s.template.as_ref())),
    )
}

pub fn daemon_set(d: slim::DaemonSet) -> Converted {
    let replicas = d
        .status
        .as_ref()
        .map(|s| s.desired_number_scheduled.unwrap_or_default().max(0) as u32);
    let spec = d.spec.as_ref().and_then(|s| s.template.as_ref());
    converted(d.metadata, WorkloadKind::DaemonSet, replicas, template(spec))
}

pub fn cron_job(c: slim::CronJob) -> Converted {
    let job = c
        .spec
        .as_ref()
        .and_then(|s| s.job_template.as_ref())
        .and_then(|t| t.spec.as_ref());
    let parallelism = job.and_then(|j| j.parallelism);
    let pod = template(job.and_then(|j| j.template.as_ref()));
    converted(c.metadata, WorkloadKind::CronJob, count(parallelism).or(Some(1)), pod)
}

/// What discovery keeps of a Job: its controller (a CronJob's Jobs belong to it), or, for a
/// bare Job, the workload it is.
#[derive(Debug, Clone, PartialEq)]
pub enum ListedJob {
    Owned(Owned),
    Bare(Box<Converted>),
}

pub fn job(j: slim::Job) -> ListedJob {
    if let Some(owned) = owned(&j.metadata) {
        return ListedJob::Owned(owned);
    }
    let spec = j.spec.as_ref();
    let parallelism = spec.and_then(|s| s.parallelism);
    let pod = template(spec.and_then(|s| s.template.as_ref()));
    ListedJob::Bare(Box::new(converted(
        j.metadata,
        WorkloadKind::Job,
        count(parallelism).or(Some(1)),
        pod,
    )))
}

/// What discovery keeps of an HPA: the workload it targets and its right-sizing view.
#[derive(Debug, Clone, PartialEq)]
pub struct ListedHpa {
    name: String,
    target: WorkloadKey,
    hpa: Hpa,
}

/// An HPA that targets a kind rightsizer sizes; `None` for any other.
pub fn listed_hpa(h: HorizontalPodAutoscaler) -> Option<ListedHpa> {
    let spec = h.spec.as_ref()?;
    let kind = WorkloadKind::from_kind(&spec.scale_target_ref.kind)?;
    let target = WorkloadKey::new(
        h.metadata.namespace.clone().unwrap_or_default(),
        kind,
        spec.scale_target_ref.name.clone(),
    );
    Some(ListedHpa {
        hpa: hpa(&h),
        name: h.metadata.name.unwrap_or_default(),
        target,
    })
}

/// The five kinds discovery lists, in the order their workloads' warnings are reported.
const LISTED: [WorkloadKind; 5] = [
    WorkloadKind::Deployment,
    WorkloadKind::StatefulSet,
    WorkloadKind::DaemonSet,
    WorkloadKind::CronJob,
    WorkloadKind::Job,
];

/// The converted workload lists, gathered as they arrive: workloads and their warnings by
/// kind, the HPAs, and the controllers of the Jobs that are not workloads of their own.
#[derive(Debug, Default, Clone)]
pub struct Found {
    kinds: [(Vec<Workload>, Vec<String>); 5],
    hpas: Vec<ListedHpa>,
    job_owners: Vec<Owned>,
}

impl Found {
    /// Adds converted workloads of `kind` (one of the five listed kinds).
    pub fn add(&mut self, kind: WorkloadKind, converted: impl IntoIterator<Item = Converted>) {
        let i = LISTED.iter().position(|k| *k == kind).expect("a listed kind");
        let (workloads, warnings) = &mut self.kinds[i];
        for (w, warn) in converted {
            workloads.push(w);
            warnings.extend(warn);
        }
    }

    pub fn add_jobs(&mut self, jobs: impl IntoIterator<Item = ListedJob>) {
        for j in jobs {
            match j {
                ListedJob::Owned(o) => self.job_owners.push(o),
                ListedJob::Bare(c) => self.add(WorkloadKind::Job, [*c]),
            }
        }
    }

    pub fn add_hpas(&mut self, hpas: impl IntoIterator<Item = ListedHpa>) {
        self.hpas.extend(hpas);
    }

    /// The workloads sorted by key with HPAs attached to the workload they target, the
    /// warnings (conversion warnings by kind, then HPAs whose target was not found), and the
    /// controllers of the Jobs.
    pub fn finish(self) -> (Vec<Workload>, Vec<String>, Vec<Owned>) {
        let mut warn = Vec::new();
        let mut out = Vec::new();
        for (workloads, warnings) in self.kinds {
            out.extend(workloads);
            warn.extend(warnings);
        }
        out.sort_by(|a, b| a.key.cmp(&b.key));
        for h in self.hpas {
            match out.binary_search_by(|w| w.key.cmp(&h.target)) {
                Ok(i) => out[i].hpa = Some(h.hpa),
                Err(_) => warn.push(format!(
                    "HPA {}/{} targets {}, which was not found",
                    h.target.namespace, h.name, h.target
                )),
            }
        }
        (out, warn, self.job_owners)
    }
}

/// Converts typed objects into workloads sorted by key, with HPAs attached to the workload
/// they target, exactly as discovery converts listed pages. Bare Jobs only: Jobs owned by a
/// CronJob belong to it. Unparseable quantities become warnings naming the container, never
/// a failed run.
pub fn workloads(objects: &Objects) -> (Vec<Workload>, Vec<String>) {
    let mut found = Found::default();
    found.add(
        WorkloadKind::Deployment,
        objects.deployments.iter().map(|d| deployment(slim::from_typed(d))),
    );
    found.add(
        WorkloadKind::StatefulSet,
        objects.stateful_sets.iter().map(|s| stateful_set(slim::from_typed(s))),
    );
    found.add(
        WorkloadKind::DaemonSet,
        objects.daemon_sets.iter().map(|d| daemon_set(slim::from_typed(d))),
    );
    found.add(
        WorkloadKind::CronJob,
        objects.cron_jobs.iter().map(|c| cron_job(slim::from_typed(c))),
    );
    found.add_jobs(objects.jobs.iter().map(|j| job(slim::from_typed(j))));
    found.add_hpas(objects.hpas.iter().cloned().filter_map(listed_hpa));
    let (workloads, warnings, _) = found.finish();
    (workloads, warnings)
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

/// (namespace, name, controller kind, controller name).
pub type Owned = (String, String, String, String);

/// The controller of each live pod, ReplicaSet and Job, as the API reports it now.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct LiveOwners {
    pods: Vec<Owned>,
    replica_sets: Vec<Owned>,
    jobs: Vec<Owned>,
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

pub fn listed_pod(p: slim::Pod) -> ListedPod {
    let controller = p.metadata.controller();
    let sized = controller
        .as_ref()
        .is_some_and(|(kind, _)| matches!(kind.as_str(), "StatefulSet" | "DaemonSet" | "Job"));
    let namespace = p.metadata.namespace.clone().unwrap_or_default();
    let name = p.metadata.name.clone().unwrap_or_default();
    let alone = (!sized).then(|| Box::new(converted(p.metadata, WorkloadKind::Pod, Some(1), p.spec.as_ref())));
    ListedPod {
        namespace,
        name,
        controller,
        alone,
    }
}

/// What discovery keeps of a ReplicaSet: it only maps pods to their Deployment.
pub fn replica_set_owner(r: slim::ReplicaSet) -> Option<Owned> {
    owned(&r.metadata)
}

fn owned(meta: &Meta) -> Option<Owned> {
    let (kind, name) = meta.controller()?;
    Some((
        meta.namespace.clone().unwrap_or_default(),
        meta.name.clone().unwrap_or_default(),
        kind,
        name,
    ))
}

impl LiveOwners {
    /// From the listed pods and the controllers of the listed ReplicaSets and Jobs.
    pub fn new(pods: &[ListedPod], replica_sets: Vec<Owned>, jobs: Vec<Owned>) -> Self {
        LiveOwners {
            pods: pods
                .iter()
                .filter_map(|p| {
                    let (kind, name) = p.controller.clone()?;
                    Some((p.namespace.clone(), p.name.clone(), kind, name))
                })
                .collect(),
            replica_sets,
            jobs,
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

    fn pod(name: &str, owner: Option<(&str, &str)>) -> slim::Pod {
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
            bare.metadata.clone(),
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
        let live = LiveOwners::new(std::slice::from_ref(&sts), Vec::new(), Vec::new());
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
        let pod = |name: &str, owner: Option<(&str, &str)>| -> slim::Pod {
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
        let rs: slim::ReplicaSet = serde_json::from_value(json!({"metadata": {"name": "web-abc", "namespace": "shop",
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": "web", "uid": "w", "controller": true}]}}))
        .unwrap();
        let pods: Vec<ListedPod> = pods.into_iter().map(listed_pod).collect();
        let live = LiveOwners::new(&pods, replica_set_owner(rs).into_iter().collect(), Vec::new());
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

    /// A Deployment as the API server returns it: managedFields, status, probes, env,
    /// volumes, an extended resource, a native sidecar and an init container.
    fn full_deployment() -> Deployment {
        let container = |name: &str, cpu: &str, extra: serde_json::Value| {
            let mut c = json!({"name": name, "image": format!("{name}:1.2"), "imagePullPolicy": "IfNotPresent",
                "env": [{"name": "A", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}],
                "ports": [{"containerPort": 8080, "protocol": "TCP"}],
                "readinessProbe": {"httpGet": {"path": "/ready", "port": 8080}, "periodSeconds": 5},
                "volumeMounts": [{"name": "data", "mountPath": "/data"}],
                "resources": {"requests": {"cpu": cpu, "memory": "256Mi", "nvidia.com/gpu": "1"},
                    "limits": {"memory": "512Mi", "nvidia.com/gpu": "1"}},
                "terminationMessagePath": "/dev/termination-log"});
            c.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
            c
        };
        serde_json::from_value(json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "shop", "uid": "0b7c", "resourceVersion": "812",
                "generation": 4, "creationTimestamp": "2026-10-01T00:00:00Z",
                "labels": {"app": "web"},
                "annotations": {"deployment.kubernetes.io/revision": "4", "rightsizer.dev/cpu-buffer": "1.2",
                    "kubectl.kubernetes.io/last-applied-configuration": "{\"apiVersion\":\"apps/v1\"}"},
                "managedFields": [{"manager": "kubectl", "operation": "Apply", "apiVersion": "apps/v1",
                    "time": "2026-10-01T00:00:00Z", "fieldsType": "FieldsV1",
                    "fieldsV1": {"f:spec": {"f:replicas": {}, "f:template": {"f:spec": {}}}}}]},
            "spec": {"replicas": 3, "revisionHistoryLimit": 10,
                "selector": {"matchLabels": {"app": "web"}},
                "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": 0}},
                "template": {"metadata": {"labels": {"app": "web"}},
                    "spec": {"containers": [container("app", "250m", json!({})), container("bad", "lots", json!({}))],
                        "initContainers": [container("proxy", "50m", json!({"restartPolicy": "Always"})),
                            container("migrate", "1", json!({}))],
                        "volumes": [{"name": "data", "emptyDir": {}}], "nodeSelector": {"pool": "a"},
                        "tolerations": [{"key": "k", "operator": "Exists"}], "dnsPolicy": "ClusterFirst"}}},
            "status": {"replicas": 3, "readyReplicas": 3, "observedGeneration": 4,
                "conditions": [{"type": "Available", "status": "True", "lastUpdateTime": "2026-10-01T00:00:00Z"}]},
        }))
        .unwrap()
    }

    /// The workload `full_deployment` is, as the conversion of typed objects gave it before
    /// list pages were read as slim views.
    fn full_deployment_workload() -> (Workload, Vec<String>) {
        let key = WorkloadKey::new("shop", WorkloadKind::Deployment, "web");
        let container = |name: &str, role, cpu| ContainerSpec {
            name: name.into(),
            role,
            resources: Resources {
                cpu_request: cpu,
                memory_request: Some(256.0 * 1024.0 * 1024.0),
                cpu_limit: None,
                memory_limit: Some(512.0 * 1024.0 * 1024.0),
            },
        };
        let workload = Workload {
            replicas: Some(3),
            containers: vec![
                container("app", ContainerRole::App, Some(0.25)),
                container("bad", ContainerRole::App, None),
                container("proxy", ContainerRole::Sidecar, Some(0.05)),
                container("migrate", ContainerRole::Init, Some(1.0)),
            ],
            hpa: None,
            labels: [("app".to_string(), "web".to_string())].into(),
            annotations: [
                ("deployment.kubernetes.io/revision", "4"),
                ("rightsizer.dev/cpu-buffer", "1.2"),
                (
                    "kubectl.kubernetes.io/last-applied-configuration",
                    "{\"apiVersion\":\"apps/v1\"}",
                ),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
            key,
        };
        let warning = format!("shop/Deployment/web/bad: {}", parse_cpu("lots").unwrap_err());
        (workload, vec![warning])
    }

    #[test]
    fn a_full_api_object_decodes_to_the_same_workload_as_its_typed_form() {
        let typed = full_deployment();
        let expected = full_deployment_workload();
        // The typed path (demo data) ...
        let objects = Objects {
            deployments: vec![typed.clone()],
            ..Objects::default()
        };
        assert_eq!(workloads(&objects), (vec![expected.0.clone()], expected.1.clone()));
        // ... and the JSON an API server sends, decoded into the slim view.
        let body = serde_json::to_vec(&typed).unwrap();
        let slim: slim::Deployment = serde_json::from_slice(&body).unwrap();
        assert_eq!(deployment(slim), expected);

        // The pod of that Deployment, bare, is the same workload of kind Pod.
        let mut pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": serde_json::to_value(&typed.metadata).unwrap(),
            "spec": serde_json::to_value(typed.spec.as_ref().unwrap().template.spec.as_ref().unwrap()).unwrap(),
            "status": {"phase": "Running", "podIP": "10.0.0.1", "containerStatuses": [{"name": "app", "ready": true,
                "restartCount": 0, "image": "app:1.2", "imageID": "x", "state": {"running": {}}}]}});
        pod["metadata"]["ownerReferences"] = json!([{"apiVersion": "v1", "kind": "Node", "name": "n1", "uid": "n"}]);
        let typed_pod: k8s_openapi::api::core::v1::Pod = serde_json::from_value(pod).unwrap();
        let listed = listed_pod(serde_json::from_slice(&serde_json::to_vec(&typed_pod).unwrap()).unwrap());
        let (mut w, warn) = expected;
        w.key = WorkloadKey::new("shop", WorkloadKind::Pod, "web");
        w.replicas = Some(1);
        let warn: Vec<String> = warn.iter().map(|m| m.replace("/Deployment/", "/Pod/")).collect();
        let mut got_warn = Vec::new();
        assert_eq!(bare_pods(&[listed], &Owners::default(), &mut got_warn), [w]);
        assert_eq!(got_warn, warn);
    }

    #[test]
    fn every_listed_kind_reads_its_replicas_and_pod_template() {
        let template = json!({"spec": {"containers": [{"name": "c", "resources": {"limits": {"cpu": "1"}}}]}});
        let meta = |name: &str| json!({"name": name, "namespace": "ns"});
        let objects = Objects {
            deployments: vec![
                serde_json::from_value(json!({"metadata": meta("d"), "spec": {"template": template,
                "selector": {}}}))
                .unwrap(),
            ],
            stateful_sets: vec![
                serde_json::from_value(json!({"metadata": meta("s"), "spec": {"replicas": -2,
                "template": template, "selector": {}, "serviceName": "s"}}))
                .unwrap(),
            ],
            daemon_sets: vec![
                serde_json::from_value(json!({"metadata": meta("ds"), "spec": {"template": template,
                "selector": {}}, "status": {"desiredNumberScheduled": 7, "currentNumberScheduled": 7,
                "numberMisscheduled": 0, "numberReady": 7}}))
                .unwrap(),
            ],
            cron_jobs: vec![
                serde_json::from_value(json!({"metadata": meta("cj"), "spec": {"schedule": "* * * * *",
                "jobTemplate": {"spec": {"parallelism": 4, "template": template}}}}))
                .unwrap(),
            ],
            jobs: vec![
                serde_json::from_value(json!({"metadata": meta("j"), "spec": {"template": template}})).unwrap(),
                serde_json::from_value(
                    json!({"metadata": {"name": "cj-1", "namespace": "ns", "ownerReferences":
                    [{"apiVersion": "batch/v1", "kind": "CronJob", "name": "cj", "uid": "u", "controller": true}]},
                    "spec": {"template": template}}),
                )
                .unwrap(),
            ],
            hpas: vec![
                serde_json::from_value(json!({"metadata": meta("h"), "spec": {"maxReplicas": 5,
                "scaleTargetRef": {"kind": "StatefulSet", "name": "s"}}}))
                .unwrap(),
            ],
        };
        let (got, warn) = workloads(&objects);
        assert!(warn.is_empty(), "{warn:?}");
        let summary: Vec<(String, Option<u32>, Option<f64>)> = got
            .iter()
            .map(|w| (w.key.to_string(), w.replicas, w.containers[0].resources.cpu_request))
            .collect();
        assert_eq!(
            summary,
            [
                ("ns/Deployment/d".to_string(), Some(1), Some(1.0)),
                ("ns/StatefulSet/s".to_string(), Some(0), Some(1.0)),
                ("ns/DaemonSet/ds".to_string(), Some(7), Some(1.0)),
                ("ns/CronJob/cj".to_string(), Some(4), Some(1.0)),
                ("ns/Job/j".to_string(), Some(1), Some(1.0)),
            ]
        );
        assert_eq!(got[1].hpa.as_ref().map(|h| h.max_replicas), Some(5));
        let owned = job(slim::from_typed(&objects.jobs[1]));
        assert_eq!(
            owned,
            ListedJob::Owned(("ns".into(), "cj-1".into(), "CronJob".into(), "cj".into()))
        );
    }
}
