//! The benchmark's other store: Debian's single-node VictoriaMetrics (`victoria-metrics`),
//! loaded through its import API (`/api/v1/import/prometheus`) instead of promtool, which
//! backfills about 0.4 M samples/s per job and would take hours for 10,000 workloads. The
//! generated OpenMetrics text is streamed straight into the import requests (timestamps turned
//! from seconds into milliseconds, comments left out): nothing is written to disk but
//! VictoriaMetrics' own storage, cached under `target/e2e-vm/<key>` (the same key as the
//! promtool cache: parameters and the generator's source).
//!
//! VictoriaMetrics has no remote read, so rightsizer falls back to PromQL range queries here
//! (as documented): this store measures that path, with VictoriaMetrics' own `rate()`
//! (no extrapolation), so its recommendations are not Prometheus' to the last digit.

use std::io::{self, Write};
use std::path::Path;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use rightsizer_synth::Cluster;
use serde_json::{Value, json};

use crate::backfill::History;

// Starting the process and HTTP to it, as the integration tests' `support::victoria` does.
#[path = "../../tests/it/support/victoria/server.rs"]
mod server;

use server::Process;

/// Bytes of Prometheus text per import request: large enough that the request overhead is
/// nothing, small enough that a few in flight stay far below the machine's memory.
const REQUEST_BYTES: usize = 16 << 20;
/// Import requests in flight at once (VictoriaMetrics parses each on its own core).
const UPLOADERS: usize = 2;

/// A running VictoriaMetrics, killed on drop: safe for the cache, as the loader flushes
/// its parts (`/internal/force_flush`) before writing `meta.json`.
pub struct Victoria {
    process: Process,
}

impl Victoria {
    /// Starts VictoriaMetrics on `data` (created when missing), with limits raised for the
    /// floor queries over the whole history and the result cache off (every run reads the
    /// samples, as Prometheus does). Its log goes beside `data`; opening a large cached
    /// storage may take minutes.
    pub fn start(data: &Path) -> Victoria {
        let bin = crate::require("victoria-metrics");
        std::fs::create_dir_all(data).unwrap();
        let process = Process::start(
            &bin,
            data,
            &[
                "-search.maxUniqueTimeseries=100000000",
                "-search.maxSamplesPerQuery=1000000000000",
                "-search.maxSamplesPerSeries=1000000000",
                "-search.maxQueryDuration=1h",
                "-search.maxSeries=100000000",
            ],
            None,
            &data.with_extension("log"),
            Duration::from_secs(300),
        );
        Victoria { process }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.process.addr)
    }

    pub fn pid(&self) -> u32 {
        self.process.pid()
    }

    /// An instant query at `time`: (wall seconds, as VictoriaMetrics reports no evaluation
    /// time of its own; wall seconds; series in the answer).
    pub fn timed_query(&self, promql: &str, time: i64) -> (f64, f64, usize) {
        let q: String = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("query", promql)
            .append_pair("time", &time.to_string())
            .finish();
        let t = Instant::now();
        let (code, body) =
            request(&self.process.addr, "GET", &format!("/api/v1/query?{q}"), &[]).expect("query victoria-metrics");
        let wall = t.elapsed().as_secs_f64();
        assert_eq!(
            code,
            200,
            "floor query failed: {promql}\n{}",
            String::from_utf8_lossy(&body)
        );
        let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        let series = v["data"]["result"].as_array().map_or(0, Vec::len);
        (wall, wall, series)
    }
}

