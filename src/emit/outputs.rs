//! What one run writes and changes, chosen once in the settings and handed to
//! [`crate::run::run`] (the same for `recommend` and `agent`): the report and where it goes,
//! the pull-request files, the cluster writes (annotations, `--apply`, the report ConfigMap)
//! and the pushed metrics. Every output rule has its one implementation here: the VPA guard,
//! HPA patches beside the workload's, the confidence written, the exit code.
//! [`RunOutcome`] says what each output did.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use super::Format;
use super::annotate::{self, AnnotateReport, Annotation};
use super::apply::{self, ApplyReport};
use super::change::{self, WorkloadChange};
use super::manifests::{self, ManifestReport};
use super::patches::{self, CurrentObjects, PatchFormat, PatchReport};
use super::progress::Progress;
use super::pull_request::{self, PullRequestReport, PullRequestTarget};
use super::push::{self, RunMetrics};
use crate::model::{Workload, WorkloadKey};
use crate::recommend::Report;

/// Where the report goes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum ReportTarget {
    /// Standard output (the CLI default).
    #[default]
    Stdout,
    /// A file, written atomically (whole or not at all).
    File(PathBuf),
    /// No report (agent runs that only push metrics, for instance).
    None,
}

/// Patch files for a pull request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PatchOutput {
    pub dir: PathBuf,
    pub format: PatchFormat,
}

/// Metrics pushed to a Pushgateway at the end of the run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushTarget {
    /// Base URL of the Pushgateway, e.g. `http://pushgateway:9091`, without credentials.
    pub url: String,
    /// The `job` grouping label (default `rightsizer`).
    pub job: String,
    /// Further grouping labels, in order (e.g. `cluster=prod`).
    pub grouping: Vec<(String, String)>,
    /// Basic auth (from the URL's user info; never shown).
    pub basic_auth: Option<(String, String)>,
}

impl PushTarget {
    /// A target without credentials.
    pub fn new(url: impl Into<String>, job: impl Into<String>, grouping: Vec<(String, String)>) -> Self {
        PushTarget {
            url: url.into(),
            job: job.into(),
            grouping,
            basic_auth: None,
        }
    }
}

/// The report as a ConfigMap (`report.json`, `report.txt`), by server-side apply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigMapTarget {
    pub namespace: String,
    pub name: String,
}

/// Everything one run emits besides recommending. `Outputs::default()` prints the table on
/// stdout and changes nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Outputs {
    pub report: ReportTarget,
    pub format: Format,
    /// ANSI colour in the table (the caller decides: terminal, `NO_COLOR`, `--no-color`).
    pub color: bool,
    /// A Markdown summary for a pull-request body, written atomically.
    pub markdown: Option<PathBuf>,
    pub patches: Option<PatchOutput>,
    /// Edit the `resources:` blocks of the manifests under this directory in place.
    pub manifests: Option<PathBuf>,
    /// Write `rightsizer.dev/*` annotations on each changed workload (needs the API).
    pub annotate: bool,
    pub push: Option<PushTarget>,
    /// Patch the workloads' resources and HPAs in the cluster (needs the API).
    pub apply: bool,
    /// Include workloads an active VPA manages or a GitOps controller owns in patches,
    /// manifest edits and `apply`.
    pub force: bool,
    /// The report as a ConfigMap in the cluster (needs the API).
    pub config_map: Option<ConfigMapTarget>,
    /// Redraw a progress line on stderr (the caller checks that stderr is a terminal).
    pub progress: bool,
    /// Open or update a pull request with the manifest edits or the patch set.
    pub pull_request: Option<PullRequestTarget>,
}

impl Outputs {
    /// Nothing at all (a run that only collects, such as `snapshot`).
    pub fn none() -> Outputs {
        Outputs {
            report: ReportTarget::None,
            ..Outputs::default()
        }
    }

