//! The table for people: one row per container, current -> recommended requests and limits,
//! the change, usage now (metrics-server, when the run has it), the confidence and the
//! monthly savings, sorted by savings (largest first, ties in workload order); then the HPA
//! changes, the workloads skipped and why, a totals line and the run's warnings.
//!
//! Colour only when the caller asks for it (a terminal, no `NO_COLOR`, no `--no-color`):
//! increases red, decreases green, skipped rows dim.
//!
//! The table fits the terminal: `COLUMNS`, else the width of the terminal on stdout. When
//! the full layout is wider, a compact one (workload, container, requests, savings, note)
//! takes its place and the longest names are cut with `…`. Every name and note is shown
//! with its control characters made visible (`escape::visible`): an escape sequence in a
//! pushed label never reaches the terminal, coloured or not.

use std::io::{IsTerminal, Write};

use super::Context;
use super::escape::{truncate, visible};
use crate::model::{format_cpu, format_memory};
use crate::recommend::{Recommendation, Report};

/// How a cell is coloured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tone {
    Plain,
    Up,
    Down,
    Dim,
}

impl Tone {
    fn of(current: Option<f64>, recommended: Option<f64>) -> Tone {
        match (current, recommended) {
            (Some(a), Some(b)) if b > a => Tone::Up,
            (Some(a), Some(b)) if b < a => Tone::Down,
            (None, Some(_)) => Tone::Up,
            _ => Tone::Plain,
        }
    }

    fn paint(self, text: &str, color: bool) -> String {
        let code = match self {
            _ if !color => return text.to_string(),
            Tone::Plain => return text.to_string(),
            Tone::Up => "31",
            Tone::Down => "32",
            Tone::Dim => "2",
        };
        format!("\x1b[{code}m{text}\x1b[0m")
    }
}

fn opt(v: Option<f64>, f: fn(f64) -> String) -> String {
    v.map(f).unwrap_or_else(|| "-".into())
}

pub(super) fn change(current: Option<f64>, recommended: Option<f64>, f: fn(f64) -> String) -> String {
    if current == recommended {
        opt(current, f)
    } else {
        format!("{} -> {}", opt(current, f), opt(recommended, f))
    }
}

/// Relative change of one request: `-62 %`, `new`, or nothing when unchanged.
pub(super) fn delta(name: &str, current: Option<f64>, recommended: Option<f64>) -> Option<String> {
    match (current.filter(|c| *c > 0.0), recommended) {
        (a, b) if a == b => None,
        (Some(a), Some(b)) => Some(format!("{name} {:+.0} %", (b - a) / a * 100.0)),
        (None, Some(_)) => Some(format!("{name} new")),
        (Some(_), None) => Some(format!("{name} unset")),
        (None, None) => None,
    }
}

pub(super) fn money(v: f64) -> String {
    if v < 0.0 {
        format!("-${:.2}", -v)
    } else {
        format!("${v:.2}")
    }
}

pub(super) fn note(r: &Recommendation) -> String {
    if let Some(skip) = &r.skip {
        return skip.to_string();
    }
    // Each note names the resource it is about: a reader of `OOMKilled x2` next to four
    // values should not have to guess which one it explains.
    let mut flags = Vec::new();
    if r.oom_kills > 0 {
        flags.push(format!("memory: OOMKilled x{}", r.oom_kills));
    }
    if let Some(t) = r.throttling_ratio.filter(|_| r.throttled) {
        flags.push(format!("cpu: throttled {:.0} %", t * 100.0));
    }
    let reasons = &r.reasons;
    let held = |x: &Option<String>| x.as_deref().is_some_and(|s| s.contains("within hysteresis"));
    if held(&reasons.cpu_request) {
        flags.push("cpu request: within hysteresis".into());
    }
    if held(&reasons.memory_request) {
        flags.push("memory request: within hysteresis".into());
    }
    if r.confidence < 0.5 {
        flags.push("low confidence".into());
    }
    flags.join(", ")
}

/// Usage now of the busiest pod: `120m / 210Mi`.
fn usage_now(ctx: &Context, r: &Recommendation) -> String {
    ctx.usage(&r.key)
        .map(|u| format!("{} / {}", format_cpu(u.cpu_max), format_memory(u.memory_max)))
        .unwrap_or_else(|| "-".into())
}

type Row = Vec<(String, Tone)>;

