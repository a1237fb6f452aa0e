//! Per-workload policy overrides from `rightsizer.dev/*` annotations, the last policy layer:
//! `ignore`, `cpu-percentile` (`95`, `p95`), `cpu-buffer` and `memory-buffer` (percent: `20`,
//! `20%`), `memory-mode` (`peak`, `daily-peaks`), `min-cpu`, `max-cpu`, `min-memory`,
//! `max-memory` (quantities), `cpu-limit` (`keep`, `always`, `remove`), `keep-guaranteed`
//! and `recency-half-life-hours`. An invalid value is reported by the caller as a warning
//! naming the workload and key.

use crate::model::{Workload, parse_cpu, parse_memory};

use super::policy::{ANNOTATION_PREFIX, CpuLimitMode, MemoryMode, Overrides};

/// A percentage as `20` or `20%` (a bare number is percent too: `0.5` is 0.5 %).
fn percent(v: &str) -> Option<f64> {
    let n: f64 = v.trim().trim_end_matches('%').trim().parse().ok()?;
    (n.is_finite() && n >= 0.0).then_some(n / 100.0)
}

/// A percentile as `95`, `p95` or `99.9`.
fn percentile(v: &str) -> Option<f64> {
    let n: f64 = v.trim().trim_start_matches(['p', 'P']).parse().ok()?;
    (n > 0.0 && n <= 100.0).then_some(n / 100.0)
}

fn boolean(v: &str) -> Option<bool> {
    match v.trim() {
        "true" | "True" | "yes" | "1" => Some(true),
        "false" | "False" | "no" | "0" => Some(false),
        _ => None,
    }
}

fn memory_mode(v: &str) -> Option<MemoryMode> {
    match v.trim() {
        "peak" => Some(MemoryMode::Peak),
        "daily-peaks" | "dailyPeaks" => Some(MemoryMode::DailyPeaks),
        _ => None,
    }
}

fn cpu_limit_mode(v: &str) -> Option<CpuLimitMode> {
    match v.trim() {
        "keep" => Some(CpuLimitMode::Keep),
        "always" => Some(CpuLimitMode::Always),
        "remove" | "never" => Some(CpuLimitMode::Remove),
        _ => None,
    }
}

/// Reads the `rightsizer.dev/*` annotations this module knows; other keys under the prefix
/// belong to other stages (the recommendation annotations `emit` writes) and are ignored.
pub fn overrides(w: &Workload, problems: &mut Vec<String>) -> Overrides {
    let mut o = Overrides::default();
    let keys = w
        .annotations
        .range::<str, _>((std::ops::Bound::Included(ANNOTATION_PREFIX), std::ops::Bound::Unbounded))
        .take_while(|(k, _)| k.starts_with(ANNOTATION_PREFIX));
    for (key, value) in keys {
        let name = &key[ANNOTATION_PREFIX.len()..];
        let ok = match name {
            "ignore" => boolean(value).map(|v| o.ignore = Some(v)),
            "cpu-percentile" => percentile(value).map(|v| o.cpu_percentile = Some(v)),
            "cpu-buffer" => percent(value).map(|v| o.cpu_buffer = Some(v)),
            "memory-buffer" => percent(value).map(|v| o.memory_buffer = Some(v)),
            "memory-mode" => memory_mode(value).map(|v| o.memory_mode = Some(v)),
            "min-cpu" => parse_cpu(value).ok().map(|v| o.min_cpu = Some(v)),
            "max-cpu" => parse_cpu(value).ok().map(|v| o.max_cpu = Some(v)),
            "min-memory" => parse_memory(value).ok().map(|v| o.min_memory = Some(v)),
            "max-memory" => parse_memory(value).ok().map(|v| o.max_memory = Some(v)),
            "cpu-limit" => cpu_limit_mode(value).map(|v| o.cpu_limit = Some(v)),
            "keep-guaranteed" => boolean(value).map(|v| o.keep_guaranteed = Some(v)),
            "recency-half-life-hours" => value
                .trim()
                .parse::<f64>()
                .ok()
                .filter(|h| *h > 0.0)
                .map(|v| o.recency_half_life_hours = Some(v)),
            _ => Some(()),
        };
        if ok.is_none() {
            problems.push(format!(
                "{}: invalid annotation {key}={value:?}; using the defaults for this workload",
                w.key
            ));
        }
    }
    o
}
