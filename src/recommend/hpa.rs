//! HPA co-recommendation (DESIGN.md "HPA co-recommendation"). An HPA on CPU (or memory)
//! utilization scales on usage / request, so a new request silently moves its scale point,
//! and a naive recommender ratchets the request down release after release. Here:
//! - the absolute scale point is kept: `target_new = target_old x R_old / R_new`, where R is
//!   the pod's total request of that resource (init containers excluded: they are not
//!   running when the HPA measures);
//! - the target is clamped to the policy's range (50-90 %); when the clamp binds the
//!   requests move instead: `R_new = target_old x R_old / clamp`, scaled over the pod's
//!   containers in proportion, and the reasons say so;
//! - minReplicas = ceil(p10 of total demand / (R_new x target)), never below 2 unless lower
//!   today; maxReplicas = ceil(peak total demand x 1.2 / (R_new x target)), never below the
//!   most replicas that ran in the window (up to today's maxReplicas) and always above
//!   minReplicas (an HPA with max = min cannot scale); an HPA that sat at maxReplicas is
//!   flagged and its maxReplicas never lowered (demand above it was cut);
//! - AverageValue and non-resource metrics do not depend on requests and are left alone.
//!   Replica counts have no hysteresis (they are small integers; a change is one replica).

use crate::model::{ContainerRole, Hpa, HpaMetric, Resources, Sketch, WorkloadUsage, format_cpu, format_memory};

use super::policy::{HpaPolicy, Rules};
use super::report::{HpaRecommendation, HpaTarget, Recommendation};
use super::strategy::round_up;

#[derive(Debug, Clone, Copy, PartialEq)]
enum Res {
    Cpu,
    Memory,
}

impl Res {
    fn parse(name: &str) -> Option<Res> {
        match name {
            "cpu" => Some(Res::Cpu),
            "memory" => Some(Res::Memory),
            _ => None,
        }
    }

    fn request(self, r: &Resources) -> Option<f64> {
        match self {
            Res::Cpu => r.cpu_request.or(r.cpu_limit),
            Res::Memory => r.memory_request.or(r.memory_limit),
        }
    }

    fn name(self) -> &'static str {
        match self {
            Res::Cpu => "cpu",
            Res::Memory => "memory",
        }
    }

    fn show(self, v: f64) -> String {
        match self {
            Res::Cpu => format_cpu(v),
            Res::Memory => format_memory(v),
        }
    }

    fn demand(self, u: &WorkloadUsage) -> &Sketch {
        match self {
            Res::Cpu => &u.total_cpu,
            Res::Memory => &u.total_memory,
        }
    }
}

/// The pod's total request of `res` over running containers, if every one has one.
fn pod_total(containers: &[Recommendation], res: Res, pick: fn(&Recommendation) -> &Resources) -> Option<f64> {
    containers
        .iter()
        .filter(|c| c.role != ContainerRole::Init)
        .map(|c| res.request(pick(c)))
        .sum::<Option<f64>>()
        .filter(|t| *t > 0.0)
}

/// Scales the recommended requests of `res` by `factor` (rounded up to the policy's steps,
/// floors kept), keeping limits >= requests and Guaranteed pods Guaranteed.
fn scale_requests(containers: &mut [Recommendation], res: Res, factor: f64, knobs: &Knobs, why: &str) {
    let (rules, guaranteed) = (knobs.rules, knobs.guaranteed);
    for c in containers
        .iter_mut()
        .filter(|c| c.role != ContainerRole::Init && c.skip.is_none())
    {
        let r = &mut c.recommended;
        match res {
            Res::Cpu => {
                let Some(v) = r.cpu_request else { continue };
                let new = round_up((v * factor).max(rules.min_cpu), rules.cpu_step);
                r.cpu_request = Some(new);
                if guaranteed {
                    r.cpu_limit = Some(new);
                } else if let Some(l) = r.cpu_limit {
                    r.cpu_limit = Some(l.max(new));
                }
                let reason = c.reasons.cpu_request.get_or_insert_default();
                reason.push_str(&format!("; {why}: x{factor:.2} = {}", format_cpu(new)));
            }
            Res::Memory => {
                let Some(v) = r.memory_request else { continue };
                let new = round_up((v * factor).max(rules.min_memory), rules.memory_step);
                r.memory_request = Some(new);
                r.memory_limit = Some(new);
                let reason = c.reasons.memory_request.get_or_insert_default();
                reason.push_str(&format!("; {why}: x{factor:.2} = {}", format_memory(new)));
            }
        }
    }
}

