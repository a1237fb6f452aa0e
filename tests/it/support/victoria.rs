//! A real single-node VictoriaMetrics (Debian's `victoria-metrics`, 1.79) for integration
//! tests and benchmarks: started on a free 127.0.0.1 port with its own temporary storage,
//! waited for until `/health` answers, killed and cleaned up on drop (also when a test
//! panics). History goes in through `POST /api/v1/import/prometheus` (Prometheus text
//! exposition, timestamps in milliseconds), streamed with chunked transfer encoding, so a
//! history of any size never sits in memory: the generator's OpenMetrics (timestamps in
//! seconds) is converted line by line on the way (`MillisWriter`). `extra_label` query
//! arguments add labels such as `cluster="a"` to every imported series (VictoriaMetrics'
//! import docs; supported since 1.40). After an import the store is flushed
//! (`/internal/force_flush`) and polled until the imported series are searchable.
//!
//! VictoriaMetrics has no Prometheus remote-read endpoint: rightsizer falls back to PromQL
//! range queries against it.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::{Duration, Instant};

use rightsizer_synth::Cluster;

// Shared with the e2e benchmark (`benches/e2e/victoria.rs` includes it by its path).
mod server;

use server::{Process, read_response};

const INSTALL_HINT: &str =
    "run the README's test command `./scripts/test`, which installs it, or `apt-get install victoria-metrics`";

/// The binary, or a panic that says how to install it (a test never silently passes).
fn binary() -> &'static Path {
    let bin = Path::new("/usr/bin/victoria-metrics");
    assert!(bin.is_file(), "`victoria-metrics` is not installed: {INSTALL_HINT}");
    bin
}

/// What one import sent.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Imported {
    /// Series (runs of lines with the same metric and labels: the generator writes each
    /// series' samples together).
    pub series: u64,
    /// Sample lines.
    pub samples: u64,
    /// Bytes of Prometheus text sent.
    pub bytes: u64,
}

/// A running VictoriaMetrics.
pub struct Victoria {
    // Before the storage: the process is killed before its directory is removed.
    process: Process,
    _dir: tempfile::TempDir,
    /// `http://127.0.0.1:PORT`
    pub url: String,
    addr: String,
    /// Series imported so far (what `wait_searchable` waits for).
    series: u64,
}

impl Victoria {
    /// Starts VictoriaMetrics on a free loopback port with empty storage.
    pub fn start() -> Victoria {
        Victoria::start_with(&[])
    }

    /// Starts it with extra command-line flags (e.g. `-search.maxUniqueTimeseries=1000000`
    /// for large benchmark clusters).
    pub fn start_with(extra: &[&str]) -> Victoria {
        let dir = tempfile::tempdir().expect("temp dir");
        let args = [
            // Imported points are searchable at once (no 30 s "incomplete data" offset).
            &["-search.latencyOffset=0s", "-selfScrapeInterval=0", "-loggerLevel=WARN"][..],
            extra,
        ]
        .concat();
        let process = Process::start(
            binary(),
            &dir.path().join("data"),
            &args,
            Some(&dir.path().join("victoria-metrics.log")),
            &dir.path().join("victoria-metrics.err"),
            Duration::from_secs(60),
        );
        let addr = process.addr.clone();
        Victoria {
            process,
            _dir: dir,
            url: format!("http://{addr}"),
            addr,
            series: 0,
        }
    }

    fn logs(&self) -> String {
        self.process.logs()
    }

    /// A GET on the server: (status, body).
    pub fn get(&self, path_and_query: &str) -> std::io::Result<(u16, String)> {
        let (status, body) = server::request(&self.addr, "GET", path_and_query, &[], Duration::from_secs(60))?;
        Ok((status, String::from_utf8_lossy(&body).into_owned()))
    }

    /// Imports Prometheus text exposition (timestamps in milliseconds) as it is, adding
    /// `extra_labels` to every series, then waits until it is searchable.
    pub fn import(&mut self, text: &str, extra_labels: &[(&str, &str)]) -> Imported {
        self.import_reader(text.as_bytes(), extra_labels)
    }

    /// Imports Prometheus text read from `reader` (streamed, never held whole), then waits
    /// until it is searchable.
    pub fn import_reader(&mut self, reader: impl Read, extra_labels: &[(&str, &str)]) -> Imported {
        self.import_with(extra_labels, |w| {
            let mut reader = BufReader::with_capacity(1 << 16, reader);
            let mut line = Vec::new();
            loop {
                line.clear();
                if reader.read_until(b'\n', &mut line)? == 0 {
                    return Ok(());
                }
                w.write_all(&line)?;
            }
        })
    }

