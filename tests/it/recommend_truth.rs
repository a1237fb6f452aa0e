//! The default strategy against ground truth: the demo cluster's history (14 days, every
//! pattern of `rightsizer_synth`), summarized as `rightsizer snapshot` would, recommended with the
//! default policy, and every value checked against what the raw samples say, within the
//! documented error: the sketch's 1 % on CPU percentiles, the 5m / 1 MiB rounding steps,
//! and the confidence margin the recommendation reports.
//!
//! `Cluster::usage` may not fill every usage field yet (OOM kills, daily peaks,
//! workload-level history are being added to it); where a field is empty the test fills it
//! from the ground truth, so the rules are checked either way.

use rightsizer::collect::objects;
use rightsizer::model::{ContainerRole, SKETCH_ALPHA, WorkloadKind};
use rightsizer::recommend::{Policy, QosClass, Report, Rules, recommend};
use rightsizer_synth::export::objects_of;
use rightsizer_synth::{self as synth, Cluster, ClusterSpec};

const END: i64 = 1_793_491_200;
const MIB: f64 = 1024.0 * 1024.0;

fn round_up(v: f64, step: f64) -> f64 {
    (v / step - 1e-9).ceil() * step
}

fn demo() -> (Cluster, Report) {
    let cluster = synth::generate(ClusterSpec::demo(END, 14 * 86_400));
    let (workloads, warnings) = objects::workloads(&objects_of(&cluster));
    assert!(warnings.is_empty(), "{warnings:?}");
    let mut usage = cluster.usage(300);
    for (key, truth) in &cluster.truth.containers {
        if let Some(u) = usage.containers.get_mut(key)
            && u.oom_kills == 0
        {
            u.oom_kills = truth.oom_kills;
        }
    }
    let report = recommend(&workloads, &usage, &Policy::default());
    (cluster, report)
}

#[test]
fn recommendations_match_the_ground_truth() {
    let (cluster, report) = demo();
    let rules = Rules::default();
    let mut checked = 0;
    for r in report.containers() {
        let truth = &cluster.truth.containers[&r.key];
        if r.skip.is_some() {
            assert_eq!(r.recommended, r.current, "{}: skipped keeps current", r.key);
            assert!(
                truth.cpu_rate_samples < rules.min_samples,
                "{}: skipped ({:?}) with {} samples",
                r.key,
                r.skip,
                truth.cpu_rate_samples
            );
            continue;
        }
        let p95 = r.cpu_percentile.unwrap();
        assert!(
            (p95 - truth.cpu_p95).abs() <= SKETCH_ALPHA * truth.cpu_p95 + 1e-12,
            "{}: p95 {p95} vs truth {}",
            r.key,
            truth.cpu_p95
        );
        assert!((r.memory_peak.unwrap() - truth.memory_peak).abs() <= 1.0, "{}", r.key);
        assert_eq!(r.pods, truth.pods, "{}", r.key);
        let margin = 1.0 + rules.low_confidence_margin * (1.0 - r.confidence);
        let held = |reason: &Option<String>| reason.as_deref().unwrap_or("").contains("within hysteresis");
        let rec = r.recommended;

        // CPU request: truth p95 x confidence margin, floored, rounded up to 5m (within 1 %).
        let clamped_by_hpa = r
            .reasons
            .cpu_request
            .as_deref()
            .unwrap_or("")
            .contains("target clamped");
        // A level shift or a trend sizes from part of the window (tested on its own below).
        let whole_window = r.reasons.cpu_request.as_deref().unwrap_or("").starts_with("p95 of ");
        if held(&r.reasons.cpu_request) {
            assert_eq!(rec.cpu_request, r.current.cpu_request, "{}", r.key);
        } else if !clamped_by_hpa && r.qos != QosClass::Guaranteed && whole_window {
            let want = truth.cpu_p95 * margin;
            let lo = round_up((want * (1.0 - SKETCH_ALPHA)).max(rules.min_cpu), rules.cpu_step);
            let hi = round_up((want * (1.0 + SKETCH_ALPHA)).max(rules.min_cpu), rules.cpu_step);
            let got = rec.cpu_request.unwrap();
            assert!(
                got >= lo - 1e-9 && got <= hi + 1e-9,
                "{}: cpu {got} not in [{lo}, {hi}]: {:?}",
                r.key,
                r.reasons.cpu_request
            );
        }
        // CPU limit only where there is one; then at least the peak rate and the request.
        assert_eq!(rec.cpu_limit.is_some(), r.current.cpu_limit.is_some(), "{}", r.key);
        if let Some(limit) = rec.cpu_limit.filter(|_| !held(&r.reasons.cpu_limit)) {
            assert!(
                limit >= truth.cpu_max * (1.0 - SKETCH_ALPHA),
                "{}: limit {limit}",
                r.key
            );
            assert!(limit >= rec.cpu_request.unwrap(), "{}", r.key);
        }

        // Memory request: truth peak x 1.15 (widened for low confidence only under a day of
        // history), rounded to 1 MiB; the limit after OOM kills at least the limit in force
        // at the kills bumped once by max(x 1.2, + 100 MiB) (the generator's limits never
        // change), else the request.
        let projected = r
            .reasons
            .memory_request
            .as_deref()
            .unwrap_or("")
            .starts_with("working set grows");
        if !held(&r.reasons.memory_request) && !projected {
            let days = r.confidence * rules.full_confidence_days;
            let memory_margin = 1.0 + rules.low_confidence_margin * (1.0 - days.min(1.0));
            let want = (truth.memory_peak * (1.0 + rules.memory_buffer) * memory_margin).max(rules.min_memory);
            if truth.oom_kills > 0 {
                let at = r.current.memory_limit.unwrap();
                let bump = (at * 1.2).max(at + 100.0 * MIB).max(want);
                assert_eq!(rec.memory_limit, Some(round_up(bump, MIB)), "{}", r.key);
            }
            let got = rec.memory_request.unwrap();
            assert!(
                (got - round_up(want, MIB)).abs() <= MIB,
                "{}: memory {got} vs {}: {:?}",
                r.key,
                round_up(want, MIB),
                r.reasons.memory_request
            );
        }
        assert!(rec.memory_limit >= rec.memory_request, "{}", r.key);
        checked += 1;
    }
    assert!(checked >= 12, "only {checked} containers checked");
}

