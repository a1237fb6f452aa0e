//! Discovery without Kubernetes API access (`--no-kube-api`, or no kubeconfig and no
//! in-cluster config): the workloads, their containers with requests and limits, replicas and
//! HPAs, rebuilt from the kube-state-metrics series in Prometheus. A fixed set of cluster-wide
//! queries, whatever the number of workloads.
//!
//! What the series cannot tell: annotations (so `rightsizer.dev/ignore` has no effect), labels
//! (a `--selector` reads them from `kube_*_labels`, see `ksm_labels`), native sidecars (init containers are all `Init`), and the
//! target of an HPA when `kube_horizontalpodautoscaler_info` is missing (the HPA is then
//! assumed to scale the Deployment of its own name, the usual convention). Workloads are the
//! ones that had pods during the window; requests come from the pods alive at the end of the
//! window, or from the last pod seen when none is.
//!
//! Answers are streamed into [`Kept`], which keeps of each series only the labels read here
//! ([`KEEP`]) and its one value, so memory follows the workloads found, not the size of the
//! answers (kube-state-metrics series carry a dozen labels that discovery never reads).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use super::Error;
use super::filter::Filter;
use super::history::{Owners, Window};
use super::objects::Discovered;
use super::prometheus::{InstantSample, Labels, PromClient, SeriesSink};
use super::scope::Scope;
use crate::model::{ContainerRole, ContainerSpec, Hpa, HpaMetric, Resources, Workload, WorkloadKey, WorkloadKind};

fn label<'a>(s: &'a InstantSample, name: &str) -> &'a str {
    s.labels.get(name).map(String::as_str).unwrap_or("")
}

/// Every label discovery reads from a kube-state-metrics series; the others are dropped as
/// the answer streams in.
const KEEP: [&str; 17] = [
    "__name__",
    "container",
    "daemonset",
    "deployment",
    "horizontalpodautoscaler",
    "job_name",
    "metric_name",
    "metric_target_type",
    "namespace",
    "owner_kind",
    "owner_name",
    "pod",
    "replicaset",
    "resource",
    "scaletargetref_kind",
    "scaletargetref_name",
    "statefulset",
];

/// A sink that keeps, per series of an instant vector, the [`KEEP`] labels and the value.
#[derive(Debug, Default)]
struct Kept(Vec<InstantSample>);

impl SeriesSink for Kept {
    fn series(&mut self, labels: &Labels) {
        let labels: Labels = labels
            .iter()
            .filter(|(k, _)| KEEP.binary_search(&k.as_str()).is_ok())
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        self.0.push(InstantSample {
            labels,
            timestamp: f64::NAN,
            value: f64::NAN,
        });
    }

    fn sample(&mut self, t: f64, v: f64) {
        if let Some(s) = self.0.last_mut() {
            (s.timestamp, s.value) = (t, v);
        }
    }

    fn end_series(&mut self) {
        // A series without a point is no sample of an instant vector.
        if self.0.last().is_some_and(|s| s.timestamp.is_nan()) {
            self.0.pop();
        }
    }
}

/// kube-state-metrics writes `<none>` for a missing owner.
fn has_owner(kind: &str) -> bool {
    !kind.is_empty() && kind != "<none>"
}

/// The resource families: (metric, init containers, limits).
const RESOURCE_FAMILIES: [(&str, bool, bool); 4] = [
    ("kube_pod_container_resource_requests", false, false),
    ("kube_pod_container_resource_limits", false, true),
    ("kube_pod_init_container_resource_requests", true, false),
    ("kube_pod_init_container_resource_limits", true, true),
];

/// Replica counts: (metric, label naming the object, kind).
const REPLICAS: [(&str, &str, WorkloadKind); 3] = [
    ("kube_deployment_spec_replicas", "deployment", WorkloadKind::Deployment),
    ("kube_statefulset_replicas", "statefulset", WorkloadKind::StatefulSet),
    (
        "kube_daemonset_status_desired_number_scheduled",
        "daemonset",
        WorkloadKind::DaemonSet,
    ),
];

const HPA_FAMILIES: [&str; 6] = [
    "kube_horizontalpodautoscaler_info",
    "kube_horizontalpodautoscaler_spec_min_replicas",
    "kube_horizontalpodautoscaler_spec_max_replicas",
    "kube_horizontalpodautoscaler_spec_target_metric",
    "kube_horizontalpodautoscaler_status_current_replicas",
    "kube_horizontalpodautoscaler_status_desired_replicas",
];

/// The queries of one discovery, in a fixed order (see `discover` for how each is read),
/// without a selector.
pub fn queries(w: &Window) -> Vec<String> {
    plan(w, &Scope::default())
}

