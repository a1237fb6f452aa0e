//! End-to-end benchmark (GitHub issue #7): the real `rightsizer recommend` binary against a
//! real Prometheus holding a generated cluster's history and the fake Kubernetes API server
//! serving its objects, per cluster size N. Reports wall time, Prometheus queries and bytes
//! (from the binary's `collected` log line), peak RSS (`/usr/bin/time -v`), and as the floor,
//! Prometheus' own evaluation time of one pass over the same history.
//!
//!     cargo bench --bench e2e -- --workloads 100,1000,2000 --days 14,2,2 --step 60
//!
//! `--days` and `--step` (the scrape interval of the generated history, seconds) take one
//! value for every N or one per N. The backfilled TSDBs are cached under
//! `target/e2e-tsdb/<hash>`; see the README's "Benchmarks" section. Without `--bench` (that
//! is, under `cargo test --benches`) it only prints a notice.
//!
//! `--store victoria` loads the history into VictoriaMetrics through its import API instead
//! (`e2e/victoria.rs`, cached under `target/e2e-vm/<hash>`): about 0.5 M samples/s here
//! against promtool's 0.2, so 10,000 workloads load in minutes. It has no remote read, so
//! rightsizer reads everything with PromQL range queries there (5-minute rate points: its
//! memory does not depend on the scrape step, so a coarser `--step` loads faster and measures
//! the same thing).

// The integration tests' fake API server, as is. Its unit tests' imports are unused when
// clippy checks this target with `cfg(test)` (their `#[test]` functions are not compiled in).
#[allow(unused_imports)]
#[path = "../tests/it/support/fake_api/mod.rs"]
mod fake_api;
// What the fake API stands on (`super::serve` there); its async start is unused here.
#[allow(dead_code)]
#[path = "../tests/it/support/serve.rs"]
mod serve;

#[path = "e2e/backfill.rs"]
mod backfill;
#[path = "e2e/servers.rs"]
mod servers;
#[path = "e2e/victoria.rs"]
mod victoria;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use rightsizer_synth::{self as synth, Cluster, ClusterSpec, DAY};
use serde_json::Value;

use fake_api::FakeApi;
use servers::{Prometheus, cpu_secs};
use victoria::Victoria;

/// End of every generated history (2026-11-01T00:00:00Z): fixed, so caches are reusable and
/// runs comparable.
const END: i64 = 1_793_491_200;

/// The path of a required binary, or a panic that says how to install it.
pub fn require(bin: &str) -> PathBuf {
    for dir in ["/usr/bin", "/usr/local/bin", "/bin"] {
        let p = Path::new(dir).join(bin);
        if p.is_file() {
            return p;
        }
    }
    panic!("`{bin}` is not installed: apt-get install prometheus victoria-metrics time");
}

struct Args {
    workloads: Vec<usize>,
    days: Vec<i64>,
    step: Vec<i64>,
    seed: u64,
    jobs: usize,
    disk_gb: f64,
    bin: PathBuf,
    store: StoreKind,
}

/// Where the generated history is loaded and what rightsizer reads.
#[derive(Clone, Copy, PartialEq)]
enum StoreKind {
    /// Prometheus, backfilled with promtool (remote read for CPU and memory).
    Prometheus,
    /// VictoriaMetrics, loaded through its import API (PromQL range queries: no remote read).
    Victoria,
}

/// A running store holding the history.
enum Store {
    Prometheus(Prometheus),
    Victoria(Victoria),
}

impl Store {
    fn url(&self) -> String {
        match self {
            Store::Prometheus(p) => p.url(),
            Store::Victoria(v) => v.url(),
        }
    }

    fn pid(&self) -> u32 {
        match self {
            Store::Prometheus(p) => p.pid(),
            Store::Victoria(v) => v.pid(),
        }
    }

    /// Prometheus' query log; VictoriaMetrics keeps none (empty).
    fn query_log(&self) -> Vec<(f64, String, f64)> {
        match self {
            Store::Prometheus(p) => p.query_log(),
            Store::Victoria(_) => Vec::new(),
        }
    }

    /// (evaluation seconds, or wall seconds for VictoriaMetrics; wall seconds; series).
    fn timed_query(&self, promql: &str, time: i64) -> (f64, f64, usize) {
        match self {
            Store::Prometheus(p) => p.timed_query(promql, time),
            Store::Victoria(v) => v.timed_query(promql, time),
        }
    }
}

