//! Property tests as loops over deterministic generated inputs (no proptest): monotone in
//! usage, never below floors, hysteresis never proposes a no-op, HPA scale point preserved.

use super::*;
use crate::recommend::Rules;

/// SplitMix64: deterministic, platform-independent.
struct Gen(u64);

impl Gen {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Log-uniform in [lo, hi]: usage spans orders of magnitude.
    fn log_range(&mut self, lo: f64, hi: f64) -> f64 {
        (lo.ln() + self.unit() * (hi.ln() - lo.ln())).exp()
    }

    fn maybe(&mut self, p: f64) -> bool {
        self.unit() < p
    }
}

/// A random single-container case: usage, current requests and limits, OOM kills,
/// throttling, history length, QoS.
fn random_case(g: &mut Gen) -> Case {
    let mut case = Case::test()
        .cpu_p95(g.log_range(0.0005, 8.0))
        .cpu_tail(1.0 + g.unit())
        .memory_peak_mib(g.log_range(0.5, 16_000.0))
        .history_days(g.log_range(0.4, 14.0))
        .requests(
            g.maybe(0.9).then(|| g.log_range(0.005, 8.0)),
            g.maybe(0.9).then(|| g.log_range(8.0, 16_000.0)),
        );
    if g.maybe(0.3) {
        case = case.limits(Some(g.log_range(0.05, 8.0)), Some(g.log_range(64.0, 16_000.0)));
    }
    if g.maybe(0.2) {
        case = case.oom_killed(1 + (g.next() % 5) as u32);
    }
    if g.maybe(0.2) {
        case = case.throttled(g.unit() * 0.6);
    }
    if g.maybe(0.15) {
        case = case.guaranteed();
    }
    case
}

fn scaled(mut case: Case, k: f64) -> Case {
    for u in case.usage.iter_mut().flatten() {
        u.cpu_p95 *= k;
        u.memory_peak *= k;
    }
    case
}

#[test]
fn recommendations_are_monotone_in_usage() {
    let mut g = Gen(7);
    for i in 0..2_000 {
        let case = random_case(&mut g);
        let k = 1.0 + g.unit() * 2.0;
        let (a, b) = (case.app(), scaled(case.clone(), k).app());
        if a.skip.is_some() {
            continue;
        }
        let (a, b) = (a.recommended, b.recommended);
        let le = |x: Option<f64>, y: Option<f64>| x.unwrap() <= y.unwrap() + 1e-12;
        assert!(le(a.cpu_request, b.cpu_request), "{i}: x{k}: {a:?} vs {b:?}\n{case:?}");
        assert!(le(a.memory_request, b.memory_request), "{i}: x{k}: {a:?} vs {b:?}");
        if a.cpu_limit.is_some() {
            assert!(le(a.cpu_limit, b.cpu_limit), "{i}: x{k}: {a:?} vs {b:?}");
        }
    }
}

#[test]
fn recommendations_never_go_below_floors() {
    let mut g = Gen(11);
    let rules = Rules::default();
    for i in 0..2_000 {
        let r = random_case(&mut g).app();
        if r.skip.is_some() {
            continue;
        }
        let rec = r.recommended;
        assert!(rec.cpu_request.unwrap() >= rules.min_cpu - 1e-12, "{i}: {rec:?}");
        assert!(rec.memory_request.unwrap() >= rules.min_memory, "{i}: {rec:?}");
        assert!(rec.memory_limit >= rec.memory_request, "{i}: {rec:?}");
        if let Some(l) = rec.cpu_limit {
            assert!(l >= rec.cpu_request.unwrap() - 1e-12, "{i}: {rec:?}");
        }
    }
}

#[test]
fn hysteresis_never_proposes_a_no_op_change() {
    let mut g = Gen(13);
    let rules = Rules::default();
    let mut held = 0;
    for i in 0..3_000 {
        let mut case = random_case(&mut g);
        // Put half the current requests close to what usage asks, where hysteresis matters.
        if g.maybe(0.5) {
            let u = case.usage[0].clone().unwrap();
            let near_cpu = u.cpu_p95 * (0.85 + 0.3 * g.unit());
            let near_mem = u.memory_peak * 1.15 * (0.85 + 0.3 * g.unit()) / MIB;
            case = case.requests(Some(near_cpu), Some(near_mem)).history_days(14.0);
        }
        let r = case.app();
        if r.skip.is_some() {
            continue;
        }
        let checks = [
            (
                r.current.cpu_request,
                r.recommended.cpu_request,
                rules.hysteresis_cpu,
                rules.min_cpu,
            ),
            (
                r.current.memory_request,
                r.recommended.memory_request,
                rules.hysteresis_memory,
                rules.min_memory,
            ),
        ];
        for (cur, rec, min_step, floor) in checks {
            let (Some(c), Some(v)) = (cur, rec) else { continue };
            if c == v {
                held += 1;
                continue;
            }
            if c < floor {
                continue;
            }
            let delta = (v - c).abs();
            assert!(
                delta >= rules.hysteresis * c - 1e-9 && delta >= min_step - 1e-9,
                "{i}: {c} -> {v} is inside hysteresis\n{:?}",
                r.reasons
            );
        }
    }
    assert!(held > 100, "the generator should exercise hysteresis ({held} held)");
}

