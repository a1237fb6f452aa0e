//! The Prometheus HTTP API client (`/api/v1/query`, `/query_range`, `/series`, and remote read
//! `/api/v1/read` with streamed chunks), the only code that
//! talks to Prometheus: auth (bearer token, basic auth, extra headers such as `X-Scope-OrgID`),
//! TLS (a CA bundle added to the system roots, or no verification when asked), timeouts,
//! retries with exponential backoff on timeouts, connection errors, 5xx, 429 (honouring
//! `Retry-After`) and torn or malformed answers, and bounded concurrency. Answers are parsed as
//! they arrive (`promparse`) on a blocking thread fed by the body stream, into a sink the
//! caller chooses, so the client never holds a whole answer. Partial-data `warnings`, `NaN`s
//! and unparsable points are counted and reported, not fatal. Works with anything that speaks
//! the Prometheus API (Prometheus, Thanos, Mimir, VictoriaMetrics).
//!
//! Nothing an answer holds is trusted to be small or quick. Each request has an overall
//! deadline over all its attempts (`request_deadline`) and the run one over all its requests
//! (`run_deadline`); `Retry-After` is capped (`max_retry_after`); a body cut mid-stream
//! (reqwest calls it a decode error) is retried like a timeout. An answer is capped in bytes,
//! in the length of any one JSON string (a label value, a warning), in series and in labels
//! per series; going over a cap is an error that names it and the setting that raises it.
//! Warnings are de-duplicated with a set and at most `max_warnings` are kept and logged.

use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use reqwest::header::{AUTHORIZATION, HeaderMap, HeaderName, HeaderValue};
use tokio::sync::{Semaphore, mpsc};
use url::Url;

use self::transport::{Broken, ChannelReader, Failure, backoff, basic_auth_value, retry_after};
use super::Error;
use super::promparse::{JsonStrings, ParseError};
pub use super::promparse::{Labels, Parsed, SeriesSink};
use super::remote_read::{self, Matcher, RawSink, RawStats};
use super::scope::{CLUSTER_LABELS, Scope};

mod config;
mod scoped;
mod transport;

pub use self::config::PromConfig;
use self::config::{Limits, Warnings};
use self::scoped::Scoped;

/// A request body.
enum Body<'a> {
    /// An API query as a form.
    Form(&'a [(&'a str, String)]),
    /// A GET with a query string (endpoints that take no form, e.g. label values).
    Query(&'a [(&'a str, String)]),
    /// A snappy-framed `prometheus.ReadRequest`.
    RemoteRead(Vec<u8>),
}

fn error_detail(e: &Error) -> String {
    match e {
        Error::PrometheusStatus { detail, .. } => detail.clone(),
        other => other.to_string(),
    }
}

/// Query counters, reported by benchmarks and logs.
#[derive(Debug, Default)]
pub struct PromStats {
    /// Queries asked (a retried query counts once).
    pub queries: AtomicU64,
    /// Extra attempts after a failure.
    pub retries: AtomicU64,
    /// Answer bytes read.
    pub bytes: AtomicU64,
    /// Remote reads answered with streamed chunks (also counted in `queries`).
    pub remote_reads: AtomicU64,
    /// Points parsed and handed to a sink.
    pub samples: AtomicU64,
    /// `NaN`/infinite points and points that were not numbers, skipped.
    pub skipped: AtomicU64,
}