    /// The first output that writes through the Kubernetes API, for the error when the run
    /// has none.
    pub fn needs_api(&self) -> Option<&'static str> {
        if self.apply {
            Some("outputs.apply (--apply)")
        } else if self.annotate {
            Some("outputs.annotate (--annotate)")
        } else if self.config_map.is_some() {
            Some("outputs.configMap (--configmap)")
        } else {
            None
        }
    }
}

/// What a run did.
#[derive(Debug)]
pub struct RunOutcome {
    pub report: Report,
    /// Every change the report recommends (VPA-managed workloads included).
    pub changes: Vec<WorkloadChange>,
    pub patches: Option<PatchReport>,
    pub manifests: Option<ManifestReport>,
    pub annotated: Option<AnnotateReport>,
    pub applied: Option<ApplyReport>,
    /// Metrics reached the Pushgateway.
    pub pushed: bool,
    /// The report ConfigMap was written.
    pub config_map_written: bool,
    /// What the pull-request output did (none when it is off or failed).
    pub pull_request: Option<PullRequestReport>,
    /// Outputs that failed as a whole (a file not written, the Pushgateway unreachable);
    /// the other outputs still ran. Per-workload failures are in the reports above.
    pub errors: Vec<super::Error>,
    pub duration: Duration,
}

impl RunOutcome {
    /// Whether the run recommends any change (what `--check` turns into exit code 3).
    pub fn changes_recommended(&self) -> bool {
        !self.changes.is_empty()
    }

    /// Workloads whose annotation or apply failed.
    pub fn failed_workloads(&self) -> usize {
        self.annotated.as_ref().map_or(0, |a| a.failed.len()) + self.applied.as_ref().map_or(0, |a| a.failed.len())
    }

    /// The exit code of the run, the same for `recommend` and `agent`: 2 when an output
    /// failed as a whole or a workload could not be annotated or applied, else 3 in check
    /// mode when a change is recommended, else 0. Prints what failed on stderr.
    pub fn exit_code(&self, check: bool) -> u8 {
        use crate::collect::cluster::chain;
        for e in &self.errors {
            eprintln!("error: {}", chain(e));
        }
        let failed = self
            .annotated
            .iter()
            .flat_map(|a| &a.failed)
            .chain(self.applied.iter().flat_map(|a| &a.failed));
        for (key, e) in failed {
            eprintln!("error: {key}: {}", chain(e));
        }
        if !self.errors.is_empty() || self.failed_workloads() > 0 {
            EXIT_ERROR
        } else if check && self.changes_recommended() {
            EXIT_CHANGES
        } else {
            EXIT_OK
        }
    }
}

/// Exit codes (README "Exit codes").
pub const EXIT_OK: u8 = 0;
pub const EXIT_ERROR: u8 = 2;
/// `--check` found changes to recommend (for CI).
pub const EXIT_CHANGES: u8 = 3;

/// What the emit stage gets from the rest of the run.
pub struct Emit<'a> {
    pub report: Report,
    pub ctx: super::Context<'a>,
    /// The discovered workloads (labels and annotations for GitOps checks, container order
    /// for JSON patches).
    pub workloads: &'a [Workload],
    /// The Kubernetes client when the run has the API.
    pub client: Option<&'a kube::Client>,
    pub started: Instant,
}

fn write_error(path: &std::path::Path, source: std::io::Error) -> super::Error {
    super::Error::Write {
        path: path.display().to_string(),
        source,
    }
}

