//! Hostile input and faults (issue 14), tried as an attacker would: label values that are
//! attacks (path traversal, backticks, raw HTML, newlines, formulas, escape sequences,
//! non-ASCII, 10,000 characters) backfilled into a real Prometheus; a fault-injecting proxy
//! that cuts, trickles, loops, inflates and floods answers; the fake Kubernetes API with
//! endless continue tokens, 500s and a persistent 429; a gzip bomb built here (small on disk).
//! Memory bounds are checked on the real binary's peak RSS (`/usr/bin/time`), hangs by the
//! time they now take to fail.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use rightsizer::collect::Error;
use rightsizer::collect::cluster::{self as cluster, KubeTarget, ListLimits};
use rightsizer::collect::filter::Filter;
use rightsizer::collect::prometheus::{PromClient, PromConfig};
use rightsizer::emit::escape::visible;
use rightsizer::model::WorkloadKind;
use rightsizer_synth::{Cluster, ClusterSpec, ContainerProfile, DAY, MI, WorkloadSpec, generate};

use crate::support::fake_api::FakeApi;
use crate::support::proxy::{Fault, Proxy};
use crate::support::servers::{DEMO_END, Prometheus, backfilled_tsdb, require};

/// Names an attacker who can push series would pick, each a Deployment of its own.
fn hostile_names() -> Vec<String> {
    vec![
        "../../../../tmp/x".into(),
        "/tmp/abs".into(),
        "a`b<img src=x onerror=alert(1)>".into(),
        "=cmd|' /C calc'!A0".into(),
        "@SUM(1+1)".into(),
        "x\n# heading [link](http://evil.example)".into(),
        "\x1b]0;pwned\x07\x1b[2J\x1b[31mred".into(),
        "zürich-ß".into(),
        "y".repeat(10_000),
    ]
}

/// The restarted (OOM-killed) workload: a backtick and a non-ASCII letter in its pod names
/// made the restart query invalid RE2 and the whole run exit 2.
const LEAKER: &str = "wörker`x";

/// The hostile cluster's history (one day), generated and backfilled once per process.
fn hostile_history() -> &'static (Cluster, PathBuf) {
    static FIXTURE: OnceLock<(Cluster, PathBuf)> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let mut workloads: Vec<WorkloadSpec> = hostile_names()
            .iter()
            .map(|name| {
                WorkloadSpec::new("shop", WorkloadKind::Deployment, name, 2, DEMO_END)
                    .with(ContainerProfile::new("app", 1.0, 1024.0 * MI).usage(0.1, 200.0 * MI))
            })
            .collect();
        workloads.push(
            WorkloadSpec::new("shop", WorkloadKind::Deployment, LEAKER, 2, DEMO_END).with(
                ContainerProfile::new("app", 0.3, 256.0 * MI)
                    .limits(Some(1.0), Some(512.0 * MI))
                    .usage(0.12, 200.0 * MI)
                    .leak(45.0 * MI),
            ),
        );
        workloads.push(
            WorkloadSpec::new("=ns\x1b[2J", WorkloadKind::Deployment, "web", 1, DEMO_END)
                .with(ContainerProfile::new("<b>c</b>", 1.0, 1024.0 * MI).usage(0.1, 200.0 * MI)),
        );
        let spec = ClusterSpec {
            seed: 14,
            end: DEMO_END,
            duration: DAY,
            step: 60,
            nodes: 2,
            workloads,
        };
        let cluster = generate(spec);
        let tsdb = backfilled_tsdb(&cluster);
        (cluster, tsdb)
    })
}

/// The binary with `args` and `env`, its peak RSS in KiB measured by `/usr/bin/time`.
async fn run(args: &[&str], env: &[(&str, &str)]) -> (std::process::Output, u64) {
    let dir = tempfile::tempdir().unwrap();
    let rss = dir.path().join("rss");
    let mut cmd = tokio::process::Command::new(require("time"));
    cmd.arg("-f").arg("%M").arg("-o").arg(&rss);
    cmd.arg(env!("CARGO_BIN_EXE_rightsizer")).args(args);
    cmd.env("RUST_LOG", "warn")
        .env_remove("KUBECONFIG")
        .env_remove("COLUMNS");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd
        .output()
        .await
        .expect("run the rightsizer binary under /usr/bin/time");
    let kib = std::fs::read_to_string(&rss)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().parse::<u64>().ok())
        .next_back()
        .unwrap_or_else(|| panic!("no RSS from /usr/bin/time: {}", String::from_utf8_lossy(&out.stderr)));
    (out, kib)
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// `recommend` over the hostile cluster's day, without the Kubernetes API.
fn recommend_args<'a>(prom: &'a str, end: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec![
        "recommend",
        "--prometheus-url",
        prom,
        "--no-kube-api",
        "--history",
        "1d",
        "--end",
        end,
        "--no-progress",
    ];
    args.extend(extra);
    args
}

