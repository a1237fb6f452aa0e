//! Pure conversion of Kubernetes objects (k8s-openapi types) into the model: containers with
//! their requests and limits, replicas, and HPAs. Shared by live discovery, snapshots and the
//! demo data, so every path reads objects the same way.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::{Container, PodSpec, ResourceRequirements};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

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
