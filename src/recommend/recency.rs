//! Recency, level shifts and trend: which part of the window a value is sized from. A
//! whole-window p95 was short of CPU 25-28 % of the time on held-out weeks after a release
//! that doubled usage or under 3 %/day growth (issue 12's measurement; the VPA's 24 h decay
//! was short 3-14 %), so before sizing, the daily levels of the window (the daily p95 of
//! the pooled 5-minute rates, or the daily memory peaks) are examined:
//! - a **level shift**: the last `k` days (2-7; 3 or more for a fall, so a quiet weekend is
//!   not one) all lie on one side of every earlier day, by at least 20 % in the median, and
//!   a Mann-Whitney U test (`statrs`) on the two groups of daily levels rejects "same
//!   distribution" at 5 %. The value is then the percentile of the days since;
//! - a **sustained trend**: a least-squares line through the log of the daily levels over at
//!   least 7 days, whose slope a t-test (`statrs` Student's t) finds non-zero at 1 %, with
//!   R² >= 0.5 and at least 15 % growth over the window. The value is the line projected
//!   into the horizon the recommendation must hold (`horizonDays`, 7 by default: a weekly
//!   review; CPU at its middle, memory at its end), never more than 3x the last day's level;
//! - with only 5 or 6 days (a weekly cycle cannot show itself whole), a **short-window
//!   trend**: one slope fitted within weekend and weekday days, so a quiet or busy weekend
//!   at one end is a level, not a slope; stricter (t-test at 1 % with n - 3 degrees of
//!   freedom, R² >= 0.8 within the groups);
//! - both: the model with the smaller residual sum of squares (both have two parameters).
//!
//! Falling trends are not projected (the window's value stays: a cut made on a guess is the
//! one that causes an incident). Without enough days (5 for a shift or a trend) the window's
//! distribution is used, recency-weighted when the policy sets a half-life.

use statrs::distribution::{ContinuousCDF, StudentsT};
use statrs::stats_tests::Alternative;
use statrs::stats_tests::mannwhitneyu::{MannWhitneyUMethod, mannwhitneyu};

use crate::model::Sketch;

/// A day counts as a level when it holds at least 3 hours of 5-minute points of one pod: the
/// partial days at the window's edges and a pod's first minutes are not a day's level.
pub const MIN_DAY_POINTS: u64 = 36;
/// Smallest relative change that counts as a shift (20 %: under it hysteresis holds anyway).
const MIN_SHIFT: f64 = 1.2;
const SHIFT_P: f64 = 0.05;
const TREND_P: f64 = 0.01;
const TREND_R2: f64 = 0.5;
/// Smallest growth over the window that counts as a trend.
const MIN_TREND_GROWTH: f64 = 1.15;
/// A projection never exceeds 3x the last day's level.
const MAX_PROJECTION: f64 = 3.0;
const DAY: i64 = 86_400;

/// A detected level shift: the days since `since` (a day start) differ from the earlier ones.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Shift {
    pub since: i64,
    pub days: usize,
    /// Median level after / median level before.
    pub ratio: f64,
    pub p_value: f64,
    rss: f64,
}

/// A fitted exponential trend of the daily levels: `level(t) = exp(a + b x days(t))`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Trend {
    /// Growth per day (0.03 = 3 %/day).
    pub per_day: f64,
    pub r2: f64,
    pub p_value: f64,
    pub days: usize,
    origin: i64,
    a: f64,
    b: f64,
    last_level: f64,
    rss: f64,
}

impl Trend {
    /// The level projected to unix time `t`, capped at 3x the last day's level.
    pub fn at(&self, t: i64, floor: f64) -> f64 {
        let x = (t - self.origin) as f64 / DAY as f64;
        let v = (self.a + self.b * x).exp() - floor;
        v.min(self.last_level * MAX_PROJECTION).max(0.0)
    }
}

/// What the daily levels say.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Change {
    Shift(Shift),
    Trend(Trend),
}

