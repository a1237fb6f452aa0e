//! The limits in force when something happened, so bumps are anchored to history and never
//! to today's spec (a bump anchored to today's limit grows again on every run after it is
//! applied: 450 -> 592 -> 711 -> 854 Mi on the same history). The OOM query of the restart
//! plan selects kube-state-metrics' `kube_pod_container_resource_limits` of the same
//! restarted pods in the same request (`OomsAndLimits`), and keeps the memory limit at each
//! restart's step (the range query's lookback gives the running pod's limit at that
//! instant); the kills among those restarts pick their limit afterwards.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use super::Owners;
use super::cpu::{PerContainer, SeriesId, series_id};
use super::events::OomMatches;
use crate::collect::promparse::{Labels, SeriesSink};
use crate::model::ContainerKey;

/// The two metrics one selection of the restarted pods answers.
pub(super) const OOM_AND_LIMITS: &str =
    "__name__=~\"kube_pod_container_status_last_terminated_reason|kube_pod_container_resource_limits\"";

#[derive(Debug, Clone, Copy, PartialEq)]
enum Active {
    None,
    Oom,
    Limit,
}

/// `OomMatches` for the `OOMKilled` reason series, and the memory limit at every restart step.
#[derive(Debug)]
pub(super) struct OomsAndLimits {
    pub(super) ooms: OomMatches,
    increases: Arc<HashMap<SeriesId, BTreeMap<i64, u32>>>,
    active: Active,
    current: Option<SeriesId>,
    pub(super) limits: HashMap<(SeriesId, i64), f64>,
}

impl OomsAndLimits {
    pub(super) fn new(increases: Arc<HashMap<SeriesId, BTreeMap<i64, u32>>>) -> Self {
        OomsAndLimits {
            ooms: OomMatches::new(increases.clone()),
            increases,
            active: Active::None,
            current: None,
            limits: HashMap::new(),
        }
    }
}

impl SeriesSink for OomsAndLimits {
    fn series(&mut self, labels: &Labels) {
        let label = |k: &str| labels.get(k).map(String::as_str);
        self.active = match (label("__name__"), label("reason"), label("resource")) {
            (Some("kube_pod_container_status_last_terminated_reason"), Some("OOMKilled"), _) => Active::Oom,
            (Some("kube_pod_container_resource_limits"), _, Some("memory")) => Active::Limit,
            _ => Active::None,
        };
        match self.active {
            Active::Oom => self.ooms.series(labels),
            Active::Limit => self.current = series_id(labels).filter(|id| self.increases.contains_key(id)),
            Active::None => {}
        }
    }

    fn sample(&mut self, t: f64, v: f64) {
        match self.active {
            Active::Oom => self.ooms.sample(t, v),
            Active::Limit => {
                let Some(id) = &self.current else { return };
                let t = t.round() as i64;
                if v.is_finite() && v > 0.0 && self.increases[id].contains_key(&t) {
                    // Two series of one container (two scrape jobs): the larger limit.
                    let slot = self.limits.entry((id.clone(), t)).or_insert(v);
                    *slot = slot.max(v);
                }
            }
            Active::None => {}
        }
    }
}

/// Per workload x container: the largest memory limit in force at its OOM kills.
pub(super) fn oom_limits(
    owners: &Arc<Owners>,
    limits: &HashMap<(SeriesId, i64), f64>,
    kills: &HashSet<(SeriesId, i64)>,
) -> PerContainer {
    let mut out = PerContainer::new(owners.clone(), |_, _, _| {});
    for kill in kills {
        let Some(&limit) = limits.get(kill) else { continue };
        let id = &kill.0;
        let key = ContainerKey::new(owners.resolve(&id.0, &id.1), id.2.as_str());
        let u = out.out.entry(key).or_default();
        u.oom_limit = Some(u.oom_limit.map_or(limit, |l| l.max(limit)));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{WorkloadKey, WorkloadKind};

    fn labels(pairs: &[(&str, &str)]) -> Labels {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn keeps_the_limit_at_each_kill_and_not_the_later_one() {
        let id = ("shop".to_string(), "db-0".to_string(), "app".to_string());
        let increases = Arc::new(HashMap::from([(id.clone(), BTreeMap::from([(900, 1), (1500, 1)]))]));
        let mut sink = OomsAndLimits::new(increases);
        let pod = [("namespace", "shop"), ("pod", "db-0"), ("container", "app")];
        let with = |extra: &[(&'static str, &'static str)]| labels(&[&pod[..], extra].concat());
        // Killed at 900 under 450 Mi; the limit was raised to 592 Mi afterwards, and the
        // restart at 1500 was not an OOM kill.
        sink.series(&with(&[
            ("__name__", "kube_pod_container_resource_limits"),
            ("resource", "memory"),
        ]));
        for (t, v) in [(600.0, 450.0), (900.0, 450.0), (1200.0, 592.0), (1500.0, 592.0)] {
            sink.sample(t, v);
        }
        sink.series(&with(&[
            ("__name__", "kube_pod_container_resource_limits"),
            ("resource", "cpu"),
        ]));
        sink.sample(900.0, 2.0);
        sink.series(&with(&[
            ("__name__", "kube_pod_container_status_last_terminated_reason"),
            ("reason", "Error"),
        ]));
        sink.sample(1500.0, 1.0);
        sink.series(&with(&[
            ("__name__", "kube_pod_container_status_last_terminated_reason"),
            ("reason", "OOMKilled"),
        ]));
        for (t, v) in [(900.0, 1.0), (1500.0, 0.0)] {
            sink.sample(t, v);
        }
        assert_eq!(sink.ooms.matched, HashSet::from([(id.clone(), 900)]));
        assert_eq!(sink.limits.len(), 2);
        let mut owners = Owners::default();
        owners.insert_pod("shop", "db-0", "StatefulSet", "db");
        let out = oom_limits(&Arc::new(owners), &sink.limits, &sink.ooms.matched);
        let key = ContainerKey::new(WorkloadKey::new("shop", WorkloadKind::StatefulSet, "db"), "app");
        assert_eq!(out.out[&key].oom_limit, Some(450.0));
    }
}
