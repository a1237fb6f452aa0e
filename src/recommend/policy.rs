//! The policy: every knob of the strategy with its evidence-based default, in three layers:
//! the global config (`Policy::defaults`), then per-namespace overrides
//! (`Policy::namespaces`), then per-workload annotations (`rightsizer.dev/...`). The config
//! types deserialize from the YAML/JSON config file (camelCase keys, unknown keys refused;
//! CPU and memory accept numbers or Kubernetes quantities such as `50m` and `2Gi`).
//! `Policy::rules_for` resolves the layers into the `Rules` one workload is sized with.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize};

use crate::model::{Workload, parse_cpu, parse_memory};

use super::validate::parse_fraction;

pub const MIB: f64 = 1024.0 * 1024.0;
pub const GIB: f64 = 1024.0 * MIB;
/// Prefix of the per-workload annotations.
pub const ANNOTATION_PREFIX: &str = "rightsizer.dev/";

/// How the memory request (= limit) is derived from the working set.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum MemoryMode {
    /// Peak working set over the window x (1 + buffer): KRR's simple strategy.
    #[default]
    Peak,
    /// A percentile (default p90) of the per-day peaks x (1 + buffer): the VPA's
    /// `targetMemoryPeaksPercentile` over 24 h aggregation intervals.
    DailyPeaks,
}

/// When a CPU limit is recommended.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum CpuLimitMode {
    /// Only for containers that have one today (limits cause throttling; KRR recommends
    /// none by default).
    #[default]
    Keep,
    /// For every container.
    Always,
    /// Never: recommend removing existing CPU limits.
    Remove,
}

