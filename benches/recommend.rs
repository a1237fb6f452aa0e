//! Summarize + recommend throughput: pooling samples into sketches, and the default strategy
//! over 100,000 containers (DESIGN.md: at least 100,000 containers per second).

use std::hint::black_box;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use rightsizer::model::{
    ContainerKey, ContainerRole, ContainerSpec, ContainerUsage, Resources, Sketch, UsageSet, Workload, WorkloadKey,
    WorkloadKind,
};
use rightsizer::recommend::{Policy, recommend};

const CONTAINERS: usize = 100_000;
/// Two weeks of 5-minute points from one pod.
const POINTS: usize = 4_032;

fn cpu(i: usize, j: usize) -> f64 {
    let x = ((i * 7919 + j * 104_729) % 10_007) as f64 / 10_007.0;
    0.02 + 0.3 * x * x
}

fn cluster() -> (Vec<Workload>, UsageSet) {
    let mut workloads = Vec::with_capacity(CONTAINERS);
    let mut usage = UsageSet::default();
    for i in 0..CONTAINERS {
        let key = WorkloadKey::new(format!("ns-{}", i % 50), WorkloadKind::Deployment, format!("w-{i}"));
        let mut u = ContainerUsage::default();
        for j in 0..200 {
            u.cpu.add(cpu(i, j));
        }
        u.observe_memory(1e8 + i as f64);
        u.saw(0);
        u.saw(14 * 86_400);
        u.pods = 3;
        usage.containers.insert(ContainerKey::new(key.clone(), "app"), u);
        workloads.push(Workload {
            key,
            replicas: Some(3),
            containers: vec![ContainerSpec {
                name: "app".into(),
                role: ContainerRole::App,
                resources: Resources::default(),
            }],
            hpa: None,
            labels: Default::default(),
            annotations: Default::default(),
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
    g.finish();
}

criterion_group!(group, benches);
criterion_main!(group);