/// No control character but the line feed (and the CR of CRLF line ends when `crlf`).
fn assert_no_controls(what: &str, s: &str, crlf: bool) {
    for (i, c) in s.char_indices() {
        let allowed = c == '\n' || (crlf && c == '\r' && s[i + 1..].starts_with('\n'));
        assert!(
            !c.is_control() || allowed,
            "{what}: control character {c:?} at byte {i}: {:?}",
            &s[i.saturating_sub(40)..(i + 40).min(s.len())]
        );
    }
}

/// A line with its CommonMark code spans cut out, and the spans' contents (one space of
/// padding on each side removed, as CommonMark does).
fn code_spans(line: &str) -> (String, Vec<String>) {
    let b = line.as_bytes();
    let run_at = |i: usize| b[i..].iter().take_while(|&&c| c == b'`').count();
    let (mut outside, mut spans) = (String::new(), Vec::new());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'`' && (i == 0 || b[i - 1] != b'\\') {
            let n = run_at(i);
            // The closing run: the next run of exactly n backticks.
            let mut j = i + n;
            let mut close = None;
            while j < b.len() {
                if b[j] == b'`' {
                    let m = run_at(j);
                    if m == n {
                        close = Some(j);
                        break;
                    }
                    j += m;
                } else {
                    j += 1;
                }
            }
            match close {
                Some(j) => {
                    let inner = &line[i + n..j];
                    let inner = if inner.len() >= 2 && inner.starts_with(' ') && inner.ends_with(' ') {
                        &inner[1..inner.len() - 1]
                    } else {
                        inner
                    };
                    spans.push(inner.to_string());
                    i = j + n;
                }
                None => {
                    outside.push_str(&line[i..i + n]);
                    i += n;
                }
            }
        } else {
            let c = line[i..].chars().next().unwrap();
            outside.push(c);
            i += c.len_utf8();
        }
    }
    (outside, spans)
}

