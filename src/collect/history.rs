//! The query plan: a fixed set of cluster-wide queries, grouped `by (namespace, pod,
//! container)`, whose count does not depend on the number of workloads. Prometheus does the
//! heavy reduction (rates, `max_over_time`); Rust maps pods to the workloads that owned them
//! (kube-state-metrics owner series cover pods that no longer exist) and pools every pod's
//! samples into one sketch per workload x container.

use std::collections::{HashMap, HashSet};

use futures::stream::{self, StreamExt, TryStreamExt};

use super::Error;
use super::prometheus::{InstantSample, PromClient};
use crate::model::{ContainerKey, ContainerUsage, UsageSet, WorkloadKey, WorkloadKind};

/// The window and resolution of the history to read.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Window {
    /// End of the window, unix seconds (evaluation time of instant queries).
    pub end: i64,
    /// Length of the window in seconds (default 14 days, as KRR).
    pub length: i64,
    /// Resolution of the CPU distribution and width of its rate window (default 5 minutes:
    /// the VPA's and KRR's sample width, long enough to smooth scrape jitter).
    pub step: i64,
}

impl Window {
    fn range(&self) -> String {
        format!("{}s", self.length)
    }

    /// Evaluation times of the CPU rate: multiples of `step`, each rate window inside the
    /// history window.
    fn eval_bounds(&self) -> (i64, i64) {
        let start = self.end - self.length;
        // The first multiple of `step` whose rate window starts inside the history window.
        let first = (start + 2 * self.step - 1).div_euclid(self.step) * self.step;
        let last = self.end.div_euclid(self.step) * self.step;
        (first, last)
    }
}

/// Points per series in one range query. Prometheus refuses more than 11,000 points per
/// series; a day at 5 minutes (288 points) also keeps each answer small enough to parse
/// and drop before the next arrives.
const CHUNK_POINTS: i64 = 288;

/// Who owned each pod and each ReplicaSet/Job, as kube-state-metrics recorded it over the
/// window, so pods deleted long ago still count for their workload.
#[derive(Debug, Default)]
pub struct Owners {
    pods: HashMap<(String, String), (String, String)>,
    replica_sets: HashMap<(String, String), (String, String)>,
    jobs: HashMap<(String, String), (String, String)>,
}

impl Owners {
    pub fn insert_pod(&mut self, ns: &str, pod: &str, kind: &str, name: &str) {
        self.pods.insert((ns.into(), pod.into()), (kind.into(), name.into()));
    }

    pub fn insert_replica_set(&mut self, ns: &str, rs: &str, kind: &str, name: &str) {
        self.replica_sets
            .insert((ns.into(), rs.into()), (kind.into(), name.into()));
    }

    pub fn insert_job(&mut self, ns: &str, job: &str, kind: &str, name: &str) {
        self.jobs.insert((ns.into(), job.into()), (kind.into(), name.into()));
    }

    pub fn is_empty(&self) -> bool {
        self.pods.is_empty()
    }

    /// The top owner of a pod: pod -> ReplicaSet -> Deployment, pod -> Job -> CronJob,
    /// StatefulSet and DaemonSet directly. A pod with no known controller is its own workload.
    pub fn resolve(&self, ns: &str, pod: &str) -> WorkloadKey {
        let key = (ns.to_string(), pod.to_string());
        let Some((kind, name)) = self.pods.get(&key) else {
            return WorkloadKey::new(ns, WorkloadKind::Pod, pod);
        };
        let lookup =
            |map: &HashMap<(String, String), (String, String)>| map.get(&(ns.to_string(), name.clone())).cloned();
        let (kind, name) = match kind.as_str() {
            "ReplicaSet" => lookup(&self.replica_sets).unwrap_or_else(|| (kind.clone(), name.clone())),
            "Job" => lookup(&self.jobs).unwrap_or_else(|| (kind.clone(), name.clone())),
            _ => (kind.clone(), name.clone()),
        };
        match WorkloadKind::from_kind(&kind) {
            Some(kind) => WorkloadKey::new(ns, kind, name),
            // A bare Job, or a controller we do not size (bare ReplicaSet, Node for static
            // pods, an operator's CRD): the pod stands alone.
            None if kind == "Job" => WorkloadKey::new(ns, WorkloadKind::Job, name),
            None => WorkloadKey::new(ns, WorkloadKind::Pod, pod),
        }
    }
}

fn label<'a>(s: &'a InstantSample, name: &str) -> &'a str {
    s.labels.get(name).map(String::as_str).unwrap_or("")
}

/// kube-state-metrics writes `<none>` for a missing owner.
fn has_owner(kind: &str) -> bool {
    !kind.is_empty() && kind != "<none>"
}

/// Reads the owner series (3 queries).
pub async fn fetch_owners(prom: &PromClient, w: &Window) -> Result<Owners, Error> {
    let range = w.range();
    let pods = format!("max by (namespace, pod, owner_kind, owner_name) (max_over_time(kube_pod_owner[{range}]))");
    let sets = format!(
        "max by (namespace, replicaset, owner_kind, owner_name) (max_over_time(kube_replicaset_owner[{range}]))"
    );
    let jobs = format!("max by (namespace, job_name, owner_kind, owner_name) (max_over_time(kube_job_owner[{range}]))");
    let (pods, sets, jobs) = futures::try_join!(
        prom.query(&pods, w.end),
        prom.query(&sets, w.end),
        prom.query(&jobs, w.end)
    )?;
    let mut owners = Owners::default();
    for s in pods.iter().filter(|s| has_owner(label(s, "owner_kind"))) {
        owners.insert_pod(
            label(s, "namespace"),
            label(s, "pod"),
            label(s, "owner_kind"),
            label(s, "owner_name"),
        );
    }
    for s in sets.iter().filter(|s| has_owner(label(s, "owner_kind"))) {
        owners.insert_replica_set(
            label(s, "namespace"),
            label(s, "replicaset"),
            label(s, "owner_kind"),
            label(s, "owner_name"),
        );
    }
    for s in jobs.iter().filter(|s| has_owner(label(s, "owner_kind"))) {
        owners.insert_job(
            label(s, "namespace"),
            label(s, "job_name"),
            label(s, "owner_kind"),
            label(s, "owner_name"),
        );
    }
    if pods.is_empty() {
        tracing::warn!(
            "no kube_pod_owner series: is kube-state-metrics scraped? pods are reported as their own workloads"
        );
    }
    Ok(owners)
}

