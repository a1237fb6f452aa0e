//! Offline snapshots: discovered workloads plus their usage summaries in one versioned,
//! gzip-compressed JSON file. `recommend --snapshot FILE` runs the whole pipeline from it
//! (air-gapped review, bug reports, the bundled demo). Fields added after the first version
//! (VPA modes, current usage, skipped workloads) default to empty, so older snapshots still
//! read and snapshots without them stay byte-identical.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::Path;

use flate2::Compression;
use flate2::read::GzDecoder;
use flate2::write::GzEncoder;
use serde::{Deserialize, Serialize};

use super::Error;
use super::filter::Skipped;
use super::metrics_api::{CurrentUsage, CurrentUsageMap};
use crate::model::{ContainerKey, UsageSet, Workload, WorkloadKey};

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
    /// Workloads an active VPA manages, with its update mode.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty", with = "vpa_entries")]
    pub vpa: BTreeMap<WorkloadKey, String>,
    /// Usage now from metrics.k8s.io, per workload x container.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty", with = "usage_entries")]
    pub current_usage: CurrentUsageMap,
    /// Workloads left out on purpose (`rightsizer.dev/ignore`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub skipped: Vec<Skipped>,
}

/// JSON maps need string keys: maps keyed by a struct are written as lists of entries.
macro_rules! entries {
    ($module:ident, $key:ty, $field:literal, $value:ty) => {
        mod $module {
            use super::*;
            use serde::{Deserializer, Serializer};

            #[derive(Serialize, Deserialize)]
            struct Entry<K, V> {
                key: K,
                #[serde(rename = $field)]
                value: V,
            }

            pub fn serialize<S: Serializer>(map: &BTreeMap<$key, $value>, s: S) -> Result<S::Ok, S::Error> {
                s.collect_seq(map.iter().map(|(key, value)| Entry { key, value }))
            }

            pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<BTreeMap<$key, $value>, D::Error> {
                let v: Vec<Entry<$key, $value>> = Vec::deserialize(d)?;
                Ok(v.into_iter().map(|e| (e.key, e.value)).collect())
            }
        }
    };
}
entries!(vpa_entries, WorkloadKey, "mode", String);
entries!(usage_entries, ContainerKey, "usage", CurrentUsage);

impl Snapshot {
    pub fn new(source: impl Into<String>, workloads: Vec<Workload>, usage: UsageSet) -> Self {
        Snapshot {
            api_version: API_VERSION.into(),
            kind: "Snapshot".into(),
            source: source.into(),
            workloads,
            usage,
            vpa: BTreeMap::new(),
            current_usage: BTreeMap::new(),
            skipped: Vec::new(),
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
