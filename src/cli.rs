//! The command line (clap derive). Doc comments are the help text; every flag a CronJob sets
//! also reads a `RIGHTSIZER_*` environment variable.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::emit::Format;
use crate::emit::patches::PatchFormat;

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
    /// Recommend requests and limits for every workload (read-only).
    Recommend(RecommendArgs),
    /// Capture discovery and usage into an offline snapshot file.
    Snapshot(SnapshotArgs),
    /// Score the recommendations on held-out history, beside today's values, KRR and the VPA.
    Backtest(crate::backtest::BacktestArgs),
    /// Run in the cluster: recommend, then annotate, push metrics, write patches and a report ConfigMap.
    Agent(crate::agent::AgentArgs),
}

#[derive(Debug, Args)]
pub struct RecommendArgs {
    #[command(flatten)]
    pub input: InputArgs,
    #[command(flatten)]
    pub output: OutputArgs,
    /// CI check mode: exit with code 3 when any change is recommended (0 when none, 2 on
    /// error).
    #[arg(long, env = "RIGHTSIZER_CHECK")]
    pub check: bool,
}

/// What a run writes and changes: the report, pull-request files, cluster writes, metrics.
#[derive(Debug, Args)]
pub struct OutputArgs {
    /// Report format (table for people; json, yaml, csv for machines; markdown for a PR).
    #[arg(long, short = 'f', value_enum, default_value_t = Format::Table, env = "RIGHTSIZER_FORMAT")]
    pub format: Format,
    /// Write the report to this file (atomically) instead of stdout.
    #[arg(long, short = 'o', value_name = "FILE", env = "RIGHTSIZER_OUTPUT")]
    pub output: Option<PathBuf>,
    /// No colour in the table (also off when stdout is not a terminal or NO_COLOR is set).
    #[arg(long, env = "RIGHTSIZER_NO_COLOR")]
    pub no_color: bool,
    /// No progress line on stderr (it is only drawn when stderr is a terminal).
    #[arg(long, env = "RIGHTSIZER_NO_PROGRESS")]
    pub no_progress: bool,
    /// Also write a Markdown summary for a pull-request body to this file.
    #[arg(long, value_name = "FILE", env = "RIGHTSIZER_MARKDOWN")]
    pub markdown: Option<PathBuf>,
    /// Write kustomize patches (one per changed workload, plus kustomization.yaml) here.
    #[arg(long, value_name = "DIR", env = "RIGHTSIZER_PATCHES_DIR")]
    pub patches_dir: Option<PathBuf>,
    /// Format of the workload patches in --patches-dir (HPA patches are always RFC 6902).
    #[arg(long, value_enum, default_value_t = PatchFormat::Strategic, env = "RIGHTSIZER_PATCH_FORMAT", requires = "patches_dir")]
    pub patch_format: PatchFormat,
    /// Edit the resources of the YAML manifests under DIR in place (comments and formatting
    /// kept).
    #[arg(long, value_name = "DIR", env = "RIGHTSIZER_MANIFESTS")]
    pub manifests: Option<PathBuf>,
    /// Write the recommendation as `rightsizer.dev/*` annotations on each changed workload
    /// (needs the Kubernetes API and RBAC `patch`; never touches the spec).
    #[arg(long, env = "RIGHTSIZER_ANNOTATE")]
    pub annotate: bool,
    /// Push metrics to the Pushgateway at this URL at the end of the run.
    #[arg(long, value_name = "URL", env = "RIGHTSIZER_PUSH_METRICS")]
    pub push_metrics: Option<String>,
    /// The `job` label of pushed metrics.
    #[arg(
        long,
        default_value = "rightsizer",
        env = "RIGHTSIZER_PUSH_JOB",
        requires = "push_metrics"
    )]
    pub push_job: String,
    /// Extra grouping labels of pushed metrics, `name=value` (repeatable or comma-separated).
    #[arg(
        long,
        value_name = "NAME=VALUE",
        env = "RIGHTSIZER_PUSH_GROUPING",
        value_delimiter = ',',
        requires = "push_metrics"
    )]
    pub push_grouping: Vec<String>,
    /// Patch the recommended resources and HPA settings into the cluster. Refuses workloads
    /// an active VPA manages or a GitOps controller owns, unless --force.
    #[arg(long, env = "RIGHTSIZER_APPLY")]
    pub apply: bool,
    /// Include VPA-managed workloads in patches, manifest edits, annotations and --apply, and
    /// GitOps-owned ones in --apply.
    #[arg(long, env = "RIGHTSIZER_FORCE")]
    pub force: bool,
}

