//! Patch files: golden files for both formats, then every patch applied through a real
//! `kube::Client` to the original objects in the fake API server, whose result must hold the
//! recommendation and nothing else changed; [`kustomize`] builds real overlays with `kubectl
//! kustomize` over bases with and without namespaces, [`set`] checks what the patch
//! directory keeps, removes and refuses. `RIGHTSIZER_BLESS=1` rewrites the golden files.

mod kustomize;
mod set;

use std::path::{Path, PathBuf};

use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::batch::v1::CronJob;
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams};
use rightsizer::emit::change::{ContainerChange, HpaChange, WorkloadChange};
use rightsizer::emit::patches::{CurrentObjects, PatchFormat, write_patches};
use rightsizer::model::{ContainerRole, Resources, WorkloadKey, WorkloadKind};
use serde_json::{Value, json};

use crate::support::fake_api::FakeApi;

const MI: f64 = 1024.0 * 1024.0;

pub fn golden_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden")
}

/// A line diff (longest common subsequence) for people: `-` expected, `+` actual.
pub fn diff(expected: &str, actual: &str) -> String {
    let (a, b): (Vec<&str>, Vec<&str>) = (expected.lines().collect(), actual.lines().collect());
    let mut lcs = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for i in (0..a.len()).rev() {
        for j in (0..b.len()).rev() {
            lcs[i][j] = if a[i] == b[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    let (mut i, mut j, mut out) = (0, 0, String::new());
    while i < a.len() || j < b.len() {
        if i < a.len() && j < b.len() && a[i] == b[j] {
            out.push_str(&format!("  {}\n", a[i]));
            (i, j) = (i + 1, j + 1);
        } else if j < b.len() && (i == a.len() || lcs[i][j + 1] >= lcs[i + 1][j]) {
            out.push_str(&format!("+ {}\n", b[j]));
            j += 1;
        } else {
            out.push_str(&format!("- {}\n", a[i]));
            i += 1;
        }
    }
    out
}

/// Compares `actual` with the golden file (or rewrites it under `RIGHTSIZER_BLESS=1`).
pub fn assert_golden(golden: &Path, actual: &str) {
    if std::env::var_os("RIGHTSIZER_BLESS").is_some() {
        std::fs::create_dir_all(golden.parent().unwrap()).unwrap();
        std::fs::write(golden, actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(golden).unwrap_or_else(|e| {
        panic!(
            "{}: {e}\nhint: run with RIGHTSIZER_BLESS=1 to create it",
            golden.display()
        )
    });
    if expected != actual {
        panic!(
            "{} differs (- golden, + actual; RIGHTSIZER_BLESS=1 rewrites it):\n{}",
            golden.display(),
            diff(&expected, actual)
        );
    }
}

/// Every file of `dir` compared with `golden/`, and no golden file missing from `dir`.
pub fn assert_golden_dir(golden: &Path, dir: &Path) {
    let mut names: Vec<PathBuf> = files_under(dir)
        .into_iter()
        .map(|p| p.strip_prefix(dir).unwrap().into())
        .collect();
    names.sort();
    for name in &names {
        assert_golden(&golden.join(name), &std::fs::read_to_string(dir.join(name)).unwrap());
    }
    if std::env::var_os("RIGHTSIZER_BLESS").is_none() {
        for g in files_under(golden) {
            let rel = g.strip_prefix(golden).unwrap();
            assert!(
                names.iter().any(|n| n == rel),
                "golden file {} was not produced",
                g.display()
            );
        }
    }
}

pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(files_under(&path));
        } else if !path.file_name().unwrap().to_string_lossy().starts_with('.') {
            out.push(path);
        }
    }
    out.sort();
    out
}

fn res(cpu: Option<f64>, mem: Option<f64>, cpu_limit: Option<f64>, mem_limit: Option<f64>) -> Resources {
    Resources {
        cpu_request: cpu,
        memory_request: mem,
        cpu_limit,
        memory_limit: mem_limit,
    }
}

fn container(name: &str, role: ContainerRole, recommended: Resources) -> ContainerChange {
    ContainerChange {
        name: name.into(),
        role,
        current: Resources::default(),
        recommended,
    }
}

/// A Deployment with two app containers (one untouched), an init container and a sidecar, its
/// HPA; a CronJob; a StatefulSet whose container has no resources at all.
pub fn changes() -> Vec<WorkloadChange> {
    vec![
        WorkloadChange {
            key: WorkloadKey::new("shop", WorkloadKind::Deployment, "web"),
            containers: vec![
                container(
                    "app",
                    ContainerRole::App,
                    res(Some(0.25), Some(384.0 * MI), None, Some(384.0 * MI)),
                ),
                container("worker", ContainerRole::App, Resources::default()),
                container("migrate", ContainerRole::Init, res(Some(0.1), None, None, None)),
                container(
                    "proxy",
                    ContainerRole::Sidecar,
                    res(Some(0.05), Some(64.0 * MI), None, None),
                ),
            ],
            hpa: Some(HpaChange {
                name: "web".into(),
                min_replicas: Some(3),
                max_replicas: Some(8),
                cpu_utilization: Some(75),
                memory_utilization: None,
            }),
        },
        WorkloadChange {
            key: WorkloadKey::new("data", WorkloadKind::StatefulSet, "db"),
            containers: vec![container(
                "postgres",
                ContainerRole::App,
                res(Some(2.0), Some(4096.0 * MI), None, None),
            )],
            hpa: None,
        },
        WorkloadChange {
            key: WorkloadKey::new("shop", WorkloadKind::CronJob, "report"),
            containers: vec![container(
                "report",
                ContainerRole::App,
                res(Some(0.5), None, None, Some(2048.0 * MI)),
            )],
            hpa: None,
        },
    ]
}

fn pod_spec(containers: Value, init: Value) -> Value {
    json!({ "metadata": { "labels": { "app": "x" } }, "spec": { "containers": containers, "initContainers": init } })
}

pub fn deployment() -> Deployment {
    serde_json::from_value(json!({
        "metadata": { "name": "web", "namespace": "shop" },
        "spec": { "selector": { "matchLabels": { "app": "x" } }, "template": pod_spec(
            json!([
                { "name": "app", "image": "app:1", "resources": { "requests": { "cpu": "500m", "memory": "512Mi" }, "limits": { "memory": "512Mi" } } },
                { "name": "worker", "image": "worker:1", "resources": { "requests": { "cpu": "1", "memory": "1Gi" } } },
            ]),
            json!([
                { "name": "migrate", "image": "migrate:1", "resources": { "requests": { "cpu": "200m" } } },
                { "name": "proxy", "image": "proxy:1", "restartPolicy": "Always" },
            ]),
        ) },
    }))
    .unwrap()
}

pub fn hpa() -> HorizontalPodAutoscaler {
    serde_json::from_value(json!({
        "metadata": { "name": "web", "namespace": "shop" },
        "spec": {
            "scaleTargetRef": { "apiVersion": "apps/v1", "kind": "Deployment", "name": "web" },
            "minReplicas": 2, "maxReplicas": 10,
            "metrics": [
                { "type": "Resource", "resource": { "name": "memory", "target": { "type": "Utilization", "averageUtilization": 80 } } },
                { "type": "Resource", "resource": { "name": "cpu", "target": { "type": "Utilization", "averageUtilization": 60 } } },
            ],
        },
    }))
    .unwrap()
}

pub fn cron_job() -> CronJob {
    serde_json::from_value(json!({
        "metadata": { "name": "report", "namespace": "shop" },
        "spec": { "schedule": "0 3 * * *", "jobTemplate": { "spec": { "template": { "spec": {
            "restartPolicy": "OnFailure",
            "containers": [{ "name": "report", "image": "report:1", "resources": { "requests": { "cpu": "1" } } }],
        } } } } },
    }))
    .unwrap()
}

pub fn stateful_set() -> StatefulSet {
    serde_json::from_value(json!({
        "metadata": { "name": "db", "namespace": "data" },
        "spec": { "serviceName": "db", "selector": { "matchLabels": { "app": "x" } }, "template": pod_spec(
            json!([{ "name": "postgres", "image": "postgres:17" }]), json!([]),
        ) },
    }))
    .unwrap()
}

fn seed(api: &FakeApi) {
    api.insert(deployment());
    api.insert(hpa());
    api.insert(cron_job());
    api.insert(stateful_set());
}

fn plural(kind: &str) -> String {
    format!("{}s", kind.to_lowercase())
}

/// Applies every patch listed in the namespace Components of `dir` to its target, as
/// kustomize would: a YAML list is an RFC 6902 patch, a mapping a strategic-merge patch.
async fn apply_dir(api: &FakeApi, dir: &Path) {
    let client = api.client().await;
    let read = |path: &Path| -> Value { serde_saphyr::from_str(&std::fs::read_to_string(path).unwrap()).unwrap() };
    let top = read(&dir.join("kustomization.yaml"));
    assert_eq!(top["kind"], "Component");
    for ns in top["components"].as_array().unwrap() {
        let ns = ns.as_str().unwrap();
        let kustomization = read(&dir.join(ns).join("kustomization.yaml"));
        assert_eq!(kustomization["kind"], "Component");
        for entry in kustomization["patches"].as_array().unwrap() {
            let t = &entry["target"];
            let (group, version, kind) = (
                t["group"].as_str().unwrap(),
                t["version"].as_str().unwrap(),
                t["kind"].as_str().unwrap(),
            );
            assert_eq!(t["namespace"], format!("{ns}|default"));
            let ar = ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(group, version, kind), &plural(kind));
            let objects: Api<DynamicObject> = Api::namespaced_with(client.clone(), ns, &ar);
            let body = read(&dir.join(ns).join(entry["path"].as_str().unwrap()));
            let patch = if body.is_array() {
                Patch::Json(serde_json::from_value(body).unwrap())
            } else {
                Patch::Strategic(body)
            };
            objects
                .patch(t["name"].as_str().unwrap(), &PatchParams::default(), &patch)
                .await
                .unwrap_or_else(|e| panic!("{}: {e}", entry["path"]));
        }
    }
}

fn resources_of(obj: &Value, pod: &[&str], list: &str, name: &str) -> Value {
    let spec = pod.iter().fold(obj, |v, k| &v[*k]);
    spec[list]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap()["resources"]
        .clone()
}

/// The objects in the fake API server hold the recommendation, and nothing else moved.
fn assert_applied(api: &FakeApi, before: &[Value; 4]) {
    let web = api.get_object("apps", "deployments", Some("shop"), "web").unwrap();
    let tpl = ["spec", "template", "spec"];
    let cases = [
        (
            &web,
            &tpl[..],
            "containers",
            "app",
            json!({ "requests": { "cpu": "250m", "memory": "384Mi" }, "limits": { "memory": "384Mi" } }),
        ),
        (
            &web,
            &tpl[..],
            "containers",
            "worker",
            json!({ "requests": { "cpu": "1", "memory": "1Gi" } }),
        ),
        (
            &web,
            &tpl[..],
            "initContainers",
            "migrate",
            json!({ "requests": { "cpu": "100m" } }),
        ),
        (
            &web,
            &tpl[..],
            "initContainers",
            "proxy",
            json!({ "requests": { "cpu": "50m", "memory": "64Mi" } }),
        ),
    ];
    for (obj, path, list, name, want) in cases {
        assert_eq!(resources_of(obj, path, list, name), want, "{name}");
    }
    let db = api.get_object("apps", "statefulsets", Some("data"), "db").unwrap();
    assert_eq!(
        resources_of(&db, &tpl, "containers", "postgres"),
        json!({ "requests": { "cpu": "2", "memory": "4Gi" } })
    );
    let report = api.get_object("batch", "cronjobs", Some("shop"), "report").unwrap();
    let cron = ["spec", "jobTemplate", "spec", "template", "spec"];
    assert_eq!(
        resources_of(&report, &cron, "containers", "report"),
        json!({ "requests": { "cpu": "500m" }, "limits": { "memory": "2Gi" } })
    );
    let hpa = api
        .get_object("autoscaling", "horizontalpodautoscalers", Some("shop"), "web")
        .unwrap();
    assert_eq!(hpa["spec"]["minReplicas"], 3);
    assert_eq!(hpa["spec"]["maxReplicas"], 8);
    let mut want_metrics = before[3]["spec"]["metrics"].clone();
    want_metrics[1]["resource"]["target"]["averageUtilization"] = json!(75);
    assert_eq!(hpa["spec"]["metrics"], want_metrics, "only the cpu target changes");
    // Images, order and everything outside resources are untouched.
    for (after, before) in [(&web, &before[0]), (&db, &before[1]), (&report, &before[2])] {
        let strip = |v: &Value| {
            let mut v = v["spec"].clone();
            strip_resources(&mut v);
            v
        };
        assert_eq!(strip(after), strip(before));
    }
}

fn strip_resources(v: &mut Value) {
    match v {
        Value::Object(m) => {
            m.remove("resources");
            m.values_mut().for_each(strip_resources);
        }
        Value::Array(items) => items.iter_mut().for_each(strip_resources),
        _ => {}
    }
}

fn originals(api: &FakeApi) -> [Value; 4] {
    [
        api.get_object("apps", "deployments", Some("shop"), "web").unwrap(),
        api.get_object("apps", "statefulsets", Some("data"), "db").unwrap(),
        api.get_object("batch", "cronjobs", Some("shop"), "report").unwrap(),
        api.get_object("autoscaling", "horizontalpodautoscalers", Some("shop"), "web")
            .unwrap(),
    ]
}

fn current() -> CurrentObjects {
    let mut current = CurrentObjects::default();
    current.insert(&deployment());
    current.insert(&hpa());
    current.insert(&cron_job());
    current.insert(&stateful_set());
    current
}

#[tokio::test]
async fn emit_patches_strategic_merge_applies_to_the_originals() {
    let dir = tempfile::tempdir().unwrap();
    let report = write_patches(dir.path(), &changes(), PatchFormat::Strategic, &current()).unwrap();
    assert!(report.skipped.is_empty(), "{:?}", report.skipped);
    let names: Vec<String> = report
        .files
        .iter()
        .map(|p| p.strip_prefix(dir.path()).unwrap().display().to_string())
        .collect();
    assert_eq!(
        names,
        [
            "data/statefulset-db.yaml",
            "data/kustomization.yaml",
            "shop/deployment-web.yaml",
            "shop/deployment-web_hpa.yaml",
            "shop/cronjob-report.yaml",
            "shop/kustomization.yaml",
            "kustomization.yaml"
        ]
    );
    assert_golden_dir(&golden_dir().join("patches/strategic"), dir.path());

    let api = FakeApi::start().await;
    seed(&api);
    let before = originals(&api);
    apply_dir(&api, dir.path()).await;
    assert_applied(&api, &before);
    let patches = api.patches();
    assert_eq!(patches.len(), 4);
    assert!(
        patches
            .iter()
            .filter(|p| p.path.contains("horizontalpodautoscalers"))
            .all(|p| p.content_type == "application/json-patch+json")
    );
    assert!(
        patches
            .iter()
            .filter(|p| !p.path.contains("horizontalpodautoscalers"))
            .all(|p| p.content_type == "application/strategic-merge-patch+json")
    );
}

#[tokio::test]
async fn emit_patches_json6902_applies_to_the_originals() {
    let dir = tempfile::tempdir().unwrap();
    let report = write_patches(dir.path(), &changes(), PatchFormat::Json6902, &current()).unwrap();
    assert!(report.skipped.is_empty(), "{:?}", report.skipped);
    assert_golden_dir(&golden_dir().join("patches/json6902"), dir.path());

    let api = FakeApi::start().await;
    seed(&api);
    let before = originals(&api);
    apply_dir(&api, dir.path()).await;
    assert_applied(&api, &before);
    assert!(
        api.patches()
            .iter()
            .all(|p| p.content_type == "application/json-patch+json")
    );
}

#[tokio::test]
async fn emit_patches_json6902_fails_on_a_drifted_object_instead_of_resizing_another_container() {
    let dir = tempfile::tempdir().unwrap();
    write_patches(dir.path(), &changes()[..1], PatchFormat::Json6902, &current()).unwrap();
    let api = FakeApi::start().await;
    // Someone reordered the containers since the patch was computed.
    let mut drifted = deployment();
    drifted
        .spec
        .as_mut()
        .unwrap()
        .template
        .spec
        .as_mut()
        .unwrap()
        .containers
        .reverse();
    api.insert(drifted);
    let objects: Api<Deployment> = Api::namespaced(api.client().await, "shop");
    let body: Value =
        serde_saphyr::from_str(&std::fs::read_to_string(dir.path().join("shop/deployment-web.yaml")).unwrap()).unwrap();
    let result = objects
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::Json::<()>(serde_json::from_value(body).unwrap()),
        )
        .await;
    assert!(result.is_err(), "the test op must stop the patch");
    let web = api.get_object("apps", "deployments", Some("shop"), "web").unwrap();
    assert_eq!(
        resources_of(&web, &["spec", "template", "spec"], "containers", "worker")["requests"]["cpu"],
        "1"
    );
}

