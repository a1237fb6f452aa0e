//! Which workloads a run looks at: namespaces to include or exclude (the control-plane
//! namespaces are left out unless asked for), a label selector, workload kinds, and the
//! per-workload opt-out annotation `rightsizer.dev/ignore: "true"`. Pure, and applied in one
//! place after discovery (`run::collect`) to every input alike: the live API (which also
//! narrows its lists server-side), kube-state-metrics and snapshots. A filter never widens.

use std::collections::BTreeSet;

use super::selector::Selector;
use crate::model::{Workload, WorkloadKind};

/// Namespaces of the control plane and the cluster's own bookkeeping: sized by the platform
/// vendor, not by the team running rightsizer, so left out by default.
pub const SYSTEM_NAMESPACES: [&str; 3] = ["kube-system", "kube-public", "kube-node-lease"];

/// A workload annotated `rightsizer.dev/ignore: "true"` is skipped and reported as such.
pub const IGNORE_ANNOTATION: &str = "rightsizer.dev/ignore";

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Filter {
    /// Only these namespaces (empty: all). Listed one by one from the API.
    pub namespaces: Vec<String>,
    pub exclude_namespaces: Vec<String>,
    /// Also look at `kube-system`, `kube-public` and `kube-node-lease` when not named.
    pub include_system_namespaces: bool,
    /// A Kubernetes label selector (`app=web,tier!=db`), sent to the API server and matched
    /// against every workload's labels.
    pub selector: Option<Selector>,
    /// Only these kinds (empty: all).
    pub kinds: Vec<WorkloadKind>,
}

pub use crate::model::Skipped;

impl Filter {
    pub fn namespace_allowed(&self, ns: &str) -> bool {
        if self.exclude_namespaces.iter().any(|n| n == ns) {
            return false;
        }
        if !self.namespaces.is_empty() {
            // A namespace named explicitly is looked at, system or not.
            return self.namespaces.iter().any(|n| n == ns);
        }
        self.include_system_namespaces || !SYSTEM_NAMESPACES.contains(&ns)
    }

    pub fn kind_allowed(&self, kind: WorkloadKind) -> bool {
        self.kinds.is_empty() || self.kinds.contains(&kind)
    }

    pub fn labels_allowed(&self, w: &Workload) -> bool {
        self.selector.as_ref().is_none_or(|s| s.matches(&w.labels))
    }

    /// Keeps the workloads in the selected namespaces and kinds that match the selector; the
    /// ones that opted out by annotation are returned apart with the reason.
    pub fn apply(&self, workloads: Vec<Workload>) -> (Vec<Workload>, Vec<Skipped>) {
        let mut kept = Vec::with_capacity(workloads.len());
        let mut skipped = Vec::new();
        for w in workloads {
            if !self.namespace_allowed(&w.key.namespace) || !self.kind_allowed(w.key.kind) || !self.labels_allowed(&w) {
                continue;
            }
            match w.annotations.get(IGNORE_ANNOTATION).map(|v| v.trim()) {
                Some(v) if v.eq_ignore_ascii_case("true") => skipped.push(Skipped {
                    key: w.key,
                    reason: format!("annotation {IGNORE_ANNOTATION}: \"true\""),
                }),
                _ => kept.push(w),
            }
        }
        (kept, skipped)
    }

    /// Warnings for parts of the filter that matched nothing (a typo in `-n` or `-l` would
    /// otherwise look like a cluster with nothing to change), given what the filter kept and
    /// skipped.
    pub fn unmatched(&self, kept: &[Workload], skipped: &[Skipped]) -> Vec<String> {
        let seen: BTreeSet<&str> = kept
            .iter()
            .map(|w| w.key.namespace.as_str())
            .chain(skipped.iter().map(|s| s.key.namespace.as_str()))
            .collect();
        let mut out: Vec<String> = self
            .namespaces
            .iter()
            .filter(|n| !seen.contains(n.as_str()))
            .map(|n| format!("namespace {n} matched no workload"))
            .collect();
        if let Some(sel) = &self.selector
            && kept.is_empty()
            && skipped.is_empty()
        {
            out.push(format!("label selector {sel} matched no workload"));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::WorkloadKey;

    fn w(ns: &str, kind: WorkloadKind, name: &str, ignore: Option<&str>) -> Workload {
        Workload {
            key: WorkloadKey::new(ns, kind, name),
            replicas: Some(1),
            containers: Vec::new(),
            hpa: None,
            labels: Default::default(),
            annotations: ignore
                .map(|v| [(IGNORE_ANNOTATION.to_string(), v.to_string())].into())
                .unwrap_or_default(),
        }
    }

    fn names(f: &Filter) -> (Vec<String>, Vec<String>) {
        use WorkloadKind::*;
        let all = vec![
            w("shop", Deployment, "web", None),
            w("shop", Deployment, "legacy", Some("true")),
            w("shop", StatefulSet, "db", Some("false")),
            w("kube-system", DaemonSet, "proxy", None),
            w("data", CronJob, "report", None),
        ];
        let (kept, skipped) = f.apply(all);
        (
            kept.iter().map(|w| w.key.to_string()).collect(),
            skipped.iter().map(|s| s.key.to_string()).collect(),
        )
    }

    #[test]
    fn filters_read_as_documented() {
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        let default = Filter::default();
        assert_eq!(
            names(&default),
            (
                s(&["shop/Deployment/web", "shop/StatefulSet/db", "data/CronJob/report"]),
                s(&["shop/Deployment/legacy"])
            )
        );
        let system = Filter {
            include_system_namespaces: true,
            exclude_namespaces: s(&["data"]),
            ..Filter::default()
        };
        assert_eq!(
            names(&system).0,
            s(&[
                "shop/Deployment/web",
                "shop/StatefulSet/db",
                "kube-system/DaemonSet/proxy"
            ])
        );
        let named = Filter {
            namespaces: s(&["kube-system", "data"]),
            ..Filter::default()
        };
        assert_eq!(
            names(&named).0,
            s(&["kube-system/DaemonSet/proxy", "data/CronJob/report"])
        );
        let kinds = Filter {
            kinds: vec![WorkloadKind::StatefulSet, WorkloadKind::CronJob],
            ..Filter::default()
        };
        assert_eq!(names(&kinds).0, s(&["shop/StatefulSet/db", "data/CronJob/report"]));
    }
}
