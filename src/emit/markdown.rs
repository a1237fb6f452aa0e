//! The Markdown summary for a pull-request body (`--markdown FILE`, `--format markdown`):
//! the totals, a table of the changes (largest savings first), the reason behind every value,
//! the HPA changes, and what was left out and why (skipped workloads and containers,
//! workloads an active VPA manages), then the run's warnings. GitHub-flavoured, long sections
//! fold into `<details>`. Names are data (`escape`): each is a code span no backtick in it can
//! close, every other text is escaped so no name starts markup, raw HTML or a new block.

use std::io::Write;

use super::Context;
use super::escape::{md_code, md_code_cell, md_text};
use super::table::{change, hpa_summary, money};
use crate::model::{format_cpu, format_memory};
use crate::recommend::{Recommendation, Report};

/// Text in a list item or table cell (pipes are escaped by `md_text` too).
fn cell(text: &str) -> String {
    md_text(text)
}

fn date(unix: i64) -> String {
    let days = unix.div_euclid(86_400);
    // Civil date from days since 1970-01-01 (H. Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}")
}

fn reasons(r: &Recommendation) -> Vec<String> {
    let x = &r.reasons;
    [
        ("cpu request", &x.cpu_request),
        ("cpu limit", &x.cpu_limit),
        ("memory request", &x.memory_request),
        ("memory limit", &x.memory_limit),
    ]
    .into_iter()
    .filter_map(|(what, why)| why.as_ref().map(|why| format!("{what}: {why}")))
    .chain(r.notes.iter().cloned())
    .collect()
}

pub fn write(report: &Report, ctx: &Context, out: &mut impl Write) -> std::io::Result<()> {
    let t = &report.totals;
    let changed: Vec<&Recommendation> = {
        let mut c: Vec<&Recommendation> = report.containers().filter(|r| r.changed()).collect();
        c.sort_by(|a, b| b.monthly_savings.total_cmp(&a.monthly_savings));
        c
    };
    writeln!(out, "## rightsizer: resource recommendations\n")?;
    writeln!(
        out,
        "Estimated monthly savings: **{}**. {} containers in {} workloads, **{} with a change**, {} skipped; usage from {} to {}{}.\n",
        money(t.monthly_savings),
        t.containers,
        t.workloads,
        t.changed,
        t.skipped,
        date(report.window_start),
        date(report.window_end),
        if ctx.source.is_empty() {
            String::new()
        } else {
            format!(" ({})", cell(ctx.source))
        }
    )?;
    if changed.is_empty() {
        writeln!(out, "No changes recommended.\n")?;
    } else {
        writeln!(out, "### Changes\n")?;
        writeln!(
            out,
            "| Workload | Container | CPU request | CPU limit | Memory request | Memory limit | Confidence | Savings/mo |"
        )?;
        writeln!(out, "|---|---|---|---|---|---|---:|---:|")?;
        for r in &changed {
            let (c, n) = (&r.current, &r.recommended);
            let mut workload = md_code_cell(&r.key.workload.to_string());
            if let Some(vpa) = ctx.vpa_note(&r.key.workload) {
                workload.push_str(&format!(" ({})", cell(&vpa)));
            }
            writeln!(
                out,
                "| {} | {} | {} | {} | {} | {} | {:.0} % | {} |",
                workload,
                md_code_cell(&r.key.container),
                change(c.cpu_request, n.cpu_request, format_cpu).replace("->", "→"),
                change(c.cpu_limit, n.cpu_limit, format_cpu).replace("->", "→"),
                change(c.memory_request, n.memory_request, format_memory).replace("->", "→"),
                change(c.memory_limit, n.memory_limit, format_memory).replace("->", "→"),
                r.confidence * 100.0,
                money(r.monthly_savings)
            )?;
        }
        writeln!(out, "\n<details><summary>Why</summary>\n")?;
        for r in &changed {
            writeln!(
                out,
                "- {}: {}",
                md_code(&r.key.to_string()),
                cell(&reasons(r).join("; "))
            )?;
        }
        writeln!(out, "\n</details>\n")?;
    }
    let hpas: Vec<_> = report
        .workloads
        .iter()
        .filter_map(|w| w.hpa.as_ref().filter(|h| h.changed()).map(|h| (w, h)))
        .collect();
    if !hpas.is_empty() {
        writeln!(out, "### HPA changes\n")?;
        for (w, h) in hpas {
            writeln!(
                out,
                "- {} HPA {}: {}",
                md_code(&w.key.to_string()),
                md_code(&h.name),
                cell(&hpa_summary(h).join(", ").replace("->", "→"))
            )?;
            for reason in h.targets.iter().map(|t| &t.reason).chain(&h.reasons) {
                writeln!(out, "  - {}", cell(reason))?;
            }
        }
        writeln!(out)?;
    }
    let skipped_containers: Vec<&Recommendation> = report.containers().filter(|r| r.skip.is_some()).collect();
    if !ctx.skipped.is_empty() || !skipped_containers.is_empty() || !ctx.vpa.is_empty() {
        writeln!(out, "### Not changed\n")?;
        for (key, mode) in ctx.vpa {
            writeln!(
                out,
                "- {}: managed by VPA ({}); left out unless `--force`",
                md_code(&key.to_string()),
                cell(mode)
            )?;
        }
        for s in ctx.skipped {
            writeln!(out, "- {}: {}", md_code(&s.key.to_string()), cell(&s.reason))?;
        }
        for r in skipped_containers {
            if let Some(skip) = &r.skip {
                writeln!(out, "- {}: {}", md_code(&r.key.to_string()), cell(&skip.to_string()))?;
            }
        }
        writeln!(out)?;
    }
    if !report.warnings.is_empty() {
        writeln!(out, "### Warnings\n")?;
        for w in &report.warnings {
            writeln!(out, "- {}", cell(w))?;
        }
        writeln!(out)?;
    }
    writeln!(out, "<sub>Generated by rightsizer {}.</sub>", env!("CARGO_PKG_VERSION"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_and_cells() {
        assert_eq!(date(1_793_491_200), "2026-11-01");
        assert_eq!(date(0), "1970-01-01");
        assert_eq!(cell("a|b"), "a\\|b");
    }
}
