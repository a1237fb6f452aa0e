//! Scoring a recommendation on held-out history (`rightsizer backtest`): given what each pod
//! of a container really used after the recommendation was made, how often and by how much
//! the candidate requests and limits would have been short, and how much they would have
//! reserved for nothing. Pure: the held-out series come from `crate::backtest`, the
//! candidates from `recommend`, today's spec or `reference`.
//!
//! The unit of CPU is the pod-interval: one pod during one step (5 minutes by default), the
//! same points the recommendation itself is made from. An interval is short when the pod's
//! CPU rate is above the request (the scheduler reserved less than it used, so it ran on
//! other pods' share or was starved). Memory is judged per pod: a pod whose working set
//! would have crossed the memory limit would have been OOM-killed.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::model::{ContainerKey, Resources, Workload};
use crate::recommend::{Report, reference};

const GIB: f64 = 1024.0 * 1024.0 * 1024.0;

/// The held-out series of one pod of one container.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PodSeries {
    pub pod: String,
    /// CPU rate (cores) per step, `(unix seconds, cores)`.
    pub cpu: Vec<(i64, f64)>,
    /// Working set (bytes) per step, `(unix seconds, bytes)`.
    pub memory: Vec<(i64, f64)>,
}

/// How one candidate fares on held-out usage. Sums over pods (and over containers and
/// workloads with [`Score::add`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Score {
    /// Pod-intervals with a CPU point.
    pub cpu_intervals: u64,
    /// Pod-intervals whose CPU rate was above the request (all of them without a request).
    pub cpu_short_intervals: u64,
    /// CPU used above the request, core-hours.
    pub cpu_shortfall_core_hours: f64,
    /// CPU requested and not used, core-hours.
    pub cpu_slack_core_hours: f64,
    /// Pods with a working-set point.
    pub memory_pods: u64,
    /// Pods whose working set would have crossed the memory limit (0 without a limit).
    pub pods_over_memory_limit: u64,
    /// Memory requested and not used, GiB-hours.
    pub memory_slack_gib_hours: f64,
}

impl Score {
    /// Share of pod-intervals short of CPU, `None` without any CPU point.
    pub fn cpu_shortfall_rate(&self) -> Option<f64> {
        (self.cpu_intervals > 0).then(|| self.cpu_short_intervals as f64 / self.cpu_intervals as f64)
    }

    /// Adds another container's (or workload's) score to this one.
    pub fn add(&mut self, other: &Score) {
        self.cpu_intervals += other.cpu_intervals;
        self.cpu_short_intervals += other.cpu_short_intervals;
        self.cpu_shortfall_core_hours += other.cpu_shortfall_core_hours;
        self.cpu_slack_core_hours += other.cpu_slack_core_hours;
        self.memory_pods += other.memory_pods;
        self.pods_over_memory_limit += other.pods_over_memory_limit;
        self.memory_slack_gib_hours += other.memory_slack_gib_hours;
    }
}

/// Scores `candidate` on the held-out `pods` of one container, each point standing for
/// `step` seconds. Non-finite and negative points are left out (a counter reset or a
/// scrape gap is not usage); a missing request reserves nothing, so every CPU interval
/// with usage is short and there is no slack; a missing memory limit never OOM-kills.
pub fn score(pods: &[PodSeries], candidate: &Resources, step: i64) -> Score {
    let hours = step as f64 / 3600.0;
    let cpu_request = candidate.cpu_request.unwrap_or(0.0);
    let memory_request = candidate.memory_request.unwrap_or(0.0);
    let mut s = Score::default();
    for pod in pods {
        for &(_, used) in pod.cpu.iter().filter(|(_, v)| v.is_finite() && *v >= 0.0) {
            s.cpu_intervals += 1;
            if used > cpu_request || (candidate.cpu_request.is_none() && used > 0.0) {
                s.cpu_short_intervals += 1;
            }
            s.cpu_shortfall_core_hours += (used - cpu_request).max(0.0) * hours;
            s.cpu_slack_core_hours += (cpu_request - used).max(0.0) * hours;
        }
        let mut memory = pod
            .memory
            .iter()
            .map(|&(_, v)| v)
            .filter(|v| v.is_finite() && *v >= 0.0)
            .peekable();
        if memory.peek().is_none() {
            continue;
        }
        s.memory_pods += 1;
        let mut over = false;
        for used in memory {
            over |= candidate.memory_limit.is_some_and(|limit| used > limit);
            s.memory_slack_gib_hours += (memory_request - used).max(0.0) / GIB * hours;
        }
        s.pods_over_memory_limit += u64::from(over);
    }
    s
}

