//! Pod ownership as kube-state-metrics recorded it over the window (`kube_pod_owner`,
//! `kube_replicaset_owner`, `kube_job_owner`), plus live pods the Kubernetes API adds: how the
//! query plan maps each `(namespace, pod)` series to the workload that owned it, in Rust, so
//! no query is ever written per workload.

use std::collections::HashMap;
use std::sync::Arc;

use crate::collect::promparse::{Labels, SeriesSink};
use crate::model::{WorkloadKey, WorkloadKind};

/// Who owned each pod and each ReplicaSet/Job, as kube-state-metrics recorded it over the
/// window, so pods deleted long ago still count for their workload.
///
/// Memory: one entry per pod that ever existed in the window (CronJobs and rollouts make many
/// per workload), so names are stored once each: namespaces and owner kinds in small tables,
/// each child name and owner name in one exact-size `Box<str>`, about 110 bytes a pod where four
/// `String`s in a tuple map took about 230. The maps sit behind an `Arc`, so the copy every
/// reducer of the query plan holds is shared, not cloned (issue 16).
#[derive(Debug, Default, Clone)]
pub struct Owners {
    /// Number of `kube_pod_owner` series read: 0 means kube-state-metrics is not scraped.
    pub(super) ksm_pods: usize,
    maps: Arc<Maps>,
}

/// An owner reference: its kind (an index into `Maps::kinds`) and its name.
#[derive(Debug, Clone)]
struct Owner {
    kind: u32,
    name: Box<str>,
}

/// Per namespace (an index into `namespaces`), child name -> owner.
type ByNamespace = Vec<HashMap<Box<str>, Owner>>;

#[derive(Debug, Default, Clone)]
struct Maps {
    namespaces: HashMap<Box<str>, u32>,
    /// Owner kinds as kube-state-metrics spells them (a handful: ReplicaSet, Job, ...).
    kinds: Vec<Box<str>>,
    pods: ByNamespace,
    replica_sets: ByNamespace,
    jobs: ByNamespace,
}

#[derive(Clone, Copy)]
enum Child {
    Pod,
    ReplicaSet,
    Job,
}

impl Maps {
    fn insert(&mut self, child: Child, ns: &str, name: &str, kind: &str, owner: &str) {
        let n = match self.namespaces.get(ns) {
            Some(&n) => n,
            None => {
                let n = self.namespaces.len() as u32;
                self.namespaces.insert(ns.into(), n);
                n
            }
        } as usize;
        for maps in [&mut self.pods, &mut self.replica_sets, &mut self.jobs] {
            if maps.len() <= n {
                maps.resize_with(n + 1, HashMap::new);
            }
        }
        let kind = match self.kinds.iter().position(|k| &**k == kind) {
            Some(k) => k,
            None => {
                self.kinds.push(kind.into());
                self.kinds.len() - 1
            }
        } as u32;
        let map = match child {
            Child::Pod => &mut self.pods,
            Child::ReplicaSet => &mut self.replica_sets,
            Child::Job => &mut self.jobs,
        };
        map[n].insert(
            name.into(),
            Owner {
                kind,
                name: owner.into(),
            },
        );
    }
}

impl Owners {
    pub fn insert_pod(&mut self, ns: &str, pod: &str, kind: &str, name: &str) {
        Arc::make_mut(&mut self.maps).insert(Child::Pod, ns, pod, kind, name);
    }

    pub fn insert_replica_set(&mut self, ns: &str, rs: &str, kind: &str, name: &str) {
        Arc::make_mut(&mut self.maps).insert(Child::ReplicaSet, ns, rs, kind, name);
    }

    pub fn insert_job(&mut self, ns: &str, job: &str, kind: &str, name: &str) {
        Arc::make_mut(&mut self.maps).insert(Child::Job, ns, job, kind, name);
    }

    pub fn is_empty(&self) -> bool {
        self.maps.pods.iter().all(HashMap::is_empty)
    }

    /// Whether the owners came (at least in part) from kube-state-metrics series.
    pub fn has_kube_state_metrics(&self) -> bool {
        self.ksm_pods > 0
    }

    /// The top owner of a pod: pod -> ReplicaSet -> Deployment, pod -> Job -> CronJob,
    /// StatefulSet and DaemonSet directly. A pod with no known controller is its own workload.
    pub fn resolve(&self, ns: &str, pod: &str) -> WorkloadKey {
        let m = &*self.maps;
        let owner = m
            .namespaces
            .get(ns)
            .and_then(|&n| Some((n as usize, m.pods[n as usize].get(pod)?)));
        let Some((n, owner)) = owner else {
            return WorkloadKey::new(ns, WorkloadKind::Pod, pod);
        };
        let kind = &*m.kinds[owner.kind as usize];
        let top = match kind {
            "ReplicaSet" => m.replica_sets[n].get(&owner.name).unwrap_or(owner),
            "Job" => m.jobs[n].get(&owner.name).unwrap_or(owner),
            _ => owner,
        };
        let (kind, name) = (&*m.kinds[top.kind as usize], &*top.name);
        match WorkloadKind::from_kind(kind) {
            Some(kind) => WorkloadKey::new(ns, kind, name),
            // A bare Job, or a controller we do not size (bare ReplicaSet, Node for static
            // pods, an operator's CRD): the pod stands alone.
            None if kind == "Job" => WorkloadKey::new(ns, WorkloadKind::Job, name),
            None => WorkloadKey::new(ns, WorkloadKind::Pod, pod),
        }
    }
}