/// The cached VictoriaMetrics storage of `cluster`, imported first when missing.
pub fn storage(cluster: &Cluster, root: &Path) -> History {
    let (params, key) = crate::backfill::cache_key(cluster);
    let dir = root.join(format!("{key:016x}"));
    let meta_path = dir.join("meta.json");
    if let Some(h) = crate::backfill::cached(&dir, &meta_path) {
        eprintln!("e2e: cached victoria-metrics storage {} ({params})", dir.display());
        return h;
    }
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create the victoria-metrics cache dir");
    let started = Instant::now();
    let vm = Victoria::start(&dir.join("data"));
    let (tx, rx) = mpsc::sync_channel::<Vec<u8>>(UPLOADERS);
    let rx = std::sync::Mutex::new(rx);
    let stats = std::thread::scope(|s| {
        for _ in 0..UPLOADERS {
            s.spawn(|| {
                loop {
                    let Ok(body) = rx.lock().unwrap().recv() else { return };
                    let (code, answer) = request(&vm.process.addr, "POST", "/api/v1/import/prometheus", &body)
                        .expect("import into victoria-metrics");
                    assert!(
                        (200..300).contains(&code),
                        "victoria-metrics refused an import ({code}): {}",
                        String::from_utf8_lossy(&answer)
                    );
                }
            });
        }
        let mut import = Importer {
            tx,
            buf: Vec::with_capacity(REQUEST_BYTES + (1 << 16)),
            carry: Vec::new(),
            sent: 0,
            started: Instant::now(),
        };
        let stats = cluster
            .write_openmetrics(&mut import)
            .expect("stream the history into victoria-metrics");
        import.send();
        stats
        // `import` (and its sender) drops here: the uploaders finish the queue and return.
    });
    let (code, body) = request(&vm.process.addr, "GET", "/internal/force_flush", &[]).expect("flush victoria-metrics");
    assert_eq!(code, 200, "force_flush: {}", String::from_utf8_lossy(&body));
    drop(vm);
    let backfill_secs = started.elapsed().as_secs_f64();
    eprintln!(
        "e2e: imported {} series, {} samples ({:.1} GB of text) into victoria-metrics in {backfill_secs:.0} s ({:.2} M samples/s)",
        stats.series,
        stats.samples,
        stats.bytes as f64 / 1e9,
        stats.samples as f64 / backfill_secs / 1e6
    );
    let meta = json!({
        "series": stats.series, "samples": stats.samples, "om_bytes": stats.bytes,
        "backfill_secs": backfill_secs, "params": params,
    });
    // Written last: a directory without it is an interrupted import, redone next time.
    std::fs::write(&meta_path, serde_json::to_vec_pretty(&meta).unwrap()).expect("write meta.json");
    History {
        dir,
        series: stats.series,
        samples: stats.samples,
        om_bytes: stats.bytes,
        backfill_secs,
        cached: false,
    }
}

/// A `Write` that turns the generator's OpenMetrics text (seconds) into Prometheus text
/// (milliseconds, no comments) and hands it to the uploaders in requests of `REQUEST_BYTES`.
struct Importer {
    tx: mpsc::SyncSender<Vec<u8>>,
    buf: Vec<u8>,
    carry: Vec<u8>,
    sent: u64,
    started: Instant,
}

impl Importer {
    fn line(buf: &mut Vec<u8>, line: &[u8]) {
        // `line` ends with '\n'; comments (`# TYPE`, `# EOF`) are not samples.
        if line.first() == Some(&b'#') {
            return;
        }
        buf.extend_from_slice(&line[..line.len() - 1]);
        buf.extend_from_slice(b"000\n");
    }

    fn send(&mut self) {
        if self.buf.is_empty() {
            return;
        }
        let body = std::mem::replace(&mut self.buf, Vec::with_capacity(REQUEST_BYTES + (1 << 16)));
        self.sent += body.len() as u64;
        self.tx.send(body).expect("the uploaders stopped");
        if self.sent % (1 << 30) < REQUEST_BYTES as u64 {
            eprintln!(
                "e2e:   {:.1} GB imported in {:.0} s",
                self.sent as f64 / 1e9,
                self.started.elapsed().as_secs_f64()
            );
        }
    }
}

impl Write for Importer {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let mut rest = data;
        while let Some(nl) = rest.iter().position(|&b| b == b'\n') {
            let (line, tail) = rest.split_at(nl + 1);
            if self.carry.is_empty() {
                Importer::line(&mut self.buf, line);
            } else {
                self.carry.extend_from_slice(line);
                Importer::line(&mut self.buf, &self.carry);
                self.carry.clear();
            }
            rest = tail;
        }
        self.carry.extend_from_slice(rest);
        if self.buf.len() >= REQUEST_BYTES {
            self.send();
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// One HTTP/1.1 request: status and body. An import or a floor query may take long.
fn request(addr: &str, method: &str, path: &str, body: &[u8]) -> io::Result<(u16, Vec<u8>)> {
    server::request(addr, method, path, body, Duration::from_secs(3600))
}
