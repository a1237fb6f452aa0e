//! dashboards/rightsizer.json against a real Prometheus: every panel query and every template
//! variable must run without error and return data. Prometheus holds the demo history
//! (backfilled, ending at `DEMO_END`, in the past) and scrapes a real Pushgateway that holds
//! the metrics of a real pipeline run on that history, pushed with `emit::push::push_metrics`.
//!
//! The Pushgateway's samples are stamped with the scrape time, "now", while the history ends
//! at `DEMO_END`: no single evaluation time sees both. So a query that reads `rightsizer_*`
//! metrics is evaluated at now, and the others (cAdvisor, kube-state-metrics) at `DEMO_END`.
//! Panel variables are substituted as Grafana would: `$namespace`/`$workload` with real
//! values, `$__rate_interval` 5m, `$__range` 1d, `$__interval` 1m.

use std::time::{Duration, Instant};

use rightsizer::emit::PushTarget;
use rightsizer::emit::progress::Progress;
use rightsizer::emit::push::{RunMetrics, push_metrics};
use rightsizer::recommend::{Policy, recommend};
use rightsizer::settings::RunSettings;
use serde_json::Value;

use crate::support::servers::{DEMO_DAYS, DEMO_END, Prometheus, Pushgateway, demo_history};

const DASHBOARD: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/dashboards/rightsizer.json");

async fn query(http: &reqwest::Client, prom: &str, expr: &str, time: i64, range: bool) -> Result<Vec<Value>, String> {
    let request = if range {
        http.get(format!("{prom}/api/v1/query_range")).query(&[
            ("query", expr.to_string()),
            ("start", (time - 86_400).to_string()),
            ("end", time.to_string()),
            ("step", "300".to_string()),
        ])
    } else {
        http.get(format!("{prom}/api/v1/query"))
            .query(&[("query", expr.to_string()), ("time", time.to_string())])
    };
    let answer: Value = request
        .send()
        .await
        .map_err(|e| e.to_string())?
        .json()
        .await
        .map_err(|e| e.to_string())?;
    if answer["status"] != "success" {
        return Err(format!("{}: {}", answer["errorType"], answer["error"]));
    }
    Ok(answer["data"]["result"].as_array().cloned().unwrap_or_default())
}

fn substitute(expr: &str, namespace: &str, workload: &str) -> String {
    expr.replace("${datasource}", "")
        .replace("$datasource", "")
        .replace("$namespace", namespace)
        .replace("$workload", workload)
        .replace("$__rate_interval", "5m")
        .replace("$__range", "1d")
        .replace("$__interval", "1m")
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_panel_query_returns_data_from_real_prometheus() {
    let dashboard: Value = serde_json::from_str(&std::fs::read_to_string(DASHBOARD).unwrap()).unwrap();
    assert!(dashboard["schemaVersion"].as_u64().unwrap() >= 39);
    let (_, tsdb) = demo_history();
    let gateway = Pushgateway::start();
    let prom = Prometheus::start(Some(tsdb), std::slice::from_ref(&gateway.address));

    // A real run on the history (kube-state-metrics discovery), its metrics pushed.
    let (end, history) = (DEMO_END.to_string(), format!("{DEMO_DAYS}d"));
    let argv = [
        "rightsizer",
        "recommend",
        "--prometheus-url",
        &prom.url,
        "--no-kube-api",
        "--history",
        &history,
        "--end",
        &end,
    ];
    let settings = RunSettings::from_argv(argv).unwrap();
    let collected = rightsizer::run::collect(&settings, &Progress::new(false))
        .await
        .unwrap();
    let report = recommend(&collected.workloads, &collected.usage, &Policy::default());
    let metrics = RunMetrics::from_report(&report, 0, Duration::from_millis(1500), now());
    push_metrics(&PushTarget::new(&gateway.url, "rightsizer", Vec::new()), &metrics)
        .await
        .unwrap();

    // A Deployment with a CPU limit, so every workload panel has every line.
    let http = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    let chosen = loop {
        let found = query(
            &http,
            &prom.url,
            r#"rightsizer_container_recommended_cpu_limit_cores{kind="Deployment"}"#,
            now(),
            false,
        )
        .await
        .unwrap();
        if let Some(s) = found.first() {
            break s["metric"].clone();
        }
        assert!(Instant::now() < deadline, "pushed metrics never reached prometheus");
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    let (namespace, workload) = (
        chosen["namespace"].as_str().unwrap(),
        chosen["workload"].as_str().unwrap(),
    );

    let mut failures = Vec::new();
    let mut checked = 0;
    for var in dashboard["templating"]["list"].as_array().unwrap() {
        if var["type"] != "query" {
            assert_eq!(var["type"], "datasource");
            assert_eq!(var["query"], "prometheus");
            continue;
        }
        let text = substitute(var["query"]["query"].as_str().unwrap(), namespace, workload);
        let inner = text
            .strip_prefix("label_values(")
            .and_then(|s| s.strip_suffix(')'))
            .unwrap();
        let (expr, label) = inner.rsplit_once(',').unwrap();
        let values: Vec<String> = query(&http, &prom.url, expr.trim(), now(), false)
            .await
            .unwrap_or_default()
            .iter()
            .filter_map(|s| s["metric"][label.trim()].as_str().map(str::to_string))
            .collect();
        let want = if label.trim() == "namespace" {
            namespace
        } else {
            workload
        };
        if !values.iter().any(|v| v == want) {
            failures.push(format!("variable {}: {values:?} lacks {want}", var["name"]));
        }
    }
    for panel in dashboard["panels"].as_array().unwrap() {
        if panel["type"] == "row" {
            continue;
        }
        assert_eq!(panel["datasource"]["uid"], "${datasource}", "{}", panel["title"]);
        for target in panel["targets"].as_array().unwrap() {
            let expr = substitute(target["expr"].as_str().unwrap(), namespace, workload);
            let time = if expr.contains("rightsizer_") { now() } else { DEMO_END };
            let range = target["range"] == true;
            let what = format!("panel {:?} target {}", panel["title"], target["refId"]);
            match query(&http, &prom.url, &expr, time, range).await {
                Ok(r) if r.is_empty() => failures.push(format!("{what}: empty result\n  {expr}")),
                Ok(_) => checked += 1,
                Err(e) => failures.push(format!("{what}: {e}\n  {expr}")),
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(checked >= 15, "only {checked} queries checked");
    eprintln!("{checked} panel queries returned data for {namespace}/{workload}");
}
