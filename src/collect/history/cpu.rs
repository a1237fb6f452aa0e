//! The CPU half of the query plan's reduction: one range-query chunk of per-container 5-minute
//! rates streams into a `CpuChunk`, which pools each container's points into its workload's
//! sketch and sums them per step into the workload's total demand and replica count. A chunk
//! holds one sketch per workload x container, one row of `points` per workload and one bit per
//! series and step, never the samples; chunks merge into the `UsageSet` as they complete.
//!
//! The query is the bare `rate()`, not `sum by (namespace, pod, container)`: the aggregation
//! made Prometheus evaluate three times longer (it hashes every series' labels at every
//! step). cAdvisor can still answer more than one series for a `(namespace, pod, container)`:
//! the same container scraped by two jobs (identical points that a sum would double), or a
//! restarted container whose old cgroup series overlaps the new one for a step. Here each
//! `(namespace, pod, container)` has at most one point per step: the first series that has a
//! point at a step gives it, later ones are counted in `duplicates` and left out.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use super::Owners;
use crate::collect::promparse::{Labels, SeriesSink};
use crate::model::{ContainerKey, ContainerUsage, UsageSet, WorkloadKey};

/// A series' identity: (namespace, pod, container).
pub(super) type SeriesId = (String, String, String);

/// `(namespace, pod, container)` of a series, or `None` when a label is missing.
pub(super) fn series_id(labels: &Labels) -> Option<SeriesId> {
    let get = |k: &str| labels.get(k).filter(|v| !v.is_empty()).cloned();
    Some((get("namespace")?, get("pod")?, get("container")?))
}

/// One workload's per-step sums within a chunk.
#[derive(Debug)]
struct Steps {
    /// Total CPU (cores) at each step, over all pods and containers.
    total: Vec<f32>,
    /// Per container name: the number of pods with a point at each step. The workload's
    /// replica count at a step is the largest of them (init containers and sidecars that
    /// come and go do not add replicas).
    present: Vec<(String, Vec<u16>)>,
}

/// The reduction of one CPU chunk (evaluation times `first + k * step`, `k < points`).
#[derive(Debug)]
pub(super) struct CpuChunk {
    owners: Arc<Owners>,
    first: i64,
    step: i64,
    points: usize,
    index: HashMap<ContainerKey, usize>,
    containers: Vec<(ContainerKey, ContainerUsage)>,
    workload_index: HashMap<WorkloadKey, usize>,
    workloads: Vec<(WorkloadKey, Steps)>,
    /// Per `(namespace, pod, container)`: its slot in `slots`, which holds its container slot
    /// and one bit per step that has a point.
    series: HashMap<SeriesId, usize>,
    slots: Vec<(usize, Vec<u64>)>,
    /// (container slot, workload slot, presence row, series slot) of the series being read.
    current: Option<(usize, usize, usize, usize)>,
    pub(super) dropped: u64,
    /// Points left out because another series of the same container had one at that step.
    pub(super) duplicates: u64,
    pub(super) bad_series: u64,
}

impl CpuChunk {
    pub(super) fn new(owners: Arc<Owners>, first: i64, last: i64, step: i64) -> Self {
        CpuChunk {
            owners,
            first,
            step,
            points: ((last - first) / step + 1).max(0) as usize,
            index: HashMap::new(),
            containers: Vec::new(),
            workload_index: HashMap::new(),
            workloads: Vec::new(),
            series: HashMap::new(),
            slots: Vec::new(),
            current: None,
            dropped: 0,
            duplicates: 0,
            bad_series: 0,
        }
    }

    pub(super) fn series_count(&self) -> usize {
        self.series.len()
    }

