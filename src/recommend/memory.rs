//! Memory sizing for one container: the working-set figure per the memory mode (a rising
//! trend of the daily peaks projected to the horizon), the limit after OOM kills, anchored
//! to the limit in force at the kill, and the rounding (`strategy.rs` applies margins,
//! bounds and hysteresis).

use crate::model::{ContainerUsage, format_memory};

use super::explain::{days, percentile_name, signed_percent};
use super::policy::{MemoryMode, Rules};
use super::recency::{self, Change};

/// Daily peaks under 1 MiB are noise in the log-space trend fit.
const MEMORY_LEVEL_FLOOR: f64 = 1024.0 * 1024.0;

/// The memory limit after OOM kills: the limit in force at the kills (kube-state-metrics at
/// that time, the highest if it changed between kills; without that history the peak
/// working set, which reached the limit when the kernel killed it) bumped once like the
/// VPA, max(x 1.2, + 100 MiB), and at least the peak with the normal memory margin. Not
/// compounded per kill: repeated kills at one limit say that limit is too low, not by how
/// much (the VPA's `RecordOOM` leaves its earlier OOM peaks out of the next bump for the
/// same reason); a kill at a raised limit anchors at that limit, so the bump grows with
/// kills that follow a raise. Never today's limit: applying the result and running again on
/// the same history proposes the same value (today's limit would raise it on every run:
/// 450 -> 592 -> 711 -> 854 Mi). The request is not bumped (`strategy.rs`): the kill was
/// the limit's doing, and the request reserves what the container uses.
pub(super) fn oom_limit(u: &ContainerUsage, peak: f64, rules: &Rules) -> (f64, String) {
    let (anchor, what) = match u.oom_limit {
        Some(l) => (l, "the limit in force at the kill"),
        None => (
            u.memory_peak.unwrap_or(peak),
            "the peak working set (limit history unknown)",
        ),
    };
    let bump = (anchor * rules.oom_bump_ratio).max(anchor + rules.oom_min_bump);
    let with_margin = peak * (1.0 + rules.memory_buffer);
    let how = format!(
        "OOMKilled {} time{} in the window: max({what} {} x {} or + {} = {}, the peak {} {} = {})",
        u.oom_kills,
        if u.oom_kills == 1 { "" } else { "s" },
        format_memory(anchor),
        rules.oom_bump_ratio,
        format_memory(rules.oom_min_bump),
        format_memory(bump),
        format_memory(peak),
        signed_percent(rules.memory_buffer),
        format_memory(with_margin)
    );
    (bump.max(with_margin), how)
}

/// Memory rounds down to its step when that keeps it at or above `covered` (the figure the
/// buffer is added to: the buffer absorbs the rounding, so the value is never above the
/// buffered figure), else up.
pub(super) fn tidy(v: f64, covered: f64, step: f64) -> f64 {
    let down = ((v / step) + 1e-9).floor() * step;
    if down >= covered {
        down
    } else {
        super::strategy::round_up(v, step)
    }
}

/// The memory figure (bytes) and how it was obtained, per the memory mode; a rising trend of
/// the daily peaks is projected to the horizon (memory is never cut on a detected fall: an
/// under-sized memory limit is an OOM kill, not a slowdown).
pub(super) fn memory_value(u: &ContainerUsage, rules: &Rules) -> Option<(f64, String)> {
    let (v, how) = memory_base(u, rules)?;
    if rules.detect_changes {
        let levels: Vec<(i64, f64)> = u.memory_daily_peaks.iter().map(|(&d, &v)| (d, v)).collect();
        if let Some(Change::Trend(t)) = recency::detect(&levels, MEMORY_LEVEL_FLOOR) {
            let end = u.last_seen.unwrap_or(0);
            let projected = t.at(end + (rules.horizon_days * 86_400.0) as i64, MEMORY_LEVEL_FLOOR);
            if projected > v {
                return Some((
                    projected,
                    format!(
                        "working set grows {:.1} %/day (daily peaks over {} days, R² {:.2}, t-test {}): daily peak projected {:.0} d ahead",
                        t.per_day * 100.0,
                        t.days,
                        t.r2,
                        recency::p_text(t.p_value),
                        rules.horizon_days
                    ),
                ));
            }
        }
    }
    Some((v, how))
}

fn memory_base(u: &ContainerUsage, rules: &Rules) -> Option<(f64, String)> {
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

#[cfg(test)]
mod tests {
    use super::tidy;

    const MIB: f64 = 1024.0 * 1024.0;

    #[test]
    fn memory_rounds_down_within_its_buffer_never_below_the_peak() {
        // 300 Mi + 15 % = 345.0 Mi; 300.5 Mi + 15 % = 345.575 Mi rounds down to 345 Mi.
        assert_eq!(tidy(345.0 * MIB, 300.0 * MIB, MIB), 345.0 * MIB);
        assert_eq!(tidy(345.575 * MIB, 300.5 * MIB, MIB), 345.0 * MIB);
        // A coarse step: 64 Mi steps under 345 Mi would go to 320 Mi, above the 300 Mi peak;
        // with a 330 Mi peak they would cut into it, so the value rounds up to 384 Mi.
        assert_eq!(tidy(345.0 * MIB, 300.0 * MIB, 64.0 * MIB), 320.0 * MIB);
        assert_eq!(tidy(345.0 * MIB, 330.0 * MIB, 64.0 * MIB), 384.0 * MIB);
    }
}