    /// Imports whatever `write` writes as OpenMetrics with timestamps in seconds (the
    /// generator's output, `Cluster::write_openmetrics`): converted line by line to
    /// Prometheus text in milliseconds and streamed to the server.
    pub fn import_openmetrics(
        &mut self,
        extra_labels: &[(&str, &str)],
        write: impl FnOnce(&mut dyn Write) -> std::io::Result<()>,
    ) -> Imported {
        self.import_with(extra_labels, |w| {
            let mut ms = MillisWriter::new(w);
            write(&mut ms)?;
            ms.finish()
        })
    }

    /// Imports a generated cluster's whole history (see `import_openmetrics`).
    pub fn import_cluster(&mut self, cluster: &Cluster, extra_labels: &[(&str, &str)]) -> Imported {
        self.import_openmetrics(extra_labels, |mut w| cluster.write_openmetrics(&mut w).map(drop))
    }

    /// One streamed import request: `write` writes Prometheus text (ms timestamps) into the
    /// chunked request body. Then flush and wait until searchable.
    fn import_with(
        &mut self,
        extra_labels: &[(&str, &str)],
        write: impl FnOnce(&mut dyn Write) -> std::io::Result<()>,
    ) -> Imported {
        let query: Vec<String> = extra_labels
            .iter()
            .map(|(k, v)| format!("extra_label={}", encode(&format!("{k}={v}"))))
            .collect();
        let path = if query.is_empty() {
            "/api/v1/import/prometheus".to_string()
        } else {
            format!("/api/v1/import/prometheus?{}", query.join("&"))
        };
        let stream = TcpStream::connect(&self.addr).expect("connect to victoria-metrics");
        stream.set_read_timeout(Some(Duration::from_secs(600))).unwrap();
        let mut head = std::io::BufWriter::with_capacity(1 << 16, stream.try_clone().unwrap());
        write!(
            head,
            "POST {path} HTTP/1.1\r\nHost: {}\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n",
            self.addr
        )
        .unwrap();
        let mut body = Chunked {
            out: head,
            buf: Vec::with_capacity(1 << 16),
            counter: Counter::default(),
        };
        write(&mut body).expect("write the import body");
        let counted = body.finish().expect("send the import body");
        let (status, answer) = read_response(stream).expect("read the import answer");
        assert!(
            (200..300).contains(&status),
            "victoria-metrics refused the import: HTTP {status}: {}\n{}",
            String::from_utf8_lossy(&answer),
            self.logs()
        );
        self.series += counted.series;
        self.wait_searchable();
        counted
    }

