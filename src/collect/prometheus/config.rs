//! How to reach Prometheus and the bounds every request is held to (`PromConfig`), and the
//! run's de-duplicated, capped warnings. Built once by `Settings`; the client keeps the
//! bounds with the run deadline turned into an instant.

use std::collections::HashSet;
use std::time::Duration;

use url::Url;

use crate::collect::promparse::Caps;
use crate::collect::scope::Scope;

/// How to reach Prometheus. Built once by `Settings`.
#[derive(Debug, Clone)]
pub struct PromConfig {
    pub url: Url,
    pub bearer_token: Option<String>,
    pub basic_auth: Option<(String, String)>,
    /// Extra headers, e.g. `X-Scope-OrgID` for Mimir/Cortex tenants.
    pub headers: Vec<(String, String)>,
    pub timeout: Duration,
    pub retries: u32,
    pub concurrency: usize,
    /// PEM bundle of CAs to trust in addition to the system store.
    pub ca_file: Option<std::path::PathBuf>,
    /// Accept any server certificate (off by default; for test clusters only).
    pub insecure_skip_tls_verify: bool,
    /// First retry delay; it doubles per attempt up to 16x.
    pub backoff: Duration,
    /// Try remote read (streamed chunks) for the CPU history before PromQL.
    pub remote_read: bool,
    /// All attempts of one request, backoff included, end by this long after it starts.
    pub request_deadline: Duration,
    /// Every request of the run ends by this long after the client is built (`None`: no
    /// deadline beyond each request's).
    pub run_deadline: Option<Duration>,
    /// The longest `Retry-After` honoured; a longer one waits this long.
    pub max_retry_after: Duration,
    /// Bytes of one answer.
    pub max_answer_bytes: u64,
    /// Bytes of one JSON string in an answer (a label value, a warning, an error message).
    pub max_string_bytes: usize,
    /// Series in one answer.
    pub max_series: u64,
    /// Labels of one series.
    pub max_labels: usize,
    /// Distinct warnings kept and logged (per answer and per run); the rest are counted.
    pub max_warnings: usize,
    /// Bytes of the pod-name matcher of one restart selection: the restarted pods are named
    /// in as many selections as it takes.
    pub max_pod_matcher_bytes: usize,
    /// Label matchers every query carries (`--prometheus-selector`): one cluster of a
    /// central store. Empty: none.
    pub scope: Scope,
}

impl PromConfig {
    pub fn new(url: Url) -> Self {
        PromConfig {
            url,
            bearer_token: None,
            basic_auth: None,
            headers: Vec::new(),
            // Long-window subqueries over big clusters take tens of seconds on the server.
            timeout: Duration::from_secs(120),
            retries: 3,
            // Prometheus evaluates queries on all cores; more than a few at once only queues.
            concurrency: 4,
            ca_file: None,
            insecure_skip_tls_verify: false,
            // 0.5 s, 1 s, 2 s: rides out a Prometheus restart or a rolling Thanos querier.
            backoff: Duration::from_millis(500),
            remote_read: true,
            // Four attempts of the 120 s timeout plus backoff: the default retries always fit.
            request_deadline: Duration::from_secs(600),
            // A run at 10,000 workloads spends about a minute in Prometheus (README); an hour
            // only stops a run that would never end.
            run_deadline: Some(Duration::from_secs(3600)),
            // A longer wait is better reported than slept through.
            max_retry_after: Duration::from_secs(60),
            // The largest answers are CPU chunks, a few hundred MiB at 10,000 workloads.
            max_answer_bytes: 4 << 30,
            // Kubernetes names are at most 253 bytes and label values 63; annotations 256 KiB
            // in all. 1 MiB is far above any real value and bounds what one string costs.
            max_string_bytes: 1 << 20,
            // 20x the series of the largest answer measured (a CPU chunk at 10,000 workloads).
            max_series: 2_000_000,
            // kube-state-metrics label series carry one label per Kubernetes label: tens.
            max_labels: 1_000,
            max_warnings: 100,
            // VictoriaMetrics refuses a query over 16 KiB by default (`-search.maxQueryLen`);
            // 8 KiB names about 250 pods and leaves room for the rest of the query.
            max_pod_matcher_bytes: 8 * 1024,
            scope: Scope::default(),
        }
    }

    pub(super) fn caps(&self) -> Caps {
        Caps {
            max_series: self.max_series,
            max_labels: self.max_labels,
            max_warnings: self.max_warnings,
        }
    }
}

/// Warnings kept for the report: each once, in order, at most `max` of them.
#[derive(Debug, Default)]
pub(super) struct Warnings {
    pub(super) list: Vec<String>,
    pub(super) seen: HashSet<String>,
    /// Distinct warnings beyond the cap, counted only.
    pub(super) dropped: u64,
}

/// The bounds of `PromConfig`, with the run deadline as an instant.
#[derive(Debug)]
pub(super) struct Limits {
    pub(super) caps: Caps,
    pub(super) request_deadline: Duration,
    pub(super) run_deadline: Option<(tokio::time::Instant, Duration)>,
    pub(super) max_retry_after: Duration,
    pub(super) max_answer_bytes: u64,
    pub(super) max_string_bytes: usize,
    pub(super) max_warnings: usize,
    pub(super) max_pod_matcher_bytes: usize,
}
