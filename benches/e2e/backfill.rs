//! The benchmark's history: a generated cluster backfilled into a TSDB with promtool, once per
//! set of parameters, cached under `target/e2e-tsdb/<key>` (the key hashes the parameters and
//! the generator's source, so a generator change invalidates it).
//!
//! The OpenMetrics text is far larger than the TSDB (about 275 bytes per sample against ~2), so
//! it is never written whole: each generation pass streams the history through `Splitter`,
//! which keeps only the samples of a group of time chunks, one file per chunk; each chunk is
//! backfilled into its own directory (promtool jobs in parallel), its blocks moved into the
//! cache directory, and its file deleted. Chunks do not overlap in time, so the blocks are
//! adjacent and Prometheus reads them as one history.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use rightsizer_synth::{Cluster, DAY, HOUR};
use serde_json::{Value, json};

/// OpenMetrics bytes per workload per day at a 60 s scrape step, measured on
/// `ClusterSpec::generated` (1.0 GB for 100 workloads x 1 d, 25.2 GB for 1,000 x 2 d): sizes
/// the chunks.
const BYTES_PER_WORKLOAD_DAY_AT_60S: f64 = 12.0e6;
/// Largest OpenMetrics chunk file: keeps promtool's memory and each job short.
const CHUNK_BYTES: f64 = 5.0e9;

/// The generator's source, hashed into the cache key.
const GENERATOR: &[&str] = &[
    include_str!("../../crates/synth/src/lib.rs"),
    include_str!("../../crates/synth/src/events.rs"),
    include_str!("../../crates/synth/src/ksm.rs"),
    include_str!("../../crates/synth/src/objects.rs"),
    include_str!("../../crates/synth/src/openmetrics.rs"),
    include_str!("../../crates/synth/src/patterns.rs"),
    include_str!("../../crates/synth/src/plan.rs"),
    include_str!("../../crates/synth/src/rng.rs"),
    include_str!("../../crates/synth/src/spec.rs"),
    include_str!("../../crates/synth/src/truth.rs"),
];

pub fn fnv(bytes: &[u8], mut hash: u64) -> u64 {
    for &b in bytes {
        hash = (hash ^ u64::from(b)).wrapping_mul(0x100000001b3);
    }
    hash
}

/// A backfilled history in the cache.
pub struct History {
    pub dir: PathBuf,
    pub series: u64,
    pub samples: u64,
    pub om_bytes: u64,
    /// Seconds the backfill took (generation + promtool), when it was built.
    pub backfill_secs: f64,
    pub cached: bool,
}

/// The parameters of `cluster`'s history and the cache key that hashes them with the
/// generator's source.
pub fn cache_key(cluster: &Cluster) -> (String, u64) {
    let spec = &cluster.spec;
    let params = format!(
        "workloads={} seed={} end={} duration={} step={} crate={}",
        spec.workloads.len(),
        spec.seed,
        spec.end,
        spec.duration,
        spec.step,
        env!("CARGO_PKG_VERSION")
    );
    let key = GENERATOR
        .iter()
        .fold(fnv(params.as_bytes(), 0xcbf29ce484222325), |h, s| fnv(s.as_bytes(), h));
    (params, key)
}

/// The history cached in `dir`, if its `meta.json` (written last) is there.
pub fn cached(dir: &Path, meta_path: &Path) -> Option<History> {
    let meta = serde_json::from_slice::<Value>(&std::fs::read(meta_path).ok()?).ok()?;
    Some(History {
        dir: dir.to_path_buf(),
        series: meta["series"].as_u64().unwrap_or(0),
        samples: meta["samples"].as_u64().unwrap_or(0),
        om_bytes: meta["om_bytes"].as_u64().unwrap_or(0),
        backfill_secs: meta["backfill_secs"].as_f64().unwrap_or(0.0),
        cached: true,
    })
}

