//! `rightsizer snapshot -o FILE` then `recommend --snapshot FILE` gives the live run's
//! recommendations, carries the discovery extras (VPA modes, current usage, skipped
//! workloads), and a file that is not a snapshot is a clear error with exit code 2.

use rightsizer::collect::snapshot::Snapshot;
use rightsizer::model::{ContainerKey, WorkloadKey, WorkloadKind};
use serde_json::Value;

use crate::slice::rightsizer;
use crate::support::fake_api::FakeApi;
use crate::support::live_args;
use crate::support::servers::{DEMO_DAYS, DEMO_END, Prometheus, demo_history};

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshot_recommends_exactly_as_the_live_run() {
    let (cluster, tsdb) = demo_history();
    let prom = Prometheus::start(Some(tsdb), &[]);
    let api = FakeApi::start().await;
    api.load(cluster);
    api.insert_vpa("shop", "web", "web", "Initial");
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = api.write_kubeconfig(dir.path());
    let live = live_args(&prom.url, &kubeconfig);
    let file = dir.path().join("cluster.snapshot.json.gz");

    let started = std::time::Instant::now();
    let out = rightsizer(&[&["recommend", "-f", "json"][..], &live].concat()).await;
    assert!(out.status.success(), "live run failed:\n{}", text(&out.stderr));
    let live_report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let live_secs = started.elapsed().as_secs_f64();

    let out = rightsizer(&[&["snapshot", "-o", file.to_str().unwrap()][..], &live].concat()).await;
    assert!(out.status.success(), "snapshot failed:\n{}", text(&out.stderr));
    let started = std::time::Instant::now();
    let out = rightsizer(&["recommend", "-f", "json", "--snapshot", file.to_str().unwrap()]).await;
    assert!(out.status.success(), "snapshot run failed:\n{}", text(&out.stderr));
    let offline: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        offline, live_report,
        "recommendations from the snapshot differ from the live run"
    );
    assert!(
        crate::discover::recommended_containers(&live_report) >= 10,
        "{live_report}"
    );

    let snapshot = Snapshot::read(&file).unwrap();
    let web = WorkloadKey::new("shop", WorkloadKind::Deployment, "web");
    assert_eq!(snapshot.vpa.get(&web).map(String::as_str), Some("Initial"));
    let now = &snapshot.current_usage[&ContainerKey::new(web, "app")];
    assert!(now.pods >= 1 && now.cpu_max > 0.0, "{now:?}");
    assert_eq!(
        Snapshot::from_bytes(&snapshot.to_bytes(), "roundtrip").unwrap(),
        snapshot
    );
    eprintln!(
        "live recommend {live_secs:.2} s, snapshot recommend {:.2} s, snapshot {} bytes",
        started.elapsed().as_secs_f64(),
        std::fs::metadata(&file).unwrap().len()
    );

    // A snapshot written before the discovery extras existed still reads.
    let mut old: Value = serde_json::from_slice(&snapshot_json(&snapshot)).unwrap();
    for field in ["vpa", "currentUsage", "skipped"] {
        old.as_object_mut().unwrap().remove(field);
    }
    let old = Snapshot::from_bytes(old.to_string().as_bytes(), "old.json").unwrap();
    assert!(old.vpa.is_empty() && old.current_usage.is_empty());
    assert_eq!(old.workloads, snapshot.workloads);
}

