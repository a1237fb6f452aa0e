//! Patch and manifest-edit generation for 10,000 workloads (2.5 containers each on average,
//! every 10th with an HPA change, 50 namespaces): strategic-merge and RFC 6902 patch sets
//! written by `write_patches` into a fresh directory and again over the same set (nothing to
//! rewrite), the same patches computed and serialized without the file system, and
//! `edit_manifests` over 1,000 commented YAML files of 10 workloads each (plus the HPA
//! documents), against a fresh copy of the files every iteration, and its read + parse alone.
//!
//! Files go under the system temp directory: every file rightsizer writes is synced
//! (`atomic::write_many`: one sync pass, then the renames), so a disk-backed `/tmp` measures
//! the disk as much as the code; `TMPDIR=/dev/shm` leaves the disk out.
//!
//! Under `cargo test --benches` (criterion's test mode: no `--bench`, or `--test`) every
//! routine runs once on 100 workloads instead, so the check stays quick in a debug build.

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::time::Duration;

use criterion::{BatchSize, Criterion, SamplingMode, Throughput, criterion_group, criterion_main};
use rightsizer::emit::change::{ContainerChange, HpaChange, WorkloadChange};
use rightsizer::emit::manifests::edit_manifests;
use rightsizer::emit::patches::{CurrentObjects, PatchFormat, hpa_patch, json_patch, strategic_patch, write_patches};
use rightsizer::model::{
    ContainerRole, ContainerSpec, Hpa, HpaMetric, Resources, Workload, WorkloadKey, WorkloadKind, format_cpu,
    format_memory,
};
use serde_json::Value;
use tempfile::TempDir;

const WORKLOADS: usize = 10_000;
/// The size in criterion's test mode, to keep `cargo test --benches` quick in a debug build
/// (writing 11,000 synced files alone takes seconds).
const TEST_WORKLOADS: usize = 100;
/// Workloads per manifest file (each file also holds the HPA of its one HPA workload).
const PER_FILE: usize = 10;
/// Workloads per namespace, which is also a directory of the manifest tree (50 of them).
const PER_NAMESPACE: usize = 200;
const MIB: f64 = 1024.0 * 1024.0;

fn resources(cpu_request: f64, memory_request: f64, limited: bool) -> Resources {
    Resources {
        cpu_request: Some(cpu_request),
        cpu_limit: limited.then_some(2.0 * cpu_request),
        memory_request: Some(memory_request),
        memory_limit: limited.then_some(memory_request),
    }
}

/// Workload `i` as discovery sees it: a Deployment (every 5th a StatefulSet); even ones run
/// `app` and a `metrics` exporter, odd ones also a `log-shipper` sidecar and a `migrate`
/// init container (without resources every 3rd time), so 2.5 containers on average. Every
/// 7th has limits, every 10th an HPA on cpu (every 20th on memory too).
fn workload(i: usize) -> Workload {
    let kind = if i % 5 == 4 {
        WorkloadKind::StatefulSet
    } else {
        WorkloadKind::Deployment
    };
    let key = WorkloadKey::new(format!("team-{:02}", i / PER_NAMESPACE), kind, format!("svc-{i:05}"));
    let limited = i.is_multiple_of(7);
    let mut containers = vec![ContainerSpec {
        name: "app".into(),
        role: ContainerRole::App,
        resources: resources(0.25 + 0.05 * (i % 8) as f64, (256 + 64 * (i % 4)) as f64 * MIB, limited),
    }];
    if i.is_multiple_of(2) {
        containers.push(ContainerSpec {
            name: "metrics".into(),
            role: ContainerRole::App,
            resources: resources(0.05, 64.0 * MIB, false),
        });
    } else {
        containers.push(ContainerSpec {
            name: "log-shipper".into(),
            role: ContainerRole::Sidecar,
            resources: resources(0.05, 64.0 * MIB, limited),
        });
        containers.push(ContainerSpec {
            name: "migrate".into(),
            role: ContainerRole::Init,
            resources: if i.is_multiple_of(3) {
                Resources::default()
            } else {
                resources(0.1, 128.0 * MIB, false)
            },
        });
    }
    let hpa = i.is_multiple_of(10).then(|| {
        let mut metrics = vec![HpaMetric::Utilization {
            resource: "cpu".into(),
            target_percent: 70,
        }];
        if i.is_multiple_of(20) {
            metrics.push(HpaMetric::Utilization {
                resource: "memory".into(),
                target_percent: 80,
            });
        }
        Hpa {
            name: format!("svc-{i:05}"),
            min_replicas: 2,
            max_replicas: 10,
            current_replicas: Some(3),
            desired_replicas: Some(3),
            metrics,
        }
    });
    Workload {
        key,
        replicas: Some(3),
        containers,
        hpa,
        labels: Default::default(),
        annotations: Default::default(),
    }
}

