//! The input side of the pipeline and the only network code on it: Kubernetes discovery
//! (`cluster`), usage history from Prometheus (`prometheus`, `history`) and offline snapshots
//! (`snapshot`).

pub mod cluster;
pub mod filter;
pub mod history;
pub mod ksm;
pub mod ksm_labels;
pub mod metrics_api;
pub mod objects;
pub mod prometheus;
pub mod promparse;
pub mod remote_read;
pub mod scope;
pub mod selector;
pub mod slim;
pub mod snapshot;

use thiserror::Error;

#[derive(Debug, Error)]
pub enum Error {
    #[error("invalid configuration: {0}")]
    Config(String),

    #[error("cannot reach prometheus at {url}")]
    PrometheusUnreachable {
        url: String,
        #[source]
        source: reqwest::Error,
    },

    #[error("prometheus at {url} answered HTTP {status}: {detail}\nquery: {query}{}", status_hint(*.status))]
    PrometheusStatus {
        url: String,
        status: u16,
        detail: String,
        query: String,
    },

    #[error(
        "prometheus at {url} did not answer within {timeout:?} ({attempts} attempts)\nquery: {query}\nhint: raise --prometheus-timeout, or shorten --history for a slow or overloaded server"
    )]
    PrometheusTimeout {
        url: String,
        timeout: std::time::Duration,
        attempts: u32,
        query: String,
    },

    #[error(
        "prometheus at {url} answered {what}: over the cap\nquery: {query}\nhint: raise {setting} if the answer is genuine"
    )]
    PrometheusLimit {
        url: String,
        what: String,
        setting: &'static str,
        query: String,
    },

    #[error(
        "prometheus at {url} did not answer within the {which} deadline of {deadline:?}\nquery: {query}\nhint: raise {setting}, or shorten --history for a slow or overloaded server"
    )]
    PrometheusDeadline {
        url: String,
        which: &'static str,
        deadline: std::time::Duration,
        setting: &'static str,
        query: String,
    },

    #[error("the kubernetes api {problem} while listing {resource}\nhint: {hint}")]
    KubeList {
        resource: &'static str,
        problem: String,
        hint: String,
    },

    #[error("prometheus at {url} does not serve remote read with streamed chunks: {detail}")]
    RemoteReadUnsupported { url: String, detail: String },
    #[error("prometheus rejected the query ({error_type}): {error}\nquery: {query}")]
    PrometheusQuery {
        error_type: String,
        error: String,
        query: String,
    },

    #[error("malformed answer from prometheus: {reason}\nquery: {query}")]
    Malformed { reason: String, query: String },

    #[error("prometheus has no {metric} series in the window\nhint: {hint}")]
    MissingMetric { metric: &'static str, hint: &'static str },

    #[error(
        "prometheus at {url} ignored --prometheus-selector: it answered a series with {label}={value:?}, which contradicts the matcher {matcher}; its series are not used\nquery: {query}\nhint: the store (or a proxy in front of it) does not apply label matchers as Prometheus does; point --prometheus-url at a querier that does, or select the tenant with --prometheus-header"
    )]
    SelectorIgnored {
        url: String,
        matcher: String,
        label: String,
        value: String,
        query: String,
    },

    #[error(
        "the answers hold series of several clusters ({label}: {values}): rightsizer would pool the pods of different clusters that share a namespace and a pod name\nquery: {query}\nhint: choose one cluster, e.g. --prometheus-selector '{label}=\"{first}\"'"
    )]
    SeveralClusters {
        label: &'static str,
        values: String,
        first: String,
        query: String,
    },

    #[error(
        "no series match {selector} ({metric} in the window); {present}\nhint: check the label name and value of --prometheus-selector"
    )]
    NoSeriesMatch {
        selector: String,
        metric: &'static str,
        present: String,
    },

    #[error(transparent)]
    Forbidden(#[from] crate::rbac::Forbidden),

    #[error("failed to {verb} {resource} from the kubernetes api")]
    Kube {
        verb: &'static str,
        resource: &'static str,
        #[source]
        source: ::kube::Error,
    },

    #[error("cannot load the kubernetes client configuration: {0}")]
    KubeConfig(String),

    #[error("snapshot {path}: {reason}")]
    Snapshot { path: String, reason: String },
}

fn status_hint(status: u16) -> &'static str {
    match status {
        401 | 403 => "\nhint: check the credentials (--prometheus-token, --prometheus-token-file, --prometheus-user)",
        404 => {
            "\nhint: is --prometheus-url the server root (for Thanos/Mimir include the API prefix, e.g. /prometheus)?"
        }
        422 | 400 => "\nhint: the server refused the query; for very long windows try a larger --step",
        _ => "",
    }
}

impl Error {
    pub(crate) fn malformed(query: &str, reason: String) -> Self {
        Error::Malformed {
            reason,
            query: query.to_string(),
        }
    }

    /// Transient failures worth another try: timeouts, refused connections, 5xx and 429.
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::PrometheusUnreachable { source, .. } => {
                source.is_timeout()
                    || source.is_connect()
                    || source.is_request()
                    || source.is_body()
                    || source.is_decode()
            }
            Error::PrometheusStatus { status, .. } => *status == 429 || *status >= 500,
            Error::PrometheusTimeout { .. } => true,
            _ => false,
        }
    }
}
