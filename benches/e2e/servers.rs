//! The benchmark's servers: a real Prometheus on a copy of a cached TSDB, and plain HTTP/1.0
//! GETs against it (the floor query needs no client library).

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

pub struct Prometheus {
    child: Child,
    dir: PathBuf,
    pub addr: String,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Prometheus {
    /// Starts Prometheus on a copy of `tsdb` in `dir` (removed on drop): Prometheus rewrites
    /// its data directory, so the cache is never served directly.
    pub fn start(tsdb: &Path, dir: PathBuf) -> Prometheus {
        let bin = crate::require("prometheus");
        let _ = std::fs::remove_dir_all(&dir);
        let data = dir.join("data");
        copy_dir(tsdb, &data);
        // The cache's own description, not a block's.
        let _ = std::fs::remove_file(data.join("meta.json"));
        let config = dir.join("prometheus.yml");
        // The query log gives every query's own evaluation time (see `query_log`).
        let query_log = dir.join("queries.log");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1m\n  query_log_file: {}\nscrape_configs: []\n",
                query_log.display()
            ),
        )
        .unwrap();
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let addr = format!("127.0.0.1:{port}");
        let log = dir.join("prometheus.log");
        let child = Command::new(bin)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!("--storage.tsdb.path={}", data.display()))
            // Retention counts back from the newest block: keep every backfilled block.
            .arg("--storage.tsdb.retention.time=100y")
            // No compaction of the backfilled blocks while the benchmark runs.
            .arg("--storage.tsdb.min-block-duration=2h")
            .arg("--storage.tsdb.max-block-duration=2h")
            // Room for the floor query at 2,000 workloads (rightsizer stays far below the
            // default 50 M samples per query; it splits its queries).
            .arg("--query.max-samples=2000000000")
            .arg("--query.timeout=30m")
            .arg(format!("--web.listen-address={addr}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("start prometheus");
        let mut p = Prometheus { child, dir, addr };
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            if let Ok(Some(status)) = p.child.try_wait() {
                panic!(
                    "prometheus exited with {status}:\n{}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                );
            }
            if get(&p.addr, "/-/ready").is_ok_and(|(code, _)| code == 200) {
                return p;
            }
            assert!(Instant::now() < deadline, "prometheus not ready after 120 s");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Queries answered so far, from Prometheus' query log: (server evaluation seconds, the
    /// query, its step in seconds or 0 for an instant query).
    pub fn query_log(&self) -> Vec<(f64, String, f64)> {
        std::fs::read_to_string(self.dir.join("queries.log"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .map(|v| {
                (
                    v["stats"]["timings"]["evalTotalTime"].as_f64().unwrap_or(0.0),
                    v["params"]["query"].as_str().unwrap_or("").to_string(),
                    v["params"]["step"].as_f64().unwrap_or(0.0),
                )
            })
            .collect()
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// An instant query at `time` with `stats=all`: (server evaluation seconds, wall seconds,
    /// series in the answer).
    pub fn timed_query(&self, promql: &str, time: i64) -> (f64, f64, usize) {
        let q: String = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("query", promql)
            .append_pair("time", &time.to_string())
            .append_pair("stats", "all")
            .finish();
        let t = Instant::now();
        let (code, body) = get(&self.addr, &format!("/api/v1/query?{q}")).expect("query prometheus");
        let wall = t.elapsed().as_secs_f64();
        let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        assert_eq!(
            code,
            200,
            "floor query failed: {promql}\n{}",
            String::from_utf8_lossy(&body)
        );
        let eval = v["data"]["stats"]["timings"]["evalTotalTime"]
            .as_f64()
            .unwrap_or(f64::NAN);
        let series = v["data"]["result"].as_array().map_or(0, Vec::len);
        (eval, wall, series)
    }
}

/// CPU seconds (user + system) a process has used so far, from `/proc/<pid>/stat`.
pub fn cpu_secs(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the `(comm)`, which may contain spaces: state is field 3, utime 14, stime 15.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i - 3).and_then(|s| s.parse::<f64>().ok()).unwrap_or(0.0);
    // USER_HZ is 100 on every Linux this runs on.
    (ticks(14) + ticks(15)) / 100.0
}

/// `GET path` over HTTP/1.0 (the answer ends when the server closes): status and body.
fn get(addr: &str, path: &str) -> std::io::Result<(u16, Vec<u8>)> {
    let mut s = TcpStream::connect(addr)?;
    s.set_read_timeout(Some(Duration::from_secs(3600)))?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n")?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)?;
    let head_end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| std::io::Error::other("no http header"))?;
    let head = String::from_utf8_lossy(&raw[..head_end]);
    let code = head.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    Ok((code, raw[head_end + 4..].to_vec()))
}

fn copy_dir(src: &Path, dst: &Path) {
    std::fs::create_dir_all(dst).unwrap();
    for entry in std::fs::read_dir(src).unwrap() {
        let entry = entry.unwrap();
        let to = dst.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &to);
        } else {
            std::fs::copy(entry.path(), &to).unwrap();
        }
    }
}
