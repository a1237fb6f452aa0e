//! Summarize + recommend throughput (DESIGN.md: at least 100,000 containers per second):
//! pooling samples into sketches, the full default strategy (policy layers, confidence,
//! limits, OOM bump, hysteresis, HPA co-recommendation, savings, reasons) over 100,000
//! containers, and both together.

use std::hint::black_box;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use rightsizer::model::{
    ContainerKey, ContainerRole, ContainerSpec, ContainerUsage, Hpa, HpaMetric, Resources, Sketch, UsageSet, Workload,
    WorkloadKey, WorkloadKind, WorkloadUsage,
};
use rightsizer::recommend::{Policy, recommend};

const CONTAINERS: usize = 100_000;
/// Two weeks of 5-minute points from one pod.
const POINTS: usize = 4_032;
/// Points pooled per container in the cluster benchmarks (kept small so building the
/// cluster does not dominate the run).
const CLUSTER_POINTS: usize = 200;
const MIB: f64 = 1024.0 * 1024.0;

fn cpu(i: usize, j: usize) -> f64 {
    let x = ((i * 7919 + j * 104_729) % 10_007) as f64 / 10_007.0;
    0.02 + 0.3 * x * x
}

/// One container's usage, as summarize builds it.
fn summarize(i: usize) -> ContainerUsage {
    let mut u = ContainerUsage::default();
    for j in 0..CLUSTER_POINTS {
        u.cpu.add(cpu(i, j));
    }
    for d in 0..14 {
        u.observe_daily_peak(d * 86_400, 1e8 + (i * 31 + d as usize * 7) as f64);
    }
    u.saw(0);
    u.saw(14 * 86_400);
    u.pods = 3;
    u.oom_kills = u32::from(i.is_multiple_of(50));
    if i.is_multiple_of(7) {
        u.cfs_periods = 1e6;
        u.cfs_throttled_periods = (i % 13) as f64 * 1e4;
    }
    u
}

/// A varied cluster: every 7th container has limits, every 10th workload an HPA with
/// workload history, every 25th an annotation.
fn cluster() -> (Vec<Workload>, UsageSet) {
    let mut workloads = Vec::with_capacity(CONTAINERS);
    let mut usage = UsageSet {
        step: 300,
        ..UsageSet::default()
    };
    for i in 0..CONTAINERS {
        let key = WorkloadKey::new(format!("ns-{}", i % 50), WorkloadKind::Deployment, format!("w-{i}"));
        usage
            .containers
            .insert(ContainerKey::new(key.clone(), "app"), summarize(i));
        let limited = i.is_multiple_of(7);
        let hpa = i.is_multiple_of(10).then(|| {
            let mut wu = WorkloadUsage::default();
            for j in 0..CLUSTER_POINTS {
                wu.total_cpu.add(3.0 * cpu(i, j));
                wu.replicas.add(3.0);
            }
            usage.workloads.insert(key.clone(), wu);
            Hpa {
                name: format!("w-{i}"),
                min_replicas: 2,
                max_replicas: 10,
                current_replicas: Some(3),
                desired_replicas: Some(3),
                metrics: vec![HpaMetric::Utilization {
                    resource: "cpu".into(),
                    target_percent: 70,
                }],
            }
        });
        let mut annotations = std::collections::BTreeMap::new();
        if i.is_multiple_of(25) {
            annotations.insert("rightsizer.dev/cpu-percentile".to_string(), "0.9".to_string());
        }
        workloads.push(Workload {
            key,
            replicas: Some(3),
            containers: vec![ContainerSpec {
                name: "app".into(),
                role: ContainerRole::App,
                resources: Resources {
                    cpu_request: Some(0.25),
                    cpu_limit: limited.then_some(0.5),
                    memory_request: Some(256.0 * MIB),
                    memory_limit: limited.then_some(256.0 * MIB),
                },
            }],
            hpa,
            labels: Default::default(),
            annotations,
        });
    }
    (workloads, usage)
}

fn benches(c: &mut Criterion) {
    let mut g = c.benchmark_group("summarize");
    g.throughput(Throughput::Elements(POINTS as u64));
    g.bench_function("sketch_add_14d_of_5m_points", |b| {
        b.iter_batched(
            Sketch::new,
            |mut s| {
                for j in 0..POINTS {
                    s.add(cpu(1, j));
                }
                black_box(s)
            },
            BatchSize::SmallInput,
        )
    });
    g.finish();

    let (workloads, usage) = cluster();
    let mut g = c.benchmark_group("recommend");
    g.sample_size(10);
    g.throughput(Throughput::Elements(CONTAINERS as u64));
    g.bench_function("default_strategy_100k_containers", |b| {
        b.iter(|| black_box(recommend(&workloads, &usage, &Policy::default())))
    });
    g.bench_function("summarize_and_recommend_100k_containers", |b| {
        b.iter(|| {
            let mut u = UsageSet {
                step: 300,
                workloads: usage.workloads.clone(),
                ..UsageSet::default()
            };
            for (i, w) in workloads.iter().enumerate() {
                u.containers
                    .insert(ContainerKey::new(w.key.clone(), "app"), summarize(i));
            }
            black_box(recommend(&workloads, &u, &Policy::default()))
        })
    });
    g.finish();
}

criterion_group!(group, benches);
criterion_main!(group);