#[derive(Debug, Args)]
pub struct SnapshotArgs {
    #[command(flatten)]
    pub input: InputArgs,
    /// File to write (gzip-compressed JSON).
    #[arg(long, short = 'o')]
    pub output: PathBuf,
}

/// Where the data comes from: a snapshot, or the cluster plus Prometheus.
#[derive(Debug, Args)]
pub struct InputArgs {
    /// Read workloads and usage from a snapshot file instead of the cluster.
    #[arg(long, env = "RIGHTSIZER_SNAPSHOT", conflicts_with_all = ["prometheus_url", "kubeconfig", "context"])]
    pub snapshot: Option<PathBuf>,
    #[command(flatten)]
    pub prometheus: PromArgs,
    #[command(flatten)]
    pub kube: KubeArgs,
    /// History window to read (`14d`, `36h`, `2w`). 14 days covers two weekly cycles.
    #[arg(long, default_value = "14d", env = "RIGHTSIZER_HISTORY")]
    pub history: String,
    /// Resolution of the CPU distribution and width of its rate window.
    #[arg(long, default_value = "5m", env = "RIGHTSIZER_STEP")]
    pub step: String,
    /// End of the window: unix seconds or RFC 3339 (default: now).
    #[arg(long, env = "RIGHTSIZER_END")]
    pub end: Option<String>,
}

#[derive(Debug, Args)]
pub struct PromArgs {
    /// Prometheus (or Thanos, Mimir, VictoriaMetrics) base URL.
    #[arg(long, env = "RIGHTSIZER_PROMETHEUS_URL")]
    pub prometheus_url: Option<String>,
    /// Bearer token for Prometheus.
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
    #[arg(
        long,
        env = "RIGHTSIZER_PROMETHEUS_PASSWORD",
        hide_env_values = true,
        requires = "prometheus_user"
    )]
    pub prometheus_password: Option<String>,
    /// Extra header on every Prometheus request, `Name=value` (e.g. `X-Scope-OrgID=team-a`).
    #[arg(long = "prometheus-header", value_name = "NAME=VALUE")]
    pub prometheus_headers: Vec<String>,
    /// Timeout of one Prometheus request.
    #[arg(long, default_value = "120s", env = "RIGHTSIZER_PROMETHEUS_TIMEOUT")]
    pub prometheus_timeout: String,
    /// PEM file of CA certificates to trust for Prometheus, besides the system store.
    #[arg(long, env = "RIGHTSIZER_PROMETHEUS_CA_FILE", value_name = "PEM")]
    pub prometheus_ca_file: Option<PathBuf>,
    /// Accept any certificate from Prometheus (test clusters only: anyone on the path can
    /// read and change the answers).
    #[arg(long, env = "RIGHTSIZER_PROMETHEUS_INSECURE_SKIP_TLS_VERIFY")]
    pub prometheus_insecure_skip_tls_verify: bool,
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
    #[arg(long, env = "RIGHTSIZER_PROMETHEUS_NO_REMOTE_READ")]
    pub prometheus_no_remote_read: bool,
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
    #[arg(long, env = "RIGHTSIZER_INCLUDE_SYSTEM_NAMESPACES")]
    pub include_system_namespaces: bool,
    /// Only workloads matching this label selector (`app=web,tier!=db`), as kubectl -l.
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
    #[arg(long, env = "RIGHTSIZER_NO_KUBE_API", conflicts_with_all = ["kubeconfig", "context"])]
    pub no_kube_api: bool,
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