/// What retargeting needs from the policy.
pub struct Knobs<'a> {
    pub policy: &'a HpaPolicy,
    pub rules: &'a Rules,
    /// The workload stays Guaranteed: limits follow requests.
    pub guaranteed: bool,
}

/// Retargets one utilization metric; returns the target and, for the replica bounds, the
/// pod's final total request of the resource.
fn retarget(
    res: Res,
    resource: &str,
    target_percent: u32,
    hpa_name: &str,
    containers: &mut [Recommendation],
    knobs: &Knobs,
) -> (HpaTarget, Option<f64>) {
    let policy = knobs.policy;
    let mut target = HpaTarget {
        resource: resource.into(),
        current_percent: target_percent,
        recommended_percent: target_percent,
        clamped: false,
        reason: String::new(),
    };
    let Some(r_new) = pod_total(containers, res, |c| &c.recommended) else {
        target.reason = format!("a running container has no {resource} request: the HPA cannot compute utilization");
        return (target, None);
    };
    let Some(r_old) = pod_total(containers, res, |c| &c.current) else {
        // No scale point today (the HPA cannot compute utilization without requests): the
        // target stays, and the replica bounds are sized on the new requests.
        target.reason = format!(
            "a running container has no {resource} request today: target unchanged, replica bounds sized on the recommended {}",
            res.show(r_new)
        );
        return (target, Some(r_new));
    };
    if !policy.keep_scale_point {
        target.reason = "target unchanged (policy hpa.keepScalePoint: false)".into();
        return (target, Some(r_new));
    }
    let t_old = f64::from(target_percent);
    let (lo, hi) = (policy.min_target_percent, policy.max_target_percent);
    let mut t = t_old * r_old / r_new;
    let mut reason = format!(
        "kept the scale point: {target_percent} % x {} / {} = {t:.1} %",
        res.show(r_old),
        res.show(r_new)
    );
    let mut r_final = r_new;
    let mut clamped_to = None;
    if t < f64::from(lo) || t > f64::from(hi) {
        let clamp = t.clamp(f64::from(lo), f64::from(hi));
        let want = t_old * r_old / clamp;
        let why = format!("HPA {hpa_name} target clamped to {clamp:.0} %");
        scale_requests(containers, res, want / r_new, knobs, &why);
        r_final = pod_total(containers, res, |c| &c.recommended).unwrap_or(r_new);
        t = t_old * r_old / r_final;
        target.clamped = true;
        clamped_to = Some(clamp);
        reason.push_str(&format!(
            ", outside {lo}-{hi} %: clamped to {clamp:.0} % and the pod's {resource} requests set to {} \
             ({target_percent} % x {} / {clamp:.0} %, rounded)",
            res.show(r_final),
            res.show(r_old)
        ));
    }
    // Clamped: the target is the clamp and the rounded-up requests carry the scale point
    // (within one rounding step).
    target.recommended_percent = (clamped_to.unwrap_or(t).round() as u32).clamp(lo, hi);
    reason.push_str(&format!(" -> {} %", target.recommended_percent));
    target.reason = reason;
    (target, Some(r_final))
}

