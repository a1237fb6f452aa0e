//! The Prometheus HTTP API client (`/api/v1/query`, `/api/v1/query_range`): auth headers,
//! timeouts, retries with backoff on 5xx/429/timeouts, bounded concurrency, and a strict
//! parser that turns malformed answers, `NaN`s and partial data into clear errors or warnings.
//! Works with anything that speaks the Prometheus API (Prometheus, Thanos, Mimir,
//! VictoriaMetrics).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use reqwest::header::{AUTHORIZATION, HeaderMap, HeaderName, HeaderValue};
use serde::Deserialize;
use tokio::sync::Semaphore;
use url::Url;

use super::Error;

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
        }
    }
}

/// Query counters, reported by benchmarks and logs.
#[derive(Debug, Default)]
pub struct PromStats {
    pub queries: AtomicU64,
    pub retries: AtomicU64,
    pub bytes: AtomicU64,
}

#[derive(Clone)]
pub struct PromClient {
    http: reqwest::Client,
    base: Url,
    retries: u32,
    permits: Arc<Semaphore>,
    stats: Arc<PromStats>,
}

/// One series of an instant vector.
#[derive(Debug, Clone, PartialEq)]
pub struct InstantSample {
    pub labels: BTreeMap<String, String>,
    pub timestamp: f64,
    pub value: f64,
}

/// One series of a range matrix.
#[derive(Debug, Clone, PartialEq)]
pub struct RangeSeries {
    pub labels: BTreeMap<String, String>,
    pub values: Vec<(i64, f64)>,
}

#[derive(Deserialize)]
struct Envelope {
    status: String,
    data: Option<Data>,
    #[serde(rename = "errorType")]
    error_type: Option<String>,
    error: Option<String>,
    #[serde(default)]
    warnings: Vec<String>,
}

#[derive(Deserialize)]
#[serde(tag = "resultType", content = "result", rename_all = "lowercase")]
enum Data {
    Vector(Vec<VectorItem>),
    Matrix(Vec<MatrixItem>),
    Scalar(serde::de::IgnoredAny),
    String(serde::de::IgnoredAny),
}

#[derive(Deserialize)]
struct VectorItem {
    metric: BTreeMap<String, String>,
    value: (f64, String),
}

#[derive(Deserialize)]
struct MatrixItem {
    metric: BTreeMap<String, String>,
    #[serde(default)]
    values: Vec<(f64, String)>,
}

/// Prometheus writes sample values as strings, `NaN` and `+Inf` included.
fn parse_value(s: &str) -> Option<f64> {
    match s {
        "NaN" => Some(f64::NAN),
        "+Inf" | "Inf" => Some(f64::INFINITY),
        "-Inf" => Some(f64::NEG_INFINITY),
        _ => s.parse().ok(),
    }
}

