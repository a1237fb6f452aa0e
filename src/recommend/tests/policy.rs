//! Policy layers (global, namespace, annotations), the config format and its validation.

use super::*;
use crate::recommend::{CpuLimitMode, MemoryMode, Rules, Skip};

#[test]
fn config_deserializes_with_camel_case_quantities_and_defaults() {
    let json = r#"{
        "defaults": { "cpuPercentile": 0.9, "minCpu": "25m", "maxMemory": "2Gi", "memoryMode": "dailyPeaks" },
        "namespaces": { "batch": { "ignore": true, "cpuLimit": "remove", "minMemory": 67108864 } },
        "hpa": { "maxTargetPercent": 80 },
        "prices": { "cpuCoreHour": 0.04 },
        "minMonthlySavings": 5
    }"#;
    let p: Policy = serde_json::from_str(json).unwrap();
    assert_eq!(p.defaults.cpu_percentile, 0.9);
    assert_eq!(p.defaults.min_cpu, 0.025);
    assert_eq!(p.defaults.max_memory, Some(2.0 * 1024.0 * MIB));
    assert_eq!(p.defaults.memory_mode, MemoryMode::DailyPeaks);
    assert_eq!(p.defaults.memory_buffer, 0.15, "unset keys keep their defaults");
    let batch = &p.namespaces["batch"];
    assert_eq!(
        (batch.ignore, batch.cpu_limit),
        (Some(true), Some(CpuLimitMode::Remove))
    );
    assert_eq!(batch.min_memory, Some(64.0 * MIB));
    assert_eq!((p.hpa.min_target_percent, p.hpa.max_target_percent), (50, 80));
    assert_eq!(p.prices.cpu_core_hour, 0.04);
    assert_eq!(p.prices.memory_gib_hour, 0.004237);
    assert_eq!(p.min_monthly_savings, 5.0);
    assert_eq!(p.validate(), Ok(()));
    // The same through YAML, the config file's usual form.
    let yaml = "defaults:\n  cpuPercentile: 0.9\n  minCpu: 25m\nhpa:\n  maxTargetPercent: 80\n";
    let y: Policy = serde_saphyr::from_str(yaml).unwrap();
    assert_eq!((y.defaults.min_cpu, y.hpa.max_target_percent), (0.025, 80));
    // Defaults round-trip.
    let back: Policy = serde_json::from_str(&serde_json::to_string(&Policy::default()).unwrap()).unwrap();
    assert_eq!(back, Policy::default());
}

#[test]
fn config_refuses_unknown_keys_and_bad_values() {
    for bad in [
        r#"{"default": {}}"#,
        r#"{"defaults": {"cpuPercentil": 0.9}}"#,
        r#"{"namespaces": {"x": {"cpuPercentile": 0.9, "oops": 1}}}"#,
        r#"{"hpa": {"minTarget": 50}}"#,
        r#"{"defaults": {"minCpu": "lots"}}"#,
    ] {
        assert!(serde_json::from_str::<Policy>(bad).is_err(), "{bad} should not parse");
    }
    type Break = fn(&mut Policy);
    let cases: [(&str, Break); 4] = [
        ("defaults.cpuPercentile", |p| p.defaults.cpu_percentile = 1.5),
        ("namespaces.shop.memoryBuffer", |p| {
            p.namespaces.insert(
                "shop".into(),
                Overrides {
                    memory_buffer: Some(-0.1),
                    ..Default::default()
                },
            );
        }),
        ("hpa.minTargetPercent/maxTargetPercent", |p| {
            p.hpa.min_target_percent = 95
        }),
        ("defaults.maxCpu", |p| p.defaults.max_cpu = Some(0.001)),
    ];
    for (field, break_it) in cases {
        let mut p = Policy::default();
        break_it(&mut p);
        assert_eq!(p.validate().unwrap_err().field, field);
    }
}

#[test]
fn layers_apply_global_then_namespace_then_annotations() {
    let ns = Overrides {
        cpu_percentile: Some(0.99),
        memory_buffer: Some(0.5),
        ..Default::default()
    };
    // Namespace: p99 (the tail, 260m) and +50 % memory.
    let r = Case::test().namespace_rules(ns.clone()).app();
    assert!(near(r.recommended.cpu_request, 0.26, 0.005));
    assert_eq!(r.recommended.memory_request, mib(450.0));
    // The annotation wins over the namespace for its key only.
    let r = Case::test()
        .namespace_rules(ns)
        .annotated("rightsizer.dev/memory-buffer", "20%")
        .app();
    assert!(near(r.recommended.cpu_request, 0.26, 0.005));
    assert_eq!(r.recommended.memory_request, mib(360.0));
    // Another namespace's rules do not apply.
    let mut other = Case::test();
    other.policy.namespaces.insert(
        "elsewhere".into(),
        Overrides {
            ignore: Some(true),
            ..Default::default()
        },
    );
    assert_eq!(other.app().skip, None);
}

