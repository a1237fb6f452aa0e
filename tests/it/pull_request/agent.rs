//! `rightsizer agent` with the CronJob's environment from `deploy/` + `deploy/pull-request`
//! (as kustomize builds it), against the fake Kubernetes API, a real Prometheus holding the
//! demo history and the fake GitHub: the first run opens the pull request, the next run on
//! the same history writes nothing, a run on a window ending earlier (usage changed) updates
//! the same pull request.

use serde_json::Value;

use super::{BRANCH, TOKEN, calls};
use crate::support::fake_api::FakeApi;
use crate::support::forge::{FakeForge, Provider};
use crate::support::servers::{DEMO_DAYS, DEMO_END, Prometheus, demo_history};

/// The demo cluster's objects as manifests, one file per kind under `k8s/`.
fn cluster_manifests(cluster: &rightsizer_synth::Cluster) -> Vec<(String, Vec<u8>)> {
    let o = &cluster.objects;
    let doc = |v: Value, api: &str, kind: &str| {
        let mut v = v;
        v["apiVersion"] = api.into();
        v["kind"] = kind.into();
        v.as_object_mut().unwrap().remove("status");
        serde_saphyr::to_string(&v).unwrap()
    };
    let file = |name: &str, docs: Vec<String>| (format!("k8s/{name}"), docs.join("---\n").into_bytes());
    vec![
        file(
            "deployments.yaml",
            o.deployments
                .iter()
                .map(|d| doc(serde_json::to_value(d).unwrap(), "apps/v1", "Deployment"))
                .collect(),
        ),
        file(
            "statefulsets.yaml",
            o.stateful_sets
                .iter()
                .map(|d| doc(serde_json::to_value(d).unwrap(), "apps/v1", "StatefulSet"))
                .collect(),
        ),
        file(
            "daemonsets.yaml",
            o.daemon_sets
                .iter()
                .map(|d| doc(serde_json::to_value(d).unwrap(), "apps/v1", "DaemonSet"))
                .collect(),
        ),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pull_request_agent_opens_keeps_then_updates_the_pull_request() {
    rightsizer::install_crypto_provider();
    let (cluster, tsdb) = demo_history();
    let prom = Prometheus::start(Some(tsdb), &[]);
    let api = FakeApi::start().await;
    api.load(cluster);
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = api.write_kubeconfig(dir.path());
    let forge = tokio::task::spawn_blocking(|| FakeForge::start_blocking(Provider::GitHub, "org/repo", TOKEN))
        .await
        .unwrap();
    let files = cluster_manifests(cluster);
    let refs: Vec<(&str, &[u8])> = files.iter().map(|(p, b)| (p.as_str(), b.as_slice())).collect();
    let main = forge.seed("main", &refs);

    // The environment of the CronJob as deploy/ + deploy/pull-request build it; the token
    // file at the path it names, under a temporary root; the target pointed at the fake.
    let container = crate::deploy::pull_request_container();
    let mut env: Vec<(String, String)> = container["env"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| Some((e["name"].as_str()?.to_string(), e["value"].as_str()?.to_string())))
        .collect();
    let names: Vec<&str> = env.iter().map(|(n, _)| n.as_str()).collect();
    assert!(names.contains(&"RIGHTSIZER_PULL_REQUEST") && names.contains(&"RIGHTSIZER_PULL_REQUEST_TOKEN_FILE"));
    for (name, value) in &mut env {
        match name.as_str() {
            "RIGHTSIZER_PULL_REQUEST" => *value = "github:org/repo@main:k8s".into(),
            "RIGHTSIZER_PULL_REQUEST_TOKEN_FILE" => {
                let path = dir.path().join(value.trim_start_matches('/'));
                std::fs::create_dir_all(path.parent().unwrap()).unwrap();
                std::fs::write(&path, format!("{TOKEN}\n")).unwrap();
                *value = path.display().to_string();
            }
            _ => {}
        }
    }
    env.push(("RIGHTSIZER_PULL_REQUEST_API_URL".into(), forge.url()));
    env.push(("RIGHTSIZER_PULL_REQUEST_BRANCH".into(), BRANCH.into()));
    let config = dir.path().join("config.yaml");
    std::fs::write(
        &config,
        format!(
            "prometheus:\n  url: {}\nkube:\n  kubeconfig: {}\nhistory: {DEMO_DAYS}d\nend: \"{DEMO_END}\"\n",
            prom.url,
            kubeconfig.display()
        ),
    )
    .unwrap();
    let agent = move |forge_env: Vec<(String, String)>, config: std::path::PathBuf| {
        let args = ["agent", "--config", config.to_str().unwrap(), "--log-format", "json"].map(String::from);
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_rightsizer"));
        cmd.args(args)
            .env("RUST_LOG", "debug")
            .env_remove("KUBECONFIG")
            .envs(forge_env);
        let out = cmd.output().unwrap();
        (out.status.code(), String::from_utf8_lossy(&out.stderr).into_owned())
    };
    let (code, log) = {
        let (env, config) = (env.clone(), config.clone());
        tokio::task::spawn_blocking(move || agent(env, config)).await.unwrap()
    };
    assert_eq!(code, Some(0), "{log}");
    assert!(!log.contains(TOKEN), "the token leaked into the log");
    let pulls = forge.pulls();
    assert_eq!(pulls.len(), 1, "{pulls:?}\n{log}");
    assert_eq!(pulls[0].labels, ["rightsizer", "resources"], "the component's labels");
    assert!(pulls[0].body.contains("## rightsizer: resource recommendations"));
    let history = forge.commits(BRANCH);
    assert_eq!(history[0].parents, std::slice::from_ref(&main));
    let changed: Vec<String> = forge
        .files(BRANCH)
        .into_iter()
        .filter(|(p, b)| forge.files("main").get(p) != Some(b))
        .map(|(p, _)| p)
        .collect();
    assert!(
        !changed.is_empty() && changed.iter().all(|p| p.starts_with("k8s/")),
        "{changed:?}"
    );
    let line = log
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|v| v["fields"]["message"] == "pull request")
        .unwrap_or_else(|| panic!("no pull request log line:\n{log}"));
    assert_eq!(line["fields"]["action"], "opened", "{line}");
    eprintln!("agent first run: {:#?}", calls(&forge));

    // The next scheduled run on the same history: nothing written.
    forge.clear_records();
    let (code, log) = {
        let (env, config) = (env.clone(), config.clone());
        tokio::task::spawn_blocking(move || agent(env, config)).await.unwrap()
    };
    assert_eq!(code, Some(0), "{log}");
    assert_eq!(forge.writes(), [], "{log}");
    assert_eq!(forge.pulls().len(), 1);
    let head = forge.branch_head(BRANCH).unwrap();

    // Usage changed: a window ending half a day earlier. The same pull request, a new single
    // commit on main.
    forge.clear_records();
    env.push(("RIGHTSIZER_END".into(), (DEMO_END - 43_200).to_string()));
    let (code, log) = tokio::task::spawn_blocking(move || agent(env, config)).await.unwrap();
    assert_eq!(code, Some(0), "{log}");
    let pulls_after = forge.pulls();
    assert_eq!(pulls_after.len(), 1, "{pulls_after:?}");
    assert_eq!(pulls_after[0].number, pulls[0].number);
    assert_ne!(forge.branch_head(BRANCH).unwrap(), head, "a new commit: {log}");
    assert_eq!(forge.commits(BRANCH)[0].parents, [main], "one commit on main");
    assert_ne!(pulls_after[0].body, pulls[0].body);
}
