//! The full quality suite (issue 12): the backtest scenarios (`ClusterSpec::scenarios`) with
//! 14 days of training and 7 held out, backfilled into a real Prometheus, through the
//! backtest's library code (`rightsizer::backtest::backtest`, what `rightsizer backtest`
//! runs). Prints the per-scenario table (rightsizer vs the KRR `simple` and VPA methods) and
//! the overall figures, then checks the targets and exits non-zero listing every
//! target missed:
//! - per scenario, rightsizer is not Pareto-dominated by KRR or the VPA on (CPU shortfall
//!   rate, CPU slack) nor on (pods over the memory limit, memory slack);
//! - overall, rightsizer is short of CPU in at most 3 % of pod-intervals at no more CPU
//!   slack than KRR, and no pod crosses its memory limit.
//!
//!     cargo bench --bench quality
//!
//! Without `--bench` (that is, under `cargo test --benches`) it only prints a notice. The
//! backfilled TSDB is cached like the integration tests' (by a hash of the history).

// The integration tests' Prometheus and backfill helpers, as they are.
#[allow(dead_code)]
#[path = "../tests/it/support/servers.rs"]
mod servers;

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::time::Instant;

use rightsizer::collect::history::Window;
use rightsizer::emit::progress::Progress;
use rightsizer::recommend::backtest::{METHODS, Score, dominates};
use rightsizer::settings::RunSettings;
use rightsizer_synth::ClusterSpec;

use servers::{Prometheus, backfilled_tsdb};

/// End of the generated history (2026-11-01T00:00:00Z): fixed, so the cache is reusable.
const END: i64 = 1_793_491_200;
const DAY: i64 = 86_400;
const TRAINING_DAYS: i64 = 14;
const HELD_OUT_DAYS: i64 = 7;

/// The methods compared in the table and the targets: rightsizer, KRR, the VPA.
const COMPARED: [usize; 3] = [0, 2, 3];

