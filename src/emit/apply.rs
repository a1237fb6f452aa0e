//! `--apply`, the one output that changes a spec, and only on explicit request: each changed
//! workload's container resources with a strategic-merge patch (containers merge by name, so
//! the patch carries only `name` and `resources`), then its HPA with an RFC 6902 JSON patch
//! against the HPA read just before (see `patches` for why not strategic merge), both with
//! field manager `rightsizer`. The HPA patch is computed before the workload is touched, so a
//! workload whose HPA cannot follow is not patched at all.
//!
//! Refused without `--force`, with the reason: workloads an active VPA manages (it would undo
//! the change on the next eviction) and workloads a GitOps controller owns (the next sync
//! reverts the change; change them in git, with `--patches-dir` or `--manifests`):
//!
//! - Argo CD: annotation `argocd.argoproj.io/tracking-id` (annotation tracking, the default
//!   since Argo CD 3.0) or label `argocd.argoproj.io/instance`; the label
//!   `app.kubernetes.io/instance` (Argo CD's older default) only counts together with the
//!   tracking annotation, since Helm sets it on everything.
//! - Flux: labels `kustomize.toolkit.fluxcd.io/name` (Kustomization) and
//!   `helm.toolkit.fluxcd.io/name` (HelmRelease).
//!
//! Bare pods and bare Jobs are never patched (a Job's pod template is immutable: the API
//! server answers 422). Before a patch goes out, its values are checked against the live
//! object as discovery read it and the HPA as just read ([`super::guard`]): names, physical
//! bounds, request <= limit (a limit below a new request is raised to it) and HPA min <= max;
//! a workload that fails the check is refused with the reason. One workload's failure does
//! not stop the others; a 403 names the RBAC verb `patch` and the resource.

use std::collections::BTreeMap;

use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use kube::api::{Api, ApiResource, DynamicObject, Patch, PatchParams};
use serde_json::Value;
use tracing::Instrument;

use super::Error;
use super::annotate::{FIELD_MANAGER, apply_api_error as api_error, resource};
use super::change::WorkloadChange;
use super::guard;
use super::patches::{container_list, hpa_patch, strategic_patch};
use crate::model::{Workload, WorkloadKey, WorkloadKind};

/// What `apply` did, per workload.
#[derive(Debug, Default)]
pub struct ApplyReport {
    /// Patched (workload, and its HPA when it had a change).
    pub applied: Vec<WorkloadKey>,
    /// Not patched on purpose (VPA, GitOps, bare pod or Job, a value that fails the checks),
    /// with the reason.
    pub refused: Vec<(WorkloadKey, String)>,
    pub failed: Vec<(WorkloadKey, Error)>,
}

/// The GitOps controller that owns a workload, named for the user (`Argo CD application
/// shop`, `Flux Kustomization apps`).
pub fn gitops_owner(w: &Workload) -> Option<String> {
    if let Some(id) = w.annotations.get("argocd.argoproj.io/tracking-id") {
        let app = id.split(':').next().unwrap_or(id);
        return Some(format!("Argo CD application {app}"));
    }
    if let Some(app) = w.labels.get("argocd.argoproj.io/instance") {
        return Some(format!("Argo CD application {app}"));
    }
    if let Some(name) = w.labels.get("kustomize.toolkit.fluxcd.io/name") {
        return Some(format!("Flux Kustomization {name}"));
    }
    if let Some(name) = w.labels.get("helm.toolkit.fluxcd.io/name") {
        return Some(format!("Flux HelmRelease {name}"));
    }
    None
}

/// Why `--apply` leaves a workload alone without `--force`, if it does.
pub fn refusal(key: &WorkloadKey, workload: Option<&Workload>, vpa: &BTreeMap<WorkloadKey, String>) -> Option<String> {
    if let Some(mode) = vpa.get(key) {
        return Some(format!(
            "managed by VPA ({mode}): the VPA would undo the change; use --force to patch it anyway"
        ));
    }
    let owner = workload.and_then(gitops_owner)?;
    Some(format!(
        "owned by {owner}: the next sync would revert the change; change it in git (--patches-dir or --manifests) or use --force"
    ))
}

fn params() -> PatchParams {
    PatchParams {
        field_manager: Some(FIELD_MANAGER.into()),
        ..PatchParams::default()
    }
}

/// Patches every change in the cluster (see the module docs). Never fails as a whole.
pub async fn apply(
    client: &kube::Client,
    changes: &[WorkloadChange],
    workloads: &BTreeMap<WorkloadKey, &Workload>,
    vpa: &BTreeMap<WorkloadKey, String>,
    force: bool,
) -> ApplyReport {
    let mut report = ApplyReport::default();
    for change in changes {
        let key = change.key.clone();
        let Some(ar) = resource(key.kind) else {
            report
                .refused
                .push((key, "bare pods are never patched: change what creates them".into()));
            continue;
        };
        if key.kind == WorkloadKind::Job {
            report.refused.push((
                key,
                "a bare Job's pod template is immutable (the API server answers 422): change the manifest or CronJob that creates it".into(),
            ));
            continue;
        }
        let workload = workloads.get(&key).copied();
        if let Some(reason) = refusal(&key, workload, vpa).filter(|_| !force) {
            tracing::warn!(workload = %key, "not applied: {reason}");
            report.refused.push((key, reason));
            continue;
        }
        let live = |c: &super::change::ContainerChange| {
            workload?
                .containers
                .iter()
                .find(|s| s.name == c.name && container_list(s.role) == container_list(c.role))
                .map(|s| s.resources)
        };
        let checked = match guard::check(change, live, None, "the live object") {
            Ok(checked) => checked,
            Err(reason) => {
                tracing::warn!(workload = %key, "not applied: {reason}");
                report.refused.push((key, reason));
                continue;
            }
        };
        for note in &checked.notes {
            tracing::info!(workload = %key, "{note}");
        }
        let span = tracing::info_span!("apply", workload = %key);
        match apply_one(client, &checked.change, &ar).instrument(span).await {
            Ok(()) => {
                tracing::info!(workload = %key, "applied");
                report.applied.push(key);
            }
            Err(e) => {
                tracing::warn!(workload = %key, error = %e, "failed to apply");
                report.failed.push((key, e));
            }
        }
    }
    report
}