fn row(r: &Recommendation, ctx: &Context, with_usage: bool) -> Row {
    let (cur, rec) = (&r.current, &r.recommended);
    let w = &r.key.workload;
    let d: Vec<String> = [
        delta("cpu", cur.cpu_request, rec.cpu_request),
        delta("mem", cur.memory_request, rec.memory_request),
    ]
    .into_iter()
    .flatten()
    .collect();
    let mut note = note(r);
    if let Some(vpa) = ctx.vpa_note(w) {
        note = if note.is_empty() { vpa } else { format!("{vpa}, {note}") };
    }
    let plain = |s: String| (visible(&s), Tone::Plain);
    let resource = |c: Option<f64>, n: Option<f64>, f: fn(f64) -> String| (change(c, n, f), Tone::of(c, n));
    let request_tone = match (
        Tone::of(cur.cpu_request, rec.cpu_request),
        Tone::of(cur.memory_request, rec.memory_request),
    ) {
        (Tone::Up, _) | (_, Tone::Up) => Tone::Up,
        (Tone::Down, _) | (_, Tone::Down) => Tone::Down,
        _ => Tone::Plain,
    };
    let mut cells = vec![
        plain(w.namespace.clone()),
        plain(format!("{}/{}", w.kind, w.name)),
        plain(r.key.container.clone()),
        resource(cur.cpu_request, rec.cpu_request, format_cpu),
        resource(cur.cpu_limit, rec.cpu_limit, format_cpu),
        resource(cur.memory_request, rec.memory_request, format_memory),
        resource(cur.memory_limit, rec.memory_limit, format_memory),
        (d.join(", "), request_tone),
    ];
    if with_usage {
        cells.push(plain(usage_now(ctx, r)));
    }
    cells.extend([
        plain(if r.samples > 0 {
            format!("{:.0} %", r.confidence * 100.0)
        } else {
            "-".into()
        }),
        plain(money(r.monthly_savings)),
        plain(note),
    ]);
    if r.skip.is_some() {
        for cell in &mut cells {
            cell.1 = Tone::Dim;
        }
    }
    cells
}

/// The compact layout's header; the note goes on its own lines under the row.
const COMPACT: [&str; 5] = ["WORKLOAD", "CONTAINER", "CPU REQUEST", "MEMORY REQUEST", "SAVINGS/MO"];

/// A full row cut down to the compact columns (`namespace/name`, the container, the two
/// requests, savings), and its note.
fn compact(full: &Row, r: &Recommendation) -> (Row, (String, Tone)) {
    let w = &r.key.workload;
    let n = full.len();
    let row = vec![
        (visible(&format!("{}/{}", w.namespace, w.name)), full[0].1),
        full[2].clone(),
        full[3].clone(),
        full[5].clone(),
        full[n - 2].clone(),
    ];
    (row, full[n - 1].clone())
}

/// `text` cut into lines of at most `width` characters at spaces (a word longer than a line
/// is cut), each after `indent`.
fn wrap(text: &str, indent: &str, width: usize) -> Vec<String> {
    wrap_with(text, indent, indent, width)
}

/// [`wrap`] with the first line after `first` and the others after `rest`.
fn wrap_with(text: &str, first: &str, rest: &str, width: usize) -> Vec<String> {
    let mut lines = Vec::new();
    let mut line = String::new();
    let room = |lines: &Vec<String>| {
        let indent = if lines.is_empty() { first } else { rest };
        width.saturating_sub(indent.chars().count()).max(MIN_FLEXIBLE)
    };
    let push = |lines: &mut Vec<String>, line: &str| {
        let indent = if lines.is_empty() { first } else { rest };
        lines.push(format!("{indent}{line}"));
    };
    for word in text.split(' ') {
        let word = truncate(word, room(&lines));
        let need = line.chars().count() + usize::from(!line.is_empty()) + word.chars().count();
        if !line.is_empty() && need > room(&lines) {
            push(&mut lines, &line);
            line.clear();
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(&word);
    }
    if !line.is_empty() {
        push(&mut lines, &line);
    }
    lines
}

/// A line of text after `indent`, wrapped to `width` when there is one and it is too long
/// (the lines after the first indented by four more spaces).
fn fitted(text: &str, indent: &str, width: Option<usize>) -> Vec<String> {
    match width {
        Some(width) if indent.chars().count() + text.chars().count() > width => {
            wrap_with(text, indent, &format!("{indent}    "), width)
        }
        _ => vec![format!("{indent}{text}")],
    }
}

/// Columns that may be cut to fit (the names), in the compact layout.
const FLEXIBLE: [usize; 2] = [0, 1];
/// The narrowest a cut column gets.
const MIN_FLEXIBLE: usize = 8;

/// The width the table must fit: `COLUMNS` when set (as for `ls`), else the width of the
/// terminal on stdout (`stty size`), else none (a pipe or a file: no limit).
pub fn terminal_width() -> Option<usize> {
    if let Some(n) = std::env::var("COLUMNS")
        .ok()
        .and_then(|c| c.trim().parse::<usize>().ok())
    {
        return (n > 0).then_some(n);
    }
    if !std::io::stdout().is_terminal() {
        return None;
    }
    let tty = std::fs::File::open("/dev/tty").ok()?;
    let out = std::process::Command::new("stty")
        .arg("size")
        .stdin(tty)
        .stderr(std::process::Stdio::null())
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    text.split_whitespace().nth(1)?.parse().ok().filter(|n: &usize| *n > 0)
}

/// Column widths for `rows` under `header`.
fn widths(header: &[String], rows: &[Row]) -> Vec<usize> {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, (cell, _)) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    widths
}

