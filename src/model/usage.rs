//! The usage summary that strategies read, one per workload x container, built from the
//! history of every pod the workload ever owned in the window.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{ContainerKey, Sketch};

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
        self.first_seen = Some(self.first_seen.map_or(ts, |f| f.min(ts)));
        self.last_seen = Some(self.last_seen.map_or(ts, |l| l.max(ts)));
    }

    pub fn observe_memory(&mut self, bytes: f64) {
        if bytes.is_finite() && bytes >= 0.0 {
            self.memory_peak = Some(self.memory_peak.map_or(bytes, |p| p.max(bytes)));
        }
    }

    /// Pools another pod's (or another chunk's) usage into this one.
    pub fn merge(&mut self, other: &ContainerUsage) {
        self.cpu.merge(&other.cpu);
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
}

mod entries {
    use std::collections::BTreeMap;

    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    use super::{ContainerKey, ContainerUsage};

    #[derive(Serialize, Deserialize)]
    struct Entry<K, U> {
        key: K,
        usage: U,
    }

    pub fn serialize<S: Serializer>(map: &BTreeMap<ContainerKey, ContainerUsage>, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(map.iter().map(|(key, usage)| Entry { key, usage }))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<BTreeMap<ContainerKey, ContainerUsage>, D::Error> {
        let list: Vec<Entry<ContainerKey, ContainerUsage>> = Vec::deserialize(d)?;
        Ok(list.into_iter().map(|e| (e.key, e.usage)).collect())
    }
}