/// The cached TSDB of `cluster`, backfilled first when missing.
/// `disk_bytes` bounds the OpenMetrics on disk at once: one generation pass writes a group of
/// chunks that fits, so a smaller bound means more passes (each replays the whole history).
pub fn tsdb(cluster: &Cluster, root: &Path, jobs: usize, disk_bytes: f64) -> History {
    let (params, key) = cache_key(cluster);
    let dir = root.join(format!("{key:016x}"));
    let meta_path = dir.join("meta.json");
    if let Some(h) = cached(&dir, &meta_path) {
        eprintln!("e2e: cached tsdb {} ({params})", dir.display());
        return h;
    }
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create the tsdb cache dir");
    let started = Instant::now();
    let (series, samples, om_bytes) = backfill(cluster, &dir, jobs, disk_bytes);
    let backfill_secs = started.elapsed().as_secs_f64();
    let meta = json!({
        "params": params, "series": series, "samples": samples, "om_bytes": om_bytes,
        "backfill_secs": backfill_secs,
    });
    // Written last: a directory without it is an interrupted backfill, rebuilt next time.
    std::fs::write(&meta_path, serde_json::to_vec_pretty(&meta).unwrap()).expect("write meta.json");
    History {
        dir,
        series,
        samples,
        om_bytes,
        backfill_secs,
        cached: false,
    }
}

fn backfill(cluster: &Cluster, dir: &Path, jobs: usize, disk_bytes: f64) -> (u64, u64, u64) {
    let spec = &cluster.spec;
    let start = spec.end - spec.duration;
    let est_total = BYTES_PER_WORKLOAD_DAY_AT_60S
        * spec.workloads.len() as f64
        * (spec.duration as f64 / DAY as f64)
        * (60.0 / spec.step as f64);
    let per_sec = est_total / spec.duration as f64;
    let chunk_secs = (((CHUNK_BYTES / per_sec) as i64) / HOUR * HOUR).clamp(HOUR, DAY);
    let chunks = ((spec.duration + chunk_secs - 1) / chunk_secs).max(1) as usize;
    let group = ((disk_bytes / (per_sec * chunk_secs as f64)) as usize).clamp(1, chunks);
    eprintln!(
        "e2e: backfilling ~{:.1} GB of OpenMetrics in {chunks} chunks of {} h, {group} per pass, {jobs} promtool jobs",
        est_total / 1e9,
        chunk_secs / HOUR
    );
    let work = dir.join("work");
    std::fs::create_dir_all(&work).unwrap();
    let promtool = crate::require("promtool");
    let mut totals = (0, 0);
    let mut om_bytes = 0;
    for first in (0..chunks).step_by(group) {
        let last = (first + group).min(chunks);
        let t = Instant::now();
        let files: Vec<PathBuf> = (first..last).map(|c| work.join(format!("chunk-{c:03}.om"))).collect();
        let mut split = Splitter::new(start, chunk_secs, chunks, first, &files);
        let stats = cluster.write_openmetrics(&mut split).expect("write openmetrics chunks");
        split.finish().expect("finish openmetrics chunks");
        totals = (stats.series, stats.samples);
        om_bytes = stats.bytes;
        eprintln!(
            "e2e:   generated chunks {first}..{last} in {:.1} s ({} series, {} samples in all)",
            t.elapsed().as_secs_f64(),
            stats.series,
            stats.samples
        );
        let t = Instant::now();
        run_promtool(&promtool, &files, &work, dir, jobs);
        eprintln!(
            "e2e:   promtool on chunks {first}..{last}: {:.1} s",
            t.elapsed().as_secs_f64()
        );
    }
    std::fs::remove_dir_all(&work).unwrap();
    (totals.0, totals.1, om_bytes)
}