fn snapshot_json(s: &Snapshot) -> Vec<u8> {
    serde_json::to_vec(s).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_that_is_not_a_snapshot_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let wrong_version = dir.path().join("future.json");
    std::fs::write(
        &wrong_version,
        r#"{"apiVersion": "rightsizer.dev/v9", "kind": "Snapshot"}"#,
    )
    .unwrap();
    let garbage = dir.path().join("garbage.json.gz");
    std::fs::write(&garbage, b"\x1f\x8bthis is not gzip").unwrap();
    let text_file = dir.path().join("notes.txt");
    std::fs::write(&text_file, "hello").unwrap();
    let missing = dir.path().join("missing.json");
    for (path, expect) in [
        (&wrong_version, "apiVersion \"rightsizer.dev/v9\" is not supported"),
        (&garbage, "not a valid gzip file"),
        (&text_file, "not valid JSON"),
        (&missing, "No such file"),
    ] {
        let out = rightsizer(&["recommend", "--snapshot", path.to_str().unwrap()]).await;
        assert_eq!(out.status.code(), Some(2), "{}", path.display());
        let err = text(&out.stderr);
        assert!(err.contains(&format!("snapshot {}", path.display())), "{err}");
        assert!(err.contains(expect), "{err}");
    }
}

fn workload_keys(report: &Value) -> Vec<String> {
    report["workloads"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| {
            format!(
                "{}/{}/{}",
                w["key"]["namespace"].as_str().unwrap(),
                w["key"]["kind"].as_str().unwrap(),
                w["key"]["name"].as_str().unwrap()
            )
        })
        .collect()
}

/// Filters and windows apply to every input: a filtered snapshot run equals the filtered live
/// run, a window the snapshot cannot honour is an error, `snapshot -n` writes only what it
/// selects, a filter that matches nothing says so, and a selector without API access is
/// refused rather than ignored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filters_and_windows_apply_to_every_input() {
    let (cluster, tsdb) = demo_history();
    let prom = Prometheus::start(Some(tsdb), &[]);
    let api = FakeApi::start().await;
    api.load(cluster);
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = api.write_kubeconfig(dir.path());
    let (end, history) = (DEMO_END.to_string(), format!("{DEMO_DAYS}d"));
    let live = live_args(&prom.url, &kubeconfig);
    let file = dir.path().join("all.snapshot.json.gz");
    let out = rightsizer(&[&["snapshot", "-o", file.to_str().unwrap()][..], &live].concat()).await;
    assert!(out.status.success(), "snapshot failed:\n{}", text(&out.stderr));
    let snap = file.to_str().unwrap();

    // The same filter through the live API and the snapshot: the same report and exit code.
    let filter = ["-f", "json", "--check", "-n", "batch", "--kind", "Job"];
    let from_live = rightsizer(&[&["recommend"][..], &live, &filter].concat()).await;
    let from_snapshot = rightsizer(&[&["recommend", "--snapshot", snap][..], &filter].concat()).await;
    assert_eq!(
        from_live.status.code(),
        from_snapshot.status.code(),
        "{}",
        text(&from_snapshot.stderr)
    );
    let (a, b): (Value, Value) = (
        serde_json::from_slice(&from_live.stdout).unwrap(),
        serde_json::from_slice(&from_snapshot.stdout).unwrap(),
    );
    assert_eq!(a, b, "a filtered snapshot run differs from the filtered live run");
    let keys = workload_keys(&b);
    assert!(
        !keys.is_empty() && keys.iter().all(|k| k.starts_with("batch/Job/")),
        "{keys:?}"
    );

    // Flags a snapshot cannot honour, or that are invalid, are errors, not ignored.
    for (args, expect) in [
        (
            &["-n", "Bad_NS!"][..],
            "invalid kube.namespaces \"Bad_NS!\" (from --namespace)",
        ),
        (&["--history", "7d"], "holds 3d of history"),
        (&["--step", "1m"], "(from --step) asks for 1m"),
        (&["--end", "1700000000"], "a snapshot cannot be re-windowed"),
    ] {
        let out = rightsizer(&[&["recommend", "--snapshot", snap][..], args].concat()).await;
        assert_eq!(out.status.code(), Some(2), "{args:?} accepted");
        assert!(text(&out.stderr).contains(expect), "{args:?}: {}", text(&out.stderr));
    }
    // The window it holds is fine.
    let out = rightsizer(&["recommend", "--snapshot", snap, "--history", &history, "--end", &end]).await;
    assert!(out.status.success(), "{}", text(&out.stderr));

    // `snapshot` from a snapshot with -n writes only that namespace.
    let shop = dir.path().join("shop.snapshot.json.gz");
    let out = rightsizer(&[
        "snapshot",
        "--snapshot",
        snap,
        "-n",
        "shop",
        "-o",
        shop.to_str().unwrap(),
    ])
    .await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let s = Snapshot::read(&shop).unwrap();
    assert!(!s.workloads.is_empty() && s.workloads.iter().all(|w| w.key.namespace == "shop"));
    assert!(s.usage.containers.keys().all(|k| k.workload.namespace == "shop"));

    // A namespace or selector that matches nothing is a warning in the report.
    let out = rightsizer(&[
        "recommend",
        "--snapshot",
        snap,
        "-f",
        "json",
        "-n",
        "nosuchns",
        "-l",
        "app=nothing",
    ])
    .await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let warnings = report["warnings"].to_string();
    assert!(
        warnings.contains("namespace nosuchns matched no workload"),
        "{warnings}"
    );
    assert!(
        warnings.contains("label selector app=nothing matched no workload"),
        "{warnings}"
    );

    // Without the API a selector reads kube-state-metrics' labels or is refused: never a
    // silent widening.
    let ksm = [
        "recommend",
        "--prometheus-url",
        &prom.url,
        "--no-kube-api",
        "--history",
        &history,
        "--end",
        &end,
        "-l",
        "app=web",
    ];
    let out = rightsizer(&ksm).await;
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stdout));
    let err = text(&out.stderr);
    assert!(
        err.contains("kube-state-metrics exports no label app") && err.contains("--metric-labels-allowlist"),
        "{err}"
    );
}

