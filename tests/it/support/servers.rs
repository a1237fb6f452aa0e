//! Real Prometheus and Pushgateway servers for integration tests: history backfilled with
//! `promtool tsdb create-blocks-from openmetrics`, servers on free 127.0.0.1 ports, waited
//! for until ready, killed and cleaned up on drop (also when a test panics).

use std::io::{BufWriter, Read};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use rightsizer_synth::Cluster;

const INSTALL_HINT: &str = "run the README's test command `./scripts/test`, which installs them, or `apt-get install prometheus prometheus-pushgateway`";

/// The path of a required binary, or a panic that says how to install it: a test that needs
/// something missing fails, it never silently passes.
pub fn require(bin: &str) -> PathBuf {
    for dir in std::env::var("PATH")
        .unwrap_or_default()
        .split(':')
        .chain(["/usr/bin", "/usr/local/bin"])
    {
        let p = Path::new(dir).join(bin);
        if p.is_file() {
            return p;
        }
    }
    panic!("`{bin}` is not installed: {INSTALL_HINT}");
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("bind a free loopback port")
        .local_addr()
        .unwrap()
        .port()
}

/// A child process killed and reaped on drop.
struct Guard(Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn wait_ready(url: &str, child: &mut Child, log: &Path) {
    let deadline = Instant::now() + Duration::from_secs(60);
    let addr = url.trim_start_matches("http://");
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            let log = std::fs::read_to_string(log).unwrap_or_default();
            panic!("server at {url} exited with {status} before it was ready:\n{log}");
        }
        if let Ok(mut stream) = std::net::TcpStream::connect(addr) {
            use std::io::Write;
            let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
            let _ = write!(stream, "GET /-/ready HTTP/1.0\r\nHost: {addr}\r\n\r\n");
            let mut head = String::new();
            let _ = stream.read_to_string(&mut head);
            if head.starts_with("HTTP/1.0 200") || head.starts_with("HTTP/1.1 200") {
                return;
            }
        }
        assert!(Instant::now() < deadline, "server at {url} not ready after 60 s");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A running Prometheus with its own copy of a TSDB.
pub struct Prometheus {
    _child: Guard,
    _dir: tempfile::TempDir,
    pub url: String,
}

impl Prometheus {
    /// Starts Prometheus on a copy of `tsdb` (or empty), scraping `scrape_targets`
    /// (`host:port`, e.g. a Pushgateway, with `honor_labels` as its docs require) every second.
    pub fn start(tsdb: Option<&Path>, scrape_targets: &[String]) -> Prometheus {
        Prometheus::start_with(tsdb, scrape_targets, &[])
    }

    /// [`Prometheus::start`] with further command-line flags (e.g. `--query.max-samples=N`).
    pub fn start_with(tsdb: Option<&Path>, scrape_targets: &[String], flags: &[&str]) -> Prometheus {
        let bin = require("prometheus");
        let dir = tempfile::tempdir().expect("temp dir");
        let data = dir.path().join("data");
        match tsdb {
            Some(src) => copy_dir(src, &data),
            None => std::fs::create_dir_all(&data).unwrap(),
        }
        let mut config = String::from("global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n");
        if !scrape_targets.is_empty() {
            let targets = scrape_targets
                .iter()
                .map(|t| format!("'{t}'"))
                .collect::<Vec<_>>()
                .join(", ");
            config.push_str(&format!(
                "  - job_name: pushgateway\n    honor_labels: true\n    static_configs:\n      - targets: [{targets}]\n"
            ));
        } else {
            config = config.replace("scrape_configs:\n", "scrape_configs: []\n");
        }
        let config_path = dir.path().join("prometheus.yml");
        std::fs::write(&config_path, config).unwrap();
        let port = free_port();
        let url = format!("http://127.0.0.1:{port}");
        let log = dir.path().join("prometheus.log");
        let mut child = Command::new(bin)
            .arg(format!("--config.file={}", config_path.display()))
            .arg(format!("--storage.tsdb.path={}", data.display()))
            // Retention counts back from the newest block: keep every backfilled block.
            .arg("--storage.tsdb.retention.time=100y")
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .args(flags)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("start prometheus");
        wait_ready(&url, &mut child, &log);
        Prometheus {
            _child: Guard(child),
            _dir: dir,
            url,
        }
    }
}

/// Polls an instant query at "now" until it returns at least `min_series` series (pushed
/// metrics reach Prometheus at its next scrape, every second) and returns them; fails the
/// test after 30 s.
pub async fn scraped(prom_url: &str, expr: &str, min_series: usize) -> Vec<serde_json::Value> {
    rightsizer::install_crypto_provider();
    let http = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let answer: serde_json::Value = http
            .get(format!("{prom_url}/api/v1/query"))
            .query(&[("query", expr)])
            .send()
            .await
            .expect("query prometheus")
            .json()
            .await
            .expect("prometheus answers json");
        let result = answer["data"]["result"].as_array().cloned().unwrap_or_default();
        if result.len() >= min_series.max(1) {
            return result;
        }
        assert!(
            Instant::now() < deadline,
            "{expr}: nothing reached prometheus within 30 s: {answer}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A running Pushgateway (no persistence).
pub struct Pushgateway {
    _child: Guard,
    _dir: tempfile::TempDir,
    pub url: String,
    pub address: String,
}

impl Pushgateway {
    pub fn start() -> Pushgateway {
        let bin = require("prometheus-pushgateway");
        let dir = tempfile::tempdir().expect("temp dir");
        let port = free_port();
        let address = format!("127.0.0.1:{port}");
        let url = format!("http://{address}");
        let log = dir.path().join("pushgateway.log");
        let mut child = Command::new(bin)
            .arg(format!("--web.listen-address={address}"))
            .arg("--persistence.file=")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("start prometheus-pushgateway");
        wait_ready(&url, &mut child, &log);
        Pushgateway {
            _child: Guard(child),
            _dir: dir,
            url,
            address,
        }
    }
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

/// Writes a cluster's history as OpenMetrics and backfills it into a TSDB directory, cached
/// under the cargo target dir by a hash of the history, so each test binary run backfills a
/// given history once and later runs reuse it. Tests copy the cached TSDB (Prometheus
/// rewrites its data directory).
pub fn backfilled_tsdb(cluster: &Cluster) -> PathBuf {
    backfilled("history", |mut w| cluster.write_openmetrics(&mut w).map(drop))
}

/// Backfills OpenMetrics text (e.g. a generated history edited by a test), cached like
/// [`backfilled_tsdb`].
pub fn backfilled_openmetrics(text: &str) -> PathBuf {
    backfilled("text", |w| w.write_all(text.as_bytes()))
}

/// Writes OpenMetrics through `write` into a file under the fixture root, hashing it on the
/// way, and backfills it unless that hash is cached already.
fn backfilled(name: &str, write: impl FnOnce(&mut dyn std::io::Write) -> std::io::Result<()>) -> PathBuf {
    static LOCK: Mutex<()> = Mutex::new(());
    let _guard = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let root = Path::new(env!("CARGO_TARGET_TMPDIR")).join("tsdb-fixtures");
    std::fs::create_dir_all(&root).unwrap();
    let om = root.join(format!("{name}-{}.om", std::process::id()));
    let hash = {
        let file = std::fs::File::create(&om).unwrap();
        let mut w = HashingWriter {
            inner: BufWriter::new(file),
            hash: 0xcbf29ce484222325,
        };
        write(&mut w).expect("write openmetrics");
        std::io::Write::flush(&mut w).unwrap();
        w.hash
    };
    let tsdb = backfill(&om, hash);
    let _ = std::fs::remove_file(&om);
    tsdb
}

/// Backfills `om` into the fixture directory named by `hash` unless it is already there.
fn backfill(om: &Path, hash: u64) -> PathBuf {
    let root = om.parent().unwrap();
    let tsdb = root.join(format!("{hash:016x}"));
    let done = tsdb.join(".complete");
    if !done.exists() {
        let _ = std::fs::remove_dir_all(&tsdb);
        let output = Command::new(require("promtool"))
            .args(["tsdb", "create-blocks-from", "openmetrics"])
            // One pass over the file per block window: large blocks make backfill ~30x faster.
            .arg("--max-block-duration=1500h")
            .arg(om)
            .arg(&tsdb)
            .output()
            .expect("run promtool");
        assert!(
            output.status.success(),
            "promtool backfill failed:\n{}\n{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        std::fs::write(&done, b"").unwrap();
    }
    tsdb
}

/// FNV-1a over everything written: the cache key of a backfilled history.
struct HashingWriter<W> {
    inner: W,
    hash: u64,
}

impl<W: std::io::Write> std::io::Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        for &b in &buf[..n] {
            self.hash = (self.hash ^ u64::from(b)).wrapping_mul(0x100000001b3);
        }
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// A shared fixture: the demo cluster's history, generated and backfilled once per process.
pub fn demo_history() -> &'static (Cluster, PathBuf) {
    static FIXTURE: OnceLock<(Cluster, PathBuf)> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let cluster = rightsizer_synth::generate(rightsizer_synth::ClusterSpec::demo(DEMO_END, DEMO_DAYS * 86_400));
        let tsdb = backfilled_tsdb(&cluster);
        (cluster, tsdb)
    })
}

/// End of the test history: a fixed time, so every run is deterministic and instant queries
/// carry an explicit evaluation time.
pub const DEMO_END: i64 = 1_793_491_200; // 2026-11-01T00:00:00Z
pub const DEMO_DAYS: i64 = 3;
