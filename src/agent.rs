//! Agent mode (`rightsizer agent`): one scheduled run = discover -> collect -> recommend -> the
//! outputs the config selects (patch files into a mounted volume, a ConfigMap with the report,
//! annotations, metrics pushed to a Pushgateway). One run by default, for a CronJob; with
//! `--schedule` a long-lived process that runs on a Kubernetes cron schedule.
//!
//! Signals (SIGTERM, SIGINT): no new run starts after the first one. Between runs the process
//! exits at once with 0; during a run the run is finished, then the process exits with the
//! run's code. A second signal abandons the run: its staging directory is removed (every file
//! is written atomically, and the patch set replaces the previous one as a whole, so no partial
//! file or set is left) and the process exits with 128 + the signal: 143 (SIGTERM), 130
//! (SIGINT). Exit codes: 0 ok or a clean stop, 2 an error (bad config, or a one-shot run that
//! failed; with `--schedule` a failed run is logged and the next one still runs), 130 / 143 a
//! run abandoned on the second SIGINT / SIGTERM.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Instant;

use clap::{Args, ValueEnum};
use serde_json::Value;
use tokio::signal::unix::{Signal, SignalKind, signal};
use tracing::Instrument;

mod outputs;

use outputs::{confidence, sibling, write_config_map, write_patch_set};

use crate::Error;
use crate::cli::{InputArgs, KindArg, KubeArgs, PromArgs};
use crate::collect::kube::{self as kubeapi, ApiCall, KubeTarget};
use crate::config::{self, Config};
use crate::emit::annotate::{self, Annotation};
use crate::emit::patches::PatchFormat;
use crate::emit::push::{RunMetrics, push_metrics};
use crate::emit::{self, Context};
use crate::recommend;
use crate::schedule::Schedule;
use crate::settings::Input;

const fn call(group: &'static str, resource: &'static str, verb: &'static str) -> ApiCall {
    ApiCall { group, resource, verb }
}

/// The writes of `outputs.annotate` (emit/annotate.rs: a merge patch on the workload; the
/// agent passes the annotations discovery found, so it never GETs). Checked against
/// deploy/annotate/clusterrole.yaml and against what the fake API server records.
pub const ANNOTATE_CALLS: &[ApiCall] = &[
    call("apps", "deployments", "patch"),
    call("apps", "statefulsets", "patch"),
    call("apps", "daemonsets", "patch"),
    call("batch", "cronjobs", "patch"),
    call("batch", "jobs", "patch"),
];
/// The report ConfigMap, written with server-side apply: `patch`, plus `create` the first
/// time (an apply that creates is also authorized as create). deploy/role-report.yaml.
pub const REPORT_CALLS: &[ApiCall] = &[call("", "configmaps", "create"), call("", "configmaps", "patch")];
/// What `--apply` will need (resources of the workloads and their HPAs): the opt-in
/// deploy/apply/clusterrole.yaml. The agent does not apply yet.
pub const APPLY_CALLS: &[ApiCall] = &[
    call("apps", "deployments", "patch"),
    call("apps", "statefulsets", "patch"),
    call("apps", "daemonsets", "patch"),
    call("batch", "cronjobs", "patch"),
    call("autoscaling", "horizontalpodautoscalers", "patch"),
    // The HPA JSON patch is computed from a fresh read of the HPA (emit/apply.rs).
    call("autoscaling", "horizontalpodautoscalers", "get"),
];

