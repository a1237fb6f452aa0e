//! Tests of the generator: determinism, OpenMetrics well-formedness, agreement between the
//! objects and the series, and sanity of the ground truth against the demo's patterns.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use super::*;
use rightsizer::model::{ContainerKey, WorkloadKey, WorkloadKind};

/// A Monday noon, so the windows cross a weekend.
const END: i64 = 1_717_416_000;

fn demo(hours: i64) -> Cluster {
    generate(ClusterSpec::demo(END, hours * HOUR))
}

fn text(c: &Cluster) -> (String, WriteStats) {
    let mut buf = Vec::new();
    let stats = c.write_openmetrics(&mut buf).unwrap();
    (String::from_utf8(buf).unwrap(), stats)
}

/// (metric name, labels) of a sample line, plus value and timestamp.
fn parse_line(line: &str) -> (&str, BTreeMap<&str, &str>, f64, i64) {
    let open = line.find('{').unwrap();
    let close = line.rfind('}').unwrap();
    let labels = line[open + 1..close]
        .split("\",")
        .filter(|kv| !kv.is_empty())
        .map(|kv| {
            let (k, v) = kv.split_once("=\"").unwrap();
            (k, v.trim_end_matches('"'))
        })
        .collect();
    let mut rest = line[close + 2..].split(' ');
    let v = rest.next().unwrap().parse().unwrap();
    let t = rest.next().unwrap().parse().unwrap();
    (&line[..open], labels, v, t)
}

#[test]
fn same_seed_same_bytes_other_seed_other_bytes() {
    let a = text(&demo(4));
    let b = text(&demo(4));
    assert_eq!(a.0, b.0);
    assert_eq!(a.1, b.1);
    let mut spec = ClusterSpec::demo(END, 4 * HOUR);
    spec.seed += 1;
    assert_ne!(text(&generate(spec)).0, a.0);
    let g1 = generate(ClusterSpec::generated(40, 7, END, DAY / 2));
    let g2 = generate(ClusterSpec::generated(40, 7, END, DAY / 2));
    assert_eq!(g1.truth, g2.truth);
    assert_eq!(g1.objects, g2.objects);
}

#[test]
fn openmetrics_is_well_formed() {
    let c = demo(6);
    let (s, stats) = text(&c);
    assert!(s.ends_with("# EOF\n"));
    assert_eq!(stats.bytes, s.len() as u64);
    let (mut families, mut series) = (BTreeSet::new(), HashMap::new());
    let mut current = String::new();
    let (mut samples, mut n_series) = (0u64, BTreeSet::new());
    for line in s.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap();
            assert!(kind == "counter" || kind == "gauge");
            assert!(families.insert(name.to_string()), "family {name} twice");
            current = name.to_string();
            continue;
        }
        if line == "# EOF" {
            continue;
        }
        let close = line.rfind('}').unwrap();
        let name = &line[..line.find('{').unwrap()];
        let family = name.strip_suffix("_total").filter(|f| *f == current).unwrap_or(name);
        assert_eq!(family, current, "sample of {name} outside its family");
        let (v, t) = line[close + 2..].split_once(' ').unwrap();
        let (v, t): (f64, i64) = (v.parse().unwrap(), t.parse().unwrap());
        assert!(v.is_finite() && v >= 0.0);
        assert!(
            (END - 6 * HOUR..=END).contains(&t),
            "timestamp {t} is not in seconds in the window"
        );
        assert_eq!((END - t) % 60, 0);
        let key = &line[..close];
        if let Some(prev) = series.insert(key, t) {
            assert!(t > prev, "series {key} out of order");
        }
        assert!(!key.contains("container=\"POD\""));
        n_series.insert(key);
        samples += 1;
    }
    assert_eq!(samples, stats.samples);
    assert_eq!(n_series.len() as u64, stats.series);
    for f in [
        "container_cpu_usage_seconds",
        "container_memory_working_set_bytes",
        "kube_pod_owner",
        "kube_job_owner",
        "kube_horizontalpodautoscaler_spec_target_metric",
        "kube_pod_container_status_last_terminated_reason",
    ] {
        assert!(families.contains(f), "missing family {f}");
    }
}

