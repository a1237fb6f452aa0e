//! The `recommend` outputs through the real binary: golden files for every report format
//! from the bundled demo snapshot (`RIGHTSIZER_BLESS=1` rewrites them), `--check`'s exit code,
//! no progress line when stderr is not a terminal; then against the real Prometheus and the
//! fake API server: patch files applied back through the API, manifest edits, annotations,
//! `--apply` (and its refusals), and metrics pushed to a real Pushgateway read back from
//! Prometheus.

use std::path::PathBuf;
use std::process::Output;

use kube::api::{Api, DynamicObject, Patch, PatchParams};
use rightsizer::model::{WorkloadKind, format_cpu, format_memory};
use serde_json::{Value, json};

use crate::emit_patches::{assert_golden, files_under, golden_dir};
use crate::slice::rightsizer;
use crate::support::fake_api::FakeApi;
use crate::support::servers::{Prometheus, Pushgateway, demo_history};

const SNAPSHOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/demo/cluster.snapshot.json.gz");

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

async fn demo(extra: &[&str]) -> Output {
    let mut args = vec!["recommend", "--snapshot", SNAPSHOT];
    args.extend(extra);
    rightsizer(&args).await
}

#[tokio::test]
async fn outputs_every_report_format_matches_its_golden_file() {
    for (format, file) in [
        ("table", "demo.table.txt"),
        ("json", "demo.json"),
        ("yaml", "demo.yaml"),
        ("csv", "demo.csv"),
        ("markdown", "demo.md"),
    ] {
        let out = demo(&["--format", format]).await;
        assert!(out.status.success(), "{format}: {}", text(&out.stderr));
        let stdout = text(&out.stdout);
        assert!(!stdout.contains('\x1b'), "{format}: colour without a terminal");
        assert_golden(&golden_dir().join("report").join(file), &stdout);
    }
    // The CSV is RFC 4180: CRLF line ends and one field count on every row.
    let csv = text(&demo(&["--format", "csv"]).await.stdout);
    let lines: Vec<&str> = csv.split_terminator("\r\n").collect();
    assert!(lines.len() > 10 && !csv.replace("\r\n", "").contains('\n'));
    let columns = lines[0].split(',').count();
    assert!(lines.iter().all(|l| l.split(',').count() == columns || l.contains('"')));
    // JSON and YAML hold the same document.
    let json: Value = serde_json::from_slice(&demo(&["--format", "json"]).await.stdout).unwrap();
    let yaml: Value = serde_saphyr::from_str(&text(&demo(&["--format", "yaml"]).await.stdout)).unwrap();
    assert_eq!(json["kind"], "Report");
    // (Numbers may come back as integers or floats from YAML: compare what they say.)
    let summary = |doc: &Value| -> Vec<(Value, Vec<Option<f64>>)> {
        doc["workloads"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|w| w["containers"].as_array().unwrap().clone())
            .map(|c| {
                let r = &c["recommended"];
                (
                    c["key"].clone(),
                    ["cpuRequest", "memoryRequest", "cpuLimit", "memoryLimit"]
                        .map(|f| r[f].as_f64())
                        .to_vec(),
                )
            })
            .collect()
    };
    assert_eq!(summary(&json), summary(&yaml));
    assert_eq!(json["totals"]["changed"].as_f64(), yaml["totals"]["changed"].as_f64());
    let keys: Vec<rightsizer::model::WorkloadKey> = json["workloads"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| serde_json::from_value(w["key"].clone()).unwrap())
        .collect();
    let mut sorted = keys.clone();
    sorted.sort();
    assert_eq!(keys, sorted, "machine formats list workloads by key");
}