/// What a run would propose for `w`: every container changes (app: requests and the limits it
/// has; metrics: cpu only; log-shipper: memory only; migrate: both requests), and the HPA
/// moves its replicas and cpu target.
fn change(i: usize, w: &Workload) -> WorkloadChange {
    let containers = w
        .containers
        .iter()
        .map(|c| {
            let cur = c.resources;
            let recommended = match c.name.as_str() {
                "app" => Resources {
                    cpu_request: Some(0.12 + 0.03 * (i % 5) as f64),
                    cpu_limit: cur.cpu_limit.map(|_| 0.5),
                    memory_request: Some((160 + 32 * (i % 3)) as f64 * MIB),
                    memory_limit: cur.memory_limit.map(|_| 384.0 * MIB),
                },
                "metrics" => Resources {
                    cpu_request: Some(0.02),
                    ..Resources::default()
                },
                "log-shipper" => Resources {
                    memory_request: Some(48.0 * MIB),
                    ..Resources::default()
                },
                _ => Resources {
                    cpu_request: Some(0.2),
                    memory_request: Some(96.0 * MIB),
                    ..Resources::default()
                },
            };
            ContainerChange {
                name: c.name.clone(),
                role: c.role,
                current: cur,
                recommended,
            }
        })
        .collect();
    let hpa = w.hpa.as_ref().map(|h| HpaChange {
        name: h.name.clone(),
        min_replicas: Some(3),
        max_replicas: Some(12),
        cpu_utilization: Some(60),
        memory_utilization: None,
    });
    WorkloadChange {
        key: w.key.clone(),
        containers,
        hpa,
    }
}

/// A container of a manifest, 10 spaces in (under a pod spec's list). Every 4th workload
/// quotes its cpu quantities, as some people write them.
fn container_yaml(out: &mut String, i: usize, w: &Workload, c: &ContainerSpec) {
    let image = match c.name.as_str() {
        "app" => format!("registry.example.com/shop/{}:2.{}.1", w.key.name, i % 9),
        "metrics" => "quay.io/prometheus/statsd-exporter:v0.27.1".into(),
        "log-shipper" => "cr.fluentbit.io/fluent/fluent-bit:3.1.9".into(),
        _ => format!("registry.example.com/shop/{}-migrate:2.{}.1", w.key.name, i % 9),
    };
    out.push_str(&format!("        - name: {}\n          image: {image}\n", c.name));
    match c.name.as_str() {
        "app" => out.push_str(
            "          ports:\n            - name: http\n              containerPort: 8080\n          env:\n            - name: LOG_LEVEL\n              value: info # debug only while investigating\n            - name: GOMAXPROCS\n              valueFrom:\n                resourceFieldRef:\n                  resource: limits.cpu\n",
        ),
        "log-shipper" => out.push_str("          restartPolicy: Always # a native sidecar\n"),
        "migrate" => out.push_str("          args: [\"migrate\", \"--to=latest\"]\n"),
        _ => {}
    }
    let r = &c.resources;
    if *r != Resources::default() {
        let quote = |s: String| if i % 4 == 1 { format!("\"{s}\"") } else { s };
        out.push_str("          resources:\n");
        out.push_str("            requests:\n");
        if let Some(v) = r.cpu_request {
            out.push_str(&format!("              cpu: {}\n", quote(format_cpu(v))));
        }
        if let Some(v) = r.memory_request {
            out.push_str(&format!(
                "              memory: {} # p95 of last quarter\n",
                format_memory(v)
            ));
        }
        if r.cpu_limit.is_some() || r.memory_limit.is_some() {
            out.push_str("            limits:\n");
            if let Some(v) = r.cpu_limit {
                out.push_str(&format!("              cpu: {}\n", quote(format_cpu(v))));
            }
            if let Some(v) = r.memory_limit {
                out.push_str(&format!("              memory: {}\n", format_memory(v)));
            }
        }
    }
    if c.name == "app" {
        out.push_str(
            "          readinessProbe:\n            httpGet:\n              path: /healthz\n              port: http\n            periodSeconds: 10\n",
        );
    }
}