#[test]
fn objects_agree_with_series() {
    let c = demo(24);
    let (s, _) = text(&c);
    let known: HashMap<String, String> = c
        .all_pods()
        .into_iter()
        .map(|(ns, p, uid, _)| (format!("{ns}/{p}"), uid))
        .collect();
    let live: BTreeSet<String> = c
        .objects
        .pods
        .iter()
        .map(|p| {
            format!(
                "{}/{}",
                p.metadata.namespace.as_deref().unwrap(),
                p.metadata.name.as_deref().unwrap()
            )
        })
        .collect();
    for p in &live {
        assert!(known.contains_key(p), "live pod {p} not in the plan");
    }
    let rs: BTreeMap<String, String> = c
        .objects
        .replica_sets
        .iter()
        .map(|r| {
            let o = &r.metadata.owner_references.as_ref().unwrap()[0];
            assert_eq!(o.controller, Some(true));
            (r.metadata.name.clone().unwrap(), o.name.clone())
        })
        .collect();
    let mut owners_seen = BTreeSet::new();
    let mut job_owner = BTreeMap::new();
    for line in s.lines().filter(|l| l.starts_with("kube_job_owner{")) {
        let (_, l, _, _) = parse_line(line);
        job_owner.insert(l["job_name"].to_string(), l["owner_name"].to_string());
    }
    for line in s.lines().filter(|l| l.starts_with("kube_pod_owner{")) {
        let (_, l, _, _) = parse_line(line);
        let pod = format!("{}/{}", l["namespace"], l["pod"]);
        assert_eq!(
            known.get(&pod).map(String::as_str),
            Some(l["uid"]),
            "pod {pod} unknown or uid differs"
        );
        let top = match l["owner_kind"] {
            "ReplicaSet" => rs
                .get(l["owner_name"])
                .cloned()
                .unwrap_or_else(|| panic!("no ReplicaSet {}", l["owner_name"])),
            "Job" => job_owner
                .get(l["owner_name"])
                .cloned()
                .unwrap_or_else(|| panic!("no Job series {}", l["owner_name"])),
            _ => l["owner_name"].to_string(),
        };
        owners_seen.insert(top);
    }
    for w in &c.spec.workloads {
        assert!(
            owners_seen.contains(&w.name) || w.kind == WorkloadKind::Job,
            "no pod resolves to {}",
            w.name
        );
    }
    // Pods carry their ReplicaSet's hash and the requests of the spec.
    for p in &c.objects.pods {
        let owner = &p.metadata.owner_references.as_ref().unwrap()[0];
        if owner.kind == "ReplicaSet" {
            let hash = &p.metadata.labels.as_ref().unwrap()["pod-template-hash"];
            assert!(owner.name.ends_with(hash.as_str()));
        }
    }
    assert_eq!(
        c.objects.daemon_sets[0]
            .status
            .as_ref()
            .unwrap()
            .desired_number_scheduled,
        c.spec.nodes as i32
    );
    let hpa = &c.objects.hpas[0];
    assert_eq!(hpa.spec.as_ref().unwrap().scale_target_ref.name, "api");
    let metrics_pods: BTreeSet<String> = c
        .objects
        .pod_metrics
        .iter()
        .map(|m| {
            format!(
                "{}/{}",
                m["metadata"]["namespace"].as_str().unwrap(),
                m["metadata"]["name"].as_str().unwrap()
            )
        })
        .collect();
    assert!(metrics_pods.is_subset(&live));
    assert!(
        c.objects
            .replica_sets
            .iter()
            .any(|r| r.spec.as_ref().unwrap().replicas == Some(0)),
        "old ReplicaSets kept with 0 replicas"
    );
    assert!(
        c.objects.jobs.len() >= 4 && c.objects.jobs.len() <= 9,
        "recent Jobs only: {}",
        c.objects.jobs.len()
    );
}

