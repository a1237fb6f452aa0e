//! The CSV report: one row per container with a header line, RFC 4180 (CRLF line ends, a
//! field with a comma, quote or line break is quoted, quotes doubled). The table's columns,
//! split so a spreadsheet can use them: quantities as Kubernetes spells them and as raw
//! numbers (cores, bytes), current and recommended side by side. Rows in key order
//! (namespace, kind, workload) and containers in spec order, like the JSON report.
//!
//! Names and notes are data (`escape::csv_text`): control characters are made visible and a
//! text cell that starts with `=`, `+`, `-` or `@` is prefixed with `'`, as OWASP's
//! CSV-injection guidance says, so a spreadsheet never evaluates a pushed label as a
//! formula. Number columns are written as numbers (a negative saving stays `-1.5`).

use std::io::Write;

use super::Context;
use super::escape::csv_text;
use super::table::note;
use crate::model::{format_cpu, format_memory};
use crate::recommend::Report;

pub const HEADER: [&str; 28] = [
    "namespace",
    "kind",
    "workload",
    "container",
    "role",
    "cpu_request",
    "cpu_request_recommended",
    "cpu_limit",
    "cpu_limit_recommended",
    "memory_request",
    "memory_request_recommended",
    "memory_limit",
    "memory_limit_recommended",
    "cpu_request_cores",
    "cpu_request_recommended_cores",
    "cpu_limit_cores",
    "cpu_limit_recommended_cores",
    "memory_request_bytes",
    "memory_request_recommended_bytes",
    "memory_limit_bytes",
    "memory_limit_recommended_bytes",
    "usage_now_cpu_cores",
    "usage_now_memory_bytes",
    "confidence",
    "monthly_savings",
    "vpa_mode",
    "skipped",
    "note",
];

/// One RFC 4180 field.
fn field(value: &str) -> String {
    // A cell `csv_text` neutralised is quoted too, as OWASP asks.
    if value.contains([',', '"', '\r', '\n']) || value.starts_with('\'') {
        format!("\"{}\"", value.replace('"', "\"\""))
    } else {
        value.to_string()
    }
}

fn quantity(v: Option<f64>, f: fn(f64) -> String) -> String {
    v.map(f).unwrap_or_default()
}

fn number(v: Option<f64>) -> String {
    v.map(|v| v.to_string()).unwrap_or_default()
}

pub fn write(report: &Report, ctx: &Context, out: &mut impl Write) -> std::io::Result<()> {
    let line = |out: &mut dyn Write, cells: &[String]| {
        let joined: Vec<String> = cells.iter().map(|c| field(c)).collect();
        write!(out, "{}\r\n", joined.join(","))
    };
    line(out, &HEADER.map(String::from))?;
    for w in super::document::by_key(report) {
        for r in &w.containers {
            let (cur, rec) = (&r.current, &r.recommended);
            let usage = ctx.usage(&r.key);
            let row = [
                csv_text(&w.key.namespace),
                w.key.kind.to_string(),
                csv_text(&w.key.name),
                csv_text(&r.key.container),
                format!("{:?}", r.role),
                quantity(cur.cpu_request, format_cpu),
                quantity(rec.cpu_request, format_cpu),
                quantity(cur.cpu_limit, format_cpu),
                quantity(rec.cpu_limit, format_cpu),
                quantity(cur.memory_request, format_memory),
                quantity(rec.memory_request, format_memory),
                quantity(cur.memory_limit, format_memory),
                quantity(rec.memory_limit, format_memory),
                number(cur.cpu_request),
                number(rec.cpu_request),
                number(cur.cpu_limit),
                number(rec.cpu_limit),
                number(cur.memory_request),
                number(rec.memory_request),
                number(cur.memory_limit),
                number(rec.memory_limit),
                number(usage.map(|u| u.cpu_max)),
                number(usage.map(|u| u.memory_max)),
                format!("{:.3}", r.confidence),
                format!("{:.2}", r.monthly_savings),
                csv_text(ctx.vpa.get(&w.key).map(String::as_str).unwrap_or_default()),
                csv_text(&r.skip.as_ref().map(ToString::to_string).unwrap_or_default()),
                csv_text(&if r.skip.is_some() { String::new() } else { note(r) }),
            ];
            line(out, &row)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_quoted_as_rfc_4180_says() {
        assert_eq!(field("plain"), "plain");
        assert_eq!(field("a,b"), "\"a,b\"");
        assert_eq!(field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(field("two\nlines"), "\"two\nlines\"");
    }

    #[test]
    fn hostile_names_are_text_cells() {
        assert_eq!(
            field(&csv_text("=HYPERLINK(\"http://x\")")),
            "\"'=HYPERLINK(\"\"http://x\"\")\""
        );
        assert_eq!(field(&csv_text("a\x1b[2Jb")), "a\\x1b[2Jb");
    }
}
