//! The per-container rules: percentiles, buffers, limits, OOM bump, throttling, confidence,
//! floors, caps, rounding, hysteresis, QoS, skips, savings and reasons.

use super::*;
use crate::model::DecayingSketch;
use crate::recommend::{MemoryMode, QosClass, Skip, monthly_cost};

/// Expected values: CPU as the raw figure before rounding (compared with `near`), memory
/// exactly.
struct Want {
    cpu: Option<f64>,
    cpu_limit: Option<f64>,
    memory: Option<f64>,
    memory_limit: Option<f64>,
}

fn want(cpu: f64, cpu_limit: Option<f64>, memory_mib: f64) -> Want {
    Want {
        cpu: Some(cpu),
        cpu_limit,
        memory: mib(memory_mib),
        memory_limit: mib(memory_mib),
    }
}

/// After an OOM kill: the request from the peak, the limit bumped.
fn want_oom(memory_mib: f64, limit_mib: f64) -> Want {
    Want {
        memory_limit: mib(limit_mib),
        ..want(0.2, None, memory_mib)
    }
}

#[test]
fn values_follow_the_rules() {
    let low_confidence = 1.0 + 0.25 * (1.0 - 1.0 / 7.0);
    let cases = [
        ("p95 cpu, peak memory + 15 %", Case::test(), want(0.2, None, 345.0)),
        (
            "floors of 10m and 16 MiB",
            Case::test().cpu_p95(0.001).memory_peak_mib(1.0),
            want(0.010, None, 16.0),
        ),
        (
            "an existing cpu limit: max(p99 x 1.25, peak)",
            Case::test().limits(Some(1.0), None),
            want(0.2, Some(0.2 * 1.3 * 1.25), 345.0),
        ),
        (
            "throttled today: limit >= current x (1 + throttled share)",
            Case::test()
                .cpu_p95(0.19)
                .cpu_tail(1.05)
                .limits(Some(0.2), None)
                .throttled(0.35),
            want(0.19, Some(0.27), 345.0),
        ),
        (
            "OOM: request peak + 15 %, limit at the kill x 1.2",
            Case::test()
                .limits(None, Some(512.0))
                .memory_peak_mib(500.0)
                .killed_at_limit_mib(512.0)
                .oom_killed(1),
            want_oom(575.0, 615.0),
        ),
        (
            "OOM three times at one limit: bumped once",
            Case::test()
                .limits(None, Some(512.0))
                .memory_peak_mib(500.0)
                .killed_at_limit_mib(512.0)
                .oom_killed(3),
            want_oom(575.0, 615.0),
        ),
        (
            "OOM: limit + 100 MiB when larger",
            Case::test()
                .requests(Some(0.5), Some(150.0))
                .limits(None, Some(200.0))
                .memory_peak_mib(190.0)
                .killed_at_limit_mib(200.0)
                .oom_killed(1),
            want_oom(218.0, 300.0),
        ),
        (
            "OOM: the limit at the kill, not today's (raised since)",
            Case::test()
                .requests(Some(0.5), Some(900.0))
                .limits(None, Some(900.0))
                .memory_peak_mib(190.0)
                .killed_at_limit_mib(200.0)
                .oom_killed(1),
            want_oom(218.0, 300.0),
        ),
        (
            "OOM without limit history bumps from the peak working set",
            Case::test()
                .requests(Some(0.5), Some(256.0))
                .memory_peak_mib(250.0)
                .oom_killed(1),
            want_oom(287.0, 350.0),
        ),
        (
            "daily-peaks mode: p90 of daily peaks + 15 %",
            Case::test()
                .daily_peaks_mib(&[100.0, 200.0, 300.0, 400.0, 500.0, 600.0, 700.0, 800.0, 900.0, 1000.0])
                .policy(|p| p.defaults.memory_mode = MemoryMode::DailyPeaks),
            want(0.2, None, 1035.0),
        ),
        (
            "one day of history widens CPU by 1 + 0.25 x 6/7, memory not (a day holds its peak)",
            Case::test().history_days(1.0),
            want(0.2 * low_confidence, None, 345.0),
        ),
        (
            "max-memory annotation caps",
            Case::test().annotated("rightsizer.dev/max-memory", "256Mi"),
            want(0.2, None, 256.0),
        ),
        (
            "min-cpu annotation raises the floor",
            Case::test().annotated("rightsizer.dev/min-cpu", "300m"),
            want(0.3, None, 345.0),
        ),
        (
            "cpu-percentile annotation",
            Case::test().annotated("rightsizer.dev/cpu-percentile", "p99"),
            want(0.26, None, 345.0),
        ),
        (
            "memory-buffer annotation",
            Case::test().annotated("rightsizer.dev/memory-buffer", "30%"),
            want(0.2, None, 390.0),
        ),
        (
            "cpu-limit: always",
            Case::test().annotated("rightsizer.dev/cpu-limit", "always"),
            want(0.2, Some(0.325), 345.0),
        ),
        (
            "cpu-limit: remove",
            Case::test()
                .limits(Some(1.0), None)
                .annotated("rightsizer.dev/cpu-limit", "remove"),
            want(0.2, None, 345.0),
        ),
        (
            "Guaranteed stays Guaranteed, the request sized as a limit",
            Case::test().guaranteed(),
            want(0.325, Some(0.325), 345.0),
        ),
    ];
    for (name, case, w) in cases {
        let r = case.app();
        assert_eq!(r.skip, None, "{name}");
        let got = r.recommended;
        assert!(near(got.cpu_request, w.cpu.unwrap(), 0.005), "{name}: cpu {got:?}");
        match w.cpu_limit {
            Some(l) => assert!(near(got.cpu_limit, l, 0.005), "{name}: cpu limit {got:?}"),
            None => assert_eq!(got.cpu_limit, None, "{name}"),
        }
        assert_eq!(
            got.memory_request, w.memory,
            "{name}: memory {:?}",
            r.reasons.memory_request
        );
        assert_eq!(got.memory_limit, w.memory_limit, "{name}: memory limit");
    }
}