fn key(ns: &str, kind: WorkloadKind, name: &str, container: &str) -> ContainerKey {
    ContainerKey::new(WorkloadKey::new(ns, kind, name), container)
}

#[test]
fn ground_truth_follows_the_patterns() {
    use WorkloadKind::*;
    let c = demo(72);
    let t = &c.truth.containers;
    let worker = &t[&key("shop", Deployment, "worker", "app")];
    assert!(worker.oom_kills > 0, "leaking worker is OOM-killed");
    assert!(worker.memory_peak <= 512.0 * MI);
    let redis = &t[&key("data", StatefulSet, "redis", "redis")];
    assert_eq!(redis.oom_kills, 0);
    let cart = &t[&key("shop", Deployment, "cart", "app")];
    assert!(
        cart.cpu_p95 < 0.2 * cart.requests.cpu_request.unwrap(),
        "cart is over-provisioned"
    );
    let checkout = &t[&key("shop", Deployment, "checkout", "app")];
    assert!(
        checkout.cpu_p95 > checkout.requests.cpu_request.unwrap(),
        "checkout is under-provisioned"
    );
    assert!(checkout.cpu_max <= 0.2 + 1e-9, "usage capped at the CPU limit");
    let web = &t[&key("shop", Deployment, "web", "app")];
    assert!(web.pods >= 9, "two rollouts replaced all 3 pods twice: {}", web.pods);
    assert!(
        web.cpu_p95 > 1.3 * web.cpu_p50,
        "diurnal cycle spreads the distribution"
    );
    let migrate = &t[&key("shop", Deployment, "web", "migrate")];
    assert!(migrate.cpu_rate_samples > 0 && migrate.cpu_rate_samples < 30);
    let api = &t[&key("shop", Deployment, "api", "app")];
    assert!(api.pods > 3, "HPA scaled pods in and out: {}", api.pods);
    let search = &t[&key("shop", Deployment, "search", "app")];
    assert!(
        search.cpu_rate_samples < 2 * 6 * 12 + 1,
        "recent deployment has little history"
    );
    let report = &t[&key("batch", CronJob, "report", "report")];
    assert!(report.pods >= 70, "one pod per hourly run: {}", report.pods);
    // Hot replica: the pooled max is far above the median.
    let pg = &t[&key("data", StatefulSet, "postgres", "postgres")];
    assert!(pg.cpu_max > 2.5 * pg.cpu_p50);
    assert_eq!(t[&key("platform", DaemonSet, "node-agent", "agent")].pods, c.spec.nodes);
    assert!(t.contains_key(&key("batch", Job, "backfill", "backfill")));
}

#[test]
fn truth_matches_rates_recomputed_from_the_text() {
    // Re-derive the pooled p95 of one workload from the OpenMetrics text itself.
    let c = demo(12);
    let (s, _) = text(&c);
    let mut per_series: BTreeMap<String, Vec<(i64, f64)>> = BTreeMap::new();
    for line in s
        .lines()
        .filter(|l| l.starts_with("container_cpu_usage_seconds_total{container=\"app\""))
    {
        let (_, l, v, t) = parse_line(line);
        if l["namespace"] == "shop" && l["pod"].starts_with("worker-") {
            per_series.entry(l["pod"].to_string()).or_default().push((t, v));
        }
    }
    let start = eval_start(c.spec.start(), TRUTH_STEP);
    let mut rates = Vec::new();
    for samples in per_series.values() {
        let mut t = start;
        while t <= c.spec.end {
            let w: Vec<_> = samples
                .iter()
                .copied()
                .filter(|s| s.0 >= t - RATE_RANGE && s.0 <= t)
                .collect();
            rates.extend(extrapolated_rate(&w, t - RATE_RANGE, t));
            t += TRUTH_STEP;
        }
    }
    rates.sort_by(f64::total_cmp);
    let truth = &c.truth.containers[&key("shop", WorkloadKind::Deployment, "worker", "app")];
    assert_eq!(truth.cpu_rate_samples, rates.len() as u64);
    let p95 = rates[((0.95 * rates.len() as f64).ceil() as usize) - 1];
    assert_eq!(truth.cpu_p95, p95);
}