    /// Pools this chunk into `usage`; `seen` holds the series of earlier chunks, so a pod
    /// counts once per container however many chunks it spans.
    pub(super) fn merge_into(self, usage: &mut UsageSet, seen: &mut HashSet<SeriesId>) {
        let mut containers = self.containers;
        for (id, s) in self.series {
            if seen.insert(id) {
                containers[self.slots[s].0].1.pods += 1;
            }
        }
        for (key, u) in containers {
            usage.containers.entry(key).or_default().merge(&u);
        }
        for (key, steps) in self.workloads {
            let w = usage.workloads.entry(key).or_default();
            for k in 0..self.points {
                let replicas = steps.present.iter().map(|(_, row)| row[k]).max().unwrap_or(0);
                if replicas > 0 {
                    w.total_cpu.add(f64::from(steps.total[k]));
                    w.replicas.add(f64::from(replicas));
                }
            }
        }
    }
}

impl SeriesSink for CpuChunk {
    fn series(&mut self, labels: &Labels) {
        let Some(id) = series_id(labels) else {
            self.bad_series += 1;
            self.current = None;
            return;
        };
        let workload = self.owners.resolve(&id.0, &id.1);
        let key = ContainerKey::new(workload.clone(), id.2.as_str());
        let c = *self.index.entry(key.clone()).or_insert_with(|| {
            self.containers.push((key, ContainerUsage::default()));
            self.containers.len() - 1
        });
        let points = self.points;
        let w = *self.workload_index.entry(workload.clone()).or_insert_with(|| {
            self.workloads.push((
                workload,
                Steps {
                    total: vec![0.0; points],
                    present: Vec::new(),
                },
            ));
            self.workloads.len() - 1
        });
        let present = &mut self.workloads[w].1.present;
        let row = match present.iter().position(|(name, _)| *name == id.2) {
            Some(r) => r,
            None => {
                present.push((id.2.clone(), vec![0; points]));
                present.len() - 1
            }
        };
        let words = points.div_ceil(64);
        let s = *self.series.entry(id).or_insert_with(|| {
            self.slots.push((c, vec![0; words]));
            self.slots.len() - 1
        });
        self.current = Some((c, w, row, s));
    }

    fn sample(&mut self, t: f64, v: f64) {
        let Some((c, w, row, s)) = self.current else { return };
        if !v.is_finite() || v < 0.0 {
            self.dropped += 1;
            return;
        }
        let t = t.round() as i64;
        let k = (t - self.first).div_euclid(self.step);
        let in_chunk = (0..self.points as i64).contains(&k);
        if in_chunk {
            let (word, bit) = (k as usize / 64, 1u64 << (k % 64));
            let taken = &mut self.slots[s].1[word];
            if *taken & bit != 0 {
                self.duplicates += 1;
                return;
            }
            *taken |= bit;
        }
        let usage = &mut self.containers[c].1;
        usage.cpu.add(v);
        usage.saw(t);
        if in_chunk {
            let steps = &mut self.workloads[w].1;
            steps.total[k as usize] += v as f32;
            let n = &mut steps.present[row].1[k as usize];
            *n = n.saturating_add(1);
        }
    }
}

/// A reduction of per-container points into `ContainerUsage` fields (daily peaks, restarts,
/// OOM kills, CFS counters), for answers with few points per series.
pub(super) struct PerContainer {
    owners: Arc<Owners>,
    pub(super) apply: fn(&mut ContainerUsage, i64, f64),
    current: Option<ContainerKey>,
    pub(super) out: HashMap<ContainerKey, ContainerUsage>,
    pub(super) series: u64,
    pub(super) bad_series: u64,
}

impl PerContainer {
    pub(super) fn new(owners: Arc<Owners>, apply: fn(&mut ContainerUsage, i64, f64)) -> Self {
        PerContainer {
            owners,
            apply,
            current: None,
            out: HashMap::new(),
            series: 0,
            bad_series: 0,
        }
    }

    pub(super) fn merge_into(self, usage: &mut UsageSet) {
        for (key, u) in self.out {
            usage.containers.entry(key).or_default().merge(&u);
        }
    }
}

impl SeriesSink for PerContainer {
    fn series(&mut self, labels: &Labels) {
        self.current = series_id(labels).map(|(ns, pod, container)| {
            self.series += 1;
            ContainerKey::new(self.owners.resolve(&ns, &pod), container)
        });
        if self.current.is_none() {
            self.bad_series += 1;
        }
    }