    /// Flushes the in-memory parts and waits until every imported series is searchable.
    pub fn wait_searchable(&self) {
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let (status, body) = self.get("/internal/force_flush").expect("force_flush");
            assert_eq!(status, 200, "force_flush: {body}");
            let (status, body) = self.get("/api/v1/series/count").expect("count series");
            assert_eq!(status, 200, "series count: {body}");
            let count = serde_json::from_str::<serde_json::Value>(&body)
                .ok()
                .and_then(|v| v["data"][0].as_u64())
                .unwrap_or_else(|| panic!("series count answer: {body}"));
            if count >= self.series {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "victoria-metrics shows {count} series of {} imported after 120 s\n{}",
                self.series,
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Series imported so far.
    pub fn series(&self) -> u64 {
        self.series
    }
}

/// Percent-encodes a query argument.
fn encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Counts sample lines, series (runs of lines with the same name and labels) and bytes,
/// with `str` searches (see `MillisWriter`).
#[derive(Default)]
struct Counter {
    counted: Imported,
    last: String,
    partial: Vec<u8>,
}

impl Counter {
    fn feed(&mut self, data: &[u8]) {
        self.counted.bytes += data.len() as u64;
        self.partial.extend_from_slice(data);
        let buf = std::mem::take(&mut self.partial);
        let valid = match std::str::from_utf8(&buf) {
            Ok(t) => t.len(),
            Err(e) => e.valid_up_to(),
        };
        let text = std::str::from_utf8(&buf[..valid]).expect("validated");
        let complete = text.rfind('\n').map_or(0, |i| i + 1);
        for line in text[..complete].split_terminator('\n') {
            self.line(line);
        }
        self.partial = buf[complete..].to_vec();
    }

    fn line(&mut self, line: &str) {
        if line.is_empty() || line.starts_with('#') {
            return;
        }
        self.counted.samples += 1;
        // The series is everything before the value: up to the closing brace, or the
        // first space for a series without labels.
        let series = match line.rfind('}') {
            Some(i) => &line[..=i],
            None => line.split(' ').next().unwrap_or(line),
        };
        if self.last != series {
            self.counted.series += 1;
            self.last.clear();
            self.last.push_str(series);
        }
    }
}

/// A chunked HTTP request body, counting what passes.
struct Chunked<W: Write> {
    out: W,
    buf: Vec<u8>,
    counter: Counter,
}

impl<W: Write> Chunked<W> {
    fn send(&mut self) -> std::io::Result<()> {
        if !self.buf.is_empty() {
            write!(self.out, "{:x}\r\n", self.buf.len())?;
            self.out.write_all(&self.buf)?;
            self.out.write_all(b"\r\n")?;
            self.buf.clear();
        }
        Ok(())
    }

    fn finish(mut self) -> std::io::Result<Imported> {
        self.send()?;
        self.out.write_all(b"0\r\n\r\n")?;
        self.out.flush()?;
        if !self.counter.partial.is_empty() {
            let line = String::from_utf8_lossy(&std::mem::take(&mut self.counter.partial)).into_owned();
            self.counter.line(&line);
        }
        Ok(self.counter.counted)
    }
}

impl<W: Write> Write for Chunked<W> {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.counter.feed(data);
        self.buf.extend_from_slice(data);
        if self.buf.len() >= 1 << 16 {
            self.send()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// OpenMetrics with integer timestamps in seconds in, Prometheus text with milliseconds
/// out, line by line: comment lines (`# TYPE`, `# EOF`) are dropped, and `000` goes before
/// each sample line's newline. A sample line without an integer timestamp is an error (the
/// import would stamp it with the current time). Lines are found with `str` searches
/// (memchr in the precompiled standard library): byte loops in an unoptimised test build
/// took 3 s per 300 MB.
pub struct MillisWriter<'a> {
    out: &'a mut dyn Write,
    partial: Vec<u8>,
    converted: Vec<u8>,
}

impl<'a> MillisWriter<'a> {
    pub fn new(out: &'a mut dyn Write) -> Self {
        MillisWriter {
            out,
            partial: Vec::new(),
            converted: Vec::new(),
        }
    }

    /// Converts the complete lines of `text` into `converted`.
    fn lines(text: &str, converted: &mut Vec<u8>) -> std::io::Result<()> {
        for line in text.split_terminator('\n') {
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let stamped = line.rsplit_once(' ').filter(|&(head, ts)| {
                !ts.is_empty() && ts.bytes().all(|b| b.is_ascii_digit()) && {
                    // A value before the timestamp, after the labels.
                    let after_labels = head.rfind('}').map_or(head, |i| &head[i + 1..]);
                    after_labels.trim().contains(|c: char| !c.is_whitespace())
                        && (head.contains('}') || after_labels.trim().contains(' '))
                }
            });
            if stamped.is_none() {
                return Err(std::io::Error::other(format!(
                    "not a sample with an integer timestamp in seconds: {line:?}"
                )));
            }
            converted.extend_from_slice(line.as_bytes());
            converted.extend_from_slice(b"000\n");
        }
        Ok(())
    }

    /// Converts what is left (a last line without a newline).
    pub fn finish(mut self) -> std::io::Result<()> {
        let rest = std::mem::take(&mut self.partial);
        let text = std::str::from_utf8(&rest).map_err(std::io::Error::other)?;
        let mut converted = Vec::new();
        Self::lines(text, &mut converted)?;
        self.out.write_all(&converted)
    }
}

impl Write for MillisWriter<'_> {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.partial.extend_from_slice(data);
        let buf = std::mem::take(&mut self.partial);
        let valid = match std::str::from_utf8(&buf) {
            Ok(t) => t.len(),
            Err(e) => e.valid_up_to(),
        };
        let text = std::str::from_utf8(&buf[..valid]).expect("validated");
        let complete = text.rfind('\n').map_or(0, |i| i + 1);
        self.converted.clear();
        let mut converted = std::mem::take(&mut self.converted);
        let result = Self::lines(&text[..complete], &mut converted);
        self.partial = buf[complete..].to_vec();
        result?;
        self.out.write_all(&converted)?;
        self.converted = converted;
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn millis_writer_converts_openmetrics_seconds() {
    let mut out = Vec::new();
    let mut w = MillisWriter::new(&mut out);
    w.write_all(b"# TYPE m counter\nm{a=\"x y\"} 1.5 17").unwrap();
    w.write_all(b"93491200\nplain 2 1793491260\n# EOF\n").unwrap();
    w.finish().unwrap();
    assert_eq!(
        String::from_utf8(out).unwrap(),
        "m{a=\"x y\"} 1.5 1793491200000\nplain 2 1793491260000\n"
    );
    let mut out = Vec::new();
    let mut w = MillisWriter::new(&mut out);
    assert!(w.write_all(b"m{a=\"1\"} 3\n").is_err(), "a sample without timestamp");
}
