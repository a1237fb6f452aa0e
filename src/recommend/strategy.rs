//! The default strategy for one container (DESIGN.md, "Default strategy and why"; every
//! default and its source is on `policy::Rules`):
//! - CPU request = p95 of the pooled 5-minute usage of all replicas over the window, or of
//!   the days since a level shift, or the daily p95 trend projected to the middle of the
//!   horizon
//!   (`recency.rs`), or of the recency-weighted histogram when the policy sets a half-life;
//! - CPU limit only where there is one today (or the policy asks): max(p99 x 1.25, peak
//!   5-minute rate, peak 2-minute rate), at least the request, and when CFS throttled more
//!   than the target (usage was cut off at the limit, so it under-reports demand) at least
//!   the limit it was throttled at x (1 + max(throttled share, 25 %));
//! - memory request = limit = peak working set + 15 % (or p90 of daily peaks + 15 %; a
//!   rising trend of daily peaks projected to the horizon), rounded down to the step when
//!   the buffer absorbs it; after OOM kills the limit is at least the limit in force at the
//!   kill bumped once by max(x 1.2, + 100 MiB) (the request too when Guaranteed);
//! - every bump is anchored to history, never to today's spec, so recommending on the
//!   recommended requests is a fixed point;
//! - every CPU value widened for low confidence (memory only under a day of history),
//!   floored, capped, rounded to tidy steps, and held at the current value within
//!   hysteresis;
//! - a Guaranteed workload stays Guaranteed: limits = requests, and the CPU request is sized
//!   like a limit (it is one).

use std::fmt::Write;

use crate::model::{ContainerKey, ContainerSpec, ContainerUsage, DecayingSketch, Sketch, format_cpu, format_memory};

use super::confidence::confidence;
use super::explain::{days, percentile_name, signed_percent, thousands};
use super::memory::{memory_value, oom_limit, tidy};
use super::policy::{CpuLimitMode, Rules};
use super::recency::{self, Change};
use super::report::{QosClass, Reasons, Recommendation, Skip};

/// What one container is sized with, besides its own usage.
pub struct Context<'a> {
    pub rules: &'a Rules,
    /// Resolution of the CPU samples, seconds.
    pub step: i64,
    /// End of the history window, unix seconds.
    pub window_end: i64,
    /// The workload is Guaranteed today and the policy keeps it so.
    pub guaranteed: bool,
    /// Why the whole workload is skipped (`rightsizer.dev/ignore`).
    pub ignored_by: Option<&'static str>,
}

