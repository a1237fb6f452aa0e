//! Manifest edits in place: golden files for comments, quoting, flow style, anchors and aliases,
//! multi-document files, a kustomize base, a file that does not parse and a workload no file
//! defines; every edited file must still parse and hold the recommended values.

use std::path::Path;

use rightsizer::emit::change::{ContainerChange, HpaChange, WorkloadChange};
use rightsizer::emit::manifests::edit_manifests;
use rightsizer::model::{ContainerRole, Resources, WorkloadKey, WorkloadKind};
use serde_json::{Value, json};

use crate::emit_patches::{assert_golden_dir, files_under, golden_dir};

mod files;

const MI: f64 = 1024.0 * 1024.0;

fn res(cpu: Option<f64>, mem: Option<f64>, cpu_limit: Option<f64>, mem_limit: Option<f64>) -> Resources {
    Resources {
        cpu_request: cpu,
        memory_request: mem,
        cpu_limit,
        memory_limit: mem_limit,
    }
}

fn change(ns: &str, kind: WorkloadKind, name: &str, containers: &[(&str, ContainerRole, Resources)]) -> WorkloadChange {
    WorkloadChange {
        key: WorkloadKey::new(ns, kind, name),
        containers: containers
            .iter()
            .map(|(n, role, r)| ContainerChange {
                name: n.to_string(),
                role: *role,
                current: Resources::default(),
                recommended: *r,
            })
            .collect(),
        hpa: None,
    }
}

fn changes() -> Vec<WorkloadChange> {
    use ContainerRole::{App, Init};
    use WorkloadKind::{CronJob, Deployment};
    let mut web = change(
        "shop",
        Deployment,
        "web",
        &[
            (
                "app",
                App,
                res(Some(0.25), Some(384.0 * MI), Some(1.0), Some(384.0 * MI)),
            ),
            ("migrate", Init, res(Some(0.1), None, None, None)),
            ("worker", App, res(Some(0.5), Some(1024.0 * MI), None, None)),
        ],
    );
    web.hpa = Some(HpaChange {
        name: "web".into(),
        min_replicas: Some(3),
        max_replicas: Some(8),
        cpu_utilization: Some(75),
        memory_utilization: None,
    });
    vec![
        web,
        change(
            "shop",
            Deployment,
            "api",
            &[
                ("api", App, res(Some(0.2), Some(256.0 * MI), None, None)),
                ("side", App, res(Some(0.05), None, None, None)),
            ],
        ),
        change(
            "shop",
            Deployment,
            "worker",
            &[
                ("worker", App, res(Some(0.3), Some(512.0 * MI), None, None)),
                ("sidecar", App, res(Some(0.1), Some(128.0 * MI), None, None)),
            ],
        ),
        change(
            "shop",
            CronJob,
            "report",
            &[("report", App, res(Some(0.5), None, None, Some(2048.0 * MI)))],
        ),
        change(
            "shop",
            Deployment,
            "shared",
            &[("b", App, res(Some(0.2), None, None, None))],
        ),
        change(
            "shop",
            Deployment,
            "ghost",
            &[("x", App, res(Some(0.2), None, None, None))],
        ),
    ]
}

fn copy_dir(src: &Path, dst: &Path) {
    for file in files_under(src) {
        let to = dst.join(file.strip_prefix(src).unwrap());
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::copy(&file, to).unwrap();
    }
}

fn input() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    copy_dir(&golden_dir().join("manifests/input"), dir.path());
    dir
}

fn rel(dir: &Path, p: &Path) -> String {
    p.strip_prefix(dir).unwrap().display().to_string()
}