/// Runs every output `outputs` selects, in order: report, Markdown, patches, manifests,
/// annotations, apply, pushed metrics. A failing output is recorded and the next one runs.
pub async fn emit(run: Emit<'_>, outputs: &Outputs, progress: &Progress) -> RunOutcome {
    let Emit {
        report,
        ctx,
        workloads,
        client,
        started,
    } = run;
    let changes = change::changes(&report);
    // Workloads an active VPA manages stay out of every write unless --force.
    let writable: Vec<WorkloadChange> = changes
        .iter()
        .filter(|c| outputs.force || !ctx.vpa.contains_key(&c.key))
        .cloned()
        .collect();
    let mut outcome = RunOutcome {
        report: Report {
            window_start: report.window_start,
            window_end: report.window_end,
            workloads: Vec::new(),
            totals: report.totals.clone(),
            warnings: Vec::new(),
        },
        changes: Vec::new(),
        patches: None,
        manifests: None,
        annotated: None,
        applied: None,
        pushed: false,
        config_map_written: false,
        pull_request: None,
        errors: Vec::new(),
        duration: Duration::ZERO,
    };
    // Manifests first: where they differ from the cluster goes into the report's warnings
    // (and so the Markdown and the table).
    let mut report = report;
    let manifests_result = outputs.manifests.as_ref().map(|dir| {
        progress.stage("editing manifests…");
        manifests::edit_manifests(dir, &writable)
    });
    if let Some(Ok(r)) = &manifests_result {
        report.warnings.extend(r.drift_warnings());
    }
    progress.clear();
    for w in &report.workloads {
        let _span = tracing::info_span!("workload", key = %w.key).entered();
        match &w.skip {
            Some(skip) => tracing::debug!(reason = ?skip, "skipped"),
            None if w.changed() => tracing::debug!(monthly_savings = w.monthly_savings, "change recommended"),
            None => tracing::debug!("no change"),
        }
    }
    let mut text = Vec::new();
    match &outputs.report {
        ReportTarget::None => {}
        target => match super::write(&report, &ctx, outputs.format, outputs.color, &mut text) {
            Err(e) => outcome.errors.push(e),
            Ok(()) => {
                let written = match target {
                    ReportTarget::File(path) => crate::atomic::write(path, &text).map_err(|e| write_error(path, e)),
                    _ => std::io::stdout().lock().write_all(&text).map_err(super::Error::Io),
                };
                if let Err(e) = written {
                    outcome.errors.push(e);
                }
            }
        },
    }
    if let Some(path) = &outputs.markdown {
        let mut md = Vec::new();
        let written = super::write(&report, &ctx, Format::Markdown, false, &mut md)
            .and_then(|()| crate::atomic::write(path, &md).map_err(|e| write_error(path, e)));
        if let Err(e) = written {
            outcome.errors.push(e);
        }
    }
    if let Some(p) = &outputs.patches {
        progress.stage("writing patches…");
        let current = CurrentObjects::from_workloads(workloads);
        match patches::write_patches(&p.dir, &writable, p.format, &current) {
            Ok(r) => {
                for (key, reason) in &r.skipped {
                    tracing::warn!(workload = %key, "no patch written: {reason}");
                }
                for (key, note) in &r.adjusted {
                    tracing::info!(workload = %key, "patch adjusted: {note}");
                }
                tracing::info!(files = r.files.len(), dir = %p.dir.display(), "patches written");
                outcome.patches = Some(r);
            }
            Err(e) => outcome.errors.push(e),
        }
    }
    if let (Some(result), Some(dir)) = (manifests_result, &outputs.manifests) {
        match result {
            Ok(r) => {
                for key in &r.not_found {
                    tracing::warn!(workload = %key, "no manifest under {} defines it", dir.display());
                }
                for p in &r.problems {
                    tracing::warn!(workload = %p.key, "manifest not edited: {}", p.reason);
                }
                for (path, reason) in &r.unparsable {
                    tracing::warn!(path = %path.display(), "not valid YAML, left untouched: {reason}");
                }
                for (path, reason) in &r.left_alone {
                    tracing::warn!(path = %path.display(), "{reason}");
                }
                for (key, note) in &r.adjusted {
                    tracing::info!(workload = %key, "manifest edit adjusted: {note}");
                }
                tracing::info!(files = r.files_changed.len(), "manifests edited");
                outcome.manifests = Some(r);
            }
            Err(e) => outcome.errors.push(e),
        }
    }
    if outputs.annotate
        && let Some(client) = client
    {
        progress.stage("annotating workloads…");
        let by_key: BTreeMap<&WorkloadKey, &Workload> = workloads.iter().map(|w| (&w.key, w)).collect();
        let items: Vec<Annotation> = writable
            .iter()
            .map(|c| Annotation {
                change: c.clone(),
                confidence: confidence(&report, &c.key),
                known_annotations: by_key.get(&c.key).map(|w| w.annotations.clone()),
            })
            .collect();
        let now = k8s_openapi::jiff::Timestamp::now();
        outcome.annotated = Some(annotate::annotate(client, &items, now).await);
    }
    if outputs.apply
        && let Some(client) = client
    {
        progress.stage("applying…");
        let by_key: BTreeMap<WorkloadKey, &Workload> = workloads.iter().map(|w| (w.key.clone(), w)).collect();
        let r = apply::apply(client, &changes, &by_key, ctx.vpa, outputs.force).await;
        for (key, reason) in &r.refused {
            eprintln!("not applied: {key}: {reason}");
        }
        outcome.applied = Some(r);
    }
    if let (Some(target), Some(client)) = (&outputs.config_map, client) {
        progress.stage("writing the report configmap…");
        match super::configmap::write(client, target, &report, &ctx).await {
            Ok(()) => outcome.config_map_written = true,
            Err(e) => outcome.errors.push(e),
        }
    }
    if let Some(push) = &outputs.push {
        progress.stage("pushing metrics…");
        let finished_at = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        let metrics = RunMetrics::from_report(
            &report,
            outcome.failed_workloads() as u64,
            started.elapsed(),
            finished_at,
        );
        match push::push_metrics(push, &metrics).await {
            Ok(()) => outcome.pushed = true,
            Err(e) => outcome.errors.push(e),
        }
    }
    if let Some(target) = &outputs.pull_request {
        // Last: a failure here leaves every other output written, and the previous pull
        // request as it was.
        progress.stage("updating the pull request…");
        let input = pull_request::Input {
            report: &report,
            ctx: &ctx,
            writable: &writable,
            workloads,
        };
        match pull_request::run(target, input).await {
            Ok(r) => {
                log_pull_request(&r, target);
                outcome.pull_request = Some(r);
            }
            Err(e) => outcome.errors.push(super::Error::PullRequest {
                repository: target.repository.clone(),
                reason: e.0,
            }),
        }
    }
    progress.clear();
    tracing::info!(
        workloads = report.workloads.len(),
        changed = changes.len(),
        patch_files = outcome.patches.as_ref().map_or(0, |p| p.files.len()),
        annotated = outcome.annotated.as_ref().map_or(0, |a| a.annotated.len()),
        failed = outcome.failed_workloads(),
        output_errors = outcome.errors.len(),
        duration_ms = started.elapsed().as_millis() as u64,
        "run finished"
    );
    outcome.report = report;
    outcome.changes = changes;
    outcome.duration = started.elapsed();
    outcome
}

fn log_pull_request(r: &PullRequestReport, target: &PullRequestTarget) {
    let url = r.url.as_deref().unwrap_or("");
    if let Some(note) = &r.note {
        tracing::warn!(repository = %target.repository, action = r.action.as_str(), "pull request: {note}");
    }
    tracing::info!(
        repository = %target.repository,
        branch = %r.branch,
        action = r.action.as_str(),
        url,
        files = r.files.len(),
        committed = r.committed,
        requests = r.requests.len(),
        "pull request"
    );
    tracing::debug!(requests = ?r.requests, "pull request api calls");
}

/// `rightsizer.dev/confidence`: the lowest confidence of the workload's containers, 0 to 1.
fn confidence(report: &Report, key: &WorkloadKey) -> String {
    let lowest = report
        .workloads
        .iter()
        .filter(|w| &w.key == key)
        .flat_map(|w| &w.containers)
        .filter(|c| c.skip.is_none())
        .map(|c| c.confidence)
        .fold(f64::INFINITY, f64::min);
    if lowest.is_finite() {
        format!("{lowest:.2}")
    } else {
        "0.00".into()
    }
}
