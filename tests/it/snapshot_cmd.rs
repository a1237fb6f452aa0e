//! `rightsizer snapshot -o FILE` then `recommend --snapshot FILE` gives the live run's
//! recommendations, carries the discovery extras (VPA modes, current usage, skipped
//! workloads), and a file that is not a snapshot is a clear error with exit code 2.

use rightsizer::collect::snapshot::Snapshot;
use rightsizer::model::{ContainerKey, WorkloadKey, WorkloadKind};
use serde_json::Value;

use crate::slice::rightsizer;
use crate::support::fake_api::FakeApi;
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
    let (end, history) = (DEMO_END.to_string(), format!("{DEMO_DAYS}d"));
    let live = [
        "--prometheus-url",
        &prom.url,
        "--kubeconfig",
        kubeconfig.to_str().unwrap(),
        "--history",
        &history,
        "--end",
        &end,
    ];
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
