//! Level shifts, trends, anchored bumps, HPA bounds and the fixed point: the rules of issue
//! 12, each through the same `Case` builder as the other rule tests.

use super::*;
use crate::recommend::{Policy, Rules};

#[test]
fn a_level_shift_sizes_from_the_days_since() {
    // 11 days at 200m, then 3 at 400m: the window's p95 is the old level; the request
    // follows the new one, and the reason names the day and the test.
    let mut levels = vec![0.2; 11];
    levels.extend([0.4; 3]);
    let r = Case::test().cpu_days(&levels).app();
    assert!(near(r.recommended.cpu_request, 0.4, 0.005), "{r:?}");
    let why = r.reasons.cpu_request.unwrap();
    assert!(
        why.starts_with("usage rose x2.0")
            && why.contains(" on Oct 29 (daily p95s before and after, Mann-Whitney p < 0.001)"),
        "{why}"
    );
    assert!(why.contains("p95 of the 3 days since (1,728 samples)"), "{why}");
    // A fall: 10 days at 400m, then 4 at 200m. The window's p95 is still the old level
    // (as it is with detection off); the request follows the new one.
    let mut levels = vec![0.4; 10];
    levels.extend([0.2; 4]);
    let r = Case::test().cpu_days(&levels).app();
    assert!(near(r.recommended.cpu_request, 0.2, 0.005), "{r:?}");
    assert!(r.reasons.cpu_request.unwrap().contains("usage fell x0.50 on Oct 28"));
    let off = Case::test()
        .cpu_days(&levels)
        .policy(|p| p.defaults.detect_changes = false)
        .app();
    assert!(near(off.recommended.cpu_request, 0.4, 0.005), "{off:?}");
}

#[test]
fn a_trend_is_projected_to_the_horizon() {
    // 3 % a day for 14 days: the request is the daily p95 in the middle of the week after
    // the window's end (about the p95 of that week's days together).
    let levels: Vec<f64> = (0..14).map(|d| 0.2 * 1.03f64.powi(d)).collect();
    let r = Case::test().cpu_days(&levels).app();
    let ahead = 0.2 * 1.03f64.powf(17.0);
    let got = r.recommended.cpu_request.unwrap();
    assert!((got / ahead - 1.0).abs() < 0.04, "{got} vs {ahead}: {r:?}");
    let why = r.reasons.cpu_request.unwrap();
    assert!(
        why.starts_with("usage grows 3.0 %/day (daily p95s over 14 days, R² 1.00"),
        "{why}"
    );
    assert!(why.contains("projected to the middle of the next 7 d"), "{why}");
    // A longer horizon projects further.
    let month = Case::test()
        .cpu_days(&levels)
        .policy(|p| p.defaults.horizon_days = 14.0)
        .app();
    assert!(month.recommended.cpu_request.unwrap() > got * 1.1, "{month:?}");
}

#[test]
fn stable_weekly_cycles_and_quiet_weekends_keep_the_window() {
    // Weekdays at 300m, weekends at 100m, the window ending on a weekend.
    let levels: Vec<f64> = (0..14).map(|d| if (d + 2) % 7 >= 5 { 0.1 } else { 0.3 }).collect();
    let r = Case::test().cpu_days(&levels).app();
    assert!(near(r.recommended.cpu_request, 0.3, 0.005), "{r:?}");
    assert!(r.reasons.cpu_request.unwrap().starts_with("p95 of "));
}

#[test]
fn the_oom_bump_is_anchored_to_the_limit_at_the_kill_and_does_not_compound() {
    // The limit: max(limit at the kill x 1.2 or + 100 MiB, peak + 15 %), whatever the number
    // of kills at that limit (the VPA leaves earlier OOM peaks out of the next bump); the
    // request: the peak + 15 % (the kill was the limit's doing). A kill at a raised limit
    // anchors there: the bump grows with kills that follow a raise.
    let rules = Rules::default();
    let limit = |at: f64| {
        round_up(
            (at * rules.oom_bump_ratio)
                .max(at + rules.oom_min_bump)
                .max(440.0 * MIB * 1.15),
            MIB,
        )
    };
    for (at, kills) in [(450.0, 1), (450.0, 2), (450.0, 5), (550.0, 1), (550.0, 4)] {
        let r = Case::test()
            .limits(None, Some(450.0))
            .requests(Some(0.2), Some(450.0))
            .memory_peak_mib(440.0)
            .killed_at_limit_mib(at)
            .oom_killed(kills)
            .app();
        assert_eq!(
            r.recommended.memory_limit,
            Some(limit(at * MIB)),
            "{at} Mi, {kills} kills: {r:?}"
        );
        assert_eq!(r.recommended.memory_request, Some(506.0 * MIB), "{r:?}");
        let why = r.reasons.memory_limit.unwrap();
        assert!(why.contains(&format!("the limit in force at the kill {at}Mi")), "{why}");
    }
    assert!(limit(550.0 * MIB) > limit(450.0 * MIB));
}

