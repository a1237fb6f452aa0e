//! rightsizer against a real VictoriaMetrics (Debian's single-node `victoria-metrics`)
//! holding the generated history of two clusters whose namespaces and pod names collide,
//! told apart by a `cluster` label: `--prometheus-selector` picks one, and the
//! recommendations are the ones a real Prometheus holding that cluster alone gives.
//! VictoriaMetrics has no remote read: one probe, then PromQL, said in the log.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::process::Output;
use std::sync::OnceLock;

use rightsizer::model::SKETCH_ALPHA;
use rightsizer_synth::{Cluster, ClusterSpec, DAY, generate};
use serde_json::Value;

use crate::support::proxy::Proxy;
use crate::support::servers::{DEMO_DAYS, DEMO_END, Prometheus, backfilled_tsdb, demo_history};
use crate::support::victoria::{Imported, Victoria};

/// Cluster b: the demo cluster's shape and seed (so the same namespaces, workloads and pod
/// names), with 1.5x the CPU and 1.25x the memory, so its recommendations differ.
fn cluster_b() -> &'static (Cluster, PathBuf) {
    static FIXTURE: OnceLock<(Cluster, PathBuf)> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let mut spec = ClusterSpec::demo(DEMO_END, DEMO_DAYS * DAY);
        for c in spec.workloads.iter_mut().flat_map(|w| w.containers.iter_mut()) {
            c.cpu_base *= 1.5;
            c.memory_base *= 1.25;
        }
        let cluster = generate(spec);
        let tsdb = backfilled_tsdb(&cluster);
        (cluster, tsdb)
    })
}

/// The support's import kept every series and sample of `cluster` under its label, and the
/// points are searchable at once.
fn assert_imported(vm: &Victoria, cluster: &Cluster, label: &str, imported: Imported) {
    assert!(
        imported.series > 100 && imported.samples > imported.series,
        "{imported:?}"
    );
    // VictoriaMetrics 1.79's `/api/v1/series` leaves out a series whose only sample is at
    // exactly an `end` at midnight UTC (one kube_job_owner series here): one second more.
    let (start, end) = (cluster.spec.start(), cluster.spec.end + 1);
    let selector = format!("%7Bcluster%3D%22{label}%22%7D");
    let (status, body) = vm
        .get(&format!(
            "/api/v1/series?match%5B%5D={selector}&start={start}&end={end}"
        ))
        .unwrap();
    assert_eq!(status, 200, "{body}");
    let answer: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        answer["data"].as_array().unwrap().len() as u64,
        imported.series,
        "series of cluster {label}"
    );
    let (_, body) = vm
        .get(&format!(
            "/api/v1/query?query=sum(count_over_time({selector}%5B{}s%5D))&time={end}",
            cluster.spec.duration + 3600
        ))
        .unwrap();
    let answer: Value = serde_json::from_str(&body).unwrap();
    let samples: f64 = answer["data"]["result"][0]["value"][1]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(samples as u64, imported.samples, "samples of cluster {label}: {body}");
}

/// `recommend --no-kube-api -f json` over the demo window, logging at info.
async fn recommend(url: &str, extra: &[&str]) -> Output {
    run(&["recommend", "-f", "json"], url, extra, &[]).await
}