/// The width of a line of the table: the columns and two spaces between each.
fn total(widths: &[usize]) -> usize {
    widths.iter().sum::<usize>() + 2 * widths.len().saturating_sub(1)
}

/// Narrows the flexible columns (widest first) until the table fits `max`, then cuts their
/// cells to the widths found.
fn fit(header: &mut [String], rows: &mut [Row], max: usize) {
    let mut w = widths(header, rows);
    while total(&w) > max {
        let Some(&widest) = FLEXIBLE
            .iter()
            .filter(|&&i| w[i] > MIN_FLEXIBLE)
            .max_by_key(|&&i| (w[i], std::cmp::Reverse(i)))
        else {
            break;
        };
        w[widest] -= 1;
    }
    for &i in &FLEXIBLE {
        header[i] = truncate(&header[i], w[i]);
        for row in rows.iter_mut() {
            row[i].0 = truncate(&row[i].0, w[i]);
        }
    }
}

/// The plain table of a report alone (no colour, nothing beside the report).
pub fn write(report: &Report, out: &mut impl Write) -> std::io::Result<()> {
    write_with(report, &Context::empty(), false, out)
}

/// The table with what the run found beside the report; `color` adds ANSI colour. It fits
/// [`terminal_width`].
pub fn write_with(report: &Report, ctx: &Context, color: bool, out: &mut impl Write) -> std::io::Result<()> {
    write_fitted(report, ctx, color, terminal_width(), out)
}

/// The table fitted to `width` columns when given (see the module documentation).
pub fn write_fitted(
    report: &Report,
    ctx: &Context,
    color: bool,
    width: Option<usize>,
    out: &mut impl Write,
) -> std::io::Result<()> {
    let with_usage = !ctx.current_usage.is_empty();
    let mut header = vec![
        "NAMESPACE",
        "WORKLOAD",
        "CONTAINER",
        "CPU REQUEST",
        "CPU LIMIT",
        "MEMORY REQUEST",
        "MEMORY LIMIT",
        "DELTA",
    ];
    if with_usage {
        header.push("USAGE NOW");
    }
    header.extend(["CONFIDENCE", "SAVINGS/MO", "NOTE"]);
    let mut recs: Vec<&Recommendation> = report.containers().collect();
    // Stable: equal savings keep workload order.
    recs.sort_by(|a, b| b.monthly_savings.total_cmp(&a.monthly_savings));
    let mut rows: Vec<Row> = recs.iter().map(|r| row(r, ctx, with_usage)).collect();
    let mut header: Vec<String> = header.iter().map(|h| h.to_string()).collect();
    // In the compact layout, each row's note on the lines under it.
    let mut notes: Vec<Vec<String>> = Vec::new();
    let mut note_tones: Vec<Tone> = Vec::new();
    if let Some(max) = width
        && total(&widths(&header, &rows)) > max
    {
        header = COMPACT.iter().map(|h| h.to_string()).collect();
        let (cut, their_notes): (Vec<Row>, Vec<(String, Tone)>) =
            rows.iter().zip(&recs).map(|(full, r)| compact(full, r)).unzip();
        rows = cut;
        notes = their_notes
            .iter()
            .map(|(n, _)| if n.is_empty() { Vec::new() } else { wrap(n, "    ", max) })
            .collect();
        note_tones = their_notes.iter().map(|(_, t)| *t).collect();
        fit(&mut header, &mut rows, max);
    }
    let widths = widths(&header, &rows);
    let line = |cells: &[(String, Tone)]| {
        let mut s = String::new();
        for (i, ((cell, tone), w)) in cells.iter().zip(&widths).enumerate() {
            if i + 1 == cells.len() {
                s.push_str(&tone.paint(cell, color));
            } else {
                let pad = w - cell.chars().count();
                s.push_str(&tone.paint(cell, color));
                s.push_str(&" ".repeat(pad + 2));
            }
        }
        s.trim_end().to_string()
    };
    let header: Row = header.into_iter().map(|h| (h, Tone::Plain)).collect();
    writeln!(out, "{}", line(&header))?;
    for (i, row) in rows.iter().enumerate() {
        writeln!(out, "{}", line(row))?;
        for note in notes.get(i).into_iter().flatten() {
            writeln!(out, "{}", note_tones[i].paint(note, color))?;
        }
    }
    let hpas: Vec<_> = report
        .workloads
        .iter()
        .filter_map(|w| w.hpa.as_ref().map(|h| (w, h)))
        .collect();
    if !hpas.is_empty() {
        writeln!(out)?;
        for (w, h) in hpas {
            let unchanged = if h.changed() { "" } else { "no change: " };
            let text = format!("HPA {} ({}): {unchanged}{}", h.name, w.key, hpa_summary(h).join(", "));
            for line in fitted(&visible(&text), "", width) {
                writeln!(out, "{line}")?;
            }
        }
    }
    if !ctx.skipped.is_empty() {
        writeln!(out, "\nSkipped workloads:")?;
        for s in ctx.skipped {
            let text = visible(&format!("{}: {}", s.key, s.reason));
            for line in fitted(&text, "  ", width) {
                writeln!(out, "{}", Tone::Dim.paint(&line, color))?;
            }
        }
    }
    let t = &report.totals;
    let summary = format!(
        "{} containers in {} workloads, {} with a change, {} skipped; monthly savings {}",
        t.containers,
        t.workloads,
        t.changed,
        t.skipped,
        money(t.monthly_savings)
    );
    writeln!(out)?;
    for line in fitted(&summary, "", width) {
        writeln!(out, "{line}")?;
    }
    if !ctx.vpa.is_empty() {
        let text = format!(
            "{} workloads managed by an active VPA: left out of patches, manifest edits and --apply unless --force",
            ctx.vpa.len()
        );
        for line in fitted(&text, "", width) {
            writeln!(out, "{line}")?;
        }
    }
    for w in &report.warnings {
        for line in fitted(&format!("warning: {}", visible(w)), "", width) {
            writeln!(out, "{line}")?;
        }
    }
    Ok(())
}

