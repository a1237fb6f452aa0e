//! No secret leaves the process: credentials planted in every place a user can put one (the
//! Prometheus and Pushgateway URLs, a token, a password, a private header) appear in no
//! report, Markdown body, snapshot, patch, log line (at every level) or error, on a run that
//! works and on runs that fail.

use std::path::Path;

use crate::support::fake_api::FakeApi;
use crate::support::servers::{DEMO_DAYS, DEMO_END, Prometheus, Pushgateway, demo_history};

const SECRETS: [&str; 4] = ["url-pw-s3cret", "push-pw-s3cret", "header-s3cret", "token-s3cret"];

fn assert_clean(what: &str, text: &str) {
    for s in SECRETS {
        assert!(!text.contains(s), "{s} leaked into {what}:\n{text}");
    }
}

fn assert_files_clean(dir: &Path) {
    for e in std::fs::read_dir(dir).unwrap().map(Result::unwrap) {
        let p = e.path();
        if p.is_dir() {
            assert_files_clean(&p);
        } else {
            let bytes = std::fs::read(&p).unwrap();
            let text = if bytes.starts_with(&[0x1f, 0x8b]) {
                use std::io::Read;
                let mut out = String::new();
                flate2::read::GzDecoder::new(&bytes[..])
                    .read_to_string(&mut out)
                    .unwrap();
                out
            } else {
                String::from_utf8_lossy(&bytes).into_owned()
            };
            assert_clean(&p.display().to_string(), &text);
        }
    }
}

async fn run_logged(args: &[&str]) -> std::process::Output {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_rightsizer"))
        .args(args)
        .env("RUST_LOG", "trace")
        .env_remove("KUBECONFIG")
        .output()
        .await
        .expect("run the rightsizer binary")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn planted_secrets_reach_no_output_and_no_log() {
    let (cluster, tsdb) = demo_history();
    let gateway = Pushgateway::start();
    let prom = Prometheus::start(Some(tsdb), &[]);
    let api = FakeApi::start().await;
    api.load(cluster);
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = api.write_kubeconfig(dir.path());
    let out = dir.path().join("out");
    std::fs::create_dir(&out).unwrap();
    // Prometheus without a web config accepts any credentials, so the run succeeds.
    let prom_url = prom.url.replace("http://", "http://alice:url-pw-s3cret@");
    let push_url = gateway.url.replace("http://", "http://bob:push-pw-s3cret@");
    let (end, history) = (DEMO_END.to_string(), format!("{DEMO_DAYS}d"));
    let report = out.join("report.json");
    let md = out.join("pr.md");
    let patches = out.join("patches");
    let common = [
        "--prometheus-url",
        &prom_url,
        "--prometheus-header",
        "Private-Tokn=header-s3cret",
        "--kubeconfig",
        kubeconfig.to_str().unwrap(),
        "--history",
        &history,
        "--end",
        &end,
    ];
    let outputs = [
        "-f",
        "json",
        "-o",
        report.to_str().unwrap(),
        "--markdown",
        md.to_str().unwrap(),
        "--patches-dir",
        patches.to_str().unwrap(),
        "--push-metrics",
        &push_url,
    ];
    for sub in ["recommend", "agent"] {
        let mut args = vec![sub, "--log-format", "json"];
        args.extend(common);
        args.extend(outputs);
        let o = run_logged(&args).await;
        let log = String::from_utf8_lossy(&o.stderr);
        assert!(o.status.success(), "{sub}: {log}");
        assert_clean(&format!("the {sub} log"), &log);
        assert_clean("stdout", &String::from_utf8_lossy(&o.stdout));
        assert!(
            std::fs::read_to_string(&report)
                .unwrap()
                .contains(&prom.url.replace("http://", ""))
        );
    }
    let snapshot = out.join("cluster.snapshot.json.gz");
    let mut args = vec!["snapshot", "-o", snapshot.to_str().unwrap()];
    args.extend(common);
    let o = run_logged(&args).await;
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_clean("the snapshot log", &String::from_utf8_lossy(&o.stderr));
    assert_files_clean(&out);

    // Failing runs: an unreachable Prometheus (retries logged), a token in the config file, a
    // Pushgateway that refuses the connection.
    let config = dir.path().join("config.yaml");
    std::fs::write(
        &config,
        "prometheus:\n  url: http://127.0.0.1:1\n  token: token-s3cret\n  retries: 1\n",
    )
    .unwrap();
    for args in [
        vec![
            "recommend",
            "--prometheus-url",
            "http://carol:url-pw-s3cret@127.0.0.1:1",
            "--prometheus-retries",
            "1",
            "--no-kube-api",
        ],
        vec!["agent", "--config", config.to_str().unwrap(), "--no-kube-api"],
        vec![
            "recommend",
            "--prometheus-url",
            "http://u:url-pw-s3cret@[::1",
            "--no-kube-api",
        ],
    ] {
        let o = run_logged(&args).await;
        assert_eq!(o.status.code(), Some(2), "{args:?}");
        assert_clean(&format!("{args:?}"), &String::from_utf8_lossy(&o.stderr));
    }
    let mut args = vec![
        "recommend",
        "--snapshot",
        snapshot.to_str().unwrap(),
        "--push-metrics",
        "http://dave:push-pw-s3cret@127.0.0.1:1",
    ];
    args.push("--no-progress");
    let o = run_logged(&args).await;
    assert_eq!(o.status.code(), Some(2));
    let log = String::from_utf8_lossy(&o.stderr);
    assert!(log.contains("pushgateway"), "{log}");
    assert_clean("a failed push", &log);
}