/// `rightsizer agent`. Flags override the config file; each also reads `RIGHTSIZER_*`.
#[derive(Debug, Args)]
pub struct AgentArgs {
    /// YAML config file (e.g. a mounted ConfigMap); never searched for.
    #[arg(long, env = "RIGHTSIZER_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Run as a long-lived process on this Kubernetes cron schedule (`0 */6 * * *`) instead of
    /// once.
    #[arg(long, env = "RIGHTSIZER_SCHEDULE")]
    pub schedule: Option<String>,
    /// Override any config key: `policy.defaults.cpuPercentile=0.9` (repeatable; the env var
    /// separates items with `;`).
    #[arg(
        long = "set",
        env = "RIGHTSIZER_SET",
        value_delimiter = ';',
        value_name = "PATH=VALUE"
    )]
    pub set: Vec<String>,
    /// End of the history window (unix seconds or RFC 3339; default: the time of each run).
    #[arg(long, env = "RIGHTSIZER_END")]
    pub end: Option<String>,
    #[arg(long, env = "RIGHTSIZER_PROMETHEUS_URL")]
    pub prometheus_url: Option<String>,
    #[arg(long, env = "RIGHTSIZER_PROMETHEUS_TOKEN", hide_env_values = true)]
    pub prometheus_token: Option<String>,
    #[arg(long, env = "RIGHTSIZER_PROMETHEUS_TOKEN_FILE")]
    pub prometheus_token_file: Option<PathBuf>,
    #[arg(long, env = "RIGHTSIZER_PROMETHEUS_USER")]
    pub prometheus_user: Option<String>,
    #[arg(long, env = "RIGHTSIZER_PROMETHEUS_PASSWORD", hide_env_values = true)]
    pub prometheus_password: Option<String>,
    /// `Name=value`, repeatable.
    #[arg(long = "prometheus-header", value_name = "NAME=VALUE")]
    pub prometheus_headers: Vec<String>,
    #[arg(long, env = "RIGHTSIZER_PROMETHEUS_TIMEOUT")]
    pub prometheus_timeout: Option<String>,
    #[arg(long, env = "RIGHTSIZER_KUBECONFIG")]
    pub kubeconfig: Option<PathBuf>,
    #[arg(long, env = "RIGHTSIZER_CONTEXT")]
    pub context: Option<String>,
    #[arg(
        long = "namespace",
        short = 'n',
        env = "RIGHTSIZER_NAMESPACES",
        value_delimiter = ','
    )]
    pub namespaces: Vec<String>,
    #[arg(long, short = 'l', env = "RIGHTSIZER_SELECTOR")]
    pub selector: Option<String>,
    #[arg(long, env = "RIGHTSIZER_HISTORY")]
    pub history: Option<String>,
    #[arg(long, env = "RIGHTSIZER_STEP")]
    pub step: Option<String>,
    /// Annotate workloads (`--annotate`, `--annotate=false`).
    #[arg(long, env = "RIGHTSIZER_ANNOTATE", num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    pub annotate: Option<bool>,
    /// Directory the patch set is written to (replaced as a whole each run).
    #[arg(long, env = "RIGHTSIZER_PATCHES_DIR")]
    pub patches_dir: Option<PathBuf>,
    /// Name of the report ConfigMap.
    #[arg(long, env = "RIGHTSIZER_CONFIGMAP")]
    pub configmap: Option<String>,
    #[arg(long, env = "RIGHTSIZER_CONFIGMAP_NAMESPACE")]
    pub configmap_namespace: Option<String>,
    /// Pushgateway base URL to push the run's metrics to.
    #[arg(long, env = "RIGHTSIZER_PUSHGATEWAY_URL")]
    pub pushgateway_url: Option<String>,
}

impl AgentArgs {
    /// The flags as config overrides, in the order they apply (then `--set`).
    fn overrides(&self) -> Result<Vec<(String, Value)>, Error> {
        let mut o: Vec<(String, Value)> = Vec::new();
        let mut put = |path: &str, v: Option<Value>| {
            if let Some(v) = v {
                o.push((path.to_string(), v));
            }
        };
        let s = |v: &Option<String>| v.clone().map(Value::from);
        let p = |v: &Option<PathBuf>| v.as_ref().map(|p| Value::from(p.display().to_string()));
        put("schedule", s(&self.schedule));
        put("prometheus.url", s(&self.prometheus_url));
        put("prometheus.token", s(&self.prometheus_token));
        put("prometheus.tokenFile", p(&self.prometheus_token_file));
        put("prometheus.user", s(&self.prometheus_user));
        put("prometheus.password", s(&self.prometheus_password));
        put("prometheus.timeout", s(&self.prometheus_timeout));
        put("kube.kubeconfig", p(&self.kubeconfig));
        put("kube.context", s(&self.context));
        put(
            "kube.namespaces",
            (!self.namespaces.is_empty()).then(|| self.namespaces.clone().into()),
        );
        put("kube.selector", s(&self.selector));
        put("history", s(&self.history));
        put("step", s(&self.step));
        put("outputs.annotate", self.annotate.map(Value::from));
        put("outputs.patches.dir", p(&self.patches_dir));
        put("outputs.configMap.name", s(&self.configmap));
        put("outputs.configMap.namespace", s(&self.configmap_namespace));
        put("outputs.push.url", s(&self.pushgateway_url));
        for h in &self.prometheus_headers {
            let (name, value) = h
                .split_once('=')
                .ok_or_else(|| Error::Config(format!("invalid --prometheus-header {h:?}: use Name=value")))?;
            o.push((format!("prometheus.headers.{}", name.trim()), value.trim().into()));
        }
        for item in &self.set {
            o.push(config::parse_set(item)?);
        }
        Ok(o)
    }
}

