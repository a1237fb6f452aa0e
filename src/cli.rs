//! The command line (clap derive). Doc comments are the help text; every flag also reads a
//! `RIGHTSIZER_*` environment variable. Flags carry no defaults of their own: a flag that is
//! not given leaves the config file's value (or the default) in place, so the layers apply in
//! one order for every subcommand (see `settings`): defaults, config file, environment, flags,
//! `--set`. The defaults named in the help text live in `settings::file`.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::emit::Format;
use crate::emit::patches::PatchFormat;
use crate::emit::pull_request::Mode as PullRequestMode;

#[derive(Debug, Parser)]
#[command(
    name = "rightsizer",
    version,
    about = "Right-size Kubernetes CPU and memory requests, limits and HPAs from Prometheus history"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    /// Log format on stderr (level from RUST_LOG, default info).
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text, env = "RIGHTSIZER_LOG_FORMAT")]
    pub log_format: LogFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Recommend requests and limits for every workload (read-only unless an output asks
    /// for a write).
    Recommend(RecommendArgs),
    /// Capture discovery and usage into an offline snapshot file.
    Snapshot(SnapshotArgs),
    /// Score the recommendations on held-out history, beside today's values, KRR and the VPA.
    Backtest(BacktestArgs),
    /// The same run as `recommend`, for the cluster: once (a CronJob) or on a cron schedule
    /// (`--schedule`), finishing or abandoning a run cleanly on SIGTERM.
    Agent(AgentArgs),
}

/// `recommend`: one run.
#[derive(Debug, Args)]
pub struct RecommendArgs {
    #[command(flatten)]
    pub run: RunArgs,
}

/// `agent`: the same run, with a schedule around it.
#[derive(Debug, Args)]
pub struct AgentArgs {
    /// Run as a long-lived process on this Kubernetes cron schedule (`0 */6 * * *`) instead of
    /// once (config `schedule`).
    #[arg(long, env = "RIGHTSIZER_SCHEDULE")]
    pub schedule: Option<String>,
    #[command(flatten)]
    pub run: RunArgs,
}

/// Everything one run reads: config file and overrides, input, policy, outputs.
#[derive(Debug, Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub config: ConfigArgs,
    #[command(flatten)]
    pub input: InputArgs,
    #[command(flatten)]
    pub policy: PolicyArgs,
    #[command(flatten)]
    pub output: OutputArgs,
}

#[derive(Debug, Args)]
pub struct SnapshotArgs {
    #[command(flatten)]
    pub config: ConfigArgs,
    #[command(flatten)]
    pub input: InputArgs,
    /// File to write (gzip-compressed JSON).
    #[arg(long, short = 'o')]
    pub output: PathBuf,
}

/// The config file and `--set`.
#[derive(Debug, Args)]
pub struct ConfigArgs {
    /// YAML config file (camelCase keys, README "Configuration"); never searched for.
    #[arg(long, env = "RIGHTSIZER_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Override any config key, after every other layer: `policy.defaults.cpuPercentile=0.9`
    /// (repeatable; the env var separates items with `;`).
    #[arg(
        long = "set",
        env = "RIGHTSIZER_SET",
        value_delimiter = ';',
        value_name = "PATH=VALUE"
    )]
    pub set: Vec<String>,
}

/// Where the data comes from: a snapshot, or the cluster plus Prometheus, and the window.
#[derive(Debug, Args)]
pub struct InputArgs {
    /// Read workloads and usage from a snapshot file instead of the cluster (config
    /// `snapshot`).
    #[arg(long, env = "RIGHTSIZER_SNAPSHOT", conflicts_with_all = ["prometheus_url", "kubeconfig", "context"])]
    pub snapshot: Option<PathBuf>,
    #[command(flatten)]
    pub prometheus: PromArgs,
    #[command(flatten)]
    pub kube: KubeArgs,
    /// History window to read (`14d`, `36h`, `2w`; default 14d: two weekly cycles). A snapshot
    /// holds its own window: a different one is an error.
    #[arg(long, env = "RIGHTSIZER_HISTORY")]
    pub history: Option<String>,
    /// Resolution of the CPU distribution and width of its rate window (default 5m).
    #[arg(long, env = "RIGHTSIZER_STEP")]
    pub step: Option<String>,
    /// End of the window: unix seconds or RFC 3339 (default: now, at each run).
    #[arg(long, env = "RIGHTSIZER_END")]
    pub end: Option<String>,
    /// Largest snapshot read, decompressed, in bytes (default 1 GiB).
    #[arg(long, env = "RIGHTSIZER_SNAPSHOT_MAX_BYTES", value_name = "BYTES")]
    pub snapshot_max_bytes: Option<u64>,
}

