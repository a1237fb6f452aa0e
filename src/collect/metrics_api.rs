//! Current usage from the `metrics.k8s.io/v1beta1` API (metrics-server): one list of
//! PodMetrics, cluster-wide or per namespace, reduced per workload x container over the live
//! pods, shown beside the history. metrics-server keeps only the last sample (a 1-minute
//! window), so this is "now", never a basis for a recommendation. A cluster without
//! metrics-server gets a warning with a hint, never a failed run.

use kube::Client;
use serde::Deserialize;
use serde_json::Value;

use super::cluster::{POD_METRICS, chain, dynamic_api, list_map, pod_metrics_resource, status_code};
use super::history::Owners;
use crate::model::{ContainerKey, parse_cpu, parse_memory};

pub use crate::model::{CurrentUsage, CurrentUsageMap};

/// What is read of a PodMetrics: its pod and each container's usage. The rest (labels copied
/// from the pod, timestamps, window) is skipped as the page is read: whole PodMetrics as
/// `DynamicObject`s were 36 MB of a 180 MB heap peak at 25,000 pods (issue 16).
#[derive(Debug, Default, Deserialize)]
pub struct PodMetrics {
    #[serde(default)]
    pub metadata: Meta,
    #[serde(default)]
    pub containers: Option<Vec<ContainerMetrics>>,
}