/// The validated configuration of every run.
struct Plan {
    config: Config,
    end: Option<String>,
    schedule: Option<Schedule>,
    patch_format: PatchFormat,
    /// `(namespace, name)` of the report ConfigMap.
    config_map: Option<(String, String)>,
}

impl Plan {
    fn new(config: Config, end: Option<String>) -> Result<Plan, Error> {
        let schedule = match &config.schedule {
            Some(s) => Some(s.parse::<Schedule>().map_err(|e| Error::Config(e.to_string()))?),
            None => None,
        };
        let patch_format = match config.outputs.patches.as_ref().and_then(|p| p.format.as_deref()) {
            Some(f) => PatchFormat::from_str(f, true).map_err(|_| {
                Error::Config(format!(
                    "invalid outputs.patches.format {f:?}: use strategic or json6902"
                ))
            })?,
            None => PatchFormat::Strategic,
        };
        if config
            .outputs
            .patches
            .as_ref()
            .is_some_and(|p| p.dir.as_os_str().is_empty())
        {
            return Err(Error::Config("outputs.patches.dir is empty: give a directory".into()));
        }
        if config.outputs.push.as_ref().is_some_and(|p| p.url.is_empty()) {
            return Err(Error::Config(
                "outputs.push.url is empty: give the Pushgateway URL".into(),
            ));
        }
        let config_map = match &config.outputs.config_map {
            Some(cm) => Some((own_namespace(cm.namespace.as_deref())?, cm.name.clone())),
            None => None,
        };
        let writes = config.outputs.annotate || config_map.is_some();
        if writes && config.kube.no_kube_api {
            return Err(Error::Config(
                "outputs.annotate and outputs.configMap write through the kubernetes api: remove kube.noKubeApi".into(),
            ));
        }
        if config.prometheus.token.is_some() && config.prometheus.token_file.is_some() {
            return Err(Error::Config(
                "give prometheus.token or prometheus.tokenFile, not both".into(),
            ));
        }
        let plan = Plan {
            config,
            end,
            schedule,
            patch_format,
            config_map,
        };
        Input::try_from(&plan.input_args()?)?; // fail at start, not at the first run
        Ok(plan)
    }

    fn input_args(&self) -> Result<InputArgs, Error> {
        let (p, k) = (&self.config.prometheus, &self.config.kube);
        let kinds = k
            .kinds
            .iter()
            .map(|s| KindArg::from_str(s, true).map_err(|_| Error::Config(format!("invalid kube.kinds entry {s:?}"))))
            .collect::<Result<_, _>>()?;
        Ok(InputArgs {
            snapshot: None,
            prometheus: PromArgs {
                prometheus_url: p.url.clone(),
                prometheus_token: p.token.clone(),
                prometheus_token_file: p.token_file.clone(),
                prometheus_user: p.user.clone(),
                prometheus_password: p.password.clone(),
                prometheus_headers: p.headers.iter().map(|(k, v)| format!("{k}={v}")).collect(),
                prometheus_timeout: p.timeout.clone(),
                prometheus_ca_file: p.ca_file.clone(),
                prometheus_insecure_skip_tls_verify: p.insecure_skip_tls_verify,
                prometheus_concurrency: p.concurrency,
                prometheus_retries: p.retries,
                prometheus_no_remote_read: p.no_remote_read,
            },
            kube: KubeArgs {
                kubeconfig: k.kubeconfig.clone(),
                context: k.context.clone(),
                namespaces: k.namespaces.clone(),
                exclude_namespaces: k.exclude_namespaces.clone(),
                include_system_namespaces: k.include_system_namespaces,
                selector: k.selector.clone(),
                kinds,
                no_kube_api: k.no_kube_api,
            },
            history: self.config.history.clone(),
            step: self.config.step.clone(),
            end: self.end.clone(),
        })
    }

