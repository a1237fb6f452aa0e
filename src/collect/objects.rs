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
mod tests;