#[derive(Debug, Default, Deserialize)]
pub struct Meta {
    pub name: Option<String>,
    pub namespace: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
pub struct ContainerMetrics {
    pub name: Option<String>,
    #[serde(default)]
    pub usage: Option<Usage>,
}

/// A quantity that is not a string reads as missing (0), as it did from the JSON tree.
#[derive(Debug, Default, Deserialize)]
pub struct Usage {
    #[serde(default)]
    pub cpu: Option<Value>,
    #[serde(default)]
    pub memory: Option<Value>,
}

/// Reduces PodMetrics to usage per workload x container; pods map to workloads through
/// `owners` (the live owner map). Unparseable quantities become warnings naming the pod.
pub fn summarize(pod_metrics: &[PodMetrics], owners: &Owners, warnings: &mut Vec<String>) -> CurrentUsageMap {
    let mut out = CurrentUsageMap::new();
    for pm in pod_metrics {
        let ns = pm.metadata.namespace.as_deref().unwrap_or("");
        let pod = pm.metadata.name.as_deref().unwrap_or("");
        let workload = owners.resolve(ns, pod);
        for c in pm.containers.iter().flatten() {
            let name = c.name.as_deref().unwrap_or("");
            let quantity = |q: Option<&Value>, parse: fn(&str) -> Result<f64, crate::model::QuantityError>| {
                q.and_then(Value::as_str).map(parse).unwrap_or(Ok(0.0))
            };
            let usage = c.usage.as_ref();
            let (cpu, memory) = (
                usage.and_then(|u| u.cpu.as_ref()),
                usage.and_then(|u| u.memory.as_ref()),
            );
            match (quantity(cpu, parse_cpu), quantity(memory, parse_memory)) {
                (Ok(cpu), Ok(memory)) => out
                    .entry(ContainerKey::new(workload.clone(), name))
                    .or_default()
                    .add(cpu, memory),
                (Err(e), _) | (_, Err(e)) => warnings.push(format!("PodMetrics {ns}/{pod} container {name}: {e}")),
            }
        }
    }
    out
}

/// Lists PodMetrics (all namespaces, or each of `namespaces`) and summarizes them. Any
/// failure is a warning: a 404 means metrics-server is not installed.
pub async fn fetch(client: &Client, namespaces: &[String], owners: &Owners) -> (CurrentUsageMap, Vec<String>) {
    let resource = pod_metrics_resource();
    let scopes: Vec<Option<&str>> = if namespaces.is_empty() {
        vec![None]
    } else {
        namespaces.iter().map(|n| Some(n.as_str())).collect()
    };
    let mut warnings = Vec::new();
    let mut items = Vec::new();
    for ns in scopes {
        let api = dynamic_api(client, ns, &resource);
        match list_map(api, &POD_METRICS, None, |pm: PodMetrics| pm).await {
            Ok(list) => items.extend(list),
            Err(e) => {
                let hint = match status_code(&e) {
                    Some(404 | 503) => "\nhint: is metrics-server installed? (kubectl top pods uses the same API)",
                    _ => "",
                };
                let scope = ns.map(|n| format!(" in namespace {n}")).unwrap_or_default();
                warnings.push(format!(
                    "no current usage{scope} from metrics.k8s.io: {}{hint}",
                    chain(&e)
                ));
                // The API is missing for every namespace alike.
                if matches!(status_code(&e), Some(404 | 503)) {
                    break;
                }
            }
        }
    }
    let usage = summarize(&items, owners, &mut warnings);
    (usage, warnings)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{WorkloadKey, WorkloadKind};
    use serde_json::json;

    fn pm(pod: &str, cpu: &str, memory: &str) -> PodMetrics {
        serde_json::from_value(json!({
            "apiVersion": "metrics.k8s.io/v1beta1", "kind": "PodMetrics",
            "metadata": {"name": pod, "namespace": "shop"}, "timestamp": "2026-11-01T00:00:00Z", "window": "1m0s",
            "containers": [{"name": "app", "usage": {"cpu": cpu, "memory": memory}}],
        }))
        .unwrap()
    }

    #[test]
    fn sums_and_maxes_over_the_live_pods() {
        let mut owners = Owners::default();
        for p in ["web-a-1", "web-a-2"] {
            owners.insert_pod("shop", p, "ReplicaSet", "web-a");
        }
        owners.insert_replica_set("shop", "web-a", "Deployment", "web");
        let mut warnings = Vec::new();
        let got = summarize(
            &[
                pm("web-a-1", "250000000n", "100Mi"),
                pm("web-a-2", "50m", "300Mi"),
                pm("debug", "1m", "1Mi"),
                pm("broken", "lots", "1Mi"),
            ],
            &owners,
            &mut warnings,
        );
        let web = got[&ContainerKey::new(WorkloadKey::new("shop", WorkloadKind::Deployment, "web"), "app")];
        assert_eq!(web.pods, 2);
        assert!((web.cpu_max - 0.25).abs() < 1e-12 && (web.cpu_sum - 0.30).abs() < 1e-12);
        assert_eq!(web.memory_max, 300.0 * 1048576.0);
        assert_eq!(web.memory_sum, 400.0 * 1048576.0);
        assert!(got.contains_key(&ContainerKey::new(
            WorkloadKey::new("shop", WorkloadKind::Pod, "debug"),
            "app"
        )));
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(warnings[0].contains("shop/broken"), "{warnings:?}");
    }

    #[test]
    fn a_pod_metrics_reads_only_its_pod_and_usage_whatever_else_it_holds() {
        let pm: PodMetrics = serde_json::from_value(json!({
            "apiVersion": "metrics.k8s.io/v1beta1", "kind": "PodMetrics",
            "metadata": {"name": "web-1", "namespace": "shop", "labels": {"app": "web"},
                         "creationTimestamp": "2026-11-01T00:00:00Z"},
            "timestamp": "2026-11-01T00:00:00Z", "window": "1m0s",
            "containers": [
                {"name": "app", "usage": {"cpu": "20m", "memory": 5, "nvidia.com/gpu": "1"}},
                {"name": "side", "usage": null, "extra": [1, 2]},
            ],
        }))
        .unwrap();
        let mut warnings = Vec::new();
        let got = summarize(&[pm], &Owners::default(), &mut warnings);
        let key = |c: &str| ContainerKey::new(WorkloadKey::new("shop", WorkloadKind::Pod, "web-1"), c);
        // A quantity that is not a string reads as 0, as a missing one does.
        let app = got[&key("app")];
        assert!((app.cpu_max - 0.02).abs() < 1e-12 && app.memory_max == 0.0, "{app:?}");
        assert_eq!(got[&key("side")].pods, 1);
        assert!(warnings.is_empty(), "{warnings:?}");
    }
}