#[test]
fn every_value_carries_its_reason() {
    let r = Case::test()
        .limits(Some(1.0), None)
        .killed_at_limit_mib(512.0)
        .oom_killed(2)
        .app();
    let cpu = r.reasons.cpu_request.unwrap();
    assert!(
        cpu.starts_with("p95 of 8,064 samples from 2 pods over 14.0 d = "),
        "{cpu}"
    );
    assert!(
        cpu.contains(", +0 %, rounded to 200m") || cpu.contains("rounded to 205m"),
        "{cpu}"
    );
    let memory = r.reasons.memory_request.unwrap();
    assert!(
        memory.starts_with("peak working set over 14.0 d = 300Mi, +15 %"),
        "{memory}"
    );
    assert!(!memory.contains("OOMKilled"), "the request is not bumped: {memory}");
    let limit = r.reasons.memory_limit.unwrap();
    assert!(
        limit.starts_with("OOMKilled 2 times in the window: max(the limit in force at the kill 512Mi x 1.2 or + 100Mi = 615Mi, the peak 300Mi +15 % = 345Mi), rounded to 615Mi"),
        "{limit}"
    );
    assert!(r.reasons.cpu_limit.unwrap().starts_with("max(p99 "));
    assert!(r.notes.iter().any(|n| n.contains("OOMKilled 2 times")));
}

#[test]
fn hysteresis_holds_small_changes_and_says_so() {
    let cases = [
        // (name, case, held cpu, held memory)
        ("under 10 %", Case::test().requests(Some(0.21), Some(340.0)), true, true),
        (
            "over 10 %",
            Case::test().requests(Some(0.25), Some(400.0)),
            false,
            false,
        ),
        (
            "under the absolute cpu step",
            Case::test()
                .cpu_p95(0.112)
                .requests(Some(0.1), Some(512.0))
                .policy(|p| p.defaults.hysteresis_cpu = 0.02),
            true,
            false,
        ),
        (
            "a current value below the floor is never held",
            Case::test().cpu_p95(0.001).requests(Some(0.005), Some(512.0)),
            false,
            false,
        ),
    ];
    for (name, case, cpu_held, memory_held) in cases {
        let r = case.app();
        let (cur, rec) = (r.current, r.recommended);
        assert_eq!(rec.cpu_request == cur.cpu_request, cpu_held, "{name}: {rec:?}");
        assert_eq!(rec.memory_request == cur.memory_request, memory_held, "{name}: {rec:?}");
        let says = |s: &Option<String>| s.as_deref().unwrap().contains("within hysteresis");
        assert_eq!(
            says(&r.reasons.cpu_request),
            cpu_held,
            "{name}: {:?}",
            r.reasons.cpu_request
        );
        assert_eq!(says(&r.reasons.memory_request), memory_held, "{name}");
    }
}

#[test]
fn throttling_is_flagged_only_above_the_target() {
    for (ratio, flagged) in [(0.01, false), (0.05, false), (0.06, true), (0.5, true)] {
        let r = Case::test().limits(Some(0.3), None).throttled(ratio).app();
        assert_eq!(r.throttled, flagged, "{ratio}");
        assert_eq!(r.throttling_ratio, Some(ratio));
    }
}

#[test]
fn too_little_data_gives_no_recommendation_and_says_why() {
    let cases = [
        (
            Case::test().samples(99),
            Skip::TooFewSamples {
                samples: 99,
                needed: 100,
            },
        ),
        (Case::test().samples(0), Skip::NoHistory),
        (
            Case::test().policy(|p| p.defaults.min_history_seconds = 15 * DAY),
            Skip::TooShortHistory {
                seconds: 14 * DAY,
                needed: 15 * DAY,
            },
        ),
        (
            Case::test().annotated("rightsizer.dev/ignore", "true"),
            Skip::Ignored {
                by: "annotation rightsizer.dev/ignore".into(),
            },
        ),
    ];
    for (case, skip) in cases {
        let r = case.app();
        assert_eq!(r.skip.as_ref(), Some(&skip));
        assert_eq!(r.recommended, r.current, "{skip}");
        assert!(!r.changed());
    }
    assert!(
        Skip::TooFewSamples {
            samples: 5,
            needed: 100
        }
        .to_string()
        .contains("only 5 CPU samples")
    );
}

