//! rightsizer-synth: the deterministic generator of realistic cluster history, used by the
//! integration tests, the offline demo and the benchmarks. A development crate of the
//! workspace: the `rightsizer` binary does not contain it.
//!
//! From a `ClusterSpec` and its seed it derives a life plan (ReplicaSets, Jobs, pods), usage
//! patterns (daily and weekly cycles, bursts, leaks and OOM
//! kills, HPA scaling, rollouts, hot replicas), and from those: cAdvisor and
//! kube-state-metrics history as OpenMetrics text for `promtool tsdb create-blocks-from
//! openmetrics`, the matching Kubernetes objects, the ground truth a test compares
//! rightsizer's answers with, and the `UsageSet` of the offline demo snapshot. Nothing is
//! random at run time: the same spec gives the same bytes on every run and platform.
//! `export` writes the files of the `rightsizer-synth` binary (demo snapshot, history).

mod events;
pub mod export;
mod ksm;
mod objects;
mod openmetrics;
mod patterns;
mod plan;
mod rng;
mod scenarios;
mod spec;
mod truth;

#[cfg(test)]
mod tests;

pub use events::{TruthWorkload, day_of};
pub use objects::{Objects, rfc3339};
pub use openmetrics::{KSM_INSTANCE, WriteStats};
pub use patterns::Load;
pub use spec::{BatchSpec, ClusterSpec, ContainerProfile, DAY, HOUR, HpaSpec, MI, WorkloadSpec};
pub use truth::{EXACT_LIMIT, GroundTruth, RATE_RANGE, TRUTH_STEP, TruthContainer, eval_start, extrapolated_rate};

/// A generated cluster: its spec, the Kubernetes objects at `spec.end`, and the ground truth
/// of its history. The history itself is never stored: `write_openmetrics` and `usage`
/// replay it from the spec.
#[derive(Debug, Clone)]
pub struct Cluster {
    pub spec: ClusterSpec,
    pub objects: Objects,
    pub truth: GroundTruth,
    plans: Vec<plan::WorkloadPlan>,
}

/// Plans the cluster, computes the ground truth by replaying every sample once (in
/// parallel over workloads, merged in order, so the result does not depend on the number
/// of threads), and builds the objects.
pub fn generate(spec: ClusterSpec) -> Cluster {
    let plans = plan::plan(&spec);
    let (truth, finals) = truth::ground_truth(&spec, &plans);
    let objects = objects::build(&spec, &plans, &finals);
    Cluster {
        spec,
        objects,
        truth,
        plans,
    }
}

impl Cluster {
    /// Every pod that ever existed in the window, live or gone: (namespace, pod name, uid,
    /// workload key). Tests use it to check that history and objects agree.
    pub fn all_pods(&self) -> Vec<(String, String, String, rightsizer::model::WorkloadKey)> {
        self.spec
            .workloads
            .iter()
            .zip(&self.plans)
            .flat_map(|(w, p)| {
                p.pods.iter().map(move |pp| {
                    (
                        w.namespace.clone(),
                        pp.name.clone(),
                        pp.uid.clone(),
                        truth::workload_key(w),
                    )
                })
            })
            .collect()
    }
}
