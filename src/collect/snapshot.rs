//! Offline snapshots: discovered workloads plus their usage summaries in one versioned,
//! gzip-compressed JSON file. `recommend --snapshot FILE` runs the whole pipeline from it
//! (air-gapped review, bug reports, the bundled demo).

use std::io::{Read, Write};
use std::path::Path;

use flate2::Compression;
use flate2::read::GzDecoder;
use flate2::write::GzEncoder;
use serde::{Deserialize, Serialize};

use super::Error;
use crate::model::{UsageSet, Workload};

/// Bumped on any incompatible change of the format.
pub const API_VERSION: &str = "rightsizer.dev/v1alpha1";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Snapshot {
    pub api_version: String,
    pub kind: String,
    /// Where the data came from (`prometheus http://...`, `synthetic demo`).
    pub source: String,
    pub workloads: Vec<Workload>,
    pub usage: UsageSet,
}

impl Snapshot {
    pub fn new(source: impl Into<String>, workloads: Vec<Workload>, usage: UsageSet) -> Self {
        Snapshot {
            api_version: API_VERSION.into(),
            kind: "Snapshot".into(),
            source: source.into(),
            workloads,
            usage,
        }
    }

    /// The compressed bytes; deterministic (no timestamp in the gzip header).
    pub fn to_bytes(&self) -> Vec<u8> {
        let json = serde_json::to_vec(self).expect("snapshot serializes");
        let mut gz = GzEncoder::new(Vec::new(), Compression::best());
        gz.write_all(&json).expect("writing to memory");
        gz.finish().expect("writing to memory")
    }

    /// Reads a snapshot, gzip-compressed or plain JSON.
    pub fn from_bytes(bytes: &[u8], path: &str) -> Result<Self, Error> {
        let err = |reason: String| Error::Snapshot {
            path: path.to_string(),
            reason,
        };
        let mut json = Vec::new();
        if bytes.starts_with(&[0x1f, 0x8b]) {
            GzDecoder::new(bytes)
                .read_to_end(&mut json)
                .map_err(|e| err(format!("not a valid gzip file: {e}")))?;
        } else {
            json = bytes.to_vec();
        }
        let head: serde_json::Value = serde_json::from_slice(&json).map_err(|e| err(format!("not valid JSON: {e}")))?;
        match head.get("apiVersion").and_then(|v| v.as_str()) {
            Some(API_VERSION) => {}
            Some(other) => {
                return Err(err(format!(
                    "apiVersion {other:?} is not supported (this rightsizer reads {API_VERSION})"
                )));
            }
            None => return Err(err("no apiVersion: not a rightsizer snapshot".into())),
        }
        serde_json::from_value(head).map_err(|e| err(format!("invalid snapshot: {e}")))
    }

    pub fn read(path: &Path) -> Result<Self, Error> {
        let bytes = std::fs::read(path).map_err(|e| Error::Snapshot {
            path: path.display().to_string(),
            reason: e.to_string(),
        })?;
        Snapshot::from_bytes(&bytes, &path.display().to_string())
    }

    /// Writes atomically: a temporary file in the same directory, then a rename.
    pub fn write(&self, path: &Path) -> Result<(), Error> {
        crate::atomic::write(path, &self.to_bytes()).map_err(|e| Error::Snapshot {
            path: path.display().to_string(),
            reason: e.to_string(),
        })
    }
}