#[test]
fn invalid_annotations_warn_and_fall_back_to_defaults() {
    let cases = [
        ("rightsizer.dev/cpu-percentile", "abc"),
        ("rightsizer.dev/cpu-percentile", "150"),
        ("rightsizer.dev/memory-buffer", "lots"),
        ("rightsizer.dev/min-cpu", "1Xi"),
        ("rightsizer.dev/max-memory", "-5"),
        ("rightsizer.dev/memory-mode", "average"),
        ("rightsizer.dev/cpu-limit", "sometimes"),
        ("rightsizer.dev/ignore", "maybe"),
    ];
    for (key, value) in cases {
        let case = Case::test()
            .annotated(key, value)
            // A valid annotation on the same workload is dropped too: defaults for all.
            .annotated("rightsizer.dev/memory-buffer-ignored-key", "x")
            .annotated(
                if key.ends_with("min-cpu") {
                    "rightsizer.dev/max-cpu"
                } else {
                    "rightsizer.dev/min-cpu"
                },
                "900m",
            );
        let (unit, warnings) = case.run_with_warnings();
        assert_eq!(warnings.len(), 1, "{key}={value}: {warnings:?}");
        let w = &warnings[0];
        assert!(
            w.contains("shop/Deployment/web") && w.contains(key) && w.contains(value),
            "{w}"
        );
        assert!(unit.notes.contains(w));
        let r = &unit.containers[0];
        assert!(
            near(r.recommended.cpu_request, 0.2, 0.005),
            "{key}: {:?}",
            r.recommended
        );
        assert_eq!(r.recommended.memory_request, mib(345.0), "{key}");
    }
    // A combination that is invalid as a whole (min above max) also falls back.
    let (_, warnings) = Case::test()
        .annotated("rightsizer.dev/min-cpu", "2")
        .annotated("rightsizer.dev/max-cpu", "1")
        .run_with_warnings();
    assert!(warnings[0].contains("maxCpu must be >= minCpu"), "{warnings:?}");
    // Keys under the prefix that the recommender does not own are not warned about.
    let (_, warnings) = Case::test()
        .annotated("rightsizer.dev/recommendation", "{}")
        .run_with_warnings();
    assert!(warnings.is_empty());
}

#[test]
fn ignore_skips_the_workload_with_the_reason() {
    let cases = [
        (
            Case::test().annotated("rightsizer.dev/ignore", "true"),
            Some("annotation rightsizer.dev/ignore"),
        ),
        (Case::test().annotated("rightsizer.dev/ignore", "false"), None),
        (
            Case::test().namespace_rules(Overrides {
                ignore: Some(true),
                ..Default::default()
            }),
            Some("policy for the namespace"),
        ),
        (
            Case::test()
                .namespace_rules(Overrides {
                    ignore: Some(true),
                    ..Default::default()
                })
                .annotated("rightsizer.dev/ignore", "false"),
            None,
        ),
    ];
    for (case, by) in cases {
        let unit = case.with_hpa(2, 10).run();
        let want = by.map(|b| Skip::Ignored { by: b.into() });
        assert_eq!(unit.skip, want);
        assert_eq!(unit.containers[0].skip, want);
        assert_eq!(
            unit.hpa.is_none(),
            by.is_some(),
            "an ignored workload's HPA is left alone"
        );
    }
}

#[test]
fn rules_defaults_document_their_anchors() {
    let r = Rules::default();
    // KRR simple strategy: cpu_percentile 95, memory_buffer_percentage 15, points_required 100.
    assert_eq!((r.cpu_percentile, r.memory_buffer, r.min_samples), (0.95, 0.15, 100));
    // VPA: oomBumpUpRatio 1.2, oomMinBumpUp 100 MiB, targetMemoryPeaksPercentile 0.9.
    assert_eq!(
        (r.oom_bump_ratio, r.oom_min_bump, r.memory_peaks_percentile),
        (1.2, 100.0 * MIB, 0.9)
    );
    assert_eq!(
        (r.min_cpu, r.min_memory, r.cpu_step, r.memory_step),
        (0.010, 16.0 * MIB, 0.005, MIB)
    );
    assert_eq!(
        (r.hysteresis, r.hysteresis_cpu, r.hysteresis_memory),
        (0.10, 0.005, 8.0 * MIB)
    );
    assert_eq!(r.recency_half_life_hours, None);
}