/// Daily levels `(day start, value)`, oldest first. `floor` keeps idle days finite in log
/// space (1m of CPU, 1 MiB of memory): below it, differences are noise.
pub fn detect(levels: &[(i64, f64)], floor: f64) -> Option<Change> {
    let ok: Vec<(i64, f64)> = levels
        .iter()
        .copied()
        .filter(|(_, v)| v.is_finite() && *v >= 0.0)
        .collect();
    let logs: Vec<f64> = ok.iter().map(|(_, v)| (v + floor).ln()).collect();
    let shift = shift(&ok, &logs);
    let trend = if logs.len() >= 7 {
        trend(&ok, &logs, floor)
    } else {
        short_trend(&ok, &logs, floor)
    };
    match (shift, trend) {
        (Some(s), Some(t)) if t.rss < s.rss => Some(Change::Trend(t)),
        (Some(s), _) => Some(Change::Shift(s)),
        (None, Some(t)) => Some(Change::Trend(t)),
        (None, None) => None,
    }
}

fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn rss_about_mean(v: &[f64]) -> f64 {
    let m = v.iter().sum::<f64>() / v.len() as f64;
    v.iter().map(|x| (x - m) * (x - m)).sum()
}

fn shift(days: &[(i64, f64)], logs: &[f64]) -> Option<Shift> {
    let n = logs.len();
    if n < 5 {
        return None;
    }
    let mut best: Option<Shift> = None;
    for k in 2..=7.min(n - 3) {
        let (before, after) = logs.split_at(n - k);
        let max = |v: &[f64]| v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let min = |v: &[f64]| v.iter().copied().fold(f64::INFINITY, f64::min);
        let ratio = (median(after) - median(before)).exp();
        let up = min(after) > max(before) && ratio >= MIN_SHIFT;
        let down = k >= 3 && max(after) < min(before) && ratio <= 1.0 / MIN_SHIFT;
        if !(up || down) {
            continue;
        }
        // The normal approximation with continuity correction: statrs 0.19.1's exact method
        // answers p = 1 for two fully separated groups (3 vs 11 days), the very case here.
        let mw = mannwhitneyu(
            after,
            before,
            MannWhitneyUMethod::AsymptoticInclContinuityCorrection,
            Alternative::TwoSided,
        );
        let Ok((_, p)) = mw else {
            continue;
        };
        // NaN (degenerate groups) is no evidence either.
        if p.is_nan() || p >= SHIFT_P {
            continue;
        }
        let rss = rss_about_mean(before) + rss_about_mean(after);
        let candidate = Shift {
            since: days[n - k].0,
            days: k,
            ratio,
            p_value: p,
            rss,
        };
        if best.is_none_or(|b| rss < b.rss) {
            best = Some(candidate);
        }
    }
    best
}

fn trend(days: &[(i64, f64)], logs: &[f64], floor: f64) -> Option<Trend> {
    let n = logs.len();
    if n < 7 {
        return None;
    }
    let origin = days[0].0;
    // Each level stands for its day's midpoint.
    let xs: Vec<f64> = days
        .iter()
        .map(|(d, _)| (d - origin) as f64 / DAY as f64 + 0.5)
        .collect();
    let nf = n as f64;
    let mx = xs.iter().sum::<f64>() / nf;
    let my = logs.iter().sum::<f64>() / nf;
    let sxx: f64 = xs.iter().map(|x| (x - mx) * (x - mx)).sum();
    let sxy: f64 = xs.iter().zip(logs).map(|(x, y)| (x - mx) * (y - my)).sum();
    let syy: f64 = logs.iter().map(|y| (y - my) * (y - my)).sum();
    if sxx <= 0.0 || syy <= 0.0 {
        return None;
    }
    let b = sxy / sxx;
    let a = my - b * mx;
    let rss: f64 = xs.iter().zip(logs).map(|(x, y)| (y - a - b * x).powi(2)).sum();
    let r2 = 1.0 - rss / syy;
    let se = (rss / (nf - 2.0) / sxx).sqrt();
    let p = if se > 0.0 {
        let t = StudentsT::new(0.0, 1.0, nf - 2.0).ok()?;
        2.0 * t.sf((b / se).abs())
    } else {
        0.0
    };
    let span = xs[n - 1] - xs[0];
    let growth = (b * span).exp();
    if b <= 0.0 || p >= TREND_P || r2 < TREND_R2 || growth < MIN_TREND_GROWTH {
        return None;
    }
    Some(Trend {
        per_day: b.exp() - 1.0,
        r2,
        p_value: p,
        days: n,
        origin,
        a,
        b,
        last_level: (logs[n - 1].exp() - floor).max(floor),
        rss,
    })
}