    fn kube_target(&self) -> KubeTarget {
        KubeTarget {
            kubeconfig: self.config.kube.kubeconfig.clone(),
            context: self.config.kube.context.clone(),
        }
    }
}

/// The agent's namespace: as configured, else `POD_NAMESPACE` (downward API), else the
/// ServiceAccount's.
fn own_namespace(configured: Option<&str>) -> Result<String, Error> {
    const SA: &str = "/var/run/secrets/kubernetes.io/serviceaccount/namespace";
    configured
        .map(str::to_string)
        .or_else(|| std::env::var("POD_NAMESPACE").ok().filter(|s| !s.is_empty()))
        .or_else(|| std::fs::read_to_string(SA).ok().map(|s| s.trim().to_string()))
        .ok_or_else(|| Error::Config("outputs.configMap.namespace is not set and not running in a pod".into()))
}

/// Loads the config (file, flags, env), logs it once with secrets redacted, and runs. Returns
/// the exit code (see the module docs); errors exit with 2.
pub async fn run(args: AgentArgs) -> Result<u8, Error> {
    let mut signals = Signals::new()?;
    let config = match &args.config {
        Some(path) => Config::from_file(path)?,
        None => Config::default(),
    }
    .with_overrides(&args.overrides()?)?;
    tracing::info!(config = %config.redacted(), "effective configuration");
    let plan = Plan::new(config, args.end.clone())?;
    let Some(schedule) = plan.schedule.clone() else {
        return match guarded(&plan, &mut signals).await {
            Guarded::Finished(result) => result.map(|_| 0),
            Guarded::Abandoned(signo) => Ok(128 + signo),
        };
    };
    loop {
        let now = chrono::Utc::now();
        let Some(next) = schedule.next_after(&now) else {
            return Err(Error::Config(format!(
                "schedule {:?} never fires again",
                schedule.as_str()
            )));
        };
        tracing::info!(schedule = schedule.as_str(), next_run = %next.to_rfc3339(), "next run scheduled");
        let wait = (next - now).to_std().unwrap_or_default();
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            signo = signals.recv() => {
                tracing::info!(signal = signo, "stopping between runs");
                return Ok(0);
            }
        }
        match guarded(&plan, &mut signals).await {
            Guarded::Finished(Ok(stop)) if stop => return Ok(0),
            Guarded::Finished(Ok(_)) => {}
            Guarded::Finished(Err(e)) => {
                tracing::error!(error = %kubeapi::chain(&e), "run failed; the next run is still scheduled");
                if signals.received {
                    return Ok(0);
                }
            }
            Guarded::Abandoned(signo) => return Ok(128 + signo),
        }
    }
}

/// SIGTERM and SIGINT as one stream of signal numbers.
struct Signals {
    term: Signal,
    int: Signal,
    received: bool,
}

impl Signals {
    fn new() -> Result<Signals, Error> {
        let install = |kind| signal(kind).map_err(|e| Error::Config(format!("cannot install signal handlers: {e}")));
        Ok(Signals {
            term: install(SignalKind::terminate())?,
            int: install(SignalKind::interrupt())?,
            received: false,
        })
    }

    async fn recv(&mut self) -> u8 {
        let signo = tokio::select! {
            _ = self.term.recv() => 15,
            _ = self.int.recv() => 2,
        };
        self.received = true;
        signo
    }
}

enum Guarded {
    /// The run ended; `Ok(true)` when a signal asked to stop after it.
    Finished(Result<bool, Error>),
    Abandoned(u8),
}

