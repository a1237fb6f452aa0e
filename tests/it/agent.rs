//! `rightsizer agent` end to end: the real binary against a real Prometheus (demo history), a
//! real Pushgateway scraped by it and the fake Kubernetes API server. One-shot and scheduled
//! runs, SIGTERM handling and exit codes, and the config file (unknown keys, overrides,
//! redaction).

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{Receiver, channel};
use std::time::{Duration, Instant};

use rightsizer::rbac::API_CALLS;
use rightsizer::rbac::{ANNOTATE_CALLS, REPORT_CALLS};
use serde_json::Value;

use crate::support::fake_api::FakeApi;
use crate::support::servers::{DEMO_DAYS, DEMO_END, Prometheus, Pushgateway, demo_history};

/// The agent process with its stderr (JSON log lines) read on a thread.
struct Agent {
    child: Child,
    lines: Receiver<String>,
    log: Vec<String>,
}

impl Agent {
    fn start(args: &[&str], env: &[(&str, &str)]) -> Agent {
        let mut child = Command::new(env!("CARGO_BIN_EXE_rightsizer"))
            .arg("agent")
            .args(args)
            .args(["--log-format", "json"])
            .env("RUST_LOG", "info")
            .env_remove("KUBECONFIG")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start rightsizer agent");
        let stderr = child.stderr.take().unwrap();
        let (tx, lines) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        Agent {
            child,
            lines,
            log: Vec::new(),
        }
    }

    /// Waits for a log line containing `text`, returns it.
    fn wait_for(&mut self, text: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.log.push(line.clone());
                    if line.contains(text) {
                        return line;
                    }
                }
                Err(_) => panic!("no log line with {text:?} after {timeout:?}:\n{}", self.log.join("\n")),
            }
        }
    }

    fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.child.id().to_string())
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Waits for the exit; returns the code and the whole log.
    fn exit(mut self, timeout: Duration) -> (Option<i32>, Vec<String>) {
        let deadline = Instant::now() + timeout;
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("agent still running after {timeout:?}:\n{}", self.log.join("\n"));
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        std::thread::sleep(Duration::from_millis(100));
        self.log.extend(self.lines.try_iter());
        (status.code(), self.log)
    }
}

/// Every server the agent talks to, and its config file.
struct Setup {
    api: FakeApi,
    prom: Prometheus,
    _gateway: Pushgateway,
    dir: tempfile::TempDir,
    config: std::path::PathBuf,
}

async fn setup() -> Setup {
    let (cluster, tsdb) = demo_history();
    let gateway = Pushgateway::start();
    let prom = Prometheus::start(Some(tsdb), std::slice::from_ref(&gateway.address));
    let api = FakeApi::start().await;
    api.load(cluster);
    api.insert_root_ca("rightsizer");
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = api.write_kubeconfig(dir.path());
    let config = dir.path().join("config.yaml");
    let text = format!(
        "prometheus:\n  url: {}\nkube:\n  kubeconfig: {}\nhistory: {DEMO_DAYS}d\noutputs:\n  annotate: true\n  patches:\n    dir: {}\n  configMap:\n    namespace: rightsizer\n  push:\n    url: {}\n    grouping:\n      cluster: e2e\n",
        prom.url,
        kubeconfig.display(),
        dir.path().join("out/patches").display(),
        gateway.url,
    );
    std::fs::write(&config, text).unwrap();
    Setup {
        api,
        prom,
        _gateway: gateway,
        dir,
        config,
    }
}

async fn pushed(prom: &str, expr: &str) -> Vec<Value> {
    crate::support::servers::scraped(prom, expr, 1).await
}