/// kube-state-metrics writes `<none>` for a missing owner.
fn has_owner(kind: &str) -> bool {
    !kind.is_empty() && kind != "<none>"
}

/// The owner series' label sets (`/api/v1/series` for `kube_pod_owner`,
/// `kube_replicaset_owner` and `kube_job_owner`) fill the maps directly.
impl SeriesSink for Owners {
    fn series(&mut self, labels: &Labels) {
        let get = |k: &str| labels.get(k).map(String::as_str).unwrap_or("");
        let (ns, kind, name) = (get("namespace"), get("owner_kind"), get("owner_name"));
        let child = match get("__name__") {
            "kube_pod_owner" => {
                self.ksm_pods += 1;
                "pod"
            }
            "kube_replicaset_owner" => "replicaset",
            "kube_job_owner" => "job_name",
            _ => return,
        };
        let child = get(child);
        if ns.is_empty() || child.is_empty() || !has_owner(kind) {
            return;
        }
        match get("__name__") {
            "kube_pod_owner" => self.insert_pod(ns, child, kind, name),
            "kube_replicaset_owner" => self.insert_replica_set(ns, child, kind, name),
            _ => self.insert_job(ns, child, kind, name),
        }
    }

    fn sample(&mut self, _: f64, _: f64) {}
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
        assert_eq!(
            o.resolve("nowhere", "x"),
            WorkloadKey::new("nowhere", WorkloadKind::Pod, "x")
        );
    }

    #[test]
    fn a_clone_shares_the_maps_and_a_later_insert_copies_them() {
        let mut o = Owners::default();
        assert!(o.is_empty());
        o.insert_pod("shop", "db-0", "StatefulSet", "db");
        let shared = o.clone();
        assert!(Arc::ptr_eq(&o.maps, &shared.maps));
        // A later insert (live pods filled in after the owner series) leaves the clone as it was.
        o.insert_pod("shop", "db-0", "StatefulSet", "db2");
        o.insert_pod("shop", "web-1", "ReplicaSet", "web-a");
        assert_eq!(shared.resolve("shop", "db-0").name, "db");
        assert_eq!(o.resolve("shop", "db-0").name, "db2");
        assert_eq!(shared.resolve("shop", "web-1").kind, WorkloadKind::Pod);
        // A ReplicaSet without a known owner is its own (unsized) controller: the pod stands alone.
        assert_eq!(
            o.resolve("shop", "web-1"),
            WorkloadKey::new("shop", WorkloadKind::Pod, "web-1")
        );
    }

    #[test]
    fn reads_owner_label_sets() {
        let mut o = Owners::default();
        let set =
            |pairs: &[(&str, &str)]| -> Labels { pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect() };
        for labels in [
            set(&[
                ("__name__", "kube_pod_owner"),
                ("namespace", "shop"),
                ("pod", "web-abc-1"),
                ("owner_kind", "ReplicaSet"),
                ("owner_name", "web-abc"),
            ]),
            set(&[
                ("__name__", "kube_replicaset_owner"),
                ("namespace", "shop"),
                ("replicaset", "web-abc"),
                ("owner_kind", "Deployment"),
                ("owner_name", "web"),
            ]),
            set(&[
                ("__name__", "kube_pod_owner"),
                ("namespace", "shop"),
                ("pod", "lone"),
                ("owner_kind", "<none>"),
                ("owner_name", "<none>"),
            ]),
            set(&[
                ("__name__", "kube_job_owner"),
                ("namespace", "shop"),
                ("job_name", "n-1"),
                ("owner_kind", "CronJob"),
                ("owner_name", "n"),
            ]),
            set(&[
                ("__name__", "kube_pod_owner"),
                ("namespace", "shop"),
                ("pod", "n-1-x"),
                ("owner_kind", "Job"),
                ("owner_name", "n-1"),
            ]),
            set(&[("__name__", "up"), ("namespace", "shop")]),
        ] {
            o.series(&labels);
        }
        assert_eq!(o.ksm_pods, 3);
        assert!(o.has_kube_state_metrics());
        assert_eq!(
            o.resolve("shop", "web-abc-1"),
            WorkloadKey::new("shop", WorkloadKind::Deployment, "web")
        );
        assert_eq!(
            o.resolve("shop", "n-1-x"),
            WorkloadKey::new("shop", WorkloadKind::CronJob, "n")
        );
        assert_eq!(
            o.resolve("shop", "lone"),
            WorkloadKey::new("shop", WorkloadKind::Pod, "lone")
        );
    }
}