/// Past a day without samples a container's history is stale (one CronJob period is less).
const STALE_SECONDS: i64 = 86_400;

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
    // A container that stopped reporting well before the end (deleted, scaled to zero,
    // renamed) is sized on old history: say so rather than pass it off as current.
    if let Some(last) = u.last_seen
        && ctx.window_end - last > STALE_SECONDS
    {
        r.notes.push(format!(
            "no usage since {} ({} before the window's end): the container was deleted, renamed or scaled to zero; sized on its older history",
            recency::day_name(last),
            days(ctx.window_end - last)
        ));
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
    let limit_raw = cpu_limit_value(u, r.throttling_ratio.filter(|_| r.throttled), rules);

    // CPU request.
    let (cpu_raw, cpu_source) = cpu_request_value(u, r.cpu_percentile, &window, rules, &mut r.notes);
    if let Some(p) = cpu_raw {
        let buffered = p * (1.0 + rules.cpu_buffer) * conf.margin;
        let (target, how) = match limit_raw {
            Some((l, ref lhow)) if ctx.guaranteed => (l.max(buffered), format!(", sized as the limit ({lhow})")),
            _ => (buffered, String::new()),
        };
        let s = settle(target, current.cpu_request, cpu_bounds, hysteresis, format_cpu);
        r.recommended.cpu_request = Some(s.value);
        r.reasons.cpu_request = Some(format!(
            "{cpu_source} = {}, {}{widen}{how}{}",
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

    // Memory request = limit; after OOM kills the limit gets the bump (`memory::oom_limit`).
    if let Some((raw, source)) = memory_value(u, rules) {
        let memory_widen = if conf.memory_margin > 1.0 + 1e-9 {
            format!(
                ", x{:.2} for low confidence ({:.1} d of history, full at 1 d)",
                conf.memory_margin, conf.days
            )
        } else {
            String::new()
        };
        let buffered = raw * (1.0 + rules.memory_buffer) * conf.memory_margin;
        let bump = (u.oom_kills > 0).then(|| oom_limit(u, raw, rules));
        let mut reason = format!(
            "{source} = {}, {}{memory_widen}",
            format_memory(raw),
            signed_percent(rules.memory_buffer)
        );
        // A Guaranteed workload's request is its limit: it takes the bump too.
        let mut v = buffered;
        if let (true, Some((b, how))) = (ctx.guaranteed, &bump) {
            v = v.max(*b);
            let _ = write!(reason, "; {how}");
        }
        let v = tidy(v, raw, rules.memory_step);
        let bounds = (rules.min_memory, rules.max_memory, rules.memory_step);
        let hysteresis = (rules.hysteresis, rules.hysteresis_memory);
        let s = settle(v, current.memory_request, bounds, hysteresis, format_memory);
        if let Some((b, _)) = &bump
            && rules.max_memory.is_some_and(|m| m < *b)
        {
            r.notes
                .push("max-memory caps memory below what the OOM bump asks".into());
        }
        r.recommended.memory_request = Some(s.value);
        r.reasons.memory_request = Some(format!("{reason}{}", s.note));
        let target = match &bump {
            Some((b, _)) if !ctx.guaranteed => b.min(rules.max_memory.unwrap_or(f64::INFINITY)).max(s.value),
            _ => s.value,
        };
        let limit = if ctx.guaranteed {
            Settled {
                value: s.value,
                note: String::new(),
                held: false,
            }
        } else {
            settle(
                target,
                current.memory_limit,
                (s.value, None, rules.memory_step),
                hysteresis,
                format_memory,
            )
        };
        r.recommended.memory_limit = Some(limit.value);
        r.reasons.memory_limit = Some(match &bump {
            _ if ctx.guaranteed => "= request: keeps the workload Guaranteed".into(),
            Some((_, how)) => format!("{how}{}", limit.note),
            None if limit.held => format!("= request {}{}", format_memory(s.value), limit.note),
            None => "= request: memory cannot be reclaimed without an OOM kill".into(),
        });
    } else {
        r.notes.push("no working-set samples: memory unchanged".into());
    }
    r
}

/// The CPU figure the request is based on, and how it was obtained: the daily levels first
/// (a level shift or a trend, `recency.rs`), else the window's distribution, recency-weighted
/// when the policy sets a half-life.
fn cpu_request_value(
    u: &ContainerUsage,
    pooled: Option<f64>,
    window: &str,
    rules: &Rules,
    notes: &mut Vec<String>,
) -> (Option<f64>, String) {
    let name = percentile_name(rules.cpu_percentile);
    if rules.detect_changes {
        let levels = recency::daily_quantiles(&u.cpu_days, rules.cpu_percentile);
        match recency::detect(&levels, CPU_LEVEL_FLOOR) {
            Some(Change::Shift(s)) => {
                let mut since = Sketch::new();
                for (_, d) in u.cpu_days.range(s.since..) {
                    since.merge(d);
                }
                if let Some(v) = since.quantile(rules.cpu_percentile) {
                    return (
                        Some(v),
                        format!(
                            "usage {} x{:.2} on {} (daily {name}s before and after, Mann-Whitney {}): {name} of the {} since ({} samples)",
                            if s.ratio > 1.0 { "rose" } else { "fell" },
                            s.ratio,
                            recency::day_name(s.since),
                            recency::p_text(s.p_value),
                            if s.days == 1 {
                                "day".to_string()
                            } else {
                                format!("{} days", s.days)
                            },
                            thousands(since.count())
                        ),
                    );
                }
            }
            Some(Change::Trend(t)) => {
                let end = u.last_seen.unwrap_or(0);
                // The middle of the horizon: the daily level there is about the percentile of
                // the horizon's days together (earlier days less, later days more), where the
                // level at its end would be exceeded on none of them.
                let horizon = (rules.horizon_days * 86_400.0 / 2.0) as i64;
                return (
                    Some(t.at(end + horizon, CPU_LEVEL_FLOOR)),
                    format!(
                        "usage grows {:.1} %/day (daily {name}s over {} days, R² {:.2}, t-test {}): daily {name} projected to the middle of the next {:.0} d",
                        t.per_day * 100.0,
                        t.days,
                        t.r2,
                        recency::p_text(t.p_value),
                        rules.horizon_days
                    ),
                );
            }
            None => {}
        }
    }
    if let Some(h) = rules.recency_half_life_hours {
        if u.cpu_days.is_empty() {
            notes.push(format!(
                "recency weighting (half-life {h} h) asked, but no per-day history was collected: unweighted"
            ));
        } else {
            let d = DecayingSketch::from_days(h * 3600.0, u.cpu_days.iter().map(|(&d, s)| (d, s)));
            return (
                d.quantile(rules.cpu_percentile),
                format!("recency-weighted {name} (half-life {h:.0} h) of {window}"),
            );
        }
    }
    (pooled, format!("{name} of {window}"))
}

/// Daily levels under 1m of CPU are idle: the log-space fits add this so idle days stay
/// finite and their noise does not count as a change.
const CPU_LEVEL_FLOOR: f64 = 0.001;

/// The raw CPU limit and its reason: max(p99 x (1 + headroom), peak 5-minute rate, peak
/// 2-minute rate), raised when throttled. The raise is anchored to the limit the container
/// was throttled against (the lowest in force over the window, from kube-state-metrics),
/// never today's: applying the raised limit and running again on the same history proposes
/// the same value. Without that history the peak stands in for it (a throttled container's
/// usage is cut off at its limit).
fn cpu_limit_value(u: &ContainerUsage, throttled: Option<f64>, rules: &Rules) -> Option<(f64, String)> {
    let tail = u.cpu.quantile(rules.cpu_limit_percentile)?;
    let peak = u.cpu.max().unwrap_or(tail);
    let mut v = (tail * (1.0 + rules.cpu_limit_headroom)).max(peak);
    let mut how = format!(
        "max({} {} x {:.2}, peak {}",
        percentile_name(rules.cpu_limit_percentile),
        format_cpu(tail),
        1.0 + rules.cpu_limit_headroom,
        format_cpu(peak)
    );
    if let Some(short) = u.cpu_short_peak {
        v = v.max(short);
        how.push_str(&format!(", 2-minute peak {}", format_cpu(short)));
    }
    how.push(')');
    if let Some(ratio) = throttled {
        let factor = 1.0 + ratio.max(rules.cpu_limit_headroom);
        let (anchor, what) = match u.throttled_limit {
            Some(l) => (l, "the limit it was throttled at"),
            None => (
                peak.max(u.cpu_short_peak.unwrap_or(0.0)),
                "its peak (limit history unknown)",
            ),
        };
        let raised = anchor * factor;
        if raised > v {
            v = raised;
        }
        how.push_str(&format!(
            "; throttled {:.1} % of CFS periods, so at least {what} {} x {factor:.2} = {}",
            ratio * 100.0,
            format_cpu(anchor),
            format_cpu(raised)
        ));
    }
    Some((v, how))
}
