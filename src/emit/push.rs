//! Metrics output: at the end of a run the CronJob pushes what it found to a Pushgateway
//! (a short-lived job has no `/metrics` to scrape), where Prometheus and the dashboard in
//! `dashboards/` read it.
//!
//! The body is the Prometheus text exposition format without timestamps (the Pushgateway
//! rejects pushed samples that carry one); the PUT replaces every metric of the grouping key,
//! so containers that disappeared since the last run disappear from the gateway too. The
//! grouping key is `job` plus the caller's labels in the order given (e.g. `cluster`), each
//! percent-encoded; a value containing `/` (or empty) uses the Pushgateway's `@base64` form.
//! 5xx answers and connection failures are retried with backoff.
//!
//! Metrics, every one a gauge (label names: `namespace`, `kind`, `workload`, `container`):
//!
//! | name | meaning |
//! |---|---|
//! | `rightsizer_container_current_cpu_request_cores` (`_limit_cores`) | CPU request (limit) set now |
//! | `rightsizer_container_current_memory_request_bytes` (`_limit_bytes`) | memory request (limit) set now |
//! | `rightsizer_container_recommended_cpu_request_cores` (`_limit_cores`) | recommended CPU request (limit) |
//! | `rightsizer_container_recommended_memory_request_bytes` (`_limit_bytes`) | recommended memory request (limit) |
//! | `rightsizer_container_recommendation_confidence_ratio` | confidence of the recommendation, 0 to 1 |
//! | `rightsizer_namespace_monthly_savings` | estimated monthly savings per `namespace`, in the configured currency |
//! | `rightsizer_workloads` | workloads of the run by `status`: analysed, skipped, failed |
//! | `rightsizer_run_duration_seconds` | wall time of the run |
//! | `rightsizer_last_run_timestamp_seconds` | Unix time the run finished |
//!
//! A value that is not set (no limit, no recommendation) is left out rather than written as 0.

use std::fmt::Write as _;
use std::time::Duration;

use super::Error;
use crate::model::{Resources, WorkloadKey};

/// One container's values.
#[derive(Debug, Clone, PartialEq)]
pub struct ContainerMetrics {
    pub workload: WorkloadKey,
    pub container: String,
    pub current: Resources,
    pub recommended: Resources,
    /// 0 to 1; `None` leaves the series out.
    pub confidence: Option<f64>,
}

/// Everything one run pushes.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RunMetrics {
    pub containers: Vec<ContainerMetrics>,
    /// Estimated monthly savings per namespace (negative when the recommendation costs more).
    pub savings_by_namespace: Vec<(String, f64)>,
    pub workloads_analysed: u64,
    pub workloads_skipped: u64,
    pub workloads_failed: u64,
    pub duration: Duration,
    /// Unix seconds at which the run finished.
    pub finished_at: i64,
}

impl RunMetrics {
    /// The metrics of one run, from its report: every container that got a recommendation,
    /// savings summed per namespace, and the workload counts (`failed` are the workloads the
    /// run could not analyse at all).
    pub fn from_report(report: &crate::recommend::Report, failed: u64, duration: Duration, finished_at: i64) -> Self {
        let mut savings: std::collections::BTreeMap<String, f64> = std::collections::BTreeMap::new();
        for w in &report.workloads {
            *savings.entry(w.key.namespace.clone()).or_default() += w.monthly_savings;
        }
        let skipped = report.workloads.iter().filter(|w| w.skip.is_some()).count() as u64;
        RunMetrics {
            containers: report
                .containers()
                .filter(|c| c.skip.is_none())
                .map(|c| ContainerMetrics {
                    workload: c.key.workload.clone(),
                    container: c.key.container.clone(),
                    current: c.current,
                    recommended: c.recommended,
                    confidence: Some(c.confidence),
                })
                .collect(),
            savings_by_namespace: savings.into_iter().collect(),
            workloads_analysed: report.workloads.len() as u64 - skipped,
            workloads_skipped: skipped,
            workloads_failed: failed,
            duration,
            finished_at,
        }
    }
}

/// Attempts for one push: the first try plus retries after 0.5 s and 1 s on 5xx or no answer.
const ATTEMPTS: u32 = 3;