/// Backfills each file into its own directory (`jobs` at a time), moves the blocks into
/// `dir` and deletes the file.
fn run_promtool(promtool: &Path, files: &[PathBuf], work: &Path, dir: &Path, jobs: usize) {
    let queue = std::sync::Mutex::new(files.iter());
    std::thread::scope(|s| {
        for _ in 0..jobs.max(1) {
            s.spawn(|| {
                loop {
                    let Some(file) = queue.lock().unwrap().next() else {
                        return;
                    };
                    let out = work.join(format!("{}.tsdb", file.file_stem().unwrap().to_string_lossy()));
                    let output = Command::new(promtool)
                        .args(["tsdb", "create-blocks-from", "openmetrics", "--quiet"])
                        // One pass over the file per block window: large blocks are ~30x faster.
                        .arg("--max-block-duration=1500h")
                        .arg(file)
                        .arg(&out)
                        .output()
                        .expect("run promtool");
                    assert!(
                        output.status.success(),
                        "promtool failed on {}:\n{}{}",
                        file.display(),
                        String::from_utf8_lossy(&output.stdout),
                        String::from_utf8_lossy(&output.stderr)
                    );
                    std::fs::remove_file(file).unwrap();
                    for block in std::fs::read_dir(&out).unwrap() {
                        let block = block.unwrap();
                        if block.file_type().unwrap().is_dir() {
                            std::fs::rename(block.path(), dir.join(block.file_name())).unwrap();
                        }
                    }
                    std::fs::remove_dir_all(&out).unwrap();
                }
            });
        }
    });
}

/// A `Write` that routes each sample line of a streamed OpenMetrics text to the file of its
/// time chunk (chunks `first..first + files.len()`; others are dropped), repeating each
/// family's `# TYPE` line in every file that gets one of its samples, and ends every file
/// with `# EOF`.
struct Splitter {
    start: i64,
    chunk_secs: i64,
    chunks: usize,
    first: usize,
    out: Vec<BufWriter<File>>,
    /// The family each file last got a `# TYPE` line for.
    family_in: Vec<u64>,
    family: u64,
    type_line: Vec<u8>,
    carry: Vec<u8>,
}

impl Splitter {
    fn new(start: i64, chunk_secs: i64, chunks: usize, first: usize, files: &[PathBuf]) -> Splitter {
        Splitter {
            start,
            chunk_secs,
            chunks,
            first,
            out: files
                .iter()
                .map(|f| BufWriter::with_capacity(1 << 20, File::create(f).expect("create chunk file")))
                .collect(),
            family_in: vec![0; files.len()],
            family: 0,
            type_line: Vec::new(),
            carry: Vec::new(),
        }
    }

    fn line(&mut self, line: &[u8]) -> io::Result<()> {
        if line.starts_with(b"#") {
            if line.starts_with(b"# TYPE ") {
                self.family += 1;
                self.type_line.clear();
                self.type_line.extend_from_slice(line);
            }
            return Ok(());
        }
        let space = line.iter().rposition(|&b| b == b' ').unwrap_or(0);
        let t: i64 = std::str::from_utf8(&line[space + 1..line.len() - 1])
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| io::Error::other(format!("no timestamp in {:?}", String::from_utf8_lossy(line))))?;
        let chunk = ((t - self.start).max(0) / self.chunk_secs).min(self.chunks as i64 - 1) as usize;
        let Some(i) = chunk.checked_sub(self.first).filter(|&i| i < self.out.len()) else {
            return Ok(());
        };
        if self.family_in[i] != self.family {
            self.family_in[i] = self.family;
            self.out[i].write_all(&self.type_line)?;
        }
        self.out[i].write_all(line)
    }

    fn finish(mut self) -> io::Result<()> {
        for o in &mut self.out {
            o.write_all(b"# EOF\n")?;
            o.flush()?;
        }
        Ok(())
    }
}

impl Write for Splitter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let mut rest = buf;
        while let Some(nl) = rest.iter().position(|&b| b == b'\n') {
            let (line, tail) = rest.split_at(nl + 1);
            if self.carry.is_empty() {
                self.line(line)?;
            } else {
                let mut whole = std::mem::take(&mut self.carry);
                whole.extend_from_slice(line);
                self.line(&whole)?;
                whole.clear();
                self.carry = whole;
            }
            rest = tail;
        }
        self.carry.extend_from_slice(rest);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