#[test]
fn the_leaking_worker_gets_the_oom_bump() {
    let (cluster, report) = demo();
    let r = report
        .containers()
        .find(|r| r.key.workload.name == "worker")
        .expect("the worker");
    assert!(
        cluster.truth.containers[&r.key].oom_kills > 0,
        "the demo worker leaks into OOM kills"
    );
    assert!(r.oom_kills > 0);
    // Killed at its 512 MiB limit, repeatedly: the limit bumped once to 512 x 1.2 = 614.4
    // MiB (not compounded per kill), the request the peak + 15 % below it.
    assert!(r.oom_kills >= 3, "{}", r.oom_kills);
    let limit = r.recommended.memory_limit.unwrap();
    assert_eq!(limit, round_up(512.0 * 1.2 * MIB, MIB), "{limit}");
    assert!(r.recommended.memory_request.unwrap() < limit, "{:?}", r.recommended);
    let reason = r.reasons.memory_limit.as_deref().unwrap();
    assert!(
        reason.contains("max(the limit in force at the kill 512Mi x 1.2 or + 100Mi = 615Mi"),
        "{reason}"
    );
}

#[test]
fn the_hpa_keeps_its_scale_point_and_replicas_are_explained() {
    let (_, report) = demo();
    let unit = report
        .workloads
        .iter()
        .find(|w| w.key.name == "api" && w.key.kind == WorkloadKind::Deployment)
        .expect("shop/api");
    let hpa = unit.hpa.as_ref().expect("api has an HPA recommendation");
    let t = &hpa.targets[0];
    assert_eq!((t.resource.as_str(), t.current_percent), ("cpu", 70));
    let total = |f: fn(&rightsizer::model::Resources) -> Option<f64>| -> f64 {
        unit.containers
            .iter()
            .filter(|c| c.role != ContainerRole::Init)
            .map(|c| f(&c.recommended).unwrap())
            .sum()
    };
    let r_new = total(|r| r.cpu_request);
    let r_old: f64 = unit.containers.iter().map(|c| c.current.cpu_request.unwrap()).sum();
    let kept = f64::from(t.recommended_percent) * r_new;
    assert!(
        (kept - 70.0 * r_old).abs() <= 0.5 * r_new + f64::from(t.recommended_percent) * 0.005 + 1e-9,
        "{t:?}: {kept} vs {}",
        70.0 * r_old
    );
    assert!((50..=90).contains(&t.recommended_percent));
    assert!(!hpa.reasons.is_empty(), "replica bounds are explained");
    assert!(hpa.min_replicas <= hpa.max_replicas && hpa.min_replicas >= 1);
}

