//! The vertical slice end to end: the real binary against a real Prometheus (history
//! backfilled by promtool from the generator) and the fake Kubernetes API server reached
//! through a kubeconfig, checked against the generator's ground truth.

use std::path::Path;
use std::process::Output;

use rightsizer::model::{ContainerKey, WorkloadKind};
use serde_json::Value;

use crate::support::fake_api::FakeApi;
use crate::support::live_args;
use crate::support::servers::{Prometheus, demo_history};

pub async fn rightsizer(args: &[&str]) -> Output {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_rightsizer"))
        .args(args)
        .env("RUST_LOG", "warn")
        .env_remove("KUBECONFIG")
        .output()
        .await
        .expect("run the rightsizer binary")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// `rightsizer recommend` against a live Prometheus and kubeconfig over the demo window.
pub async fn recommend(prom: &str, kubeconfig: &Path, extra: &[&str]) -> Output {
    let mut args = vec!["recommend"];
    args.extend(live_args(prom, kubeconfig));
    args.extend(extra);
    rightsizer(&args).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recommend_reports_ground_truth_from_real_prometheus() {
    let (cluster, tsdb) = demo_history();
    let prom = Prometheus::start(Some(tsdb), &[]);
    let api = FakeApi::start().await;
    api.load(cluster);
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = api.write_kubeconfig(dir.path());

    let out = recommend(&prom.url, &kubeconfig, &["--format", "json"]).await;
    assert!(out.status.success(), "rightsizer failed:\n{}", text(&out.stderr));
    let doc: Value = serde_json::from_slice(&out.stdout).expect("json report");
    assert_eq!(doc["apiVersion"], "rightsizer.dev/v1alpha1");
    let recs: Vec<Value> = doc["workloads"]
        .as_array()
        .expect("workloads")
        .iter()
        .flat_map(|w| w["containers"].as_array().expect("containers").clone())
        .collect();

    let mut checked = 0;
    let mut worst = 0.0f64;
    for (key, truth) in &cluster.truth.containers {
        if key.workload.kind == WorkloadKind::Pod || truth.cpu_rate_samples < 100 {
            continue;
        }
        let rec = recs
            .iter()
            .find(|r| serde_json::from_value::<ContainerKey>(r["key"].clone()).unwrap() == *key)
            .unwrap_or_else(|| panic!("no recommendation for {key}"));
        let p95 = rec["cpuPercentile"]
            .as_f64()
            .unwrap_or_else(|| panic!("{key}: no cpu percentile: {rec}"));
        // The truth is Prometheus' own rate, pooled exactly; the only error left is the
        // sketch's documented relative error.
        let err = (p95 - truth.cpu_p95).abs() / truth.cpu_p95;
        worst = worst.max(err);
        assert!(
            err <= rightsizer::model::SKETCH_ALPHA + 1e-9,
            "{key}: cpu p95 {p95} vs truth {} ({:.2} % off)",
            truth.cpu_p95,
            err * 100.0
        );
        let peak = rec["memoryPeak"].as_f64().unwrap();
        assert!(
            (peak - truth.memory_peak).abs() <= 1.0,
            "{key}: memory peak {peak} vs truth {}",
            truth.memory_peak
        );
        assert_eq!(rec["pods"].as_u64().unwrap(), u64::from(truth.pods), "{key}: pods");
        assert_eq!(
            rec["current"]["cpuRequest"].as_f64(),
            truth.requests.cpu_request,
            "{key}: current cpu request"
        );
        assert_eq!(
            rec["current"]["memoryRequest"].as_f64(),
            truth.requests.memory_request,
            "{key}: current memory request"
        );
        checked += 1;
    }
    assert!(checked >= 10, "only {checked} containers checked against ground truth");
    eprintln!(
        "{checked} containers checked; worst cpu p95 error {:.3} %",
        worst * 100.0
    );

    // The same run for people: a table with every Deployment in it.
    let out = recommend(&prom.url, &kubeconfig, &[]).await;
    assert!(out.status.success(), "rightsizer failed:\n{}", text(&out.stderr));
    let table = text(&out.stdout);
    assert!(table.starts_with("NAMESPACE"), "{table}");
    for d in &cluster.objects.deployments {
        let name = format!("Deployment/{}", d.metadata.name.as_deref().unwrap());
        assert!(table.contains(&name), "table lacks {name}:\n{table}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_denied_list_names_the_missing_rbac_permission() {
    let (cluster, tsdb) = demo_history();
    let prom = Prometheus::start(Some(tsdb), &[]);
    let api = FakeApi::start().await;
    api.load(cluster);
    api.deny("list", "apps", "deployments");
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = api.write_kubeconfig(dir.path());
    let out = recommend(&prom.url, &kubeconfig, &[]).await;
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(err.contains("cannot list resource \"deployments\""), "{err}");
    assert!(
        err.contains("RBAC permission `list` on `deployments` (API group \"apps\")"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_prometheus_is_a_clear_error() {
    let api = FakeApi::start().await;
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = api.write_kubeconfig(dir.path());
    // A port nothing listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://127.0.0.1:{port}");
    let out = recommend(&url, &kubeconfig, &[]).await;
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(err.contains(&format!("cannot reach prometheus at {url}/")), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pushgateway_metrics_reach_prometheus() {
    use crate::support::servers::Pushgateway;
    let gateway = Pushgateway::start();
    let prom = Prometheus::start(None, std::slice::from_ref(&gateway.address));
    rightsizer::install_crypto_provider();
    let http = reqwest::Client::new();
    let body = "# TYPE rightsizer_harness_check gauge\nrightsizer_harness_check{namespace=\"shop\"} 42\n";
    let pushed = http
        .put(format!("{}/metrics/job/harness", gateway.url))
        .body(body)
        .send()
        .await
        .unwrap();
    assert!(pushed.status().is_success(), "push failed: {}", pushed.status());
    // Prometheus scrapes the gateway every second; wait for the sample to arrive.
    let result = crate::support::servers::scraped(&prom.url, "rightsizer_harness_check", 1).await;
    let sample = &result[0];
    assert_eq!(sample["metric"]["namespace"], "shop");
    assert_eq!(sample["metric"]["job"], "harness");
    assert_eq!(sample["value"][1], "42");
}