fn list<T: std::str::FromStr>(flag: &str, v: &str) -> Vec<T> {
    v.split(',')
        .map(|x| {
            x.trim()
                .parse()
                .unwrap_or_else(|_| panic!("{flag}: not a number: {x:?}"))
        })
        .collect()
}

fn parse_args() -> Option<Args> {
    let raw: Vec<String> = std::env::args().skip(1).collect();
    if !raw.iter().any(|a| a == "--bench") {
        return None;
    }
    let mut a = Args {
        workloads: vec![100, 1000, 2000],
        days: vec![14],
        step: vec![60],
        seed: 1,
        jobs: 2,
        disk_gb: 24.0,
        bin: PathBuf::from(env!("CARGO_BIN_EXE_rightsizer")),
        store: StoreKind::Prometheus,
    };
    let mut it = raw.iter();
    while let Some(flag) = it.next() {
        let mut value = || it.next().unwrap_or_else(|| panic!("{flag} needs a value")).clone();
        match flag.as_str() {
            "--bench" => {}
            "--workloads" => a.workloads = list(flag, &value()),
            "--days" => a.days = list(flag, &value()),
            "--step" => a.step = list(flag, &value()),
            "--seed" => a.seed = value().parse().expect("--seed: a number"),
            "--jobs" => a.jobs = value().parse().expect("--jobs: a number"),
            "--disk-gb" => a.disk_gb = value().parse().expect("--disk-gb: a number"),
            "--bin" => a.bin = PathBuf::from(value()),
            "--store" => {
                a.store = match value().as_str() {
                    "prometheus" => StoreKind::Prometheus,
                    "victoria" => StoreKind::Victoria,
                    other => panic!("--store: prometheus or victoria, not {other:?}"),
                }
            }
            other => panic!(
                "unknown argument {other:?}; usage: cargo bench --bench e2e -- [--workloads 100,1000,2000] \
                 [--days 14|14,2,2] [--step 60] [--seed 1] [--jobs 2] [--disk-gb 24] [--bin PATH] \
                 [--store prometheus|victoria]"
            ),
        }
    }
    let n = a.workloads.len();
    for (name, v) in [("--days", &mut a.days), ("--step", &mut a.step)] {
        if v.len() == 1 {
            *v = vec![v[0]; n];
        }
        assert_eq!(v.len(), n, "{name}: one value, or one per --workloads entry");
    }
    Some(a)
}

/// One row of the table.
#[derive(Default)]
struct Row {
    /// "" for Prometheus, ", VM" for VictoriaMetrics (shown in the history column).
    store: &'static str,
    workloads: usize,
    days: i64,
    step: i64,
    containers: u64,
    series: u64,
    samples: u64,
    om_gb: f64,
    backfill: String,
    wall: f64,
    queries: u64,
    bytes: u64,
    rss_mib: f64,
    cpu: f64,
    prom_cpu: f64,
    server_eval: f64,
    floor_cpu: f64,
    floor_mem: f64,
    floor_all: f64,
}

fn main() {
    let Some(args) = parse_args() else {
        println!("e2e: skipped (a benchmark, not a test); run it with `cargo bench --bench e2e`");
        return;
    };
    assert!(
        args.bin.is_file(),
        "no rightsizer binary at {}: run `cargo build --release` or pass --bin",
        args.bin.display()
    );
    let time = require("time");
    let root = match args.store {
        StoreKind::Prometheus => {
            require("prometheus");
            require("promtool");
            "e2e-tsdb"
        }
        StoreKind::Victoria => {
            require("victoria-metrics");
            "e2e-vm"
        }
    };
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("target").join(root);
    std::fs::create_dir_all(&root).unwrap();
    let mut rows = Vec::new();
    for i in 0..args.workloads.len() {
        let (n, days, step) = (args.workloads[i], args.days[i], args.step[i]);
        eprintln!("e2e: N={n}, {days} d at {step} s");
        let t = Instant::now();
        let mut spec = ClusterSpec::generated(n, args.seed, END, days * DAY);
        spec.step = step;
        let cluster = synth::generate(spec);
        eprintln!("e2e: planned the cluster in {:.1} s", t.elapsed().as_secs_f64());
        let history = match args.store {
            StoreKind::Prometheus => backfill::tsdb(&cluster, &root, args.jobs, args.disk_gb * 1e9),
            StoreKind::Victoria => victoria::storage(&cluster, &root),
        };
        let row = measure(&args, &time, &root, &cluster, &history, days, step);
        print_table(std::slice::from_ref(&row));
        rows.push(row);
    }
    println!();
    print_table(&rows);
}

