//! Cluster output: the recommendation written as annotations on each workload, for people
//! and tools that read the cluster rather than a report.
//!
//! Three annotations: `rightsizer.dev/recommendation` (compact JSON of the recommended values,
//! keys in a fixed order), `rightsizer.dev/updated-at` (RFC 3339, UTC) and
//! `rightsizer.dev/confidence` (given by the caller). They are written with a JSON merge patch
//! on `metadata.annotations` only, with field manager `rightsizer`: a merge patch touches
//! exactly the keys it names and needs no `get` of the whole object to build, and it never
//! touches the spec (server-side apply would also work but makes rightsizer own the fields and
//! fight with `kubectl apply` users over them). Idempotent: a workload that already carries the
//! same recommendation and confidence gets no PATCH at all, so `updated-at` means "last
//! changed". The current annotations come from discovery when the caller has them, otherwise
//! from a GET. One workload's failure (403, 404, ...) is recorded and the others go on; a 409
//! is retried once.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, ApiResource, DynamicObject, Patch, PatchParams};
use serde::Serialize;
use serde_json::json;
use tracing::Instrument;

use super::Error;
use super::change::WorkloadChange;
use crate::model::{ContainerRole, WorkloadKey, WorkloadKind, format_cpu, format_memory};
use crate::rbac::Role;

pub const RECOMMENDATION: &str = "rightsizer.dev/recommendation";
pub const UPDATED_AT: &str = "rightsizer.dev/updated-at";
pub const CONFIDENCE: &str = "rightsizer.dev/confidence";
/// The field manager of every write rightsizer makes.
pub const FIELD_MANAGER: &str = "rightsizer";

/// One workload to annotate.
#[derive(Debug, Clone)]
pub struct Annotation {
    pub change: WorkloadChange,
    /// The value of `rightsizer.dev/confidence`, e.g. `high` or `0.93`.
    pub confidence: String,
    /// The workload's annotations as discovered; `None` makes `annotate` GET the workload.
    pub known_annotations: Option<BTreeMap<String, String>>,
}

/// What [`annotate`] did, per workload.
#[derive(Debug, Default)]
pub struct AnnotateReport {
    /// Patched.
    pub annotated: Vec<WorkloadKey>,
    /// Already carrying the same recommendation: no request sent.
    pub unchanged: Vec<WorkloadKey>,
    /// Bare pods are never annotated (their next replacement would not carry it).
    pub skipped: Vec<WorkloadKey>,
    pub failed: Vec<(WorkloadKey, Error)>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Payload<'a> {
    containers: Vec<ContainerPayload<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    hpa: Option<HpaPayload<'a>>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ContainerPayload<'a> {
    name: &'a str,
    #[serde(skip_serializing_if = "is_app")]
    role: ContainerRole,
    #[serde(skip_serializing_if = "Option::is_none")]
    cpu_request: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    cpu_limit: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    memory_request: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    memory_limit: Option<String>,
}

fn is_app(role: &ContainerRole) -> bool {
    *role == ContainerRole::App
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct HpaPayload<'a> {
    name: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    min_replicas: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_replicas: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    cpu_utilization: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    memory_utilization: Option<u32>,
}

/// The compact JSON of `rightsizer.dev/recommendation`: quantities as Kubernetes spells them,
/// containers in the change's order, keys in a fixed order.
pub fn recommendation_json(change: &WorkloadChange) -> String {
    let payload = Payload {
        containers: change
            .containers
            .iter()
            .map(|c| ContainerPayload {
                name: &c.name,
                role: c.role,
                cpu_request: c.recommended.cpu_request.map(format_cpu),
                cpu_limit: c.recommended.cpu_limit.map(format_cpu),
                memory_request: c.recommended.memory_request.map(format_memory),
                memory_limit: c.recommended.memory_limit.map(format_memory),
            })
            .collect(),
        hpa: change.hpa.as_ref().map(|h| HpaPayload {
            name: &h.name,
            min_replicas: h.min_replicas,
            max_replicas: h.max_replicas,
            cpu_utilization: h.cpu_utilization,
            memory_utilization: h.memory_utilization,
        }),
    };
    serde_json::to_string(&payload).expect("plain structs serialize")
}

/// The API resource of a kind rightsizer annotates.
pub(super) fn resource(kind: WorkloadKind) -> Option<ApiResource> {
    Some(match kind {
        WorkloadKind::Deployment => ApiResource::erase::<Deployment>(&()),
        WorkloadKind::StatefulSet => ApiResource::erase::<StatefulSet>(&()),
        WorkloadKind::DaemonSet => ApiResource::erase::<DaemonSet>(&()),
        WorkloadKind::CronJob => ApiResource::erase::<CronJob>(&()),
        WorkloadKind::Job => ApiResource::erase::<Job>(&()),
        WorkloadKind::Pod => return None,
    })
}

/// A failed annotation request: a 403 names the permission and deploy/annotate/.
pub(super) fn api_error(e: kube::Error, verb: &'static str, ar: &ApiResource, key: &WorkloadKey) -> Error {
    role_error(e, verb, ar, key, Role::Annotate)
}

/// A failed `--apply` request: a 403 names the permission and deploy/apply/.
pub(super) fn apply_api_error(e: kube::Error, verb: &'static str, ar: &ApiResource, key: &WorkloadKey) -> Error {
    role_error(e, verb, ar, key, Role::Apply)
}

fn role_error(e: kube::Error, verb: &'static str, ar: &ApiResource, key: &WorkloadKey, role: Role) -> Error {
    match crate::rbac::forbidden(&e, verb, &ar.group, &ar.plural, role) {
        Some(f) => Error::Forbidden(f),
        None => Error::Kube {
            verb,
            object: key.to_string(),
            source: e,
        },
    }
}

pub(super) fn is_conflict(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 409)
}

