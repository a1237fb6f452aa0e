//! An in-process fake Kubernetes API server for the integration tests: the input side of the
//! pipeline (`collect/cluster.rs`, `collect/metrics_api.rs`) and the patch writers in `emit/` talk
//! to it through a real `kube::Client` built from a generated kubeconfig, the same code path
//! as against a cluster.
//!
//! It speaks the REST protocol of kube-apiserver with k8s-openapi JSON: discovery, get, list
//! (label and field selectors, `limit`/`continue` pages), create, update, delete and the four
//! patch content types, with errors as real `Status` objects. Tests seed objects with
//! [`FakeApi::insert`] / [`FakeApi::insert_dynamic`], inject failures with [`FakeApi::deny`] and
//! [`FakeApi::fail_next`], and assert on [`FakeApi::requests`] and [`FakeApi::patches`].
#![allow(dead_code)]

mod discovery;
mod patch;
mod request;
mod selector;
mod server;
mod status;
mod write;

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::MutexGuard;

use kube::config::{KubeConfigOptions, Kubeconfig};
use serde_json::{Value, json};

use super::serve::{self, Serving, lock};

/// One request as the server saw it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordedRequest {
    pub method: String,
    pub path: String,
    /// The raw query string, still percent-encoded ("" when absent).
    pub query: String,
    /// Kubernetes verb: get, list, watch, create, update, patch, delete, deletecollection.
    pub verb: String,
    /// API group, "" for core and for discovery paths.
    pub group: String,
    /// Resource plural ("deployments"), "" for discovery paths.
    pub resource: String,
    pub subresource: Option<String>,
    pub namespace: Option<String>,
    pub name: Option<String>,
    pub content_type: Option<String>,
    /// HTTP status of the reply.
    pub status: u16,
}

/// One PATCH request, whatever its outcome.
#[derive(Clone, Debug, PartialEq)]
pub struct RecordedPatch {
    pub path: String,
    /// Content type without parameters, e.g. `application/apply-patch+yaml`.
    pub content_type: String,
    pub field_manager: Option<String>,
    pub force: bool,
    pub dry_run: bool,
    /// The body parsed as JSON (YAML for apply); a body that does not parse is kept as a string.
    pub body: Value,
}

/// A resource the server serves: group/version/kind, plural and scope.
#[derive(Clone, Debug, PartialEq, Eq)]
struct ResourceType {
    group: String,
    version: String,
    kind: String,
    plural: String,
    namespaced: bool,
    /// Built into kube-apiserver (strategic merge patch allowed) rather than a CRD or an
    /// aggregated API.
    builtin: bool,
}

impl ResourceType {
    fn new(group: &str, version: &str, kind: &str, plural: &str, namespaced: bool) -> Self {
        ResourceType {
            group: group.into(),
            version: version.into(),
            kind: kind.into(),
            plural: plural.into(),
            namespaced,
            builtin: true,
        }
    }

    fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// `deployments.apps`, or `pods` in the core group, as in apiserver messages.
    fn qualified(&self) -> String {
        if self.group.is_empty() {
            self.plural.clone()
        } else {
            format!("{}.{}", self.plural, self.group)
        }
    }

    /// metrics.k8s.io is an aggregated, read-only API.
    fn read_only(&self) -> bool {
        self.group == "metrics.k8s.io"
    }
}

/// The kinds kube-apiserver serves without any CRD, in the groups the recommender reads.
fn builtin_types() -> Vec<ResourceType> {
    vec![
        ResourceType::new("", "v1", "Namespace", "namespaces", false),
        ResourceType::new("", "v1", "Node", "nodes", false),
        ResourceType::new("", "v1", "Pod", "pods", true),
        ResourceType::new("", "v1", "LimitRange", "limitranges", true),
        ResourceType::new("", "v1", "ResourceQuota", "resourcequotas", true),
        ResourceType::new("apps", "v1", "Deployment", "deployments", true),
        ResourceType::new("apps", "v1", "ReplicaSet", "replicasets", true),
        ResourceType::new("apps", "v1", "StatefulSet", "statefulsets", true),
        ResourceType::new("apps", "v1", "DaemonSet", "daemonsets", true),
        ResourceType::new("batch", "v1", "Job", "jobs", true),
        ResourceType::new("batch", "v1", "CronJob", "cronjobs", true),
        ResourceType::new(
            "autoscaling",
            "v2",
            "HorizontalPodAutoscaler",
            "horizontalpodautoscalers",
            true,
        ),
    ]
}

