//! One run of the pipeline: discover -> collect -> summarize -> recommend -> emit, for the
//! `recommend` and `snapshot` commands.

use std::collections::BTreeMap;
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
use crate::emit::{self, progress::Progress};
use crate::model::{UsageSet, Workload, WorkloadKey};
use crate::recommend::{self, Policy};
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
    /// The Kubernetes client, when the run discovered through the API.
    pub client: Option<kube::Client>,
    /// Why the run has no Kubernetes API (snapshot, kube-state-metrics discovery).
    pub no_api: Option<String>,
}

pub async fn collect(input: &Input) -> Result<Collected, Error> {
    collect_with_progress(input, &Progress::new(false)).await
}

/// Awaits `work`, redrawing the progress line from `label` meanwhile.
async fn ticking<F: Future>(work: F, progress: &Progress, label: impl Fn() -> String) -> F::Output {
    if !progress.enabled() {
        return work.await;
    }
    let mut work = std::pin::pin!(work);
    let mut tick = tokio::time::interval(std::time::Duration::from_millis(250));
    loop {
        tokio::select! {
            out = &mut work => return out,
            _ = tick.tick() => progress.stage(&label()),
        }
    }
}

/// As [`collect`], with a progress line.
pub async fn collect_with_progress(input: &Input, progress: &Progress) -> Result<Collected, Error> {
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
                client: None,
                no_api: Some("the input is a snapshot".into()),
            })
        }
        Input::Live {
            prometheus,
            kube,
            filter,
            window,
        } => collect_live(prometheus, kube.as_ref(), filter, window, progress).await,
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
    progress: &Progress,
) -> Result<Collected, Error> {
    let prom = PromClient::new(prometheus)?;
    progress.stage("connecting to kubernetes…");
    let client = kube_client(kube).await?;
    let label = || {
        let stats = prom.stats();
        format!(
            "discovering workloads and querying prometheus: {} queries, {} KiB…",
            stats.queries.load(Ordering::Relaxed),
            stats.bytes.load(Ordering::Relaxed) / 1024
        )
    };
    let collecting = async {
        Ok::<_, Error>(match &client {
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
        })
    };
    let (discovered, usage, mut current_usage, mut warnings) = ticking(collecting, progress, label).await?;
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
        no_api: client
            .is_none()
            .then(|| "workloads were discovered from kube-state-metrics".into()),
        client,
    })
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

pub use crate::emit::{Outputs, RunOutcome};

/// One full run: collect, recommend with the default policy, then every output `outputs`
/// selects. Output failures do not stop the other outputs: they are in
/// [`RunOutcome::errors`]. Collection failures, and `annotate` or `apply` without the
/// Kubernetes API, are the `Err` (nothing is emitted then).
pub async fn run(input: &Input, outputs: &Outputs) -> Result<RunOutcome, Error> {
    run_with_policy(input, &Policy::default(), outputs).await
}

/// As [`run`], with the given policy.
pub async fn run_with_policy(input: &Input, policy: &Policy, outputs: &Outputs) -> Result<RunOutcome, Error> {
    let started = std::time::Instant::now();
    let needs_api = match (outputs.annotate, outputs.apply) {
        (_, true) => Some("--apply"),
        (true, false) => Some("--annotate"),
        _ => None,
    };
    if let (Some(what), Input::Snapshot(_)) = (needs_api, input) {
        return Err(emit::Error::NeedsApi {
            what,
            why: "the input is a snapshot".into(),
        }
        .into());
    }
    let progress = Progress::new(outputs.progress);
    let collected = collect_with_progress(input, &progress).await?;
    if let (Some(what), Some(why)) = (needs_api, &collected.no_api) {
        return Err(emit::Error::NeedsApi { what, why: why.clone() }.into());
    }
    progress.stage("recommending…");
    let mut report = recommend::recommend(&collected.workloads, &collected.usage, policy);
    // The run's warnings first, then the recommendation's.
    report.warnings.splice(0..0, collected.warnings.iter().cloned());
    let ctx = emit::Context {
        source: &collected.source,
        vpa: &collected.vpa,
        current_usage: &collected.current_usage,
        skipped: &collected.skipped,
    };
    let run = emit::outputs::Emit {
        report,
        ctx,
        workloads: &collected.workloads,
        client: collected.client.as_ref(),
        started,
    };
    Ok(emit::outputs::emit(run, outputs, &progress).await)
}
