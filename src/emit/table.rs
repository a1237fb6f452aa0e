//! The table for people: one row per container, current -> recommended requests and limits,
//! the change, the confidence and the monthly savings, sorted by savings (largest first,
//! ties in workload order); then the HPA changes, a totals line and any warnings.

use std::io::Write;

use crate::model::{format_cpu, format_memory};
use crate::recommend::{Recommendation, Report};

fn opt(v: Option<f64>, f: fn(f64) -> String) -> String {
    v.map(f).unwrap_or_else(|| "-".into())
}

fn change(current: Option<f64>, recommended: Option<f64>, f: fn(f64) -> String) -> String {
    if current == recommended {
        opt(current, f)
    } else {
        format!("{} -> {}", opt(current, f), opt(recommended, f))
    }
}

/// Relative change of one request: `-62 %`, `new`, or nothing when unchanged.
fn delta(name: &str, current: Option<f64>, recommended: Option<f64>) -> Option<String> {
    match (current.filter(|c| *c > 0.0), recommended) {
        (a, b) if a == b => None,
        (Some(a), Some(b)) => Some(format!("{name} {:+.0} %", (b - a) / a * 100.0)),
        (None, Some(_)) => Some(format!("{name} new")),
        (Some(_), None) => Some(format!("{name} unset")),
        (None, None) => None,
    }
}

fn money(v: f64) -> String {
    if v < 0.0 {
        format!("-${:.2}", -v)
    } else {
        format!("${v:.2}")
    }
}

fn note(r: &Recommendation) -> String {
    if let Some(skip) = &r.skip {
        return skip.to_string();
    }
    let mut flags = Vec::new();
    if r.oom_kills > 0 {
        flags.push(format!("OOMKilled x{}", r.oom_kills));
    }
    if let Some(t) = r.throttling_ratio.filter(|_| r.throttled) {
        flags.push(format!("throttled {:.0} %", t * 100.0));
    }
    let reasons = &r.reasons;
    let held = [&reasons.cpu_request, &reasons.memory_request]
        .iter()
        .any(|x| x.as_deref().is_some_and(|s| s.contains("within hysteresis")));
    if held {
        flags.push("within hysteresis".into());
    }
    if r.confidence < 0.5 {
        flags.push("low confidence".into());
    }
    flags.join(", ")
}

pub fn write(report: &Report, out: &mut impl Write) -> std::io::Result<()> {
    let header = [
        "NAMESPACE",
        "WORKLOAD",
        "CONTAINER",
        "CPU REQUEST",
        "CPU LIMIT",
        "MEMORY REQUEST",
        "MEMORY LIMIT",
        "DELTA",
        "CONFIDENCE",
        "SAVINGS/MO",
        "NOTE",
    ];
    let mut recs: Vec<&Recommendation> = report.containers().collect();
    // Stable: equal savings keep workload order.
    recs.sort_by(|a, b| b.monthly_savings.total_cmp(&a.monthly_savings));
    let rows: Vec<[String; 11]> = recs
        .iter()
        .map(|r| {
            let (cur, rec) = (&r.current, &r.recommended);
            let w = &r.key.workload;
            let d: Vec<String> = [
                delta("cpu", cur.cpu_request, rec.cpu_request),
                delta("mem", cur.memory_request, rec.memory_request),
            ]
            .into_iter()
            .flatten()
            .collect();
            [
                w.namespace.clone(),
                format!("{}/{}", w.kind, w.name),
                r.key.container.clone(),
                change(cur.cpu_request, rec.cpu_request, format_cpu),
                change(cur.cpu_limit, rec.cpu_limit, format_cpu),
                change(cur.memory_request, rec.memory_request, format_memory),
                change(cur.memory_limit, rec.memory_limit, format_memory),
                d.join(", "),
                if r.samples > 0 {
                    format!("{:.0} %", r.confidence * 100.0)
                } else {
                    "-".into()
                },
                money(r.monthly_savings),
                note(r),
            ]
        })
        .collect();
    let mut widths = header.map(str::len);
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: &[&str]| {
        let mut s = String::new();
        for (i, (cell, w)) in cells.iter().zip(widths).enumerate() {
            if i + 1 == cells.len() {
                s.push_str(cell);
            } else {
                s.push_str(&format!("{cell:<w$}  "));
            }
        }
        s.trim_end().to_string()
    };
    writeln!(out, "{}", line(&header))?;
    for row in &rows {
        let cells: Vec<&str> = row.iter().map(String::as_str).collect();
        writeln!(out, "{}", line(&cells))?;
    }
    let hpas: Vec<_> = report
        .workloads
        .iter()
        .filter_map(|w| w.hpa.as_ref().map(|h| (w, h)))
        .collect();
    if !hpas.is_empty() {
        writeln!(out)?;
        for (w, h) in hpas {
            let mut parts: Vec<String> = h
                .targets
                .iter()
                .map(|t| {
                    format!(
                        "{} target {} % -> {} %{}",
                        t.resource,
                        t.current_percent,
                        t.recommended_percent,
                        if t.clamped { " (clamped)" } else { "" }
                    )
                })
                .collect();
            parts.push(format!("minReplicas {} -> {}", h.current_min_replicas, h.min_replicas));
            parts.push(format!("maxReplicas {} -> {}", h.current_max_replicas, h.max_replicas));
            if h.sat_at_max {
                parts.push(format!(
                    "sat at maxReplicas for {:.1} h",
                    h.at_max_seconds as f64 / 3600.0
                ));
            }
            writeln!(out, "HPA {} ({}): {}", h.name, w.key, parts.join(", "))?;
        }
    }
    let t = &report.totals;
    writeln!(
        out,
        "\n{} containers in {} workloads, {} with a change, {} skipped; monthly savings {}",
        t.containers,
        t.workloads,
        t.changed,
        t.skipped,
        money(t.monthly_savings)
    )?;
    for w in &report.warnings {
        writeln!(out, "warning: {w}")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deltas_and_money_read_well() {
        assert_eq!(delta("cpu", Some(0.5), Some(0.25)).as_deref(), Some("cpu -50 %"));
        assert_eq!(delta("mem", None, Some(1.0)).as_deref(), Some("mem new"));
        assert_eq!(delta("cpu", Some(0.5), Some(0.5)), None);
        assert_eq!(money(12.345), "$12.35");
        assert_eq!(money(-1.2), "-$1.20");
        assert_eq!(change(Some(0.5), Some(0.5), format_cpu), "500m");
        assert_eq!(change(Some(0.5), Some(0.25), format_cpu), "500m -> 250m");
    }
}