/// One workload's manifest document (and its HPA's) as people write them: comments, labels,
/// probes, a PVC template for StatefulSets.
fn workload_yaml(out: &mut String, i: usize, w: &Workload) {
    let (ns, name, kind) = (&w.key.namespace, &w.key.name, w.key.kind.as_str());
    out.push_str(&format!(
        "---\n# {name}: owned by {ns}, paged through #shop-oncall\napiVersion: apps/v1\nkind: {kind}\nmetadata:\n  name: {name}\n  namespace: {ns}\n  labels:\n    app.kubernetes.io/name: {name}\n    app.kubernetes.io/part-of: shop\nspec:\n"
    ));
    if w.key.kind == WorkloadKind::StatefulSet {
        out.push_str(&format!("  serviceName: {name}\n"));
    }
    match &w.hpa {
        Some(_) => out.push_str("  # replicas: managed by the HPA below\n"),
        None => out.push_str("  replicas: 3\n"),
    }
    out.push_str(&format!(
        "  selector:\n    matchLabels:\n      app.kubernetes.io/name: {name}\n  template:\n    metadata:\n      labels:\n        app.kubernetes.io/name: {name}\n      annotations:\n        prometheus.io/scrape: \"true\"\n    spec:\n      serviceAccountName: {name}\n"
    ));
    let init: Vec<&ContainerSpec> = w.containers.iter().filter(|c| c.role != ContainerRole::App).collect();
    if !init.is_empty() {
        out.push_str("      initContainers:\n");
        for c in init {
            container_yaml(out, i, w, c);
        }
    }
    out.push_str("      containers:\n");
    for c in w.containers.iter().filter(|c| c.role == ContainerRole::App) {
        container_yaml(out, i, w, c);
    }
    if w.key.kind == WorkloadKind::StatefulSet {
        out.push_str(
            "  volumeClaimTemplates:\n    - metadata:\n        name: data\n      spec:\n        accessModes: [ReadWriteOnce]\n        resources:\n          requests:\n            storage: 10Gi\n",
        );
    }
    if let Some(h) = &w.hpa {
        out.push_str(&format!(
            "---\napiVersion: autoscaling/v2\nkind: HorizontalPodAutoscaler\nmetadata:\n  name: {}\n  namespace: {ns}\nspec:\n  scaleTargetRef:\n    apiVersion: apps/v1\n    kind: {kind}\n    name: {name}\n  minReplicas: {}\n  maxReplicas: {} # capacity review 2026-Q3\n  metrics:\n",
            h.name, h.min_replicas, h.max_replicas
        ));
        for m in &h.metrics {
            if let HpaMetric::Utilization {
                resource,
                target_percent,
            } = m
            {
                out.push_str(&format!(
                    "    - type: Resource\n      resource:\n        name: {resource}\n        target:\n          type: Utilization\n          averageUtilization: {target_percent}\n"
                ));
            }
        }
    }
}

/// The manifest tree: `team-NN/apps-NNN.yaml`, 10 workloads per file, as (relative path, text).
fn manifests(workloads: &[Workload]) -> Vec<(PathBuf, String)> {
    workloads
        .chunks(PER_FILE)
        .enumerate()
        .map(|(f, chunk)| {
            let ns = &chunk[0].key.namespace;
            let mut text = format!("# Shop services of {ns}, part {f}. Sizes: see the capacity sheet.\n");
            for (j, w) in chunk.iter().enumerate() {
                workload_yaml(&mut text, f * PER_FILE + j, w);
            }
            (Path::new(ns).join(format!("apps-{f:03}.yaml")), text)
        })
        .collect()
}

/// A fresh copy of the manifest tree.
fn manifest_dir(files: &[(PathBuf, String)]) -> TempDir {
    let dir = TempDir::new().expect("temp dir");
    for (path, text) in files {
        let path = dir.path().join(path);
        std::fs::create_dir_all(path.parent().expect("a file in a namespace directory")).expect("mkdir");
        std::fs::write(&path, text).expect("write manifest");
    }
    dir
}

fn yaml(value: &Value) -> String {
    serde_saphyr::to_string(value).expect("patches serialize")
}

/// The pure part of `write_patches` for one format: each workload's patch and HPA patch,
/// serialized as its files would be. Returns the bytes produced.
fn patches_in_memory(changes: &[WorkloadChange], format: PatchFormat, current: &CurrentObjects) -> usize {
    let mut bytes = 0;
    for c in changes {
        let workload = match format {
            PatchFormat::Strategic => strategic_patch(c),
            PatchFormat::Json6902 => {
                let object = current
                    .get(c.key.kind.as_str(), &c.key.namespace, &c.key.name)
                    .expect("current object");
                Some(Value::Array(json_patch(c, object).expect("json patch")))
            }
        };
        bytes += workload.map_or(0, |v| yaml(&v).len());
        if let Some(h) = &c.hpa {
            let current = current.get("HorizontalPodAutoscaler", &c.key.namespace, &h.name);
            bytes += yaml(&Value::Array(hpa_patch(h, current).expect("hpa patch"))).len();
        }
    }
    bytes
}