/// The queries of one discovery with the scope's matchers (`--prometheus-selector`).
pub fn plan(w: &Window, scope: &Scope) -> Vec<String> {
    let r = format!("{}s", w.length);
    let sel = |family: &str| scope.select(family, "");
    let max_by = |by: &str, family: &str| format!("max by ({}) (max_over_time({}[{r}]))", scope.by(by), sel(family));
    let mut q = vec![
        max_by("namespace, pod, owner_kind, owner_name", "kube_pod_owner"),
        max_by("namespace, replicaset, owner_kind, owner_name", "kube_replicaset_owner"),
        max_by("namespace, job_name, owner_kind, owner_name", "kube_job_owner"),
        max_by("namespace, pod, container", "kube_pod_container_status_restarts_total"),
    ];
    let by = scope.by("namespace, pod, container, resource");
    for (family, _, _) in RESOURCE_FAMILIES {
        // Alive at the end of the window, then the last value of every pod in the window.
        q.push(format!("max by ({by}) ({})", sel(family)));
        q.push(format!("max by ({by}) (last_over_time({}[{r}]))", sel(family)));
    }
    for (family, _, _) in REPLICAS {
        q.push(format!("last_over_time({}[{r}])", sel(family)));
    }
    for family in HPA_FAMILIES {
        q.push(format!("last_over_time({}[{r}])", sel(family)));
    }
    q
}

/// Rebuilds the workloads from kube-state-metrics series.
pub async fn discover(prom: &PromClient, window: &Window, filter: &Filter) -> Result<Discovered, Error> {
    let queries = plan(window, prom.scope());
    let answers = futures::future::try_join_all(
        queries
            .iter()
            .map(|q| async { Ok::<_, Error>(prom.query_into(q, window.end, Kept::default).await?.0) }),
    )
    .await?;
    let mut answers = answers.into_iter();
    let mut next = || answers.next().unwrap_or_default();
    let (pods, sets, jobs, restarts) = (next(), next(), next(), next());
    let mut warnings = Vec::new();
    if pods.is_empty() {
        return Err(super::history::missing(
            prom,
            window,
            "kube_pod_owner",
            "without Kubernetes API access rightsizer discovers workloads from kube-state-metrics; is it scraped?",
        )
        .await);
    }

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
        let (ns, rs) = (label(s, "namespace"), label(s, "replicaset"));
        owners.insert_replica_set(ns, rs, label(s, "owner_kind"), label(s, "owner_name"));
    }
    for s in jobs.iter().filter(|s| has_owner(label(s, "owner_kind"))) {
        let (ns, job) = (label(s, "namespace"), label(s, "job_name"));
        owners.insert_job(ns, job, label(s, "owner_kind"), label(s, "owner_name"));
    }
    let resolve = |s: &InstantSample| owners.resolve(label(s, "namespace"), label(s, "pod"));
    let wanted = |k: &WorkloadKey| filter.namespace_allowed(&k.namespace) && filter.kind_allowed(k.kind);

    // Workloads and their containers, in order: app containers, then init containers.
    let mut containers: BTreeMap<WorkloadKey, BTreeMap<(bool, String), Resources>> = BTreeMap::new();
    for s in &pods {
        let key = resolve(s);
        if wanted(&key) {
            containers.entry(key).or_default();
        }
    }
    for s in &restarts {
        if let Some(c) = containers.get_mut(&resolve(s)) {
            c.entry((false, label(s, "container").to_string())).or_default();
        }
    }
    for (family, init, limits) in RESOURCE_FAMILIES {
        let (live, last) = (next(), next());
        // Workloads with a live pod take live pods' values only: older pods may predate a rollout.
        let live_workloads: BTreeSet<WorkloadKey> = live.iter().map(resolve).collect();
        let fresh = live
            .iter()
            .chain(last.iter().filter(|s| !live_workloads.contains(&resolve(s))));
        for s in fresh {
            let Some(c) = containers.get_mut(&resolve(s)) else {
                continue;
            };
            let r = c.entry((init, label(s, "container").to_string())).or_default();
            let slot = match (label(s, "resource"), limits) {
                ("cpu", false) => &mut r.cpu_request,
                ("cpu", true) => &mut r.cpu_limit,
                ("memory", false) => &mut r.memory_request,
                ("memory", true) => &mut r.memory_limit,
                _ => continue,
            };
            if s.value.is_finite() && s.value >= 0.0 {
                *slot = Some(slot.map_or(s.value, |v: f64| v.max(s.value)));
            } else {
                warnings.push(format!(
                    "{family} of {}/{}: value {}",
                    label(s, "namespace"),
                    label(s, "pod"),
                    s.value
                ));
            }
        }
    }

    let mut replicas: HashMap<WorkloadKey, u32> = HashMap::new();
    for (_, name_label, kind) in REPLICAS {
        for s in next() {
            let key = WorkloadKey::new(label(&s, "namespace"), kind, label(&s, name_label));
            replicas.insert(key, s.value.max(0.0) as u32);
        }
    }
    let hpas = hpas(std::array::from_fn(|_| next()), &mut warnings);

    let mut workloads: Vec<Workload> = containers
        .into_iter()
        .map(|(key, cs)| {
            let replicas = replicas.get(&key).copied().or(Some(1));
            let containers = cs
                .into_iter()
                .map(|((init, name), mut resources)| {
                    // Kubernetes defaults a missing request to the limit.
                    resources.cpu_request = resources.cpu_request.or(resources.cpu_limit);
                    resources.memory_request = resources.memory_request.or(resources.memory_limit);
                    ContainerSpec {
                        name,
                        role: if init { ContainerRole::Init } else { ContainerRole::App },
                        resources,
                    }
                })
                .collect();
            Workload {
                key,
                replicas,
                containers,
                hpa: None,
                labels: BTreeMap::new(),
                annotations: BTreeMap::new(),
            }
        })
        .collect();
    for (target, hpa) in hpas {
        match workloads.binary_search_by(|w| w.key.cmp(&target)) {
            Ok(i) => workloads[i].hpa = Some(hpa),
            Err(_) if !wanted(&target) => {}
            Err(_) => warnings.push(format!(
                "HPA {}/{} targets {target}, which had no pods",
                target.namespace, hpa.name
            )),
        }
    }
    // The run applies the whole filter (selector included, from `ksm_labels`) afterwards.
    Ok(Discovered {
        workloads,
        warnings,
        ..Discovered::default()
    })
}