/// The methods a backtest compares, in report order: rightsizer's policy, the requests and
/// limits set today, KRR `simple` and the VPA recommender (see `reference`).
pub const METHODS: [&str; 4] = ["rightsizer", "current", "krr-simple", "vpa"];

/// One container's history as the backtest reads it: per-pod series of the training window
/// (for the reference methods, which work per pod) and of the held-out window, and the OOM
/// kills of the training window `(pod, unix seconds)`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ContainerHistory {
    pub training: Vec<PodSeries>,
    pub held_out: Vec<PodSeries>,
    pub ooms: Vec<(String, i64)>,
}

/// One method's candidate for one container and its score.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Candidate {
    pub method: &'static str,
    pub resources: Resources,
    pub score: Score,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ContainerResult {
    pub key: ContainerKey,
    /// One per [`METHODS`], in that order; empty when the container was not scored.
    pub candidates: Vec<Candidate>,
    /// Why it was not scored, or what a method could not do.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

/// Every container's candidates and scores, and the totals per method.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Evaluation {
    pub containers: Vec<ContainerResult>,
    /// One per [`METHODS`], in that order.
    pub totals: Vec<Total>,
}

impl Evaluation {
    /// Each method's score summed per workload name, one per [`METHODS`] in that order: the
    /// per-scenario view of the quality suites (`ClusterSpec::scenarios` names a workload
    /// after its scenario). A workload none of whose containers was scored is listed with
    /// zero scores.
    pub fn by_workload(&self) -> BTreeMap<String, Vec<Score>> {
        let mut per_workload: BTreeMap<String, Vec<Score>> = BTreeMap::new();
        for c in &self.containers {
            let row = per_workload
                .entry(c.key.workload.name.clone())
                .or_insert_with(|| vec![Score::default(); METHODS.len()]);
            for (total, cand) in row.iter_mut().zip(&c.candidates) {
                total.add(&cand.score);
            }
        }
        per_workload
    }
}

/// Pareto dominance on two figures where less is better (a shortfall and a slack): `a` is
/// no worse than `b` on either and better on one. Issue 12's per-scenario target is that no
/// reference method dominates rightsizer on (CPU shortfall rate, CPU slack) nor on (pods
/// over the memory limit, memory slack).
pub fn dominates(a: (f64, f64), b: (f64, f64)) -> bool {
    a.0 <= b.0 && a.1 <= b.1 && (a.0 < b.0 || a.1 < b.1)
}

/// A method's score over every container.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Total {
    pub method: &'static str,
    pub score: Score,
}