    fn sample(&mut self, t: f64, v: f64) {
        if let Some(key) = &self.current {
            let u = match self.out.get_mut(key) {
                Some(u) => u,
                None => self.out.entry(key.clone()).or_default(),
            };
            (self.apply)(u, t.round() as i64, v);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::WorkloadKind;

    fn labels(pod: &str, container: &str) -> Labels {
        [("namespace", "shop"), ("pod", pod), ("container", container)]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn a_chunk_pools_pods_and_sums_steps_per_workload() {
        let mut owners = Owners::default();
        owners.insert_pod("shop", "web-1", "ReplicaSet", "web-a");
        owners.insert_pod("shop", "web-2", "ReplicaSet", "web-a");
        owners.insert_replica_set("shop", "web-a", "Deployment", "web");
        let mut chunk = CpuChunk::new(Arc::new(owners), 600, 1200, 300);
        for (pod, container, points) in [
            ("web-1", "app", vec![(600.0, 0.5), (900.0, 0.25)]),
            ("web-1", "envoy", vec![(600.0, 0.125), (900.0, f64::NAN)]),
            ("web-2", "app", vec![(900.0, 1.0), (1200.0, 2.0)]),
        ] {
            chunk.series(&labels(pod, container));
            for (t, v) in points {
                chunk.sample(t, v);
            }
        }
        chunk.series(&Labels::new());
        chunk.sample(600.0, 1.0);
        assert_eq!((chunk.dropped, chunk.bad_series), (1, 1));
        let mut usage = UsageSet::default();
        let mut seen = HashSet::new();
        chunk.merge_into(&mut usage, &mut seen);
        let web = WorkloadKey::new("shop", WorkloadKind::Deployment, "web");
        let app = &usage.containers[&ContainerKey::new(web.clone(), "app")];
        assert_eq!(
            (app.pods, app.cpu.count(), app.first_seen, app.last_seen),
            (2, 4, Some(600), Some(1200))
        );
        let w = &usage.workloads[&web];
        // Totals per step: 0.625, 1.25, 2.0; replicas 1, 2, 1.
        assert_eq!(w.total_cpu.count(), 3);
        assert_eq!(w.total_cpu.max(), Some(2.0));
        assert_eq!(w.replicas.max(), Some(2.0));
        let low = w.replicas.quantile(0.3).unwrap();
        assert!((low - 1.0).abs() <= 0.01, "{low}");
        assert_eq!(seen.len(), 3);
    }

    #[test]
    fn a_second_series_of_a_container_fills_only_the_steps_the_first_left_empty() {
        let mut owners = Owners::default();
        owners.insert_pod("shop", "web-1", "StatefulSet", "web");
        let mut chunk = CpuChunk::new(Arc::new(owners), 600, 1500, 300);
        // The old cgroup (steps 600-900), then the restarted container's (900-1500): they
        // overlap at 900, where the first series' point stands.
        for points in [
            vec![(600.0, 0.5), (900.0, 0.25)],
            vec![(900.0, 4.0), (1200.0, 1.0), (1500.0, 2.0)],
        ] {
            chunk.series(&labels("web-1", "app"));
            for (t, v) in points {
                chunk.sample(t, v);
            }
        }
        assert_eq!((chunk.duplicates, chunk.series_count()), (1, 1));
        let mut usage = UsageSet::default();
        chunk.merge_into(&mut usage, &mut HashSet::new());
        let web = WorkloadKey::new("shop", WorkloadKind::StatefulSet, "web");
        let app = &usage.containers[&ContainerKey::new(web.clone(), "app")];
        assert_eq!((app.pods, app.cpu.count(), app.cpu.max()), (1, 4, Some(2.0)));
        let w = &usage.workloads[&web];
        assert_eq!((w.total_cpu.count(), w.total_cpu.max()), (4, Some(2.0)));
        assert_eq!(w.replicas.max(), Some(1.0));
    }
}
