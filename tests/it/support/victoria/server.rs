//! One VictoriaMetrics process and plain HTTP/1.1 to it, shared by the integration tests'
//! `support::victoria` (empty storage in a temporary directory) and the e2e benchmark's
//! store (`benches/e2e/victoria.rs`, cached storage, includes this file with `#[path]`):
//! started on a free 127.0.0.1 port, waited for until `/health` answers, killed and reaped
//! on drop (also when a test panics).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running `victoria-metrics`, killed and reaped on drop. SIGKILL is safe for a cached
/// storage: VictoriaMetrics writes its parts atomically.
pub struct Process {
    child: Child,
    /// `127.0.0.1:PORT`
    pub addr: String,
    logs: Vec<PathBuf>,
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Process {
    /// Starts `bin` on a free loopback port with its storage at `data`, every sample kept
    /// (retention counts back from now and drops older imports: the generated histories end
    /// on a fixed date in the past) and no result cache (nothing cached from before an
    /// import answers after it; every query reads the samples, as Prometheus does), plus
    /// `args`. Its standard output goes to `stdout` (nowhere when `None`), its log to
    /// `stderr`. Waits until `/health` answers, for `ready_within` at the most.
    pub fn start(
        bin: &Path,
        data: &Path,
        args: &[&str],
        stdout: Option<&Path>,
        stderr: &Path,
        ready_within: Duration,
    ) -> Process {
        let port = TcpListener::bind("127.0.0.1:0")
            .expect("bind a free loopback port")
            .local_addr()
            .unwrap()
            .port();
        let addr = format!("127.0.0.1:{port}");
        let create = |path: &Path| std::fs::File::create(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let child = Command::new(bin)
            .arg(format!("-httpListenAddr={addr}"))
            .arg(format!("-storageDataPath={}", data.display()))
            .arg("-retentionPeriod=100y")
            .arg("-search.disableCache")
            .args(args)
            .stdin(Stdio::null())
            .stdout(stdout.map_or_else(Stdio::null, |p| create(p).into()))
            .stderr(create(stderr))
            .spawn()
            .expect("start victoria-metrics");
        let mut vm = Process {
            child,
            addr,
            logs: stdout.into_iter().chain([stderr]).map(Path::to_path_buf).collect(),
        };
        vm.wait_healthy(ready_within);
        vm
    }

    /// What it wrote to its standard output and log so far.
    pub fn logs(&self) -> String {
        self.logs
            .iter()
            .map(|p| std::fs::read_to_string(p).unwrap_or_default())
            .collect()
    }

    /// The process id (the e2e benchmark reads its CPU time; the tests do not).
    #[allow(dead_code)]
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    fn wait_healthy(&mut self, ready_within: Duration) {
        let deadline = Instant::now() + ready_within;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "victoria-metrics at {} exited with {status} before it was ready:\n{}",
                    self.addr,
                    self.logs()
                );
            }
            if let Ok((200, body)) = request(&self.addr, "GET", "/health", &[], Duration::from_secs(60))
                && body.trim_ascii() == b"OK"
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "victoria-metrics at {} not ready after {} s",
                self.addr,
                ready_within.as_secs()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// One HTTP/1.1 request with `Connection: close` and `body` (may be empty): status and
/// body, waiting for the answer up to `timeout`.
pub fn request(
    addr: &str,
    method: &str,
    path: &str,
    body: &[u8],
    timeout: Duration,
) -> std::io::Result<(u16, Vec<u8>)> {
    let mut stream = TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(timeout))?;
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )?;
    stream.write_all(body)?;
    read_response(stream)
}

/// Reads an HTTP/1.x answer (identity or chunked body, as VictoriaMetrics answers queries):
/// status and body.
pub fn read_response(stream: TcpStream) -> std::io::Result<(u16, Vec<u8>)> {
    let mut r = BufReader::new(stream);
    let mut line = String::new();
    r.read_line(&mut line)?;
    let status = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("not an HTTP answer: {line:?}")))?;
    let mut chunked = false;
    let mut length = None;
    loop {
        line.clear();
        r.read_line(&mut line)?;
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        let lower = l.to_ascii_lowercase();
        if lower.starts_with("transfer-encoding:") && lower.contains("chunked") {
            chunked = true;
        } else if let Some(n) = lower.strip_prefix("content-length:") {
            length = n.trim().parse::<usize>().ok();
        }
    }
    let mut body = Vec::new();
    if chunked {
        loop {
            line.clear();
            r.read_line(&mut line)?;
            let n = usize::from_str_radix(line.trim().split(';').next().unwrap_or(""), 16)
                .map_err(|_| std::io::Error::other("bad chunk size"))?;
            if n == 0 {
                break;
            }
            let mut chunk = vec![0; n + 2];
            r.read_exact(&mut chunk)?;
            body.extend_from_slice(&chunk[..n]);
        }
    } else if let Some(n) = length {
        body.resize(n, 0);
        r.read_exact(&mut body)?;
    } else {
        r.read_to_end(&mut body)?;
    }
    Ok((status, body))
}