#[derive(Debug, Args)]
pub struct PromArgs {
    /// Prometheus (or Thanos, Mimir, VictoriaMetrics) base URL.
    #[arg(long, env = "RIGHTSIZER_PROMETHEUS_URL")]
    pub prometheus_url: Option<String>,
    /// Bearer token for Prometheus (prefer --prometheus-token-file).
    #[arg(
        long,
        env = "RIGHTSIZER_PROMETHEUS_TOKEN",
        hide_env_values = true,
        conflicts_with = "prometheus_token_file"
    )]
    pub prometheus_token: Option<String>,
    /// File holding the bearer token (re-read on every run).
    #[arg(long, env = "RIGHTSIZER_PROMETHEUS_TOKEN_FILE")]
    pub prometheus_token_file: Option<PathBuf>,
    /// Basic-auth user for Prometheus (password from --prometheus-password).
    #[arg(long, env = "RIGHTSIZER_PROMETHEUS_USER", conflicts_with_all = ["prometheus_token", "prometheus_token_file"])]
    pub prometheus_user: Option<String>,
    #[arg(long, env = "RIGHTSIZER_PROMETHEUS_PASSWORD", hide_env_values = true)]
    pub prometheus_password: Option<String>,
    /// PromQL label matchers every query carries, to read one cluster of a central store
    /// (Thanos, Mimir, VictoriaMetrics): `cluster="prod-eu"`, several comma-separated or
    /// repeated (`cluster="prod-eu",env=~"prod|stage"`). Checked before any query.
    #[arg(
        long = "prometheus-selector",
        env = "RIGHTSIZER_PROMETHEUS_SELECTOR",
        value_name = "MATCHERS"
    )]
    pub prometheus_selector: Vec<String>,
    /// Extra header on every Prometheus request, `Name=value` (e.g. `X-Scope-OrgID=team-a`;
    /// repeatable).
    #[arg(long = "prometheus-header", value_name = "NAME=VALUE")]
    pub prometheus_headers: Vec<String>,
    /// Timeout of one Prometheus request (default 120s).
    #[arg(long, env = "RIGHTSIZER_PROMETHEUS_TIMEOUT")]
    pub prometheus_timeout: Option<String>,
    /// PEM file of CA certificates to trust for Prometheus, besides the system store.
    #[arg(long, env = "RIGHTSIZER_PROMETHEUS_CA_FILE", value_name = "PEM")]
    pub prometheus_ca_file: Option<PathBuf>,
    /// Accept any certificate from Prometheus (test clusters only: anyone on the path can
    /// read and change the answers).
    #[arg(long, env = "RIGHTSIZER_PROMETHEUS_INSECURE_SKIP_TLS_VERIFY", num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    pub prometheus_insecure_skip_tls_verify: Option<bool>,
    /// Prometheus queries in flight at once (default 4: Prometheus evaluates each query on
    /// all its cores, more only queue).
    #[arg(long, env = "RIGHTSIZER_PROMETHEUS_CONCURRENCY")]
    pub prometheus_concurrency: Option<usize>,
    /// Retries of a Prometheus query after a timeout, 429 or 5xx, with backoff (default 3).
    #[arg(long, env = "RIGHTSIZER_PROMETHEUS_RETRIES")]
    pub prometheus_retries: Option<u32>,
    /// Read CPU history with PromQL range queries only, never with remote read
    /// (`/api/v1/read`). By default remote read is tried first, and a server without it
    /// (VictoriaMetrics, a proxy that blocks it) falls back to PromQL by itself.
    #[arg(long, env = "RIGHTSIZER_PROMETHEUS_NO_REMOTE_READ", num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    pub prometheus_no_remote_read: Option<bool>,
    /// Deadline of one request, all its retries included (default 10m).
    #[arg(long, env = "RIGHTSIZER_PROMETHEUS_REQUEST_DEADLINE", value_name = "DURATION")]
    pub prometheus_request_deadline: Option<String>,
    /// Deadline of all Prometheus requests of a run (default 1h).
    #[arg(long, env = "RIGHTSIZER_PROMETHEUS_RUN_DEADLINE", value_name = "DURATION")]
    pub prometheus_run_deadline: Option<String>,
    /// Largest answer read, in bytes (default 4 GiB).
    #[arg(long, env = "RIGHTSIZER_PROMETHEUS_MAX_ANSWER_BYTES", value_name = "BYTES")]
    pub prometheus_max_answer_bytes: Option<u64>,
    /// Longest single string (label value) in an answer, in bytes (default 1 MiB).
    #[arg(long, env = "RIGHTSIZER_PROMETHEUS_MAX_STRING_BYTES", value_name = "BYTES")]
    pub prometheus_max_string_bytes: Option<usize>,
    /// Most series in one answer (default 2,000,000).
    #[arg(long, env = "RIGHTSIZER_PROMETHEUS_MAX_SERIES", value_name = "N")]
    pub prometheus_max_series: Option<u64>,
    /// Most labels of one series (default 1,000).
    #[arg(long, env = "RIGHTSIZER_PROMETHEUS_MAX_LABELS", value_name = "N")]
    pub prometheus_max_labels: Option<usize>,
    /// Distinct warnings kept from the answers (default 100).
    #[arg(long, env = "RIGHTSIZER_PROMETHEUS_MAX_WARNINGS", value_name = "N")]
    pub prometheus_max_warnings: Option<usize>,
}

