//! The life plan of a cluster: which ReplicaSets, Jobs and pods existed when, with their
//! names, uids and nodes, and the HPA replica schedule. Everything else (series, objects,
//! ground truth) is derived from this plan and the usage patterns, so the API side and the
//! history always agree.

use rightsizer::model::WorkloadKind;

use super::patterns::Load;
use super::rng::{hash_str, hash2, hash3, suffix, unit, uuid};
use super::spec::{ClusterSpec, WorkloadSpec};

/// What a pod's `ownerReferences` point at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PodOwner {
    /// Index into `WorkloadPlan::replica_sets`.
    ReplicaSet(usize),
    /// Index into `WorkloadPlan::jobs`.
    Job(usize),
    /// The workload itself (StatefulSet, DaemonSet).
    Workload,
}

#[derive(Debug, Clone)]
pub struct PodPlan {
    pub name: String,
    pub uid: String,
    /// Seed of every per-pod random stream.
    pub key: u64,
    /// Node index (0-based; node names are `node-{index+1}`).
    pub node: u32,
    pub owner: PodOwner,
    /// Creation time, and deletion time (`None`: still running at `end`).
    pub created: i64,
    pub deleted: Option<i64>,
    /// Replica slot (StatefulSet ordinal, DaemonSet node, Deployment slot).
    pub slot: u32,
    /// Usage multiplier of this pod (hot replica, per-node spread).
    pub share: f64,
    /// Index of the ReplicaSet revision (image tag) the pod runs.
    pub revision: usize,
}

impl PodPlan {
    /// The last instant the pod exists (inclusive upper bound for sample times).
    pub fn last_alive(&self, end: i64) -> i64 {
        self.deleted.map_or(end, |d| d - 1)
    }
}

#[derive(Debug, Clone)]
pub struct ReplicaSetPlan {
    pub name: String,
    pub uid: String,
    pub hash: String,
    pub created: i64,
}

#[derive(Debug, Clone)]
pub struct JobPlan {
    pub name: String,
    pub uid: String,
    pub start: i64,
    pub finish: i64,
    /// When the Job object is deleted by the CronJob's history limit (`None`: kept).
    pub deleted: Option<i64>,
}

#[derive(Debug, Clone)]
pub struct WorkloadPlan {
    pub uid: String,
    pub key: u64,
    pub replica_sets: Vec<ReplicaSetPlan>,
    pub jobs: Vec<JobPlan>,
    pub pods: Vec<PodPlan>,
    /// HPA (and so Deployment) replica count from each time on, sorted; empty without HPA.
    pub schedule: Vec<(i64, u32)>,
}

impl WorkloadPlan {
    /// Replicas at `t` according to the HPA schedule (or `fallback` without HPA).
    pub fn replicas_at(&self, t: i64, fallback: u32) -> u32 {
        match self.schedule.partition_point(|&(s, _)| s <= t) {
            0 => self.schedule.first().map_or(fallback, |s| s.1),
            i => self.schedule[i - 1].1,
        }
    }
}

/// Kubernetes keeps this many finished Jobs of a CronJob (`successfulJobsHistoryLimit`).
pub const JOB_HISTORY: usize = 3;
/// The HPA controller's sync period (kube-controller-manager default, 15 s) is finer than our
/// samples; we evaluate it every 5 minutes, which its default 5-minute scale-down
/// stabilization window makes indistinguishable at this resolution.
const HPA_PERIOD: i64 = 300;

pub fn plan(spec: &ClusterSpec) -> Vec<WorkloadPlan> {
    spec.workloads.iter().map(|w| plan_workload(spec, w)).collect()
}