#[test]
fn usage_matches_truth() {
    let c = demo(24);
    let u = c.usage(TRUTH_STEP);
    assert_eq!(u.step, TRUTH_STEP);
    for (k, t) in &c.truth.workloads {
        let Some(wu) = u.workloads.get(k) else {
            assert_eq!((t.steps, t.hpa_seconds), (0, 0), "{k}");
            continue;
        };
        assert_eq!(wu.total_cpu.count(), t.steps, "{k}");
        assert_eq!(
            wu.replicas.max(),
            (t.steps > 0).then_some(f64::from(t.replicas_max)),
            "{k}"
        );
        assert_eq!(
            (wu.hpa_seconds, wu.hpa_at_max_seconds),
            (t.hpa_seconds, t.hpa_at_max_seconds)
        );
    }
    // The HPA of `api` follows a 70 % diurnal swing, so it spends time at both ends.
    let api = &c.truth.workloads[&WorkloadKey::new("shop", WorkloadKind::Deployment, "api")];
    assert!(api.replicas_max > api.replicas_min && api.hpa_seconds > 0, "{api:?}");
    // Every day of the window has a peak; the leaking worker restarts after OOM kills.
    let worker = &c.truth.containers[&key("shop", WorkloadKind::Deployment, "worker", "app")];
    assert_eq!(worker.memory_daily_peaks.len(), 2, "{worker:?}");
    assert!(worker.oom_kills > 0 && worker.restarts >= worker.oom_kills);
    let checkout = &c.truth.containers[&key("shop", WorkloadKind::Deployment, "checkout", "app")];
    assert!(
        checkout.cfs_throttled_periods > 0.05 * checkout.cfs_periods,
        "{checkout:?}"
    );
    for (k, t) in &c.truth.containers {
        let Some(cu) = u.containers.get(k) else {
            assert_eq!(t.pods, 0, "{k} has history but no usage");
            continue;
        };
        assert_eq!(cu.cpu.count(), t.cpu_rate_samples, "{k}");
        assert_eq!(cu.memory_peak, Some(t.memory_peak));
        assert_eq!(cu.pods, t.pods);
        assert_eq!(
            (cu.restarts, cu.oom_kills, cu.last_oom),
            (t.restarts, t.oom_kills, t.last_oom),
            "{k}"
        );
        assert_eq!(cu.memory_daily_peaks, t.memory_daily_peaks, "{k}");
        assert_eq!(
            (cu.cfs_periods, cu.cfs_throttled_periods),
            (t.cfs_periods, t.cfs_throttled_periods)
        );
        if t.cpu_rate_samples > 0 {
            let p95 = cu.cpu.quantile(0.95).unwrap();
            assert!(
                (p95 - t.cpu_p95).abs() <= 0.011 * t.cpu_p95 + 1e-6,
                "{k}: {p95} vs {}",
                t.cpu_p95
            );
        }
    }
}

#[test]
fn generated_cluster_mixes_every_kind() {
    let c = generate(ClusterSpec::generated(60, 3, END, DAY / 4));
    let kinds: BTreeSet<WorkloadKind> = c.spec.workloads.iter().map(|w| w.kind).collect();
    assert!(kinds.len() >= 4, "{kinds:?}");
    assert!(!c.objects.pods.is_empty());
    assert!(c.truth.containers.len() >= 60);
}