/// The container's `resources` of the document defining `name`, read with serde.
fn resources(file: &Path, kind: &str, name: &str, container: &str) -> Value {
    let docs: Vec<Value> = serde_saphyr::from_multiple(&std::fs::read_to_string(file).unwrap()).unwrap();
    let doc = docs
        .iter()
        .find(|d| d["kind"] == kind && d["metadata"]["name"] == name)
        .unwrap();
    let spec = if kind == "CronJob" {
        &doc["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    } else {
        &doc["spec"]["template"]["spec"]
    };
    let all = [spec["containers"].as_array(), spec["initContainers"].as_array()];
    let c = all
        .into_iter()
        .flatten()
        .flatten()
        .find(|c| c["name"] == container)
        .unwrap();
    c["resources"].clone()
}

#[test]
fn emit_manifests_edits_resources_in_place() {
    let dir = input();
    let report = edit_manifests(dir.path(), &changes()).unwrap();
    let d = dir.path();
    let changed: Vec<String> = report.files_changed.iter().map(|p| rel(d, p)).collect();
    assert_eq!(
        changed,
        [
            "apps/api.yml",
            "apps/web.yaml",
            "base/deployment.yaml",
            "jobs/report.yaml"
        ]
    );
    let unparsable: Vec<String> = report.unparsable.iter().map(|(p, _)| rel(d, p)).collect();
    assert_eq!(unparsable, ["broken.yaml"]);
    assert_eq!(
        report.not_found,
        [WorkloadKey::new("shop", WorkloadKind::Deployment, "ghost")]
    );
    assert_eq!(report.problems.len(), 1, "{:#?}", report.problems);
    assert_eq!(report.problems[0].key.name, "shared");
    assert!(
        report.problems[0].reason.contains("is an alias (*res)"),
        "{}",
        report.problems[0].reason
    );
    assert_eq!(report.edited.len(), 5, "{:#?}", report.edited);

    assert_golden_dir(&golden_dir().join("manifests/expected"), d);

    // Read back with serde: the recommended values, quantities as Kubernetes spells them.
    let cases = [
        (
            "apps/web.yaml",
            "Deployment",
            "web",
            "app",
            json!({ "requests": { "cpu": "250m", "memory": "384Mi" }, "limits": { "cpu": "1", "memory": "384Mi" } }),
        ),
        (
            "apps/web.yaml",
            "Deployment",
            "web",
            "migrate",
            json!({ "requests": { "cpu": "100m" } }),
        ),
        (
            "apps/web.yaml",
            "Deployment",
            "web",
            "worker",
            json!({ "requests": { "cpu": "500m", "memory": "1Gi" } }),
        ),
        (
            "apps/api.yml",
            "Deployment",
            "api",
            "api",
            json!({ "requests": { "cpu": "200m", "memory": "256Mi" } }),
        ),
        (
            "apps/api.yml",
            "Deployment",
            "api",
            "side",
            json!({ "requests": { "cpu": "50m" } }),
        ),
        (
            "base/deployment.yaml",
            "Deployment",
            "worker",
            "worker",
            json!({ "requests": { "cpu": "300m", "memory": "512Mi" } }),
        ),
        (
            "base/deployment.yaml",
            "Deployment",
            "worker",
            "sidecar",
            json!({ "requests": { "cpu": "100m", "memory": "128Mi" } }),
        ),
        (
            "jobs/report.yaml",
            "CronJob",
            "report",
            "report",
            json!({ "requests": { "cpu": "500m" }, "limits": { "memory": "2Gi" } }),
        ),
    ];
    for (file, kind, name, container, want) in cases {
        assert_eq!(
            resources(&d.join(file), kind, name, container),
            want,
            "{file} {name}/{container}"
        );
    }
    let docs: Vec<Value> =
        serde_saphyr::from_multiple(&std::fs::read_to_string(d.join("apps/web.yaml")).unwrap()).unwrap();
    let hpa = &docs[2]["spec"];
    assert_eq!(
        (hpa["minReplicas"].as_u64(), hpa["maxReplicas"].as_u64()),
        (Some(3), Some(8))
    );
    assert_eq!(hpa["metrics"][0]["resource"]["target"]["averageUtilization"], 80);
    assert_eq!(hpa["metrics"][1]["resource"]["target"]["averageUtilization"], 75);

    // A second run finds everything in place and rewrites nothing.
    let again = edit_manifests(d, &changes()).unwrap();
    assert!(again.files_changed.is_empty(), "{:?}", again.files_changed);
    assert_eq!(again.edited, report.edited);
}

#[test]
fn emit_manifests_never_edit_a_node_an_alias_shares() {
    let dir = input();
    let shared = change(
        "shop",
        WorkloadKind::Deployment,
        "shared",
        &[("a", ContainerRole::App, res(Some(0.2), None, None, None))],
    );
    let report = edit_manifests(dir.path(), &[shared]).unwrap();
    assert!(report.files_changed.is_empty());
    assert_eq!(report.problems.len(), 1, "{:#?}", report.problems);
    assert!(
        report.problems[0].reason.contains("shared through a YAML anchor"),
        "{}",
        report.problems[0].reason
    );
    let original = std::fs::read_to_string(golden_dir().join("manifests/input/anchors.yaml")).unwrap();
    assert_eq!(
        std::fs::read_to_string(dir.path().join("anchors.yaml")).unwrap(),
        original
    );
}

#[test]
fn emit_manifests_leave_a_namespaceless_document_alone_when_ambiguous() {
    let dir = input();
    let r = res(Some(0.3), None, None, None);
    let changes = [
        change(
            "shop",
            WorkloadKind::Deployment,
            "worker",
            &[("worker", ContainerRole::App, r)],
        ),
        change(
            "staging",
            WorkloadKind::Deployment,
            "worker",
            &[("worker", ContainerRole::App, r)],
        ),
    ];
    let report = edit_manifests(dir.path(), &changes).unwrap();
    assert!(report.files_changed.is_empty(), "{:?}", report.files_changed);
    assert_eq!(report.problems.len(), 2, "{:#?}", report.problems);
    assert!(
        report.problems.iter().all(|p| p.reason.contains("ambiguous")),
        "{:#?}",
        report.problems
    );
}

#[test]
fn emit_manifests_fill_empty_resources_and_files_without_a_final_line_break() {
    let head = "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: a, namespace: ns}\nspec:\n  template:\n    spec:\n      containers:\n      - name: c\n";
    let cases = [
        (
            "        resources:",
            "        resources:\n          requests:\n            cpu: 200m",
        ),
        (
            "        resources: ~ # none\n",
            "        resources:\n          requests:\n            cpu: 200m # none\n",
        ),
        (
            "        image: x",
            "        image: x\n        resources:\n          requests:\n            cpu: 200m\n",
        ),
        (
            "        resources: {limits: {}}\n",
            "        resources: {limits: {}, requests: {cpu: 200m}}\n",
        ),
    ];
    let r = res(Some(0.2), None, None, None);
    let change = change("ns", WorkloadKind::Deployment, "a", &[("c", ContainerRole::App, r)]);
    for (tail, want) in cases {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.yaml");
        std::fs::write(&path, format!("{head}{tail}")).unwrap();
        let report = edit_manifests(dir.path(), std::slice::from_ref(&change)).unwrap();
        assert!(report.problems.is_empty(), "{tail:?}: {:#?}", report.problems);
        let got = std::fs::read_to_string(&path).unwrap();
        assert_eq!(
            got,
            format!("{head}{want}"),
            "{tail:?}:\n{}",
            crate::emit_patches::diff(&format!("{head}{want}"), &got)
        );
    }
}
