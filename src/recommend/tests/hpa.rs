//! HPA co-recommendation: scale point, clamps, replica bounds, flags, metrics left alone.

use super::*;

fn cpu_target(unit: &WorkloadRecommendation) -> (u32, bool) {
    let t = &unit.hpa.as_ref().expect("an HPA recommendation").targets[0];
    (t.recommended_percent, t.clamped)
}

#[test]
fn targets_keep_the_scale_point_within_the_clamp() {
    // (case, expected cpu target %, clamped, expected pod cpu request (raw, before rounding))
    let cases = [
        // 70 % x 500m / 400m = 87.5 % (400m or 405m after the sketch and rounding: 86-88 %).
        (Case::test().cpu_p95(0.4).with_hpa(2, 10), 88, false, 0.4),
        // 70 % x 500m / 200m = 175 %: clamped to 90 %, request 70 % x 500m / 90 % = 389m.
        (Case::test().with_hpa(2, 10), 90, true, 0.35 / 0.9),
        // 70 % x 100m / 300m = 23 %: clamped to 50 %, request 140m.
        (
            Case::test()
                .requests(Some(0.1), Some(512.0))
                .cpu_p95(0.3)
                .with_hpa(2, 10),
            50,
            true,
            0.14,
        ),
        // A tighter configured range.
        (
            Case::test()
                .cpu_p95(0.4)
                .with_hpa(2, 10)
                .policy(|p| p.hpa.max_target_percent = 75),
            75,
            true,
            0.35 / 0.75,
        ),
    ];
    for (i, (case, target, clamped, request)) in cases.into_iter().enumerate() {
        let unit = case.run();
        let (got, got_clamped) = cpu_target(&unit);
        assert_eq!(got_clamped, clamped, "case {i}: {:?}", unit.hpa);
        assert!(
            got.abs_diff(target) <= u32::from(!clamped) * 2,
            "case {i}: {got} % vs {target} %"
        );
        let r = &unit.containers[0];
        assert!(
            near(r.recommended.cpu_request, request, 0.005),
            "case {i}: {:?}",
            r.recommended
        );
        let reason = &unit.hpa.as_ref().unwrap().targets[0].reason;
        assert!(reason.starts_with("kept the scale point: 70 % x "), "{reason}");
        if clamped {
            assert!(reason.contains("clamped to"), "{reason}");
            assert!(
                r.reasons
                    .cpu_request
                    .as_deref()
                    .unwrap()
                    .contains("HPA web target clamped")
            );
        }
    }
}

#[test]
fn pod_totals_exclude_init_containers_and_limits_follow() {
    // Guaranteed: app 500m -> 325m and sidecar 100m -> 85m (sized as limits): 70 % x 600m /
    // 410m = 102 % -> 90 %, the pod's requests scaled up to ~467m in proportion; the init
    // container (500m+) is not part of the pod total.
    let unit = Case::test()
        .container("envoy", ContainerRole::Sidecar, 0.05, 60.0)
        .container("migrate", ContainerRole::Init, 0.9, 40.0)
        .guaranteed()
        .with_hpa(2, 10)
        .run();
    let (target, clamped) = cpu_target(&unit);
    assert!(clamped && target == 90, "{:?}", unit.hpa);
    let running: f64 = unit
        .containers
        .iter()
        .filter(|c| c.role != ContainerRole::Init)
        .map(|c| c.recommended.cpu_request.unwrap())
        .sum();
    let kept = 70.0 * 0.6 / running;
    assert!((kept - 90.0).abs() < 1.0, "{kept}");
    for c in &unit.containers {
        assert_eq!(
            c.recommended.cpu_limit, c.recommended.cpu_request,
            "{} stays Guaranteed",
            c.key
        );
    }
}