/// RFC 4180 rows.
fn csv_rows(s: &str) -> Vec<Vec<String>> {
    let (mut rows, mut row, mut cell) = (Vec::new(), Vec::new(), String::new());
    let mut chars = s.chars().peekable();
    let mut quoted = false;
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (true, '"') if chars.peek() == Some(&'"') => {
                chars.next();
                cell.push('"');
            }
            (true, '"') => quoted = false,
            (true, c) => cell.push(c),
            (false, '"') => quoted = true,
            (false, ',') => row.push(std::mem::take(&mut cell)),
            (false, '\r') => {}
            (false, '\n') => {
                row.push(std::mem::take(&mut cell));
                rows.push(std::mem::take(&mut row));
            }
            (false, c) => cell.push(c),
        }
    }
    rows
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_names_are_data_in_every_output() {
    let (_, tsdb) = hostile_history();
    let prom = Prometheus::start(Some(tsdb), &[]);
    let dir = tempfile::tempdir().unwrap();
    let (md, csv) = (dir.path().join("pr.md"), dir.path().join("report.csv"));
    let end = DEMO_END.to_string();

    let table_args = recommend_args(&prom.url, &end, &["--no-color", "--markdown", md.to_str().unwrap()]);
    let (out, _) = run(&table_args, &[]).await;
    let stderr = text(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(0),
        "one hostile name stopped the run:\n{stderr}"
    );
    let table = text(&out.stdout);
    assert_no_controls("table (--no-color)", &table, false);
    for name in hostile_names() {
        assert!(table.contains(&visible(&name)), "table lacks {:?}", visible(&name));
    }

    // Markdown: outside code spans, no raw HTML but ours, no markup started by a name.
    let md = std::fs::read_to_string(&md).unwrap();
    assert_no_controls("markdown", &md, false);
    let mut spans = Vec::new();
    for line in md.lines() {
        let (outside, inside) = code_spans(line);
        spans.extend(inside);
        let ours = ["<details>", "</details>", "<summary>", "</summary>", "<sub>", "</sub>"];
        let mut rest = outside.clone();
        for tag in ours {
            rest = rest.replace(tag, "");
        }
        for (i, _) in rest.match_indices(['<', '[']) {
            assert!(i > 0 && rest.as_bytes()[i - 1] == b'\\', "unescaped markup in {line:?}");
        }
        if line.starts_with('#') {
            assert!(
                line.starts_with("## rightsizer") || line.starts_with("### "),
                "{line:?}"
            );
            assert!(!line.contains("heading"), "a name made a heading: {line:?}");
        }
    }
    for name in [hostile_names()[2].clone(), LEAKER.to_string()] {
        assert!(
            spans.iter().any(|s| s.contains(&visible(&name))),
            "no code span shows {name:?} whole: {spans:?}"
        );
    }

    // CSV: text cells never start a formula; the OOM kills of the restarted pods are there.
    let csv_args = recommend_args(&prom.url, &end, &["-f", "csv", "-o", csv.to_str().unwrap()]);
    let (out, _) = run(&csv_args, &[]).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let csv = std::fs::read_to_string(&csv).unwrap();
    assert_no_controls("csv", &csv, true);
    let rows = csv_rows(&csv);
    let header = &rows[0];
    let text_columns: Vec<usize> = ["namespace", "workload", "container", "vpa_mode", "skipped", "note"]
        .iter()
        .map(|c| header.iter().position(|h| h == c).unwrap())
        .collect();
    assert!(rows.len() > hostile_names().len(), "{csv}");
    for row in &rows[1..] {
        for &i in &text_columns {
            assert!(
                !row[i].starts_with(['=', '+', '-', '@', '\t', '\r']),
                "formula in {}: {:?}",
                header[i],
                row[i]
            );
        }
    }
    let leaker = rows
        .iter()
        .find(|r| r[2] == visible(LEAKER))
        .unwrap_or_else(|| panic!("no row for {LEAKER}: {csv}"));
    let note = &leaker[header.iter().position(|h| h == "note").unwrap()];
    assert!(note.contains("memory: OOMKilled x"), "{note:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_huge_label_value_is_refused_in_bounded_memory() {
    let upstream = Prometheus::start(None, &[]);
    let proxy = Proxy::start(&upstream.url).await;
    // One label value of 1 GiB in the first answer (streamed by the proxy, never held).
    proxy.inject([Fault::HugeLabel(1 << 30)]);
    let end = DEMO_END.to_string();
    let start = Instant::now();
    let (out, kib) = run(&recommend_args(&proxy.url, &end, &[]), &[]).await;
    let stderr = text(&out.stderr);
    eprintln!("1 GiB label value: peak RSS {} MiB, {:?}", kib / 1024, start.elapsed());
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("--prometheus-max-string-bytes"), "{stderr}");
    assert!(kib < 100 * 1024, "peak RSS {kib} KiB for a refused answer");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kube_state_metrics_answers_are_streamed_not_held() {
    // Every kube-state-metrics query of a discovery answers 10,000 series of a dozen labels
    // (the owners of 10,000 pods), 90 MiB of JSON in all: what discovery keeps of them is a
    // few labels per series, and the peak follows that, not the answers (before: 550 MiB).
    let upstream = Prometheus::start(None, &[]);
    let proxy = Proxy::start(&upstream.url).await;
    proxy.inject((0..20).map(|_| Fault::ManySeries(10_000)));
    let end = DEMO_END.to_string();
    let (out, kib) = run(&recommend_args(&proxy.url, &end, &["-f", "json"]), &[]).await;
    eprintln!(
        "20 answers of 10,000 kube-state-metrics series: peak RSS {} MiB",
        kib / 1024
    );
    // The pods have no usage history: the run ends there, after discovery.
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(kib < 350 * 1024, "peak RSS {kib} KiB");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gzip_bomb_snapshot_is_refused_in_bounded_memory() {
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    let bomb = dir.path().join("bomb.json.gz");
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(br#"{"apiVersion":"rightsizer.dev/v1alpha1","kind":"Snapshot","source":""#)
        .unwrap();
    let block = vec![b'a'; 1 << 20];
    for _ in 0..200 {
        gz.write_all(&block).unwrap();
    }
    gz.write_all(br#""}"#).unwrap();
    let bytes = gz.finish().unwrap();
    std::fs::write(&bomb, &bytes).unwrap();
    let (out, kib) = run(&["recommend", "--snapshot", bomb.to_str().unwrap()], &[]).await;
    let stderr = text(&out.stderr);
    eprintln!(
        "gzip bomb of {} KiB (200 MiB inflated): peak RSS {} MiB",
        bytes.len() / 1024,
        kib / 1024
    );
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("longer than"), "{stderr}");
    assert!(kib < 100 * 1024, "peak RSS {kib} KiB for a refused snapshot");
}

/// A streamed remote-read answer whose one frame claims 256 MiB and brings 100 bytes.
fn lying_frame() -> Vec<u8> {
    let mut out = Vec::new();
    let mut len: u64 = 256 << 20;
    while len >= 0x80 {
        out.push((len as u8) | 0x80);
        len >>= 7;
    }
    out.push(len as u8);
    out.extend([0u8; 4]);
    out.extend([7u8; 100]);
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_remote_read_frame_length_is_checked_against_the_bytes_received() {
    let (_, tsdb) = hostile_history();
    let upstream = Prometheus::start(Some(tsdb), &[]);
    let proxy = Proxy::start(&upstream.url).await;
    let streamed = "application/x-streamed-protobuf; proto=prometheus.ChunkedReadResponse";
    proxy.inject_on("/api/v1/read", [Fault::Raw(streamed, lying_frame())]);
    let end = DEMO_END.to_string();
    let (out, kib) = run(&recommend_args(&proxy.url, &end, &["-f", "json"]), &[]).await;
    eprintln!("remote-read frame claiming 256 MiB: peak RSS {} MiB", kib / 1024);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(
        proxy.requests().iter().any(|r| r.path == "/api/v1/read"),
        "remote read was never tried"
    );
    assert!(
        kib < 200 * 1024,
        "peak RSS {kib} KiB: a 100-byte frame was allocated at its claimed size"
    );
}

fn client(url: &str, f: impl FnOnce(&mut PromConfig)) -> PromClient {
    let mut cfg = PromConfig::new(url.parse().unwrap());
    cfg.backoff = Duration::from_millis(20);
    f(&mut cfg);
    PromClient::new(&cfg).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_warnings_is_kept_once_and_bounded() {
    let upstream = Prometheus::start(None, &[]);
    let proxy = Proxy::start(&upstream.url).await;
    proxy.inject([Fault::Warnings(20_000)]);
    let prom = client(&proxy.url, |_| {});
    let start = Instant::now();
    prom.query("vector(1)", DEMO_END).await.unwrap();
    let warnings = prom.warnings();
    eprintln!("20,000 warnings: {:?}, {} kept", start.elapsed(), warnings.len());
    assert_eq!(warnings.len(), 101, "100 kept and one line counting the rest");
    assert!(warnings.last().unwrap().contains("more"), "{warnings:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endless_answer_ends_at_the_series_cap() {
    let upstream = Prometheus::start(None, &[]);
    let proxy = Proxy::start(&upstream.url).await;
    proxy.inject([Fault::Endless]);
    let prom = client(&proxy.url, |c| c.max_series = 50_000);
    let start = Instant::now();
    let err = prom.query("up", DEMO_END).await.unwrap_err();
    eprintln!("endless answer: failed after {:?}", start.elapsed());
    assert!(matches!(err, Error::PrometheusLimit { .. }), "{err}");
    assert!(err.to_string().contains("--prometheus-max-series"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_cut_mid_stream_is_retried() {
    let upstream = Prometheus::start(None, &[]);
    let proxy = Proxy::start(&upstream.url).await;
    proxy.inject([Fault::Cut]);
    let prom = client(&proxy.url, |_| {});
    let got = prom.query("vector(1)", DEMO_END).await.unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(prom.stats().retries.load(Ordering::Relaxed), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_and_throttled_answers_end_at_the_deadline() {
    let upstream = Prometheus::start(None, &[]);
    let proxy = Proxy::start(&upstream.url).await;
    let deadline = Duration::from_secs(2);

    // A body trickled one byte per 0.2 s: the per-attempt timeout (60 s) never fires.
    proxy.inject([Fault::Trickle(Duration::from_millis(200))]);
    let prom = client(&proxy.url, |c| {
        c.timeout = Duration::from_secs(60);
        c.request_deadline = deadline;
    });
    let start = Instant::now();
    let err = prom.query("vector(1)", DEMO_END).await.unwrap_err();
    let trickled = start.elapsed();
    assert!(matches!(err, Error::PrometheusDeadline { .. }), "{err}");
    assert!(err.to_string().contains("--prometheus-request-deadline"), "{err}");

    // `Retry-After: 3600`, again and again: capped, then the deadline.
    proxy.inject((0..10).map(|_| Fault::Status(429, Some(3600))));
    let start = Instant::now();
    let err = prom.query("vector(1)", DEMO_END).await.unwrap_err();
    let throttled = start.elapsed();
    assert!(matches!(err, Error::PrometheusDeadline { .. }), "{err}");
    eprintln!("trickled body failed after {trickled:?}, Retry-After 3600 after {throttled:?}");
    for took in [trickled, throttled] {
        assert!(took < deadline + Duration::from_secs(2), "{took:?}");
    }

    // The run's deadline bounds every request of the run, whatever each one's.
    let prom = client(&proxy.url, |c| c.run_deadline = Some(Duration::from_secs(1)));
    proxy.inject([Fault::Slow(Duration::from_secs(30))]);
    let start = Instant::now();
    let err = prom.query("vector(1)", DEMO_END).await.unwrap_err();
    assert!(err.to_string().contains("--prometheus-run-deadline"), "{err}");
    assert!(start.elapsed() < Duration::from_secs(3), "{:?}", start.elapsed());

    // A persistent 429 without Retry-After: the configured retries, then its error.
    let proxy = Proxy::start(&upstream.url).await;
    let before = proxy.requests().len();
    proxy.inject((0..10).map(|_| Fault::Status(429, None)));
    let prom = client(&proxy.url, |c| c.retries = 3);
    let err = prom.query("vector(1)", DEMO_END).await.unwrap_err();
    assert!(matches!(err, Error::PrometheusStatus { status: 429, .. }), "{err}");
    assert_eq!(proxy.requests().len() - before, 4);
}

/// A client of the fake API built as rightsizer builds its own (kube's retry layer off).
async fn kube_client(api: &FakeApi, dir: &Path) -> kube::Client {
    let target = KubeTarget {
        kubeconfig: Some(api.write_kubeconfig(dir)),
        context: None,
    };
    cluster::client(&target).await.unwrap()
}

fn fast_limits() -> ListLimits {
    ListLimits {
        backoff: Duration::from_millis(10),
        max_retry_after: Duration::from_millis(50),
        ..ListLimits::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubernetes_lists_are_bounded_and_retried() {
    let dir = tempfile::tempdir().unwrap();
    let api = FakeApi::start().await;
    api.load(&generate(ClusterSpec::generated(6, 3, DEMO_END, DAY)));
    let client = kube_client(&api, dir.path()).await;
    let filter = Filter::default();

    // A single 500 is retried: the run goes on.
    api.fail_next("/api/v1/pods", 500, 1);
    let found = cluster::discover(&client, &filter).await.expect("one 500 is retried");
    assert!(!found.workloads.is_empty());

    // A continue token that leads back to the start: an error, not an endless loop.
    api.set_endless_continue(true);
    let start = Instant::now();
    let err = tokio::time::timeout(Duration::from_secs(30), cluster::discover(&client, &filter))
        .await
        .expect("an endless list must end")
        .unwrap_err();
    eprintln!("endless continue tokens: failed after {:?}", start.elapsed());
    assert!(err.to_string().contains("continue token"), "{err}");
    api.set_endless_continue(false);

    // A persistent 429 asking for an hour: capped waits, bounded retries, then the error.
    api.set_retry_after_secs(3600);
    api.fail_next("/apis/apps/v1/deployments", 429, 1000);
    api.clear_records();
    let start = Instant::now();
    let err = tokio::time::timeout(
        Duration::from_secs(30),
        cluster::discover_with(&client, &filter, &fast_limits()),
    )
    .await
    .expect("a persistent 429 must end")
    .unwrap_err();
    eprintln!("persistent 429 (Retry-After 3600): failed after {:?}", start.elapsed());
    assert!(cluster::status_code(&err) == Some(429), "{err}");
    let tries = api
        .requests()
        .iter()
        .filter(|r| r.path == "/apis/apps/v1/deployments")
        .count();
    assert_eq!(tries, 1 + fast_limits().retries as usize);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_table_fits_80_columns_and_says_what_each_note_is_about() {
    let snapshot = concat!(env!("CARGO_MANIFEST_DIR"), "/demo/cluster.snapshot.json.gz");
    let (out, _) = run(
        &["recommend", "--snapshot", snapshot, "--no-color"],
        &[("COLUMNS", "80")],
    )
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let table = text(&out.stdout);
    let rows: Vec<&str> = table.lines().take_while(|l| !l.is_empty()).collect();
    assert!(rows.len() > 5, "{table}");
    for row in &rows {
        assert!(row.chars().count() <= 80, "{} columns: {row}", row.chars().count());
    }
    assert!(table.contains("memory: OOMKilled"), "{table}");
    // No "2 -> 2": an unchanged HPA value is shown once.
    for line in table.lines().filter(|l| l.starts_with("HPA ")) {
        let words: Vec<&str> = line.split([' ', ',']).collect();
        for w in words.windows(3) {
            assert!(!(w[1] == "->" && w[0] == w[2]), "{line}");
        }
    }
}