/// Whether criterion runs each routine once instead of measuring it (its own rule, which it
/// does not expose).
fn test_mode() -> bool {
    let has = |flag: &str| std::env::args().any(|a| a == flag);
    !has("--bench") || has("--test")
}

fn benches(c: &mut Criterion) {
    let n = if test_mode() { TEST_WORKLOADS } else { WORKLOADS };
    let workloads: Vec<Workload> = (0..n).map(workload).collect();
    let changes: Vec<WorkloadChange> = workloads.iter().enumerate().map(|(i, w)| change(i, w)).collect();
    let current = CurrentObjects::from_workloads(&workloads);
    let hpas = changes.iter().filter(|c| c.hpa.is_some()).count();
    let containers: usize = changes.iter().map(|c| c.containers.len()).sum();
    assert_eq!((hpas, containers), (n / 10, n * 5 / 2));

    let mut g = c.benchmark_group("patches");
    g.sample_size(10);
    g.sampling_mode(SamplingMode::Flat);
    g.warm_up_time(Duration::from_secs(1));
    g.measurement_time(Duration::from_secs(5));
    g.throughput(Throughput::Elements(n as u64));
    for (name, format) in [
        ("strategic", PatchFormat::Strategic),
        ("json6902", PatchFormat::Json6902),
    ] {
        // Both formats write a file per workload, one per HPA, one kustomization per namespace
        // and the top one, and skip nothing: checked once, outside the measurement.
        let out = TempDir::new().expect("temp dir");
        let report = write_patches(out.path(), &changes, format, &current).expect("write patches");
        let namespaces = n.div_ceil(PER_NAMESPACE);
        assert_eq!(report.files.len(), n + hpas + namespaces + 1, "{name}: files written");
        assert!(
            report.skipped.is_empty(),
            "{name}: skipped {:?}",
            report.skipped.first()
        );
        g.bench_function(format!("{name}_write"), |b| {
            b.iter_batched(
                || TempDir::new().expect("temp dir"),
                // The directory is returned, so it is deleted outside the measurement.
                |dir| {
                    (
                        write_patches(dir.path(), &changes, format, &current).expect("write patches"),
                        dir,
                    )
                },
                BatchSize::PerIteration,
            )
        });
        g.bench_function(format!("{name}_rewrite_unchanged"), |b| {
            b.iter(|| black_box(write_patches(out.path(), &changes, format, &current).expect("write patches")))
        });
        g.bench_function(format!("{name}_in_memory"), |b| {
            b.iter(|| black_box(patches_in_memory(&changes, format, &current)))
        });
    }
    g.finish();

    let files = manifests(&workloads);
    // The edit finds every workload and HPA, rewrites every file and reports nothing: checked
    // once, outside the measurement, so the benchmark cannot time a no-op.
    let dir = manifest_dir(&files);
    let report = edit_manifests(dir.path(), &changes).expect("edit manifests");
    assert!(report.problems.is_empty(), "problem: {:?}", report.problems.first());
    assert!(
        report.not_found.is_empty() && report.unparsable.is_empty(),
        "not found {:?}, unparsable {:?}",
        report.not_found.first(),
        report.unparsable.first()
    );
    assert_eq!(report.files_changed.len(), files.len());
    assert_eq!(report.edited.len(), n + hpas);
    // svc-00000's new app request and HPA target are in, the comments still there.
    let text = std::fs::read_to_string(dir.path().join(&files[0].0)).expect("read edited manifest");
    for want in [
        "cpu: 120m",
        "averageUtilization: 60",
        "# p95 of last quarter",
        "# a native sidecar",
    ] {
        assert!(
            text.contains(want),
            "{want:?} not in the edited {}",
            files[0].0.display()
        );
    }
    drop(dir);

    let mut g = c.benchmark_group("manifests");
    g.sample_size(10);
    g.sampling_mode(SamplingMode::Flat);
    g.warm_up_time(Duration::from_secs(1));
    g.measurement_time(Duration::from_secs(5));
    g.throughput(Throughput::Elements(n as u64));
    g.bench_function("edit", |b| {
        b.iter_batched(
            || manifest_dir(&files),
            // The directory is returned, so it is deleted outside the measurement.
            |dir| (edit_manifests(dir.path(), &changes).expect("edit manifests"), dir),
            BatchSize::PerIteration,
        )
    });
    // No changes: only reading and parsing every file, the floor of the edit.
    let dir = manifest_dir(&files);
    g.bench_function("read_and_parse_only", |b| {
        b.iter(|| black_box(edit_manifests(dir.path(), &[]).expect("read manifests")))
    });
    g.finish();
}

criterion_group!(group, benches);
criterion_main!(group);
