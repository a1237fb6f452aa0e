//! The default strategy for one container (DESIGN.md, "Default strategy and why"; every
//! default and its source is on `policy::Rules`):
//! - CPU request = p95 of the pooled 5-minute usage of all replicas over the window (or of
//!   the recency-weighted histogram when the policy and the usage provide one);
//! - CPU limit only where there is one today (or the policy asks): max(p99 x 1.25, peak
//!   5-minute rate), at least the request, and when CFS throttled more than the target today
//!   (usage was cut off at the limit, so it under-reports demand) at least the current limit
//!   x (1 + max(throttled share, 25 %));
//! - memory request = limit = peak working set + 15 % (or p90 of daily peaks + 15 %); after
//!   an OOM kill at least max(previous limit x 1.2, previous limit + 100 MiB) (the VPA's bump);
//! - every value widened for low confidence, floored, capped, rounded up to tidy steps, and
//!   held at the current value within hysteresis;
//! - a Guaranteed workload stays Guaranteed: limits = requests, and the CPU request is sized
//!   like a limit (it is one).

use std::fmt::Write;

use crate::model::{ContainerKey, ContainerSpec, ContainerUsage, DecayingSketch, format_cpu, format_memory};

use super::confidence::confidence;
use super::explain::{days, percentile_name, signed_percent, thousands};
use super::policy::{CpuLimitMode, MemoryMode, Rules};
use super::report::{QosClass, Reasons, Recommendation, Skip};

/// What one container is sized with, besides its own usage.
pub struct Context<'a> {
    pub rules: &'a Rules,
    /// Resolution of the CPU samples, seconds.
    pub step: i64,
    /// The workload is Guaranteed today and the policy keeps it so.
    pub guaranteed: bool,
    /// The recency-weighted CPU histogram, when the collector filled one.
    pub decayed: Option<&'a DecayingSketch>,
    /// Why the whole workload is skipped (`rightsizer.dev/ignore`).
    pub ignored_by: Option<&'static str>,
}

/// Rounds `v` up to a multiple of `step` (tolerating float noise just above a multiple).
pub fn round_up(v: f64, step: f64) -> f64 {
    (v / step - 1e-9).ceil() * step
}

/// A value after floors, caps and rounding, with what was applied.
struct Settled {
    value: f64,
    note: String,
    held: bool,
}

/// Floor, cap, round up to `step`, then hysteresis against `current`: no change under
/// `ratio` of the current value or under `min_step`, unless the current value is itself
/// outside the floor and cap. `show` formats values for the reason.
fn settle(
    v: f64,
    current: Option<f64>,
    (floor, cap, step): (f64, Option<f64>, f64),
    (ratio, min_step): (f64, f64),
    show: fn(f64) -> String,
) -> Settled {
    let mut note = String::with_capacity(64);
    let mut value = v;
    if value < floor {
        value = floor;
        let _ = write!(note, ", raised to the {} floor", show(floor));
    }
    value = round_up(value, step);
    if let Some(cap) = cap
        && value > cap
    {
        value = cap;
        let _ = write!(note, ", capped at {}", show(cap));
    }
    let _ = write!(note, ", rounded to {}", show(value));
    if let Some(c) = current
        && c >= floor
        && cap.is_none_or(|m| c <= m)
    {
        let delta = (value - c).abs();
        if delta > 0.0 && (delta < ratio * c || delta < min_step) {
            let _ = write!(
                note,
                "; within hysteresis ({:.0} % or {}) of the current {}: unchanged",
                ratio * 100.0,
                show(min_step),
                show(c)
            );
            return Settled {
                value: c,
                note,
                held: true,
            };
        }
    }
    Settled {
        value,
        note,
        held: false,
    }
}

fn skipped(mut r: Recommendation, skip: Skip) -> Recommendation {
    r.recommended = r.current;
    r.skip = Some(skip);
    r
}