/// One run that a first signal lets finish and a second abandons.
async fn guarded(plan: &Plan, signals: &mut Signals) -> Guarded {
    let run = run_once(plan);
    tokio::pin!(run);
    let mut stopping = false;
    loop {
        tokio::select! {
            result = &mut run => return Guarded::Finished(result.map(|()| stopping)),
            signo = signals.recv() => {
                if stopping {
                    tracing::warn!(signal = signo, "second signal: abandoning the run");
                    if let Some(p) = &plan.config.outputs.patches {
                        let _ = std::fs::remove_dir_all(sibling(&p.dir, "staging"));
                    }
                    return Guarded::Abandoned(signo);
                }
                tracing::warn!(signal = signo, "finishing the current run, then stopping; send the signal again to abandon it");
                stopping = true;
            }
        }
    }
}

async fn run_once(plan: &Plan) -> Result<(), Error> {
    let started = Instant::now();
    let input = Input::try_from(&plan.input_args()?)?;
    let collected = crate::pipeline::collect(&input).await?;
    let report = recommend::recommend(&collected.workloads, &collected.usage, &plan.config.policy);
    let changes = emit::change::changes(&report);
    for w in &report.workloads {
        let _span = tracing::info_span!("workload", key = %w.key).entered();
        match &w.skip {
            Some(skip) => tracing::debug!(reason = ?skip, "skipped"),
            None if w.changed() => tracing::info!(monthly_savings = w.monthly_savings, "change recommended"),
            None => tracing::debug!("no change"),
        }
    }
    let outputs = &plan.config.outputs;
    let mut errors: Vec<Error> = Vec::new();
    let mut patch_files = 0;
    if let Some(p) = &outputs.patches {
        match write_patch_set(&p.dir, &changes, plan.patch_format) {
            Ok(n) => patch_files = n,
            Err(e) => errors.push(e),
        }
    }
    let client = if outputs.annotate || plan.config_map.is_some() {
        Some(kubeapi::client(&plan.kube_target()).await?)
    } else {
        None
    };
    if let (Some(client), Some((ns, name))) = (&client, &plan.config_map) {
        let ctx = Context {
            source: &collected.source,
            vpa: &collected.vpa,
            current_usage: &collected.current_usage,
            skipped: &collected.skipped,
        };
        if let Err(e) = write_config_map(client, ns, name, &report, &ctx).await {
            errors.push(e);
        }
    }
    let mut failed = 0;
    let mut annotated = 0;
    if let (Some(client), true) = (&client, outputs.annotate) {
        let known: BTreeMap<_, _> = collected.workloads.iter().map(|w| (&w.key, &w.annotations)).collect();
        let now = k8s_openapi::jiff::Timestamp::now();
        for change in &changes {
            let a = Annotation {
                change: change.clone(),
                confidence: confidence(&report, change),
                known_annotations: known.get(&change.key).map(|a| (*a).clone()),
            };
            let span = tracing::info_span!("workload", key = %change.key);
            let r = annotate::annotate(client, std::slice::from_ref(&a), now)
                .instrument(span)
                .await;
            annotated += r.annotated.len();
            failed += r.failed.len();
        }
    }
    if let Some(push) = &outputs.push {
        let finished_at = chrono::Utc::now().timestamp();
        let metrics = RunMetrics::from_report(&report, failed as u64, started.elapsed(), finished_at);
        let grouping: Vec<(String, String)> = push.grouping.clone().into_iter().collect();
        if let Err(e) = push_metrics(&push.url, &push.job, &grouping, &metrics).await {
            errors.push(e.into());
        }
    }
    tracing::info!(
        workloads = report.workloads.len(),
        changed = changes.len(),
        patch_files,
        annotated,
        annotate_failed = failed,
        duration_ms = started.elapsed().as_millis() as u64,
        "run finished"
    );
    let mut errors = errors.into_iter();
    match errors.next() {
        Some(first) => {
            for e in errors {
                tracing::error!(error = %kubeapi::chain(&e), "output failed");
            }
            Err(first)
        }
        None => Ok(()),
    }
}
