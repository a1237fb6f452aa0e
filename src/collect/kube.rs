//! Discovery through the Kubernetes API: builds the client from a kubeconfig (or in-cluster
//! config) exactly as kubectl would, lists the workload kinds, their ReplicaSets, Jobs and
//! pods, HPAs and VPAs with pagination and bounded concurrency, and turns API errors into
//! messages that name the missing RBAC permission. Every call goes through [`API_CALLS`], the
//! one table the deploy/ ClusterRole is checked against.

use std::fmt::Debug;
use std::path::Path;

use futures::stream::{self, StreamExt};
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::batch::v1::{CronJob, Job};
use kube::api::{Api, ApiResource, DynamicObject, ListParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config, Resource};
use serde::de::DeserializeOwned;

use super::Error;
use super::filter::Filter;
use super::objects::{self, Discovered, ListedPod, LiveOwners, Objects};
use crate::model::WorkloadKind;

pub use crate::rbac::{
    API_CALLS, ApiCall, CRON_JOBS, DAEMON_SETS, DEPLOYMENTS, HPAS, JOBS, POD_METRICS, PODS, REPLICA_SETS,
    STATEFUL_SETS, VPAS,
};

/// `autoscaling.k8s.io/v1` VerticalPodAutoscaler, a CRD that may not be installed.
pub fn vpa_resource() -> ApiResource {
    dynamic(
        "autoscaling.k8s.io",
        "v1",
        "VerticalPodAutoscaler",
        "verticalpodautoscalers",
    )
}

/// `metrics.k8s.io/v1beta1` PodMetrics, served by metrics-server when installed.
pub fn pod_metrics_resource() -> ApiResource {
    dynamic("metrics.k8s.io", "v1beta1", "PodMetrics", "pods")
}

fn dynamic(group: &str, version: &str, kind: &str, plural: &str) -> ApiResource {
    ApiResource {
        group: group.into(),
        version: version.into(),
        api_version: format!("{group}/{version}"),
        kind: kind.into(),
        plural: plural.into(),
    }
}

/// Where to find the cluster: an explicit kubeconfig file, the usual places (`KUBECONFIG`,
/// `~/.kube/config`), or the in-cluster service account, with an optional context.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct KubeTarget {
    pub kubeconfig: Option<std::path::PathBuf>,
    pub context: Option<String>,
}

impl KubeTarget {
    /// Whether the user named a kubeconfig or context; if not, a missing configuration falls
    /// back to kube-state-metrics instead of failing.
    pub fn is_explicit(&self) -> bool {
        self.kubeconfig.is_some() || self.context.is_some()
    }
}

pub async fn client(target: &KubeTarget) -> Result<Client, Error> {
    crate::install_crypto_provider();
    let options = KubeConfigOptions {
        context: target.context.clone(),
        ..Default::default()
    };
    let config = match (&target.kubeconfig, &target.context) {
        (Some(path), _) => {
            check_kubeconfig(path)?;
            let kubeconfig =
                Kubeconfig::read_from(path).map_err(|e| Error::KubeConfig(format!("{}: {e}", path.display())))?;
            Config::from_custom_kubeconfig(kubeconfig, &options)
                .await
                .map_err(|e| Error::KubeConfig(e.to_string()))?
        }
        (None, Some(_)) => Config::from_kubeconfig(&options)
            .await
            .map_err(|e| Error::KubeConfig(e.to_string()))?,
        (None, None) => Config::infer().await.map_err(|e| Error::KubeConfig(e.to_string()))?,
    };
    Client::try_from(config).map_err(|e| Error::KubeConfig(e.to_string()))
}

/// Page size of list calls: large enough to keep round trips few, small enough that the API
/// server never builds a huge response (kubectl uses 500).
const PAGE: u32 = 500;

/// List calls in flight at once: enough to overlap round trips, few enough to stay well
/// inside the API server's priority-and-fairness share of one client (kubectl lists one at a
/// time; kube-state-metrics runs one reflector per kind).
pub const LIST_CONCURRENCY: usize = 4;

/// Maps a kube error to one that names the RBAC permission when the API said 403.
pub fn api_error(source: kube::Error, call: &'static ApiCall) -> Error {
    match crate::rbac::forbidden(&source, call.verb, call.group, call.resource, crate::rbac::Role::Read) {
        Some(f) => Error::Forbidden(f),
        None => Error::Kube {
            verb: call.verb,
            resource: call.resource,
            source,
        },
    }
}

/// The HTTP status of an API error, if the server answered one.
pub fn status_code(e: &Error) -> Option<u16> {
    match e {
        Error::Forbidden(_) => Some(403),
        Error::Kube {
            source: kube::Error::Api(status),
            ..
        } => Some(status.code),
        _ => None,
    }
}

