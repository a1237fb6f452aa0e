//! The Prometheus half of collection against a real Prometheus (history backfilled by
//! promtool from the generator): every usage field against the generator's ground truth, a
//! query count that does not grow with the cluster, and the HTTP client's auth, retries,
//! timeouts and partial-data handling through a fault-injecting proxy.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use rightsizer::collect::Error;
use rightsizer::collect::history::{self, Window};
use rightsizer::collect::prometheus::{PromClient, PromConfig};
use rightsizer::model::{SKETCH_ALPHA, UsageSet, WorkloadKind};
use rightsizer_synth::{Cluster, ClusterSpec, DAY, generate};

use crate::support::proxy::{Fault, Proxy};
use crate::support::servers::{DEMO_DAYS, DEMO_END, Prometheus, backfilled_openmetrics, backfilled_tsdb, demo_history};

const STEP: i64 = 300;

fn client(url: &str, f: impl FnOnce(&mut PromConfig)) -> PromClient {
    let mut cfg = PromConfig::new(url.parse().unwrap());
    cfg.backoff = Duration::from_millis(20);
    f(&mut cfg);
    PromClient::new(&cfg).unwrap()
}

async fn collect(prom: &PromClient, end: i64, days: i64) -> UsageSet {
    let window = Window {
        end,
        length: days * DAY,
        step: STEP,
    };
    let owners = history::fetch_owners(prom, &window).await.unwrap();
    history::fetch_usage(prom, &window, &owners).await.unwrap()
}

fn close(got: f64, want: f64, rel: f64) -> bool {
    (got - want).abs() <= rel * want.abs() + 1e-9
}