#[derive(Debug, Args)]
pub struct KubeArgs {
    /// Kubeconfig file (default: KUBECONFIG, ~/.kube/config, then in-cluster).
    #[arg(long, env = "RIGHTSIZER_KUBECONFIG")]
    pub kubeconfig: Option<PathBuf>,
    /// Kubeconfig context to use.
    #[arg(long, env = "RIGHTSIZER_CONTEXT")]
    pub context: Option<String>,
    /// Only these namespaces (repeatable or comma-separated; default: all but the system
    /// namespaces). A namespace named here is read even if it is a system namespace.
    #[arg(
        long = "namespace",
        short = 'n',
        env = "RIGHTSIZER_NAMESPACES",
        value_delimiter = ','
    )]
    pub namespaces: Vec<String>,
    /// Leave out these namespaces (repeatable or comma-separated).
    #[arg(
        long = "exclude-namespace",
        env = "RIGHTSIZER_EXCLUDE_NAMESPACES",
        value_delimiter = ','
    )]
    pub exclude_namespaces: Vec<String>,
    /// Also read kube-system, kube-public and kube-node-lease (left out by default: the
    /// control plane is sized by its vendor).
    #[arg(long, env = "RIGHTSIZER_INCLUDE_SYSTEM_NAMESPACES", num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    pub include_system_namespaces: Option<bool>,
    /// Only workloads matching this label selector (`app=web,tier!=db,env in (a,b)`), as
    /// kubectl -l.
    #[arg(long, short = 'l', env = "RIGHTSIZER_SELECTOR")]
    pub selector: Option<String>,
    /// Only these workload kinds (comma-separated or repeatable; default: all).
    #[arg(
        long = "kind",
        env = "RIGHTSIZER_KINDS",
        value_enum,
        value_delimiter = ',',
        ignore_case = true
    )]
    pub kinds: Vec<KindArg>,
    /// Do not use the Kubernetes API: discover workloads from kube-state-metrics series in
    /// Prometheus (also the fallback when no kubeconfig or in-cluster config is found).
    #[arg(long, env = "RIGHTSIZER_NO_KUBE_API", conflicts_with_all = ["kubeconfig", "context"], num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    pub no_kube_api: Option<bool>,
    /// Timeout of one page of a Kubernetes list (default 60s).
    #[arg(long, env = "RIGHTSIZER_KUBE_REQUEST_TIMEOUT", value_name = "DURATION")]
    pub kube_request_timeout: Option<String>,
    /// Most pages of one Kubernetes list (default 10,000 of 500 objects).
    #[arg(long, env = "RIGHTSIZER_KUBE_LIST_MAX_PAGES", value_name = "N")]
    pub kube_list_max_pages: Option<u32>,
    /// Deadline of one Kubernetes list, all pages and retries included (default 10m).
    #[arg(long, env = "RIGHTSIZER_KUBE_LIST_DEADLINE", value_name = "DURATION")]
    pub kube_list_deadline: Option<String>,
}

