//! The table for people: one row per container, current -> recommended, with the observed
//! figures the recommendation rests on.

use std::io::Write;

use crate::model::{format_cpu, format_memory};
use crate::recommend::Report;

fn opt(v: Option<f64>, f: fn(f64) -> String) -> String {
    v.map(f).unwrap_or_else(|| "-".into())
}

fn change(current: Option<f64>, recommended: Option<f64>, f: fn(f64) -> String) -> String {
    match recommended {
        Some(r) => format!("{} -> {}", opt(current, f), f(r)),
        None => opt(current, f),
    }
}

pub fn write(report: &Report, out: &mut impl Write) -> std::io::Result<()> {
    let header = [
        "NAMESPACE",
        "WORKLOAD",
        "CONTAINER",
        "CPU REQUEST",
        "CPU P95",
        "MEMORY REQUEST",
        "MEMORY PEAK",
        "PODS",
        "SAMPLES",
        "NOTE",
    ];
    let mut rows: Vec<[String; 10]> = Vec::new();
    for r in &report.recommendations {
        let w = &r.key.workload;
        rows.push([
            w.namespace.clone(),
            format!("{}/{}", w.kind, w.name),
            r.key.container.clone(),
            change(r.current.cpu_request, r.recommended.cpu_request, format_cpu),
            opt(r.cpu_percentile, format_cpu),
            change(r.current.memory_request, r.recommended.memory_request, format_memory),
            opt(r.memory_peak, format_memory),
            r.pods.to_string(),
            r.samples.to_string(),
            r.skip.as_ref().map(ToString::to_string).unwrap_or_default(),
        ]);
    }
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
    let recommended = report.recommendations.iter().filter(|r| r.skip.is_none()).count();
    writeln!(
        out,
        "\n{} containers, {} with a recommendation, {} skipped",
        report.recommendations.len(),
        recommended,
        report.recommendations.len() - recommended
    )?;
    Ok(())
}
