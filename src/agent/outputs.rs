//! The agent's own outputs around the emit stage: the patch set swapped in as a whole, the
//! report ConfigMap (server-side apply), the confidence written in annotations.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, ObjectMeta, Patch, PatchParams};

use crate::Error;
use crate::emit::annotate::FIELD_MANAGER;
use crate::emit::patches::{CurrentObjects, PatchFormat, write_patches};
use crate::emit::{self, Context, Format, change::WorkloadChange};
use crate::recommend::Report;

/// The lowest container confidence of the workload, for `rightsizer.dev/confidence`.
pub(super) fn confidence(report: &Report, change: &WorkloadChange) -> String {
    let c = report
        .workloads
        .iter()
        .find(|w| w.key == change.key)
        .and_then(|w| w.containers.iter().map(|c| c.confidence).reduce(f64::min))
        .unwrap_or(0.0);
    format!("{c:.2}")
}

/// `.<name>.<what>-<pid>` beside `dir`: where earlier versions staged the patch set (the
/// patch writer removes such leftovers).
pub(super) fn sibling(dir: &Path, what: &str) -> PathBuf {
    let name = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let parent = dir
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    parent.join(format!(".{name}.{what}-{}", std::process::id()))
}

/// Writes the patch set in place, under a lock on `dir` (the same entry point as
/// `recommend --patches-dir`, see `emit::patches`).
pub(super) fn write_patch_set(dir: &Path, changes: &[WorkloadChange], format: PatchFormat) -> Result<usize, Error> {
    let report = write_patches(dir, changes, format, &CurrentObjects::default())?;
    for (key, reason) in &report.skipped {
        tracing::warn!(workload = %key, reason = %reason, "no patch written");
    }
    for (key, note) in &report.adjusted {
        tracing::info!(workload = %key, "patch adjusted: {note}");
    }
    Ok(report.files.len())
}

/// A ConfigMap is capped at 1 MiB by etcd's request limit; stay under it with headroom.
const CONFIG_MAP_MAX_BYTES: usize = 1_000_000;

/// Server-side applies the report ConfigMap (`report.json`, `report.txt`), field manager
/// `rightsizer`, forced: rightsizer owns these keys.
pub(super) async fn write_config_map(
    client: &kube::Client,
    ns: &str,
    name: &str,
    report: &Report,
    ctx: &Context<'_>,
) -> Result<(), Error> {
    let mut json = Vec::new();
    emit::write(report, ctx, Format::Json, false, &mut json)?;
    let mut table = Vec::new();
    emit::write(report, ctx, Format::Table, false, &mut table)?;
    if json.len() + table.len() > CONFIG_MAP_MAX_BYTES {
        return Err(Error::Config(format!(
            "the report ({} bytes) does not fit in ConfigMap {ns}/{name} (1 MiB)\nhint: narrow kube.namespaces, or use outputs.patches / outputs.push",
            json.len() + table.len()
        )));
    }
    let cm = ConfigMap {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: Some(ns.into()),
            labels: Some(BTreeMap::from([(
                "app.kubernetes.io/managed-by".to_string(),
                "rightsizer".to_string(),
            )])),
            ..ObjectMeta::default()
        },
        data: Some(BTreeMap::from([
            ("report.json".to_string(), String::from_utf8_lossy(&json).into_owned()),
            ("report.txt".to_string(), String::from_utf8_lossy(&table).into_owned()),
        ])),
        ..ConfigMap::default()
    };
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), ns);
    let params = PatchParams::apply(FIELD_MANAGER).force();
    match api.patch(name, &params, &Patch::Apply(&cm)).await {
        Ok(_) => {
            tracing::info!(namespace = ns, name, "report configmap written");
            Ok(())
        }
        Err(kube::Error::Api(status)) if status.code == 403 => Err(emit::Error::Forbidden {
            verb: "patch",
            group: String::new(),
            resource: "configmaps".into(),
            message: status.message.clone(),
        }
        .into()),
        Err(source) => Err(emit::Error::Kube {
            verb: "apply",
            object: format!("configmap {ns}/{name}"),
            source,
        }
        .into()),
    }
}
