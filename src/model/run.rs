//! Data that several stages of one run share: the window of history, the usage now from
//! metrics.k8s.io, and the workloads left out on purpose. Collect produces them, recommend and
//! emit read them.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{ContainerKey, WorkloadKey};

/// The window and resolution of the history to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    /// End of the window, unix seconds (evaluation time of instant queries).
    pub end: i64,
    /// Length of the window in seconds (default 14 days, as KRR).
    pub length: i64,
    /// Resolution of the CPU distribution and width of its rate window (default 5 minutes:
    /// the VPA's and KRR's sample width, long enough to smooth scrape jitter).
    pub step: i64,
}

/// Usage now of one container of one workload, over its live pods: CPU in cores, memory
/// (working set) in bytes. `max` is the busiest pod (what a per-pod request must fit), `sum`
/// the whole workload (what the cluster pays for).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CurrentUsage {
    pub pods: u32,
    pub cpu_max: f64,
    pub cpu_sum: f64,
    pub memory_max: f64,
    pub memory_sum: f64,
}

impl CurrentUsage {
    pub fn add(&mut self, cpu: f64, memory: f64) {
        self.pods += 1;
        self.cpu_max = self.cpu_max.max(cpu);
        self.cpu_sum += cpu;
        self.memory_max = self.memory_max.max(memory);
        self.memory_sum += memory;
    }
}

pub type CurrentUsageMap = BTreeMap<ContainerKey, CurrentUsage>;

/// A workload left out on purpose, with the reason, for the report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Skipped {
    pub key: WorkloadKey,
    pub reason: String,
}