/// Sizes one container. A skipped container's `recommended` equals its `current`.
pub fn size(key: ContainerKey, spec: &ContainerSpec, usage: Option<&ContainerUsage>, ctx: &Context) -> Recommendation {
    let rules = ctx.rules;
    let current = spec.resources;
    let mut r = Recommendation {
        key,
        role: spec.role,
        current,
        recommended: current,
        cpu_percentile: None,
        memory_peak: None,
        samples: 0,
        pods: 0,
        history_seconds: 0,
        confidence: 0.0,
        qos: QosClass::BestEffort,
        oom_kills: 0,
        throttling_ratio: None,
        throttled: false,
        monthly_savings: 0.0,
        reasons: Reasons::default(),
        notes: Vec::new(),
        skip: None,
    };
    let Some(u) = usage else {
        let skip = match ctx.ignored_by {
            Some(by) => Skip::Ignored { by: by.into() },
            None => Skip::NoHistory,
        };
        return skipped(r, skip);
    };
    r.samples = u.cpu.count();
    r.pods = u.pods;
    r.history_seconds = u.span_seconds();
    r.cpu_percentile = u.cpu.quantile(rules.cpu_percentile);
    r.memory_peak = u.memory_peak;
    r.oom_kills = u.oom_kills;
    r.throttling_ratio = u.throttling_ratio();
    r.throttled = r.throttling_ratio.is_some_and(|t| t > rules.throttling_target);
    let conf = confidence(u, ctx.step, rules);
    r.confidence = conf.score;
    if r.oom_kills > 0 {
        r.notes.push(format!("OOMKilled {} times in the window", r.oom_kills));
    }
    if let Some(t) = r.throttling_ratio.filter(|_| r.throttled) {
        r.notes.push(format!(
            "CPU throttled in {:.1} % of CFS periods (target {:.1} %)",
            t * 100.0,
            rules.throttling_target * 100.0
        ));
    }
    if let Some(by) = ctx.ignored_by {
        return skipped(r, Skip::Ignored { by: by.into() });
    }
    if r.samples == 0 {
        return skipped(r, Skip::NoHistory);
    }
    if r.samples < rules.min_samples {
        let skip = Skip::TooFewSamples {
            samples: r.samples,
            needed: rules.min_samples,
        };
        return skipped(r, skip);
    }
    if r.history_seconds < rules.min_history_seconds {
        let skip = Skip::TooShortHistory {
            seconds: r.history_seconds,
            needed: rules.min_history_seconds,
        };
        return skipped(r, skip);
    }
    let window = format!(
        "{} samples from {} pods over {}",
        thousands(r.samples),
        r.pods,
        days(r.history_seconds)
    );
    let widen = if conf.margin > 1.0 + 1e-9 {
        format!(
            ", x{:.2} for low confidence ({:.1} d of history, full at {:.0} d)",
            conf.margin, conf.days, rules.full_confidence_days
        )
    } else {
        String::new()
    };
    let hysteresis = (rules.hysteresis, rules.hysteresis_cpu);
    let cpu_bounds = (rules.min_cpu, rules.max_cpu, rules.cpu_step);

    // CPU limit first: a Guaranteed workload's request is its limit.
    let wants_limit = match rules.cpu_limit {
        CpuLimitMode::Keep => current.cpu_limit.is_some(),
        CpuLimitMode::Always => true,
        CpuLimitMode::Remove => false,
    } || ctx.guaranteed;
    let limit_raw = cpu_limit_value(u, current.cpu_limit, r.throttling_ratio.filter(|_| r.throttled), rules);

    // CPU request.
    let (cpu_raw, cpu_source) = cpu_request_value(r.cpu_percentile, ctx, rules, &mut r.notes);
    if let Some(p) = cpu_raw {
        let buffered = p * (1.0 + rules.cpu_buffer) * conf.margin;
        let (target, how) = match limit_raw {
            Some((l, ref lhow)) if ctx.guaranteed => (l.max(buffered), format!(", sized as the limit ({lhow})")),
            _ => (buffered, String::new()),
        };
        let s = settle(target, current.cpu_request, cpu_bounds, hysteresis, format_cpu);
        r.recommended.cpu_request = Some(s.value);
        r.reasons.cpu_request = Some(format!(
            "{cpu_source} of {window} = {}, {}{widen}{how}{}",
            format_cpu(p),
            signed_percent(rules.cpu_buffer),
            s.note
        ));
    }
    let request = r.recommended.cpu_request;

    // CPU limit.
    if ctx.guaranteed {
        r.recommended.cpu_limit = request;
        r.reasons.cpu_limit = Some("= request: keeps the workload Guaranteed".into());
    } else if wants_limit {
        if let Some((l, how)) = limit_raw {
            let floor = request.unwrap_or(rules.min_cpu).max(rules.min_cpu);
            let s = settle(
                l,
                current.cpu_limit,
                (floor, None, rules.cpu_step),
                hysteresis,
                format_cpu,
            );
            r.recommended.cpu_limit = Some(s.value);
            r.reasons.cpu_limit = Some(format!("{how}{}", s.note));
        }
    } else {
        r.recommended.cpu_limit = None;
        r.reasons.cpu_limit = Some(match (rules.cpu_limit, current.cpu_limit) {
            (CpuLimitMode::Remove, Some(_)) => "removed (policy cpuLimit: remove): limits cause throttling".into(),
            _ => "none: limits cause CFS throttling, requests already share CPU fairly".into(),
        });
    }

    // Memory request = limit.
    if let Some((raw, source)) = memory_value(u, rules) {
        let mut v = raw * (1.0 + rules.memory_buffer) * conf.margin;
        let mut reason = format!(
            "{source} = {}, {}{widen}",
            format_memory(raw),
            signed_percent(rules.memory_buffer)
        );
        if u.oom_kills > 0 {
            let prev = current.memory_limit.or(current.memory_request).unwrap_or(raw);
            let bump = (prev * rules.oom_bump_ratio).max(prev + rules.oom_min_bump);
            reason.push_str(&format!(
                "; OOMKilled {} times: at least max({} x {}, {} + {}) = {}",
                u.oom_kills,
                format_memory(prev),
                rules.oom_bump_ratio,
                format_memory(prev),
                format_memory(rules.oom_min_bump),
                format_memory(bump)
            ));
            v = v.max(bump);
        }
        let bounds = (rules.min_memory, rules.max_memory, rules.memory_step);
        let hysteresis = (rules.hysteresis, rules.hysteresis_memory);
        let s = settle(v, current.memory_request, bounds, hysteresis, format_memory);
        if u.oom_kills > 0 && rules.max_memory.is_some_and(|m| m < v) {
            r.notes
                .push("max-memory caps memory below what the OOM bump asks".into());
        }
        r.recommended.memory_request = Some(s.value);
        r.reasons.memory_request = Some(format!("{reason}{}", s.note));
        let limit = if current.memory_limit.is_some_and(|c| c >= s.value) && !ctx.guaranteed {
            settle(
                s.value,
                current.memory_limit,
                (s.value, None, rules.memory_step),
                hysteresis,
                format_memory,
            )
        } else {
            Settled {
                value: s.value,
                note: String::new(),
                held: false,
            }
        };
        r.recommended.memory_limit = Some(limit.value);
        r.reasons.memory_limit = Some(if limit.held {
            format!("= request {}{}", format_memory(s.value), limit.note)
        } else if ctx.guaranteed {
            "= request: keeps the workload Guaranteed".into()
        } else {
            "= request: memory cannot be reclaimed without an OOM kill".into()
        });
    } else {
        r.notes.push("no working-set samples: memory unchanged".into());
    }
    r
}