#[test]
fn each_container_is_sized_on_its_own_usage() {
    let unit = Case::test()
        .container("envoy", ContainerRole::Sidecar, 0.05, 60.0)
        .container("migrate", ContainerRole::Init, 0.15, 40.0)
        .container_without_usage("debug")
        .run();
    let by = |n: &str| unit.containers.iter().find(|c| c.key.container == n).unwrap();
    assert!(near(by("app").recommended.cpu_request, 0.2, 0.005));
    assert!(near(by("envoy").recommended.cpu_request, 0.05, 0.005));
    assert_eq!(by("envoy").role, ContainerRole::Sidecar);
    assert!(near(by("migrate").recommended.cpu_request, 0.15, 0.005));
    assert_eq!(by("migrate").recommended.memory_request, mib(46.0));
    assert_eq!(by("migrate").monthly_savings, 0.0, "init containers count no savings");
    assert_eq!(by("debug").skip, Some(Skip::NoHistory));
    assert_eq!(by("debug").recommended, by("debug").current);
}

#[test]
fn qos_class_is_reported() {
    let cases = [
        (Case::test(), QosClass::Burstable, QosClass::Burstable),
        (Case::test().guaranteed(), QosClass::Guaranteed, QosClass::Guaranteed),
        (
            Case::test().guaranteed().policy(|p| p.defaults.keep_guaranteed = false),
            QosClass::Guaranteed,
            QosClass::Burstable,
        ),
        (
            Case::test().requests(None, None),
            QosClass::BestEffort,
            QosClass::Burstable,
        ),
    ];
    for (i, (case, before, after)) in cases.into_iter().enumerate() {
        let unit = case.run();
        assert_eq!((unit.current_qos, unit.qos), (before, after), "case {i}");
        assert!(unit.containers.iter().all(|c| c.qos == after));
    }
}

#[test]
fn savings_use_prices_and_replicas() {
    let unit = Case::test().run();
    let r = &unit.containers[0];
    let p = &Case::test().policy.prices;
    let want = monthly_cost(&r.current, 2.0, p) - monthly_cost(&r.recommended, 2.0, p);
    assert!((r.monthly_savings - want).abs() < 1e-9);
    assert!(r.monthly_savings > 0.0);
    assert_eq!(unit.monthly_savings, r.monthly_savings);
    // Average replicas from usage win over the spec.
    let avg = Case::test().total_cpu(0.1, 1.0, 5.0).run();
    assert!((avg.replicas - 5.0).abs() <= 5.0 * SKETCH_ALPHA, "{}", avg.replicas);
}

#[test]
fn minimum_savings_gate_blocks_only_small_cuts() {
    let gated = Case::test().policy(|p| p.min_monthly_savings = 1000.0).run();
    assert!(!gated.changed());
    assert!(
        gated.notes.iter().any(|n| n.contains("under the minimum")),
        "{:?}",
        gated.notes
    );
    // An increase (OOM kills) is about reliability: never gated.
    let oom = Case::test()
        .limits(None, Some(512.0))
        .killed_at_limit_mib(512.0)
        .oom_killed(1)
        .policy(|p| p.min_monthly_savings = 1000.0)
        .run();
    assert!(oom.changed());
}

#[test]
fn recency_weighting_uses_the_per_day_history() {
    // Twelve days at 400m, the last two at 100m (no shift detection: only weighting).
    let mut levels = vec![0.4; 12];
    levels.extend([0.1, 0.1]);
    let case = Case::test().cpu_days(&levels).policy(|p| {
        p.defaults.recency_half_life_hours = Some(24.0);
        p.defaults.detect_changes = false;
    });
    let u = case.usage_set().containers.into_values().next().unwrap();
    let d = DecayingSketch::from_days(86_400.0, u.cpu_days.iter().map(|(&d, s)| (d, s)));
    let r = case.app();
    assert!(
        near(r.recommended.cpu_request, d.quantile(0.95).unwrap(), 0.005),
        "{r:?}"
    );
    let weighted = r.recommended.cpu_request.unwrap();
    assert!(weighted < 0.4 * 1.3, "{weighted}");
    assert!(
        r.reasons
            .cpu_request
            .unwrap()
            .starts_with("recency-weighted p95 (half-life 24 h)")
    );
    // Asked for without per-day history: unweighted, and a note says so.
    let r = Case::test()
        .policy(|p| p.defaults.recency_half_life_hours = Some(24.0))
        .app();
    assert!(near(r.recommended.cpu_request, 0.2, 0.005));
    assert!(r.notes.iter().any(|n| n.contains("no per-day history")));
}