fn no_leftovers(dir: &Path) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let name = entry.unwrap().file_name().to_string_lossy().into_owned();
        assert!(
            !name.contains(".staging-") && !name.contains(".old-"),
            "left behind: {name}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_shot_run_writes_every_output() {
    rightsizer::install_crypto_provider();
    let s = setup().await;
    let end = DEMO_END.to_string();
    let agent = Agent::start(&["--config", s.config.to_str().unwrap(), "--end", &end], &[]);
    let (code, log) = tokio::task::spawn_blocking(move || agent.exit(Duration::from_secs(120)))
        .await
        .unwrap();
    assert_eq!(code, Some(0), "{}", log.join("\n"));

    // JSON logs: the effective config once, a span per workload, the run summary.
    let json: Vec<Value> = log.iter().filter_map(|l| serde_json::from_str(l).ok()).collect();
    assert_eq!(json.len(), log.len(), "non-JSON log lines:\n{}", log.join("\n"));
    let message = |v: &Value| v["fields"]["message"].as_str().unwrap_or_default().to_string();
    assert_eq!(
        json.iter().filter(|v| message(v) == "effective configuration").count(),
        1
    );
    assert!(
        json.iter()
            .any(|v| v["span"]["name"] == "workload" && v["span"]["key"].is_string()),
        "no workload span:\n{}",
        log.join("\n")
    );
    assert!(json.iter().any(|v| message(v) == "run finished"));

    // Annotations: merge patches with field manager rightsizer, on metadata only.
    let patches = s.api.patches();
    let annotated: Vec<_> = patches
        .iter()
        .filter(|p| p.content_type == "application/merge-patch+json")
        .collect();
    assert!(
        annotated.iter().any(|p| p.path.contains("/deployments/")),
        "{patches:#?}"
    );
    for p in &annotated {
        assert_eq!(p.field_manager.as_deref(), Some("rightsizer"));
        let keys: Vec<_> = p.body.as_object().unwrap().keys().collect();
        assert_eq!(keys, ["metadata"], "{}", p.body);
        assert!(p.body["metadata"]["annotations"]["rightsizer.dev/recommendation"].is_string());
    }
    // Every request the agent made is in the code's tables (and so in deploy/'s roles).
    let allowed: BTreeSet<_> = API_CALLS
        .iter()
        .chain(ANNOTATE_CALLS)
        .chain(REPORT_CALLS)
        .map(|c| (c.group.to_string(), c.resource.to_string(), c.verb.to_string()))
        .collect();
    for r in s.api.requests().iter().filter(|r| !r.resource.is_empty()) {
        let call = (r.group.clone(), r.resource.clone(), r.verb.clone());
        assert!(
            allowed.contains(&call),
            "{} {} is not in the API call tables",
            r.method,
            r.path
        );
    }

    // The report ConfigMap, server-side applied.
    let cm = s
        .api
        .get_object("", "configmaps", Some("rightsizer"), "rightsizer-report")
        .expect("report configmap");
    let report: Value = serde_json::from_str(cm["data"]["report.json"].as_str().unwrap()).unwrap();
    assert_eq!(report["apiVersion"], "rightsizer.dev/v1alpha1");
    assert!(cm["data"]["report.txt"].as_str().unwrap().contains("NAMESPACE"));
    let apply = patches
        .iter()
        .find(|p| p.path.contains("/configmaps/"))
        .expect("configmap apply");
    assert_eq!(apply.content_type, "application/apply-patch+yaml");
    assert!(apply.force && apply.field_manager.as_deref() == Some("rightsizer"));

    // Patch files: the whole set, nothing half-written beside it.
    let out = s.dir.path().join("out");
    let patch_dir = out.join("patches");
    assert!(patch_dir.join("kustomization.yaml").is_file());
    assert!(std::fs::read_dir(&patch_dir).unwrap().count() > 1);
    no_leftovers(&out);

    // Pushed metrics, through the Pushgateway into Prometheus.
    let last = pushed(&s.prom.url, r#"rightsizer_last_run_timestamp_seconds{cluster="e2e"}"#).await;
    assert_eq!(last[0]["metric"]["job"], "rightsizer");
    let recs = pushed(&s.prom.url, "rightsizer_container_recommended_cpu_request_cores").await;
    assert!(recs.len() >= 10, "{} containers pushed", recs.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schedule_mode_runs_on_time_and_stops_cleanly_on_sigterm() {
    rightsizer::install_crypto_provider();
    let s = setup().await;
    let end = DEMO_END.to_string();
    let config = s.config.to_str().unwrap().to_string();
    let result = tokio::task::spawn_blocking(move || {
        let mut agent = Agent::start(&["--config", &config, "--end", &end, "--schedule", "* * * * *"], &[]);
        agent.wait_for("next run scheduled", Duration::from_secs(30));
        // The first run fires at the next minute boundary.
        agent.wait_for("run finished", Duration::from_secs(150));
        let next = agent.wait_for("next run scheduled", Duration::from_secs(30));
        assert!(next.contains("next_run"), "{next}");
        agent.signal("TERM");
        agent.exit(Duration::from_secs(10))
    })
    .await
    .unwrap();
    let (code, log) = result;
    assert_eq!(
        code,
        Some(0),
        "a SIGTERM between runs is a clean stop:\n{}",
        log.join("\n")
    );
    assert!(log.iter().any(|l| l.contains("stopping between runs")));
    assert!(s.dir.path().join("out/patches/kustomization.yaml").is_file());
    no_leftovers(&s.dir.path().join("out"));
    pushed(&s.prom.url, r#"rightsizer_run_duration_seconds{cluster="e2e"}"#).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_sigterm_abandons_the_run_with_143() {
    // A Prometheus that accepts connections and never answers: the run hangs in collect.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", silent.local_addr().unwrap());
    let dir = tempfile::tempdir().unwrap();
    let patches = dir.path().join("out/patches");
    std::fs::create_dir_all(dir.path().join("out")).unwrap();
    let patches_arg = patches.to_str().unwrap().to_string();
    let (code, log) = tokio::task::spawn_blocking(move || {
        let mut agent = Agent::start(
            &[
                "--prometheus-url",
                &url,
                "--set",
                "kube.noKubeApi=true",
                "--patches-dir",
                &patches_arg,
            ],
            &[],
        );
        agent.wait_for("effective configuration", Duration::from_secs(30));
        std::thread::sleep(Duration::from_millis(300));
        agent.signal("TERM");
        agent.wait_for("finishing the current run", Duration::from_secs(10));
        agent.signal("TERM");
        agent.exit(Duration::from_secs(10))
    })
    .await
    .unwrap();
    drop(silent);
    assert_eq!(code, Some(143), "{}", log.join("\n"));
    assert!(log.iter().any(|l| l.contains("abandoning the run")));
    assert!(!patches.exists(), "an abandoned run wrote patches");
    no_leftovers(&dir.path().join("out"));
}

fn run_to_exit(args: &[&str], env: &[(&str, &str)]) -> (Option<i32>, Vec<String>) {
    Agent::start(args, env).exit(Duration::from_secs(30))
}

#[test]
fn an_unknown_config_key_names_its_path() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.yaml");
    std::fs::write(
        &config,
        "prometheus:\n  url: http://prom:9090\npolicy:\n  defaults:\n    cpuPercentil: 0.9\n",
    )
    .unwrap();
    let (code, log) = run_to_exit(&["--config", config.to_str().unwrap()], &[]);
    assert_eq!(code, Some(2));
    let log = log.join("\n");
    assert!(log.contains("at policy.defaults.cpuPercentil (line 5"), "{log}");
    assert!(log.contains("unknown field"), "{log}");
}

#[test]
fn flags_and_env_override_the_file_and_secrets_are_redacted() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.yaml");
    std::fs::write(
        &config,
        "prometheus:\n  url: http://127.0.0.1:1\n  headers:\n    Private-Tokn: header-s3cret\n    X-Scope-OrgID: team-a\nhistory: 3d\nstep: 1m\npolicy:\n  defaults:\n    cpuPercentile: 0.95\n",
    )
    .unwrap();
    let env = [
        ("RIGHTSIZER_HISTORY", "7d"),
        ("RIGHTSIZER_STEP", "10m"),
        ("RIGHTSIZER_PROMETHEUS_PASSWORD", "env-password-s3cret"),
        ("RIGHTSIZER_PROMETHEUS_USER", "admin"),
    ];
    // An invalid schedule is refused before anything runs, naming the key and its layer.
    let (code, log) = run_to_exit(
        &["--config", config.to_str().unwrap(), "--schedule", "61 * * * *"],
        &env,
    );
    assert_eq!(code, Some(2));
    let text = log.join("\n");
    assert!(
        text.contains(r#"invalid schedule "61 * * * *" (from --schedule): minute value 61 is outside 0-59"#),
        "{text}"
    );
    // A run against a Prometheus that refuses connections: the config is logged once, then
    // the run fails with exit 2.
    let (code, log) = run_to_exit(
        &[
            "--config",
            config.to_str().unwrap(),
            "--step",
            "2m",
            "--set",
            "policy.defaults.cpuPercentile=0.9",
            "--prometheus-retries",
            "0",
            "--no-kube-api",
        ],
        &env,
    );
    assert_eq!(code, Some(2));
    let text = log.join("\n");
    let line = log
        .iter()
        .find(|l| l.contains("effective configuration"))
        .expect("config logged");
    let logged: Value = serde_json::from_str(line).unwrap();
    let config: Value = serde_json::from_str(logged["fields"]["config"].as_str().unwrap()).unwrap();
    assert_eq!(config["history"], "7d", "env beats the file");
    assert_eq!(config["step"], "2m", "a flag beats its env var");
    assert_eq!(config["policy"]["defaults"]["cpuPercentile"], 0.9);
    assert_eq!(config["prometheus"]["user"], "admin");
    assert_eq!(config["prometheus"]["password"], "<redacted>");
    assert_eq!(config["prometheus"]["headers"]["Private-Tokn"], "<redacted>");
    assert_eq!(config["prometheus"]["headers"]["X-Scope-OrgID"], "team-a");
    assert!(!text.contains("s3cret"), "a secret leaked into the log:\n{text}");
}