#[derive(Clone)]
pub struct PromClient {
    http: reqwest::Client,
    base: Url,
    retries: u32,
    backoff: Duration,
    remote_read: Arc<std::sync::atomic::AtomicBool>,
    /// Whether the server's answer to remote read is known yet; until it is, one remote read
    /// goes out at a time (`remote_probe`), so a server without it costs exactly one request.
    remote_known: Arc<std::sync::atomic::AtomicBool>,
    remote_probe: Arc<Semaphore>,
    /// The selector every query carries (`collect::scope`), and the cluster label values
    /// the answers held so far.
    scope: Arc<Scope>,
    clusters: Arc<Mutex<Vec<(&'static str, String)>>>,
    timeout: Duration,
    permits: Arc<Semaphore>,
    stats: Arc<PromStats>,
    warnings: Arc<Mutex<Warnings>>,
    limits: Arc<Limits>,
}

/// One series of an instant vector.
#[derive(Debug, Clone, PartialEq)]
pub struct InstantSample {
    pub labels: Labels,
    pub timestamp: f64,
    pub value: f64,
}

/// One series of a range matrix.
#[derive(Debug, Clone, PartialEq)]
pub struct RangeSeries {
    pub labels: Labels,
    pub values: Vec<(i64, f64)>,
}

/// A sink that keeps every series: for small answers (owners, HPA) and tests.
#[derive(Debug, Default)]
pub struct CollectSeries(pub Vec<RangeSeries>);

impl SeriesSink for CollectSeries {
    fn series(&mut self, labels: &Labels) {
        self.0.push(RangeSeries {
            labels: labels.clone(),
            values: Vec::new(),
        });
    }

