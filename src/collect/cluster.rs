//! Discovery through the Kubernetes API: builds the client from a kubeconfig (or in-cluster
//! config) exactly as kubectl would, lists the workload kinds, their ReplicaSets, Jobs and
//! pods, HPAs and VPAs with pagination and bounded concurrency, and turns API errors into
//! messages that name the missing RBAC permission. Every call goes through [`API_CALLS`], the
//! one table the deploy/ ClusterRole is checked against.
//!
//! A list is bounded ([`ListLimits`]): each page has a timeout (a body trickled byte by byte
//! ends there), 429, 5xx, timeouts and transport errors are retried a few times with backoff
//! (`Retry-After` capped, each retry logged at warn with its attempt), a continue token seen
//! twice or more pages than the cap end the list with an error, and the whole list has a
//! deadline. kube's own retry layer is off: it honours any `Retry-After` (an hour) and
//! retries 15 times without a word.
//!
//! Each page is decoded into the slim views of `slim` (only the fields rightsizer reads;
//! managedFields, status and the rest are skipped by serde as they are read) and converted
//! into workloads, owner tuples and listed pods as it arrives: a large cluster's lists are
//! never held as k8s-openapi objects.

use std::collections::HashSet;
use std::path::Path;
use std::time::Duration;

use futures::stream::{self, StreamExt};
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ApiResource, DynamicObject, ListParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config, Resource};
use serde::Deserialize;
use serde::de::DeserializeOwned;

use super::Error;
use super::filter::Filter;
use super::objects::{self, Converted, Discovered, Found, ListedHpa, ListedJob, ListedPod, LiveOwners, Owned};
use super::slim;
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
    let mut config = config;
    // Retries are ours (`ListLimits`): bounded, with a capped `Retry-After`, and logged.
    config.default_retry = false;
    Client::try_from(config).map_err(|e| Error::KubeConfig(e.to_string()))
}

/// The bounds of one list call (see the module documentation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListLimits {
    /// One page, from the request to the last byte of its body.
    pub request_timeout: Duration,
    /// Retries of a page after 429, 5xx, a timeout or a transport error.
    pub retries: u32,
    /// The first wait between attempts; it doubles per retry.
    pub backoff: Duration,
    /// The longest `Retry-After` honoured.
    pub max_retry_after: Duration,
    /// Pages of one list.
    pub max_pages: u32,
    /// All pages and retries of one list.
    pub deadline: Duration,
}

impl Default for ListLimits {
    fn default() -> Self {
        ListLimits {
            // apiserver itself ends a list at 60 s (its --request-timeout default).
            request_timeout: Duration::from_secs(60),
            // 0.5 + 1 + 2 + 4 s: rides out an apiserver restart or a leader change.
            retries: 4,
            backoff: Duration::from_millis(500),
            // Priority and fairness answers `Retry-After: 1`; more is a server asking for minutes.
            max_retry_after: Duration::from_secs(10),
            // 10,000 pages of 500: five million objects of one kind.
            max_pages: 10_000,
            deadline: Duration::from_secs(600),
        }
    }
}