fn escape(value: &str) -> String {
    value.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

fn labels(pairs: &[(&str, &str)]) -> String {
    let inner: Vec<String> = pairs.iter().map(|(k, v)| format!("{k}=\"{}\"", escape(v))).collect();
    format!("{{{}}}", inner.join(","))
}

struct Family {
    name: &'static str,
    help: &'static str,
    samples: Vec<(String, f64)>,
}

impl Family {
    fn new(name: &'static str, help: &'static str) -> Self {
        Family {
            name,
            help,
            samples: Vec::new(),
        }
    }
}

type Pick = fn(&Resources) -> Option<f64>;

/// The text exposition of `metrics`: families in a fixed order, series sorted by labels.
pub fn exposition(metrics: &RunMetrics) -> String {
    let per_container: [(&str, &str, bool, Pick); 8] = [
        (
            "rightsizer_container_current_cpu_request_cores",
            "CPU request of the container now, in cores.",
            false,
            |r| r.cpu_request,
        ),
        (
            "rightsizer_container_current_cpu_limit_cores",
            "CPU limit of the container now, in cores.",
            false,
            |r| r.cpu_limit,
        ),
        (
            "rightsizer_container_current_memory_request_bytes",
            "Memory request of the container now, in bytes.",
            false,
            |r| r.memory_request,
        ),
        (
            "rightsizer_container_current_memory_limit_bytes",
            "Memory limit of the container now, in bytes.",
            false,
            |r| r.memory_limit,
        ),
        (
            "rightsizer_container_recommended_cpu_request_cores",
            "Recommended CPU request, in cores.",
            true,
            |r| r.cpu_request,
        ),
        (
            "rightsizer_container_recommended_cpu_limit_cores",
            "Recommended CPU limit, in cores.",
            true,
            |r| r.cpu_limit,
        ),
        (
            "rightsizer_container_recommended_memory_request_bytes",
            "Recommended memory request, in bytes.",
            true,
            |r| r.memory_request,
        ),
        (
            "rightsizer_container_recommended_memory_limit_bytes",
            "Recommended memory limit, in bytes.",
            true,
            |r| r.memory_limit,
        ),
    ];
    let mut families = Vec::new();
    let container_labels = |c: &ContainerMetrics| {
        labels(&[
            ("namespace", &c.workload.namespace),
            ("kind", c.workload.kind.as_str()),
            ("workload", &c.workload.name),
            ("container", &c.container),
        ])
    };
    for (name, help, recommended, pick) in per_container {
        let mut f = Family::new(name, help);
        for c in &metrics.containers {
            if let Some(v) = pick(if recommended { &c.recommended } else { &c.current }) {
                f.samples.push((container_labels(c), v));
            }
        }
        families.push(f);
    }
    let mut f = Family::new(
        "rightsizer_container_recommendation_confidence_ratio",
        "Confidence of the recommendation from history span and sample count, 0 to 1.",
    );
    for c in &metrics.containers {
        if let Some(v) = c.confidence {
            f.samples.push((container_labels(c), v));
        }
    }
    families.push(f);
    let mut f = Family::new(
        "rightsizer_namespace_monthly_savings",
        "Estimated monthly savings of the recommendations per namespace, in the configured currency.",
    );
    for (ns, v) in &metrics.savings_by_namespace {
        f.samples.push((labels(&[("namespace", ns)]), *v));
    }
    families.push(f);
    let mut f = Family::new(
        "rightsizer_workloads",
        "Workloads of the last run by status: analysed, skipped or failed.",
    );
    for (status, n) in [
        ("analysed", metrics.workloads_analysed),
        ("skipped", metrics.workloads_skipped),
        ("failed", metrics.workloads_failed),
    ] {
        f.samples.push((labels(&[("status", status)]), n as f64));
    }
    families.push(f);
    let mut f = Family::new(
        "rightsizer_run_duration_seconds",
        "Wall time of the last run, in seconds.",
    );
    f.samples.push((String::new(), metrics.duration.as_secs_f64()));
    families.push(f);
    let mut f = Family::new(
        "rightsizer_last_run_timestamp_seconds",
        "Unix time at which the last run finished.",
    );
    f.samples.push((String::new(), metrics.finished_at as f64));
    families.push(f);

    let mut out = String::new();
    for mut f in families {
        if f.samples.is_empty() {
            continue;
        }
        f.samples.sort_by(|a, b| a.0.cmp(&b.0));
        let _ = writeln!(out, "# HELP {} {}", f.name, f.help);
        let _ = writeln!(out, "# TYPE {} gauge", f.name);
        for (labels, v) in f.samples {
            let _ = writeln!(out, "{}{labels} {}", f.name, number(v));
        }
    }
    out
}

fn number(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 { "+Inf".into() } else { "-Inf".into() }
    } else {
        format!("{v}")
    }
}