fn measure(
    args: &Args,
    time: &Path,
    root: &Path,
    cluster: &Cluster,
    history: &backfill::History,
    days: i64,
    step: i64,
) -> Row {
    let prom = match args.store {
        StoreKind::Prometheus => Store::Prometheus(Prometheus::start(
            &history.dir,
            root.join(format!("run-{}", std::process::id())),
        )),
        // VictoriaMetrics runs on the cache itself: it never drops what it holds.
        StoreKind::Victoria => Store::Victoria(Victoria::start(&history.dir.join("data"))),
    };
    let api = FakeApi::start_blocking();
    api.load(cluster);
    let o = &cluster.objects;
    let json_mb = |v: serde_json::Result<Vec<u8>>| v.map_or(0.0, |b| b.len() as f64 / 1e6);
    eprintln!(
        "e2e: fake API serves {} pods ({:.1} MB JSON), {} ReplicaSets ({:.1} MB), {} Jobs ({:.1} MB), {} Deployments, \
         {} StatefulSets, {} DaemonSets, {} CronJobs, {} HPAs",
        o.pods.len(),
        json_mb(serde_json::to_vec(&o.pods)),
        o.replica_sets.len(),
        json_mb(serde_json::to_vec(&o.replica_sets)),
        o.jobs.len(),
        json_mb(serde_json::to_vec(&o.jobs)),
        o.deployments.len(),
        o.stateful_sets.len(),
        o.daemon_sets.len(),
        o.cron_jobs.len(),
        o.hpas.len()
    );
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = api.write_kubeconfig(dir.path());

    let prom_cpu_before = cpu_secs(prom.pid());
    let t = Instant::now();
    // E2E_WRAP="heaptrack -o /tmp/ht" runs rightsizer under a profiler (the figures are then
    // the profiler's, not rightsizer's).
    let wrap = std::env::var("E2E_WRAP").unwrap_or_default();
    let out = Command::new(time)
        .arg("-v")
        .args(wrap.split_whitespace())
        .arg(&args.bin)
        .args(["recommend", "--prometheus-url", &prom.url(), "--kubeconfig"])
        .arg(&kubeconfig)
        .args(["--history", &format!("{days}d"), "--end", &END.to_string()])
        .args(["--format", "json", "--log-format", "json"])
        .env("RUST_LOG", "info")
        .env_remove("KUBECONFIG")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .expect("run rightsizer under /usr/bin/time");
    let wall = t.elapsed().as_secs_f64();
    let prom_cpu = cpu_secs(prom.pid()) - prom_cpu_before;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "rightsizer failed:\n{stderr}");
    let collected = stderr
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|v| v["fields"]["message"] == "collected")
        .unwrap_or_else(|| panic!("no `collected` log line in:\n{stderr}"));
    let f = &collected["fields"];
    let timed = |key: &str| {
        stderr
            .lines()
            .find_map(|l| l.trim().strip_prefix(key)?.trim().parse::<f64>().ok())
            .unwrap_or(f64::NAN)
    };
    // Where Prometheus spent the run: its evaluation time per query, summed by query text
    // (the chunks of one query differ only in their time range).
    let mut by_query: Vec<(f64, usize, String)> = Vec::new();
    for (eval, query, step) in prom.query_log() {
        let key = format!("{query} (step {step} s)");
        match by_query.iter_mut().find(|(_, _, k)| *k == key) {
            Some(e) => {
                e.0 += eval;
                e.1 += 1;
            }
            None => by_query.push((eval, 1, key)),
        }
    }
    by_query.sort_by(|a, b| b.0.total_cmp(&a.0));
    let server_eval: f64 = by_query.iter().map(|e| e.0).sum();
    eprintln!("e2e: prometheus evaluation of rightsizer's queries: {server_eval:.2} s in all; by query:");
    for (eval, count, query) in &by_query {
        // The restart queries name every restarted pod: show their head and tail.
        let shown = if query.len() > 300 {
            let cut = |i: usize| (0..=i).rev().find(|&j| query.is_char_boundary(j)).unwrap_or(0);
            format!("{} [...] {}", &query[..cut(150)], &query[cut(query.len() - 120)..])
        } else {
            query.clone()
        };
        eprintln!("e2e:   {eval:7.2} s  x{count:<3} {shown}");
    }
    let rss_kib = timed("Maximum resident set size (kbytes):");
    let cpu = timed("User time (seconds):") + timed("System time (seconds):");

    // The floor: one pass of the store over the same history, as it evaluates it.
    // VictoriaMetrics refuses a 14-day pass over every container for memory (8.8 GB asked
    // for at 1,000 workloads, 3.8 GB allowed on this machine): it makes the pass in 2-day
    // slices, and the floor is their sum.
    let slice_days = match prom {
        Store::Victoria(_) if days > 2 => 2,
        _ => days,
    };
    let floor = |query: &dyn Fn(i64) -> String| {
        let (mut eval, mut wall, mut series) = (0.0, 0.0, 0);
        let mut done = 0;
        while done < days {
            let d = slice_days.min(days - done);
            let (e, w, n) = prom.timed_query(&query(d), END - done * DAY);
            (eval, wall, series) = (eval + e, wall + w, series.max(n));
            done += d;
        }
        (eval, wall, series)
    };
    let (floor_cpu, cpu_wall, cpu_series) = floor(&|d| {
        format!("quantile_over_time(0.95, rate(container_cpu_usage_seconds_total{{container!=\"\"}}[5m])[{d}d:5m])")
    });
    let (floor_mem, mem_wall, _) =
        floor(&|d| format!("max_over_time(container_memory_working_set_bytes{{container!=\"\"}}[{d}d])"));
    // Every sample of every series once (`max_over_time` would drop the metric names and
    // collide; `last_over_time` reads the same samples and keeps them).
    let (floor_all, all_wall, _) = floor(&|d| format!("count(last_over_time({{__name__=~\".+\"}}[{d}d]))"));
    eprintln!(
        "e2e: rightsizer {wall:.2} s ({cpu:.2} s CPU; prometheus {prom_cpu:.2} s CPU meanwhile); floor: p95 CPU subquery \
         {floor_cpu:.2} s eval ({cpu_wall:.2} s wall, {cpu_series} series), max memory {floor_mem:.2} s eval ({mem_wall:.2} s wall), \
         every series {floor_all:.2} s eval ({all_wall:.2} s wall)"
    );
    Row {
        store: match args.store {
            StoreKind::Prometheus => "",
            StoreKind::Victoria => ", VM",
        },
        workloads: cluster.spec.workloads.len(),
        days,
        step,
        containers: f["containers"].as_u64().unwrap_or(0),
        series: history.series,
        samples: history.samples,
        om_gb: history.om_bytes as f64 / 1e9,
        backfill: format!(
            "{:.0} s{}",
            history.backfill_secs,
            if history.cached { " (cached)" } else { "" }
        ),
        wall,
        queries: f["queries"].as_u64().unwrap_or(0),
        bytes: f["bytes"].as_u64().unwrap_or(0),
        rss_mib: rss_kib / 1024.0,
        cpu,
        prom_cpu,
        server_eval,
        floor_cpu,
        floor_mem,
        floor_all,
    }
}

fn print_table(rows: &[Row]) {
    println!(
        "| workloads | history | containers | series | samples | OpenMetrics | backfill | rightsizer wall | queries | bytes \
         | peak RSS | rightsizer CPU | store CPU | Prometheus eval | floor: p95 CPU eval | floor: max mem eval | floor: every series eval | wall / p95 CPU floor \
         | wall / every-series floor |"
    );
    println!("|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for r in rows {
        println!(
            "| {} | {} d @ {} s{} | {} | {} | {:.1} M | {:.1} GB | {} | {:.2} s | {} | {:.1} MB | {:.1} MiB | {:.2} s | {:.2} s | {:.2} s \
             | {:.2} s | {:.2} s | {:.2} s | {:.2}x | {:.2}x |",
            r.workloads,
            r.days,
            r.step,
            r.store,
            r.containers,
            r.series,
            r.samples as f64 / 1e6,
            r.om_gb,
            r.backfill,
            r.wall,
            r.queries,
            r.bytes as f64 / 1e6,
            r.rss_mib,
            r.cpu,
            r.prom_cpu,
            r.server_eval,
            r.floor_cpu,
            r.floor_mem,
            r.floor_all,
            r.wall / r.floor_cpu,
            r.wall / r.floor_all,
        );
    }
}
