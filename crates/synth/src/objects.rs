//! The Kubernetes objects that match the generated history, as they stand at `end`: the
//! workloads with their ReplicaSets and Jobs (old ReplicaSets kept with 0 replicas, only the
//! last `JOB_HISTORY` Jobs of a CronJob kept), the pods alive at `end`, HPAs and the
//! `metrics.k8s.io` PodMetrics of the live pods. Names, uids, labels, owner references and
//! resources are the ones the series carry. Objects are written as JSON and deserialized into
//! the k8s-openapi types, so each one is also checked against the API schema's shape.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::{Namespace, Pod};
use serde_json::{Value, json};

use rightsizer::model::{WorkloadKind, format_cpu, format_memory};

use super::openmetrics::{cid, image, node_name};
use super::patterns::Sample;
use super::plan::{PodOwner, PodPlan, WorkloadPlan};
use super::rng::{hash_str, suffix, uuid};
use super::spec::{ClusterSpec, ContainerProfile, DAY, HOUR, WorkloadSpec};

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Objects {
    pub namespaces: Vec<Namespace>,
    pub deployments: Vec<Deployment>,
    pub replica_sets: Vec<ReplicaSet>,
    pub stateful_sets: Vec<StatefulSet>,
    pub daemon_sets: Vec<DaemonSet>,
    pub cron_jobs: Vec<CronJob>,
    pub jobs: Vec<Job>,
    /// Pods alive at `end` only (finished Job pods are gone, as after pod garbage collection).
    pub pods: Vec<Pod>,
    /// `autoscaling/v2`.
    pub hpas: Vec<HorizontalPodAutoscaler>,
    /// `metrics.k8s.io/v1beta1` PodMetrics of the live pods at `end`.
    pub pod_metrics: Vec<Value>,
}

/// RFC 3339 (`2024-06-01T12:00:00Z`).
pub fn rfc3339(t: i64) -> String {
    k8s_openapi::jiff::Timestamp::from_second(t)
        .map(|ts| ts.to_string())
        .unwrap_or_default()
}

fn typed<T: serde::de::DeserializeOwned>(v: Value) -> T {
    match serde_json::from_value(v) {
        Ok(t) => t,
        Err(e) => panic!("generator built an object that does not fit its type: {e}"),
    }
}

fn meta(ns: &str, name: &str, uid: &str, created: i64, labels: &Value) -> Value {
    json!({"name": name, "namespace": ns, "uid": uid, "creationTimestamp": rfc3339(created), "labels": labels})
}

fn owner(api: &str, kind: &str, name: &str, uid: &str) -> Value {
    json!([{"apiVersion": api, "kind": kind, "name": name, "uid": uid, "controller": true, "blockOwnerDeletion": true}])
}

fn resources(c: &ContainerProfile) -> Value {
    let mut req = serde_json::Map::new();
    let mut lim = serde_json::Map::new();
    if let Some(v) = c.cpu_request {
        req.insert("cpu".into(), format_cpu(v).into());
    }
    if let Some(v) = c.memory_request {
        req.insert("memory".into(), format_memory(v).into());
    }
    if let Some(v) = c.cpu_limit {
        lim.insert("cpu".into(), format_cpu(v).into());
    }
    if let Some(v) = c.memory_limit {
        lim.insert("memory".into(), format_memory(v).into());
    }
    let mut r = serde_json::Map::new();
    if !req.is_empty() {
        r.insert("requests".into(), req.into());
    }
    if !lim.is_empty() {
        r.insert("limits".into(), lim.into());
    }
    r.into()
}

fn pod_spec(w: &WorkloadSpec, revision: usize, node: Option<u32>) -> Value {
    let fake = PodPlan {
        name: String::new(),
        uid: String::new(),
        key: 0,
        node: 0,
        owner: PodOwner::Workload,
        created: 0,
        deleted: None,
        slot: 0,
        share: 1.0,
        revision,
    };
    let container = |c: &ContainerProfile| json!({"name": c.name, "image": image(c, &fake), "resources": resources(c)});
    let mut spec = json!({
        "containers": w.containers.iter().filter(|c| !c.init).map(container).collect::<Vec<_>>(),
        "restartPolicy": if matches!(w.kind, WorkloadKind::CronJob | WorkloadKind::Job) { "OnFailure" } else { "Always" },
    });
    let inits: Vec<Value> = w.containers.iter().filter(|c| c.init).map(container).collect();
    if !inits.is_empty() {
        spec["initContainers"] = inits.into();
    }
    if let Some(n) = node {
        spec["nodeName"] = node_name(n).into();
    }
    spec
}

