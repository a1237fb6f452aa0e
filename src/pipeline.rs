//! One run of the pipeline: discover -> collect -> summarize -> recommend -> emit, for the
//! `recommend` and `snapshot` commands.

use std::io::Write;

use crate::Error;
use crate::collect::history::{self, Window};
use crate::collect::kube as kubeapi;
use crate::collect::objects;
use crate::collect::prometheus::PromClient;
use crate::collect::snapshot::Snapshot;
use crate::emit::{self, Format};
use crate::model::{UsageSet, Workload};
use crate::recommend::{self, Policy, Report};
use crate::settings::Input;

/// Workloads and their usage, from wherever the input says.
pub struct Collected {
    pub source: String,
    pub workloads: Vec<Workload>,
    pub usage: UsageSet,
}

pub async fn collect(input: &Input) -> Result<Collected, Error> {
    match input {
        Input::Snapshot(path) => {
            let s = Snapshot::read(path)?;
            Ok(Collected {
                source: s.source,
                workloads: s.workloads,
                usage: s.usage,
            })
        }
        Input::Live {
            prometheus,
            kube,
            namespaces,
            window,
        } => {
            let prom = PromClient::new(prometheus)?;
            let client = kubeapi::client(kube).await?;
            let (objects, usage) = futures::try_join!(
                async { kubeapi::list_objects(&client, namespaces).await.map_err(Error::from) },
                fetch_history(&prom, window),
            )?;
            let (workloads, warnings) = objects::workloads(&objects);
            for w in warnings {
                tracing::warn!("{w}");
            }
            let stats = prom.stats();
            tracing::info!(
                workloads = workloads.len(),
                containers = usage.containers.len(),
                queries = stats.queries.load(std::sync::atomic::Ordering::Relaxed),
                bytes = stats.bytes.load(std::sync::atomic::Ordering::Relaxed),
                "collected"
            );
            Ok(Collected {
                source: format!("prometheus {}", prom.url()),
                workloads,
                usage,
            })
        }
    }
}

async fn fetch_history(prom: &PromClient, window: &Window) -> Result<UsageSet, Error> {
    let owners = history::fetch_owners(prom, window).await?;
    Ok(history::fetch_usage(prom, window, &owners).await?)
}

pub async fn recommend(input: &Input, format: Format, out: &mut impl Write) -> Result<Report, Error> {
    let collected = collect(input).await?;
    let report = recommend::recommend(&collected.workloads, &collected.usage, &Policy::default());
    emit::write(&report, format, out)?;
    Ok(report)
}

pub async fn snapshot(input: &Input, path: &std::path::Path) -> Result<(), Error> {
    let c = collect(input).await?;
    Snapshot::new(c.source, c.workloads, c.usage).write(path)?;
    Ok(())
}
