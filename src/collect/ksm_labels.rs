//! Workload labels without the Kubernetes API, from kube-state-metrics' `kube_*_labels`
//! series, so that a label selector applies to kube-state-metrics discovery as it does to the
//! API (never a silent widening). kube-state-metrics exports only the labels its
//! `--metric-labels-allowlist` names, as `label_<key with non-alphanumerics as _>`: a key of
//! the selector that no series carries cannot be evaluated, and that is an error, not a guess.
//! Six queries (one per family, whatever the number of workloads), only when a selector is
//! given.

use std::collections::BTreeMap;

use super::Error;
use super::prometheus::PromClient;
use super::scope::Scope;
use super::selector::{Selector, ksm_label};
use crate::model::{Window, WorkloadKey, WorkloadKind};

/// `(series, label naming the object, kind)`.
const FAMILIES: [(&str, &str, WorkloadKind); 6] = [
    ("kube_deployment_labels", "deployment", WorkloadKind::Deployment),
    ("kube_statefulset_labels", "statefulset", WorkloadKind::StatefulSet),
    ("kube_daemonset_labels", "daemonset", WorkloadKind::DaemonSet),
    ("kube_cronjob_labels", "cronjob", WorkloadKind::CronJob),
    ("kube_job_labels", "job_name", WorkloadKind::Job),
    ("kube_pod_labels", "pod", WorkloadKind::Pod),
];

/// The queries, one per family: the last labels of every object seen in the window, with
/// the scope's matchers (`--prometheus-selector`).
pub fn queries(window: &Window, scope: &Scope) -> Vec<String> {
    FAMILIES
        .iter()
        .map(|(family, _, _)| format!("last_over_time({}[{}s])", scope.select(family, ""), window.length))
        .collect()
}

/// The labels of each workload as the selector can read them (only the selector's keys).
pub async fn fetch(
    prom: &PromClient,
    window: &Window,
    selector: &Selector,
) -> Result<BTreeMap<WorkloadKey, BTreeMap<String, String>>, Error> {
    let answers =
        futures::future::try_join_all(queries(window, prom.scope()).iter().map(|q| prom.query(q, window.end))).await?;
    let keys: Vec<(String, String)> = selector.keys().map(|k| (k.to_string(), ksm_label(k))).collect();
    let mut seen = vec![false; keys.len()];
    let mut out: BTreeMap<WorkloadKey, BTreeMap<String, String>> = BTreeMap::new();
    for (s, (_, object, kind)) in answers
        .iter()
        .zip(FAMILIES.iter())
        .flat_map(|(samples, family)| samples.iter().map(move |s| (s, family)))
    {
        let (Some(ns), Some(obj)) = (s.labels.get("namespace"), s.labels.get(*object)) else {
            continue;
        };
        let labels = out.entry(WorkloadKey::new(ns.clone(), *kind, obj.clone())).or_default();
        for (i, (key, ksm)) in keys.iter().enumerate() {
            if let Some(v) = s.labels.get(ksm) {
                seen[i] = true;
                // kube-state-metrics writes an empty value for a label the object lacks.
                if !v.is_empty() {
                    labels.insert(key.clone(), v.clone());
                }
            }
        }
    }
    let missing: Vec<&str> = keys
        .iter()
        .zip(&seen)
        .filter(|(_, seen)| !**seen)
        .map(|((k, _), _)| k.as_str())
        .collect();
    if !missing.is_empty() {
        return Err(Error::Config(format!(
            "the label selector {selector:?} cannot be applied without the kubernetes api: kube-state-metrics exports no label {} (no kube_*_labels series carries {})\nhint: add the label to kube-state-metrics' --metric-labels-allowlist, or run with API access",
            missing.join(", "),
            missing.iter().map(|k| ksm_label(k)).collect::<Vec<_>>().join(", "),
            selector = selector.as_str(),
        )));
    }
    Ok(out)
}