impl PromClient {
    pub fn new(cfg: &PromConfig) -> Result<Self, Error> {
        crate::install_crypto_provider();
        let mut headers = HeaderMap::new();
        if let Some(token) = &cfg.bearer_token {
            let mut v = HeaderValue::from_str(&format!("Bearer {}", token.trim()))
                .map_err(|_| Error::Config("the prometheus bearer token is not a valid header value".into()))?;
            v.set_sensitive(true);
            headers.insert(AUTHORIZATION, v);
        }
        for (name, value) in &cfg.headers {
            let n = HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| Error::Config(format!("invalid prometheus header name {name:?}")))?;
            let v = HeaderValue::from_str(value)
                .map_err(|_| Error::Config(format!("invalid value for prometheus header {name:?}")))?;
            headers.insert(n, v);
        }
        if let Some((user, pass)) = &cfg.basic_auth {
            let mut v = HeaderValue::from_str(&basic_auth_value(user, pass))
                .map_err(|_| Error::Config("the prometheus basic-auth credentials are not valid header text".into()))?;
            v.set_sensitive(true);
            headers.insert(AUTHORIZATION, v);
        }
        let builder = reqwest::Client::builder()
            .default_headers(headers)
            .timeout(cfg.timeout)
            .user_agent(concat!("rightsizer/", env!("CARGO_PKG_VERSION")));
        let http = builder
            .build()
            .map_err(|e| Error::Config(format!("cannot build the prometheus http client: {e}")))?;
        let mut base = cfg.url.clone();
        if !base.path().ends_with('/') {
            base.set_path(&format!("{}/", base.path()));
        }
        Ok(PromClient {
            http,
            base,
            retries: cfg.retries,
            permits: Arc::new(Semaphore::new(cfg.concurrency.max(1))),
            stats: Arc::new(PromStats::default()),
        })
    }

    pub fn stats(&self) -> &PromStats {
        &self.stats
    }

    pub fn url(&self) -> &Url {
        &self.base
    }

    /// Instant query evaluated at `time` (unix seconds). The time is always explicit: without
    /// it Prometheus evaluates at "now" and returns nothing once the newest sample is over
    /// five minutes old.
    pub async fn query(&self, promql: &str, time: i64) -> Result<Vec<InstantSample>, Error> {
        let params = [("query", promql.to_string()), ("time", time.to_string())];
        match self.call("api/v1/query", &params, promql).await? {
            Data::Vector(items) => items
                .into_iter()
                .map(|item| {
                    let value = parse_value(&item.value.1).ok_or_else(|| {
                        Error::malformed(promql, format!("sample value {:?} is not a number", item.value.1))
                    })?;
                    Ok(InstantSample {
                        labels: item.metric,
                        timestamp: item.value.0,
                        value,
                    })
                })
                .collect(),
            Data::Scalar(_) | Data::String(_) | Data::Matrix(_) => {
                Err(Error::malformed(promql, "expected an instant vector".into()))
            }
        }
    }

    /// Range query over `[start, end]` at `step` seconds.
    pub async fn query_range(&self, promql: &str, start: i64, end: i64, step: i64) -> Result<Vec<RangeSeries>, Error> {
        let params = [
            ("query", promql.to_string()),
            ("start", start.to_string()),
            ("end", end.to_string()),
            ("step", step.to_string()),
        ];
        match self.call("api/v1/query_range", &params, promql).await? {
            Data::Matrix(items) => items
                .into_iter()
                .map(|item| {
                    let values = item
                        .values
                        .into_iter()
                        .map(|(t, v)| {
                            parse_value(&v)
                                .map(|v| (t as i64, v))
                                .ok_or_else(|| Error::malformed(promql, format!("sample value {v:?} is not a number")))
                        })
                        .collect::<Result<_, _>>()?;
                    Ok(RangeSeries {
                        labels: item.metric,
                        values,
                    })
                })
                .collect(),
            _ => Err(Error::malformed(promql, "expected a range matrix".into())),
        }
    }

    async fn call(&self, path: &str, params: &[(&str, String)], promql: &str) -> Result<Data, Error> {
        let url = self
            .base
            .join(path)
            .map_err(|e| Error::Config(format!("bad prometheus url: {e}")))?;
        let _permit = self.permits.acquire().await.expect("semaphore never closed");
        let mut attempt = 0;
        loop {
            self.stats.queries.fetch_add(1, Ordering::Relaxed);
            let outcome = self.once(&url, params, promql).await;
            match outcome {
                Err(e) if e.is_retryable() && attempt < self.retries => {
                    attempt += 1;
                    self.stats.retries.fetch_add(1, Ordering::Relaxed);
                    // Exponential backoff: 0.5 s, 1 s, 2 s, ... capped at 8 s.
                    let delay = Duration::from_millis(500 * (1 << (attempt - 1).min(4)));
                    tracing::warn!(error = %e, attempt, delay_ms = delay.as_millis() as u64, "retrying prometheus query");
                    tokio::time::sleep(delay).await;
                }
                other => return other,
            }
        }
    }

    async fn once(&self, url: &Url, params: &[(&str, String)], promql: &str) -> Result<Data, Error> {
        let response = self
            .http
            .post(url.clone())
            .form(params)
            .send()
            .await
            .map_err(|source| Error::PrometheusUnreachable {
                url: self.base.to_string(),
                source,
            })?;
        let status = response.status();
        let body = response.bytes().await.map_err(|source| Error::PrometheusUnreachable {
            url: self.base.to_string(),
            source,
        })?;
        self.stats.bytes.fetch_add(body.len() as u64, Ordering::Relaxed);
        let envelope: Option<Envelope> = serde_json::from_slice(&body).ok();
        if !status.is_success() {
            let detail = envelope
                .as_ref()
                .and_then(|e| e.error.clone())
                .unwrap_or_else(|| String::from_utf8_lossy(&body[..body.len().min(300)]).into_owned());
            return Err(Error::PrometheusStatus {
                url: self.base.to_string(),
                status: status.as_u16(),
                detail,
                query: promql.to_string(),
            });
        }
        let envelope = envelope.ok_or_else(|| {
            let head = String::from_utf8_lossy(&body[..body.len().min(120)]).into_owned();
            Error::malformed(
                promql,
                format!("the answer is not Prometheus API JSON (starts with {head:?})"),
            )
        })?;
        if envelope.status != "success" {
            return Err(Error::PrometheusQuery {
                error_type: envelope.error_type.unwrap_or_default(),
                error: envelope.error.unwrap_or_default(),
                query: promql.to_string(),
            });
        }
        for warning in &envelope.warnings {
            tracing::warn!(query = promql, warning = %warning, "prometheus returned partial data");
        }
        envelope
            .data
            .ok_or_else(|| Error::malformed(promql, "success without data".into()))
    }
}

fn basic_auth_value(user: &str, pass: &str) -> String {
    const TABLE: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let input = format!("{user}:{pass}");
    let bytes = input.as_bytes();
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4 + 6);
    out.push_str("Basic ");
    for chunk in bytes.chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(TABLE[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_prometheus_value_strings() {
        assert_eq!(parse_value("1.5"), Some(1.5));
        assert!(parse_value("NaN").unwrap().is_nan());
        assert_eq!(parse_value("+Inf"), Some(f64::INFINITY));
        assert_eq!(parse_value("-Inf"), Some(f64::NEG_INFINITY));
        assert_eq!(parse_value("1e3"), Some(1000.0));
        assert_eq!(parse_value("x"), None);
    }

    #[test]
    fn encodes_basic_auth() {
        assert_eq!(
            basic_auth_value("Aladdin", "open sesame"),
            "Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ=="
        );
        assert_eq!(basic_auth_value("a", "b"), "Basic YTpi");
    }
}