#[tokio::test]
async fn outputs_check_mode_report_file_and_no_progress_off_a_terminal() {
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("report.json");
    let md = dir.path().join("pr.md");
    let out = demo(&[
        "--check",
        "--format",
        "json",
        "--output",
        report.to_str().unwrap(),
        "--markdown",
        md.to_str().unwrap(),
    ])
    .await;
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
    assert!(out.stdout.is_empty(), "the report went to the file");
    // stderr is a pipe here: no progress line, no carriage returns, no escapes.
    let stderr = text(&out.stderr);
    assert!(!stderr.contains('\r') && !stderr.contains('\x1b'), "{stderr:?}");
    let doc: Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    assert_eq!(doc["apiVersion"], "rightsizer.dev/v1alpha1");
    assert!(std::fs::read_to_string(&md).unwrap().contains("### Changes"));
    // Without --check the same run succeeds.
    assert_eq!(demo(&["--format", "json"]).await.status.code(), Some(0));
    // Cluster writes need the API.
    for flag in ["--annotate", "--apply"] {
        let out = demo(&[flag]).await;
        assert_eq!(out.status.code(), Some(2));
        let err = text(&out.stderr);
        assert!(
            err.contains(&format!("(from {flag}) writes through the kubernetes api"))
                && err.contains("the input is a snapshot"),
            "{err}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outputs_push_metrics_reach_prometheus_through_the_pushgateway() {
    let gateway = Pushgateway::start();
    let prom = Prometheus::start(None, std::slice::from_ref(&gateway.address));
    let out = demo(&[
        "--format",
        "json",
        "--push-metrics",
        &gateway.url,
        "--push-grouping",
        "cluster=demo",
    ])
    .await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    let cart = doc["workloads"]
        .as_array()
        .unwrap()
        .iter()
        .find(|w| w["key"]["name"] == "cart")
        .unwrap();
    let want = cart["containers"][0]["recommended"]["cpuRequest"].as_f64().unwrap();
    let query =
        r#"rightsizer_container_recommended_cpu_request_cores{cluster="demo",job="rightsizer",workload="cart"}"#;
    let result = crate::support::servers::scraped(&prom.url, query, 1).await;
    let got: f64 = result[0]["value"][1].as_str().unwrap().parse().unwrap();
    assert!((got - want).abs() < 1e-9, "{got} vs {want}");
}

/// (kind, namespace, name, container) -> recommended values, for every changed container
/// of the JSON report.
fn recommended(doc: &Value) -> Vec<(String, String, String, String, Value, Value)> {
    let mut out = Vec::new();
    for w in doc["workloads"].as_array().unwrap() {
        if !w["skip"].is_null() || w["key"]["kind"] == "Pod" {
            continue;
        }
        for c in w["containers"].as_array().unwrap() {
            if c["skip"].is_null() && c["current"] != c["recommended"] {
                out.push((
                    w["key"]["kind"].as_str().unwrap().to_string(),
                    w["key"]["namespace"].as_str().unwrap().to_string(),
                    w["key"]["name"].as_str().unwrap().to_string(),
                    c["key"]["container"].as_str().unwrap().to_string(),
                    c["current"].clone(),
                    c["recommended"].clone(),
                ));
            }
        }
    }
    out
}

fn resource_path(kind: &str) -> (&'static str, &'static str) {
    match kind {
        "Deployment" => ("apps", "deployments"),
        "StatefulSet" => ("apps", "statefulsets"),
        "DaemonSet" => ("apps", "daemonsets"),
        "CronJob" => ("batch", "cronjobs"),
        _ => ("batch", "jobs"),
    }
}

/// The container's resources in a stored object, as the report spells quantities.
fn container_resources(object: &Value, name: &str) -> Value {
    let mut pod = &object["spec"]["template"]["spec"];
    if object["kind"] == "CronJob" || object["spec"]["jobTemplate"].is_object() {
        pod = &object["spec"]["jobTemplate"]["spec"]["template"]["spec"];
    }
    pod["containers"]
        .as_array()
        .into_iter()
        .chain(pod["initContainers"].as_array())
        .flatten()
        .find(|c| c["name"] == name)
        .map(|c| c["resources"].clone())
        .unwrap_or(Value::Null)
}

/// Checks that every changed value of the report is what the object now holds.
fn assert_holds(object: &Value, container: &str, rec: &Value, cur: &Value, what: &str) {
    let res = container_resources(object, container);
    for (field, section, name, f) in [
        ("cpuRequest", "requests", "cpu", format_cpu as fn(f64) -> String),
        ("memoryRequest", "requests", "memory", format_memory),
        ("cpuLimit", "limits", "cpu", format_cpu),
        ("memoryLimit", "limits", "memory", format_memory),
    ] {
        if let Some(v) = rec[field].as_f64().filter(|_| rec[field] != cur[field]) {
            assert_eq!(
                res[section][name],
                json!(f(v)),
                "{what} {container} {section}.{name}: {res}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outputs_patches_and_manifests_hold_the_recommendation() {
    let (cluster, tsdb) = demo_history();
    let prom = Prometheus::start(Some(tsdb), &[]);
    let api = FakeApi::start().await;
    api.load(cluster);
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = api.write_kubeconfig(dir.path());
    // A manifests tree generated from the demo objects, one file per kind.
    let manifests = dir.path().join("manifests");
    std::fs::create_dir_all(&manifests).unwrap();
    let o = &cluster.objects;
    let docs = |items: Vec<Value>| {
        items
            .iter()
            .map(|v| serde_saphyr::to_string(v).unwrap())
            .collect::<Vec<_>>()
            .join("---\n")
    };
    let typed = |v: Value, api_version: &str, kind: &str| {
        let mut v = v;
        v["apiVersion"] = json!(api_version);
        v["kind"] = json!(kind);
        v.as_object_mut().unwrap().remove("status");
        v
    };
    let write = |name: &str, items: Vec<Value>| std::fs::write(manifests.join(name), docs(items)).unwrap();
    write(
        "deployments.yaml",
        o.deployments
            .iter()
            .map(|d| typed(serde_json::to_value(d).unwrap(), "apps/v1", "Deployment"))
            .collect(),
    );
    write(
        "statefulsets.yaml",
        o.stateful_sets
            .iter()
            .map(|d| typed(serde_json::to_value(d).unwrap(), "apps/v1", "StatefulSet"))
            .collect(),
    );
    write(
        "daemonsets.yaml",
        o.daemon_sets
            .iter()
            .map(|d| typed(serde_json::to_value(d).unwrap(), "apps/v1", "DaemonSet"))
            .collect(),
    );
    write(
        "cronjobs.yaml",
        o.cron_jobs
            .iter()
            .map(|d| typed(serde_json::to_value(d).unwrap(), "batch/v1", "CronJob"))
            .collect(),
    );
    write(
        "hpas.yaml",
        o.hpas
            .iter()
            .map(|d| {
                typed(
                    serde_json::to_value(d).unwrap(),
                    "autoscaling/v2",
                    "HorizontalPodAutoscaler",
                )
            })
            .collect(),
    );

    for format in ["strategic", "json6902"] {
        let patches = dir.path().join(format!("patches-{format}"));
        let out = crate::slice::recommend(
            &prom.url,
            &kubeconfig,
            &[
                "--format",
                "json",
                "--patches-dir",
                patches.to_str().unwrap(),
                "--patch-format",
                format,
            ],
        )
        .await;
        assert!(out.status.success(), "{format}: {}", text(&out.stderr));
        let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
        let files = files_under(&patches);
        assert!(files.iter().any(|f| f.ends_with("kustomization.yaml")), "{files:?}");
        // Apply every workload patch through the API, then compare with the report.
        let client = api.client().await;
        let wants = recommended(&doc);
        assert!(wants.len() >= 5, "{wants:?}");
        for (kind, ns, name, container, cur, rec) in &wants {
            let file = patches.join(ns).join(format!("{}-{name}.yaml", kind.to_lowercase()));
            let Ok(body) = std::fs::read_to_string(&file) else {
                panic!(
                    "{format}: no patch {} for {kind} {ns}/{name}: {files:?}",
                    file.display()
                )
            };
            let body: Value = serde_saphyr::from_str(&body).unwrap();
            let (group, plural) = resource_path(kind);
            let ar = kube::api::ApiResource {
                group: group.into(),
                version: "v1".into(),
                api_version: format!("{group}/v1"),
                kind: kind.clone(),
                plural: plural.into(),
            };
            let objects: Api<DynamicObject> = Api::namespaced_with(client.clone(), ns, &ar);
            let pp = PatchParams::default();
            let result = if format == "strategic" {
                objects.patch(name, &pp, &Patch::Strategic(&body)).await
            } else {
                objects
                    .patch(name, &pp, &Patch::Json::<()>(serde_json::from_value(body).unwrap()))
                    .await
            };
            result.unwrap_or_else(|e| panic!("{format}: applying {}: {e}", file.display()));
            let object = api.get_object(group, plural, Some(ns), name).unwrap();
            assert_holds(&object, container, rec, cur, &format!("{format} {kind} {ns}/{name}"));
        }
        // Reset the objects for the next format.
        api.load(cluster);
    }

    // Manifest edits in place: every changed value lands in the files, nothing else moves.
    let before: Vec<(PathBuf, String)> = files_under(&manifests)
        .into_iter()
        .map(|f| (f.clone(), std::fs::read_to_string(&f).unwrap()))
        .collect();
    let out = crate::slice::recommend(
        &prom.url,
        &kubeconfig,
        &["--format", "json", "--manifests", manifests.to_str().unwrap()],
    )
    .await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    let mut edited = 0;
    for (kind, ns, name, container, cur, rec) in recommended(&doc) {
        let file = manifests.join(format!("{}s.yaml", kind.to_lowercase()).replace("statefulsets", "statefulsets"));
        let docs: Vec<Value> = serde_saphyr::from_multiple(&std::fs::read_to_string(&file).unwrap()).unwrap();
        let object = docs
            .iter()
            .find(|d| d["metadata"]["name"] == name.as_str() && d["metadata"]["namespace"] == ns.as_str())
            .unwrap_or_else(|| panic!("{kind} {ns}/{name} not in {}", file.display()));
        assert_holds(object, &container, &rec, &cur, &format!("manifest {kind} {ns}/{name}"));
        edited += 1;
    }
    assert!(edited >= 5);
    let changed = before
        .iter()
        .filter(|(f, t)| std::fs::read_to_string(f).unwrap() != *t)
        .count();
    assert!(changed >= 3, "{changed} manifest files changed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outputs_annotate_and_apply_write_through_the_api() {
    let (cluster, tsdb) = demo_history();
    let prom = Prometheus::start(Some(tsdb), &[]);
    let api = FakeApi::start().await;
    api.load(cluster);
    // web: managed by a VPA in Auto mode; cart: owned by Argo CD.
    api.insert_vpa("shop", "web-vpa", "web", "Auto");
    let mut cart = cluster
        .objects
        .deployments
        .iter()
        .find(|d| d.metadata.name.as_deref() == Some("cart"))
        .unwrap()
        .clone();
    cart.metadata
        .labels
        .get_or_insert_default()
        .insert("argocd.argoproj.io/instance".into(), "shop".into());
    api.insert(cart);
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = api.write_kubeconfig(dir.path());

    // --annotate: merge patches on metadata only, never the VPA-managed web.
    api.clear_records();
    let out = crate::slice::recommend(&prom.url, &kubeconfig, &["--annotate"]).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let table = text(&out.stdout);
    assert!(table.contains("managed by VPA (Auto)"), "{table}");
    let patches = api.patches();
    assert!(patches.len() >= 5, "{patches:?}");
    for p in &patches {
        assert_eq!(p.content_type, "application/merge-patch+json", "{}", p.path);
        assert_eq!(p.field_manager.as_deref(), Some("rightsizer"));
        assert_eq!(
            p.body.as_object().unwrap().keys().collect::<Vec<_>>(),
            ["metadata"],
            "{}",
            p.path
        );
        assert!(p.body["metadata"]["annotations"]["rightsizer.dev/recommendation"].is_string());
    }
    assert!(!patches.iter().any(|p| p.path.ends_with("/deployments/web")));

    assert_allowed(&api, rightsizer::rbac::ANNOTATE_CALLS, "--annotate");

    // --apply: strategic merge on workloads, JSON patch on HPAs; web and cart refused.
    api.clear_records();
    let out = crate::slice::recommend(&prom.url, &kubeconfig, &["--apply", "--format", "json"]).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("shop/Deployment/web: managed by VPA (Auto)"),
        "{stderr}"
    );
    assert!(
        stderr.contains("shop/Deployment/cart: owned by Argo CD application shop"),
        "{stderr}"
    );
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    let patches = api.patches();
    assert!(
        !patches
            .iter()
            .any(|p| p.path.ends_with("/deployments/web") || p.path.ends_with("/deployments/cart"))
    );
    for p in &patches {
        assert_eq!(p.field_manager.as_deref(), Some("rightsizer"), "{}", p.path);
        let want = if p.path.contains("horizontalpodautoscalers") {
            "application/json-patch+json"
        } else {
            "application/strategic-merge-patch+json"
        };
        assert_eq!(p.content_type, want, "{}", p.path);
    }
    assert!(
        patches.iter().any(|p| p.path.contains("horizontalpodautoscalers")),
        "the api HPA follows its request"
    );
    // Every request of the --apply run is allowed by the read ClusterRole or the opt-in
    // apply one (deploy/ is checked against these tables).
    assert_allowed(&api, rightsizer::rbac::APPLY_CALLS, "--apply");
    let mut checked = 0;
    for (kind, ns, name, container, cur, rec) in recommended(&doc) {
        if name == "web" || name == "cart" || kind == WorkloadKind::Job.as_str() {
            continue;
        }
        let (group, plural) = resource_path(&kind);
        let object = api.get_object(group, plural, Some(&ns), &name).unwrap();
        assert_holds(&object, &container, &rec, &cur, &format!("applied {kind} {ns}/{name}"));
        checked += 1;
    }
    assert!(checked >= 4);

    // --force takes web and cart too.
    api.clear_records();
    let out = crate::slice::recommend(&prom.url, &kubeconfig, &["--apply", "--force"]).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let paths: Vec<String> = api.patches().into_iter().map(|p| p.path).collect();
    assert!(paths.iter().any(|p| p.ends_with("/deployments/web")), "{paths:?}");
    assert!(paths.iter().any(|p| p.ends_with("/deployments/cart")), "{paths:?}");

    // A 403 names the verb.
    api.load(cluster);
    api.deny("patch", "apps", "deployments");
    let out = crate::slice::recommend(&prom.url, &kubeconfig, &["--apply", "--force"]).await;
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(err.contains("RBAC permission `patch` on `deployments`"), "{err}");
}

/// Every request the fake API server recorded is allowed by the read ClusterRole
/// (`API_CALLS`) or by the opt-in role for `what` (`extra`).
fn assert_allowed(api: &FakeApi, extra: &[rightsizer::collect::cluster::ApiCall], what: &str) {
    let allowed: Vec<_> = rightsizer::rbac::API_CALLS
        .iter()
        .chain(extra)
        .map(|c| (c.group, c.resource, c.verb))
        .collect();
    for r in api.requests().iter().filter(|r| !r.resource.is_empty()) {
        assert!(
            allowed.contains(&(r.group.as_str(), r.resource.as_str(), r.verb.as_str())),
            "{what} made a call no ClusterRole allows: {} {} ({}/{})",
            r.verb,
            r.path,
            r.group,
            r.resource
        );
    }
}