fn selector(w: &WorkloadSpec) -> Value {
    json!({"app.kubernetes.io/name": w.name})
}

fn labels(w: &WorkloadSpec) -> Value {
    json!({"app.kubernetes.io/name": w.name, "app.kubernetes.io/part-of": w.namespace})
}

fn template(w: &WorkloadSpec, extra: &Value, revision: usize) -> Value {
    let mut l = labels(w);
    if let (Some(m), Some(e)) = (l.as_object_mut(), extra.as_object()) {
        m.extend(e.clone());
    }
    json!({"metadata": {"labels": l}, "spec": pod_spec(w, revision, None)})
}

/// Builds every object from the plan and the last sample of each live pod's containers.
pub fn build(spec: &ClusterSpec, plans: &[WorkloadPlan], finals: &[Vec<(usize, usize, Sample)>]) -> Objects {
    let mut o = Objects::default();
    let mut namespaces: BTreeMap<&str, i64> = BTreeMap::new();
    for w in &spec.workloads {
        let c = namespaces.entry(&w.namespace).or_insert(w.created);
        *c = (*c).min(w.created);
    }
    for (ns, created) in namespaces {
        let m = json!({"name": ns, "uid": uuid(hash_str(ns) ^ spec.seed), "creationTimestamp": rfc3339(created - DAY),
            "labels": {"kubernetes.io/metadata.name": ns}});
        o.namespaces.push(typed(
            json!({"metadata": m, "spec": {"finalizers": ["kubernetes"]}, "status": {"phase": "Active"}}),
        ));
    }
    for ((w, wp), fin) in spec.workloads.iter().zip(plans).zip(finals) {
        workload(spec, w, wp, fin, &mut o);
    }
    o
}

fn workload(spec: &ClusterSpec, w: &WorkloadSpec, wp: &WorkloadPlan, fin: &[(usize, usize, Sample)], o: &mut Objects) {
    let ns = w.namespace.as_str();
    let end = spec.end;
    let live: Vec<usize> = (0..wp.pods.len())
        .filter(|&i| wp.pods[i].deleted.is_none() && wp.pods[i].created <= end)
        .collect();
    let ready = live.len() as i32;
    let mut wmeta = meta(ns, &w.name, &wp.uid, w.created, &labels(w));
    wmeta["generation"] = json!(1 + wp.replica_sets.len().saturating_sub(1));
    let revision_hash = suffix(wp.key ^ 0x5e5, 10);
    match w.kind {
        WorkloadKind::Deployment => {
            let replicas = wp.replicas_at(end, w.replicas) as i32;
            let current = wp.replica_sets.len() - 1;
            let rs_template = |rs: usize| template(w, &json!({"pod-template-hash": wp.replica_sets[rs].hash}), rs);
            o.deployments.push(typed(json!({
                "metadata": wmeta,
                "spec": {"replicas": replicas, "selector": {"matchLabels": selector(w)}, "template": template(w, &json!({}), current),
                    "strategy": {"type": "RollingUpdate"}, "revisionHistoryLimit": 10},
                "status": {"replicas": ready, "readyReplicas": ready, "availableReplicas": ready, "updatedReplicas": ready,
                    "observedGeneration": wmeta_generation(wp)},
            })));
            for (i, rs) in wp.replica_sets.iter().enumerate() {
                let n = if i == current { replicas } else { 0 };
                let mut l = labels(w);
                l["pod-template-hash"] = rs.hash.clone().into();
                let mut m = meta(ns, &rs.name, &rs.uid, rs.created, &l);
                m["ownerReferences"] = owner("apps/v1", "Deployment", &w.name, &wp.uid);
                m["annotations"] = json!({"deployment.kubernetes.io/revision": (i + 1).to_string()});
                let mut sel = selector(w);
                sel["pod-template-hash"] = rs.hash.clone().into();
                o.replica_sets.push(typed(json!({
                    "metadata": m,
                    "spec": {"replicas": n, "selector": {"matchLabels": sel}, "template": rs_template(i)},
                    "status": {"replicas": n, "readyReplicas": n, "availableReplicas": n, "fullyLabeledReplicas": n, "observedGeneration": 1},
                })));
            }
            if let Some(h) = &w.hpa {
                hpa(spec, w, wp, fin, h, o);
            }
        }
        WorkloadKind::StatefulSet => {
            let n = w.replicas.max(1) as i32;
            let rev = format!("{}-{revision_hash}", w.name);
            o.stateful_sets.push(typed(json!({
                "metadata": wmeta,
                "spec": {"replicas": n, "serviceName": w.name, "selector": {"matchLabels": selector(w)},
                    "template": template(w, &json!({}), 0)},
                "status": {"replicas": ready, "readyReplicas": ready, "currentReplicas": ready, "updatedReplicas": ready,
                    "availableReplicas": ready, "currentRevision": rev, "updateRevision": rev, "observedGeneration": 1},
            })));
        }
        WorkloadKind::DaemonSet => {
            let n = spec.nodes as i32;
            o.daemon_sets.push(typed(json!({
                "metadata": wmeta,
                "spec": {"selector": {"matchLabels": selector(w)}, "template": template(w, &json!({}), 0)},
                "status": {"desiredNumberScheduled": n, "currentNumberScheduled": ready, "numberReady": ready, "numberMisscheduled": 0,
                    "updatedNumberScheduled": ready, "numberAvailable": ready, "observedGeneration": 1},
            })));
        }
        WorkloadKind::CronJob | WorkloadKind::Job => batch(spec, w, wp, wmeta, o),
        WorkloadKind::Pod => {}
    }
    for &pi in &live {
        pod(spec, w, wp, pi, fin, &revision_hash, o);
    }
}