#[test]
fn hpa_scale_point_is_preserved_within_rounding() {
    let mut g = Gen(17);
    let mut clamped = 0;
    for i in 0..2_000 {
        let r_old = g.log_range(0.05, 4.0);
        let t_old = 50 + (g.next() % 41) as u32;
        let case = Case::test()
            .requests(Some(r_old), Some(512.0))
            .cpu_p95(g.log_range(0.01, 6.0))
            .with_hpa(2, 20)
            .hpa_target(t_old);
        let unit = case.run();
        let t = &unit.hpa.as_ref().unwrap().targets[0];
        let r_new = unit.containers[0].recommended.cpu_request.unwrap();
        let t_new = f64::from(t.recommended_percent);
        let (kept, wanted) = (t_new * r_new, f64::from(t_old) * r_old);
        // Rounding: the target to 1 % (half a percent of R_new), or, when clamped, the
        // request up to one 5m step at the clamp.
        let slack = 0.5 * r_new + t_new * 0.005 + 1e-9;
        assert!(
            (kept - wanted).abs() <= slack,
            "{i}: {t_old} % x {r_old} -> {t_new} % x {r_new}: {t:?}"
        );
        assert!((50..=90).contains(&t.recommended_percent));
        clamped += usize::from(t.clamped);
    }
    assert!(
        clamped > 100 && clamped < 1_900,
        "{clamped} clamped: exercise both paths"
    );
}

/// Daily CPU levels of one of the shapes recency detection tells apart: flat with noise, a
/// level shift `k` days before the end, steady growth, a weekly cycle.
fn random_days(g: &mut Gen, level: f64) -> Vec<f64> {
    let shape = g.next() % 4;
    let k = 2 + (g.next() % 5) as usize;
    let factor = g.log_range(0.3, 3.0);
    let growth = 1.0 + g.unit() * 0.06;
    (0..14)
        .map(|d| {
            let noise = 1.0 + 0.05 * (g.unit() - 0.5);
            let v = match shape {
                0 => level,
                1 if d >= 14 - k => level * factor,
                1 => level,
                2 => level * growth.powi(d as i32),
                _ if d % 7 >= 5 => level * 0.3,
                _ => level,
            };
            v * noise
        })
        .collect()
}

#[test]
fn recommending_on_the_recommended_requests_is_a_fixed_point() {
    let mut g = Gen(19);
    let mut changed = 0;
    for i in 0..1_500 {
        let mut case = random_case(&mut g);
        if g.maybe(0.4) {
            let level = case.usage[0].as_ref().unwrap().cpu_p95;
            let days = random_days(&mut g, level);
            case = case.cpu_days(&days);
        }
        if g.maybe(0.5) {
            case = case.killed_at_limit_mib(g.log_range(64.0, 16_000.0));
        }
        if g.maybe(0.5) {
            case = case.throttled_at(g.log_range(0.05, 8.0));
        }
        if g.maybe(0.3) {
            case = case.short_peak(g.log_range(0.01, 16.0));
        }
        if g.maybe(0.3) {
            let min = 1 + (g.next() % 4) as u32;
            let max = min + (g.next() % 8) as u32;
            let low = g.log_range(0.01, 4.0);
            case = case
                .with_hpa(min, max)
                .hpa_target(50 + (g.next() % 41) as u32)
                .total_cpu(low, low * g.log_range(1.0, 10.0), g.log_range(1.0, 12.0));
        }
        let first = case.run();
        changed += usize::from(first.changed());
        let again = case.clone().applied().run();
        assert!(
            !again.changed(),
            "{i}: applying {:?} and recommending again proposes {:?} (hpa {:?} -> {:?})\n{case:?}",
            first.containers[0].recommended,
            again.containers[0].recommended,
            first.hpa,
            again.hpa
        );
    }
    assert!(changed > 500, "the generator should propose changes ({changed})");
}