/// Compares every field of the usage with the ground truth; returns the containers checked.
fn check_against_truth(cluster: &Cluster, usage: &UsageSet) -> usize {
    let mut checked = 0;
    for (key, t) in &cluster.truth.containers {
        if t.pods == 0 || key.workload.kind == WorkloadKind::Pod {
            continue;
        }
        let u = usage.containers.get(key).unwrap_or_else(|| panic!("{key}: no usage"));
        assert_eq!(u.cpu.count(), t.cpu_rate_samples, "{key}: pooled cpu points");
        if t.cpu_rate_samples > 0 {
            let p95 = u.cpu.quantile(0.95).unwrap();
            assert!(
                close(p95, t.cpu_p95, SKETCH_ALPHA),
                "{key}: cpu p95 {p95} vs {}",
                t.cpu_p95
            );
            assert!(close(u.cpu.max().unwrap(), t.cpu_max, 1e-9), "{key}: cpu max");
        }
        assert_eq!(u.pods, t.pods, "{key}: pods");
        assert!(
            (u.memory_peak.unwrap() - t.memory_peak).abs() <= 1.0,
            "{key}: memory peak {:?} vs {}",
            u.memory_peak,
            t.memory_peak
        );
        assert_eq!(
            u.memory_daily_peaks.keys().collect::<Vec<_>>(),
            t.memory_daily_peaks.keys().collect::<Vec<_>>(),
            "{key}: days"
        );
        for (day, peak) in &t.memory_daily_peaks {
            assert!(
                (u.memory_daily_peaks[day] - peak).abs() <= 1.0,
                "{key}: peak of day {day}"
            );
        }
        assert_eq!(u.restarts, t.restarts, "{key}: restarts");
        assert_eq!(u.oom_kills, t.oom_kills, "{key}: oom kills");
        assert_eq!(u.last_oom, t.last_oom, "{key}: last oom");
        assert!(
            close(u.cfs_periods, t.cfs_periods, 1e-9),
            "{key}: cfs periods {} vs {}",
            u.cfs_periods,
            t.cfs_periods
        );
        assert!(
            close(u.cfs_throttled_periods, t.cfs_throttled_periods, 1e-9),
            "{key}: throttled {} vs {}",
            u.cfs_throttled_periods,
            t.cfs_throttled_periods
        );
        checked += 1;
    }
    for (key, t) in &cluster.truth.workloads {
        if t.steps == 0 || key.kind == WorkloadKind::Pod {
            continue;
        }
        let u = usage
            .workloads
            .get(key)
            .unwrap_or_else(|| panic!("{key}: no workload usage"));
        assert_eq!(u.total_cpu.count(), t.steps, "{key}: steps");
        let p95 = u.total_cpu.quantile(0.95).unwrap();
        // The sketch's relative error, plus f32 sums.
        assert!(
            close(p95, t.total_cpu_p95, SKETCH_ALPHA + 1e-6),
            "{key}: total p95 {p95} vs {}",
            t.total_cpu_p95
        );
        assert!(
            close(u.total_cpu.max().unwrap(), t.total_cpu_max, 1e-6),
            "{key}: total max"
        );
        assert_eq!(u.replicas.max(), Some(f64::from(t.replicas_max)), "{key}: max replicas");
        let min = u.replicas.quantile(0.0).unwrap();
        assert!(
            close(min, f64::from(t.replicas_min), SKETCH_ALPHA),
            "{key}: min replicas {min}"
        );
        assert_eq!(u.hpa_seconds, t.hpa_seconds, "{key}: hpa seconds");
        assert_eq!(u.hpa_at_max_seconds, t.hpa_at_max_seconds, "{key}: hpa at max");
    }
    checked
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usage_matches_ground_truth() {
    let (cluster, tsdb) = demo_history();
    let server = Prometheus::start(Some(tsdb), &[]);
    let prom = client(&server.url, |_| {});
    let usage = collect(&prom, DEMO_END, DEMO_DAYS).await;
    let checked = check_against_truth(cluster, &usage);
    assert!(checked >= 15, "only {checked} containers checked");
    // The demo has OOM kills, throttling and an HPA that reaches its maximum: the checks
    // above compared something.
    let t = &cluster.truth;
    assert!(t.containers.values().any(|c| c.oom_kills > 0));
    assert!(t.containers.values().any(|c| c.cfs_throttled_periods > 0.0));
    assert!(t.workloads.values().any(|w| w.hpa_seconds > 0));
    assert!(prom.warnings().is_empty(), "{:?}", prom.warnings());
    // And the generator's offline usage is what rightsizer reads.
    let offline = cluster.usage(STEP);
    for (key, u) in &offline.containers {
        let live = &usage.containers[key];
        assert_eq!(
            (u.restarts, u.oom_kills, u.pods),
            (live.restarts, live.oom_kills, live.pods),
            "{key}"
        );
        assert_eq!(u.memory_daily_peaks, live.memory_daily_peaks, "{key}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn query_count_does_not_grow_with_workloads() {
    let mut counts = Vec::new();
    // Both clusters have containers that restart (the restart queries run only then).
    for n in [50, 200] {
        let cluster = generate(ClusterSpec::generated(n, 7, DEMO_END, 2 * DAY));
        let tsdb = backfilled_tsdb(&cluster);
        let server = Prometheus::start(Some(&tsdb), &[]);
        let prom = client(&server.url, |_| {});
        let started = Instant::now();
        let usage = collect(&prom, DEMO_END, 2).await;
        let elapsed = started.elapsed();
        let stats = prom.stats();
        let queries = stats.queries.load(Ordering::Relaxed);
        eprintln!(
            "{n} workloads x 2 d: {queries} queries, {} retries, {:.1} MB, {} points, collected in {:.2} s; {} containers",
            stats.retries.load(Ordering::Relaxed),
            stats.bytes.load(Ordering::Relaxed) as f64 / 1e6,
            stats.samples.load(Ordering::Relaxed),
            elapsed.as_secs_f64(),
            usage.containers.len()
        );
        check_against_truth(&cluster, &usage);
        assert!(usage.containers.values().any(|u| u.restarts > 0), "{n}: no restarts");
        counts.push(queries);
    }
    assert_eq!(counts[0], counts[1], "query counts {counts:?}");
    assert!(counts[0] <= 12, "{counts:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_headers_reach_prometheus() {
    let (_, tsdb) = demo_history();
    let server = Prometheus::start(Some(tsdb), &[]);
    let proxy = Proxy::start(&server.url).await;
    proxy.require("authorization", "Bearer s3cret");
    proxy.require("x-scope-orgid", "team-a");
    let window = Window {
        end: DEMO_END,
        length: DAY,
        step: STEP,
    };
    let ok = client(&proxy.url, |c| {
        c.bearer_token = Some("s3cret\n".into());
        c.headers.push(("X-Scope-OrgID".into(), "team-a".into()));
    });
    let owners = history::fetch_owners(&ok, &window).await.unwrap();
    assert!(owners.has_kube_state_metrics());
    let seen = proxy.requests();
    assert!(
        seen.iter()
            .all(|r| r.path == "/api/v1/series" && r.body.contains("start=") && r.body.contains("end=")),
        "{seen:?}"
    );
    assert!(seen.iter().all(|r| r.headers["x-scope-orgid"] == "team-a"));

    let wrong = client(&proxy.url, |c| c.bearer_token = Some("guess".into()));
    let err = history::fetch_owners(&wrong, &window).await.unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("answered HTTP 401") && text.contains("hint: check the credentials"),
        "{text}"
    );
    assert_eq!(wrong.stats().retries.load(Ordering::Relaxed), 0, "401 is not retried");

    let basic = Proxy::start(&server.url).await;
    basic.require("authorization", "Basic dXNlcjpwYXNz");
    let c = client(&basic.url, |c| c.basic_auth = Some(("user".into(), "pass".into())));
    history::fetch_owners(&c, &window).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_recover_from_server_errors_and_torn_answers() {
    let (_, tsdb) = demo_history();
    let server = Prometheus::start(Some(tsdb), &[]);
    let proxy = Proxy::start(&server.url).await;
    let q = "count(kube_pod_owner)";
    let direct = client(&server.url, |_| {}).query(q, DEMO_END).await.unwrap();
    proxy.inject([
        Fault::Status(503, None),
        Fault::Status(429, Some(1)),
        Fault::Malformed,
        Fault::Torn,
    ]);
    let prom = client(&proxy.url, |c| c.retries = 4);
    let started = Instant::now();
    let got = prom.query(q, DEMO_END).await.unwrap();
    assert_eq!(got, direct);
    assert_eq!(prom.stats().retries.load(Ordering::Relaxed), 4);
    assert_eq!(prom.stats().queries.load(Ordering::Relaxed), 1);
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "Retry-After: 1 was honoured"
    );

    // Out of retries: the last error, clearly.
    proxy.inject([Fault::Status(502, None), Fault::Status(502, None)]);
    let prom = client(&proxy.url, |c| c.retries = 1);
    let text = prom.query(q, DEMO_END).await.unwrap_err().to_string();
    assert!(
        text.contains("answered HTTP 502: injected failure") && text.contains(q),
        "{text}"
    );

    proxy.inject([Fault::Malformed, Fault::Malformed]);
    let text = prom.query(q, DEMO_END).await.unwrap_err().to_string();
    assert!(
        text.contains("malformed answer from prometheus") && text.contains("<html>"),
        "{text}"
    );

    // A query Prometheus rejects is not retried, and says why.
    let prom = client(&proxy.url, |_| {});
    let err = prom.query("sum(rate(x[5m]", DEMO_END).await.unwrap_err();
    assert!(!err.is_retryable());
    let text = err.to_string();
    assert!(text.contains("HTTP 400") && text.contains("parse error"), "{text}");
    assert_eq!(prom.stats().retries.load(Ordering::Relaxed), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timeouts_are_retried_then_reported() {
    let (_, tsdb) = demo_history();
    let server = Prometheus::start(Some(tsdb), &[]);
    let proxy = Proxy::start(&server.url).await;
    let slow = Fault::Slow(Duration::from_secs(2));
    let prom = client(&proxy.url, |c| {
        c.timeout = Duration::from_millis(400);
        c.retries = 2;
    });
    proxy.inject([slow.clone()]);
    assert_eq!(prom.query("vector(1)", DEMO_END).await.unwrap().len(), 1);
    proxy.inject([slow.clone(), slow.clone(), slow]);
    let err = prom.query("vector(1)", DEMO_END).await.unwrap_err();
    assert!(matches!(err, Error::PrometheusTimeout { attempts: 3, .. }), "{err:?}");
    let text = err.to_string();
    assert!(
        text.contains("did not answer within 400ms (3 attempts)") && text.contains("--prometheus-timeout"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nan_values_are_skipped_and_warnings_surfaced() {
    let (cluster, tsdb) = demo_history();
    let server = Prometheus::start(Some(tsdb), &[]);
    let proxy = Proxy::start(&server.url).await;
    let prom = client(&proxy.url, |_| {});
    let q = "sum by (namespace, pod, container) (rate(container_cpu_usage_seconds_total{container!=\"\"}[5m]))";
    let (s, e) = (DEMO_END - 3600, DEMO_END);
    proxy.inject([Fault::NanValues]);
    let got = prom.query_range(q, s, e, STEP).await.unwrap();
    let direct = client(&server.url, |_| {}).query_range(q, s, e, STEP).await.unwrap();
    assert_eq!(got.len(), direct.len());
    assert!(got[0].values.is_empty(), "NaN points are skipped");
    assert_eq!(got[1..], direct[1..]);
    assert_eq!(
        prom.stats().skipped.load(Ordering::Relaxed),
        direct[0].values.len() as u64
    );

    proxy.inject([Fault::Warning("store eu-1 did not answer")]);
    let usage = collect(&prom, DEMO_END, DEMO_DAYS).await;
    assert!(!usage.containers.is_empty());
    let warnings = prom.warnings();
    assert!(
        warnings
            .iter()
            .any(|w| w.contains("partial data: store eu-1 did not answer")),
        "{warnings:?}"
    );
    assert!(warnings.iter().any(|w| w.contains("skipped")), "{warnings:?}");
    let _ = cluster;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_exporters_are_named() {
    let server = Prometheus::start(None, &[]);
    let prom = client(&server.url, |_| {});
    let window = Window {
        end: DEMO_END,
        length: DAY,
        step: STEP,
    };
    let owners = history::fetch_owners(&prom, &window).await.unwrap();
    assert!(!owners.has_kube_state_metrics());
    let warnings = prom.warnings();
    assert!(
        warnings
            .iter()
            .any(|w| w.contains("kube-state-metrics") && w.contains("hint:")),
        "{warnings:?}"
    );
    let err = history::fetch_usage(&prom, &window, &owners).await.unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("no container_cpu_usage_seconds_total series") && text.contains("cAdvisor"),
        "{text}"
    );
}

/// The same history with every cAdvisor CPU series also scraped by a second job (identical
/// points under `job="cadvisor"`, as when two Prometheus jobs scrape the kubelet): the CPU
/// query has no `sum by` on the server, and each pod and container must still count once
/// per step, not twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicate_cadvisor_series_count_once() {
    let cluster = generate(ClusterSpec::generated(12, 5, DEMO_END, DAY));
    let mut text = Vec::new();
    cluster.write_openmetrics(&mut text).unwrap();
    let text = String::from_utf8(text).unwrap();
    // Within the family, the copies follow the originals, series by series.
    let family = "container_cpu_usage_seconds"; // OpenMetrics: the counter family has no _total
    let mut doubled = String::with_capacity(text.len() * 2);
    let mut copies = String::new();
    let mut in_family = false;
    for line in text.lines() {
        if line.starts_with("# ") {
            doubled.push_str(&copies);
            copies.clear();
            in_family = line.starts_with(&format!("# TYPE {family} "));
        } else if in_family {
            copies.push_str(&line.replace(r#"job="kubelet""#, r#"job="cadvisor""#));
            copies.push('\n');
        }
        doubled.push_str(line);
        doubled.push('\n');
    }
    assert!(doubled.len() > text.len() + 1000);
    let (once, twice) = (backfilled_openmetrics(&text), backfilled_openmetrics(&doubled));
    let (once, twice) = (
        Prometheus::start(Some(&once), &[]),
        Prometheus::start(Some(&twice), &[]),
    );
    let single = collect(&client(&once.url, |_| {}), DEMO_END, 1).await;
    let double = collect(&client(&twice.url, |_| {}), DEMO_END, 1).await;
    check_against_truth(&cluster, &single);
    check_against_truth(&cluster, &double);
    assert_eq!(single.containers.len(), double.containers.len());
    for (key, a) in &single.containers {
        let b = &double.containers[key];
        assert_eq!(
            (
                a.cpu.count(),
                a.cpu.quantile(0.95),
                a.cpu.max(),
                a.pods,
                a.first_seen,
                a.last_seen
            ),
            (
                b.cpu.count(),
                b.cpu.quantile(0.95),
                b.cpu.max(),
                b.pods,
                b.first_seen,
                b.last_seen
            ),
            "{key}"
        );
    }
    for (key, a) in &single.workloads {
        let b = &double.workloads[key];
        for q in [0.1, 0.5, 0.95, 1.0] {
            assert_eq!(a.total_cpu.quantile(q), b.total_cpu.quantile(q), "{key} total p{q}");
            assert_eq!(a.replicas.quantile(q), b.replicas.quantile(q), "{key} replicas p{q}");
        }
    }
}

/// Remote read (raw chunks, rates and daily peaks computed in Rust) and the PromQL queries
/// give the same history, point for point: same counts, same sketches, same totals per step,
/// same daily memory peaks. A server
/// that answers remote read with something other than streamed chunks (here a proxy that
/// rewrites the content type) falls back to PromQL by itself, with the same result.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remote_read_gives_the_promql_cpu_history() {
    let (_, tsdb) = demo_history();
    let server = Prometheus::start(Some(tsdb), &[]);
    let remote = client(&server.url, |_| {});
    let promql = client(&server.url, |c| c.remote_read = false);
    let a = collect(&remote, DEMO_END, DEMO_DAYS).await;
    let b = collect(&promql, DEMO_END, DEMO_DAYS).await;
    // One per CPU chunk (2 for 3 days) and one for the memory peaks.
    assert_eq!(remote.stats().remote_reads.load(Ordering::Relaxed), 3);
    assert_eq!(promql.stats().remote_reads.load(Ordering::Relaxed), 0);
    let same = |a: &UsageSet, b: &UsageSet| {
        assert_eq!(a.containers.len(), b.containers.len());
        for (key, x) in &a.containers {
            let y = &b.containers[key];
            assert_eq!(x.cpu.count(), y.cpu.count(), "{key}");
            for q in [0.0, 0.5, 0.9, 0.95, 0.99, 1.0] {
                assert_eq!(x.cpu.quantile(q), y.cpu.quantile(q), "{key} p{q}");
            }
            assert_eq!(
                (x.pods, x.first_seen, x.last_seen),
                (y.pods, y.first_seen, y.last_seen),
                "{key}"
            );
            assert_eq!(x.memory_daily_peaks, y.memory_daily_peaks, "{key}");
            assert_eq!(
                (x.restarts, x.oom_kills, x.last_oom),
                (y.restarts, y.oom_kills, y.last_oom),
                "{key}"
            );
            assert_eq!(x.memory_peak, y.memory_peak, "{key}");
        }
        for (key, x) in &a.workloads {
            let y = &b.workloads[key];
            assert_eq!(x.total_cpu.count(), y.total_cpu.count(), "{key}");
            for q in [0.1, 0.5, 0.95, 1.0] {
                assert_eq!(x.total_cpu.quantile(q), y.total_cpu.quantile(q), "{key} total p{q}");
                assert_eq!(x.replicas.quantile(q), y.replicas.quantile(q), "{key} replicas p{q}");
            }
        }
    };
    same(&a, &b);

    let proxy = Proxy::start(&server.url).await;
    let fallback = client(&proxy.url, |_| {});
    let c = collect(&fallback, DEMO_END, DEMO_DAYS).await;
    assert_eq!(fallback.stats().remote_reads.load(Ordering::Relaxed), 0);
    let paths: Vec<String> = proxy.requests().into_iter().map(|r| r.path).collect();
    // At most one try per read in flight (2 CPU chunks, the memory peaks), then PromQL for
    // the rest of the run.
    let tries = paths.iter().filter(|p| *p == "/api/v1/read").count();
    assert!((1..=3).contains(&tries), "{paths:?}");
    assert!(paths.iter().any(|p| p == "/api/v1/query_range"));
    same(&a, &c);
}

/// A server that refuses queries for their size (Prometheus' `--query.max-samples`, as
/// VictoriaMetrics refuses them for its memory at scale) gets the CPU range chunks and the
/// short-peak subquery again in halves, and the history is the same as an unbounded server's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn size_refusals_are_split_and_give_the_same_history() {
    let (_, tsdb) = demo_history();
    let free = Prometheus::start(Some(tsdb), &[]);
    let bounded = Prometheus::start_with(Some(tsdb), &[], &[MAX_SAMPLES_FLAG]);
    let a = collect(&client(&free.url, |c| c.remote_read = false), DEMO_END, DEMO_DAYS).await;
    // One pod name per restart selection (the demo restarts two pods).
    let small = client(&bounded.url, |c| {
        c.remote_read = false;
        c.max_pod_matcher_bytes = 40;
    });
    let b = collect(&small, DEMO_END, DEMO_DAYS).await;
    assert_eq!(a.containers.len(), b.containers.len());
    let (mut peaks, mut restarts) = (0, 0);
    for (key, x) in &a.containers {
        let y = &b.containers[key];
        assert_eq!(x.cpu.count(), y.cpu.count(), "{key}");
        assert_eq!(x.cpu.quantile(0.95), y.cpu.quantile(0.95), "{key}");
        assert_eq!(x.cpu_short_peak, y.cpu_short_peak, "{key}");
        assert_eq!(x.memory_daily_peaks, y.memory_daily_peaks, "{key}");
        assert_eq!(
            (x.restarts, x.oom_kills, x.last_oom, x.oom_limit),
            (y.restarts, y.oom_kills, y.last_oom, y.oom_limit),
            "{key}"
        );
        peaks += usize::from(x.cpu_short_peak.is_some());
        restarts += x.restarts;
    }
    assert!(peaks > 0, "no short peaks compared");
    assert!(restarts > 0, "no restarts compared");
    // The bounded server really refused the whole-window subquery, and the run split it.
    let whole = format!(
        "max by (namespace, pod, container) (max_over_time(rate(container_cpu_usage_seconds_total{{container!=\"\"}}[120s])[{}s:60s]))",
        DEMO_DAYS * DAY
    );
    let answer = reqwest::Client::new()
        .get(format!("{}/api/v1/query", bounded.url))
        .query(&[("query", whole.as_str()), ("time", &DEMO_END.to_string())])
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status().as_u16(), 422);
    let body = answer.text().await.unwrap();
    assert!(body.contains("too many samples"), "{body}");
    // ... and the restart counters of every container, which a run reads unless it names
    // the restarted pods (what a long list of them did before, at any size).
    let every = reqwest::Client::new()
        .get(format!("{}/api/v1/query_range", bounded.url))
        .query(&[
            ("query", "kube_pod_container_status_restarts_total{container!=\"\"}"),
            ("start", &(DEMO_END - DEMO_DAYS * DAY).to_string()),
            ("end", &DEMO_END.to_string()),
            ("step", &STEP.to_string()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(every.status().as_u16(), 422, "{}", every.text().await.unwrap());
    let queries = |c: &PromClient| c.stats().queries.load(Ordering::Relaxed);
    let free_client = client(&free.url, |c| c.remote_read = false);
    collect(&free_client, DEMO_END, DEMO_DAYS).await;
    assert!(
        queries(&small) > queries(&free_client),
        "{} vs {}",
        queries(&small),
        queries(&free_client)
    );
}

/// Low enough that Prometheus refuses the demo's whole-window short-peak subquery and its
/// CPU chunks, high enough for their halves.
const MAX_SAMPLES_FLAG: &str = "--query.max-samples=20000";