/// Scores every container of `workloads` with each method: rightsizer's values from
/// `report` (made as of `as_of`, the start of the held-out window), today's spec, and the
/// reference methods computed from the training series. A value a method leaves unset
/// (KRR below its 100 points) keeps today's. A container without held-out usage (not
/// running, or deleted) is reported with a note and counted nowhere.
pub fn evaluate(
    workloads: &[Workload],
    report: &Report,
    history: &BTreeMap<ContainerKey, ContainerHistory>,
    step: i64,
    as_of: i64,
) -> Evaluation {
    let recommended: BTreeMap<&ContainerKey, &Resources> = report
        .workloads
        .iter()
        .flat_map(|w| &w.containers)
        .map(|c| (&c.key, &c.recommended))
        .collect();
    let empty = ContainerHistory::default();
    let mut totals = [Score::default(); METHODS.len()];
    let mut containers = Vec::new();
    for w in workloads {
        for c in &w.containers {
            let key = ContainerKey::new(w.key.clone(), c.name.clone());
            let h = history.get(&key).unwrap_or(&empty);
            let mut notes = Vec::new();
            if !h.held_out.iter().any(|p| !p.cpu.is_empty() || !p.memory.is_empty()) {
                notes.push("no usage in the held-out window (not running, or deleted): not scored".into());
                containers.push(ContainerResult {
                    key,
                    candidates: Vec::new(),
                    notes,
                });
                continue;
            }
            let current = c.resources;
            let ours = recommended.get(&key).map_or(current, |r| **r);
            let mut krr = reference::krr_simple(&h.training);
            if krr.cpu_request.is_none() || krr.memory_request.is_none() {
                notes.push("krr-simple: fewer than 100 training points, today's values kept".into());
            }
            // KRR leaves a resource an HPA scales on by utilization alone (`allow_hpa` off by
            // default, `simple.py`): today's value stays.
            let hpa_on = |resource: &str| {
                w.hpa
                    .iter()
                    .flat_map(|h| &h.metrics)
                    .any(|m| matches!(m, crate::model::HpaMetric::Utilization { resource: r, .. } if r == resource))
            };
            if hpa_on("cpu") {
                krr.cpu_request = None;
                notes.push("krr-simple: HPA on CPU utilization, today's CPU kept".into());
            }
            if hpa_on("memory") {
                (krr.memory_request, krr.memory_limit) = (None, None);
                notes.push("krr-simple: HPA on memory utilization, today's memory kept".into());
            }
            let krr = Resources {
                cpu_request: krr.cpu_request.or(current.cpu_request),
                cpu_limit: if krr.cpu_request.is_some() {
                    None
                } else {
                    current.cpu_limit
                },
                memory_request: krr.memory_request.or(current.memory_request),
                memory_limit: krr.memory_limit.or(current.memory_limit),
            };
            let vpa = reference::vpa(&h.training, &h.ooms, &current, w.containers.len(), as_of);
            let candidates: Vec<Candidate> = METHODS
                .iter()
                .zip([ours, current, krr, vpa])
                .map(|(&method, resources)| Candidate {
                    method,
                    resources,
                    score: score(&h.held_out, &resources, step),
                })
                .collect();
            for (total, c) in totals.iter_mut().zip(&candidates) {
                total.add(&c.score);
            }
            containers.push(ContainerResult { key, candidates, notes });
        }
    }
    Evaluation {
        containers,
        totals: METHODS
            .iter()
            .zip(totals)
            .map(|(&method, score)| Total { method, score })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(cpu: &[f64], memory: &[f64]) -> PodSeries {
        let at = |v: &[f64]| v.iter().enumerate().map(|(i, &v)| (i as i64 * 300, v)).collect();
        PodSeries {
            pod: "p".into(),
            cpu: at(cpu),
            memory: at(memory),
        }
    }

    fn res(cpu_request: Option<f64>, memory_request: Option<f64>, memory_limit: Option<f64>) -> Resources {
        Resources {
            cpu_request,
            cpu_limit: None,
            memory_request,
            memory_limit,
        }
    }

    const G: f64 = GIB;

    #[test]
    fn scores_cpu_and_memory_per_pod_interval() {
        // Each row: pods, candidate, then short intervals of all, shortfall and slack
        // core-hours, pods over the limit of pods, slack GiB-hours (5-minute points).
        struct Case {
            pods: Vec<PodSeries>,
            candidate: Resources,
            short: (u64, u64),
            shortfall: f64,
            slack: f64,
            over: (u64, u64),
            memory_slack: f64,
        }
        let twelfth = 1.0 / 12.0;
        let cases = [
            // One interval at 2 cores against 1: short by 1 core for 5 minutes; the other
            // at 0.5 leaves 0.5 cores idle.
            Case {
                pods: vec![pod(&[2.0, 0.5], &[1.0 * G, 3.0 * G])],
                candidate: res(Some(1.0), Some(2.0 * G), Some(2.5 * G)),
                short: (1, 2),
                shortfall: twelfth,
                slack: 0.5 * twelfth,
                over: (1, 1),
                memory_slack: 1.0 * twelfth,
            },
            // Usage exactly at the request is not short; a limit exactly reached is not crossed.
            Case {
                pods: vec![pod(&[1.0], &[2.0 * G]), pod(&[0.0], &[])],
                candidate: res(Some(1.0), Some(2.0 * G), Some(2.0 * G)),
                short: (0, 2),
                shortfall: 0.0,
                slack: twelfth,
                over: (0, 1),
                memory_slack: 0.0,
            },
            // No request: every interval with usage is short, nothing is slack; no limit:
            // nothing is OOM-killed.
            Case {
                pods: vec![pod(&[0.2, 0.0, 0.1], &[5.0 * G])],
                candidate: res(None, None, None),
                short: (2, 3),
                shortfall: 0.3 * twelfth,
                slack: 0.0,
                over: (0, 1),
                memory_slack: 0.0,
            },
            // Gaps, NaN and counter-reset negatives are not usage.
            Case {
                pods: vec![pod(&[f64::NAN, -3.0, 0.5], &[f64::INFINITY])],
                candidate: res(Some(0.25), Some(G), Some(G)),
                short: (1, 1),
                shortfall: 0.25 * twelfth,
                slack: 0.0,
                over: (0, 0),
                memory_slack: 0.0,
            },
        ];
        for (i, c) in cases.iter().enumerate() {
            let s = score(&c.pods, &c.candidate, 300);
            assert_eq!((s.cpu_short_intervals, s.cpu_intervals), c.short, "case {i}");
            assert!(
                (s.cpu_shortfall_core_hours - c.shortfall).abs() < 1e-12,
                "case {i}: {s:?}"
            );
            assert!((s.cpu_slack_core_hours - c.slack).abs() < 1e-12, "case {i}: {s:?}");
            assert_eq!((s.pods_over_memory_limit, s.memory_pods), c.over, "case {i}");
            assert!(
                (s.memory_slack_gib_hours - c.memory_slack).abs() < 1e-12,
                "case {i}: {s:?}"
            );
        }
    }

    #[test]
    fn scores_add_up_and_rate_needs_points() {
        let a = score(&[pod(&[2.0, 0.5], &[G])], &res(Some(1.0), Some(G), Some(G)), 300);
        let mut total = Score::default();
        assert_eq!(total.cpu_shortfall_rate(), None);
        total.add(&a);
        total.add(&a);
        assert_eq!(total.cpu_intervals, 4);
        assert_eq!(total.cpu_shortfall_rate(), Some(0.5));
        assert_eq!(total.memory_pods, 2);
    }

    #[test]
    fn dominance_needs_no_worse_on_both_and_better_on_one() {
        for (a, b, expected) in [
            ((1.0, 1.0), (2.0, 2.0), true),
            ((1.0, 2.0), (2.0, 2.0), true),
            ((2.0, 1.0), (2.0, 2.0), true),
            ((2.0, 2.0), (2.0, 2.0), false),
            ((1.0, 3.0), (2.0, 2.0), false),
            ((3.0, 1.0), (2.0, 2.0), false),
            ((2.0, 2.0), (1.0, 1.0), false),
        ] {
            assert_eq!(dominates(a, b), expected, "{a:?} over {b:?}");
        }
    }

    #[test]
    fn sums_scores_per_workload_and_method() {
        use crate::model::{WorkloadKey, WorkloadKind};
        let result = |workload: &str, container: &str, short: &[u64]| ContainerResult {
            key: ContainerKey::new(WorkloadKey::new("ns", WorkloadKind::Deployment, workload), container),
            candidates: METHODS
                .iter()
                .zip(short)
                .map(|(&method, &n)| Candidate {
                    method,
                    resources: Resources::default(),
                    score: Score {
                        cpu_intervals: 10,
                        cpu_short_intervals: n,
                        ..Score::default()
                    },
                })
                .collect(),
            notes: Vec::new(),
        };
        let e = Evaluation {
            containers: vec![
                result("web", "app", &[1, 2, 3, 4]),
                result("db", "app", &[0, 0, 5, 0]),
                result("web", "sidecar", &[1, 0, 0, 1]),
                result("idle", "app", &[]),
            ],
            totals: Vec::new(),
        };
        let short = |row: &[Score]| {
            row.iter()
                .map(|s| (s.cpu_intervals, s.cpu_short_intervals))
                .collect::<Vec<_>>()
        };
        let by_workload = e.by_workload();
        assert_eq!(by_workload.keys().collect::<Vec<_>>(), ["db", "idle", "web"]);
        assert_eq!(short(&by_workload["web"]), [(20, 2), (20, 2), (20, 3), (20, 5)]);
        assert_eq!(short(&by_workload["db"]), [(10, 0), (10, 0), (10, 5), (10, 0)]);
        // Not scored: listed, every method at zero.
        assert_eq!(by_workload["idle"], [Score::default(); METHODS.len()]);
    }

    #[test]
    fn evaluates_every_method_on_the_same_points() {
        use crate::model::{ContainerRole, ContainerSpec, UsageSet, WorkloadKey, WorkloadKind};
        use crate::recommend::{Policy, recommend};
        let spec = |name: &str| ContainerSpec {
            name: name.into(),
            role: ContainerRole::App,
            resources: res(Some(0.5), Some(G), Some(G)),
        };
        let w = Workload {
            key: WorkloadKey::new("shop", WorkloadKind::Deployment, "web"),
            replicas: Some(1),
            containers: vec![spec("app"), spec("gone")],
            hpa: None,
            labels: Default::default(),
            annotations: Default::default(),
        };
        let report = recommend(std::slice::from_ref(&w), &UsageSet::default(), &Policy::default());
        let app = ContainerKey::new(w.key.clone(), "app");
        // 200 training points of 0.1, 0.2 and 0.3 cores; held out: 0.4 then 0.6 cores.
        let cpu: Vec<f64> = (0..200).map(|i| 0.1 + f64::from(i % 3) * 0.1).collect();
        let training = pod(&cpu, &[0.5 * G; 200]);
        let held_out = pod(&[0.4, 0.6], &[0.5 * G, 0.5 * G]);
        let history = BTreeMap::from([(
            app.clone(),
            ContainerHistory {
                training: vec![training],
                held_out: vec![held_out],
                ooms: Vec::new(),
            },
        )]);
        let e = evaluate(std::slice::from_ref(&w), &report, &history, 300, 200 * 300);
        assert_eq!(e.containers.len(), 2);
        let scored = &e.containers[0];
        let methods: Vec<&str> = scored.candidates.iter().map(|c| c.method).collect();
        assert_eq!(methods, METHODS);
        // rightsizer's values are the report's.
        let ours = report.workloads[0].containers.iter().find(|c| c.key == app).unwrap();
        assert_eq!(scored.candidates[0].resources, ours.recommended);
        // Today: 0.5 cores, short in 1 of the 2 held-out intervals.
        assert_eq!(scored.candidates[1].score.cpu_short_intervals, 1);
        // KRR: the p95 of the training points, 0.3 cores: short in both.
        let krr = &scored.candidates[2];
        assert!((krr.resources.cpu_request.unwrap() - 0.3).abs() < 1e-9, "{krr:?}");
        assert_eq!(krr.score.cpu_short_intervals, 2);
        // A container without held-out usage is named, not scored.
        let gone = &e.containers[1];
        assert!(gone.candidates.is_empty() && gone.notes[0].contains("no usage in the held-out window"));
        assert_eq!(e.totals.len(), METHODS.len());
        assert!(e.totals.iter().all(|t| t.score.cpu_intervals == 2));

        // With an HPA on CPU utilization KRR keeps today's CPU request (and says so).
        let mut scaled = w.clone();
        scaled.hpa = Some(crate::model::Hpa {
            name: "web".into(),
            min_replicas: 2,
            max_replicas: 5,
            current_replicas: None,
            desired_replicas: None,
            metrics: vec![crate::model::HpaMetric::Utilization {
                resource: "cpu".into(),
                target_percent: 70,
            }],
        });
        let e = evaluate(std::slice::from_ref(&scaled), &report, &history, 300, 200 * 300);
        let krr = &e.containers[0].candidates[2];
        assert_eq!(krr.resources.cpu_request, Some(0.5));
        assert!(e.containers[0].notes.iter().any(|n| n.contains("HPA on CPU")));
    }
}