/// Workload kinds, as Kubernetes spells them (case-insensitive).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum KindArg {
    #[value(name = "Deployment")]
    Deployment,
    #[value(name = "StatefulSet")]
    StatefulSet,
    #[value(name = "DaemonSet")]
    DaemonSet,
    #[value(name = "CronJob")]
    CronJob,
    #[value(name = "Job")]
    Job,
    /// Pods with no controller.
    #[value(name = "Pod")]
    Pod,
}

/// The common policy keys (`policy.defaults.*`); every other key through `--config` or
/// `--set`. Percentiles and buffers are fractions (`0.95`, `0.15`) or explicit percentages
/// (`95%`, `15%`).
#[derive(Debug, Args)]
pub struct PolicyArgs {
    /// CPU request percentile of the pooled usage (default 0.95, KRR's p95).
    #[arg(
        long,
        env = "RIGHTSIZER_CPU_PERCENTILE",
        value_name = "FRACTION",
        allow_hyphen_values = true
    )]
    pub cpu_percentile: Option<String>,
    /// Margin over the CPU percentile (default 0).
    #[arg(
        long,
        env = "RIGHTSIZER_CPU_BUFFER",
        value_name = "FRACTION",
        allow_hyphen_values = true
    )]
    pub cpu_buffer: Option<String>,
    /// Margin over the memory figure (default 0.15).
    #[arg(
        long,
        env = "RIGHTSIZER_MEMORY_BUFFER",
        value_name = "FRACTION",
        allow_hyphen_values = true
    )]
    pub memory_buffer: Option<String>,
    /// `peak` (window peak, KRR) or `dailyPeaks` (p90 of the daily peaks, the VPA).
    #[arg(long, env = "RIGHTSIZER_MEMORY_MODE", value_name = "MODE")]
    pub memory_mode: Option<String>,
    /// CPU limits: `keep` (only where one exists, default), `always` or `remove`.
    #[arg(long, env = "RIGHTSIZER_CPU_LIMIT", value_name = "MODE")]
    pub cpu_limit: Option<String>,
    /// Floor of the CPU request per container (default 10m).
    #[arg(long, env = "RIGHTSIZER_MIN_CPU", value_name = "QUANTITY")]
    pub min_cpu: Option<String>,
    /// Cap of the CPU request per container (default none).
    #[arg(long, env = "RIGHTSIZER_MAX_CPU", value_name = "QUANTITY")]
    pub max_cpu: Option<String>,
    /// Floor of the memory request per container (default 16Mi).
    #[arg(long, env = "RIGHTSIZER_MIN_MEMORY", value_name = "QUANTITY")]
    pub min_memory: Option<String>,
    /// Cap of the memory request per container (default none).
    #[arg(long, env = "RIGHTSIZER_MAX_MEMORY", value_name = "QUANTITY")]
    pub max_memory: Option<String>,
}

