//! The usage summary that strategies read, one per workload x container, built from the
//! history of every pod the workload ever owned in the window.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{ContainerKey, Days, Sketch, WorkloadKey};

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContainerUsage {
    /// Pooled distribution of CPU usage (cores, 5-minute rates) over all replicas and the
    /// whole window.
    pub cpu: Sketch,
    /// Peak working set (bytes) over the window, across all replicas.
    pub memory_peak: Option<f64>,
    /// Number of distinct pods that contributed history.
    pub pods: u32,
    /// First and last sample time (unix seconds) seen for this container.
    pub first_seen: Option<i64>,
    pub last_seen: Option<i64>,
    /// Peak working set per UTC day (day start, unix seconds -> bytes), across replicas: the
    /// input of the VPA-style "p90 of daily peaks" memory mode.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub memory_daily_peaks: BTreeMap<i64, f64>,
    /// OOM kills of this container in the window (all replicas) and the last one's time.
    #[serde(default)]
    pub oom_kills: u32,
    #[serde(default)]
    pub last_oom: Option<i64>,
    /// Container restarts in the window (all replicas).
    #[serde(default)]
    pub restarts: u32,
    /// CFS periods and throttled periods in the window (all replicas): throttling ratio =
    /// throttled / periods. Zero when the container has no CPU limit.
    #[serde(default)]
    pub cfs_periods: f64,
    #[serde(default)]
    pub cfs_throttled_periods: f64,
    /// Pooled CPU distribution (5-minute rates) per UTC day (day start, unix seconds), across
    /// replicas: the daily levels that level-shift and trend detection read, and the days a
    /// recency-weighted distribution is built from (`recommend::recency`). Filled from the
    /// same CPU pass as `cpu`; days run `(midnight, next midnight]`.
    #[serde(default, skip_serializing_if = "Days::is_empty")]
    pub cpu_days: Days<Sketch>,
    /// Highest short-window (2-minute) CPU rate over the window, across replicas: the bursts
    /// (GC, start-up) that 5-minute rates average away and a CPU limit must leave room for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_short_peak: Option<f64>,
    /// The memory limit (bytes) in force when the container was OOM killed (the largest,
    /// over its kills): what the OOM bump is anchored to, never today's limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oom_limit: Option<f64>,
    /// The lowest CPU limit (cores) in force over the window: the limit the container was
    /// throttled against, which the throttling raise is anchored to, never today's limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub throttled_limit: Option<f64>,
}

impl ContainerUsage {
    /// Span of history in seconds (0 when there is none).
    pub fn span_seconds(&self) -> i64 {
        match (self.first_seen, self.last_seen) {
            (Some(a), Some(b)) => (b - a).max(0),
            _ => 0,
        }
    }

    /// Records that a sample exists at `ts`.
    pub fn saw(&mut self, ts: i64) {
        saw(&mut self.first_seen, &mut self.last_seen, ts);
    }

    pub fn observe_memory(&mut self, bytes: f64) {
        if bytes.is_finite() && bytes >= 0.0 {
            self.memory_peak = Some(self.memory_peak.map_or(bytes, |p| p.max(bytes)));
        }
    }

    /// Records a peak of the working set in the UTC day that starts at `day`.
    pub fn observe_daily_peak(&mut self, day: i64, bytes: f64) {
        if bytes.is_finite() && bytes >= 0.0 {
            let peak = self.memory_daily_peaks.entry(day).or_insert(bytes);
            *peak = peak.max(bytes);
            self.observe_memory(bytes);
        }
    }

    /// Records a CPU rate point observed at `t` in the UTC day that starts at `day`.
    pub fn observe_cpu(&mut self, day: i64, cores: f64) -> bool {
        observe_cpu(&mut self.cpu, &mut self.cpu_days, day, cores)
    }

    /// Records a short-window CPU rate (cores).
    pub fn observe_short_cpu(&mut self, cores: f64) {
        observe_peak(&mut self.cpu_short_peak, cores);
    }

    /// Share of CFS periods in which the container was throttled, if it had a CPU limit.
    pub fn throttling_ratio(&self) -> Option<f64> {
        (self.cfs_periods > 0.0).then(|| (self.cfs_throttled_periods / self.cfs_periods).clamp(0.0, 1.0))
    }

