//! Pure maths from usage to recommendations: no network, no async. For each workload the
//! policy layers resolve into `Rules` (policy.rs, annotations.rs; ranges on one scale in
//! validate.rs), the strategy sizes every container on its own usage (strategy.rs,
//! memory.rs, confidence.rs) from the part of the window that fits it (a level shift, a
//! trend or the whole window: recency.rs), the HPA co-recommendation keeps the scale point
//! of utilization HPAs (hpa.rs), and savings (savings.rs) gate and rank the result. Every
//! value carries its reason (explain.rs); the workload and its HPA are one unit in the
//! `Report` (report.rs), which is the JSON output.

mod annotations;
pub mod backtest;
mod confidence;
mod explain;
mod hpa;
mod memory;
mod policy;
mod recency;
pub mod reference;
mod report;
mod savings;
mod strategy;
mod validate;

#[cfg(test)]
mod tests;

use crate::model::{ContainerKey, UsageSet, Workload};

pub use confidence::{Confidence, confidence};
pub use policy::{ANNOTATION_PREFIX, CpuLimitMode, HpaPolicy, MemoryMode, Overrides, Policy, Prices, Rules};
pub use report::{
    HpaRecommendation, HpaTarget, QosClass, Reasons, Recommendation, Report, Skip, Totals, WorkloadRecommendation,
};
pub use savings::{monthly_cost, monthly_savings};
pub use validate::{PolicyError, parse_fraction};

/// One unit per workload, in workload order. The usage carries what every method needs
/// (pooled and per-day CPU, daily memory peaks, limits at past events), so a snapshot gives
/// the same answer as the live run it was taken from.
pub fn recommend(workloads: &[Workload], usage: &UsageSet, policy: &Policy) -> Report {
    let mut warnings = Vec::new();
    let units: Vec<WorkloadRecommendation> = workloads
        .iter()
        .map(|w| workload(w, usage, policy, &mut warnings))
        .collect();
    let mut totals = Totals {
        workloads: units.len(),
        ..Totals::default()
    };
    for c in units.iter().flat_map(|u| &u.containers) {
        totals.containers += 1;
        totals.changed += usize::from(c.changed());
        totals.skipped += usize::from(c.skip.is_some());
    }
    totals.monthly_savings = units.iter().map(|u| u.monthly_savings).sum();
    Report {
        window_start: usage.start,
        window_end: usage.end,
        workloads: units,
        totals,
        warnings,
    }
}

fn workload(w: &Workload, usage: &UsageSet, policy: &Policy, warnings: &mut Vec<String>) -> WorkloadRecommendation {
    let first_warning = warnings.len();
    let (rules, ignored_by) = policy.rules_for(w, warnings);
    let mut notes: Vec<String> = warnings[first_warning..].to_vec();
    let current_qos = QosClass::of(w.containers.iter().map(|c| &c.resources));
    let guaranteed = current_qos == QosClass::Guaranteed && rules.keep_guaranteed;
    let wu = usage.workloads.get(&w.key).filter(|u| !u.replicas.is_empty());
    let replicas = wu
        .and_then(|u| u.replicas.mean())
        .or(w.replicas.map(f64::from))
        .unwrap_or(1.0);
    let ctx = strategy::Context {
        rules: &rules,
        step: usage.step,
        window_end: usage.end,
        guaranteed,
        ignored_by,
    };
    let mut containers: Vec<_> = w
        .containers
        .iter()
        .map(|c| {
            let key = ContainerKey::new(w.key.clone(), c.name.clone());
            let u = usage.containers.get(&key);
            strategy::size(key, c, u, &ctx)
        })
        .collect();
    let savings_of = |cs: &mut [Recommendation]| -> f64 {
        cs.iter_mut()
            .map(|c| {
                c.monthly_savings = monthly_savings(c.role, &c.current, &c.recommended, replicas, &policy.prices);
                c.monthly_savings
            })
            .sum()
    };
    // Minimum-savings gate: only for pure cost cuts (never blocks an increase, which is
    // about reliability: OOM kills, throttling, under-provisioning).
    let savings = savings_of(&mut containers);
    let cuts_only = containers.iter().all(|c| !grows(c));
    if policy.min_monthly_savings > 0.0
        && cuts_only
        && containers.iter().any(Recommendation::changed)
        && savings < policy.min_monthly_savings
    {
        let why = format!(
            "saves ${savings:.2}/month, under the minimum of ${:.2}: unchanged",
            policy.min_monthly_savings
        );
        for c in containers.iter_mut().filter(|c| c.changed()) {
            c.recommended = c.current;
            c.notes.push(why.clone());
        }
        notes.push(why);
    }
    let hpa = match (&w.hpa, ignored_by) {
        (Some(h), None) => Some(hpa::co_recommend(
            h,
            &mut containers,
            usage.workloads.get(&w.key),
            &hpa::Knobs {
                policy: &policy.hpa,
                rules: &rules,
                guaranteed,
            },
        )),
        _ => None,
    };
    let monthly_savings = savings_of(&mut containers);
    let qos = QosClass::of(containers.iter().map(|c| &c.recommended));
    for c in &mut containers {
        c.qos = qos;
    }
    if current_qos != qos {
        notes.push(format!("QoS class {} -> {}", current_qos.as_str(), qos.as_str()));
    }
    WorkloadRecommendation {
        key: w.key.clone(),
        replicas,
        current_qos,
        qos,
        skip: ignored_by.map(|by| Skip::Ignored { by: by.into() }),
        containers,
        hpa,
        monthly_savings,
        notes,
    }
}

/// True when a request grows (or is newly set), or an existing limit is raised: changes
/// made for reliability, which the minimum-savings gate never blocks. A limit set where
/// there was none tightens the container; it is not growth.
fn grows(c: &Recommendation) -> bool {
    let (cur, rec) = (&c.current, &c.recommended);
    let request = |a: Option<f64>, b: Option<f64>| match (a, b) {
        (Some(a), Some(b)) => b > a,
        (None, Some(_)) => true,
        _ => false,
    };
    let limit = |a: Option<f64>, b: Option<f64>| matches!((a, b), (Some(a), Some(b)) if b > a);
    request(cur.cpu_request, rec.cpu_request)
        || request(cur.memory_request, rec.memory_request)
        || limit(cur.cpu_limit, rec.cpu_limit)
        || limit(cur.memory_limit, rec.memory_limit)
}