fn plan_workload(spec: &ClusterSpec, w: &WorkloadSpec) -> WorkloadPlan {
    let key = hash3(spec.seed, hash_str(&w.namespace), hash_str(&w.name));
    let mut p = WorkloadPlan {
        uid: uuid(key),
        key,
        replica_sets: Vec::new(),
        jobs: Vec::new(),
        pods: Vec::new(),
        schedule: Vec::new(),
    };
    let start = spec.start() - spec.step; // a little before the first sample
    match w.kind {
        WorkloadKind::Deployment => plan_deployment(spec, w, &mut p, start),
        WorkloadKind::StatefulSet => {
            for i in 0..w.replicas.max(1) {
                let share = if i == 0 { w.hot_replica } else { 1.0 };
                let name = format!("{}-{i}", w.name);
                p.pods.push(pod(
                    &p,
                    name,
                    i,
                    w.created + 10 * i64::from(i),
                    None,
                    PodOwner::Workload,
                    share,
                    0,
                    spec.nodes,
                ));
            }
        }
        WorkloadKind::DaemonSet => {
            for n in 0..spec.nodes {
                let h = hash2(key, u64::from(n));
                let name = format!("{}-{}", w.name, suffix(h, 5));
                let share = 0.6 + 0.8 * unit(hash2(h, 1));
                let mut pp = pod(
                    &p,
                    name,
                    n,
                    w.created + i64::from(n),
                    None,
                    PodOwner::Workload,
                    share,
                    0,
                    spec.nodes,
                );
                pp.node = n;
                p.pods.push(pp);
            }
        }
        WorkloadKind::CronJob | WorkloadKind::Job => plan_batch(spec, w, &mut p, start),
        WorkloadKind::Pod => {}
    }
    p.pods
        .retain(|pp| pp.created <= spec.end && pp.deleted.is_none_or(|d| d > start));
    p
}

#[allow(clippy::too_many_arguments)]
fn pod(
    p: &WorkloadPlan,
    name: String,
    slot: u32,
    created: i64,
    deleted: Option<i64>,
    owner: PodOwner,
    share: f64,
    revision: usize,
    nodes: u32,
) -> PodPlan {
    let key = hash3(p.key, hash_str(&name), created as u64);
    PodPlan {
        uid: uuid(key),
        node: (hash2(key, 7) % u64::from(nodes.max(1))) as u32,
        name,
        key,
        owner,
        created,
        deleted,
        slot,
        share,
        revision,
    }
}

fn plan_deployment(spec: &ClusterSpec, w: &WorkloadSpec, p: &mut WorkloadPlan, start: i64) {
    let mut rollouts: Vec<i64> = w
        .rollouts
        .iter()
        .copied()
        .filter(|&t| t > w.created && t <= spec.end)
        .collect();
    rollouts.sort_unstable();
    rollouts.dedup();
    for (rev, created) in std::iter::once(w.created).chain(rollouts.iter().copied()).enumerate() {
        let hash = suffix(hash2(p.key, 1000 + rev as u64), 10);
        p.replica_sets.push(ReplicaSetPlan {
            name: format!("{}-{hash}", w.name),
            uid: uuid(hash2(p.key, 2000 + rev as u64)),
            hash,
            created,
        });
    }
    if let Some(h) = &w.hpa {
        p.schedule = hpa_schedule(spec, w, p.key, h.min_replicas, h.max_replicas, h.target_cpu_utilization);
    }
    // Every change of replica count or revision ends the affected pods and starts new ones.
    let mut cuts: Vec<i64> = p.schedule.iter().map(|s| s.0).chain(rollouts.iter().copied()).collect();
    cuts.push(w.created.max(start));
    cuts.sort_unstable();
    cuts.dedup();
    cuts.retain(|&t| t >= w.created.max(start) && t <= spec.end);
    let max_slots = w.hpa.as_ref().map_or(w.replicas, |h| h.max_replicas).max(1);
    for slot in 0..max_slots {
        let mut open: Option<(i64, usize)> = None; // (created, revision)
        for (ci, &t) in cuts.iter().enumerate() {
            let active = slot < p.replicas_at(t, w.replicas);
            let rev = rollouts.partition_point(|&r| r <= t);
            let next = cuts.get(ci + 1).copied();
            match open {
                Some((c, r)) if !active || r != rev => {
                    push_deploy_pod(spec, p, slot, c, Some(t), r);
                    open = None;
                }
                _ => {}
            }
            if active && open.is_none() {
                // Pods alive at the window start were created with their ReplicaSet.
                let created = if ci == 0 && t == start {
                    p.replica_sets[rev].created + i64::from(slot) * 3
                } else {
                    t
                };
                open = Some((created, rev));
            }
            if next.is_none()
                && let Some((c, r)) = open
            {
                push_deploy_pod(spec, p, slot, c, None, r);
            }
        }
    }
    p.pods.sort_by_key(|pp| (pp.created, pp.slot));
}

