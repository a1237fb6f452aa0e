//! The one run of the program: discover -> collect -> summarize -> recommend -> emit. `recommend`
//! calls it once, `agent` on its schedule, `snapshot` stops after collect. Filters and windows
//! apply here, in one place, to every input: the live API, kube-state-metrics and snapshots.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;

use crate::Error;
use crate::collect::cluster::{self as cluster, KubeTarget};
use crate::collect::filter::Filter;
use crate::collect::history;
use crate::collect::metrics_api;
use crate::collect::objects::Discovered;
use crate::collect::prometheus::{PromClient, PromConfig};
use crate::collect::snapshot::Snapshot;
use crate::collect::{ksm, ksm_labels};
use crate::emit::{self, progress::Progress};
use crate::model::{CurrentUsageMap, Skipped, UsageSet, Window, Workload, WorkloadKey};
use crate::recommend;
use crate::settings::{Input, RunSettings};

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

/// Collects what `settings` selects, filtered: the workloads, their usage and what
/// discovery found besides.
pub async fn collect(settings: &RunSettings, progress: &Progress) -> Result<Collected, Error> {
    let now = chrono::Utc::now().timestamp();
    let mut c = match &settings.input {
        Input::Snapshot { path, max_bytes } => {
            let s = Snapshot::read_capped(path, *max_bytes)?;
            let held = Window {
                end: s.usage.end,
                length: s.usage.end - s.usage.start,
                step: s.usage.step,
            };
            settings.window.check_snapshot(&held, path)?;
            Collected {
                source: s.source,
                workloads: s.workloads,
                usage: s.usage,
                vpa: s.vpa,
                current_usage: s.current_usage,
                skipped: s.skipped,
                warnings: Vec::new(),
                client: None,
                no_api: Some("the input is a snapshot".into()),
            }
        }
        Input::Live { kube, limits, .. } => {
            let prometheus = settings
                .input
                .prometheus()?
                .expect("a live input has prometheus settings");
            let window = settings.window.at(now);
            collect_live(&prometheus, kube.as_ref(), limits, &settings.filter, &window, progress).await?
        }
    };
    apply_filter(&mut c, &settings.filter);
    Ok(c)
}

/// The filter, applied once to whatever the input found: workloads, the usage kept for them
/// (a snapshot written from a filtered run holds only what it shows), and what was skipped.
fn apply_filter(c: &mut Collected, filter: &Filter) {
    let workloads = std::mem::take(&mut c.workloads);
    let (kept, skipped) = filter.apply(workloads);
    c.skipped
        .retain(|s| filter.namespace_allowed(&s.key.namespace) && filter.kind_allowed(s.key.kind));
    c.skipped.extend(skipped);
    c.skipped.sort_by(|a, b| a.key.cmp(&b.key));
    c.skipped.dedup_by(|a, b| a.key == b.key);
    for w in filter.unmatched(&kept, &c.skipped) {
        tracing::warn!("{w}");
        c.warnings.push(w);
    }
    let keys: std::collections::BTreeSet<&WorkloadKey> = kept.iter().map(|w| &w.key).collect();
    c.usage.containers.retain(|k, _| keys.contains(&k.workload));
    c.usage.workloads.retain(|k, _| keys.contains(k));
    c.current_usage.retain(|k, _| keys.contains(&k.workload));
    c.vpa.retain(|k, _| keys.contains(k));
    c.workloads = kept;
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

/// The kube client, or `None` to discover from kube-state-metrics: with `--no-kube-api`, or
/// when no configuration is found and the user named none (an explicit kubeconfig or
/// context that fails is an error).
async fn kube_client(target: Option<&KubeTarget>) -> Result<Option<kube::Client>, Error> {
    let Some(target) = target else { return Ok(None) };
    match cluster::client(target).await {
        Ok(client) => Ok(Some(client)),
        // A KUBECONFIG the user set is as explicit as --kubeconfig.
        Err(e) if !target.is_explicit() && std::env::var_os("KUBECONFIG").is_none() => {
            tracing::warn!(
                "no kubernetes configuration found ({}); discovering workloads from kube-state-metrics instead",
                cluster::chain(&e)
            );
            Ok(None)
        }
        Err(e) => Err(e.into()),
    }
}

async fn collect_live(
    prometheus: &PromConfig,
    kube: Option<&KubeTarget>,
    limits: &cluster::ListLimits,
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
                    async {
                        cluster::discover_with(client, filter, limits)
                            .await
                            .map_err(Error::from)
                    },
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
                let (mut discovered, owners): (Discovered, _) = futures::try_join!(
                    async { ksm::discover(&prom, window, filter).await.map_err(Error::from) },
                    async { history::fetch_owners(&prom, window).await.map_err(Error::from) },
                )?;
                // Without the API the labels come from kube-state-metrics, or the selector
                // is refused: never ignored.
                if let Some(selector) = &filter.selector {
                    let labels = ksm_labels::fetch(&prom, window, selector).await?;
                    for w in &mut discovered.workloads {
                        w.labels = labels.get(&w.key).cloned().unwrap_or_default();
                    }
                }
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

/// `snapshot`: collect (filtered) and write the snapshot file.
pub async fn snapshot(settings: &RunSettings, path: &std::path::Path) -> Result<(), Error> {
    let c = collect(settings, &Progress::new(false)).await?;
    let mut snapshot = Snapshot::new(c.source, c.workloads, c.usage);
    snapshot.vpa = c.vpa;
    snapshot.current_usage = c.current_usage;
    snapshot.skipped = c.skipped;
    snapshot.write(path)?;
    Ok(())
}

pub use crate::emit::{Outputs, RunOutcome};

/// One full run: collect, recommend with the settings' policy, then every output the
/// settings select. Output failures do not stop the other outputs: they are in
/// [`RunOutcome::errors`]. Collection failures, and an output that needs the Kubernetes API
/// in a run that has none, are the `Err` (nothing is emitted then).
pub async fn run(settings: &RunSettings) -> Result<RunOutcome, Error> {
    let started = std::time::Instant::now();
    let outputs = &settings.outputs;
    let progress = Progress::new(outputs.progress);
    let collected = collect(settings, &progress).await?;
    if let (Some(what), Some(why)) = (outputs.needs_api(), &collected.no_api) {
        return Err(emit::Error::NeedsApi { what, why: why.clone() }.into());
    }
    progress.stage("recommending…");
    let mut report = recommend::recommend(&collected.workloads, &collected.usage, &settings.policy);
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