/// A failure to inject into the next requests under a path prefix.
#[derive(Debug)]
struct Injection {
    prefix: String,
    status: u16,
    remaining: usize,
}

/// Everything the server knows, behind one mutex.
#[derive(Debug)]
struct State {
    types: Vec<ResourceType>,
    /// (group, plural) -> (namespace or "", name) -> object; the key order is the list order.
    objects: BTreeMap<(String, String), BTreeMap<(String, String), Value>>,
    /// The global resourceVersion counter, like etcd's revision.
    revision: u64,
    uids: u64,
    /// Continue tokens issued at or before this revision answer 410 Expired.
    compacted: u64,
    denied: HashSet<(String, String, String)>,
    injections: Vec<Injection>,
    requests: Vec<RecordedRequest>,
    patches: Vec<RecordedPatch>,
    page_size_cap: Option<usize>,
    /// Every list page, the last included, carries a continue token back to the start.
    endless_continue: bool,
    user: String,
    retry_after_secs: u64,
    address: String,
}

impl State {
    fn new(address: String) -> Self {
        State {
            types: builtin_types(),
            objects: BTreeMap::new(),
            revision: 0,
            uids: 0,
            compacted: 0,
            denied: HashSet::new(),
            injections: Vec::new(),
            requests: Vec::new(),
            patches: Vec::new(),
            page_size_cap: None,
            endless_continue: false,
            user: "system:serviceaccount:rightsizer:rightsizer".into(),
            // kube-apiserver's priority and fairness answers 429 with `Retry-After: 1`.
            retry_after_secs: 1,
            address,
        }
    }

    fn register(&mut self, rt: ResourceType) -> ResourceType {
        if let Some(found) = self
            .types
            .iter()
            .find(|t| t.group == rt.group && t.version == rt.version && t.plural == rt.plural)
        {
            return found.clone();
        }
        self.types.push(rt.clone());
        rt
    }

    fn find_type(&self, group: &str, version: &str, plural: &str) -> Option<&ResourceType> {
        self.types
            .iter()
            .find(|t| t.group == group && t.version == version && t.plural == plural)
    }

    fn next_revision(&mut self) -> String {
        self.revision += 1;
        self.revision.to_string()
    }

    fn next_uid(&mut self) -> String {
        self.uids += 1;
        format!("00000000-0000-4000-8000-{:012x}", self.uids)
    }

    /// Stores `obj` as the fixture of a test: fills in apiVersion, kind, namespace, uid,
    /// creationTimestamp and a fresh resourceVersion.
    fn seed(&mut self, rt: &ResourceType, mut obj: Value) {
        obj["apiVersion"] = json!(rt.api_version());
        obj["kind"] = json!(rt.kind);
        if !obj["metadata"].is_object() {
            obj["metadata"] = json!({});
        }
        let name = obj["metadata"]["name"]
            .as_str()
            .expect("fake api: object to insert has no metadata.name")
            .to_string();
        let namespace = if rt.namespaced {
            let ns = obj["metadata"]["namespace"].as_str().unwrap_or("default").to_string();
            obj["metadata"]["namespace"] = json!(ns);
            ns
        } else {
            if let Some(meta) = obj["metadata"].as_object_mut() {
                meta.remove("namespace");
            }
            String::new()
        };
        if obj["metadata"]["uid"].as_str().is_none() {
            obj["metadata"]["uid"] = json!(self.next_uid());
        }
        if obj["metadata"]["creationTimestamp"].as_str().is_none() {
            obj["metadata"]["creationTimestamp"] = json!(now());
        }
        obj["metadata"]["resourceVersion"] = json!(self.next_revision());
        self.store(rt).insert((namespace, name), obj);
    }

    fn store(&mut self, rt: &ResourceType) -> &mut BTreeMap<(String, String), Value> {
        self.objects.entry((rt.group.clone(), rt.plural.clone())).or_default()
    }
}