/// Manual benchmark and dump: `SYNTH_OUT=/tmp/demo.om cargo test --release --lib
/// synth::tests::dump -- --ignored --nocapture`; `SYNTH_DAYS` (3), `SYNTH_WORKLOADS` (0: the
/// demo cluster, else `generated(n)`), `SYNTH_OBJECTS=file.json` also writes the objects.
#[test]
#[ignore]
fn dump() {
    let days: i64 = std::env::var("SYNTH_DAYS")
        .ok()
        .and_then(|d| d.parse().ok())
        .unwrap_or(3);
    let n: usize = std::env::var("SYNTH_WORKLOADS")
        .ok()
        .and_then(|d| d.parse().ok())
        .unwrap_or(0);
    let spec = if n == 0 {
        ClusterSpec::demo(END, days * DAY)
    } else {
        ClusterSpec::generated(n, 1, END, days * DAY)
    };
    let t0 = std::time::Instant::now();
    let c = generate(spec);
    let gen_time = t0.elapsed();
    println!(
        "generate {gen_time:.2?}: {} containers, {} live pods",
        c.truth.containers.len(),
        c.objects.pods.len()
    );
    if let Ok(path) = std::env::var("SYNTH_OBJECTS") {
        let o = &c.objects;
        let all = serde_json::json!({"namespaces": o.namespaces, "deployments": o.deployments, "replicaSets": o.replica_sets,
            "statefulSets": o.stateful_sets, "daemonSets": o.daemon_sets, "cronJobs": o.cron_jobs, "jobs": o.jobs,
            "pods": o.pods, "hpas": o.hpas, "podMetrics": o.pod_metrics});
        std::fs::write(path, serde_json::to_string_pretty(&all).unwrap()).unwrap();
    }
    let Ok(path) = std::env::var("SYNTH_OUT") else { return };
    let mut f = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
    let t1 = std::time::Instant::now();
    let stats = c.write_openmetrics(&mut f).unwrap();
    let w = t1.elapsed().as_secs_f64();
    println!(
        "generate {:.2?}; wrote {} series, {} samples, {} bytes in {:.2}s ({:.2} M samples/s) to {path}",
        gen_time,
        stats.series,
        stats.samples,
        stats.bytes,
        w,
        stats.samples as f64 / w / 1e6
    );
    if n == 0 {
        for (k, t) in &c.truth.containers {
            println!(
                "truth {k} n={} p95={} p50={} max={} mem={} oom={} pods={}",
                t.cpu_rate_samples, t.cpu_p95, t.cpu_p50, t.cpu_max, t.memory_peak, t.oom_kills, t.pods
            );
        }
    }
}

/// The backtest scenarios generate, and their patterns show in the ground truth: the
/// level-shifted workload uses about twice the CPU after its release, the leak is
/// OOM-killed, the young workload has only its own days.
#[test]
fn scenarios_show_their_patterns() {
    let (end, held_out) = (END, DAY);
    let spec = ClusterSpec::scenarios(end, 6 * DAY, held_out);
    let key = |name: &str, container: &str| {
        ContainerKey::new(WorkloadKey::new("scenarios", WorkloadKind::Deployment, name), container)
    };
    // Same workloads, one day before the shift (as_of - 3 d) and the last day.
    let window = |end: i64| {
        let mut s = spec.clone();
        s.end = end;
        s.duration = DAY;
        s.workloads.retain(|w| w.name == "level-shift");
        generate(s)
    };
    let shift_at = end - held_out - 3 * DAY;
    let before = window(shift_at - HOUR);
    let after = window(end);
    let p50 = |c: &Cluster| c.truth.containers[&key("level-shift", "app")].cpu_p50;
    let ratio = p50(&after) / p50(&before);
    assert!((1.6..2.5).contains(&ratio), "level shift ratio {ratio}");

    let cluster = generate(spec);
    assert_eq!(cluster.objects.deployments.len(), 12);
    let oom = &cluster.truth.containers[&key("repeated-oom", "app")];
    assert!(oom.oom_kills >= 3, "{oom:?}");
    let young = &cluster.truth.containers[&key("young", "app")];
    // Born 3 days before the end of a 6-day window: half the points of a same-sized
    // workload that lived through all of it.
    let old = &cluster.truth.containers[&key("growth", "app")];
    assert!(
        young.cpu_rate_samples > 0 && young.cpu_rate_samples * 2 <= old.cpu_rate_samples,
        "{young:?}"
    );
    assert!(cluster.truth.containers.contains_key(&key("sidecar", "proxy")));
}
