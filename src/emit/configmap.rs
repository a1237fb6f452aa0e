//! The report as a ConfigMap (`report.json` and `report.txt`), written by server-side apply
//! with field manager `rightsizer`, forced: rightsizer owns these keys. The in-cluster view of
//! the last run for people without Prometheus or a repository (`kubectl get cm -o yaml`).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, ObjectMeta, Patch, PatchParams};

use super::annotate::FIELD_MANAGER;
use super::outputs::ConfigMapTarget;
use super::{Context, Error, Format};
use crate::rbac::{self, Role};
use crate::recommend::Report;

/// A ConfigMap is capped at 1 MiB by etcd's request limit; stay under it with headroom.
const CONFIG_MAP_MAX_BYTES: usize = 1_000_000;

/// Writes the report ConfigMap; a report too large for one is an error that says what to do.
pub async fn write(
    client: &kube::Client,
    target: &ConfigMapTarget,
    report: &Report,
    ctx: &Context<'_>,
) -> Result<(), Error> {
    let (ns, name) = (target.namespace.as_str(), target.name.as_str());
    let mut json = Vec::new();
    super::write(report, ctx, Format::Json, false, &mut json)?;
    let mut table = Vec::new();
    super::write(report, ctx, Format::Table, false, &mut table)?;
    if json.len() + table.len() > CONFIG_MAP_MAX_BYTES {
        return Err(Error::TooLarge {
            what: format!("configmap {ns}/{name}"),
            bytes: json.len() + table.len(),
            hint: "narrow kube.namespaces, or use outputs.patches / outputs.push",
        });
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
    let apply = Patch::Apply(&cm);
    match super::retry::with_retries("report configmap", || api.patch(name, &params, &apply)).await {
        Ok(_) => {
            tracing::info!(namespace = ns, name, "report configmap written");
            Ok(())
        }
        Err(e) => Err(match rbac::forbidden(&e, "patch", "", "configmaps", Role::Report) {
            Some(f) => Error::Forbidden(f),
            None => Error::Kube {
                verb: "apply",
                object: format!("configmap {ns}/{name}"),
                source: e,
            },
        }),
    }
}