async fn apply_one(client: &kube::Client, change: &WorkloadChange, ar: &ApiResource) -> Result<(), Error> {
    let key = &change.key;
    // The HPA first: read it and compute its patch before the workload changes.
    let hpa_ar = ApiResource::erase::<HorizontalPodAutoscaler>(&());
    let hpas: Api<DynamicObject> = Api::namespaced_with(client.clone(), &key.namespace, &hpa_ar);
    let hpa = match &change.hpa {
        Some(h) => {
            let current = hpas.get(&h.name).await.map_err(|e| api_error(e, "get", &hpa_ar, key))?;
            let current = serde_json::to_value(&current).map_err(|e| Error::Apply {
                object: format!("HPA {}/{}", key.namespace, h.name),
                reason: e.to_string(),
            })?;
            let n = |field: &str| {
                current["spec"][field]
                    .as_u64()
                    .map(|n| n.min(u64::from(u32::MAX)) as u32)
            };
            guard::hpa(h, Some((n("minReplicas"), n("maxReplicas"))), "the live HPA").map_err(|reason| {
                Error::Apply {
                    object: format!("HPA {}/{}", key.namespace, h.name),
                    reason,
                }
            })?;
            let ops = hpa_patch(h, Some(&current)).map_err(|reason| Error::Apply {
                object: key.to_string(),
                reason,
            })?;
            (!ops.is_empty()).then_some((h.name.as_str(), ops))
        }
        None => None,
    };
    if change.containers.iter().any(|c| c.recommended != Default::default())
        && let Some(body) = strategic_patch(change)
    {
        let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), &key.namespace, ar);
        let (params, strategic) = (params(), Patch::Strategic(&body));
        super::retry::with_retries("apply", || api.patch(&key.name, &params, &strategic))
            .await
            .map_err(|e| api_error(e, "patch", ar, key))?;
    }
    if let Some((name, ops)) = hpa {
        let patch = Patch::Json::<()>(serde_json::from_value(Value::Array(ops)).map_err(|e| Error::Apply {
            object: format!("HPA {}/{name}", key.namespace),
            reason: e.to_string(),
        })?);
        let params = params();
        super::retry::with_retries("apply hpa", || hpas.patch(name, &params, &patch))
            .await
            .map_err(|e| api_error(e, "patch", &hpa_ar, key))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::WorkloadKind;

    fn workload(labels: &[(&str, &str)], annotations: &[(&str, &str)]) -> Workload {
        let map = |kv: &[(&str, &str)]| kv.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Workload {
            key: WorkloadKey::new("shop", WorkloadKind::Deployment, "web"),
            replicas: Some(1),
            containers: Vec::new(),
            hpa: None,
            labels: map(labels),
            annotations: map(annotations),
        }
    }

    #[test]
    fn gitops_owners_are_recognized() {
        for (labels, annotations, owner) in [
            (
                &[][..],
                &[("argocd.argoproj.io/tracking-id", "shop:apps/Deployment:shop/web")][..],
                Some("Argo CD application shop"),
            ),
            (
                &[("argocd.argoproj.io/instance", "shop")],
                &[],
                Some("Argo CD application shop"),
            ),
            (
                &[("kustomize.toolkit.fluxcd.io/name", "apps")],
                &[],
                Some("Flux Kustomization apps"),
            ),
            (
                &[("helm.toolkit.fluxcd.io/name", "web")],
                &[],
                Some("Flux HelmRelease web"),
            ),
            // Helm sets app.kubernetes.io/instance on everything: not GitOps on its own.
            (&[("app.kubernetes.io/instance", "web")], &[], None),
        ] {
            assert_eq!(
                gitops_owner(&workload(labels, annotations)).as_deref(),
                owner,
                "{labels:?}"
            );
        }
    }

    #[test]
    fn vpa_comes_first_in_refusals() {
        let w = workload(&[("argocd.argoproj.io/instance", "shop")], &[]);
        let vpa = BTreeMap::from([(w.key.clone(), "Auto".to_string())]);
        assert!(
            refusal(&w.key, Some(&w), &vpa)
                .unwrap()
                .starts_with("managed by VPA (Auto)")
        );
        assert!(
            refusal(&w.key, Some(&w), &BTreeMap::new())
                .unwrap()
                .starts_with("owned by Argo CD")
        );
        assert_eq!(refusal(&w.key, None, &BTreeMap::new()), None);
    }
}