#[tokio::test]
async fn emit_patches_without_current_objects_report_what_they_cannot_write() {
    let dir = tempfile::tempdir().unwrap();
    let none = CurrentObjects::default();
    let report = write_patches(dir.path(), &changes(), PatchFormat::Json6902, &none).unwrap();
    let skipped: Vec<String> = report.skipped.iter().map(|(k, r)| format!("{k}: {r}")).collect();
    assert_eq!(skipped.len(), 3, "{skipped:#?}");
    assert!(
        skipped.iter().all(|s| s.contains("needs the current object")),
        "{skipped:#?}"
    );
    assert_eq!(report.files, [dir.path().join("kustomization.yaml")]);
    assert!(files_under(dir.path()).len() == 1, "{:?}", files_under(dir.path()));

    // Strategic patches need no current object; only the HPA's utilization target does, and
    // the workload patch does not go out without its HPA patch.
    let dir = tempfile::tempdir().unwrap();
    let report = write_patches(dir.path(), &changes(), PatchFormat::Strategic, &none).unwrap();
    assert_eq!(report.skipped.len(), 1, "{:?}", report.skipped);
    assert!(
        report.skipped[0].1.contains("needs the current HPA"),
        "{:?}",
        report.skipped
    );
    // data/statefulset-db.yaml, data/kustomization.yaml, shop/cronjob-report.yaml,
    // shop/kustomization.yaml, kustomization.yaml
    assert_eq!(report.files.len(), 5, "{:?}", report.files);
    assert!(!dir.path().join("shop/deployment-web.yaml").exists());

    // Replica changes alone need no current HPA.
    let mut replicas_only = changes();
    replicas_only[0].hpa.as_mut().unwrap().cpu_utilization = None;
    let report = write_patches(dir.path(), &replicas_only, PatchFormat::Strategic, &none).unwrap();
    assert!(report.skipped.is_empty(), "{:?}", report.skipped);
    let ops: Value =
        serde_saphyr::from_str(&std::fs::read_to_string(dir.path().join("shop/deployment-web_hpa.yaml")).unwrap())
            .unwrap();
    assert_eq!(
        ops,
        json!([
            { "op": "add", "path": "/spec/minReplicas", "value": 3 },
            { "op": "replace", "path": "/spec/maxReplicas", "value": 8 },
        ])
    );
}