/// Parameters that size one workload: the result of the three policy layers.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct Rules {
    /// Skip the workload entirely.
    pub ignore: bool,
    /// CPU request percentile of the pooled usage, as a fraction (`0.95` or `"95%"`, like
    /// every percentile and margin here). p95: KRR's simple strategy (`cpu_percentile = 95`);
    /// the VPA's `targetCPUPercentile 0.9` x 1.15 margin lands close.
    #[serde(deserialize_with = "de_fraction")]
    pub cpu_percentile: f64,
    /// Margin over the CPU percentile. 0: KRR adds none to CPU (the percentile is the margin).
    #[serde(deserialize_with = "de_fraction")]
    pub cpu_buffer: f64,
    pub memory_mode: MemoryMode,
    /// Margin over the memory figure. 15 %: KRR's `memory_buffer_percentage = 15` and the
    /// VPA's `safetyMarginFraction 0.15`.
    #[serde(deserialize_with = "de_fraction")]
    pub memory_buffer: f64,
    /// Percentile of the daily peaks in `dailyPeaks` mode. p90: the VPA's
    /// `targetMemoryPeaksPercentile`.
    #[serde(deserialize_with = "de_fraction")]
    pub memory_peaks_percentile: f64,
    /// Floors: below 10m CPU / 16 MiB a request only adds scheduling noise (the VPA's
    /// `podMinCPUMillicores 25` / `podMinMemoryMb 250` are per pod; these are per container).
    #[serde(deserialize_with = "de_cpu")]
    pub min_cpu: f64,
    #[serde(deserialize_with = "de_memory")]
    pub min_memory: f64,
    /// Caps (none by default).
    #[serde(deserialize_with = "de_opt_cpu")]
    pub max_cpu: Option<f64>,
    #[serde(deserialize_with = "de_opt_memory")]
    pub max_memory: Option<f64>,
    pub cpu_limit: CpuLimitMode,
    /// CPU limit = max(p99 x (1 + headroom), peak 5-minute rate), at least the request:
    /// 5-minute rates hide the sub-second bursts CFS throttles in 100 ms periods, so the
    /// limit sits well above the tail. p99 and 25 % are rightsizer's choice (no anchor).
    #[serde(deserialize_with = "de_fraction")]
    pub cpu_limit_percentile: f64,
    #[serde(deserialize_with = "de_fraction")]
    pub cpu_limit_headroom: f64,
    /// Share of CFS periods throttled above which a container is flagged and its limit
    /// raised. 5 %: well under kubernetes-mixin's `CPUThrottlingHigh` alert (25 %).
    #[serde(deserialize_with = "de_fraction")]
    pub throttling_target: f64,
    /// A Guaranteed workload (requests == limits everywhere) stays Guaranteed.
    pub keep_guaranteed: bool,
    /// OOMKilled in the window: the memory limit >= max(limit at the kill x 1.2, + 100 MiB),
    /// once (not per kill): the VPA's `oomBumpUpRatio 1.2` and `oomMinBumpUp 100 MiB`.
    pub oom_bump_ratio: f64,
    #[serde(deserialize_with = "de_memory")]
    pub oom_min_bump: f64,
    /// Below 100 CPU samples no recommendation: KRR's `points_required = 100`.
    pub min_samples: u64,
    /// Minimum history span, seconds. 0: the sample count decides, and short histories get
    /// a wider margin through the confidence instead.
    pub min_history_seconds: i64,
    /// Days of history for full confidence. 7: one weekly cycle (the VPA's confidence is
    /// days of history, uncapped; we cap at a week).
    pub full_confidence_days: f64,
    /// Extra margin at zero confidence, shrinking linearly to 0 at full confidence: values
    /// are multiplied by `1 + lowConfidenceMargin x (1 - confidence)`. 25 %: rightsizer's
    /// choice, gentler than the VPA's upper-bound factor `1 + 1/days`.
    #[serde(deserialize_with = "de_fraction")]
    pub low_confidence_margin: f64,
    /// Tidy steps: CPU rounds up to 5m, memory to 1 MiB.
    #[serde(deserialize_with = "de_cpu")]
    pub cpu_step: f64,
    #[serde(deserialize_with = "de_memory")]
    pub memory_step: f64,
    /// Hysteresis: no change under 10 % of the current value or under 5m / 8 MiB, so
    /// patches do not churn (the VPA updater only evicts past a 10 % difference).
    #[serde(deserialize_with = "de_fraction")]
    pub hysteresis: f64,
    #[serde(deserialize_with = "de_cpu")]
    pub hysteresis_cpu: f64,
    #[serde(deserialize_with = "de_memory")]
    pub hysteresis_memory: f64,
    /// Recency weighting of the window's CPU distribution: half-life in hours (the VPA uses
    /// 24), built from the per-day CPU history. Off by default: level shifts and trends are
    /// followed by `detectChanges`, and a stable workload's weekly peak is not forgotten.
    pub recency_half_life_hours: Option<f64>,
    /// Follow level shifts and trends of the daily levels (`recency.rs`): on by default, as
    /// a whole-window p95 was short of CPU 25-28 % of held-out 5-minute intervals after a
    /// release or under steady growth (issue 12).
    pub detect_changes: bool,
    /// How far ahead, in days, a trend is projected: the time a recommendation is meant to
    /// hold. 7: a weekly review cycle (and the held-out week it was measured on).
    pub horizon_days: f64,
}

impl Default for Rules {
    fn default() -> Self {
        Rules {
            ignore: false,
            cpu_percentile: 0.95,
            cpu_buffer: 0.0,
            memory_mode: MemoryMode::Peak,
            memory_buffer: 0.15,
            memory_peaks_percentile: 0.90,
            min_cpu: 0.010,
            min_memory: 16.0 * MIB,
            max_cpu: None,
            max_memory: None,
            cpu_limit: CpuLimitMode::Keep,
            cpu_limit_percentile: 0.99,
            cpu_limit_headroom: 0.25,
            throttling_target: 0.05,
            keep_guaranteed: true,
            oom_bump_ratio: 1.2,
            oom_min_bump: 100.0 * MIB,
            min_samples: 100,
            min_history_seconds: 0,
            full_confidence_days: 7.0,
            low_confidence_margin: 0.25,
            cpu_step: 0.005,
            memory_step: MIB,
            hysteresis: 0.10,
            hysteresis_cpu: 0.005,
            hysteresis_memory: 8.0 * MIB,
            recency_half_life_hours: None,
            detect_changes: true,
            horizon_days: 7.0,
        }
    }
}