fn push_deploy_pod(
    spec: &ClusterSpec,
    p: &mut WorkloadPlan,
    slot: u32,
    created: i64,
    deleted: Option<i64>,
    rev: usize,
) {
    let rs = &p.replica_sets[rev];
    let h = hash3(p.key, u64::from(slot), created as u64);
    let name = format!("{}-{}", rs.name, suffix(h, 5));
    let share = 0.9 + 0.2 * unit(hash2(h, 3));
    let pp = pod(
        p,
        name,
        slot,
        created,
        deleted,
        PodOwner::ReplicaSet(rev),
        share,
        rev,
        spec.nodes,
    );
    p.pods.push(pp);
}

/// Replica count of an HPA on CPU utilization, following the smooth load (bursts
/// included, noise not): up at once, down only after the demand stayed lower for the
/// stabilization window.
fn hpa_schedule(spec: &ClusterSpec, w: &WorkloadSpec, key: u64, min: u32, max: u32, target: u32) -> Vec<(i64, u32)> {
    let request: f64 = w
        .containers
        .iter()
        .filter(|c| !c.init)
        .filter_map(|c| c.cpu_request)
        .sum();
    let base: f64 = w.containers.iter().filter(|c| !c.init).map(|c| c.cpu_base).sum();
    let load = Load::new(w, key);
    let per_pod_capacity = (request * f64::from(target) / 100.0).max(1e-6);
    let mut out: Vec<(i64, u32)> = Vec::new();
    let first = (spec.start() - HOUR_BEFORE).max(w.created);
    let mut t = first - first.rem_euclid(HPA_PERIOD);
    let mut current = 0u32;
    let mut recent = [0u32; 2];
    while t <= spec.end {
        let demand = base * f64::from(w.replicas.max(1)) * load.factor(t);
        let desired = ((demand / per_pod_capacity).ceil() as u32).clamp(min.max(1), max.max(1));
        recent = [recent[1], desired];
        let next = if desired >= current {
            desired
        } else {
            recent.iter().copied().max().unwrap_or(desired).min(current)
        };
        if next != current {
            out.push((t, next));
            current = next;
        }
        t += HPA_PERIOD;
    }
    out
}

const HOUR_BEFORE: i64 = 3600;

fn plan_batch(spec: &ClusterSpec, w: &WorkloadSpec, p: &mut WorkloadPlan, start: i64) {
    let Some(b) = &w.batch else { return };
    let run_for = b.run_for.max(spec.step);
    let starts: Vec<i64> = if b.every <= 0 {
        vec![b.offset]
    } else {
        // Enough earlier runs that the Jobs kept at the window start are known.
        let from = (start - run_for - (JOB_HISTORY as i64 + 1) * b.every).max(w.created);
        let mut t = from - from.rem_euclid(b.every) + b.offset.rem_euclid(b.every);
        let mut v = Vec::new();
        while t <= spec.end {
            if t >= from {
                v.push(t);
            }
            t += b.every;
        }
        v
    };
    for (i, &s) in starts.iter().enumerate() {
        let name = if b.every > 0 {
            format!("{}-{}", w.name, s / 60)
        } else {
            w.name.clone()
        };
        // A finished Job is deleted once JOB_HISTORY newer Jobs have finished.
        let deleted = starts
            .get(i + JOB_HISTORY)
            .map(|&n| n + run_for)
            .filter(|&d| d <= spec.end);
        p.jobs.push(JobPlan {
            uid: uuid(hash2(p.key, s as u64)),
            name,
            start: s,
            finish: s + run_for,
            deleted,
        });
        let job = &p.jobs[i];
        let pod_name = format!("{}-{}", job.name, suffix(hash2(p.key, 77 + s as u64), 5));
        let end = s + run_for;
        let pp = pod(
            p,
            pod_name,
            0,
            s + 1,
            (end <= spec.end).then_some(end),
            PodOwner::Job(i),
            1.0,
            0,
            spec.nodes,
        );
        p.pods.push(pp);
    }
    p.jobs.retain(|j| j.deleted.is_none_or(|d| d > start));
    // Re-point pods at the kept Jobs (pods of dropped Jobs ended before the window).
    let names: Vec<String> = p.jobs.iter().map(|j| j.name.clone()).collect();
    let mut kept = Vec::new();
    for mut pp in std::mem::take(&mut p.pods) {
        if let Some(i) = names
            .iter()
            .position(|n| pp.name.starts_with(n.as_str()) && pp.name.len() == n.len() + 6)
        {
            pp.owner = PodOwner::Job(i);
            kept.push(pp);
        }
    }
    p.pods = kept;
}