/// HPAs by the workload they scale, from the six HPA families in `HPA_FAMILIES` order.
fn hpas(families: [Vec<InstantSample>; 6], warnings: &mut Vec<String>) -> Vec<(WorkloadKey, Hpa)> {
    let [info, min, max, target, current, desired] = families;
    let id = |s: &InstantSample| {
        (
            label(s, "namespace").to_string(),
            label(s, "horizontalpodautoscaler").to_string(),
        )
    };
    let mut out: BTreeMap<(String, String), (WorkloadKey, Hpa)> = BTreeMap::new();
    for s in &max {
        let (ns, name) = id(s);
        let found = info.iter().find(|i| id(i) == (ns.clone(), name.clone()));
        let target = match found.map(|i| (label(i, "scaletargetref_kind"), label(i, "scaletargetref_name"))) {
            Some((kind, target)) if !target.is_empty() => match WorkloadKind::from_kind(kind) {
                Some(kind) => WorkloadKey::new(&ns, kind, target),
                None => continue,
            },
            _ => WorkloadKey::new(&ns, WorkloadKind::Deployment, &name),
        };
        let hpa = Hpa {
            name: name.clone(),
            min_replicas: 1,
            max_replicas: s.value.max(0.0) as u32,
            current_replicas: None,
            desired_replicas: None,
            metrics: Vec::new(),
        };
        out.insert((ns, name), (target, hpa));
    }
    if !max.is_empty() && info.is_empty() {
        warnings.push(
            "no kube_horizontalpodautoscaler_info series: each HPA is assumed to scale the Deployment of its own name"
                .into(),
        );
    }
    let value = |s: &InstantSample| s.value.max(0.0) as u32;
    for s in &min {
        if let Some((_, h)) = out.get_mut(&id(s)) {
            h.min_replicas = value(s);
        }
    }
    for s in &current {
        if let Some((_, h)) = out.get_mut(&id(s)) {
            h.current_replicas = Some(value(s));
        }
    }
    for s in &desired {
        if let Some((_, h)) = out.get_mut(&id(s)) {
            h.desired_replicas = Some(value(s));
        }
    }
    for s in &target {
        let Some((_, h)) = out.get_mut(&id(s)) else { continue };
        let resource = label(s, "metric_name").to_string();
        h.metrics.push(match label(s, "metric_target_type") {
            "utilization" => HpaMetric::Utilization {
                resource,
                target_percent: value(s),
            },
            "average" => HpaMetric::AverageValue {
                resource,
                value: s.value,
            },
            other => HpaMetric::Other(format!("{resource}/{other}")),
        });
    }
    out.into_values().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kept_series_hold_only_the_labels_discovery_reads() {
        assert!(KEEP.is_sorted(), "KEEP is searched by bisection");
        let mut k = Kept::default();
        let labels: Labels = [
            ("namespace", "shop"),
            ("pod", "web-1"),
            ("uid", "x"),
            ("instance", "ksm:8080"),
        ]
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
        k.series(&labels);
        k.sample(100.0, 1.0);
        k.end_series();
        k.series(&labels);
        k.end_series();
        assert_eq!(k.0.len(), 1, "a series without a point is dropped");
        assert_eq!(k.0[0].labels.keys().collect::<Vec<_>>(), ["namespace", "pod"]);
        assert_eq!(k.0[0].value, 1.0);
    }
}
