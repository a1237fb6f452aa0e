//! rightsizer against a real VictoriaMetrics (Debian's single-node `victoria-metrics`)
//! holding the generated history of two clusters whose namespaces and pod names collide,
//! told apart by a `cluster` label: `--prometheus-selector` picks one.

use crate::support::servers::demo_history;
use crate::support::victoria::Victoria;

/// The support's import: the generated history goes in with a `cluster` label on every
/// series, every sample is kept, and the points are searchable at once.
#[test]
fn import_keeps_every_series_and_sample_with_its_cluster_label() {
    let (cluster, _) = demo_history();
    let mut vm = Victoria::start();
    let imported = vm.import_cluster(cluster, &[("cluster", "a")]);
    assert!(
        imported.series > 100 && imported.samples > imported.series,
        "{imported:?}"
    );
    // VictoriaMetrics 1.79's `/api/v1/series` leaves out a series whose only sample is at
    // exactly an `end` at midnight UTC (one kube_job_owner series here): one second more.
    let (start, end) = (cluster.spec.start(), cluster.spec.end + 1);
    let (status, body) = vm
        .get(&format!(
            "/api/v1/series?match%5B%5D=%7Bcluster%3D%22a%22%7D&start={start}&end={end}"
        ))
        .unwrap();
    assert_eq!(status, 200, "{body}");
    let answer: serde_json::Value = serde_json::from_str(&body).unwrap();
    let series = answer["data"].as_array().unwrap();
    assert_eq!(series.len() as u64, imported.series, "series of cluster a");
    let (_, body) = vm
        .get(&format!(
            "/api/v1/query?query=sum(count_over_time(%7Bcluster%3D%22a%22%7D%5B{}s%5D))&time={}",
            cluster.spec.duration + 3600,
            end
        ))
        .unwrap();
    let answer: serde_json::Value = serde_json::from_str(&body).unwrap();
    let samples: f64 = answer["data"]["result"][0]["value"][1]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(samples as u64, imported.samples, "samples of cluster a: {body}");

    // Prometheus text in milliseconds goes in as it is, with its own label.
    let text = format!("probe{{x=\"1\"}} 5 {}000\n", cluster.spec.end);
    assert_eq!(vm.import(&text, &[("cluster", "b")]).series, 1);
    assert_eq!(vm.series(), imported.series + 1);
    let (_, body) = vm
        .get(&format!("/api/v1/query?query=probe%7Bcluster%3D%22b%22%7D&time={end}"))
        .unwrap();
    assert!(body.contains(r#""value":[1793491201,"5"]"#), "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probe_feasibility() {
    use crate::support::servers::{DEMO_DAYS, DEMO_END, Prometheus};
    let (cluster, tsdb) = demo_history();
    let mut vm = Victoria::start();
    vm.import_cluster(cluster, &[]);
    let prom = Prometheus::start(Some(tsdb), &[]);
    let (end, history) = (DEMO_END.to_string(), format!("{DEMO_DAYS}d"));
    for url in [&prom.url, &vm.url] {
        let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_rightsizer"))
            .args([
                "recommend",
                "--prometheus-url",
                url,
                "--history",
                &history,
                "--end",
                &end,
                "-f",
                "json",
                "--no-kube-api",
            ])
            .env("RUST_LOG", "info")
            .output()
            .await
            .unwrap();
        std::fs::write(
            format!("/tmp/probe-{}.json", url.rsplit(':').next().unwrap()),
            &out.stdout,
        )
        .unwrap();
        eprintln!("{url}: {}\n{}", out.status, String::from_utf8_lossy(&out.stderr));
    }
}
