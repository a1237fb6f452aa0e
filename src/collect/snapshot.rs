//! Offline snapshots: discovered workloads plus their usage summaries in one versioned,
//! gzip-compressed JSON file. `recommend --snapshot FILE` runs the whole pipeline from it
//! (air-gapped review, bug reports, the bundled demo). Fields added after the first version
//! (VPA modes, current usage, skipped workloads) default to empty, so older snapshots still
//! read and snapshots without them stay byte-identical.
//!
//! A snapshot is read as a stream (file -> gzip -> JSON -> typed snapshot), never held whole
//! as bytes or as a JSON tree, and the decompressed stream is capped
//! ([`MAX_SNAPSHOT_BYTES`]): a gzip bomb (a 1 MB file of a gigabyte of padding) fails as
//! "larger than the cap" after reading at most the cap, in memory proportional to the
//! snapshot it describes, not to its padding.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;

use flate2::Compression;
use flate2::read::GzDecoder;
use flate2::write::GzEncoder;
use serde::{Deserialize, Serialize};

use super::Error;
use super::filter::Skipped;
use super::metrics_api::{CurrentUsage, CurrentUsageMap};
use super::promparse::JsonStrings;
use crate::model::{ContainerKey, UsageSet, Workload, WorkloadKey};

/// Bumped on any incompatible change of the format.
pub const API_VERSION: &str = "rightsizer.dev/v1alpha1";

/// Largest snapshot accepted, decompressed: 1 GiB. The demo snapshot is a few hundred KiB and
/// a 10,000-workload cluster about 60 MiB of JSON, so this leaves room for clusters far
/// larger than any benchmark here while a gzip bomb stops at a bounded cost.
pub const MAX_SNAPSHOT_BYTES: u64 = 1 << 30;

/// Longest string in a snapshot: names are at most 253 bytes and reasons a few hundred; a
/// longer one is padding (serde would hold all of it before anything could refuse it).
pub const MAX_SNAPSHOT_STRING: usize = 1 << 20;

/// A reader that gives at most `left` bytes, with no JSON string longer than
/// [`MAX_SNAPSHOT_STRING`], and notes which cap the stream went over.
struct Capped<R> {
    inner: R,
    left: u64,
    strings: JsonStrings,
    over: Option<&'static str>,
}

impl<R: Read> Read for Capped<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.left == 0 {
            let mut probe = [0u8; 1];
            if self.inner.read(&mut probe)? > 0 {
                self.over = Some("bytes");
                return Err(std::io::Error::other("the snapshot is larger than the cap"));
            }
            return Ok(0);
        }
        let want = buf.len().min(self.left.min(usize::MAX as u64) as usize);
        let n = self.inner.read(&mut buf[..want])?;
        self.left -= n as u64;
        if !self.strings.scan(&buf[..n]) {
            self.over = Some("string");
            return Err(std::io::Error::other("a string in the snapshot is longer than the cap"));
        }
        Ok(n)
    }
}

/// The only field read when a snapshot does not parse: its version, for a clearer error.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Head {
    api_version: Option<String>,
}

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
        Snapshot::from_reader(|| Ok(bytes), path, MAX_SNAPSHOT_BYTES)
    }

    pub fn read(path: &Path) -> Result<Self, Error> {
        Snapshot::read_capped(path, MAX_SNAPSHOT_BYTES)
    }

    /// Reads a snapshot file whose decompressed JSON may be at most `max_bytes` long.
    pub fn read_capped(path: &Path, max_bytes: u64) -> Result<Self, Error> {
        let open = || std::fs::File::open(path);
        Snapshot::from_reader(open, &path.display().to_string(), max_bytes)
    }

    /// Reads from what `open` gives (opened a second time only to name the version of a
    /// snapshot that does not parse), gzip-compressed or plain, as a stream.
    fn from_reader<'r, R: Read + 'r>(
        open: impl Fn() -> std::io::Result<R>,
        path: &str,
        max_bytes: u64,
    ) -> Result<Self, Error> {
        let err = |reason: String| Error::Snapshot {
            path: path.to_string(),
            reason,
        };
        let unsupported = |v: &str| {
            err(format!(
                "apiVersion {v:?} is not supported (this rightsizer reads {API_VERSION})"
            ))
        };
        // Opens the stream, decompressing when it starts with the gzip magic.
        let stream = || -> Result<(Capped<Box<dyn Read + 'r>>, bool), Error> {
            let mut file = BufReader::new(open().map_err(|e| err(e.to_string()))?);
            let gzip = file
                .fill_buf()
                .map_err(|e| err(e.to_string()))?
                .starts_with(&[0x1f, 0x8b]);
            let inner: Box<dyn Read + 'r> = if gzip {
                Box::new(BufReader::new(GzDecoder::new(file)))
            } else {
                Box::new(file)
            };
            let capped = Capped {
                inner,
                left: max_bytes,
                strings: JsonStrings::new(MAX_SNAPSHOT_STRING),
                over: None,
            };
            Ok((capped, gzip))
        };
        let (mut capped, gzip) = stream()?;
        let e = match serde_json::from_reader::<_, Snapshot>(&mut capped) {
            Ok(s) if s.api_version == API_VERSION => return Ok(s),
            Ok(s) => return Err(unsupported(&s.api_version)),
            Err(e) => e,
        };
        match capped.over {
            Some("string") => {
                return Err(err(format!(
                    "holds a string longer than {MAX_SNAPSHOT_STRING} bytes, the cap (a gzip bomb or a damaged file)"
                )));
            }
            Some(_) => {
                return Err(err(format!(
                    "larger than {max_bytes} bytes decompressed, the cap (a gzip bomb, or a snapshot larger than the cap allows)\nhint: raise --snapshot-max-bytes if the snapshot is genuine"
                )));
            }
            None => {}
        }
        if e.is_io() && gzip {
            return Err(err(format!("not a valid gzip file: {e}")));
        }
        if e.is_io() {
            return Err(err(e.to_string()));
        }
        // A snapshot of another version fails to parse for that reason: say so.
        let (mut again, _) = stream()?;
        let head = serde_json::from_reader::<_, Head>(&mut again).ok();
        match head.and_then(|h| h.api_version) {
            Some(v) if v != API_VERSION => Err(unsupported(&v)),
            None if e.is_data() => Err(err("no apiVersion: not a rightsizer snapshot".into())),
            _ if e.is_data() => Err(err(format!("invalid snapshot: {e}"))),
            _ => Err(err(format!("not valid JSON: {e}"))),
        }
    }

    /// Writes atomically: a temporary file in the same directory, then a rename.
    pub fn write(&self, path: &Path) -> Result<(), Error> {
        crate::atomic::write(path, &self.to_bytes()).map_err(|e| Error::Snapshot {
            path: path.display().to_string(),
            reason: e.to_string(),
        })
    }
}