/// Saturday or Sunday (UTC) for a day start: 1970-01-01 was a Thursday.
fn weekend(day: i64) -> bool {
    matches!(day.div_euclid(DAY).rem_euclid(7), 2 | 3)
}

/// A trend in 5 or 6 daily levels, where a weekly cycle cannot show itself whole: the line
/// is fitted within weekend and weekday days separately (one slope, one level each: the
/// regression with a weekend indicator, by Frisch-Waugh-Lovell), so a quiet or busy weekend
/// at one end of the window is a level, not a slope. Stricter than the full test: the slope
/// must be non-zero at 1 % with the fewer degrees of freedom (`n - 3`), explain 80 % of the
/// within-group variance, and grow 15 % over the window; the projection follows the higher
/// of the two groups' lines.
fn short_trend(days: &[(i64, f64)], logs: &[f64], floor: f64) -> Option<Trend> {
    const SHORT_TREND_R2: f64 = 0.8;
    let n = logs.len();
    if n < 5 {
        return None;
    }
    let origin = days[0].0;
    let xs: Vec<f64> = days
        .iter()
        .map(|(d, _)| (d - origin) as f64 / DAY as f64 + 0.5)
        .collect();
    let groups: Vec<bool> = days.iter().map(|(d, _)| weekend(*d)).collect();
    let mut means = [(0.0, 0.0, 0usize); 2];
    for ((&x, &y), &g) in xs.iter().zip(logs).zip(&groups) {
        let m = &mut means[usize::from(g)];
        m.0 += x;
        m.1 += y;
        m.2 += 1;
    }
    for m in &mut means {
        if m.2 > 0 {
            m.0 /= m.2 as f64;
            m.1 /= m.2 as f64;
        }
    }
    let used = means.iter().filter(|m| m.2 > 0).count();
    let df = n as f64 - 1.0 - used as f64;
    if df < 2.0 {
        return None;
    }
    let (mut sxx, mut sxy, mut syy) = (0.0, 0.0, 0.0);
    for ((&x, &y), &g) in xs.iter().zip(logs).zip(&groups) {
        let m = means[usize::from(g)];
        sxx += (x - m.0) * (x - m.0);
        sxy += (x - m.0) * (y - m.1);
        syy += (y - m.1) * (y - m.1);
    }
    if sxx <= 0.0 || syy <= 0.0 {
        return None;
    }
    let b = sxy / sxx;
    let rss = (syy - b * sxy).max(0.0);
    let r2 = 1.0 - rss / syy;
    let se = (rss / df / sxx).sqrt();
    let p = if se > 0.0 {
        let t = StudentsT::new(0.0, 1.0, df).ok()?;
        2.0 * t.sf((b / se).abs())
    } else {
        0.0
    };
    let growth = (b * (xs[n - 1] - xs[0])).exp();
    if b <= 0.0 || p >= TREND_P || r2 < SHORT_TREND_R2 || growth < MIN_TREND_GROWTH {
        return None;
    }
    let a = means
        .iter()
        .filter(|m| m.2 > 0)
        .map(|m| m.1 - b * m.0)
        .fold(f64::NEG_INFINITY, f64::max);
    Some(Trend {
        per_day: b.exp() - 1.0,
        r2,
        p_value: p,
        days: n,
        origin,
        a,
        b,
        last_level: (logs[n - 1].exp() - floor).max(floor),
        rss,
    })
}