/// What a run writes and changes: the report, pull-request files, cluster writes, metrics.
#[derive(Debug, Args)]
pub struct OutputArgs {
    /// Report format (default table for people; json, yaml, csv for machines; markdown for a
    /// PR).
    #[arg(long, short = 'f', value_enum, env = "RIGHTSIZER_FORMAT")]
    pub format: Option<Format>,
    /// Write the report to this file (atomically) instead of stdout.
    #[arg(long, short = 'o', value_name = "FILE", env = "RIGHTSIZER_OUTPUT")]
    pub output: Option<PathBuf>,
    /// No colour in the table or the log (also off when the stream is not a terminal or
    /// NO_COLOR is set).
    #[arg(long, env = "RIGHTSIZER_NO_COLOR", num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    pub no_color: Option<bool>,
    /// No progress line on stderr (it is only drawn when stderr is a terminal).
    #[arg(long, env = "RIGHTSIZER_NO_PROGRESS", num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    pub no_progress: Option<bool>,
    /// Also write a Markdown summary for a pull-request body to this file.
    #[arg(long, value_name = "FILE", env = "RIGHTSIZER_MARKDOWN")]
    pub markdown: Option<PathBuf>,
    /// Write kustomize patches (one per changed workload, plus kustomization.yaml) here.
    #[arg(long, value_name = "DIR", env = "RIGHTSIZER_PATCHES_DIR")]
    pub patches_dir: Option<PathBuf>,
    /// Format of the workload patches (default strategic; HPA patches are always RFC 6902).
    #[arg(long, value_enum, env = "RIGHTSIZER_PATCH_FORMAT")]
    pub patch_format: Option<PatchFormat>,
    /// Edit the resources of the YAML manifests under DIR in place (comments and formatting
    /// kept).
    #[arg(long, value_name = "DIR", env = "RIGHTSIZER_MANIFESTS")]
    pub manifests: Option<PathBuf>,
    /// Write the recommendation as `rightsizer.dev/*` annotations on each changed workload
    /// (needs the Kubernetes API and RBAC `patch`; never touches the spec).
    #[arg(long, env = "RIGHTSIZER_ANNOTATE", num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    pub annotate: Option<bool>,
    /// Patch the recommended resources and HPA settings into the cluster. Refuses workloads
    /// an active VPA manages or a GitOps controller owns, unless --force.
    #[arg(long, env = "RIGHTSIZER_APPLY", num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    pub apply: Option<bool>,
    /// Include VPA-managed workloads in patches, manifest edits, annotations and --apply, and
    /// GitOps-owned ones in --apply.
    #[arg(long, env = "RIGHTSIZER_FORCE", num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    pub force: Option<bool>,
    /// Write the report (JSON and table) to this ConfigMap by server-side apply.
    #[arg(long, value_name = "NAME", env = "RIGHTSIZER_CONFIGMAP")]
    pub configmap: Option<String>,
    /// Namespace of the report ConfigMap (default: the agent's own namespace).
    #[arg(long, value_name = "NAMESPACE", env = "RIGHTSIZER_CONFIGMAP_NAMESPACE")]
    pub configmap_namespace: Option<String>,
    /// Push metrics to the Pushgateway at this URL at the end of the run.
    #[arg(
        long,
        visible_alias = "pushgateway-url",
        value_name = "URL",
        env = "RIGHTSIZER_PUSH_METRICS"
    )]
    pub push_metrics: Option<String>,
    /// The `job` label of pushed metrics (default rightsizer).
    #[arg(long, env = "RIGHTSIZER_PUSH_JOB")]
    pub push_job: Option<String>,
    /// Extra grouping labels of pushed metrics, `name=value` (repeatable or comma-separated).
    #[arg(
        long,
        value_name = "NAME=VALUE",
        env = "RIGHTSIZER_PUSH_GROUPING",
        value_delimiter = ','
    )]
    pub push_grouping: Vec<String>,
    /// Open or update a pull request (GitHub) or merge request (GitLab) with the change:
    /// `PROVIDER:REPOSITORY[@BASE][:PATH]`, e.g. `github:org/repo@main:k8s/` (config
    /// `outputs.pullRequest`; README "Pull requests").
    #[arg(long, value_name = "PROVIDER:REPO[@BASE][:PATH]", env = "RIGHTSIZER_PULL_REQUEST")]
    pub pull_request: Option<String>,
    /// File holding the GitHub or GitLab token (a mounted Secret; never the token itself).
    #[arg(long, value_name = "FILE", env = "RIGHTSIZER_PULL_REQUEST_TOKEN_FILE")]
    pub pull_request_token_file: Option<PathBuf>,
    /// `edit` the manifests under the path (default) or write the `patches` set there.
    #[arg(long, value_enum, env = "RIGHTSIZER_PULL_REQUEST_MODE")]
    pub pull_request_mode: Option<PullRequestMode>,
    /// API base URL (default https://api.github.com or https://gitlab.com; GitHub Enterprise
    /// https://HOST/api/v3).
    #[arg(long, value_name = "URL", env = "RIGHTSIZER_PULL_REQUEST_API_URL")]
    pub pull_request_api_url: Option<String>,
    /// The bot branch (default rightsizer/<kube context>).
    #[arg(long, value_name = "BRANCH", env = "RIGHTSIZER_PULL_REQUEST_BRANCH")]
    pub pull_request_branch: Option<String>,
    /// Title of the pull request.
    #[arg(long, value_name = "TITLE", env = "RIGHTSIZER_PULL_REQUEST_TITLE")]
    pub pull_request_title: Option<String>,
    /// Labels of a new pull request (comma-separated or repeatable).
    #[arg(
        long,
        value_name = "LABEL",
        env = "RIGHTSIZER_PULL_REQUEST_LABELS",
        value_delimiter = ','
    )]
    pub pull_request_labels: Vec<String>,
    /// Reviewers of a new pull request, usernames (GitHub teams as org/team).
    #[arg(
        long,
        value_name = "USER",
        env = "RIGHTSIZER_PULL_REQUEST_REVIEWERS",
        value_delimiter = ','
    )]
    pub pull_request_reviewers: Vec<String>,
    /// Assignees of a new pull request, usernames.
    #[arg(
        long,
        value_name = "USER",
        env = "RIGHTSIZER_PULL_REQUEST_ASSIGNEES",
        value_delimiter = ','
    )]
    pub pull_request_assignees: Vec<String>,
    /// Open a new pull request as a draft.
    #[arg(long, env = "RIGHTSIZER_PULL_REQUEST_DRAFT", num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    pub pull_request_draft: Option<bool>,
    /// CI check mode: exit with code 3 when any change is recommended (0 when none, 2 on
    /// error).
    #[arg(long, env = "RIGHTSIZER_CHECK", num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    pub check: Option<bool>,
}