/// `cpu target 70 % -> 85 %, minReplicas 2 -> 3, ...` for the table and the Markdown summary.
pub(super) fn hpa_summary(h: &crate::recommend::HpaRecommendation) -> Vec<String> {
    let mut parts: Vec<String> = h
        .targets
        .iter()
        .map(|t| {
            format!(
                "{} target {}{}",
                t.resource,
                was_is(t.current_percent, t.recommended_percent, " %"),
                if t.clamped { " (clamped)" } else { "" }
            )
        })
        .collect();
    parts.push(format!(
        "minReplicas {}",
        was_is(h.current_min_replicas, h.min_replicas, "")
    ));
    parts.push(format!(
        "maxReplicas {}",
        was_is(h.current_max_replicas, h.max_replicas, "")
    ));
    if h.sat_at_max {
        parts.push(format!(
            "sat at maxReplicas for {:.1} h",
            h.at_max_seconds as f64 / 3600.0
        ));
    }
    parts
}

/// `2 -> 3`, or `2` alone when nothing changes (never `2 -> 2`).
fn was_is<T: PartialEq + std::fmt::Display>(was: T, is: T, unit: &str) -> String {
    if was == is {
        format!("{was}{unit}")
    } else {
        format!("{was}{unit} -> {is}{unit}")
    }
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

    #[test]
    fn colour_only_when_asked() {
        assert_eq!(Tone::of(Some(0.5), Some(0.25)), Tone::Down);
        assert_eq!(Tone::of(Some(0.25), Some(0.5)), Tone::Up);
        assert_eq!(Tone::Up.paint("x", false), "x");
        assert_eq!(Tone::Up.paint("x", true), "\x1b[31mx\x1b[0m");
        assert_eq!(Tone::Down.paint("x", true), "\x1b[32mx\x1b[0m");
    }

    #[test]
    fn unchanged_hpa_values_have_no_arrow() {
        assert_eq!(was_is(2, 2, ""), "2");
        assert_eq!(was_is(70, 85, " %"), "70 % -> 85 %");
    }

    #[test]
    fn flexible_columns_shrink_widest_first() {
        let mut header: Vec<String> = COMPACT.iter().map(|h| h.to_string()).collect();
        let cell = |s: &str| (s.to_string(), Tone::Plain);
        let mut rows = vec![vec![
            cell(&"w".repeat(60)),
            cell(&"c".repeat(30)),
            cell("500m -> 250m"),
            cell("1Gi -> 512Mi"),
            cell("$1.00"),
        ]];
        fit(&mut header, &mut rows, 80);
        assert!(total(&widths(&header, &rows)) <= 80);
        assert!(rows[0][0].0.ends_with('…'));
        assert_eq!(
            wrap("memory: OOMKilled x98, cpu request: within hysteresis", "  ", 24),
            ["  memory: OOMKilled x98,", "  cpu request: within", "  hysteresis"]
        );
    }
}