/// Lists every object of a kind, page by page. An expired continue token (410 Gone) restarts
/// the list once, as the API conventions ask.
pub async fn list_all<K>(api: Api<K>, call: &'static ApiCall, selector: Option<&str>) -> Result<Vec<K>, Error>
where
    K: Resource + Clone + DeserializeOwned + Debug,
{
    list_map(api, call, selector, |k| k).await
}

/// [`list_all`], with each object turned into what the caller keeps of it as its page
/// arrives.
pub async fn list_map<K, T>(
    api: Api<K>,
    call: &'static ApiCall,
    selector: Option<&str>,
    map: fn(K) -> T,
) -> Result<Vec<T>, Error>
where
    K: Resource + Clone + DeserializeOwned + Debug,
{
    let first = || {
        let params = ListParams::default().limit(PAGE);
        match selector {
            Some(s) => params.labels(s),
            None => params,
        }
    };
    let mut items = Vec::new();
    let mut params = first();
    let mut restarted = false;
    loop {
        match api.list(&params).await {
            Ok(page) => {
                items.extend(page.items.into_iter().map(map));
                match page.metadata.continue_.filter(|c| !c.is_empty()) {
                    Some(token) => params = params.continue_token(&token),
                    None => return Ok(items),
                }
            }
            Err(kube::Error::Api(status)) if status.code == 410 && !restarted => {
                tracing::warn!(
                    resource = call.resource,
                    "list continue token expired; listing again from the start"
                );
                restarted = true;
                items.clear();
                params = first();
            }
            Err(e) => return Err(api_error(e, call)),
        }
    }
}

fn api<K>(client: &Client, namespace: Option<&str>) -> Api<K>
where
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>,
{
    match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    }
}

/// A namespaced API for a dynamic resource (a CRD or an aggregated API).
pub fn dynamic_api(client: &Client, namespace: Option<&str>, resource: &ApiResource) -> Api<DynamicObject> {
    match namespace {
        Some(ns) => Api::namespaced_with(client.clone(), ns, resource),
        None => Api::all_with(client.clone(), resource),
    }
}

/// Everything discovery lists, before conversion.
#[derive(Debug, Default, Clone)]
pub struct Listed {
    pub objects: Objects,
    pub replica_sets: Vec<ReplicaSet>,
    pub pods: Vec<ListedPod>,
    pub vpas: Vec<DynamicObject>,
    /// Namespaces or optional resources that could not be listed, as warnings.
    pub warnings: Vec<String>,
}

/// One list result, whatever its type.
enum Part {
    Deployments(Vec<Deployment>),
    StatefulSets(Vec<StatefulSet>),
    DaemonSets(Vec<DaemonSet>),
    CronJobs(Vec<CronJob>),
    Jobs(Vec<Job>),
    ReplicaSets(Vec<ReplicaSet>),
    Pods(Vec<ListedPod>),
    Hpas(Vec<HorizontalPodAutoscaler>),
    Vpas(Vec<DynamicObject>),
}

async fn list_one(
    client: Client,
    call: &'static ApiCall,
    ns: Option<String>,
    selector: Option<String>,
) -> Result<Part, Error> {
    let (ns, sel) = (ns.as_deref(), selector.as_deref());
    Ok(match call.resource {
        "deployments" => Part::Deployments(list_all(api(&client, ns), call, sel).await?),
        "statefulsets" => Part::StatefulSets(list_all(api(&client, ns), call, sel).await?),
        "daemonsets" => Part::DaemonSets(list_all(api(&client, ns), call, sel).await?),
        "cronjobs" => Part::CronJobs(list_all(api(&client, ns), call, sel).await?),
        "jobs" => Part::Jobs(list_all(api(&client, ns), call, sel).await?),
        "replicasets" => Part::ReplicaSets(list_map(api(&client, ns), call, sel, objects::trim_replica_set).await?),
        "pods" => Part::Pods(list_map(api(&client, ns), call, sel, objects::listed_pod).await?),
        // HPAs and VPAs are matched to workloads by their target, whatever their own labels.
        "horizontalpodautoscalers" => Part::Hpas(list_all(api(&client, ns), call, None).await?),
        _ => Part::Vpas(list_all(dynamic_api(&client, ns, &vpa_resource()), call, None).await?),
    })
}

/// The calls a filter needs. ReplicaSets, Jobs and pods are always listed: they map live pods
/// to their workloads (and bare Jobs and pods are workloads themselves).
fn calls_for(filter: &Filter) -> Vec<&'static ApiCall> {
    let mut calls = Vec::new();
    for (kind, call) in [
        (WorkloadKind::Deployment, &DEPLOYMENTS),
        (WorkloadKind::StatefulSet, &STATEFUL_SETS),
        (WorkloadKind::DaemonSet, &DAEMON_SETS),
        (WorkloadKind::CronJob, &CRON_JOBS),
    ] {
        if filter.kind_allowed(kind) {
            calls.push(call);
        }
    }
    calls.extend([&JOBS, &REPLICA_SETS, &PODS, &HPAS, &VPAS]);
    calls
}

