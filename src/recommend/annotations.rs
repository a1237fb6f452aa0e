//! Per-workload policy overrides from `rightsizer.dev/*` annotations, the last policy layer:
//! `ignore`, `cpu-percentile` (`0.95`, `95%`, `p95`), `cpu-buffer` and `memory-buffer`
//! (`0.2`, `20%`: one scale with the config, fractions), `detect-changes`, `memory-mode` (`peak`, `daily-peaks`), `min-cpu`, `max-cpu`, `min-memory`,
//! `max-memory` (quantities), `cpu-limit` (`keep`, `always`, `remove`), `keep-guaranteed`
//! and `recency-half-life-hours`. An invalid value is reported by the caller as a warning
//! naming the workload and key.

use crate::model::{Workload, parse_cpu, parse_memory};

use super::policy::{ANNOTATION_PREFIX, CpuLimitMode, MemoryMode, Overrides};
use super::validate::parse_fraction;

/// A percentile or margin on the one scale of the config (`validate::parse_fraction`): `0.95`,
/// `95%` or `p95`; `0.2` or `20%`. A bare `95` or `20` is a fraction out of range: the
/// caller warns naming the workload and key, and the workload keeps the defaults.
fn percentile(v: &str) -> Option<f64> {
    parse_fraction(v).ok().filter(|f| *f > 0.0 && *f <= 1.0)
}

fn margin(v: &str) -> Option<f64> {
    parse_fraction(v).ok().filter(|f| (0.0..=1.0).contains(f))
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
            "cpu-buffer" => margin(value).map(|v| o.cpu_buffer = Some(v)),
            "memory-buffer" => margin(value).map(|v| o.memory_buffer = Some(v)),
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
            "detect-changes" => boolean(value).map(|v| o.detect_changes = Some(v)),
            _ => Some(()),
        };
        if ok.is_none() {
            let hint = match name {
                "cpu-percentile" => " (a fraction in (0, 1]: 0.95, \"95%\" or \"p95\")",
                "cpu-buffer" | "memory-buffer" => " (a fraction in [0, 1]: 0.2 or \"20%\")",
                _ => "",
            };
            problems.push(format!(
                "{}: invalid annotation {key}={value:?}{hint}; using the defaults for this workload",
                w.key
            ));
        }
    }
    o
}
