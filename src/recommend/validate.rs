//! Range checks of the policy, on one scale: percentiles and margins are fractions in the
//! config, annotations and flags (`0.95`, or an explicit `"95%"`; `parse_fraction`), so a
//! bare `95` is out of range and the error names the key and the spelling that works.
//! `Policy::validate` runs once at start for every subcommand; annotations are checked per
//! workload by `Policy::rules_for` (a warning, and the workload keeps the defaults).

use thiserror::Error;

use super::policy::{Policy, Rules};

#[derive(Debug, Error, PartialEq)]
#[error("invalid policy: {field} {problem}")]
pub struct PolicyError {
    pub field: String,
    pub problem: String,
}

fn check(ok: bool, field: &str, problem: &str) -> Result<(), PolicyError> {
    if ok {
        Ok(())
    } else {
        Err(PolicyError {
            field: field.into(),
            problem: problem.into(),
        })
    }
}

/// A percentile: a fraction in (0, 1]. The message shows the value and the two spellings
/// that work, since `95` (percent) is the likely mistake.
fn percentile_in_range(v: f64, field: &str) -> Result<(), PolicyError> {
    check(
        v.is_finite() && v > 0.0 && v <= 1.0,
        field,
        &format!(
            "is {v}, out of range: percentiles are fractions in (0, 1]{}",
            spelled(v)
        ),
    )
}

/// A margin: a fraction in [0, 1] (0 % to 100 %).
fn margin_in_range(v: f64, field: &str) -> Result<(), PolicyError> {
    check(
        v.is_finite() && (0.0..=1.0).contains(&v),
        field,
        &format!("is {v}, out of range: margins are fractions in [0, 1]{}", spelled(v)),
    )
}

fn spelled(v: f64) -> String {
    if v > 1.0 && v <= 100.0 {
        format!("; for {v} % write {} or \"{v}%\"", v / 100.0)
    } else {
        String::new()
    }
}

/// Reads a percentile or margin as one scale everywhere (config, annotations, flags): a
/// fraction (`0.95`), an explicit percentage (`95%`) or a percentile name (`p95`). A bare
/// number is always a fraction, so `95` is out of range rather than silently p1 or p95.
pub fn parse_fraction(text: &str) -> Result<f64, String> {
    let t = text.trim();
    let (number, scale) = if let Some(n) = t.strip_suffix('%') {
        (n.trim(), 100.0)
    } else if let Some(n) = t.strip_prefix(['p', 'P']) {
        (n.trim(), 100.0)
    } else {
        (t, 1.0)
    };
    match number.parse::<f64>() {
        Ok(n) if n.is_finite() => Ok(n / scale),
        _ => Err(format!("{text:?} is not a fraction: write 0.95, \"95%\" or \"p95\"")),
    }
}

impl Rules {
    /// Checks every value, naming the key (`{at}cpuPercentile`) and the spelling that works.
    pub fn validate(&self, at: &str) -> Result<(), PolicyError> {
        let f = |name: &str| format!("{at}{name}");
        percentile_in_range(self.cpu_percentile, &f("cpuPercentile"))?;
        percentile_in_range(self.memory_peaks_percentile, &f("memoryPeaksPercentile"))?;
        percentile_in_range(self.cpu_limit_percentile, &f("cpuLimitPercentile"))?;
        percentile_in_range(self.throttling_target, &f("throttlingTarget"))?;
        margin_in_range(self.cpu_buffer, &f("cpuBuffer"))?;
        margin_in_range(self.memory_buffer, &f("memoryBuffer"))?;
        margin_in_range(self.cpu_limit_headroom, &f("cpuLimitHeadroom"))?;
        margin_in_range(self.low_confidence_margin, &f("lowConfidenceMargin"))?;
        margin_in_range(self.hysteresis, &f("hysteresis"))?;
        check(
            self.oom_bump_ratio.is_finite() && (1.0..=10.0).contains(&self.oom_bump_ratio),
            &f("oomBumpRatio"),
            &format!(
                "is {}, out of range: a ratio in [1, 10] (1.2 = +20 %)",
                self.oom_bump_ratio
            ),
        )?;
        check(
            self.cpu_step > 0.0 && self.memory_step > 0.0,
            &f("cpuStep/memoryStep"),
            "must be > 0",
        )?;
        check(
            self.full_confidence_days.is_finite() && self.full_confidence_days > 0.0,
            &f("fullConfidenceDays"),
            "must be > 0",
        )?;
        check(
            self.horizon_days.is_finite() && (0.0..=90.0).contains(&self.horizon_days),
            &f("horizonDays"),
            &format!("is {}, out of range: days in [0, 90]", self.horizon_days),
        )?;
        check(
            self.max_cpu.is_none_or(|m| m >= self.min_cpu),
            &f("maxCpu"),
            "must be >= minCpu",
        )?;
        check(
            self.max_memory.is_none_or(|m| m >= self.min_memory),
            &f("maxMemory"),
            "must be >= minMemory",
        )?;
        check(
            self.recency_half_life_hours.is_none_or(|h| h.is_finite() && h > 0.0),
            &f("recencyHalfLifeHours"),
            "must be > 0",
        )
    }
}

impl Policy {
    /// Checks every layer of the config, naming the first bad key (`defaults.cpuPercentile`,
    /// `namespaces.shop.memoryBuffer`): run once at start by every subcommand.
    pub fn validate(&self) -> Result<(), PolicyError> {
        self.defaults.validate("defaults.")?;
        for (ns, o) in &self.namespaces {
            let mut r = self.defaults;
            o.apply(&mut r);
            r.validate(&format!("namespaces.{ns}."))?;
        }
        let h = &self.hpa;
        check(
            h.min_target_percent > 0 && h.min_target_percent <= h.max_target_percent && h.max_target_percent <= 100,
            "hpa.minTargetPercent/maxTargetPercent",
            "must satisfy 0 < min <= max <= 100",
        )?;
        percentile_in_range(h.min_replicas_percentile, "hpa.minReplicasPercentile")?;
        margin_in_range(h.max_replicas_headroom, "hpa.maxReplicasHeadroom")?;
        let p = &self.prices;
        check(
            p.cpu_core_hour >= 0.0 && p.memory_gib_hour >= 0.0 && p.hours_per_month > 0.0,
            "prices",
            "must be non-negative (hoursPerMonth > 0)",
        )
    }
}