/// Annotates each workload (see the module docs); `now` is the `updated-at` value. Never fails
/// as a whole: per-workload failures are in [`AnnotateReport::failed`].
pub async fn annotate(client: &kube::Client, workloads: &[Annotation], now: Timestamp) -> AnnotateReport {
    let mut report = AnnotateReport::default();
    let updated_at = now.strftime("%Y-%m-%dT%H:%M:%SZ").to_string();
    for w in workloads {
        let key = w.change.key.clone();
        let Some(ar) = resource(key.kind) else {
            report.skipped.push(key);
            continue;
        };
        // One span per workload, its key as a field (STYLE.md "Observability").
        let span = tracing::info_span!("workload", key = %key);
        let one = async {
            let r = annotate_one(client, w, &ar, &updated_at).await;
            if let Ok(true) = r {
                tracing::info!("annotations written");
            }
            r
        };
        match one.instrument(span).await {
            Ok(true) => report.annotated.push(key),
            Ok(false) => report.unchanged.push(key),
            Err(e) => {
                tracing::warn!(workload = %key, error = %e, "failed to annotate");
                report.failed.push((key, e));
            }
        }
    }
    report
}

/// Annotates one workload; `Ok(false)` when it already carried the recommendation.
async fn annotate_one(
    client: &kube::Client,
    w: &Annotation,
    ar: &ApiResource,
    updated_at: &str,
) -> Result<bool, Error> {
    let key = &w.change.key;
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), &key.namespace, ar);
    let recommendation = recommendation_json(&w.change);
    let known = match &w.known_annotations {
        Some(known) => known.clone(),
        None => api
            .get(&key.name)
            .await
            .map_err(|e| api_error(e, "get", ar, key))?
            .metadata
            .annotations
            .unwrap_or_default(),
    };
    if known.get(RECOMMENDATION) == Some(&recommendation) && known.get(CONFIDENCE) == Some(&w.confidence) {
        return Ok(false);
    }
    let body = json!({ "metadata": { "annotations": {
        RECOMMENDATION: recommendation,
        UPDATED_AT: updated_at,
        CONFIDENCE: w.confidence,
    } } });
    let params = PatchParams {
        field_manager: Some(FIELD_MANAGER.into()),
        ..PatchParams::default()
    };
    let merge = Patch::Merge(&body);
    let patch = || super::retry::with_retries("annotate", || api.patch(&key.name, &params, &merge));
    let mut result = patch().await;
    if matches!(&result, Err(e) if is_conflict(e)) {
        tracing::debug!("conflict, retrying once");
        result = patch().await;
    }
    result.map(|_| true).map_err(|e| api_error(e, "patch", ar, key))
}
