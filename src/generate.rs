//! `rightsizer generate`: synthetic history and objects from `synth`, for the demo snapshot,
//! the tests and the benchmarks.

use std::io::{BufWriter, Write};
use std::path::Path;

use crate::Error;
use crate::cli::GenerateWhat;
use crate::collect::objects::{self, Objects};
use crate::collect::snapshot::Snapshot;
use crate::synth::{self, Cluster, ClusterSpec};

/// End of the bundled demo history (2026-11-01T00:00:00Z): fixed, so the snapshot is
/// reproducible byte for byte.
pub const DEMO_END: i64 = 1_793_491_200;
/// Two weeks, the default `--history`.
pub const DEMO_DURATION: i64 = 14 * 86_400;
/// Resolution of the demo's CPU distribution: the default `--step`.
pub const DEMO_STEP: i64 = 300;

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
    let cluster = synth::generate(ClusterSpec::demo(DEMO_END, DEMO_DURATION));
    let (workloads, warnings) = objects::workloads(&objects_of(&cluster));
    debug_assert!(warnings.is_empty(), "{warnings:?}");
    Snapshot::new(
        "synthetic demo cluster (rightsizer generate demo-snapshot)",
        workloads,
        cluster.usage(DEMO_STEP),
    )
}

fn write_err(path: &Path) -> impl Fn(std::io::Error) -> Error + '_ {
    move |source| Error::Write {
        path: path.display().to_string(),
        source,
    }
}

pub fn run(what: GenerateWhat) -> Result<(), Error> {
    match what {
        GenerateWhat::DemoSnapshot { output } => demo_snapshot().write(&output)?,
        GenerateWhat::History {
            workloads,
            days,
            seed,
            end,
            output,
            objects,
        } => {
            let end = end.unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_secs() as i64)
                    .unwrap_or(0)
            });
            let duration = days * 86_400;
            let spec = if workloads == 0 {
                ClusterSpec::demo(end, duration)
            } else {
                ClusterSpec::generated(workloads, seed, end, duration)
            };
            let cluster = synth::generate(spec);
            // Write beside the target and rename, so a killed run leaves no half file.
            let tmp = output.with_extension("om.tmp");
            let file = std::fs::File::create(&tmp).map_err(write_err(&tmp))?;
            let mut w = BufWriter::with_capacity(1 << 20, file);
            let stats = cluster.write_openmetrics(&mut w).map_err(write_err(&tmp))?;
            w.flush().map_err(write_err(&tmp))?;
            std::fs::rename(&tmp, &output).map_err(write_err(&output))?;
            tracing::info!(series = stats.series, samples = stats.samples, bytes = stats.bytes, path = %output.display(), "history written");
            if let Some(path) = objects {
                let list = objects_list(&cluster);
                let bytes = serde_json::to_vec_pretty(&list).expect("objects serialize");
                crate::atomic::write(&path, &bytes).map_err(write_err(&path))?;
            }
        }
    }
    Ok(())
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
