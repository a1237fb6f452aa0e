//! `rightsizer backtest` end to end: the real binary against a real Prometheus holding the
//! generated demo history and the fake Kubernetes API: it recommends as `recommend` would
//! at the start of the held-out window, scores every method on the same held-out points
//! with a constant number of extra requests, and says how much data there is when the
//! window asks for more.

use rightsizer::model::ContainerKey;
use serde_json::Value;

use crate::slice::rightsizer;
use crate::support::fake_api::FakeApi;
use crate::support::servers::{DEMO_DAYS, DEMO_END, Prometheus, demo_history};

const DAY: i64 = 86_400;

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backtest_scores_every_method_on_the_held_out_day() {
    let (cluster, tsdb) = demo_history();
    let prom = Prometheus::start(Some(tsdb), &[]);
    let api = FakeApi::start().await;
    api.load(cluster);
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = api.write_kubeconfig(dir.path());
    let kubeconfig = kubeconfig.to_str().unwrap();
    let end = DEMO_END.to_string();
    let training = format!("{}d", DEMO_DAYS - 1);
    let base = ["--prometheus-url", &prom.url, "--kubeconfig", kubeconfig];

    let out = rightsizer(
        &[
            &["backtest"][..],
            &base,
            &[
                "--history",
                &training,
                "--holdout",
                "1d",
                "--end",
                &end,
                "--format",
                "json",
            ],
        ]
        .concat(),
    )
    .await;
    assert!(out.status.success(), "backtest failed:\n{}", text(&out.stderr));
    let doc: Value = serde_json::from_slice(&out.stdout).expect("json report");
    assert_eq!(doc["trainingEnd"], DEMO_END - DAY);
    assert_eq!(doc["heldOutEnd"], DEMO_END);
    // One owner request, two per-pod queries per window, two for OOM kills: whatever the
    // number of workloads.
    assert_eq!(doc["extraPrometheusRequests"], 7, "{}", doc["extraPrometheusRequests"]);
    let methods: Vec<&str> = doc["totals"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["method"].as_str().unwrap())
        .collect();
    assert_eq!(methods, ["rightsizer", "current", "krr-simple", "vpa"]);
    // Every method is scored on the same held-out points: a day of 5-minute steps per pod.
    let intervals: Vec<u64> = doc["totals"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["score"]["cpuIntervals"].as_u64().unwrap())
        .collect();
    assert!(
        intervals[0] > 0 && intervals.iter().all(|&n| n == intervals[0]),
        "{intervals:?}"
    );

    // rightsizer's candidates are what `recommend` says at the start of the held-out window.
    let as_of = (DEMO_END - DAY).to_string();
    let rec = rightsizer(
        &[
            &["recommend"][..],
            &base,
            &["--history", &training, "--end", &as_of, "--format", "json"],
        ]
        .concat(),
    )
    .await;
    assert!(rec.status.success(), "recommend failed:\n{}", text(&rec.stderr));
    let rec: Value = serde_json::from_slice(&rec.stdout).unwrap();
    let mut compared = 0;
    for c in rec["workloads"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|w| w["containers"].as_array().unwrap())
    {
        let key: ContainerKey = serde_json::from_value(c["key"].clone()).unwrap();
        let scored = doc["containers"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| serde_json::from_value::<ContainerKey>(s["key"].clone()).unwrap() == key)
            .unwrap_or_else(|| panic!("{key} not in the backtest"));
        let Some(ours) = scored["candidates"].as_array().unwrap().first() else {
            continue;
        };
        assert_eq!(ours["method"], "rightsizer");
        assert_eq!(ours["resources"], c["recommended"], "{key}");
        compared += 1;
    }
    assert!(compared >= 10, "only {compared} containers compared");

    // A window longer than the data: the report says how much there is.
    let out = rightsizer(
        &[
            &["backtest"][..],
            &base,
            &[
                "--history",
                "30d",
                "--holdout",
                "1d",
                "--end",
                &end,
                "--format",
                "markdown",
            ],
        ]
        .concat(),
    )
    .await;
    assert!(out.status.success(), "backtest failed:\n{}", text(&out.stderr));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains(&format!("holds {:.1} days of training data", (DEMO_DAYS - 1) as f64))
            && stderr.contains("30.0 days"),
        "{stderr}"
    );
    assert!(text(&out.stdout).contains("| krr-simple |"), "{}", text(&out.stdout));

    // A held-out window after the data (the training window holds its last two days): an
    // error that names the data's span.
    let later = (DEMO_END + DAY).to_string();
    let out = rightsizer(
        &[
            &["backtest"][..],
            &base,
            &["--history", "2d", "--holdout", "1d", "--end", &later],
        ]
        .concat(),
    )
    .await;
    assert_eq!(out.status.code(), Some(2));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("no usage in the held-out window"), "{stderr}");
}