/// A partial `Rules`: per-namespace config and per-workload annotations.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct Overrides {
    pub ignore: Option<bool>,
    #[serde(deserialize_with = "de_opt_fraction")]
    pub cpu_percentile: Option<f64>,
    #[serde(deserialize_with = "de_opt_fraction")]
    pub cpu_buffer: Option<f64>,
    pub memory_mode: Option<MemoryMode>,
    #[serde(deserialize_with = "de_opt_fraction")]
    pub memory_buffer: Option<f64>,
    #[serde(deserialize_with = "de_opt_cpu")]
    pub min_cpu: Option<f64>,
    #[serde(deserialize_with = "de_opt_memory")]
    pub min_memory: Option<f64>,
    #[serde(deserialize_with = "de_opt_cpu")]
    pub max_cpu: Option<f64>,
    #[serde(deserialize_with = "de_opt_memory")]
    pub max_memory: Option<f64>,
    pub cpu_limit: Option<CpuLimitMode>,
    pub keep_guaranteed: Option<bool>,
    pub recency_half_life_hours: Option<f64>,
    pub detect_changes: Option<bool>,
    pub horizon_days: Option<f64>,
}

impl Overrides {
    pub fn apply(&self, r: &mut Rules) {
        fn set<T: Copy>(dst: &mut T, v: Option<T>) {
            if let Some(v) = v {
                *dst = v;
            }
        }
        set(&mut r.ignore, self.ignore);
        set(&mut r.cpu_percentile, self.cpu_percentile);
        set(&mut r.cpu_buffer, self.cpu_buffer);
        set(&mut r.memory_mode, self.memory_mode);
        set(&mut r.memory_buffer, self.memory_buffer);
        set(&mut r.min_cpu, self.min_cpu);
        set(&mut r.min_memory, self.min_memory);
        set(&mut r.cpu_limit, self.cpu_limit);
        set(&mut r.keep_guaranteed, self.keep_guaranteed);
        set(&mut r.detect_changes, self.detect_changes);
        set(&mut r.horizon_days, self.horizon_days);
        if self.max_cpu.is_some() {
            r.max_cpu = self.max_cpu;
        }
        if self.max_memory.is_some() {
            r.max_memory = self.max_memory;
        }
        if self.recency_half_life_hours.is_some() {
            r.recency_half_life_hours = self.recency_half_life_hours;
        }
    }
}

/// HPA co-recommendation (DESIGN.md "HPA co-recommendation").
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct HpaPolicy {
    /// Keep the absolute scale point: `target_new = target_old x R_old / R_new`.
    pub keep_scale_point: bool,
    /// Utilization targets are clamped to 50-90 %: under 50 % wastes half of every pod,
    /// over 90 % leaves no room for the scale-up delay (DESIGN.md).
    pub min_target_percent: u32,
    pub max_target_percent: u32,
    /// minReplicas from the p10 of total demand: low but not the quietest minutes.
    #[serde(deserialize_with = "de_fraction")]
    pub min_replicas_percentile: f64,
    /// minReplicas never drops below 2 (one replica is no redundancy), unless it is lower
    /// today.
    pub min_replicas_floor: u32,
    /// maxReplicas from peak total demand x 1.2 (the VPA's 15 % margin, rounded up for
    /// burst growth).
    #[serde(deserialize_with = "de_fraction")]
    pub max_replicas_headroom: f64,
}

impl Default for HpaPolicy {
    fn default() -> Self {
        HpaPolicy {
            keep_scale_point: true,
            min_target_percent: 50,
            max_target_percent: 90,
            min_replicas_percentile: 0.10,
            min_replicas_floor: 2,
            max_replicas_headroom: 0.20,
        }
    }
}

/// Prices for the savings figures. Defaults: OpenCost/Kubecost `configs/default.json`
/// ("Default prices based on GCP us-central1"): $0.031611 per vCPU-hour and $0.004237 per
/// GiB-hour of on-demand capacity; 730 hours per month (8,760 / 12).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct Prices {
    pub cpu_core_hour: f64,
    pub memory_gib_hour: f64,
    pub hours_per_month: f64,
}

impl Default for Prices {
    fn default() -> Self {
        Prices {
            cpu_core_hour: 0.031611,
            memory_gib_hour: 0.004237,
            hours_per_month: 730.0,
        }
    }
}

/// The whole policy, as the config file spells it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct Policy {
    pub defaults: Rules,
    /// Per-namespace overrides, by namespace name.
    pub namespaces: BTreeMap<String, Overrides>,
    pub hpa: HpaPolicy,
    pub prices: Prices,
    /// A workload whose changes only cut cost, by less than this many dollars a month,
    /// gets no change proposed. 0 (off): hysteresis already stops churn; set e.g. 5 to
    /// silence pennies.
    pub min_monthly_savings: f64,
}

