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
        if held(&r.reasons.cpu_request) {
            assert_eq!(rec.cpu_request, r.current.cpu_request, "{}", r.key);
        } else if !clamped_by_hpa && r.qos != QosClass::Guaranteed {
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

        // Memory request = limit: truth peak x 1.15 x margin, rounded up to 1 MiB, and after
        // OOM kills at least max(limit x 1.2, limit + 100 MiB).
        if !held(&r.reasons.memory_request) {
            let mut want = (truth.memory_peak * (1.0 + rules.memory_buffer) * margin).max(rules.min_memory);
            if truth.oom_kills > 0 {
                let prev = r.current.memory_limit.or(r.current.memory_request).unwrap();
                want = want.max(prev * 1.2).max(prev + 100.0 * MIB);
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
    // Limit 512 MiB: max(512 x 1.2, 512 + 100) = 614.4 MiB -> at least 615 MiB.
    let memory = r.recommended.memory_request.unwrap();
    assert!(memory >= 615.0 * MIB, "{memory}");
    assert_eq!(r.recommended.memory_limit, r.recommended.memory_request);
    let reason = r.reasons.memory_request.as_deref().unwrap();
    assert!(
        reason.contains("OOMKilled") && reason.contains("512Mi x 1.2"),
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