/// kube-state-metrics' `kube_*_labels` series give the labels a selector reads without the
/// API; a key no series carries is an error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kube_state_metrics_labels_serve_the_selector() {
    use rightsizer::collect::ksm_labels;
    use rightsizer::collect::prometheus::{PromClient, PromConfig};
    use rightsizer::collect::selector::Selector;
    use rightsizer::model::Window;
    let t = DEMO_END - 600;
    let text = format!(
        "# TYPE kube_deployment_labels gauge\nkube_deployment_labels{{namespace=\"shop\",deployment=\"web\",label_app=\"web\",label_app_kubernetes_io_part_of=\"shop\"}} 1 {t}\nkube_deployment_labels{{namespace=\"shop\",deployment=\"cart\",label_app=\"cart\",label_app_kubernetes_io_part_of=\"\"}} 1 {t}\n# TYPE kube_job_labels gauge\nkube_job_labels{{namespace=\"batch\",job_name=\"once\",label_app=\"web\"}} 1 {t}\n# EOF\n"
    );
    let tsdb = crate::support::servers::backfilled_openmetrics(&text);
    let prom = Prometheus::start(Some(&tsdb), &[]);
    rightsizer::install_crypto_provider();
    let client = PromClient::new(&PromConfig::new(prom.url.parse().unwrap())).unwrap();
    let window = Window {
        end: DEMO_END,
        length: DEMO_DAYS * 86_400,
        step: 300,
    };
    let sel = Selector::parse("app=web,app.kubernetes.io/part-of=shop").unwrap();
    let labels = ksm_labels::fetch(&client, &window, &sel).await.unwrap();
    let web = &labels[&WorkloadKey::new("shop", WorkloadKind::Deployment, "web")];
    assert!(sel.matches(web), "{web:?}");
    let cart = &labels[&WorkloadKey::new("shop", WorkloadKind::Deployment, "cart")];
    assert!(
        !sel.matches(cart) && !cart.contains_key("app.kubernetes.io/part-of"),
        "{cart:?}"
    );
    assert!(!sel.matches(&labels[&WorkloadKey::new("batch", WorkloadKind::Job, "once")]));
    let err = ksm_labels::fetch(&client, &window, &Selector::parse("team=a").unwrap())
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("exports no label team"), "{err}");
}