fn main() -> ExitCode {
    if !std::env::args().any(|a| a == "--bench") {
        println!("quality: skipped (a benchmark, not a test); run it with `cargo bench --bench quality`");
        return ExitCode::SUCCESS;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    runtime.block_on(run())
}

async fn run() -> ExitCode {
    let started = Instant::now();
    let held_out = HELD_OUT_DAYS * DAY;
    let spec = ClusterSpec::scenarios(END, (TRAINING_DAYS + HELD_OUT_DAYS) * DAY, held_out);
    let cluster = rightsizer_synth::generate(spec);
    let tsdb = backfilled_tsdb(&cluster);
    eprintln!(
        "quality: {TRAINING_DAYS} d of training, {HELD_OUT_DAYS} d held out; history ready in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let prom = Prometheus::start(Some(&tsdb), &[]);
    let training = Window {
        end: END - held_out,
        length: TRAINING_DAYS * DAY,
        step: 300,
    };
    let (end, history) = (training.end.to_string(), format!("{TRAINING_DAYS}d"));
    // The settings `recommend --no-kube-api` builds for the training window, with the
    // default policy (its 7-day horizon is the held-out week).
    let settings = RunSettings::from_argv([
        "rightsizer",
        "recommend",
        "--prometheus-url",
        &prom.url,
        "--no-kube-api",
        "--history",
        &history,
        "--end",
        &end,
    ])
    .expect("settings");
    let b = match rightsizer::backtest::backtest(&settings, training, held_out, &Progress::new(false)).await {
        Ok(b) => b,
        Err(e) => {
            eprintln!("quality: backtest failed: {e}");
            return ExitCode::FAILURE;
        }
    };
    let per_scenario = b.evaluation.by_workload();
    let totals: Vec<Score> = b.evaluation.totals.iter().map(|t| t.score).collect();
    print_table(&per_scenario, &totals);
    let missed = check(&per_scenario, &totals);
    eprintln!("quality: done in {:.1} s", started.elapsed().as_secs_f64());
    if missed.is_empty() {
        println!("\nall targets met");
        ExitCode::SUCCESS
    } else {
        println!("\ntargets missed:");
        for m in &missed {
            println!("- {m}");
        }
        ExitCode::FAILURE
    }
}

fn rate(s: &Score) -> f64 {
    s.cpu_shortfall_rate().unwrap_or(0.0) * 100.0
}

/// Markdown, ready for the README: one row per scenario, rightsizer / KRR / VPA per column.
fn print_table(per_scenario: &BTreeMap<String, Vec<Score>>, totals: &[Score]) {
    println!(
        "| scenario | CPU short % (rightsizer / KRR / VPA) | CPU slack core-h | pods over memory limit | memory slack GiB-h |"
    );
    println!("|---|---|---|---|---|");
    let row = |name: &str, s: &[Score]| {
        let col = |f: &dyn Fn(&Score) -> String| COMPARED.map(|m| f(&s[m])).join(" / ");
        println!(
            "| {name} | {} | {} | {} | {} |",
            col(&|s| format!("{:.1}", rate(s))),
            col(&|s| format!("{:.1}", s.cpu_slack_core_hours)),
            col(&|s| format!("{}/{}", s.pods_over_memory_limit, s.memory_pods)),
            col(&|s| format!("{:.1}", s.memory_slack_gib_hours)),
        );
    };
    for (name, s) in per_scenario {
        row(name, s);
    }
    row("**overall**", totals);
}

/// Issue 12's targets; each miss named with its numbers.
fn check(per_scenario: &BTreeMap<String, Vec<Score>>, totals: &[Score]) -> Vec<String> {
    let cpu = |s: &Score| (rate(s), s.cpu_slack_core_hours);
    let memory = |s: &Score| (s.pods_over_memory_limit as f64, s.memory_slack_gib_hours);
    let mut missed = Vec::new();
    for (name, s) in per_scenario {
        for m in [2, 3] {
            let (ours, theirs) = (cpu(&s[0]), cpu(&s[m]));
            if dominates(theirs, ours) {
                missed.push(format!(
                    "{name}: {} dominates rightsizer on CPU ({:.1} % short at {:.1} core-h against {:.1} % at {:.1})",
                    METHODS[m], theirs.0, theirs.1, ours.0, ours.1
                ));
            }
            let (ours, theirs) = (memory(&s[0]), memory(&s[m]));
            if dominates(theirs, ours) {
                missed.push(format!(
                    "{name}: {} dominates rightsizer on memory ({} pods over the limit at {:.1} GiB-h against {} at {:.1})",
                    METHODS[m], theirs.0, theirs.1, ours.0, ours.1
                ));
            }
        }
    }
    let (ours, krr) = (&totals[0], &totals[2]);
    println!(
        "\noverall: rightsizer short of CPU in {:.2} % of pod-intervals at {:.1} core-h of slack (KRR {:.2} % at {:.1}, VPA {:.2} % at {:.1}); pods over the memory limit {}/{} (KRR {}, VPA {}); memory slack {:.1} GiB-h (KRR {:.1}, VPA {:.1})",
        rate(ours),
        ours.cpu_slack_core_hours,
        rate(krr),
        krr.cpu_slack_core_hours,
        rate(&totals[3]),
        totals[3].cpu_slack_core_hours,
        ours.pods_over_memory_limit,
        ours.memory_pods,
        krr.pods_over_memory_limit,
        totals[3].pods_over_memory_limit,
        ours.memory_slack_gib_hours,
        krr.memory_slack_gib_hours,
        totals[3].memory_slack_gib_hours
    );
    if rate(ours) > 3.0 {
        missed.push(format!(
            "overall: short of CPU in {:.2} % of pod-intervals (target <= 3 %)",
            rate(ours)
        ));
    }
    if ours.cpu_slack_core_hours > krr.cpu_slack_core_hours {
        missed.push(format!(
            "overall: {:.1} core-h of CPU slack, more than KRR's {:.1}",
            ours.cpu_slack_core_hours, krr.cpu_slack_core_hours
        ));
    }
    if ours.pods_over_memory_limit > 0 {
        missed.push(format!(
            "overall: {} pods over their memory limit (target 0)",
            ours.pods_over_memory_limit
        ));
    }
    missed
}