#[test]
fn memory_utilization_moves_memory_requests() {
    let unit = Case::test()
        .with_hpa(2, 10)
        .hpa_metrics(vec![HpaMetric::Utilization {
            resource: "memory".into(),
            target_percent: 80,
        }])
        .run();
    // 80 % x 512Mi / 345Mi = 119 % -> 90 %: memory 80 % x 512Mi / 90 % = 455.1Mi -> 456Mi.
    assert_eq!(cpu_target(&unit), (90, true));
    let r = &unit.containers[0].recommended;
    assert_eq!((r.memory_request, r.memory_limit), (mib(456.0), mib(456.0)));
}

#[test]
fn replica_bounds_come_from_total_demand() {
    // The scale point is kept, so a pod at the target absorbs 70 % x 500m = 350m whatever
    // the new request: minReplicas = ceil(600m / 350m) = 2, maxReplicas = ceil(3 x 1.2 / 0.35)
    // = 11.
    let cases = [
        (
            Case::test().cpu_p95(0.45).with_hpa(2, 10).total_cpu(0.6, 3.0, 4.0),
            (2, 11),
            false,
        ),
        // Low demand, floor 2 holds; a higher low percentile raises minReplicas.
        (
            Case::test().cpu_p95(0.45).with_hpa(3, 10).total_cpu(0.1, 1.0, 2.0),
            (2, 4),
            false,
        ),
        (
            Case::test().cpu_p95(0.45).with_hpa(1, 10).total_cpu(0.1, 1.0, 2.0),
            (1, 4),
            false,
        ),
        (
            Case::test().cpu_p95(0.45).with_hpa(2, 10).total_cpu(1.5, 3.0, 6.0),
            (5, 11),
            false,
        ),
        // Sat at maxReplicas: flagged, and maxReplicas is not lowered.
        (
            Case::test()
                .cpu_p95(0.45)
                .with_hpa(2, 10)
                .total_cpu(0.6, 1.0, 4.0)
                .at_max_for(7200),
            (2, 10),
            true,
        ),
    ];
    for (i, (case, (min, max), sat)) in cases.into_iter().enumerate() {
        let hpa = case.run().hpa.unwrap();
        assert_eq!(
            (hpa.min_replicas, hpa.max_replicas),
            (min, max),
            "case {i}: {:?}",
            hpa.reasons
        );
        assert_eq!(hpa.sat_at_max, sat);
        if sat {
            assert!(
                hpa.reasons
                    .iter()
                    .any(|r| r.contains("sat at maxReplicas 10 for 2.0 h")),
                "{:?}",
                hpa.reasons
            );
        }
    }
}

#[test]
fn without_workload_history_replicas_stay_and_the_reason_says_why() {
    let hpa = Case::test().with_hpa(3, 12).run().hpa.unwrap();
    assert_eq!((hpa.min_replicas, hpa.max_replicas), (3, 12));
    assert!(hpa.reasons.iter().any(|r| r.contains("no workload-level history")));
}

#[test]
fn average_value_and_other_metrics_are_left_alone() {
    let unit = Case::test()
        .with_hpa(2, 10)
        .hpa_metrics(vec![
            HpaMetric::AverageValue {
                resource: "cpu".into(),
                value: 0.3,
            },
            HpaMetric::Other("External/queue_depth".into()),
        ])
        .total_cpu(0.6, 3.0, 4.0)
        .run();
    let hpa = unit.hpa.as_ref().unwrap();
    assert!(hpa.targets.is_empty());
    assert!(hpa.reasons[0].contains("average value, independent of requests"));
    assert!(hpa.reasons[1].contains("External/queue_depth"));
    assert_eq!((hpa.min_replicas, hpa.max_replicas), (2, 10));
    // The request is sized as if there were no HPA.
    assert!(near(unit.containers[0].recommended.cpu_request, 0.2, 0.005));
}

#[test]
fn no_request_today_means_no_utilization_to_keep() {
    let hpa = Case::test()
        .requests(None, Some(512.0))
        .with_hpa(2, 10)
        .run()
        .hpa
        .unwrap();
    assert_eq!(hpa.targets[0].recommended_percent, 70);
    assert!(hpa.targets[0].reason.contains("no cpu request"));
}