/// Whether a failed page is worth another try, and the server's `Retry-After`.
fn transient(e: &kube::Error) -> Option<Option<Duration>> {
    match e {
        kube::Error::Api(status) if status.code == 429 || status.code >= 500 => {
            let after = status.details.as_ref().map(|d| u64::from(d.retry_after_seconds));
            Some(after.filter(|s| *s > 0).map(Duration::from_secs))
        }
        kube::Error::Api(_) => None,
        // A torn or garbled body, a refused or reset connection: transient.
        kube::Error::HyperError(_)
        | kube::Error::Service(_)
        | kube::Error::SerdeError(_)
        | kube::Error::ReadEvents(_)
        | kube::Error::HttpError(_) => Some(None),
        _ => None,
    }
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
    K: Resource + DeserializeOwned,
{
    list_map(api, call, selector, |k: K| k).await
}

/// [`list_all`], with each object decoded as `D` (the object's type, or a slim view of it
/// that skips the fields the caller does not read) and turned into what the caller keeps of
/// it as its page arrives.
pub async fn list_map<K, D, T>(
    api: Api<K>,
    call: &'static ApiCall,
    selector: Option<&str>,
    map: fn(D) -> T,
) -> Result<Vec<T>, Error>
where
    K: Resource,
    D: DeserializeOwned,
{
    list_bounded(api, call, selector, map, &ListLimits::default()).await
}

/// [`list_map`] within `limits`: the whole list ends by `limits.deadline`. `api` gives the
/// URL (kind, namespace) and the client.
pub async fn list_bounded<K, D, T>(
    api: Api<K>,
    call: &'static ApiCall,
    selector: Option<&str>,
    map: fn(D) -> T,
    limits: &ListLimits,
) -> Result<Vec<T>, Error>
where
    K: Resource,
    D: DeserializeOwned,
{
    let url = api.resource_url().to_string();
    let client = Client::from(api);
    let list = pages(&client, &url, call, selector, map, limits);
    match tokio::time::timeout(limits.deadline, list).await {
        Ok(listed) => listed,
        Err(_) => Err(Error::KubeList {
            resource: call.resource,
            problem: format!("did not finish within the list deadline of {:?}", limits.deadline),
            hint: "raise --kube-list-deadline for a very large or slow cluster".into(),
        }),
    }
}

/// One page of a list: its items, decoded as `D`, and the continue token. Every other field
/// is skipped.
#[derive(Debug, Deserialize)]
struct Page<D> {
    #[serde(default)]
    metadata: PageMeta,
    items: Option<Vec<D>>,
}

#[derive(Debug, Default, Deserialize)]
struct PageMeta {
    #[serde(rename = "continue")]
    continue_: Option<String>,
}

/// GETs one page as `Api::list` does (same query, same error handling: a non-2xx answer is a
/// `kube::Error::Api` with the server's status), decoded as a [`Page`] of `D`.
async fn get_page<D: DeserializeOwned>(client: &Client, url: &str, params: &ListParams) -> kube::Result<Page<D>> {
    let mut req = kube::core::Request::new(url)
        .list(params)
        .map_err(kube::Error::BuildRequest)?;
    req.extensions_mut().insert("list");
    client.request::<Page<D>>(req).await
}

/// One page, within the page timeout, retried while the failure is transient.
async fn page<D: DeserializeOwned>(
    client: &Client,
    url: &str,
    params: &ListParams,
    call: &'static ApiCall,
    limits: &ListLimits,
) -> Result<Page<D>, PageError> {
    let mut attempt = 0;
    loop {
        let failure = match tokio::time::timeout(limits.request_timeout, get_page(client, url, params)).await {
            Ok(Ok(page)) => return Ok(page),
            Ok(Err(e)) => match transient(&e) {
                Some(after) if attempt < limits.retries => (e.to_string(), after),
                _ => return Err(PageError::Kube(e)),
            },
            Err(_) if attempt < limits.retries => (format!("no answer within {:?}", limits.request_timeout), None),
            Err(_) => return Err(PageError::Timeout(attempt + 1)),
        };
        attempt += 1;
        let exp = limits.backoff * (1u32 << (attempt - 1).min(4));
        let delay = failure.1.map_or(exp, |after| after.min(limits.max_retry_after));
        tracing::warn!(
            resource = call.resource,
            error = %failure.0,
            attempt,
            delay_ms = delay.as_millis() as u64,
            "retrying kubernetes list (attempt {} of {})",
            attempt + 1,
            limits.retries + 1
        );
        tokio::time::sleep(delay).await;
    }
}

/// Why a page failed for good.
enum PageError {
    Kube(kube::Error),
    /// Every attempt timed out (this many).
    Timeout(u32),
}

async fn pages<D: DeserializeOwned, T>(
    client: &Client,
    url: &str,
    call: &'static ApiCall,
    selector: Option<&str>,
    map: fn(D) -> T,
    limits: &ListLimits,
) -> Result<Vec<T>, Error> {
    let limit_error = |problem: String, hint: &str| Error::KubeList {
        resource: call.resource,
        problem,
        hint: hint.into(),
    };
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
    let mut tokens: HashSet<String> = HashSet::new();
    let mut count = 0u32;
    loop {
        count += 1;
        if count > limits.max_pages {
            return Err(limit_error(
                format!("answered more than {} pages", limits.max_pages),
                "raise --kube-list-max-pages if the cluster really holds that many objects",
            ));
        }
        match page(client, url, &params, call, limits).await {
            Ok(page) => {
                items.extend(page.items.into_iter().flatten().map(map));
                match page.metadata.continue_.filter(|c| !c.is_empty()) {
                    // A server that hands out a token twice would have the list go round forever.
                    Some(token) if tokens.contains(&token) => {
                        return Err(limit_error(
                            format!("handed out the same continue token twice (page {count})"),
                            "the API server or a proxy in front of it is broken; list again later",
                        ));
                    }
                    Some(token) => {
                        params = params.continue_token(&token);
                        tokens.insert(token);
                    }
                    None => return Ok(items),
                }
            }
            Err(PageError::Kube(kube::Error::Api(status))) if status.code == 410 && !restarted => {
                tracing::warn!(
                    resource = call.resource,
                    "list continue token expired; listing again from the start"
                );
                restarted = true;
                items.clear();
                tokens.clear();
                params = first();
            }
            Err(PageError::Kube(e)) => return Err(api_error(e, call)),
            Err(PageError::Timeout(n)) => {
                return Err(limit_error(
                    format!("answered no page within {:?} ({n} attempts)", limits.request_timeout),
                    "raise --kube-request-timeout for a slow API server",
                ));
            }
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

/// Everything discovery lists, each object converted as its page arrived (no list is held as
/// k8s-openapi objects): the workloads and HPAs, the ReplicaSets' controllers, the pods and
/// the VPAs.
#[derive(Debug, Default, Clone)]
pub struct Listed {
    pub found: Found,
    pub replica_sets: Vec<Owned>,
    pub pods: Vec<ListedPod>,
    pub vpas: Vec<DynamicObject>,
    /// Namespaces or optional resources that could not be listed, as warnings.
    pub warnings: Vec<String>,
}

/// One list result, whatever its type.
enum Part {
    Workloads(WorkloadKind, Vec<Converted>),
    Jobs(Vec<ListedJob>),
    ReplicaSets(Vec<Option<Owned>>),
    Pods(Vec<ListedPod>),
    Hpas(Vec<Option<ListedHpa>>),
    Vpas(Vec<DynamicObject>),
}

async fn list_one(
    client: Client,
    call: &'static ApiCall,
    ns: Option<String>,
    selector: Option<String>,
    limits: ListLimits,
) -> Result<Part, Error> {
    let (ns, sel, l) = (ns.as_deref(), selector.as_deref(), &limits);
    let c = &client;
    // Each page is decoded into slim views and converted as it arrives. HPAs (about one per
    // scaled workload) are decoded whole and converted per page.
    Ok(match call.resource {
        "deployments" => {
            let listed = list_bounded(api::<Deployment>(c, ns), call, sel, objects::deployment, l).await?;
            Part::Workloads(WorkloadKind::Deployment, listed)
        }
        "statefulsets" => {
            let listed = list_bounded(api::<StatefulSet>(c, ns), call, sel, objects::stateful_set, l).await?;
            Part::Workloads(WorkloadKind::StatefulSet, listed)
        }
        "daemonsets" => {
            let listed = list_bounded(api::<DaemonSet>(c, ns), call, sel, objects::daemon_set, l).await?;
            Part::Workloads(WorkloadKind::DaemonSet, listed)
        }
        "cronjobs" => {
            let listed = list_bounded(api::<CronJob>(c, ns), call, sel, objects::cron_job, l).await?;
            Part::Workloads(WorkloadKind::CronJob, listed)
        }
        "jobs" => Part::Jobs(list_bounded(api::<Job>(c, ns), call, sel, objects::job, l).await?),
        "replicasets" => {
            let owner: fn(slim::ReplicaSet) -> Option<Owned> = objects::replica_set_owner;
            Part::ReplicaSets(list_bounded(api::<ReplicaSet>(c, ns), call, sel, owner, l).await?)
        }
        "pods" => Part::Pods(list_bounded(api::<Pod>(c, ns), call, sel, objects::listed_pod, l).await?),
        // HPAs and VPAs are matched to workloads by their target, whatever their own labels.
        "horizontalpodautoscalers" => {
            let hpa: fn(HorizontalPodAutoscaler) -> Option<ListedHpa> = objects::listed_hpa;
            Part::Hpas(list_bounded(api::<HorizontalPodAutoscaler>(c, ns), call, None, hpa, l).await?)
        }
        _ => {
            let vpas = dynamic_api(c, ns, &vpa_resource());
            Part::Vpas(list_bounded(vpas, call, None, |v: DynamicObject| v, l).await?)
        }
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
    list_with(client, filter, &ListLimits::default()).await
}

/// [`list`] within `limits`.
pub async fn list_with(client: &Client, filter: &Filter, limits: &ListLimits) -> Result<Listed, Error> {
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
                *limits,
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
        match part {
            Part::Workloads(kind, v) => listed.found.add(kind, v),
            Part::Jobs(v) => listed.found.add_jobs(v),
            Part::Hpas(v) => listed.found.add_hpas(v.into_iter().flatten()),
            Part::ReplicaSets(v) => listed.replica_sets.extend(v.into_iter().flatten()),
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
    discover_with(client, filter, &ListLimits::default()).await
}

/// [`discover`] within `limits`.
pub async fn discover_with(client: &Client, filter: &Filter, limits: &ListLimits) -> Result<Discovered, Error> {
    let listed = list_with(client, filter, limits).await?;
    let (mut workloads, mut warnings, job_owners) = listed.found.finish();
    let owners = LiveOwners::new(&listed.pods, listed.replica_sets, job_owners);
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_page_decodes_whatever_fields_rightsizer_does_not_read() {
        let pod: Pod = serde_json::from_value(json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "db-0", "namespace": "shop", "uid": "u", "resourceVersion": "7",
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "StatefulSet", "name": "db", "uid": "s", "controller": true}],
                "managedFields": [{"manager": "kubelet", "operation": "Update", "fieldsType": "FieldsV1",
                    "fieldsV1": {"f:status": {"f:conditions": {}}}}]},
            "spec": {"containers": [{"name": "db", "image": "pg:17", "resources": {"requests": {"cpu": "1"}}}],
                "nodeName": "node-1", "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": "d"}}]},
            "status": {"phase": "Running", "podIP": "10.0.0.9", "conditions": [{"type": "Ready", "status": "True"}]},
        }))
        .unwrap();
        let mut item = serde_json::to_value(&pod).unwrap();
        // Fields of a newer API, and an unread field of a type k8s-openapi would refuse.
        item["spec"]["futureField"] = json!({"nested": [1, {"deep": null}]});
        item["metadata"]["newMetadata"] = json!(true);
        item["spec"]["nodeName"] = json!(42);
        assert!(
            serde_json::from_value::<Pod>(item.clone()).is_err(),
            "the typed Pod refuses it"
        );
        let body = json!({
            "kind": "PodList", "apiVersion": "v1",
            "metadata": {"resourceVersion": "9", "continue": "next", "remainingItemCount": 3},
            "items": [item],
        });
        let page: Page<slim::Pod> = serde_json::from_slice(&serde_json::to_vec(&body).unwrap()).unwrap();
        assert_eq!(page.metadata.continue_.as_deref(), Some("next"));
        let pods: Vec<ListedPod> = page.items.into_iter().flatten().map(objects::listed_pod).collect();
        assert_eq!(pods.len(), 1);
        assert_eq!((pods[0].namespace.as_str(), pods[0].name.as_str()), ("shop", "db-0"));
        assert_eq!(pods[0].controller, Some(("StatefulSet".into(), "db".into())));

        // The last page: no continue token; an empty list may say `items: null`.
        let last: Page<slim::Deployment> =
            serde_json::from_value(json!({"kind": "DeploymentList", "metadata": {}, "items": null})).unwrap();
        assert!(last.metadata.continue_.is_none() && last.items.is_none());
    }
}
