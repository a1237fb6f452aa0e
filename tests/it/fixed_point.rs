//! Recommend, apply the result, recommend again on the same history: nothing more is
//! proposed and `--check` exits 0. Bumps (OOM kills, CFS throttling) are anchored to the
//! limits in force when they happened, so applying them does not move their anchor (before
//! issue 12 the OOM bump was taken from today's limit and grew on every run: 450 -> 592 ->
//! 711 -> 854 Mi). Checked twice: through the fake API server's `--apply` path against the
//! real Prometheus, and through a snapshot whose current requests are edited to the
//! recommendation.

use std::process::Output;

use rightsizer::collect::snapshot::Snapshot;
use rightsizer::model::HpaMetric;
use rightsizer::recommend::{Policy, recommend};
use serde_json::Value;

use crate::slice::rightsizer;
use crate::support::fake_api::FakeApi;
use crate::support::servers::{Prometheus, demo_history};

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// The workloads (namespace/Kind/name) the JSON report proposes a change for.
fn changed(out: &Output) -> Vec<String> {
    let doc: Value = serde_json::from_slice(&out.stdout).expect("json report");
    doc["workloads"]
        .as_array()
        .expect("workloads")
        .iter()
        .filter(|w| {
            let containers = w["containers"].as_array().unwrap();
            let container = containers
                .iter()
                .any(|c| c["skip"].is_null() && c["recommended"] != c["current"]);
            let hpa = w["hpa"].as_object().is_some_and(|h| {
                h["minReplicas"] != h["currentMinReplicas"]
                    || h["maxReplicas"] != h["currentMaxReplicas"]
                    || h["targets"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .any(|t| t["recommendedPercent"] != t["currentPercent"])
            });
            container || hpa
        })
        .map(|w| {
            let k = &w["key"];
            format!(
                "{}/{}/{}",
                k["namespace"].as_str().unwrap(),
                k["kind"].as_str().unwrap(),
                k["name"].as_str().unwrap()
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn applying_the_recommendation_then_recommending_again_changes_nothing() {
    let (cluster, tsdb) = demo_history();
    let prom = Prometheus::start(Some(tsdb), &[]);
    let api = FakeApi::start().await;
    api.load(cluster);
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = api.write_kubeconfig(dir.path());
    // The batch namespace holds a bare Job, whose pod template cannot be patched.
    let scope = ["--exclude-namespace", "batch"];

    let first = crate::slice::recommend(
        &prom.url,
        &kubeconfig,
        &[&["--apply", "--force", "-f", "json"][..], &scope].concat(),
    )
    .await;
    assert!(first.status.success(), "{}", text(&first.stderr));
    let proposed = changed(&first);
    // The OOM-killed worker and the throttled checkout are among the changes applied.
    for w in ["shop/Deployment/worker", "shop/Deployment/checkout"] {
        assert!(proposed.iter().any(|p| p == w), "{w} not changed: {proposed:?}");
    }
    assert!(!api.patches().is_empty());

    let again = crate::slice::recommend(&prom.url, &kubeconfig, &[&["-f", "json"][..], &scope].concat()).await;
    assert!(again.status.success(), "{}", text(&again.stderr));
    assert_eq!(
        changed(&again),
        Vec::<String>::new(),
        "changes proposed after applying the first run's"
    );
    let check = crate::slice::recommend(&prom.url, &kubeconfig, &[&["--check"][..], &scope].concat()).await;
    assert_eq!(
        check.status.code(),
        Some(0),
        "--check after --apply:\n{}\n{}",
        text(&check.stdout),
        text(&check.stderr)
    );
}

#[tokio::test]
async fn a_snapshot_edited_to_its_recommendation_is_a_fixed_point() {
    let demo = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("demo/cluster.snapshot.json.gz");
    let mut snapshot = Snapshot::read(&demo).unwrap();
    let report = recommend(&snapshot.workloads, &snapshot.usage, &Policy::default());
    assert!(
        report.workloads.iter().any(|w| w.changed()),
        "the demo proposes changes"
    );
    for (w, rec) in snapshot.workloads.iter_mut().zip(&report.workloads) {
        assert_eq!(w.key, rec.key);
        for (c, r) in w.containers.iter_mut().zip(&rec.containers) {
            c.resources = r.recommended;
        }
        if let (Some(h), Some(hr)) = (w.hpa.as_mut(), rec.hpa.as_ref()) {
            h.min_replicas = hr.min_replicas;
            h.max_replicas = hr.max_replicas;
            for m in &mut h.metrics {
                if let HpaMetric::Utilization {
                    resource,
                    target_percent,
                } = m
                    && let Some(t) = hr.targets.iter().find(|t| t.resource == *resource)
                {
                    *target_percent = t.recommended_percent;
                }
            }
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("applied.snapshot.json.gz");
    snapshot.write(&file).unwrap();
    let out = rightsizer(&["recommend", "-f", "json", "--snapshot", file.to_str().unwrap()]).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(changed(&out), Vec::<String>::new());
    let check = rightsizer(&["recommend", "--check", "--snapshot", file.to_str().unwrap()]).await;
    assert_eq!(check.status.code(), Some(0), "{}", text(&check.stdout));
}
