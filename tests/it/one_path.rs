//! `recommend` and `agent` are one run: the same settings (a config file and flags) give the
//! same outputs through both, file for file and request for request. Each output rule is
//! checked once here through both subcommands: the VPA guard and `force`, HPA patches beside
//! the workload's in both patch formats, annotations and their confidence, the report
//! ConfigMap, the exit codes of `check`, the filters.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::Value;

use crate::support::fake_api::FakeApi;
use crate::support::servers::{DEMO_DAYS, DEMO_END, Prometheus, demo_history};

/// Every file under `dir` (relative path -> text).
fn files(dir: &Path) -> BTreeMap<String, String> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, String>) {
        let Ok(entries) = std::fs::read_dir(dir) else { return };
        for e in entries.map(Result::unwrap) {
            let p = e.path();
            if p.is_dir() {
                walk(root, &p, out);
            } else {
                let rel = p.strip_prefix(root).unwrap().display().to_string();
                out.insert(rel, std::fs::read_to_string(&p).unwrap_or_default());
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

/// What one run did: exit code, the files it wrote, the writes the API saw (the annotation
/// timestamp left out: it is the time of the run).
#[derive(Debug, PartialEq)]
struct Did {
    code: Option<i32>,
    files: BTreeMap<String, String>,
    writes: Vec<(String, String, Value)>,
}

async fn one_run(sub: &str, prom: &str, config: &str, flags: &[&str], vpa: bool) -> (Did, String) {
    let (cluster, _) = demo_history();
    let api = FakeApi::start().await;
    api.load(cluster);
    if vpa {
        api.insert_vpa("shop", "web-vpa", "web", "Auto");
    }
    api.insert_root_ca("rightsizer");
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = api.write_kubeconfig(dir.path());
    let out = dir.path().join("out");
    std::fs::create_dir(&out).unwrap();
    let text = config
        .replace("$PROM", prom)
        .replace("$KUBECONFIG", &kubeconfig.display().to_string())
        .replace("$OUT", &out.display().to_string());
    let path = dir.path().join("config.yaml");
    std::fs::write(&path, text).unwrap();
    let end = DEMO_END.to_string();
    let mut args = vec![sub, "--config", path.to_str().unwrap(), "--end", &end];
    args.extend(flags);
    let output = crate::slice::rightsizer(&args).await;
    let mut writes: Vec<(String, String, Value)> = api
        .patches()
        .into_iter()
        .map(|mut p| {
            if let Some(a) = p.body.pointer_mut("/metadata/annotations") {
                a.as_object_mut().unwrap().remove("rightsizer.dev/updated-at");
            }
            (p.path, p.content_type, p.body)
        })
        .collect();
    writes.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.cmp(&b.1)));
    let did = Did {
        code: output.status.code(),
        files: files(&out),
        writes,
    };
    (did, String::from_utf8_lossy(&output.stderr).into_owned())
}

/// Runs `recommend` and `agent` with the same settings; they must do the same.
async fn both(prom: &str, config: &str, flags: &[&str], vpa: bool) -> Did {
    let (recommend, log_r) = one_run("recommend", prom, config, flags, vpa).await;
    let (agent, log_a) = one_run("agent", prom, config, flags, vpa).await;
    assert_eq!(
        recommend, agent,
        "recommend and agent differ for {flags:?}\nrecommend log:\n{log_r}\nagent log:\n{log_a}"
    );
    recommend
}

fn mentions(did: &Did, line: &str) -> bool {
    did.files
        .values()
        .any(|text| text.lines().any(|l| l.trim().trim_start_matches("- ") == line))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recommend_and_agent_apply_every_output_rule_alike() {
    let (_, tsdb) = demo_history();
    let prom = Prometheus::start(Some(tsdb), &[]);
    let config = format!(
        "prometheus:\n  url: $PROM\nkube:\n  kubeconfig: $KUBECONFIG\nhistory: {DEMO_DAYS}d\noutputs:\n  format: json\n  file: $OUT/report.json\n  markdown: $OUT/summary.md\n  annotate: true\n  configMap:\n    namespace: rightsizer\n  patches:\n    dir: $OUT/patches\n"
    );

    // VPA guard: an Auto VPA keeps web out of patches and annotations; HPA patches go with
    // the api workload's patch.
    let did = both(&prom.url, &config, &[], true).await;
    assert_eq!(did.code, Some(0));
    assert!(did.files.contains_key("report.json") && did.files.contains_key("summary.md"));
    assert!(!mentions(&did, "name: web"), "{:#?}", did.files.keys());
    assert!(mentions(&did, "name: api"), "{:#?}", did.files.keys());
    assert!(
        did.files.values().any(|t| t.contains("HorizontalPodAutoscaler")),
        "no HPA patch: {:#?}",
        did.files.keys()
    );
    assert!(
        did.writes
            .iter()
            .all(|(path, _, _)| !path.ends_with("/deployments/web"))
    );
    assert!(
        did.writes
            .iter()
            .any(|(path, ct, _)| path.contains("/configmaps/rightsizer-report") && ct == "application/apply-patch+yaml"),
        "{:#?}",
        did.writes
    );
    let confidence: Vec<&Value> = did
        .writes
        .iter()
        .filter_map(|(_, _, b)| b.pointer("/metadata/annotations/rightsizer.dev~1confidence"))
        .collect();
    assert!(!confidence.is_empty());

    // --force includes the VPA-managed workload; json6902 writes workload patches too.
    let did = both(&prom.url, &config, &["--force", "--patch-format", "json6902"], true).await;
    assert_eq!(did.code, Some(0));
    assert!(mentions(&did, "name: web"), "{:#?}", did.files);
    assert!(did.writes.iter().any(|(path, _, _)| path.ends_with("/deployments/web")));

    // check: exit 3 through both when a change is recommended; filters apply to both.
    let did = both(
        &prom.url,
        &config,
        &["--check", "-n", "shop", "--kind", "Deployment"],
        false,
    )
    .await;
    assert_eq!(did.code, Some(3));
    let report: Value = serde_json::from_str(&did.files["report.json"]).unwrap();
    let keys: Vec<&str> = report["workloads"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["key"]["namespace"].as_str().unwrap())
        .collect();
    assert!(!keys.is_empty() && keys.iter().all(|ns| *ns == "shop"), "{keys:?}");
}
