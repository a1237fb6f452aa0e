//! The output side of the pipeline and the only place with output side effects: the human
//! table and the machine formats.

pub mod annotate;
pub mod change;
pub mod manifests;
pub mod patches;
pub mod push;
pub mod table;

use std::io::Write;

use serde::Serialize;
use thiserror::Error;

use crate::recommend::Report;

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
    #[error(
        "{message}\nhint: rightsizer needs the RBAC permission `{verb}` on `{resource}` (API group \"{group}\"); see deploy/clusterrole.yaml"
    )]
    Forbidden {
        verb: &'static str,
        group: String,
        resource: String,
        message: String,
    },
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
}

/// Output formats of `recommend`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Aligned table for people.
    Table,
    /// JSON document (`apiVersion: rightsizer.dev/v1alpha1`, `kind: Report`).
    Json,
    /// The same document as YAML.
    Yaml,
}

/// The versioned envelope of machine-readable reports.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Document<'a> {
    api_version: &'static str,
    kind: &'static str,
    #[serde(flatten)]
    report: &'a Report,
}

pub fn write(report: &Report, format: Format, out: &mut impl Write) -> Result<(), Error> {
    let doc = Document {
        api_version: crate::collect::snapshot::API_VERSION,
        kind: "Report",
        report,
    };
    match format {
        Format::Table => table::write(report, out)?,
        Format::Json => {
            serde_json::to_writer_pretty(&mut *out, &doc).map_err(|e| Error::Encode {
                format: "json",
                reason: e.to_string(),
            })?;
            writeln!(out)?;
        }
        Format::Yaml => {
            let text = serde_saphyr::to_string(&doc).map_err(|e| Error::Encode {
                format: "yaml",
                reason: e.to_string(),
            })?;
            out.write_all(text.as_bytes())?;
        }
    }
    Ok(())
}