/// A subcommand against `url` with `--no-kube-api` over the demo window, logging at info.
async fn run(sub: &[&str], url: &str, extra: &[&str], env: &[(&str, &str)]) -> Output {
    let (end, history) = (DEMO_END.to_string(), format!("{DEMO_DAYS}d"));
    let mut args = sub.to_vec();
    args.extend([
        "--prometheus-url",
        url,
        "--history",
        &history,
        "--end",
        &end,
        "--no-kube-api",
    ]);
    args.extend(extra);
    tokio::process::Command::new(env!("CARGO_BIN_EXE_rightsizer"))
        .args(&args)
        .envs(env.iter().copied())
        .env("RUST_LOG", "info")
        .env_remove("KUBECONFIG")
        .output()
        .await
        .expect("run the rightsizer binary")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A successful run's report.
fn report(out: &Output) -> Value {
    assert!(out.status.success(), "rightsizer failed:\n{}", stderr(out));
    serde_json::from_slice(&out.stdout).expect("a JSON report")
}

/// What a container's recommendation rests on, by namespace, workload and container.
#[derive(Debug, Clone, PartialEq)]
struct Rec {
    cpu_percentile: f64,
    memory_peak: f64,
    samples: u64,
    pods: u64,
    oom_kills: u64,
    recommended: Value,
}

fn recs(report: &Value) -> BTreeMap<(String, String, String), Rec> {
    let mut out = BTreeMap::new();
    for w in report["workloads"].as_array().expect("workloads") {
        for c in w["containers"].as_array().expect("containers") {
            let key = (
                w["key"]["namespace"].as_str().unwrap().to_string(),
                w["key"]["name"].as_str().unwrap().to_string(),
                c["key"]["container"].as_str().unwrap().to_string(),
            );
            out.insert(
                key,
                Rec {
                    cpu_percentile: c["cpuPercentile"].as_f64().unwrap_or(f64::NAN),
                    memory_peak: c["memoryPeak"].as_f64().unwrap_or(f64::NAN),
                    samples: c["samples"].as_u64().unwrap_or(0),
                    pods: c["pods"].as_u64().unwrap_or(0),
                    oom_kills: c["oomKills"].as_u64().unwrap_or(0),
                    recommended: c["recommended"].clone(),
                },
            );
        }
    }
    out
}

/// VictoriaMetrics' recommendations for one cluster against Prometheus' for that cluster
/// alone. Every container has the same pods, samples, memory peak and OOM kills. The CPU
/// percentile and the recommendation are the same (the percentile within the sketch's 1 %)
/// for every container whose pods live longer than two rate windows; for shorter-lived
/// pods MetricsQL's `rate` (no extrapolation to the window's edges, the sample before the
/// window as the base) gives other values than PromQL's from two or three raw samples, so
/// only their CPU is left out. Returns the containers compared in full.
fn same_recommendations(cluster: &str, vm: &Value, prom: &Value) -> usize {
    let (vm, prom) = (recs(vm), recs(prom));
    assert_eq!(
        vm.keys().collect::<Vec<_>>(),
        prom.keys().collect::<Vec<_>>(),
        "cluster {cluster}: the same containers"
    );
    let mut full = 0;
    for (key, p) in &prom {
        let v = &vm[key];
        assert_eq!(
            (v.samples, v.pods, v.oom_kills),
            (p.samples, p.pods, p.oom_kills),
            "cluster {cluster} {key:?}"
        );
        assert!(
            (v.memory_peak - p.memory_peak).abs() <= SKETCH_ALPHA * p.memory_peak,
            "cluster {cluster} {key:?}: memory peak {} vs {}",
            v.memory_peak,
            p.memory_peak
        );
        if p.pods > 0 && p.samples <= 2 * p.pods {
            eprintln!(
                "cluster {cluster} {key:?}: short-lived pods ({} rate points for {} pods), cpu p {} vs {}",
                p.samples, p.pods, v.cpu_percentile, p.cpu_percentile
            );
            continue;
        }
        assert!(
            (v.cpu_percentile - p.cpu_percentile).abs() <= SKETCH_ALPHA * p.cpu_percentile.abs(),
            "cluster {cluster} {key:?}: cpu percentile {} vs {}",
            v.cpu_percentile,
            p.cpu_percentile
        );
        assert_eq!(v.recommended, p.recommended, "cluster {cluster} {key:?}");
        full += 1;
    }
    full
}

/// The log line of the run's request count.
fn queries_logged(out: &Output) -> u64 {
    let log = stderr(out);
    let line = log
        .lines()
        .find(|l| l.contains(" collected "))
        .unwrap_or_else(|| panic!("no 'collected' line:\n{log}"));
    let n = line
        .split("queries=")
        .nth(1)
        .expect("queries=")
        .split(' ')
        .next()
        .unwrap();
    n.parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_cluster_of_a_victoria_metrics_gives_prometheus_recommendations() {
    let (a, tsdb_a) = demo_history();
    let (b, tsdb_b) = cluster_b();
    let pods = |c: &Cluster| -> BTreeSet<(String, String)> {
        c.all_pods().into_iter().map(|(ns, pod, _, _)| (ns, pod)).collect()
    };
    let (pods_a, pods_b) = (pods(a), pods(b));
    let shared = pods_a.intersection(&pods_b).count();
    assert!(
        shared * 10 >= pods_a.len() * 9,
        "pod names collide: {shared} of {}",
        pods_a.len()
    );

    let started = std::time::Instant::now();
    let mut vm = Victoria::start();
    let imported_a = vm.import_cluster(a, &[("cluster", "a")]);
    let imported_b = vm.import_cluster(b, &[("cluster", "b")]);
    eprintln!("two clusters imported in {:?}", started.elapsed());
    assert_imported(&vm, a, "a", imported_a);
    assert_imported(&vm, b, "b", imported_b);
    // Prometheus text in milliseconds goes in as it is.
    let text = format!("rightsizer_test_probe{{x=\"1\"}} 5 {DEMO_END}000\n");
    assert_eq!(vm.import(&text, &[("cluster", "a")]).series, 1);
    assert_eq!(vm.series(), imported_a.series + imported_b.series + 1);
    let (_, body) = vm
        // One second past the sample: the same 1.79 quirk as `/api/v1/series` at midnight.
        .get(&format!(
            "/api/v1/query?query=rightsizer_test_probe&time={}",
            DEMO_END + 1
        ))
        .unwrap();
    assert!(body.contains(r#""cluster":"a""#) && body.contains(r#""5"]"#), "{body}");
    let vm_proxy = Proxy::start(&vm.url).await;
    let (prom_a, prom_b) = (
        Prometheus::start(Some(tsdb_a), &[]),
        Prometheus::start(Some(tsdb_b), &[]),
    );

    let sel_a = ["--prometheus-selector", r#"cluster="a""#];
    let vm_a = recommend(&vm_proxy.url, &sel_a).await;
    let requests_a = vm_proxy.requests();
    // Cluster b through the environment variable.
    let vm_b = run(
        &["recommend", "-f", "json"],
        &vm.url,
        &[],
        &[("RIGHTSIZER_PROMETHEUS_SELECTOR", r#"cluster="b""#)],
    )
    .await;
    let (on_prom_a, on_prom_b) = (recommend(&prom_a.url, &[]).await, recommend(&prom_b.url, &[]).await);
    let (report_a, report_b) = (report(&vm_a), report(&vm_b));
    let full_a = same_recommendations("a", &report_a, &report(&on_prom_a));
    let full_b = same_recommendations("b", &report_b, &report(&on_prom_b));
    assert!(
        full_a >= 12 && full_b >= 12,
        "compared in full: {full_a} and {full_b} containers"
    );
    let (recs_a, recs_b) = (recs(&report_a), recs(&report_b));
    let differ = recs_a
        .iter()
        .filter(|(k, r)| recs_b.get(*k).is_some_and(|o| o.recommended != r.recommended))
        .count();
    assert!(
        differ * 2 >= recs_a.len(),
        "a and b differ: {differ} of {}",
        recs_a.len()
    );

    // No remote read: one probe, then PromQL, said once.
    let log = stderr(&vm_a);
    assert!(
        log.contains("does not serve remote read with streamed chunks")
            && log.contains("reading with PromQL range queries instead"),
        "{log}"
    );
    let reads = requests_a.iter().filter(|r| r.path == "/api/v1/read").count();
    assert_eq!(reads, 1, "one remote-read probe");
    // Every other request carries the selector.
    for r in requests_a.iter().filter(|r| r.path != "/api/v1/read") {
        let form: Vec<(String, String)> = url::form_urlencoded::parse(r.body.as_bytes()).into_owned().collect();
        let asked: Vec<&String> = form
            .iter()
            .filter(|(k, _)| k == "query" || k == "match[]")
            .map(|(_, v)| v)
            .collect();
        assert!(!asked.is_empty(), "{r:?}");
        for q in asked {
            assert!(q.contains(r#"cluster="a""#), "{} without the selector: {q}", r.path);
        }
    }
    // The same requests as Prometheus read with PromQL, plus the probe; and as many for b.
    let promql_proxy = Proxy::start(&prom_a.url).await;
    let on_prom_promql = recommend(&promql_proxy.url, &["--prometheus-no-remote-read"]).await;
    assert!(on_prom_promql.status.success(), "{}", stderr(&on_prom_promql));
    let promql_requests = promql_proxy.requests().len();
    assert_eq!(
        requests_a.len(),
        promql_requests + 1,
        "requests: victoria-metrics vs prometheus (PromQL)"
    );
    assert_eq!(queries_logged(&vm_a), requests_a.len() as u64);
    assert_eq!(
        queries_logged(&vm_b),
        requests_a.len() as u64,
        "cluster b: as many requests"
    );
    eprintln!(
        "requests: victoria-metrics {} (prometheus with PromQL {promql_requests}, with remote read {}); {full_a} and {full_b} containers compared in full",
        requests_a.len(),
        queries_logged(&on_prom_a)
    );

    // The snapshot command reads the selected cluster too: recommending from its snapshot
    // gives cluster b's report.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("b.snapshot.json.gz");
    let file = file.to_str().unwrap();
    let snap = run(
        &["snapshot", "-o", file],
        &vm.url,
        &["--prometheus-selector", r#"cluster="b""#],
        &[],
    )
    .await;
    assert!(snap.status.success(), "{}", stderr(&snap));
    let offline = tokio::process::Command::new(env!("CARGO_BIN_EXE_rightsizer"))
        .args(["recommend", "--snapshot", file, "-f", "json"])
        .output()
        .await
        .unwrap();
    assert_eq!(recs(&report(&offline)), recs_b, "snapshot of cluster b");

    // A cluster the store does not hold: said so, with the values it does hold.
    let none = recommend(&vm.url, &["--prometheus-selector", r#"cluster="zz""#]).await;
    let log = stderr(&none);
    assert_eq!(none.status.code(), Some(2), "{log}");
    assert!(
        log.contains(r#"no series match cluster="zz""#)
            && log.contains(r#"the labels present are cluster="a", cluster="b""#),
        "{log}"
    );
    // No selector on a store of two clusters: refused, never pooled.
    let both = recommend(&vm.url, &[]).await;
    let log = stderr(&both);
    assert_eq!(both.status.code(), Some(2), "{log}");
    assert!(
        log.contains(r#"series of several clusters (cluster: "a", "b")"#),
        "{log}"
    );
    // A selector that is not PromQL: an error before any request.
    let quiet = Proxy::start(&vm.url).await;
    let bad = recommend(&quiet.url, &["--prometheus-selector", "cluster=a"]).await;
    let log = stderr(&bad);
    assert_eq!(bad.status.code(), Some(2), "{log}");
    assert!(
        log.contains("invalid prometheus.selector") && log.contains("(from --prometheus-selector)"),
        "{log}"
    );
    assert!(quiet.requests().is_empty(), "requests before the selector was checked");
    eprintln!("victoria-metrics test: {:?}", started.elapsed());
}