    /// Pools a chunk's CPU usage into this one: the fields `merge` would set from a
    /// `ContainerUsage` holding only `part`'s, the sketches moved rather than copied where
    /// this one has none yet.
    pub fn merge_cpu(&mut self, part: CpuUsage) {
        let CpuUsage {
            cpu,
            cpu_days,
            cpu_short_peak,
            first_seen,
            last_seen,
            pods,
        } = part;
        self.cpu.merge_owned(cpu);
        self.cpu_days
            .merge_with(cpu_days, |mine, theirs| mine.merge_owned(theirs));
        if let Some(p) = cpu_short_peak {
            self.observe_short_cpu(p);
        }
        self.pods += pods;
        if let Some(f) = first_seen {
            self.saw(f);
        }
        if let Some(l) = last_seen {
            self.saw(l);
        }
    }

    /// Pools another pod's (or another chunk's) usage into this one.
    pub fn merge(&mut self, other: &ContainerUsage) {
        for (&day, &peak) in &other.memory_daily_peaks {
            self.observe_daily_peak(day, peak);
        }
        self.oom_kills += other.oom_kills;
        self.last_oom = self.last_oom.max(other.last_oom);
        self.restarts += other.restarts;
        self.cfs_periods += other.cfs_periods;
        self.cfs_throttled_periods += other.cfs_throttled_periods;
        self.cpu.merge(&other.cpu);
        for (&day, s) in &other.cpu_days {
            self.cpu_days.entry_or_default(day).merge(s);
        }
        if let Some(p) = other.cpu_short_peak {
            self.observe_short_cpu(p);
        }
        let largest = |a: Option<f64>, b: Option<f64>| match (a, b) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
        let lowest = |a: Option<f64>, b: Option<f64>| match (a, b) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        self.oom_limit = largest(self.oom_limit, other.oom_limit);
        self.throttled_limit = lowest(self.throttled_limit, other.throttled_limit);
        if let Some(m) = other.memory_peak {
            self.observe_memory(m);
        }
        self.pods += other.pods;
        if let Some(f) = other.first_seen {
            self.saw(f);
        }
        if let Some(l) = other.last_seen {
            self.saw(l);
        }
    }
}

/// What the CPU pass fills of a container's usage, within one chunk of the window: what a
/// chunk holds per container in place of a whole `ContainerUsage` (whose memory, OOM, restart
/// and throttling fields a chunk never fills: about 320 bytes a container where this takes
/// 150, in every chunk in flight, issue 16). [`ContainerUsage::merge_cpu`] pools it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CpuUsage {
    /// As [`ContainerUsage::cpu`].
    pub cpu: Sketch,
    /// As [`ContainerUsage::cpu_days`].
    pub cpu_days: Days<Sketch>,
    /// As [`ContainerUsage::cpu_short_peak`].
    pub cpu_short_peak: Option<f64>,
    /// As [`ContainerUsage::first_seen`] and [`ContainerUsage::last_seen`].
    pub first_seen: Option<i64>,
    pub last_seen: Option<i64>,
    /// As [`ContainerUsage::pods`].
    pub pods: u32,
}

impl CpuUsage {
    /// Records a CPU rate point observed in the UTC day that starts at `day` (as
    /// [`ContainerUsage::observe_cpu`]).
    pub fn observe_cpu(&mut self, day: i64, cores: f64) -> bool {
        observe_cpu(&mut self.cpu, &mut self.cpu_days, day, cores)
    }

    /// Records that a sample exists at `ts`.
    pub fn saw(&mut self, ts: i64) {
        saw(&mut self.first_seen, &mut self.last_seen, ts);
    }

    /// Records a short-window CPU rate (cores).
    pub fn observe_short_cpu(&mut self, cores: f64) {
        observe_peak(&mut self.cpu_short_peak, cores);
    }
}

/// The rules [`ContainerUsage`] and [`CpuUsage`] share: a CPU point goes into the window's
/// sketch and its day's (refused when not a finite non-negative number) ...
fn observe_cpu(cpu: &mut Sketch, days: &mut Days<Sketch>, day: i64, cores: f64) -> bool {
    if !cpu.add(cores) {
        return false;
    }
    days.entry_or_default(day).add(cores);
    true
}

/// ... a sample at `ts` widens the span seen ...
fn saw(first: &mut Option<i64>, last: &mut Option<i64>, ts: i64) {
    *first = Some(first.map_or(ts, |f| f.min(ts)));
    *last = Some(last.map_or(ts, |l| l.max(ts)));
}

/// ... and a short-window rate raises the peak.
fn observe_peak(peak: &mut Option<f64>, cores: f64) {
    if cores.is_finite() && cores >= 0.0 {
        *peak = Some(peak.map_or(cores, |p| p.max(cores)));
    }
}