/// `rightsizer backtest`: the input flags of `recommend` (the window is the training
/// history, ending `--holdout` before `--end`), plus the held-out window and the report.
#[derive(Debug, Args)]
pub struct BacktestArgs {
    #[command(flatten)]
    pub config: ConfigArgs,
    #[command(flatten)]
    pub input: InputArgs,
    #[command(flatten)]
    pub policy: PolicyArgs,
    /// Held-out window at the end: recommend as of `end - holdout` from the `--history`
    /// before it, then score every method on this window. 7 days holds a weekly cycle.
    #[arg(long, default_value = "7d", env = "RIGHTSIZER_HOLDOUT")]
    pub holdout: String,
    /// Report format.
    #[arg(long, short = 'f', value_enum, default_value_t = BacktestFormat::Table, env = "RIGHTSIZER_FORMAT")]
    pub format: BacktestFormat,
    /// Write the report to this file (atomically) instead of stdout.
    #[arg(long, short = 'o', value_name = "FILE", env = "RIGHTSIZER_OUTPUT")]
    pub output: Option<PathBuf>,
    /// No progress line on stderr (it is only drawn when stderr is a terminal).
    #[arg(long, env = "RIGHTSIZER_NO_PROGRESS")]
    pub no_progress: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BacktestFormat {
    Table,
    Json,
    Markdown,
}