#[test]
fn applying_an_oom_bump_and_rerunning_changes_nothing() {
    // Today: 450 -> 592 -> 711 -> 854 Mi, one bump per run on the same history.
    for anchor in [Some(450.0), None] {
        let mut case = Case::test()
            .limits(None, Some(450.0))
            .requests(Some(0.2), Some(450.0))
            .memory_peak_mib(449.0)
            .oom_killed(1);
        if let Some(l) = anchor {
            case = case.killed_at_limit_mib(l);
        }
        let first = case.app();
        assert!(first.changed(), "{first:?}");
        let again = case.applied().app();
        assert!(
            !again.changed(),
            "{anchor:?}: {:?} -> {:?}",
            first.recommended,
            again.recommended
        );
    }
}

#[test]
fn the_throttling_raise_is_anchored_and_short_peaks_size_the_limit() {
    // Throttled 30 % against a 1-core limit; today's limit was already raised to 2 cores.
    let r = Case::test()
        .limits(Some(2.0), None)
        .throttled(0.3)
        .throttled_at(1.0)
        .app();
    assert!(near(r.recommended.cpu_limit, 1.3, 0.005), "{r:?}");
    let why = r.reasons.cpu_limit.unwrap();
    assert!(why.contains("the limit it was throttled at 1 x 1.30 = 1300m"), "{why}");
    // A 2-minute burst well above the 5-minute peak: the limit leaves room for it.
    let r = Case::test().limits(Some(2.0), None).short_peak(1.6).app();
    assert!(near(r.recommended.cpu_limit, 1.6, 0.005), "{r:?}");
    assert!(r.reasons.cpu_limit.unwrap().contains("2-minute peak 1600m"));
    let applied = Case::test()
        .limits(Some(2.0), None)
        .throttled(0.3)
        .throttled_at(1.0)
        .short_peak(1.6)
        .applied()
        .app();
    assert!(!applied.changed(), "{applied:?}");
}

#[test]
fn hpa_bounds_keep_the_hpa_able_to_scale() {
    // Demand for about one pod, 4 replicas ran: max stays above min and at least 4.
    let unit = Case::test()
        .requests(Some(0.5), Some(512.0))
        .cpu_p95(0.2)
        .with_hpa(2, 6)
        .total_cpu(0.05, 0.1, 4.0)
        .run();
    let hpa = unit.hpa.unwrap();
    assert!(hpa.max_replicas > hpa.min_replicas, "{hpa:?}");
    assert!(hpa.max_replicas >= 4, "{hpa:?}");
    assert!(
        hpa.reasons.iter().any(|r| r.contains("4 replicas ran in the window")),
        "{:?}",
        hpa.reasons
    );
    // min = max = 2 is never proposed.
    let unit = Case::test()
        .requests(Some(0.5), Some(512.0))
        .cpu_p95(0.2)
        .with_hpa(2, 2)
        .total_cpu(0.05, 0.1, 2.0)
        .run();
    let hpa = unit.hpa.unwrap();
    assert_eq!((hpa.min_replicas, hpa.max_replicas), (2, 3), "{:?}", hpa.reasons);
    assert!(
        hpa.reasons
            .iter()
            .any(|r| r.contains("needs maxReplicas above minReplicas"))
    );
}