/// Usage of every container found in the history, with the window it covers.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UsageSet {
    /// Window start and end, unix seconds.
    pub start: i64,
    pub end: i64,
    /// Resolution of the CPU samples, seconds.
    pub step: i64,
    /// Serialized as a list of `{key, usage}` entries: JSON maps need string keys.
    #[serde(with = "entries")]
    pub containers: BTreeMap<ContainerKey, ContainerUsage>,
    /// Workload-level history (replicas, total demand, HPA status), for HPA co-recommendation.
    #[serde(default, with = "entries")]
    pub workloads: BTreeMap<WorkloadKey, WorkloadUsage>,
}

/// History of a workload as a whole.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkloadUsage {
    /// Distribution of the workload's total CPU demand (cores summed over all pods and app
    /// containers at each step): minReplicas from its low percentiles, maxReplicas from its peak.
    pub total_cpu: Sketch,
    /// Distribution of the workload's total working set (bytes summed over pods at each step).
    pub total_memory: Sketch,
    /// Distribution of the number of running replicas (one sample per step).
    pub replicas: Sketch,
    /// Seconds in the window during which the HPA had current replicas == maxReplicas.
    #[serde(default)]
    pub hpa_at_max_seconds: i64,
    /// Seconds of HPA status history seen.
    #[serde(default)]
    pub hpa_seconds: i64,
}

/// Maps with struct keys as lists of `{key, usage}` entries.
mod entries {
    use std::collections::BTreeMap;

    use serde::de::DeserializeOwned;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    #[derive(Serialize, Deserialize)]
    struct Entry<K, U> {
        key: K,
        usage: U,
    }

    pub fn serialize<S, K, U>(map: &BTreeMap<K, U>, s: S) -> Result<S::Ok, S::Error>
    where
        S: Serializer,
        K: Serialize,
        U: Serialize,
    {
        s.collect_seq(map.iter().map(|(key, usage)| Entry { key, usage }))
    }

    pub fn deserialize<'de, D, K, U>(d: D) -> Result<BTreeMap<K, U>, D::Error>
    where
        D: Deserializer<'de>,
        K: DeserializeOwned + Ord,
        U: DeserializeOwned,
    {
        let list: Vec<Entry<K, U>> = Vec::deserialize(d)?;
        Ok(list.into_iter().map(|e| (e.key, e.usage)).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A chunk's CPU part: points `(t, cores)`, days of 100 s, and the pods it saw.
    fn part(points: &[(i64, f64)], short: Option<f64>, pods: u32) -> CpuUsage {
        let mut p = CpuUsage {
            pods,
            ..Default::default()
        };
        for &(t, v) in points {
            if p.observe_cpu(t.div_euclid(100) * 100, v) {
                p.saw(t);
            }
        }
        if let Some(s) = short {
            p.observe_short_cpu(s);
        }
        p
    }

    /// The same part as a whole `ContainerUsage`, as chunks held it before `CpuUsage`.
    fn whole(p: &CpuUsage) -> ContainerUsage {
        ContainerUsage {
            cpu: p.cpu.clone(),
            cpu_days: p.cpu_days.clone(),
            cpu_short_peak: p.cpu_short_peak,
            first_seen: p.first_seen,
            last_seen: p.last_seen,
            pods: p.pods,
            ..Default::default()
        }
    }

    #[test]
    fn merging_cpu_parts_gives_the_usage_merging_whole_usages_gave() {
        let parts = [
            part(&[(10, 0.5), (150, 0.25), (199, 3.0), (20, 0.0)], Some(4.0), 2),
            // Shares day 100 with the first, adds day 200 and values far below and above.
            part(&[(120, 0.001), (250, 40.0), (290, 0.5)], None, 1),
            part(&[], Some(0.1), 0),
            part(&[(380, 0.3), (-50, 0.2)], Some(9.0), 3),
        ];
        let mut base = ContainerUsage::default();
        base.observe_daily_peak(100, 5e8);
        base.cfs_periods = 12.0;
        base.throttled_limit = Some(0.5);
        for order in [[0, 1, 2, 3], [3, 2, 1, 0], [1, 3, 0, 2]] {
            let (mut want, mut got) = (base.clone(), base.clone());
            for i in order {
                want.merge(&whole(&parts[i]));
                got.merge_cpu(parts[i].clone());
            }
            assert_eq!(got, want, "order {order:?}");
            assert_eq!(
                serde_json::to_string(&got).unwrap(),
                serde_json::to_string(&want).unwrap()
            );
            assert_eq!(
                got.cpu_days.keys().copied().collect::<Vec<_>>(),
                [-100, 0, 100, 200, 300]
            );
            assert_eq!((got.pods, got.cpu.count(), got.cpu_short_peak), (6, 9, Some(9.0)));
            assert_eq!((got.first_seen, got.last_seen), (Some(-50), Some(380)));
        }
    }
}
