//! The patch set included as it is in real overlays, built by the real `kubectl kustomize`
//! (kustomize v5), over the bases people have: manifests without `metadata.namespace` whose
//! overlay sets `namespace:`, manifests that name their namespace, a base whose own
//! kustomization sets it, several namespaces with workloads of the same name. Every build is
//! parsed and must carry the new values (a target that matches nothing is a silent no-op in
//! kustomize, so only the values tell), and passes `kubernetes-validate --strict`.

use std::path::Path;
use std::process::Command;

use serde::Serialize;
use serde_json::{Value, json};

use super::{changes, cron_job, current, deployment, hpa, stateful_set};
use rightsizer::emit::change::WorkloadChange;
use rightsizer::emit::patches::{CurrentObjects, PatchFormat, write_patches};

const FORMATS: [PatchFormat; 2] = [PatchFormat::Strategic, PatchFormat::Json6902];

/// `obj` as a manifest, with or without its namespace.
fn manifest(obj: &impl Serialize, namespaced: bool) -> Value {
    let mut v = serde_json::to_value(obj).unwrap();
    if !namespaced {
        v["metadata"].as_object_mut().unwrap().remove("namespace");
    }
    v
}

fn write_yaml(path: &Path, docs: &[Value]) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let text: Vec<String> = docs.iter().map(|d| serde_saphyr::to_string(d).unwrap()).collect();
    std::fs::write(path, text.join("---\n")).unwrap();
}

fn kustomization(dir: &Path, body: &str) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("kustomization.yaml"), body).unwrap();
}

/// `kubectl kustomize dir`, parsed; the build is also checked against the Kubernetes schema.
fn build(dir: &Path) -> Vec<Value> {
    let out = Command::new("kubectl")
        .arg("kustomize")
        .arg(dir)
        .output()
        .expect("kubectl not found: install kubectl (v1.27 or newer, with kustomize v5) and put it on PATH");
    assert!(
        out.status.success(),
        "kubectl kustomize {}: {}",
        dir.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let built = dir.join("built.yaml");
    std::fs::write(&built, &text).unwrap();
    let check = Command::new("kubernetes-validate")
        .args(["--strict", "--quiet", "-k", "1.33.0"])
        .arg(&built)
        .output()
        .expect("kubernetes-validate not found: pip install kubernetes-validate");
    assert!(
        check.status.success(),
        "kubernetes-validate --strict {}:\n{}{}\n{text}",
        built.display(),
        String::from_utf8_lossy(&check.stdout),
        String::from_utf8_lossy(&check.stderr)
    );
    std::fs::remove_file(built).unwrap();
    serde_saphyr::from_multiple::<Value>(&text).unwrap()
}

fn find<'a>(objects: &'a [Value], kind: &str, ns: &str, name: &str) -> &'a Value {
    objects
        .iter()
        .find(|o| o["kind"] == kind && o["metadata"]["namespace"] == ns && o["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind} {ns}/{name} in the build"))
}

fn container<'a>(obj: &'a Value, pod: &[&str], list: &str, name: &str) -> &'a Value {
    let spec = pod.iter().fold(obj, |v, k| &v[*k]);
    spec[list]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap()
}

const TPL: [&str; 3] = ["spec", "template", "spec"];

/// The values of [`changes`] in namespace `shop` (Deployment web, its HPA, CronJob report).
fn assert_shop(objects: &[Value], what: &str) {
    let web = find(objects, "Deployment", "shop", "web");
    let res = |list, name| container(web, &TPL, list, name)["resources"].clone();
    assert_eq!(
        res("containers", "app"),
        json!({ "requests": { "cpu": "250m", "memory": "384Mi" }, "limits": { "memory": "384Mi" } }),
        "{what}"
    );
    assert_eq!(
        res("containers", "worker"),
        json!({ "requests": { "cpu": "1", "memory": "1Gi" } }),
        "{what}"
    );
    assert_eq!(
        res("initContainers", "migrate"),
        json!({ "requests": { "cpu": "100m" } }),
        "{what}"
    );
    assert_eq!(
        res("initContainers", "proxy"),
        json!({ "requests": { "cpu": "50m", "memory": "64Mi" } }),
        "{what}"
    );
    assert_eq!(container(web, &TPL, "containers", "app")["image"], "app:1", "{what}");
    let hpa = find(objects, "HorizontalPodAutoscaler", "shop", "web");
    assert_eq!(hpa["spec"]["minReplicas"], 3, "{what}");
    assert_eq!(hpa["spec"]["maxReplicas"], 8, "{what}");
    assert_eq!(
        hpa["spec"]["metrics"][0]["resource"]["target"]["averageUtilization"], 80,
        "{what}"
    );
    assert_eq!(
        hpa["spec"]["metrics"][1]["resource"]["target"]["averageUtilization"], 75,
        "{what}"
    );
    let report = find(objects, "CronJob", "shop", "report");
    let cron = ["spec", "jobTemplate", "spec", "template", "spec"];
    assert_eq!(
        container(report, &cron, "containers", "report")["resources"],
        json!({ "requests": { "cpu": "500m" }, "limits": { "memory": "2Gi" } }),
        "{what}"
    );
}

fn assert_data(objects: &[Value], what: &str) {
    let db = find(objects, "StatefulSet", "data", "db");
    assert_eq!(
        container(db, &TPL, "containers", "postgres")["resources"],
        json!({ "requests": { "cpu": "2", "memory": "4Gi" } }),
        "{what}"
    );
}

fn shop_manifests(namespaced: bool) -> Vec<Value> {
    vec![
        manifest(&deployment(), namespaced),
        manifest(&hpa(), namespaced),
        manifest(&cron_job(), namespaced),
    ]
}