/// Container selector shared by every cAdvisor query: `container=""` is the pod-level cgroup
/// and `POD` the pause container; neither is a container anyone sizes.
const CONTAINERS: &str = r#"container!="",container!="POD""#;

/// Reads usage for every container in the window: `1 + ceil(window / 1 day)` queries.
pub async fn fetch_usage(prom: &PromClient, w: &Window, owners: &Owners) -> Result<UsageSet, Error> {
    let mut usage = UsageSet {
        start: w.end - w.length,
        end: w.end,
        step: w.step,
        ..Default::default()
    };
    let mut seen_pods: HashSet<(String, String, String)> = HashSet::new();

    let memory = format!(
        "max by (namespace, pod, container) (max_over_time(container_memory_working_set_bytes{{{CONTAINERS}}}[{}]))",
        w.range()
    );
    for s in prom.query(&memory, w.end).await? {
        let (ns, pod, container) = (label(&s, "namespace"), label(&s, "pod"), label(&s, "container"));
        let key = ContainerKey::new(owners.resolve(ns, pod), container);
        usage.containers.entry(key).or_default().observe_memory(s.value);
    }

    let cpu = format!(
        "sum by (namespace, pod, container) (rate(container_cpu_usage_seconds_total{{{CONTAINERS}}}[{}s]))",
        w.step
    );
    let (first, last) = w.eval_bounds();
    let span = CHUNK_POINTS * w.step;
    let chunks: Vec<(i64, i64)> = (0..)
        .map(|i| first + i * span)
        .take_while(|&s| s <= last)
        .map(|s| (s, (s + span - w.step).min(last)))
        .collect();
    let mut answers = stream::iter(chunks)
        .map(|(s, e)| {
            let cpu = &cpu;
            async move { prom.query_range(cpu, s, e, w.step).await }
        })
        .buffer_unordered(4);
    let mut cpu_series = 0usize;
    let mut dropped = 0u64;
    while let Some(series) = answers.try_next().await? {
        cpu_series += series.len();
        for s in series {
            let get = |n: &str| s.labels.get(n).map(String::as_str).unwrap_or("");
            let (ns, pod, container) = (get("namespace"), get("pod"), get("container"));
            let key = ContainerKey::new(owners.resolve(ns, pod), container);
            if seen_pods.insert((ns.to_string(), pod.to_string(), container.to_string())) {
                usage.containers.entry(key.clone()).or_default().pods += 1;
            }
            let entry = usage.containers.entry(key).or_default();
            for &(t, v) in &s.values {
                if entry.cpu.add(v) {
                    entry.saw(t);
                } else {
                    dropped += 1;
                }
            }
        }
    }
    if cpu_series == 0 {
        return Err(Error::MissingMetric {
            metric: "container_cpu_usage_seconds_total",
            hint: "is the kubelet's cAdvisor endpoint (/metrics/cadvisor) scraped, and is the window right?",
        });
    }
    if dropped > 0 {
        tracing::warn!(dropped, "ignored NaN, infinite or negative CPU samples");
    }
    // Containers seen only in the memory query have no CPU history; keep them so the report
    // can say so.
    usage
        .containers
        .retain(|_, u: &mut ContainerUsage| u.memory_peak.is_some() || !u.cpu.is_empty());
    Ok(usage)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_owner_chains() {
        let mut o = Owners::default();
        o.insert_pod("shop", "web-abc-1", "ReplicaSet", "web-abc");
        o.insert_replica_set("shop", "web-abc", "Deployment", "web");
        o.insert_pod("shop", "nightly-29000-x", "Job", "nightly-29000");
        o.insert_job("shop", "nightly-29000", "CronJob", "nightly");
        o.insert_pod("shop", "once-q", "Job", "once");
        o.insert_pod("shop", "db-0", "StatefulSet", "db");
        o.insert_pod("kube-system", "etcd-node1", "Node", "node1");
        let cases = [
            ("web-abc-1", WorkloadKind::Deployment, "web"),
            ("nightly-29000-x", WorkloadKind::CronJob, "nightly"),
            ("once-q", WorkloadKind::Job, "once"),
            ("db-0", WorkloadKind::StatefulSet, "db"),
            ("stray", WorkloadKind::Pod, "stray"),
        ];
        for (pod, kind, name) in cases {
            assert_eq!(o.resolve("shop", pod), WorkloadKey::new("shop", kind, name), "{pod}");
        }
        assert_eq!(o.resolve("kube-system", "etcd-node1").kind, WorkloadKind::Pod);
    }

    #[test]
    fn eval_bounds_are_aligned_and_inside_the_window() {
        let w = Window {
            end: 1_000_123,
            length: 86_400,
            step: 300,
        };
        let (first, last) = w.eval_bounds();
        assert_eq!(first % 300, 0);
        assert_eq!(last % 300, 0);
        assert!(first - 300 >= w.end - w.length);
        assert!(last <= w.end && w.end - last < 300);
    }
}