/// The daily levels of per-day CPU sketches: the `q` quantile of each day with at least
/// `MIN_DAY_POINTS` points.
pub fn daily_quantiles(days: &crate::model::Days<Sketch>, q: f64) -> Vec<(i64, f64)> {
    days.iter()
        .filter(|(_, s)| s.count() >= MIN_DAY_POINTS)
        .filter_map(|(&d, s)| Some((d, s.quantile(q)?)))
        .collect()
}

/// `Nov 12`: the day a shift started, as people read it (UTC).
pub fn day_name(day: i64) -> String {
    chrono::DateTime::from_timestamp(day, 0).map_or_else(|| day.to_string(), |d| d.format("%b %-d").to_string())
}

/// `0.001` as `p < 0.001`, else `p = 0.012`.
pub fn p_text(p: f64) -> String {
    if p < 0.001 {
        "p < 0.001".into()
    } else {
        format!("p = {p:.3}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Daily levels from a rule, with a small deterministic wobble (+-3 %).
    fn levels(n: i64, f: impl Fn(i64) -> f64) -> Vec<(i64, f64)> {
        (0..n)
            .map(|d| {
                let wobble = 1.0 + 0.03 * (((d * 7919) % 13) as f64 / 6.0 - 1.0);
                (1_793_491_200 - (n - d) * DAY, f(d) * wobble)
            })
            .collect()
    }

    #[test]
    fn table_of_histories_and_what_they_show() {
        let weekly = |d: i64| if d % 7 >= 5 { 0.3 } else { 1.0 };
        type Row = (&'static str, Vec<(i64, f64)>, &'static str);
        let cases: Vec<Row> = vec![
            ("flat", levels(14, |_| 1.0), "none"),
            (
                "doubled 3 days before the end",
                levels(14, |d| if d >= 11 { 2.0 } else { 1.0 }),
                "shift 3 up",
            ),
            (
                "halved 4 days before the end",
                levels(14, |d| if d >= 10 { 0.5 } else { 1.0 }),
                "shift 4 down",
            ),
            ("a quiet weekend at the end", levels(14, |d| weekly(d + 2)), "none"),
            ("a weekly cycle", levels(14, weekly), "none"),
            (
                "one rare peak day",
                levels(14, |d| if d == 6 { 4.0 } else { 1.0 }),
                "none",
            ),
            ("grows 3 % a day", levels(14, |d| 1.03f64.powi(d as i32)), "trend"),
            (
                "grows 0.5 % a day (under 15 % in 14 d)",
                levels(14, |d| 1.005f64.powi(d as i32)),
                "none",
            ),
            (
                "falls 3 % a day",
                levels(14, |d| 0.97f64.powi(d as i32)),
                "none-or-down",
            ),
            ("only 4 days", levels(4, |d| if d >= 2 { 2.0 } else { 1.0 }), "none"),
            ("idle", levels(14, |_| 0.0), "none"),
            (
                "NaN days",
                levels(14, |d| if d % 4 == 0 { f64::NAN } else { 1.0 }),
                "none",
            ),
        ];
        for (name, days, want) in cases {
            let got = match detect(&days, 0.001) {
                None => "none".to_string(),
                Some(Change::Shift(s)) => {
                    format!("shift {} {}", s.days, if s.ratio > 1.0 { "up" } else { "down" })
                }
                Some(Change::Trend(_)) => "trend".to_string(),
            };
            match want {
                "none-or-down" => assert!(
                    got == "none" || got.ends_with("down"),
                    "{name}: {got} (a fall is never projected up)"
                ),
                _ => assert_eq!(got, want, "{name}"),
            }
        }
    }

    #[test]
    fn six_days_show_growth_but_not_a_weekend_at_one_end() {
        // Six days from Saturday Oct 24 to Thursday Oct 29 (the quality suite's training).
        let saturday = 1_793_491_200 - 8 * DAY;
        assert!(weekend(saturday) && weekend(saturday + DAY) && !weekend(saturday + 2 * DAY));
        let six = |f: &dyn Fn(i64) -> f64| -> Vec<(i64, f64)> {
            (0..6)
                .map(|d| {
                    let wobble = 1.0 + 0.01 * (((d * 7919) % 13) as f64 / 6.0 - 1.0);
                    (saturday + d * DAY, f(d) * wobble)
                })
                .collect()
        };
        let weekend_factor = |w: f64| move |d: i64| if d < 2 { w } else { 1.0 };
        type Row<'a> = (&'a str, Vec<(i64, f64)>, bool);
        let cases: Vec<Row> = vec![
            (
                "3 %/day growth, weekends at 0.9",
                six(&|d| 1.03f64.powi(d as i32) * weekend_factor(0.9)(d)),
                true,
            ),
            ("flat", six(&|_| 1.0), false),
            ("a quiet weekend first (0.3)", six(&weekend_factor(0.3)), false),
            ("a busy weekend first (2.5)", six(&weekend_factor(2.5)), false),
            ("weekends at 0.9, flat weekdays", six(&weekend_factor(0.9)), false),
            (
                "1 %/day (under 15 % over the window)",
                six(&|d| 1.01f64.powi(d as i32)),
                false,
            ),
        ];
        for (name, days, want) in cases {
            let got = matches!(detect(&days, 0.001), Some(Change::Trend(_)));
            assert_eq!(got, want, "{name}: {:?}", detect(&days, 0.001));
        }
        let Some(Change::Trend(t)) = detect(&six(&|d| 1.03f64.powi(d as i32) * weekend_factor(0.9)(d)), 0.0) else {
            panic!("no trend")
        };
        // The slope is the weekdays' and weekends' own, not inflated by the weekend dip.
        assert!((t.per_day - 0.03).abs() < 0.01, "{t:?}");
        assert_eq!(t.days, 6);
        // Five days are enough, four are not.
        let five: Vec<(i64, f64)> = six(&|d| 1.04f64.powi(d as i32))[1..].to_vec();
        assert!(
            matches!(detect(&five, 0.0), Some(Change::Trend(_))),
            "{:?}",
            detect(&five, 0.0)
        );
        assert_eq!(detect(&five[1..], 0.0), None);
    }

    #[test]
    fn gaps_in_the_days_still_show_a_shift() {
        // Days 3 and 12 missing (no points): the shift 3 days before the end is still found.
        let days: Vec<(i64, f64)> = levels(15, |d| if d >= 12 { 2.0 } else { 1.0 })
            .into_iter()
            .enumerate()
            .filter(|(i, _)| *i != 3 && *i != 12)
            .map(|(_, d)| d)
            .collect();
        match detect(&days, 0.001) {
            Some(Change::Shift(s)) => assert_eq!((s.days, s.since), (2, days[days.len() - 2].0)),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_trend_projects_to_the_horizon_and_a_shift_names_its_day() {
        let days = levels(14, |d| 1.03f64.powi(d as i32));
        let Some(Change::Trend(t)) = detect(&days, 0.0) else {
            panic!("no trend")
        };
        assert!((t.per_day - 0.03).abs() < 0.01, "{}", t.per_day);
        assert!(t.r2 > 0.9 && t.p_value < 0.001, "{t:?}");
        let end = days[13].0 + DAY;
        // Day 13.5 is ~1.03^13.5; a week after the end ~1.03^21.
        let now = t.at(end - DAY / 2, 0.0);
        let ahead = t.at(end + 7 * DAY, 0.0);
        assert!((now / 1.03f64.powf(13.5) - 1.0).abs() < 0.05, "{now}");
        assert!((ahead / 1.03f64.powi(21) - 1.0).abs() < 0.06, "{ahead}");
        assert_eq!(day_name(1_793_491_200), "Nov 1");
        assert_eq!(p_text(0.0004), "p < 0.001");
        assert_eq!(p_text(0.0123), "p = 0.012");
    }
}