#[test]
fn the_table_is_sorted_by_savings_with_totals() {
    let (_, report) = demo();
    let mut out = Vec::new();
    rightsizer::emit::table::write(&report, &mut out).unwrap();
    let text = String::from_utf8(out).unwrap();
    let header = text.lines().next().unwrap();
    for column in [
        "CPU REQUEST",
        "CPU LIMIT",
        "MEMORY REQUEST",
        "DELTA",
        "CONFIDENCE",
        "SAVINGS/MO",
    ] {
        assert!(header.contains(column), "{header}");
    }
    let savings: Vec<f64> = text
        .lines()
        .skip(1)
        .take_while(|l| !l.is_empty())
        .map(|l| {
            let cell = l
                .split_whitespace()
                .find(|c| c.starts_with('$') || c.starts_with("-$"))
                .unwrap();
            cell.replace('$', "").parse::<f64>().unwrap()
        })
        .collect();
    assert_eq!(savings.len(), report.totals.containers);
    assert!(savings.windows(2).all(|w| w[0] >= w[1]), "{text}");
    // cart requests 2 cores / 4 GiB and uses a few percent: the biggest saving.
    assert!(text.lines().nth(1).unwrap().contains("Deployment/cart"), "{text}");
    assert!(text.contains("monthly savings $"), "{text}");
    assert!(report.totals.monthly_savings > 0.0);
}

/// Share of held-out 5-minute pod intervals whose CPU rate exceeded the request, per
/// workload name, read back from Prometheus.
async fn shortfall(
    prom: &rightsizer::collect::prometheus::PromClient,
    (start, end): (i64, i64),
    requests: &std::collections::BTreeMap<String, f64>,
) -> std::collections::BTreeMap<String, f64> {
    let series = prom
        .query_range(
            r#"rate(container_cpu_usage_seconds_total{namespace="apps",container="app"}[5m])"#,
            start + 300,
            end,
            300,
        )
        .await
        .unwrap();
    let mut counts: std::collections::BTreeMap<String, (u64, u64)> = Default::default();
    for s in series {
        let pod = s.labels.get("pod").cloned().unwrap_or_default();
        let Some((name, request)) = requests.iter().find(|(name, _)| pod.starts_with(&format!("{name}-"))) else {
            continue;
        };
        let c = counts.entry(name.clone()).or_default();
        for (_, v) in s.values {
            c.0 += u64::from(v > *request);
            c.1 += 1;
        }
    }
    counts
        .into_iter()
        .map(|(name, (over, all))| (name, over as f64 / all.max(1) as f64))
        .collect()
}

/// End to end on generated history with a release that doubled usage 2 days before the end
/// of training and with 3 %/day growth, against the real Prometheus: the request follows
/// the recent level, and the held-out week (7 days after training) is short of CPU far less
/// often than with the whole-window p95 (`detectChanges: false`, the behaviour before).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_request_follows_a_level_shift_and_growth_on_held_out_history() {
    use rightsizer::collect::history::{self, Window};
    use rightsizer::collect::prometheus::{PromClient, PromConfig};
    use rightsizer_synth::{ContainerProfile, DAY, MI, WorkloadSpec};

    use crate::support::servers::{Prometheus, backfilled_tsdb};

    let hold = 7 * DAY;
    let train_end = END - hold;
    let w = |name: &str| {
        WorkloadSpec::new("apps", WorkloadKind::Deployment, name, 2, END)
            .cycles(0.5, 1.0, 0)
            .with(ContainerProfile::new("app", 0.2, 512.0 * MI).usage(0.2, 200.0 * MI))
    };
    let spec = ClusterSpec {
        seed: 12,
        end: END,
        duration: 21 * DAY,
        step: 60,
        nodes: 2,
        workloads: vec![
            w("release").shift_at(train_end - 2 * DAY, 2.0),
            w("growing").growth(0.03, train_end),
            w("steady"),
        ],
    };
    let cluster = synth::generate(spec);
    let tsdb = backfilled_tsdb(&cluster);
    let server = Prometheus::start(Some(&tsdb), &[]);
    let prom = PromClient::new(&PromConfig::new(server.url.parse().unwrap())).unwrap();
    let window = Window {
        end: train_end,
        length: 14 * DAY,
        step: 300,
    };
    let owners = history::fetch_owners(&prom, &window).await.unwrap();
    let usage = history::fetch_usage(&prom, &window, &owners).await.unwrap();
    let (workloads, _) = objects::workloads(&objects_of(&cluster));

    let mut before_policy = Policy::default();
    before_policy.defaults.detect_changes = false;
    let requests = |policy: &Policy| -> std::collections::BTreeMap<String, f64> {
        recommend(&workloads, &usage, policy)
            .containers()
            .filter(|r| r.key.workload.namespace == "apps")
            .map(|r| (r.key.workload.name.clone(), r.recommended.cpu_request.unwrap()))
            .collect()
    };
    let (before, after) = (requests(&before_policy), requests(&Policy::default()));
    let report = recommend(&workloads, &usage, &Policy::default());
    let reason = |name: &str| {
        report
            .containers()
            .find(|r| r.key.workload.name == name)
            .and_then(|r| r.reasons.cpu_request.clone())
            .unwrap()
    };
    assert!(reason("release").starts_with("usage rose x"), "{}", reason("release"));
    assert!(
        reason("release").contains("p95 of the 2 days since"),
        "{}",
        reason("release")
    );
    assert!(reason("growing").starts_with("usage grows "), "{}", reason("growing"));
    assert!(reason("steady").starts_with("p95 of "), "{}", reason("steady"));
    // The release's request is the new level's p95, above the window's.
    assert!(after["release"] > 1.15 * before["release"], "{before:?} -> {after:?}");

    let short_before = shortfall(&prom, (train_end, END), &before).await;
    let short_after = shortfall(&prom, (train_end, END), &after).await;
    eprintln!("held-out CPU shortfall (share of 5-minute pod intervals over the request):");
    for name in ["release", "growing", "steady"] {
        eprintln!(
            "  {name:8} request {:.3} -> {:.3} cores, shortfall {:.1} % -> {:.1} %",
            before[name],
            after[name],
            short_before[name] * 100.0,
            short_after[name] * 100.0
        );
    }
    for name in ["release", "growing"] {
        assert!(short_before[name] > 0.2, "{name}: {short_before:?}");
        assert!(short_after[name] <= 0.08, "{name}: {short_after:?}");
    }
    assert_eq!(before["steady"], after["steady"]);
}