/// Kubernetes timestamps: RFC 3339 in UTC with whole seconds.
fn now() -> String {
    k8s_openapi::jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

/// The fake server; dropping it shuts the server down.
pub struct FakeApi {
    server: Serving<State>,
}

impl FakeApi {
    /// Binds 127.0.0.1:0 and serves on the current tokio runtime.
    pub async fn start() -> FakeApi {
        FakeApi {
            server: Serving::start("fake api", State::new).await,
        }
    }

    /// Starts the server on a thread with its own runtime, for callers without one
    /// (benchmarks). Clients still need a runtime of their own.
    pub fn start_blocking() -> FakeApi {
        FakeApi {
            server: Serving::start_blocking("fake api", State::new),
        }
    }

    /// `http://127.0.0.1:PORT`
    pub fn url(&self) -> String {
        format!("http://{}", self.server.addr)
    }

    /// Writes a kubeconfig with cluster, user and context `fake` (current context, namespace
    /// `default`) to `dir/kubeconfig` and returns its path.
    pub fn write_kubeconfig(&self, dir: &Path) -> PathBuf {
        let path = dir.join("kubeconfig");
        let text = format!(
            "apiVersion: v1
kind: Config
clusters:
- name: fake
  cluster:
    server: {url}
users:
- name: fake
  user:
    token: fake-token
contexts:
- name: fake
  context:
    cluster: fake
    user: fake
    namespace: default
current-context: fake
",
            url = self.url()
        );
        std::fs::write(&path, text).expect("fake api: write kubeconfig");
        path
    }

    /// A client built from a kubeconfig file, as against a real cluster.
    pub async fn client(&self) -> kube::Client {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let dir = tempfile::tempdir().expect("fake api: temp dir for kubeconfig");
        let path = self.write_kubeconfig(dir.path());
        let kubeconfig = Kubeconfig::read_from(&path).expect("fake api: read kubeconfig");
        let config = kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
            .await
            .expect("fake api: kubeconfig to config");
        kube::Client::try_from(config).expect("fake api: build client")
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        lock(&self.server.state)
    }

    /// Stores a typed k8s-openapi object (Namespace, Pod, Deployment, ...), replacing any
    /// object of that name. uid and creationTimestamp are filled in when missing; the
    /// resourceVersion is always fresh.
    pub fn insert<K>(&self, obj: K)
    where
        K: kube::Resource<DynamicType = ()> + serde::Serialize,
    {
        let value = serde_json::to_value(&obj).expect("fake api: serialize object");
        let (group, version) = (K::group(&()), K::version(&()));
        let (kind, plural) = (K::kind(&()), K::plural(&()));
        let mut state = self.lock();
        let known = state
            .types
            .iter()
            .find(|t| t.group == group && t.plural == plural)
            .map(|t| t.namespaced);
        let namespaced = known.unwrap_or_else(|| value["metadata"]["namespace"].is_string());
        let rt = state.register(ResourceType::new(&group, &version, &kind, &plural, namespaced));
        state.seed(&rt, value);
    }

    /// Stores an object of any kind, registering the kind for discovery: a CRD such as
    /// `autoscaling.k8s.io/v1` `VerticalPodAutoscaler` (plural `verticalpodautoscalers`) or an
    /// aggregated API such as `metrics.k8s.io/v1beta1` `PodMetrics` (plural `pods`).
    pub fn insert_dynamic(&self, group: &str, version: &str, kind: &str, plural: &str, namespaced: bool, obj: Value) {
        let mut state = self.lock();
        let mut rt = ResourceType::new(group, version, kind, plural, namespaced);
        rt.builtin = false;
        let rt = state.register(rt);
        state.seed(&rt, obj);
    }

    /// Serves every object of a generated cluster: namespaces, workloads, their ReplicaSets,
    /// Jobs and pods, HPAs and the PodMetrics of metrics.k8s.io.
    pub fn load(&self, cluster: &rightsizer_synth::Cluster) {
        let o = &cluster.objects;
        o.namespaces.iter().for_each(|x| self.insert(x.clone()));
        o.deployments.iter().for_each(|x| self.insert(x.clone()));
        o.replica_sets.iter().for_each(|x| self.insert(x.clone()));
        o.stateful_sets.iter().for_each(|x| self.insert(x.clone()));
        o.daemon_sets.iter().for_each(|x| self.insert(x.clone()));
        o.cron_jobs.iter().for_each(|x| self.insert(x.clone()));
        o.jobs.iter().for_each(|x| self.insert(x.clone()));
        o.pods.iter().for_each(|x| self.insert(x.clone()));
        o.hpas.iter().for_each(|x| self.insert(x.clone()));
        for m in &o.pod_metrics {
            self.insert_dynamic("metrics.k8s.io", "v1beta1", "PodMetrics", "pods", true, m.clone());
        }
    }

    /// Stores an `autoscaling.k8s.io/v1` VerticalPodAutoscaler named `name` that targets the
    /// Deployment `target` in `namespace` with `updateMode: mode`.
    /// The `kube-root-ca.crt` ConfigMap every namespace has: registers the ConfigMap kind
    /// with the server, so a ConfigMap can be applied in `namespace`.
    pub fn insert_root_ca(&self, namespace: &str) {
        self.insert(k8s_openapi::api::core::v1::ConfigMap {
            metadata: kube::api::ObjectMeta {
                name: Some("kube-root-ca.crt".into()),
                namespace: Some(namespace.into()),
                ..Default::default()
            },
            ..Default::default()
        });
    }

    pub fn insert_vpa(&self, namespace: &str, name: &str, target: &str, mode: &str) {
        let vpa = json!({"metadata": {"name": name, "namespace": namespace},
            "spec": {"targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": target},
                     "updatePolicy": {"updateMode": mode}}});
        self.insert_dynamic(
            "autoscaling.k8s.io",
            "v1",
            "VerticalPodAutoscaler",
            "verticalpodautoscalers",
            true,
            vpa,
        );
    }

    /// Answers `verb` on `group`/`resource` with 403 Forbidden from now on. `resource` may
    /// name a subresource as `deployments/status`; group "" is the core group.
    pub fn deny(&self, verb: &str, group: &str, resource: &str) {
        self.lock().denied.insert((verb.into(), group.into(), resource.into()));
    }

    /// Answers the next `times` requests whose path starts with `path_prefix` with `status`
    /// (a `Status` with the reason apiserver gives that code; 410 is an expired list, 429
    /// carries `Retry-After`).
    pub fn fail_next(&self, path_prefix: &str, status: u16, times: usize) {
        self.lock().injections.push(Injection {
            prefix: path_prefix.into(),
            status,
            remaining: times,
        });
    }

    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.lock().requests.clone()
    }

    pub fn patches(&self) -> Vec<RecordedPatch> {
        self.lock().patches.clone()
    }

    /// Forgets the recorded requests and patches (not the objects).
    pub fn clear_records(&self) {
        let mut state = self.lock();
        state.requests.clear();
        state.patches.clear();
    }

    /// The stored object, after any patches; `resource` is the plural.
    pub fn get_object(&self, group: &str, resource: &str, namespace: Option<&str>, name: &str) -> Option<Value> {
        let state = self.lock();
        let key = (namespace.unwrap_or("").to_string(), name.to_string());
        state
            .objects
            .get(&(group.to_string(), resource.to_string()))
            .and_then(|objects| objects.get(&key))
            .cloned()
    }

    /// Removes a stored object, as if someone deleted it between two requests.
    pub fn remove_object(&self, group: &str, resource: &str, namespace: Option<&str>, name: &str) {
        let mut state = self.lock();
        let key = (namespace.unwrap_or("").to_string(), name.to_string());
        if let Some(objects) = state.objects.get_mut(&(group.to_string(), resource.to_string())) {
            objects.remove(&key);
        }
    }

    /// Caps list pages at `n` items whatever `limit` asks (servers may return fewer).
    pub fn set_page_size_cap(&self, n: Option<usize>) {
        self.lock().page_size_cap = n;
    }

    /// A broken server (or proxy): every list page, the last included, carries a continue
    /// token, and it always leads back to the first page, so a client that follows tokens
    /// never finishes.
    pub fn set_endless_continue(&self, on: bool) {
        self.lock().endless_continue = on;
    }

    /// The user named in Forbidden messages.
    pub fn set_user(&self, user: &str) {
        self.lock().user = user.into();
    }

    /// The `Retry-After` seconds of injected 429s (default 1, as apiserver; kube's default
    /// retry layer honours it, so tests that want speed set 0).
    pub fn set_retry_after_secs(&self, secs: u64) {
        self.lock().retry_after_secs = secs;
    }

    /// Expires every continue token issued so far, as an etcd compaction does: continuing
    /// with one answers 410 Expired with an inconsistent continue token.
    pub fn expire_continue_tokens(&self) {
        let mut state = self.lock();
        state.compacted = state.revision;
    }

    /// The current global resourceVersion.
    pub fn resource_version(&self) -> u64 {
        self.lock().revision
    }
}
