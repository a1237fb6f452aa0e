//! The backtest report for people: a plain-text table and Markdown (for a pull request or a
//! wiki page). Both show the totals per method first, then every container per method.

use std::fmt::Write;

use super::{Backtest, rfc3339};
use crate::model::{format_cpu, format_memory};
use crate::recommend::backtest::Score;

const HEADER: [&str; 8] = [
    "METHOD",
    "CPU SHORT",
    "CPU SHORTFALL",
    "CPU SLACK",
    "OVER MEM LIMIT",
    "MEM SLACK",
    "CPU REQUEST",
    "MEM LIMIT",
];

fn percent(s: &Score) -> String {
    s.cpu_shortfall_rate()
        .map_or_else(|| "-".into(), |r| format!("{:.1}%", r * 100.0))
}

fn cells(method: &str, s: &Score, cpu: String, memory: String) -> Vec<String> {
    vec![
        method.to_string(),
        percent(s),
        format!("{:.2} core-h", s.cpu_shortfall_core_hours),
        format!("{:.2} core-h", s.cpu_slack_core_hours),
        format!("{}/{} pods", s.pods_over_memory_limit, s.memory_pods),
        format!("{:.2} GiB-h", s.memory_slack_gib_hours),
        cpu,
        memory,
    ]
}

fn optional(v: Option<f64>, format: fn(f64) -> String) -> String {
    v.map_or_else(|| "-".into(), format)
}

/// A heading and its rows of cells.
type Section = (String, Vec<Vec<String>>);

/// Title lines, then the sections: the totals, then one per container.
fn sections(b: &Backtest) -> (Vec<String>, Vec<Section>) {
    let mut title = vec![format!(
        "backtest of {}: trained on {} .. {}, scored on {} .. {} (step {} s)",
        b.source,
        rfc3339(b.training_start),
        rfc3339(b.training_end),
        rfc3339(b.training_end),
        rfc3339(b.held_out_end),
        b.step
    )];
    if let (Some(first), Some(last)) = (b.data_start, b.data_end) {
        title.push(format!("data from {} to {}", rfc3339(first), rfc3339(last)));
    }
    let totals = b
        .evaluation
        .totals
        .iter()
        .map(|t| cells(t.method, &t.score, String::new(), String::new()))
        .collect();
    let mut out = vec![("all containers".to_string(), totals)];
    for c in &b.evaluation.containers {
        let rows = c
            .candidates
            .iter()
            .map(|cand| {
                cells(
                    cand.method,
                    &cand.score,
                    optional(cand.resources.cpu_request, format_cpu),
                    optional(cand.resources.memory_limit, format_memory),
                )
            })
            .collect();
        let mut heading = c.key.to_string();
        for n in &c.notes {
            let _ = write!(heading, " ({n})");
        }
        out.push((heading, rows));
    }
    (title, out)
}

/// Aligned columns, one block per section.
pub fn table(b: &Backtest) -> String {
    let (title, sections) = sections(b);
    let mut widths: Vec<usize> = HEADER.iter().map(|h| h.len()).collect();
    for row in sections.iter().flat_map(|(_, rows)| rows) {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: &[String]| {
        let mut l = String::new();
        for (cell, w) in cells.iter().zip(&widths) {
            let _ = write!(l, "{cell:<w$}  ");
        }
        l.trim_end().to_string() + "\n"
    };
    let mut out = title.join("\n") + "\n";
    for w in &b.warnings {
        let _ = writeln!(out, "warning: {w}");
    }
    for (heading, rows) in &sections {
        let _ = write!(out, "\n{heading}\n");
        out.push_str(&line(&HEADER.map(String::from)));
        for row in rows {
            out.push_str(&line(row));
        }
    }
    out
}

/// The same sections as Markdown tables.
pub fn markdown(b: &Backtest) -> String {
    let (title, sections) = sections(b);
    let mut out = format!("## rightsizer backtest\n\n{}\n", title.join("  \n"));
    for w in &b.warnings {
        let _ = writeln!(out, "\n> warning: {w}");
    }
    for (heading, rows) in &sections {
        let _ = write!(
            out,
            "\n### {heading}\n\n| {} |\n|{}\n",
            HEADER.join(" | "),
            "---|".repeat(HEADER.len())
        );
        for row in rows {
            let _ = writeln!(out, "| {} |", row.join(" | "));
        }
    }
    out
}