impl Policy {
    /// The rules for one workload: global defaults, then its namespace, then its
    /// annotations. Invalid annotations produce warnings naming the workload and key, and
    /// the workload falls back to the global and namespace rules (a valid `ignore` still
    /// holds). Returns the rules and, when the workload is ignored, by what.
    pub fn rules_for(&self, w: &Workload, warnings: &mut Vec<String>) -> (Rules, Option<&'static str>) {
        let mut base = self.defaults;
        if let Some(o) = self.namespaces.get(&w.key.namespace) {
            o.apply(&mut base);
        }
        if w.annotations.is_empty() {
            return (base, base.ignore.then_some("policy for the namespace"));
        }
        let mut problems = Vec::new();
        let o = super::annotations::overrides(w, &mut problems);
        let mut rules = base;
        if problems.is_empty() {
            o.apply(&mut rules);
            let mut checked = rules;
            checked.ignore = false;
            if let Err(e) = checked.validate("") {
                problems.push(format!(
                    "{}: annotations give an {e}; using the defaults for this workload",
                    w.key
                ));
                rules = base;
            }
        }
        warnings.extend(problems);
        rules.ignore = o.ignore.unwrap_or(base.ignore);
        let by = match o.ignore {
            Some(true) => Some("annotation rightsizer.dev/ignore"),
            Some(false) => None,
            None => base.ignore.then_some("policy for the namespace"),
        };
        (rules, by)
    }
}

#[derive(Deserialize)]
#[serde(untagged)]
enum NumberOrText {
    Number(f64),
    Text(String),
}

/// A percentile or margin: a number (a fraction) or a string (`"95%"`, `"p95"`, `"0.95"`).
/// The range is checked by `validate`, which names the key.
fn de_fraction<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    match NumberOrText::deserialize(d)? {
        NumberOrText::Number(n) => Ok(n),
        NumberOrText::Text(t) => parse_fraction(&t).map_err(serde::de::Error::custom),
    }
}

fn de_opt_fraction<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
    match Option::<NumberOrText>::deserialize(d)? {
        None => Ok(None),
        Some(NumberOrText::Number(n)) => Ok(Some(n)),
        Some(NumberOrText::Text(t)) => parse_fraction(&t).map(Some).map_err(serde::de::Error::custom),
    }
}

#[derive(Deserialize)]
#[serde(untagged)]
enum NumberOrQuantity {
    Number(f64),
    Quantity(String),
}

fn de_quantity<'de, D: Deserializer<'de>>(
    d: D,
    parse: fn(&str) -> Result<f64, crate::model::QuantityError>,
) -> Result<f64, D::Error> {
    match NumberOrQuantity::deserialize(d)? {
        NumberOrQuantity::Number(n) if n.is_finite() && n >= 0.0 => Ok(n),
        NumberOrQuantity::Number(n) => Err(serde::de::Error::custom(format!("invalid quantity {n}"))),
        NumberOrQuantity::Quantity(s) => parse(&s).map_err(serde::de::Error::custom),
    }
}

fn de_cpu<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    de_quantity(d, parse_cpu)
}

fn de_memory<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    de_quantity(d, parse_memory)
}

fn de_opt_quantity<'de, D: Deserializer<'de>>(
    d: D,
    parse: fn(&str) -> Result<f64, crate::model::QuantityError>,
) -> Result<Option<f64>, D::Error> {
    match Option::<NumberOrQuantity>::deserialize(d)? {
        None => Ok(None),
        Some(NumberOrQuantity::Number(n)) if n.is_finite() && n >= 0.0 => Ok(Some(n)),
        Some(NumberOrQuantity::Number(n)) => Err(serde::de::Error::custom(format!("invalid quantity {n}"))),
        Some(NumberOrQuantity::Quantity(s)) => parse(&s).map(Some).map_err(serde::de::Error::custom),
    }
}

fn de_opt_cpu<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
    de_opt_quantity(d, parse_cpu)
}

fn de_opt_memory<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
    de_opt_quantity(d, parse_memory)
}
