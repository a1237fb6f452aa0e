//! The output side of the pipeline and the only place with output side effects: the human
//! table, the machine formats (JSON, YAML, CSV), the Markdown summary, patch files, manifest
//! edits, annotations, `--apply`, pushed metrics and the pull request. [`Outputs`] selects them for one run.
//!
//! Machine formats list workloads by key (namespace, kind, name) and containers in spec
//! order, so two runs diff line by line; the table is sorted by savings for people.

pub mod annotate;
pub mod apply;
pub mod change;
pub mod configmap;
mod csv;
mod document;
pub mod escape;
pub mod guard;
pub mod manifests;
mod markdown;
pub mod outputs;
pub mod patches;
pub mod progress;
pub mod pull_request;
pub mod push;
pub mod retry;
pub mod table;

use std::collections::BTreeMap;
use std::io::Write;

use thiserror::Error;

use crate::collect::filter::Skipped;
use crate::collect::metrics_api::{CurrentUsage, CurrentUsageMap};
use crate::model::{ContainerKey, WorkloadKey};
use crate::recommend::Report;

pub use outputs::{ConfigMapTarget, Outputs, PatchOutput, PushTarget, ReportTarget, RunOutcome};

#[derive(Debug, Error)]
pub enum Error {
    #[error("failed to write the report")]
    Io(#[from] std::io::Error),
    #[error("failed to encode the report as {format}: {reason}")]
    Encode { format: &'static str, reason: String },
    #[error("failed to write {path}")]
    Write {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("failed to read {path}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Forbidden(#[from] crate::rbac::Forbidden),
    #[error("failed to {verb} {object} through the kubernetes api")]
    Kube {
        verb: &'static str,
        object: String,
        #[source]
        source: kube::Error,
    },
    #[error("cannot push metrics to the pushgateway at {url}")]
    PushUnreachable {
        url: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("the pushgateway at {url} answered HTTP {status}: {body}")]
    PushRejected { url: String, status: u16, body: String },
    #[error("invalid pushgateway url {url}: {reason}")]
    PushUrl { url: String, reason: String },
    #[error("the report ({bytes} bytes) does not fit in {what} (1 MiB)\nhint: {hint}")]
    TooLarge {
        what: String,
        bytes: usize,
        hint: &'static str,
    },
    #[error("cannot apply the recommendation to {object}: {reason}")]
    Apply { object: String, reason: String },
    #[error("pull request to {repository}: {reason}")]
    PullRequest { repository: String, reason: String },
    #[error(
        "{what} needs the kubernetes api, and this run has none ({why})\nhint: run against the cluster with a kubeconfig or in-cluster access, without --snapshot or --no-kube-api"
    )]
    NeedsApi { what: &'static str, why: String },
}

/// Output formats of `recommend` (documented in docs/report-schema.md).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// Aligned table for people, sorted by savings.
    #[default]
    Table,
    /// JSON document (`apiVersion: rightsizer.dev/v1alpha1`, `kind: Report`).
    Json,
    /// The same document as YAML.
    Yaml,
    /// One row per container, RFC 4180, with a header.
    Csv,
    /// A summary for a pull-request body.
    Markdown,
}

static NO_VPA: BTreeMap<WorkloadKey, String> = BTreeMap::new();
static NO_USAGE: CurrentUsageMap = BTreeMap::new();

/// What a report shows besides the recommendations, from discovery and collection.
#[derive(Debug, Clone, Copy)]
pub struct Context<'a> {
    /// Where the data came from (`prometheus http://...`, the snapshot's source).
    pub source: &'a str,
    /// Workloads an active VPA manages, with its update mode.
    pub vpa: &'a BTreeMap<WorkloadKey, String>,
    /// Usage now (metrics-server), shown beside the history.
    pub current_usage: &'a CurrentUsageMap,
    /// Workloads left out on purpose (filters, `rightsizer.dev/ignore`).
    pub skipped: &'a [Skipped],
}

impl Context<'_> {
    /// A context with nothing beside the report.
    pub fn empty() -> Context<'static> {
        Context {
            source: "",
            vpa: &NO_VPA,
            current_usage: &NO_USAGE,
            skipped: &[],
        }
    }

    pub fn usage(&self, key: &ContainerKey) -> Option<&CurrentUsage> {
        self.current_usage.get(key)
    }

    /// `managed by VPA (Auto)` for a workload an active VPA sizes.
    pub fn vpa_note(&self, key: &WorkloadKey) -> Option<String> {
        self.vpa.get(key).map(|mode| format!("managed by VPA ({mode})"))
    }
}

/// Writes the report in `format`; `color` only affects the table.
pub fn write(report: &Report, ctx: &Context, format: Format, color: bool, out: &mut impl Write) -> Result<(), Error> {
    match format {
        Format::Table => table::write_with(report, ctx, color, out)?,
        Format::Json => {
            serde_json::to_writer_pretty(&mut *out, &document::Document::new(report, ctx)).map_err(|e| {
                Error::Encode {
                    format: "json",
                    reason: e.to_string(),
                }
            })?;
            writeln!(out)?;
        }
        Format::Yaml => {
            let text = serde_saphyr::to_string(&document::Document::new(report, ctx)).map_err(|e| Error::Encode {
                format: "yaml",
                reason: e.to_string(),
            })?;
            out.write_all(text.as_bytes())?;
        }
        Format::Csv => csv::write(report, ctx, out)?,
        Format::Markdown => markdown::write(report, ctx, out)?,
    }
    Ok(())
}
