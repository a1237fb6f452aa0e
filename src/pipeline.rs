//! One run of the pipeline: discover -> collect -> summarize -> recommend -> emit, for the
//! `recommend` and `snapshot` commands.

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::atomic::Ordering;

use crate::Error;
use crate::collect::filter::{Filter, Skipped};
use crate::collect::history::{self, Window};
use crate::collect::ksm;
use crate::collect::kube::{self as kubeapi, KubeTarget};
use crate::collect::metrics_api::{self, CurrentUsageMap};
use crate::collect::objects::Discovered;
use crate::collect::prometheus::{PromClient, PromConfig};
use crate::collect::snapshot::Snapshot;
use crate::emit::{self, Format};
use crate::model::{UsageSet, Workload, WorkloadKey};
use crate::recommend::{self, Policy, Report};
use crate::settings::Input;

/// Workloads and their usage, from wherever the input says, with what discovery found
/// besides: active VPAs, usage now from metrics.k8s.io, workloads skipped on purpose and the
/// warnings of the run (already logged).
pub struct Collected {
    pub source: String,
    pub workloads: Vec<Workload>,
    pub usage: UsageSet,
    /// Workloads an active VPA manages, with its update mode.
    pub vpa: BTreeMap<WorkloadKey, String>,
    /// Usage now per workload x container (metrics-server); empty without it.
    pub current_usage: CurrentUsageMap,
    pub skipped: Vec<Skipped>,
    pub warnings: Vec<String>,
}

pub async fn collect(input: &Input) -> Result<Collected, Error> {
    match input {
        Input::Snapshot(path) => {
            let s = Snapshot::read(path)?;
            Ok(Collected {
                source: s.source,
                workloads: s.workloads,
                usage: s.usage,
                vpa: s.vpa,
                current_usage: s.current_usage,
                skipped: s.skipped,
                warnings: Vec::new(),
            })
        }
        Input::Live {
            prometheus,
            kube,
            filter,
            window,
        } => collect_live(prometheus, kube.as_ref(), filter, window).await,
    }
}

/// The kube client, or `None` to discover from kube-state-metrics: with `--no-kube-api`, or
/// when no configuration is found and the user named none (an explicit kubeconfig or
/// context that fails is an error).
async fn kube_client(target: Option<&KubeTarget>) -> Result<Option<kube::Client>, Error> {
    let Some(target) = target else { return Ok(None) };
    match kubeapi::client(target).await {
        Ok(client) => Ok(Some(client)),
        // A KUBECONFIG the user set is as explicit as --kubeconfig.
        Err(e) if !target.is_explicit() && std::env::var_os("KUBECONFIG").is_none() => {
            tracing::warn!(
                "no kubernetes configuration found ({}); discovering workloads from kube-state-metrics instead",
                kubeapi::chain(&e)
            );
            Ok(None)
        }
        Err(e) => Err(e.into()),
    }
}

async fn collect_live(
    prometheus: &PromConfig,
    kube: Option<&KubeTarget>,
    filter: &Filter,
    window: &Window,
) -> Result<Collected, Error> {
    let prom = PromClient::new(prometheus)?;
    let client = kube_client(kube).await?;
    let (discovered, usage, mut current_usage, mut warnings) = match &client {
        Some(client) => {
            let (discovered, mut owners) = futures::try_join!(
                async { kubeapi::discover(client, filter).await.map_err(Error::from) },
                async { history::fetch_owners(&prom, window).await.map_err(Error::from) },
            )?;
            // Live pods the owner series may not have caught yet (scrape lag) resolve too.
            discovered.owners.fill(&mut owners);
            let live = discovered.owners.owners();
            let (usage, (current, warnings)) = futures::join!(
                history::fetch_usage(&prom, window, &owners),
                metrics_api::fetch(client, &filter.namespaces, &live),
            );
            (discovered, usage?, current, warnings)
        }
        None => {
            let (discovered, owners): (Discovered, _) = futures::try_join!(
                async { ksm::discover(&prom, window, filter).await.map_err(Error::from) },
                async { history::fetch_owners(&prom, window).await.map_err(Error::from) },
            )?;
            let usage = history::fetch_usage(&prom, window, &owners).await?;
            (discovered, usage, CurrentUsageMap::new(), Vec::new())
        }
    };
    let Discovered {
        workloads,
        vpa,
        skipped,
        warnings: discovery_warnings,
        ..
    } = discovered;
    warnings.splice(0..0, discovery_warnings);
    for w in &warnings {
        tracing::warn!("{w}");
    }
    // The Prometheus client logged its own warnings (partial data, skipped points, missing
    // exporters) when they happened; keep them for the report.
    warnings.extend(prom.warnings());
    for s in &skipped {
        tracing::info!(workload = %s.key, reason = %s.reason, "skipped");
    }
    let keys: std::collections::BTreeSet<&WorkloadKey> = workloads.iter().map(|w| &w.key).collect();
    current_usage.retain(|k, _| keys.contains(&k.workload));
    let stats = prom.stats();
    tracing::info!(
        workloads = workloads.len(),
        skipped = skipped.len(),
        containers = usage.containers.len(),
        current = current_usage.len(),
        queries = stats.queries.load(Ordering::Relaxed),
        bytes = stats.bytes.load(Ordering::Relaxed),
        "collected"
    );
    let vpa = vpa.into_iter().filter(|(k, _)| keys.contains(k)).collect();
    Ok(Collected {
        source: format!("prometheus {}", prom.url()),
        workloads,
        usage,
        vpa,
        current_usage,
        skipped,
        warnings,
    })
}

pub async fn recommend(input: &Input, format: Format, out: &mut impl Write) -> Result<Report, Error> {
    let collected = collect(input).await?;
    let report = recommend::recommend(&collected.workloads, &collected.usage, &Policy::default());
    emit::write(&report, format, out)?;
    Ok(report)
}

pub async fn snapshot(input: &Input, path: &std::path::Path) -> Result<(), Error> {
    let c = collect(input).await?;
    let mut snapshot = Snapshot::new(c.source, c.workloads, c.usage);
    snapshot.vpa = c.vpa;
    snapshot.current_usage = c.current_usage;
    snapshot.skipped = c.skipped;
    snapshot.write(path)?;
    Ok(())
}