fn wmeta_generation(wp: &WorkloadPlan) -> usize {
    1 + wp.replica_sets.len().saturating_sub(1)
}

fn schedule(every: i64, offset: i64) -> String {
    let minute = offset.rem_euclid(HOUR) / 60;
    if every < HOUR {
        format!("{}-59/{} * * * *", minute % (every / 60).max(1), every / 60)
    } else if every == HOUR {
        format!("{minute} * * * *")
    } else {
        format!(
            "{minute} {}-23/{} * * *",
            (offset / HOUR) % (every / HOUR),
            every / HOUR
        )
    }
}

fn batch(spec: &ClusterSpec, w: &WorkloadSpec, wp: &WorkloadPlan, wmeta: Value, o: &mut Objects) {
    let end = spec.end;
    let cron = w.kind == WorkloadKind::CronJob;
    let jobs: Vec<_> = wp
        .jobs
        .iter()
        .filter(|j| j.deleted.is_none() && j.start <= end)
        .collect();
    if cron {
        let b = w.batch.as_ref().map_or((HOUR, 0), |b| (b.every, b.offset));
        let active: Vec<Value> = jobs
            .iter()
            .filter(|j| j.finish > end)
            .map(|j| json!({"apiVersion": "batch/v1", "kind": "Job", "name": j.name, "namespace": w.namespace, "uid": j.uid}))
            .collect();
        let mut status = json!({"active": active});
        if let Some(last) = jobs.last() {
            status["lastScheduleTime"] = rfc3339(last.start).into();
        }
        if let Some(done) = jobs.iter().rev().find(|j| j.finish <= end) {
            status["lastSuccessfulTime"] = rfc3339(done.finish).into();
        }
        o.cron_jobs.push(typed(json!({
            "metadata": wmeta,
            "spec": {"schedule": schedule(b.0, b.1), "concurrencyPolicy": "Forbid", "successfulJobsHistoryLimit": 3,
                "jobTemplate": {"spec": {"template": template(w, &json!({}), 0)}}},
            "status": status,
        })));
    }
    for j in jobs {
        let mut l = labels(w);
        for (k, v) in [
            ("batch.kubernetes.io/controller-uid", &j.uid),
            ("batch.kubernetes.io/job-name", &j.name),
            ("controller-uid", &j.uid),
            ("job-name", &j.name),
        ] {
            l[k] = v.clone().into();
        }
        let mut m = meta(&w.namespace, &j.name, &j.uid, j.start, &l);
        if cron {
            m["ownerReferences"] = owner("batch/v1", "CronJob", &w.name, &wp.uid);
        } else {
            m["uid"] = wp.uid.clone().into();
        }
        let uid = if cron { j.uid.clone() } else { wp.uid.clone() };
        let t = template(
            w,
            &json!({"batch.kubernetes.io/controller-uid": uid, "batch.kubernetes.io/job-name": j.name}),
            0,
        );
        let mut status = json!({"startTime": rfc3339(j.start)});
        if j.finish <= end {
            status["succeeded"] = 1.into();
            status["completionTime"] = rfc3339(j.finish).into();
            status["conditions"] =
                json!([{"type": "Complete", "status": "True", "lastTransitionTime": rfc3339(j.finish)}]);
        } else {
            status["active"] = 1.into();
            status["ready"] = 1.into();
        }
        o.jobs.push(typed(json!({
            "metadata": m,
            "spec": {"selector": {"matchLabels": {"batch.kubernetes.io/controller-uid": uid}}, "template": t,
                "completions": 1, "parallelism": 1, "backoffLimit": 6},
            "status": status,
        })));
    }
}