/// RFC 4648 base64 with the URL and filename safe alphabet, padded: the Pushgateway's
/// `@base64` encoding of grouping label values (an empty value is `=`).
fn base64url(bytes: &[u8]) -> String {
    use base64::Engine;
    if bytes.is_empty() {
        return "=".into();
    }
    base64::engine::general_purpose::URL_SAFE.encode(bytes)
}

/// The push URL `<base>/metrics/job/<job>/<label>/<value>...`, percent-encoded, with the
/// `@base64` form for values that contain `/` or are empty.
pub fn push_url(base: &str, job: &str, grouping: &[(String, String)]) -> Result<url::Url, Error> {
    let bad = |reason: String| Error::PushUrl {
        url: base.into(),
        reason,
    };
    let mut url = url::Url::parse(base).map_err(|e| bad(e.to_string()))?;
    let mut segments = Vec::new();
    for (label, value) in std::iter::once(("job", job)).chain(grouping.iter().map(|(k, v)| (k.as_str(), v.as_str()))) {
        let valid = label
            .chars()
            .enumerate()
            .all(|(i, c)| c == '_' || c.is_ascii_alphabetic() || (i > 0 && c.is_ascii_digit()));
        if !valid || label.is_empty() {
            return Err(bad(format!("`{label}` is not a valid label name")));
        }
        if value.contains('/') || value.is_empty() {
            segments.push(format!("{label}@base64"));
            segments.push(base64url(value.as_bytes()));
        } else {
            segments.push(label.to_string());
            segments.push(value.to_string());
        }
    }
    url.path_segments_mut()
        .map_err(|()| bad("cannot be a base url".into()))?
        .pop_if_empty()
        .push("metrics")
        .extend(&segments);
    Ok(url)
}

/// Pushes `metrics` to the Pushgateway at `url` under `job` and the `grouping` labels (see the
/// module docs), replacing what the previous run pushed there.
pub async fn push_metrics(push: &super::PushTarget, metrics: &RunMetrics) -> Result<(), Error> {
    crate::install_crypto_provider();
    let url = push.url.as_str();
    let target = push_url(url, &push.job, &push.grouping)?;
    let body = exposition(metrics);
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .map_err(|source| Error::PushUnreachable {
            url: url.into(),
            source,
        })?;
    let mut delay = Duration::from_millis(500);
    for attempt in 1..=ATTEMPTS {
        let last = attempt == ATTEMPTS;
        let mut request = client
            .put(target.clone())
            .header("content-type", "text/plain; version=0.0.4; charset=utf-8")
            .body(body.clone());
        if let Some((user, password)) = &push.basic_auth {
            request = request.basic_auth(user, Some(password));
        }
        let answer = request.send().await;
        match answer {
            Ok(r) if r.status().is_success() => return Ok(()),
            Ok(r) if r.status().is_server_error() && !last => {
                tracing::warn!(status = %r.status(), attempt, "pushgateway answered an error, retrying");
            }
            Ok(r) => {
                let status = r.status().as_u16();
                let body = r.text().await.unwrap_or_default();
                return Err(Error::PushRejected {
                    url: target.to_string(),
                    status,
                    body: body.trim().to_string(),
                });
            }
            Err(e) if !last && (e.is_connect() || e.is_timeout()) => {
                tracing::warn!(error = %e, attempt, "cannot reach the pushgateway, retrying");
            }
            Err(source) => {
                return Err(Error::PushUnreachable {
                    url: url.into(),
                    source,
                });
            }
        }
        tokio::time::sleep(delay).await;
        delay *= 2;
    }
    unreachable!("the last attempt returns")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64url_matches_rfc4648() {
        for (input, want) in [
            ("", "="),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("a/b", "YS9i"),
            ("??>", "Pz8-"),
        ] {
            assert_eq!(base64url(input.as_bytes()), want, "{input}");
        }
    }

    #[test]
    fn grouping_values_are_encoded() {
        let grouping = vec![
            ("cluster".to_string(), "prod eu".to_string()),
            ("path".to_string(), "a/b".to_string()),
        ];
        let url = push_url("http://gw:9091/", "rightsizer", &grouping).unwrap();
        assert_eq!(
            url.as_str(),
            "http://gw:9091/metrics/job/rightsizer/cluster/prod%20eu/path@base64/YS9i"
        );
        assert!(push_url("http://gw", "j", &[("bad-name".into(), "x".into())]).is_err());
    }
}