/// The new per-container history from the real Prometheus: per-day CPU sketches that pool to
/// the window's sketch and match the generator's days, the limits in force at OOM kills and
/// throttling (kube-state-metrics), and the 2-minute CPU peak, the same by remote read and by
/// PromQL (its subquery).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_collector_fills_daily_cpu_limits_at_events_and_short_peaks() {
    use rightsizer::collect::history::{self, Window};
    use rightsizer::collect::prometheus::{PromClient, PromConfig};

    use crate::support::servers::{DEMO_DAYS, DEMO_END, Prometheus, demo_history};

    let (cluster, tsdb) = demo_history();
    let server = Prometheus::start(Some(tsdb), &[]);
    let window = Window {
        end: DEMO_END,
        length: DEMO_DAYS * 86_400,
        step: 300,
    };
    let mut usages = Vec::new();
    for remote_read in [true, false] {
        let mut cfg = PromConfig::new(server.url.parse().unwrap());
        cfg.remote_read = remote_read;
        let prom = PromClient::new(&cfg).unwrap();
        let owners = history::fetch_owners(&prom, &window).await.unwrap();
        usages.push(history::fetch_usage(&prom, &window, &owners).await.unwrap());
    }
    let truth = cluster.usage(300);
    let mut short = 0;
    for (key, u) in &usages[0].containers {
        let mut pooled = rightsizer::model::Sketch::new();
        for day in u.cpu_days.values() {
            pooled.merge(day);
        }
        assert_eq!(pooled, u.cpu, "{key}: the days pool to the window");
        let p = &usages[1].containers[key];
        assert_eq!(u.cpu_days, p.cpu_days, "{key}: remote read and PromQL days");
        assert_eq!(
            (u.oom_limit, u.throttled_limit),
            (p.oom_limit, p.throttled_limit),
            "{key}"
        );
        if let Some(t) = truth.containers.get(key) {
            let days = |x: &rightsizer::model::ContainerUsage| -> Vec<(i64, u64)> {
                x.cpu_days.iter().map(|(&d, s)| (d, s.count())).collect()
            };
            assert_eq!(days(u), days(t), "{key}: days and their point counts");
            assert_eq!(u.oom_limit, t.oom_limit, "{key}: limit at the kills");
            assert_eq!(u.throttled_limit, t.throttled_limit, "{key}: cpu limit");
        }
        match (u.cpu_short_peak, p.cpu_short_peak) {
            (Some(a), Some(b)) => {
                assert!((a - b).abs() <= 1e-9 * a.max(1.0), "{key}: 2-minute peak {a} vs {b}");
                // Two minutes see at least what five minutes see, give or take the edges.
                assert!(a >= u.cpu.max().unwrap() * 0.95, "{key}: {a} vs {:?}", u.cpu.max());
                short += 1;
            }
            (a, b) => assert_eq!(a.is_some(), b.is_some(), "{key}"),
        }
    }
    assert!(short >= 10, "{short} containers with a 2-minute peak");
    let worker = usages[0]
        .containers
        .iter()
        .find(|(k, _)| k.workload.name == "worker")
        .unwrap()
        .1;
    assert_eq!(
        worker.oom_limit,
        Some(512.0 * MIB),
        "the worker was killed at its 512 MiB limit"
    );
}