/// Lists what the filter asks for: cluster-wide, or namespace by namespace with `--namespace`.
/// At most [`LIST_CONCURRENCY`] lists run at once. A namespace that answers 403 or 404 is
/// reported and skipped while the others go on; the run fails only when every namespace
/// failed. A missing VPA CRD (404) means no VPAs.
pub async fn list(client: &Client, filter: &Filter) -> Result<Listed, Error> {
    let scopes: Vec<Option<String>> = if filter.namespaces.is_empty() {
        vec![None]
    } else {
        filter.namespaces.iter().map(|n| Some(n.clone())).collect()
    };
    let mut tasks = Vec::new();
    for ns in &scopes {
        for call in calls_for(filter) {
            tasks.push((call, ns.clone()));
        }
    }
    let results: Vec<(&'static ApiCall, Option<String>, Result<Part, Error>)> = stream::iter(tasks)
        .map(|(call, ns)| {
            let fut = list_one(
                client.clone(),
                call,
                ns.clone(),
                filter.selector.as_ref().map(|s| s.to_string()),
            );
            async move { (call, ns, fut.await) }
        })
        .buffer_unordered(LIST_CONCURRENCY)
        .collect()
        .await;

    let mut listed = Listed::default();
    let mut failed: Vec<String> = Vec::new();
    let mut first_error = None;
    for (call, ns, result) in results {
        let part = match result {
            Ok(part) => part,
            Err(e) if call == &VPAS && status_code(&e) == Some(404) => {
                tracing::debug!("the VerticalPodAutoscaler CRD is not installed: no VPAs");
                continue;
            }
            Err(e) if call == &VPAS => {
                listed.warnings.push(format!(
                    "cannot list VerticalPodAutoscalers, workloads managed by a VPA are not flagged: {}",
                    chain(&e)
                ));
                continue;
            }
            Err(e) => match (&ns, status_code(&e)) {
                (Some(ns), Some(403 | 404)) => {
                    listed.warnings.push(format!("namespace {ns} skipped: {}", chain(&e)));
                    if !failed.contains(ns) {
                        failed.push(ns.clone());
                    }
                    first_error.get_or_insert(e);
                    continue;
                }
                _ => return Err(e),
            },
        };
        let o = &mut listed.objects;
        match part {
            Part::Deployments(v) => o.deployments.extend(v),
            Part::StatefulSets(v) => o.stateful_sets.extend(v),
            Part::DaemonSets(v) => o.daemon_sets.extend(v),
            Part::CronJobs(v) => o.cron_jobs.extend(v),
            Part::Jobs(v) => o.jobs.extend(v),
            Part::Hpas(v) => o.hpas.extend(v),
            Part::ReplicaSets(v) => listed.replica_sets.extend(v),
            Part::Pods(v) => listed.pods.extend(v),
            Part::Vpas(v) => listed.vpas.extend(v),
        }
    }
    if let Some(e) = first_error
        && failed.len() == scopes.len()
    {
        return Err(e);
    }
    listed.warnings.sort();
    Ok(listed)
}

/// Lists and converts: the workloads of the namespaces and kinds the filter lists (the run
/// applies the whole filter afterwards, as for every input), their VPA modes and the live pod
/// owners.
pub async fn discover(client: &Client, filter: &Filter) -> Result<Discovered, Error> {
    let listed = list(client, filter).await?;
    let (mut workloads, mut warnings) = objects::workloads(&listed.objects);
    let owners = LiveOwners::from_objects(&listed.pods, &listed.replica_sets, &listed.objects.jobs);
    workloads.extend(objects::bare_pods(&listed.pods, &owners.owners(), &mut warnings));
    workloads.sort_by(|a, b| a.key.cmp(&b.key));
    let vpa = objects::vpa_modes(&listed.vpas);
    warnings.extend(listed.warnings);
    Ok(Discovered {
        workloads,
        vpa,
        owners,
        skipped: Vec::new(),
        warnings,
    })
}

/// The error and its causes on one line, for warnings.
pub fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// Whether a kubeconfig path exists, for a clear error before kube's own.
pub fn check_kubeconfig(path: &Path) -> Result<(), Error> {
    if path.exists() {
        Ok(())
    } else {
        Err(Error::KubeConfig(format!(
            "kubeconfig {} does not exist",
            path.display()
        )))
    }
}
