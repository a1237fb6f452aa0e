//! Discovery through the Kubernetes API: builds the client from a kubeconfig (or in-cluster
//! config) exactly as kubectl would, lists the workload kinds and HPAs with pagination, and
//! turns API errors into messages that name the missing RBAC permission.

use std::fmt::Debug;
use std::path::Path;

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::batch::v1::{CronJob, Job};
use kube::api::{Api, ListParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config, Resource};
use serde::de::DeserializeOwned;

use super::Error;
use super::objects::Objects;

/// Where to find the cluster: an explicit kubeconfig file, the usual places (`KUBECONFIG`,
/// `~/.kube/config`), or the in-cluster service account, with an optional context.
#[derive(Debug, Clone, Default)]
pub struct KubeTarget {
    pub kubeconfig: Option<std::path::PathBuf>,
    pub context: Option<String>,
}

pub async fn client(target: &KubeTarget) -> Result<Client, Error> {
    crate::install_crypto_provider();
    let options = KubeConfigOptions {
        context: target.context.clone(),
        ..Default::default()
    };
    let config = match (&target.kubeconfig, &target.context) {
        (Some(path), _) => {
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

/// Maps a kube error to one that names the RBAC permission when the API said 403.
pub fn api_error(e: kube::Error, verb: &'static str, group: &'static str, resource: &'static str) -> Error {
    match e {
        kube::Error::Api(status) if status.code == 403 => Error::Forbidden {
            verb,
            group,
            resource,
            message: status.message.clone(),
        },
        source => Error::Kube { verb, resource, source },
    }
}

/// Lists every object of a kind, page by page. An expired continue token (410 Gone) restarts
/// the list once, as the API conventions ask.
pub async fn list_all<K>(api: Api<K>, group: &'static str, resource: &'static str) -> Result<Vec<K>, Error>
where
    K: Resource + Clone + DeserializeOwned + Debug,
{
    let mut items = Vec::new();
    let mut params = ListParams::default().limit(PAGE);
    let mut restarted = false;
    loop {
        match api.list(&params).await {
            Ok(page) => {
                items.extend(page.items);
                match page.metadata.continue_.filter(|c| !c.is_empty()) {
                    Some(token) => params = params.continue_token(&token),
                    None => return Ok(items),
                }
            }
            Err(kube::Error::Api(status)) if status.code == 410 && !restarted => {
                tracing::warn!(resource, "list continue token expired; listing again from the start");
                restarted = true;
                items.clear();
                params = ListParams::default().limit(PAGE);
            }
            Err(e) => return Err(api_error(e, "list", group, resource)),
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

/// Lists the workload kinds and HPAs, in all namespaces or in the given ones.
pub async fn list_objects(client: &Client, namespaces: &[String]) -> Result<Objects, Error> {
    let scopes: Vec<Option<&str>> = if namespaces.is_empty() {
        vec![None]
    } else {
        namespaces.iter().map(|n| Some(n.as_str())).collect()
    };
    let mut objects = Objects::default();
    for ns in scopes {
        let (deployments, stateful_sets, daemon_sets, cron_jobs, jobs, hpas) = futures::try_join!(
            list_all(api::<Deployment>(client, ns), "apps", "deployments"),
            list_all(api::<StatefulSet>(client, ns), "apps", "statefulsets"),
            list_all(api::<DaemonSet>(client, ns), "apps", "daemonsets"),
            list_all(api::<CronJob>(client, ns), "batch", "cronjobs"),
            list_all(api::<Job>(client, ns), "batch", "jobs"),
            list_all(
                api::<HorizontalPodAutoscaler>(client, ns),
                "autoscaling",
                "horizontalpodautoscalers"
            ),
        )?;
        objects.deployments.extend(deployments);
        objects.stateful_sets.extend(stateful_sets);
        objects.daemon_sets.extend(daemon_sets);
        objects.cron_jobs.extend(cron_jobs);
        objects.jobs.extend(jobs);
        objects.hpas.extend(hpas);
    }
    Ok(objects)
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
