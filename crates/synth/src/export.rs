//! What the `rightsizer-synth` binary writes: the bundled demo snapshot, and a generated
//! cluster's history as OpenMetrics plus its Kubernetes objects as one JSON list. Tests and
//! benchmarks call these directly.

use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use rightsizer::collect::objects::{self, Objects};
use rightsizer::collect::snapshot::Snapshot;
use thiserror::Error;

use crate::{Cluster, ClusterSpec, WriteStats};

/// End of the bundled demo history (2026-11-01T00:00:00Z): fixed, so the snapshot is
/// reproducible byte for byte.
pub const DEMO_END: i64 = 1_793_491_200;
/// Two weeks, the default `--history`.
pub const DEMO_DURATION: i64 = 14 * 86_400;
/// Resolution of the demo's CPU distribution: the default `--step`.
pub const DEMO_STEP: i64 = 300;

/// A generated file that could not be written.
#[derive(Debug, Error)]
pub enum Error {
    #[error("failed to write {}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Snapshot(#[from] rightsizer::collect::Error),
}

/// The workload kinds rightsizer reads, out of a generated cluster.
pub fn objects_of(cluster: &Cluster) -> Objects {
    let o = &cluster.objects;
    Objects {
        deployments: o.deployments.clone(),
        stateful_sets: o.stateful_sets.clone(),
        daemon_sets: o.daemon_sets.clone(),
        cron_jobs: o.cron_jobs.clone(),
        jobs: o.jobs.clone(),
        hpas: o.hpas.clone(),
    }
}

/// The bundled demo snapshot: the demo cluster's objects and the usage summary computed
/// from its raw samples, exactly what `rightsizer snapshot` would have captured.
pub fn demo_snapshot() -> Snapshot {
    let cluster = crate::generate(ClusterSpec::demo(DEMO_END, DEMO_DURATION));
    let (workloads, warnings) = objects::workloads(&objects_of(&cluster));
    debug_assert!(warnings.is_empty(), "{warnings:?}");
    Snapshot::new(
        "synthetic demo cluster (rightsizer-synth demo-snapshot)",
        workloads,
        cluster.usage(DEMO_STEP),
    )
}

/// Writes the demo snapshot to `path`.
pub fn write_demo_snapshot(path: &Path) -> Result<(), Error> {
    Ok(demo_snapshot().write(path)?)
}

fn write_err(path: &Path) -> impl Fn(std::io::Error) -> Error + '_ {
    move |source| Error::Write {
        path: path.to_path_buf(),
        source,
    }
}

/// Writes `cluster`'s history as OpenMetrics to `path` (beside it first and renamed, so a
/// killed run leaves no half file), and its objects as a `v1` `List` to `objects` if given.
pub fn write_history(cluster: &Cluster, path: &Path, objects: Option<&Path>) -> Result<WriteStats, Error> {
    let tmp = path.with_extension("om.tmp");
    let file = std::fs::File::create(&tmp).map_err(write_err(&tmp))?;
    let mut w = BufWriter::with_capacity(1 << 20, file);
    let stats = cluster.write_openmetrics(&mut w).map_err(write_err(&tmp))?;
    w.flush().map_err(write_err(&tmp))?;
    std::fs::rename(&tmp, path).map_err(write_err(path))?;
    if let Some(objects) = objects {
        let bytes = serde_json::to_vec_pretty(&objects_list(cluster)).expect("objects serialize");
        rightsizer::atomic::write(objects, &bytes).map_err(write_err(objects))?;
    }
    Ok(stats)
}

/// Every generated object as one `v1` `List`, as `kubectl get -o json` prints it.
pub fn objects_list(cluster: &Cluster) -> serde_json::Value {
    fn push<T: serde::Serialize + k8s_openapi::Resource>(items: &mut Vec<serde_json::Value>, list: &[T]) {
        for o in list {
            let mut v = serde_json::to_value(o).expect("object serializes");
            v["apiVersion"] = T::API_VERSION.into();
            v["kind"] = T::KIND.into();
            items.push(v);
        }
    }
    let o = &cluster.objects;
    let mut items = Vec::new();
    push(&mut items, &o.namespaces);
    push(&mut items, &o.deployments);
    push(&mut items, &o.replica_sets);
    push(&mut items, &o.stateful_sets);
    push(&mut items, &o.daemon_sets);
    push(&mut items, &o.cron_jobs);
    push(&mut items, &o.jobs);
    push(&mut items, &o.pods);
    push(&mut items, &o.hpas);
    items.extend(o.pod_metrics.iter().cloned());
    serde_json::json!({ "apiVersion": "v1", "kind": "List", "items": items })
}