/// The HPA half of a workload's recommendation; may adjust the containers' requests when
/// a target clamp binds.
pub fn co_recommend(
    hpa: &Hpa,
    containers: &mut [Recommendation],
    usage: Option<&WorkloadUsage>,
    knobs: &Knobs,
) -> HpaRecommendation {
    let policy = knobs.policy;
    let mut rec = HpaRecommendation {
        name: hpa.name.clone(),
        current_min_replicas: hpa.min_replicas,
        current_max_replicas: hpa.max_replicas,
        min_replicas: hpa.min_replicas,
        max_replicas: hpa.max_replicas,
        targets: Vec::new(),
        at_max_seconds: usage.map_or(0, |u| u.hpa_at_max_seconds),
        sat_at_max: usage.is_some_and(|u| u.hpa_at_max_seconds > 0),
        reasons: Vec::new(),
    };
    // (demand sketch, demand one pod absorbs at the target) per utilization metric.
    let mut per_pod: Vec<(Res, f64)> = Vec::new();
    for m in &hpa.metrics {
        match m {
            HpaMetric::Utilization {
                resource,
                target_percent,
            } => {
                let Some(res) = Res::parse(resource) else {
                    rec.reasons
                        .push(format!("{resource} utilization: not sized by rightsizer, left alone"));
                    continue;
                };
                let (t, r_final) = retarget(res, resource, *target_percent, &hpa.name, containers, knobs);
                if let Some(r) = r_final {
                    per_pod.push((res, r * f64::from(t.recommended_percent) / 100.0));
                }
                rec.targets.push(t);
            }
            HpaMetric::AverageValue { resource, .. } => rec.reasons.push(format!(
                "{resource} target is an average value, independent of requests: left alone"
            )),
            HpaMetric::Other(name) => rec
                .reasons
                .push(format!("{name} metric: not request-based, left alone")),
        }
    }
    let Some(u) = usage else {
        rec.reasons
            .push("no workload-level history (total demand): minReplicas and maxReplicas unchanged".into());
        return rec;
    };
    let bounds: Vec<(u32, u32, String)> = per_pod
        .iter()
        .filter_map(|&(res, pod)| {
            let demand = res.demand(u);
            let low = demand.quantile(policy.min_replicas_percentile)?;
            let peak = demand.max()?;
            let min = (low / pod).ceil().max(1.0) as u32;
            let max = (peak * (1.0 + policy.max_replicas_headroom) / pod).ceil().max(1.0) as u32;
            Some((
                min,
                max,
                format!(
                    "{} demand {} {}, peak {}, {} per pod at the target",
                    res.name(),
                    super::explain::percentile_name(policy.min_replicas_percentile),
                    res.show(low),
                    res.show(peak),
                    res.show(pod)
                ),
            ))
        })
        .collect();
    if bounds.is_empty() {
        rec.reasons
            .push("no utilization metric with demand history: minReplicas and maxReplicas unchanged".into());
    } else {
        let computed_min = bounds.iter().map(|b| b.0).max().unwrap_or(1);
        let computed_max = bounds.iter().map(|b| b.1).max().unwrap_or(1);
        let floor = hpa.min_replicas.min(policy.min_replicas_floor).max(1);
        rec.min_replicas = computed_min.max(floor);
        rec.max_replicas = computed_max.max(rec.min_replicas);
        let explained: Vec<&str> = bounds.iter().map(|b| b.2.as_str()).collect();
        rec.reasons.push(format!(
            "minReplicas {} (floor {floor}), maxReplicas {} (+{:.0} % headroom): {}",
            rec.min_replicas,
            rec.max_replicas,
            policy.max_replicas_headroom * 100.0,
            explained.join("; ")
        ));
    }
    // Never below the most replicas the window saw running (capped at today's maxReplicas:
    // a rollout's surge pods are not demand), so the HPA can still reach them.
    if let Some(seen) = u.replicas.max().map(|m| m.round() as u32)
        && !bounds.is_empty()
    {
        let keep = seen.min(hpa.max_replicas);
        if rec.max_replicas < keep {
            rec.reasons.push(format!(
                "maxReplicas kept at {keep}, not {}: {seen} replicas ran in the window",
                rec.max_replicas
            ));
            rec.max_replicas = keep;
        }
    }
    if rec.sat_at_max {
        rec.max_replicas = rec.max_replicas.max(hpa.max_replicas);
        let share = if u.hpa_seconds > 0 {
            format!(
                " ({:.1} % of the HPA history)",
                100.0 * u.hpa_at_max_seconds as f64 / u.hpa_seconds as f64
            )
        } else {
            String::new()
        };
        rec.reasons.push(format!(
            "sat at maxReplicas {} for {:.1} h{share}: demand above it was never observed, so maxReplicas is not lowered",
            hpa.max_replicas,
            u.hpa_at_max_seconds as f64 / 3600.0
        ));
    }
    // An HPA with maxReplicas <= minReplicas cannot scale: keep one replica of room.
    if !bounds.is_empty() && rec.max_replicas <= rec.min_replicas {
        rec.reasons.push(format!(
            "maxReplicas {} -> {}: an HPA needs maxReplicas above minReplicas {} to scale",
            rec.max_replicas,
            rec.min_replicas + 1,
            rec.min_replicas
        ));
        rec.max_replicas = rec.min_replicas + 1;
    }
    rec
}