    fn sample(&mut self, t: f64, v: f64) {
        if let Some(s) = self.0.last_mut() {
            s.values.push((t.round() as i64, v));
        }
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
        let mut builder = reqwest::Client::builder()
            .default_headers(headers)
            .timeout(cfg.timeout)
            .user_agent(concat!("rightsizer/", env!("CARGO_PKG_VERSION")));
        if let Some(path) = &cfg.ca_file {
            let pem = std::fs::read(path)
                .map_err(|e| Error::Config(format!("cannot read the prometheus CA bundle {}: {e}", path.display())))?;
            let certs = reqwest::Certificate::from_pem_bundle(&pem)
                .map_err(|e| Error::Config(format!("the prometheus CA bundle {} is not PEM: {e}", path.display())))?;
            if certs.is_empty() {
                return Err(Error::Config(format!(
                    "the prometheus CA bundle {} holds no certificate",
                    path.display()
                )));
            }
            builder = builder.tls_certs_merge(certs);
        }
        if cfg.insecure_skip_tls_verify {
            tracing::warn!("prometheus TLS certificates are not verified (insecure-skip-tls-verify)");
            builder = builder.tls_danger_accept_invalid_certs(true);
        }
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
            backoff: cfg.backoff,
            remote_read: Arc::new(std::sync::atomic::AtomicBool::new(cfg.remote_read)),
            remote_known: Arc::new(std::sync::atomic::AtomicBool::new(false)),
            remote_probe: Arc::new(Semaphore::new(1)),
            scope: Arc::new(cfg.scope.clone()),
            clusters: Arc::new(Mutex::new(Vec::new())),
            timeout: cfg.timeout,
            permits: Arc::new(Semaphore::new(cfg.concurrency.max(1))),
            stats: Arc::new(PromStats::default()),
            warnings: Arc::new(Mutex::new(Warnings::default())),
            limits: Arc::new(Limits {
                caps: cfg.caps(),
                request_deadline: cfg.request_deadline,
                run_deadline: cfg.run_deadline.map(|d| (tokio::time::Instant::now() + d, d)),
                max_retry_after: cfg.max_retry_after,
                max_answer_bytes: cfg.max_answer_bytes,
                max_string_bytes: cfg.max_string_bytes,
                max_warnings: cfg.max_warnings,
                max_pod_matcher_bytes: cfg.max_pod_matcher_bytes,
            }),
        })
    }

    /// Whether remote read is on: asked for, and not yet refused by the server.
    pub fn remote_read(&self) -> bool {
        self.remote_read.load(Ordering::Relaxed)
    }

    /// The server does not serve remote read: PromQL from now on, said once.
    pub fn remote_read_unsupported(&self, e: &Error) {
        if self.remote_read.swap(false, Ordering::Relaxed) {
            tracing::info!("{e}; reading with PromQL range queries instead");
        }
    }

    /// The selector every query of the run carries (`--prometheus-selector`).
    pub fn scope(&self) -> &Scope {
        &self.scope
    }

    /// Bytes of the pod-name matcher of one restart selection (`PromConfig`).
    pub fn max_pod_matcher_bytes(&self) -> usize {
        self.limits.max_pod_matcher_bytes
    }

    pub fn stats(&self) -> &PromStats {
        &self.stats
    }

    pub fn url(&self) -> &Url {
        &self.base
    }

    /// Everything worth telling the user about the answers so far: partial-data warnings from
    /// the server, skipped points, missing exporters. Each message once, in order, at most
    /// `max_warnings`, then one line counting the rest.
    pub fn warnings(&self) -> Vec<String> {
        let w = self.warnings.lock().unwrap_or_else(|e| e.into_inner());
        let mut out = w.list.clone();
        if w.dropped > 0 {
            out.push(format!(
                "{} more distinct warnings not shown (at most {} are kept; raise --prometheus-max-warnings)",
                w.dropped, self.limits.max_warnings
            ));
        }
        out
    }

    /// Records a warning (logged once, kept for `warnings`): a set lookup, so 20,000
    /// warnings cost 20,000 lookups, not 200 million string comparisons.
    pub fn warn(&self, message: String) {
        let mut w = self.warnings.lock().unwrap_or_else(|e| e.into_inner());
        if w.seen.contains(&message) {
            return;
        }
        if w.list.len() >= self.limits.max_warnings {
            if w.dropped == 0 {
                tracing::warn!(
                    cap = self.limits.max_warnings,
                    "more warnings than the cap: the rest are counted, not logged"
                );
            }
            w.dropped += 1;
            // Remembered so a repeat is not counted twice; the set is bounded by the answers'
            // byte caps.
            w.seen.insert(message);
            return;
        }
        tracing::warn!("{message}");
        w.seen.insert(message.clone());
        w.list.push(message);
    }

    /// Instant query evaluated at `time` (unix seconds). The time is always explicit: without
    /// it Prometheus evaluates at "now" and returns nothing once the newest sample is over
    /// five minutes old.
    pub async fn query(&self, promql: &str, time: i64) -> Result<Vec<InstantSample>, Error> {
        let series = self.query_into(promql, time, CollectSeries::default).await?.0;
        Ok(series
            .into_iter()
            .filter_map(|s| {
                let (t, v) = *s.values.first()?;
                Some(InstantSample {
                    labels: s.labels,
                    timestamp: t as f64,
                    value: v,
                })
            })
            .collect())
    }

    /// Range query over `[start, end]` at `step` seconds.
    pub async fn query_range(&self, promql: &str, start: i64, end: i64, step: i64) -> Result<Vec<RangeSeries>, Error> {
        Ok(self
            .query_range_into(promql, start, end, step, CollectSeries::default)
            .await?
            .0)
    }

    /// Instant query whose answer is streamed into a sink made by `sink` (a fresh one per
    /// attempt, so a torn answer that is retried never counts twice).
    pub async fn query_into<S, F>(&self, promql: &str, time: i64, sink: F) -> Result<S, Error>
    where
        S: SeriesSink + Send + 'static,
        F: Fn() -> S,
    {
        let params = [("query", promql.to_string()), ("time", time.to_string())];
        self.call("api/v1/query", &params, promql, "vector", sink).await
    }

    /// Range query over `[start, end]` at `step` seconds, streamed into a sink (see `query_into`).
    pub async fn query_range_into<S, F>(
        &self,
        promql: &str,
        start: i64,
        end: i64,
        step: i64,
        sink: F,
    ) -> Result<S, Error>
    where
        S: SeriesSink + Send + 'static,
        F: Fn() -> S,
    {
        let params = [
            ("query", promql.to_string()),
            ("start", start.to_string()),
            ("end", end.to_string()),
            ("step", step.to_string()),
        ];
        self.call("api/v1/query_range", &params, promql, "matrix", sink).await
    }

    /// The label sets of the series matching `selectors` with samples in `[start, end]`
    /// (`/api/v1/series`): read from the index, so no sample is decoded. Each label set
    /// reaches the sink as a series without points.
    pub async fn series_into<S, F>(&self, selectors: &[&str], start: i64, end: i64, sink: F) -> Result<S, Error>
    where
        S: SeriesSink + Send + 'static,
        F: Fn() -> S,
    {
        let mut params: Vec<(&str, String)> = selectors.iter().map(|s| ("match[]", s.to_string())).collect();
        params.extend([("start", start.to_string()), ("end", end.to_string())]);
        let what = format!("series {}", selectors.join(" "));
        self.call("api/v1/series", &params, &what, "series", sink).await
    }

    /// The values of `label` on the series `selector` matches in `[start, end]`
    /// (`/api/v1/label/<label>/values`, from the index): what the error for a selector that
    /// matches nothing shows.
    pub async fn label_values(&self, label: &str, selector: &str, start: i64, end: i64) -> Result<Vec<String>, Error> {
        #[derive(serde::Deserialize)]
        struct Answer {
            status: String,
            #[serde(default)]
            data: Vec<String>,
        }
        let params = [
            ("match[]", selector.to_string()),
            ("start", start.to_string()),
            ("end", end.to_string()),
        ];
        let what = format!("label values of {label} for {selector}");
        let cap = self.limits.max_answer_bytes;
        let (values, ()) = self
            .attempts(
                &format!("api/v1/label/{label}/values"),
                &Body::Query(&params),
                &what,
                Vec::new,
                move |reader, _| match serde_json::from_reader::<_, Answer>(io::Read::take(reader, cap)) {
                    Ok(a) if a.status == "success" => (a.data, Ok(())),
                    Ok(a) => (Vec::new(), Err(Broken::Garbled(format!("status {:?} (", a.status)))),
                    Err(e) => (
                        Vec::new(),
                        Err(Broken::Garbled(format!("not Prometheus API JSON ({e}"))),
                    ),
                },
            )
            .await?;
        Ok(values)
    }

    /// The caller's sink out of its scope check: an error when a series contradicted the
    /// selector, or when the run's answers now hold two values of a cluster label.
    fn unscoped<S>(&self, sink: Scoped<S>, what: &str) -> Result<S, Error> {
        if let Some((matcher, label, value)) = sink.ignored {
            return Err(Error::SelectorIgnored {
                url: self.base.to_string(),
                matcher,
                label,
                value,
                query: what.to_string(),
            });
        }
        let mut seen = self.clusters.lock().unwrap_or_else(|e| e.into_inner());
        for pair in sink.clusters {
            if !seen.contains(&pair) {
                seen.push(pair);
            }
        }
        for label in CLUSTER_LABELS {
            let values: Vec<&str> = seen
                .iter()
                .filter(|(n, _)| *n == label)
                .map(|(_, v)| v.as_str())
                .collect();
            if values.len() > 1 {
                return Err(Error::SeveralClusters {
                    label,
                    values: values.iter().map(|v| format!("{v:?}")).collect::<Vec<_>>().join(", "),
                    first: values[0].to_string(),
                    query: what.to_string(),
                });
            }
        }
        Ok(sink.inner)
    }

    async fn call<S, F>(
        &self,
        path: &str,
        params: &[(&str, String)],
        promql: &str,
        expect: &str,
        make: F,
    ) -> Result<S, Error>
    where
        S: SeriesSink + Send + 'static,
        F: Fn() -> S,
    {
        let body = Body::Form(params);
        let caps = self.limits.caps;
        let scope = self.scope.clone();
        let make = || Scoped::new(scope.clone(), make());
        let (sink, parsed) = self
            .attempts(path, &body, promql, make, move |reader, mut sink: Scoped<S>| {
                let parsed = super::promparse::parse_reader_capped(reader, &mut sink, caps);
                (
                    sink,
                    parsed.map_err(|e| match e {
                        ParseError::Over(o) => Broken::Over(o),
                        ParseError::Json(e) => Broken::Garbled(format!("the answer is not Prometheus API JSON ({e}")),
                    }),
                )
            })
            .await?;
        let sink = self.unscoped(sink, promql)?;
        self.finish(sink, parsed, promql, expect)
    }

    /// Remote read (`/api/v1/read`) of the raw samples of the series `matchers` select in
    /// `[start_ms, end_ms]`, as streamed XOR chunks, into a sink made by `make` (a fresh one per
    /// attempt). A server that cannot stream chunks (no remote-read endpoint, or one that
    /// only answers sampled protobuf) gives `Error::RemoteReadUnsupported`, never retried.
    pub async fn remote_read_into<S, F>(
        &self,
        matchers: &[Matcher],
        start_ms: i64,
        end_ms: i64,
        make: F,
    ) -> Result<(S, RawStats), Error>
    where
        S: RawSink + Send + 'static,
        F: Fn() -> S,
    {
        let request = remote_read::snappy_literal(&remote_read::encode_request(matchers, start_ms, end_ms));
        let what = format!("remote read {matchers:?} [{start_ms}, {end_ms}] ms");
        // Until the server has answered one remote read, the others wait for its status: a
        // server without remote read is asked once, whatever runs concurrently.
        let mut _probe = None;
        if !self.remote_known.load(Ordering::Acquire) {
            let permit = self.remote_probe.acquire().await.expect("semaphore never closed");
            if !self.remote_known.load(Ordering::Acquire) {
                _probe = Some(permit);
            }
        }
        if !self.remote_read() {
            return Err(Error::RemoteReadUnsupported {
                url: self.base.to_string(),
                detail: "refused earlier in this run".into(),
            });
        }
        self.stats.queries.fetch_add(1, Ordering::Relaxed);
        let scope = self.scope.clone();
        let make = || Scoped::new(scope.clone(), make());
        let (sink, stats) = self
            .attempts(
                "api/v1/read",
                &Body::RemoteRead(request),
                &what,
                make,
                |reader, mut sink: Scoped<S>| {
                    let stats = remote_read::read_stream(reader, &mut sink);
                    (
                        sink,
                        stats.map_err(|e| Broken::Garbled(format!("the remote-read stream is broken ({e}"))),
                    )
                },
            )
            .await
            .inspect_err(|e| {
                // Whatever went wrong, PromQL may still work: one try of remote read per run.
                // Said before the waiting reads go ahead, so none of them asks again.
                self.remote_read_unsupported(e);
                self.remote_read_known();
            })?;
        let sink = self.unscoped(sink, &what)?;
        self.stats.samples.fetch_add(stats.samples, Ordering::Relaxed);
        self.stats.remote_reads.fetch_add(1, Ordering::Relaxed);
        Ok((sink, stats))
    }

    /// Whether the server serves remote read is known now (`remote_probe`).
    fn remote_read_known(&self) {
        if !self.remote_known.swap(true, Ordering::AcqRel) {
            self.remote_probe.add_permits(1);
        }
    }

    /// One request with retries: `parse` reads the body on a blocking thread into the sink.
    async fn attempts<S, F, P, T>(
        &self,
        path: &str,
        body: &Body<'_>,
        what: &str,
        make: F,
        parse: P,
    ) -> Result<(S, T), Error>
    where
        S: Send + 'static,
        F: Fn() -> S,
        T: Send + 'static,
        P: Fn(&mut dyn io::Read, S) -> (S, Result<T, Broken>) + Clone + Send + 'static,
    {
        let url = self
            .base
            .join(path)
            .map_err(|e| Error::Config(format!("bad prometheus url: {e}")))?;
        let limits = &self.limits;
        let expired = |which, deadline, setting| Error::PrometheusDeadline {
            url: self.base.to_string(),
            which,
            deadline,
            setting,
            query: what.to_string(),
        };
        let run_expired = || {
            let (_, d) = limits.run_deadline.expect("only with a run deadline");
            expired("run", d, "--prometheus-run-deadline")
        };
        // Waiting for a turn counts against the run's deadline only: a request's own
        // deadline starts when it is sent.
        let permit = self.permits.acquire();
        let _permit = match limits.run_deadline {
            Some((at, _)) => tokio::time::timeout_at(at, permit).await.map_err(|_| run_expired())?,
            None => permit.await,
        }
        .expect("semaphore never closed");
        if !matches!(body, Body::RemoteRead(_)) {
            self.stats.queries.fetch_add(1, Ordering::Relaxed);
        }
        let request_at = tokio::time::Instant::now() + limits.request_deadline;
        let work = self.retrying(&url, body, what, make, parse);
        match limits.run_deadline {
            Some((at, _)) if at < request_at => tokio::time::timeout_at(at, work).await.map_err(|_| run_expired())?,
            _ => tokio::time::timeout_at(request_at, work)
                .await
                .map_err(|_| expired("request", limits.request_deadline, "--prometheus-request-deadline"))?,
        }
    }

    /// The attempts of one request, with backoff between them.
    async fn retrying<S, F, P, T>(
        &self,
        url: &Url,
        body: &Body<'_>,
        what: &str,
        make: F,
        parse: P,
    ) -> Result<(S, T), Error>
    where
        S: Send + 'static,
        F: Fn() -> S,
        T: Send + 'static,
        P: Fn(&mut dyn io::Read, S) -> (S, Result<T, Broken>) + Clone + Send + 'static,
    {
        let mut attempt = 0;
        loop {
            match self.once(url, body, what, make(), parse.clone()).await {
                Ok(done) => return Ok(done),
                Err(f) if f.retryable && attempt < self.retries => {
                    attempt += 1;
                    self.stats.retries.fetch_add(1, Ordering::Relaxed);
                    let delay = backoff(self.backoff, attempt, f.retry_after, self.limits.max_retry_after);
                    tracing::warn!(
                        error = %f.error,
                        attempt,
                        of = self.retries,
                        delay_ms = delay.as_millis() as u64,
                        "retrying prometheus query (attempt {} of {})",
                        attempt + 1,
                        self.retries + 1
                    );
                    tokio::time::sleep(delay).await;
                }
                Err(f) if f.timed_out => {
                    return Err(Error::PrometheusTimeout {
                        url: self.base.to_string(),
                        timeout: self.timeout,
                        attempts: attempt + 1,
                        query: what.to_string(),
                    });
                }
                Err(f) => return Err(f.error),
            }
        }
    }

    fn finish<S>(&self, sink: S, parsed: Parsed, promql: &str, expect: &str) -> Result<S, Error> {
        if parsed.status != "success" {
            return Err(Error::PrometheusQuery {
                error_type: parsed.error_type.unwrap_or_default(),
                error: parsed.error.unwrap_or_else(|| format!("status {:?}", parsed.status)),
                query: promql.to_string(),
            });
        }
        if parsed.result_type != expect {
            let got = if parsed.result_type.is_empty() {
                "no data".to_string()
            } else {
                format!("a {}", parsed.result_type)
            };
            return Err(Error::malformed(promql, format!("expected a {expect}, got {got}")));
        }
        for warning in &parsed.warnings {
            self.warn(format!("prometheus returned partial data: {warning} (query: {promql})"));
        }
        if parsed.warnings_dropped > 0 {
            self.warn(format!(
                "prometheus returned {} more partial-data warnings than the {} kept (query: {promql})",
                parsed.warnings_dropped, self.limits.max_warnings
            ));
        }
        for info in &parsed.infos {
            tracing::info!(query = promql, info = %info, "prometheus annotation");
        }
        self.stats.samples.fetch_add(parsed.samples, Ordering::Relaxed);
        let skipped = parsed.non_finite + parsed.bad_values;
        self.stats.skipped.fetch_add(skipped, Ordering::Relaxed);
        if skipped > 0 || parsed.bad_series > 0 {
            tracing::debug!(
                query = promql,
                non_finite = parsed.non_finite,
                bad_values = parsed.bad_values,
                bad_series = parsed.bad_series,
                "skipped points"
            );
        }
        Ok(sink)
    }

    fn unreachable(&self, source: reqwest::Error) -> Failure {
        let timed_out = source.is_timeout();
        // A body cut mid-stream is a decode error to reqwest: as transient as a timeout.
        let retryable =
            timed_out || source.is_connect() || source.is_request() || source.is_body() || source.is_decode();
        Failure {
            error: Error::PrometheusUnreachable {
                url: self.base.to_string(),
                source,
            },
            retryable,
            retry_after: None,
            timed_out,
        }
    }

    async fn once<S, T, P>(
        &self,
        url: &Url,
        body: &Body<'_>,
        promql: &str,
        sink: S,
        parse: P,
    ) -> Result<(S, T), Failure>
    where
        S: Send + 'static,
        T: Send + 'static,
        P: FnOnce(&mut dyn io::Read, S) -> (S, Result<T, Broken>) + Send + 'static,
    {
        let remote = matches!(body, Body::RemoteRead(_));
        let request = match body {
            Body::Form(params) => self.http.post(url.clone()).form(params),
            Body::Query(params) => self.http.get(url.clone()).query(params),
            Body::RemoteRead(bytes) => self
                .http
                .post(url.clone())
                .header("content-type", "application/x-protobuf")
                .header("content-encoding", "snappy")
                .header("x-prometheus-remote-read-version", "0.1.0")
                .body(bytes.clone()),
        };
        let mut response = request.send().await.map_err(|e| self.unreachable(e))?;
        let status = response.status();
        if !status.is_success() {
            let wait = retry_after(response.headers());
            // An error body is small; read at most 64 KiB of it.
            let mut body = Vec::new();
            while body.len() < 1 << 16 {
                match response.chunk().await {
                    Ok(Some(c)) => body.extend_from_slice(&c),
                    _ => break,
                }
            }
            self.stats.bytes.fetch_add(body.len() as u64, Ordering::Relaxed);
            let mut ignore = CollectSeries::default();
            let detail = super::promparse::parse_slice(&body, &mut ignore)
                .ok()
                .and_then(|p| p.error)
                .unwrap_or_else(|| String::from_utf8_lossy(&body[..body.len().min(300)]).trim().to_string());
            let error = Error::PrometheusStatus {
                url: self.base.to_string(),
                status: status.as_u16(),
                detail,
                query: promql.to_string(),
            };
            if remote && matches!(status.as_u16(), 400 | 404 | 405 | 406 | 415 | 501) {
                return Err(Failure::fatal(Error::RemoteReadUnsupported {
                    url: self.base.to_string(),
                    detail: format!("HTTP {status}: {}", error_detail(&error)),
                }));
            }
            let retryable = error.is_retryable();
            return Err(Failure {
                error,
                retryable,
                retry_after: wait,
                timed_out: false,
            });
        }
        if remote {
            let kind = response.headers().get("content-type").and_then(|v| v.to_str().ok());
            if !kind.is_some_and(|k| k.starts_with("application/x-streamed-protobuf")) {
                return Err(Failure::fatal(Error::RemoteReadUnsupported {
                    url: self.base.to_string(),
                    detail: format!("it answered {kind:?}, not streamed chunks"),
                }));
            }
            // The server streams chunks: the remote reads waiting for this one go ahead.
            self.remote_read_known();
        }
        // The parser runs on a blocking thread, reading the body as the chunks arrive. It is
        // slower than the network, so the channel is always full: its depth is memory (2 x
        // 256 KiB per answer in flight, one batch queued while the parser reads the other; 16
        // held 8 MiB of each CPU chunk's body, and 4 a fifth of the heap of the history
        // pass at 1,000 workloads, issue 16).
        let (tx, rx) = mpsc::channel(2);
        let parser = tokio::task::spawn_blocking(move || {
            let reader = ChannelReader { rx, cur: None, pos: 0 };
            let mut reader = io::BufReader::with_capacity(1 << 16, reader);
            parse(&mut reader, sink)
        });
        let mut head = Vec::new();
        let mut body_error = None;
        let mut over = None;
        let mut received: u64 = 0;
        // serde buffers a whole JSON string before it sees it: the string caps are checked
        // on the bytes as they arrive (remote read is protobuf, capped per frame instead).
        let mut strings = (!remote).then(|| JsonStrings::new(self.limits.max_string_bytes));
        // The body arrives in chunks of a few KiB; handing each to the parser thread cost a
        // thread wake-up per chunk (a sixth of rightsizer's CPU at 1,000 workloads). They
        // are batched to BATCH bytes.
        const BATCH: usize = 256 << 10;
        // Allocated at its final size: grown by doubling, a batch held up to twice BATCH.
        let new_batch = || Vec::with_capacity(BATCH + (16 << 10));
        let mut batch: Vec<u8> = new_batch();
        loop {
            match response.chunk().await {
                Ok(Some(chunk)) => {
                    self.stats.bytes.fetch_add(chunk.len() as u64, Ordering::Relaxed);
                    received += chunk.len() as u64;
                    if received > self.limits.max_answer_bytes {
                        over = Some(super::promparse::Over {
                            what: format!("more than {} bytes", self.limits.max_answer_bytes),
                            setting: "--prometheus-max-answer-bytes",
                        });
                    } else if let Some(s) = &mut strings
                        && !s.scan(&chunk)
                    {
                        over = Some(super::promparse::Over {
                            what: format!("a string longer than {} bytes", self.limits.max_string_bytes),
                            setting: "--prometheus-max-string-bytes",
                        });
                    }
                    if over.is_some() {
                        let _ = tx.send(Err(io::Error::other("the answer is over a cap"))).await;
                        break;
                    }
                    if head.len() < 120 {
                        head.extend_from_slice(&chunk[..chunk.len().min(120 - head.len())]);
                    }
                    batch.extend_from_slice(&chunk);
                    if batch.len() >= BATCH && tx.send(Ok(std::mem::replace(&mut batch, new_batch()))).await.is_err() {
                        break; // the parser gave up: its error says why
                    }
                }
                Ok(None) => {
                    if !batch.is_empty() {
                        let _ = tx.send(Ok(std::mem::take(&mut batch))).await;
                    }
                    break;
                }
                Err(e) => {
                    let _ = tx.send(Err(io::Error::other("the answer was cut off"))).await;
                    body_error = Some(e);
                    break;
                }
            }
        }
        drop(tx);
        let (sink, parsed) = parser.await.expect("the prometheus answer parser panicked");
        if let Some(e) = body_error {
            return Err(self.unreachable(e));
        }
        let over_cap = |o: super::promparse::Over| {
            Failure::fatal(Error::PrometheusLimit {
                url: self.base.to_string(),
                what: o.what,
                setting: o.setting,
                query: promql.to_string(),
            })
        };
        if let Some(o) = over {
            return Err(over_cap(o));
        }
        match parsed {
            Ok(parsed) => Ok((sink, parsed)),
            Err(Broken::Over(o)) => Err(over_cap(o)),
            Err(Broken::Garbled(e)) => {
                let head = String::from_utf8_lossy(&head).into_owned();
                // A torn or garbled answer is often a proxy or a restart: worth another try.
                Err(Failure::transient(Error::malformed(
                    promql,
                    format!("{e}; it starts with {head:?})"),
                )))
            }
        }
    }
}