fn patches(root: &Path, format: PatchFormat, changes: &[WorkloadChange], current: &CurrentObjects) {
    let report = write_patches(&root.join("patches"), changes, format, current).unwrap();
    assert!(report.skipped.is_empty(), "{:?}", report.skipped);
}

#[test]
fn emit_patches_build_over_a_namespace_less_base_whose_overlay_sets_the_namespace() {
    for format in FORMATS {
        let root = tempfile::tempdir().unwrap();
        let r = root.path();
        patches(r, format, &changes(), &current());
        write_yaml(&r.join("base/shop/workloads.yaml"), &shop_manifests(false));
        kustomization(&r.join("base/shop"), "resources: [workloads.yaml]\n");
        write_yaml(&r.join("base/data/db.yaml"), &[manifest(&stateful_set(), false)]);
        kustomization(&r.join("base/data"), "resources: [db.yaml]\n");
        kustomization(
            &r.join("overlays/shop"),
            "namespace: shop\nresources: [../../base/shop]\ncomponents: [../../patches/shop]\n",
        );
        kustomization(
            &r.join("overlays/data"),
            "namespace: data\nresources: [../../base/data]\ncomponents: [../../patches/data]\n",
        );
        assert_shop(&build(&r.join("overlays/shop")), &format!("{format:?}"));
        assert_data(&build(&r.join("overlays/data")), &format!("{format:?}"));
        // The whole set included over a namespace-less base works as well when no other
        // namespace has a workload of the same kind and name.
        kustomization(
            &r.join("overlays/all-shop"),
            "namespace: shop\nresources: [../../base/shop]\ncomponents: [../../patches]\n",
        );
        assert_shop(&build(&r.join("overlays/all-shop")), &format!("{format:?} whole set"));
    }
}

#[test]
fn emit_patches_build_over_namespaced_bases() {
    for format in FORMATS {
        let root = tempfile::tempdir().unwrap();
        let r = root.path();
        patches(r, format, &changes(), &current());
        // Manifests that name their namespace.
        let mut all = shop_manifests(true);
        all.push(manifest(&stateful_set(), true));
        write_yaml(&r.join("base/all.yaml"), &all);
        kustomization(&r.join("base"), "resources: [all.yaml]\n");
        kustomization(&r.join("overlay"), "resources: [../base]\ncomponents: [../patches]\n");
        let built = build(&r.join("overlay"));
        assert_shop(&built, &format!("{format:?} namespaced manifests"));
        assert_data(&built, &format!("{format:?} namespaced manifests"));
        // Namespace-less manifests whose own base kustomization sets the namespace.
        write_yaml(&r.join("kbase/shop/w.yaml"), &shop_manifests(false));
        kustomization(&r.join("kbase/shop"), "namespace: shop\nresources: [w.yaml]\n");
        write_yaml(&r.join("kbase/data/db.yaml"), &[manifest(&stateful_set(), false)]);
        kustomization(&r.join("kbase/data"), "namespace: data\nresources: [db.yaml]\n");
        kustomization(
            &r.join("koverlay"),
            "resources: [../kbase/shop, ../kbase/data]\ncomponents: [../patches]\n",
        );
        let built = build(&r.join("koverlay"));
        assert_shop(&built, &format!("{format:?} base kustomization namespace"));
        assert_data(&built, &format!("{format:?} base kustomization namespace"));
    }
}

#[test]
fn emit_patches_build_several_namespaces_with_workloads_of_the_same_name() {
    for format in FORMATS {
        let root = tempfile::tempdir().unwrap();
        let r = root.path();
        // web in shop (changed), staging (changed differently) and default (no change).
        let mut all = changes();
        let mut staging = all[0].clone();
        staging.key.namespace = "staging".into();
        staging.containers[0].recommended.cpu_request = Some(0.125);
        staging.hpa = None;
        all.push(staging);
        let mut current = current();
        let in_ns = |ns: &str| {
            let mut d = deployment();
            d.metadata.namespace = Some(ns.into());
            d
        };
        current.insert(&in_ns("staging"));
        current.insert(&in_ns("default"));
        patches(r, format, &all, &current);
        let mut docs = shop_manifests(true);
        docs.push(manifest(&in_ns("staging"), true));
        docs.push(manifest(&in_ns("default"), true));
        write_yaml(&r.join("base/all.yaml"), &docs);
        kustomization(&r.join("base"), "resources: [all.yaml]\n");
        kustomization(&r.join("overlay"), "resources: [../base]\ncomponents: [../patches]\n");
        let built = build(&r.join("overlay"));
        assert_shop(&built, &format!("{format:?}"));
        let cpu = |ns| {
            container(find(&built, "Deployment", ns, "web"), &TPL, "containers", "app")["resources"]["requests"]["cpu"]
                .clone()
        };
        assert_eq!(cpu("staging"), "125m", "{format:?}");
        assert_eq!(cpu("default"), "500m", "{format:?}: default/web has no change");
    }
}

#[test]
fn emit_patches_an_empty_set_is_a_valid_component() {
    let root = tempfile::tempdir().unwrap();
    let r = root.path();
    patches(r, PatchFormat::Strategic, &[], &CurrentObjects::default());
    write_yaml(&r.join("base/w.yaml"), &shop_manifests(true));
    kustomization(&r.join("base"), "resources: [w.yaml]\n");
    kustomization(&r.join("overlay"), "resources: [../base]\ncomponents: [../patches]\n");
    let built = build(&r.join("overlay"));
    let web = find(&built, "Deployment", "shop", "web");
    assert_eq!(
        container(web, &TPL, "containers", "app")["resources"]["requests"]["cpu"],
        "500m"
    );
}