#[test]
fn one_scale_for_percentiles_and_margins() {
    let yaml = |text: &str| serde_json::from_str::<Policy>(text);
    // Fractions and explicit percentages are the same value.
    let a = yaml(r#"{"defaults": {"cpuPercentile": 0.9, "memoryBuffer": 0.2}}"#).unwrap();
    let b = yaml(r#"{"defaults": {"cpuPercentile": "90%", "memoryBuffer": "20%"}}"#).unwrap();
    assert_eq!(a, b);
    assert_eq!(a.defaults.cpu_percentile, 0.9);
    assert!(a.validate().is_ok());
    // Percent written as a bare number: an error naming the key and the spelling that works.
    let bad = yaml(r#"{"defaults": {"cpuPercentile": 95, "memoryBuffer": 15}}"#).unwrap();
    let e = bad.validate().unwrap_err().to_string();
    assert!(e.contains("defaults.cpuPercentile is 95, out of range"), "{e}");
    assert!(e.contains("write 0.95 or \"95%\""), "{e}");
    let bad = yaml(r#"{"defaults": {"memoryBuffer": 15}}"#).unwrap();
    let e = bad.validate().unwrap_err().to_string();
    assert!(e.contains("defaults.memoryBuffer is 15, out of range"), "{e}");
    let bad = yaml(r#"{"namespaces": {"shop": {"cpuBuffer": 1.5}}}"#).unwrap();
    assert!(
        bad.validate()
            .unwrap_err()
            .to_string()
            .contains("namespaces.shop.cpuBuffer")
    );
    let bad = yaml(r#"{"hpa": {"minReplicasPercentile": 10}}"#).unwrap();
    assert!(
        bad.validate()
            .unwrap_err()
            .to_string()
            .contains("hpa.minReplicasPercentile")
    );
    assert!(yaml(r#"{"defaults": {"cpuPercentile": "ninety"}}"#).is_err());
    for (text, want) in [("0.95", 0.95), ("95%", 0.95), ("p99.9", 0.999), (" 20 % ", 0.2)] {
        let got = crate::recommend::parse_fraction(text).unwrap();
        assert!((got - want).abs() <= 1e-12, "{text}: {got}");
    }
}

#[test]
fn annotations_read_fractions_and_warn_out_of_range() {
    // "0.99" is p99 (it was read as p1).
    let r = Case::test()
        .annotated("rightsizer.dev/cpu-percentile", "0.99")
        .cpu_tail(2.0)
        .app();
    assert!(near(r.recommended.cpu_request, 0.4, 0.005), "{r:?}");
    for (key, value) in [
        ("rightsizer.dev/cpu-percentile", "95"),
        ("rightsizer.dev/memory-buffer", "15"),
        ("rightsizer.dev/cpu-buffer", "-0.1"),
    ] {
        let (unit, warnings) = Case::test().annotated(key, value).run_with_warnings();
        assert!(
            warnings
                .iter()
                .any(|w| w.contains("shop/Deployment/web") && w.contains(key)),
            "{key}={value}: {warnings:?}"
        );
        // The workload falls back to the defaults.
        assert_eq!(unit.containers[0].recommended, Case::test().app().recommended, "{key}");
    }
    let r = Case::test().annotated("rightsizer.dev/memory-buffer", "30%").app();
    assert_eq!(r.recommended.memory_request, Some(round_up(300.0 * MIB * 1.3, MIB)));
}

#[test]
fn bad_history_gets_a_reason_never_a_silent_zero() {
    // Deleted halfway: sized on the older history, and the report says so.
    let r = Case::test().history_days(7.0).gone_for_days(7.0).app();
    assert!(r.recommended.cpu_request.unwrap() > 0.0);
    assert!(
        r.notes
            .iter()
            .any(|n| n.contains("no usage since Oct 25 (7.0 d before the window's end)")),
        "{:?}",
        r.notes
    );
    // Still running: no such note.
    assert!(!Case::test().app().notes.iter().any(|n| n.contains("no usage since")));
    // Days missing from the middle (a scrape gap) and idle days: no change is made up.
    let mut levels = vec![0.2; 14];
    levels[5] = 0.0;
    let r = Case::test().cpu_days(&levels).app();
    assert!(r.reasons.cpu_request.unwrap().starts_with("p95 of "));
    // No history at all: skipped with the reason, current values kept.
    let unit = Case::test().container_without_usage("sidecar").run();
    let r = &unit.containers[1];
    assert_eq!(r.skip, Some(crate::recommend::Skip::NoHistory));
    assert_eq!(r.recommended, r.current);
}