fn hpa(
    spec: &ClusterSpec,
    w: &WorkloadSpec,
    wp: &WorkloadPlan,
    fin: &[(usize, usize, Sample)],
    h: &super::spec::HpaSpec,
    o: &mut Objects,
) {
    let end = spec.end;
    let request: f64 = w
        .containers
        .iter()
        .filter(|c| !c.init)
        .filter_map(|c| c.cpu_request)
        .sum();
    let pods = fin
        .iter()
        .map(|f| f.0)
        .collect::<std::collections::BTreeSet<_>>()
        .len()
        .max(1);
    let used: f64 = fin.iter().filter(|f| !w.containers[f.1].init).map(|f| f.2.usage).sum();
    let utilization = if request > 0.0 {
        (100.0 * used / pods as f64 / request).round() as i64
    } else {
        0
    };
    let m = meta(&w.namespace, &w.name, &uuid(wp.key ^ 0x4a), w.created, &labels(w));
    o.hpas.push(typed(json!({
        "metadata": m,
        "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": w.name},
            "minReplicas": h.min_replicas, "maxReplicas": h.max_replicas,
            "metrics": [{"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": h.target_cpu_utilization}}}]},
        "status": {"currentReplicas": wp.replicas_at(end, w.replicas), "desiredReplicas": wp.replicas_at(end, w.replicas),
            "currentMetrics": [{"type": "Resource", "resource": {"name": "cpu", "current": {"averageUtilization": utilization}}}]},
    })));
}