/// The CPU figure the request is based on, and how it was obtained.
fn cpu_request_value(
    pooled: Option<f64>,
    ctx: &Context,
    rules: &Rules,
    notes: &mut Vec<String>,
) -> (Option<f64>, String) {
    let name = percentile_name(rules.cpu_percentile);
    if let Some(h) = rules.recency_half_life_hours {
        match ctx.decayed.filter(|d| !d.is_empty()) {
            Some(d) => {
                return (
                    d.quantile(rules.cpu_percentile),
                    format!(
                        "recency-weighted {name} (half-life {:.0} h)",
                        d.half_life_seconds() / 3600.0
                    ),
                );
            }
            None => notes.push(format!(
                "recency weighting (half-life {h} h) asked, but no decaying history was collected: unweighted"
            )),
        }
    }
    (pooled, name)
}

/// The raw CPU limit and its reason: max(p99 x (1 + headroom), peak rate), raised when
/// throttled today.
fn cpu_limit_value(
    u: &ContainerUsage,
    current_limit: Option<f64>,
    throttled: Option<f64>,
    rules: &Rules,
) -> Option<(f64, String)> {
    let tail = u.cpu.quantile(rules.cpu_limit_percentile)?;
    let peak = u.cpu.max().unwrap_or(tail);
    let mut v = (tail * (1.0 + rules.cpu_limit_headroom)).max(peak);
    let mut how = format!(
        "max({} {} x {:.2}, peak {})",
        percentile_name(rules.cpu_limit_percentile),
        format_cpu(tail),
        1.0 + rules.cpu_limit_headroom,
        format_cpu(peak)
    );
    if let (Some(ratio), Some(limit)) = (throttled, current_limit) {
        let raised = limit * (1.0 + ratio.max(rules.cpu_limit_headroom));
        if raised > v {
            v = raised;
        }
        how.push_str(&format!(
            "; throttled {:.1} % today, so at least the current {} x {:.2} = {}",
            ratio * 100.0,
            format_cpu(limit),
            1.0 + ratio.max(rules.cpu_limit_headroom),
            format_cpu(raised)
        ));
    }
    Some((v, how))
}

/// The memory figure (bytes) and how it was obtained, per the memory mode.
fn memory_value(u: &ContainerUsage, rules: &Rules) -> Option<(f64, String)> {
    let peak = u.memory_peak?;
    let window = days(u.span_seconds());
    if rules.memory_mode == MemoryMode::DailyPeaks {
        let mut peaks: Vec<f64> = u.memory_daily_peaks.values().copied().collect();
        if !peaks.is_empty() {
            peaks.sort_by(f64::total_cmp);
            let rank = ((rules.memory_peaks_percentile * peaks.len() as f64).ceil() as usize).clamp(1, peaks.len());
            return Some((
                peaks[rank - 1],
                format!(
                    "{} of {} daily peaks",
                    percentile_name(rules.memory_peaks_percentile),
                    peaks.len()
                ),
            ));
        }
        return Some((
            peak,
            format!("peak working set over {window} (no daily peaks collected)"),
        ));
    }
    Some((peak, format!("peak working set over {window}")))
}