fn pod(
    spec: &ClusterSpec,
    w: &WorkloadSpec,
    wp: &WorkloadPlan,
    pi: usize,
    fin: &[(usize, usize, Sample)],
    rev_hash: &str,
    o: &mut Objects,
) {
    let p = &wp.pods[pi];
    let ns = w.namespace.as_str();
    let mut l = labels(w);
    let own = match (w.kind, p.owner) {
        (_, PodOwner::ReplicaSet(i)) => {
            let rs = &wp.replica_sets[i];
            l["pod-template-hash"] = rs.hash.clone().into();
            owner("apps/v1", "ReplicaSet", &rs.name, &rs.uid)
        }
        (_, PodOwner::Job(i)) => {
            let j = &wp.jobs[i];
            let uid = if w.kind == WorkloadKind::CronJob {
                j.uid.clone()
            } else {
                wp.uid.clone()
            };
            for (k, v) in [
                ("batch.kubernetes.io/controller-uid", &uid),
                ("batch.kubernetes.io/job-name", &j.name),
                ("controller-uid", &uid),
                ("job-name", &j.name),
            ] {
                l[k] = v.clone().into();
            }
            owner("batch/v1", "Job", &j.name, &uid)
        }
        (WorkloadKind::StatefulSet, _) => {
            l["controller-revision-hash"] = format!("{}-{rev_hash}", w.name).into();
            l["statefulset.kubernetes.io/pod-name"] = p.name.clone().into();
            owner("apps/v1", "StatefulSet", &w.name, &wp.uid)
        }
        _ => {
            l["controller-revision-hash"] = rev_hash.into();
            l["pod-template-generation"] = "1".into();
            owner("apps/v1", "DaemonSet", &w.name, &wp.uid)
        }
    };
    let mut m = meta(ns, &p.name, &p.uid, p.created, &l);
    m["ownerReferences"] = own;
    let last = |ci: usize| fin.iter().find(|f| f.0 == pi && f.1 == ci).map(|f| f.2);
    let status = |ci: usize, c: &ContainerProfile| {
        let s = last(ci).unwrap_or_default();
        let mut st = json!({"name": c.name, "image": image(c, p), "imageID": format!("{}@sha256:{}", c.image, cid(p, 99).repeat(4)),
            "containerID": format!("containerd://{}", cid(p, ci)), "restartCount": s.restarts, "ready": !c.init, "started": !c.init});
        if c.init {
            st["state"] = json!({"terminated": {"exitCode": 0, "reason": "Completed", "startedAt": rfc3339(p.created),
                "finishedAt": rfc3339(p.created + c.init_seconds)}});
        } else {
            st["state"] = json!({"running": {"startedAt": rfc3339(s.started.max(p.created))}});
            if s.oom_killed {
                st["lastState"] =
                    json!({"terminated": {"exitCode": 137, "reason": "OOMKilled", "finishedAt": rfc3339(s.started)}});
            }
        }
        st
    };
    let statuses: Vec<Value> = w
        .containers
        .iter()
        .enumerate()
        .filter(|(_, c)| !c.init)
        .map(|(ci, c)| status(ci, c))
        .collect();
    let init_statuses: Vec<Value> = w
        .containers
        .iter()
        .enumerate()
        .filter(|(_, c)| c.init)
        .map(|(ci, c)| status(ci, c))
        .collect();
    let mut st = json!({"phase": "Running", "startTime": rfc3339(p.created), "hostIP": format!("10.0.0.{}", p.node + 10),
        "podIP": format!("10.244.{}.{}", p.node, 2 + p.key % 250),
        "conditions": [{"type": "Ready", "status": "True"}, {"type": "PodScheduled", "status": "True"}],
        "containerStatuses": statuses, "qosClass": qos_class(w)});
    if !init_statuses.is_empty() {
        st["initContainerStatuses"] = init_statuses.into();
    }
    o.pods.push(typed(
        json!({"metadata": m.clone(), "spec": pod_spec(w, p.revision, Some(p.node)), "status": st}),
    ));
    let usage: Vec<Value> = w
        .containers
        .iter()
        .enumerate()
        .filter(|(_, c)| !c.init)
        .filter_map(|(ci, c)| last(ci).filter(|s| s.t == spec.end).map(|s| (c, s)))
        .map(|(c, s)| {
            json!({"name": c.name, "usage": {"cpu": format!("{}n", (s.usage * 1e9).round() as u64), "memory": format!("{}Ki", s.working_set / 1024)}})
        })
        .collect();
    if !usage.is_empty() {
        o.pod_metrics.push(json!({
            "apiVersion": "metrics.k8s.io/v1beta1", "kind": "PodMetrics",
            "metadata": {"name": p.name, "namespace": ns, "creationTimestamp": rfc3339(spec.end), "labels": m["labels"]},
            "timestamp": rfc3339(spec.end), "window": "1m0s", "containers": usage,
        }));
    }
}

fn qos_class(w: &WorkloadSpec) -> &'static str {
    let cs = &w.containers;
    if cs.iter().all(|c| {
        c.cpu_request.is_none() && c.memory_request.is_none() && c.cpu_limit.is_none() && c.memory_limit.is_none()
    }) {
        "BestEffort"
    } else if cs.iter().all(|c| {
        c.cpu_limit.is_some()
            && c.memory_limit.is_some()
            && c.cpu_request == c.cpu_limit
            && c.memory_request == c.memory_limit
    }) {
        "Guaranteed"
    } else {
        "Burstable"
    }
}
