//! `rightsizer-synth`: writes the bundled demo snapshot, or a generated cluster's history as
//! OpenMetrics (for `promtool tsdb create-blocks-from openmetrics`) with its objects.
//!
//!     cargo run -p rightsizer-synth -- demo-snapshot -o demo/cluster.snapshot.json.gz
//!     cargo run -p rightsizer-synth --release -- history --workloads 200 -o history.om --objects objects.json

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use rightsizer_synth::ClusterSpec;
use rightsizer_synth::export::{self, Error};

/// Generate synthetic cluster history (for the demo, tests and benchmarks).
#[derive(Debug, Parser)]
#[command(name = "rightsizer-synth", version)]
struct Cli {
    #[command(subcommand)]
    what: What,
}

#[derive(Debug, Subcommand)]
enum What {
    /// The bundled demo snapshot (demo/cluster.snapshot.json.gz), from the synthetic demo cluster.
    DemoSnapshot {
        #[arg(long, short = 'o')]
        output: PathBuf,
    },
    /// OpenMetrics history for `promtool tsdb create-blocks-from openmetrics`, plus the
    /// matching Kubernetes objects as a JSON list.
    History {
        /// Number of workloads (0 = the small demo cluster).
        #[arg(long, default_value_t = 0)]
        workloads: usize,
        /// Days of history.
        #[arg(long, default_value_t = 14)]
        days: i64,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Last sample time, unix seconds (default: now).
        #[arg(long)]
        end: Option<i64>,
        /// OpenMetrics output file.
        #[arg(long, short = 'o')]
        output: PathBuf,
        /// Write the Kubernetes objects (a v1 List) here.
        #[arg(long)]
        objects: Option<PathBuf>,
    },
}

fn run(what: What) -> Result<(), Error> {
    match what {
        What::DemoSnapshot { output } => export::write_demo_snapshot(&output),
        What::History {
            workloads,
            days,
            seed,
            end,
            output,
            objects,
        } => {
            let end = end.unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_secs() as i64)
                    .unwrap_or(0)
            });
            let duration = days * 86_400;
            let spec = if workloads == 0 {
                ClusterSpec::demo(end, duration)
            } else {
                ClusterSpec::generated(workloads, seed, end, duration)
            };
            let cluster = rightsizer_synth::generate(spec);
            let stats = export::write_history(&cluster, &output, objects.as_deref())?;
            eprintln!(
                "history written: {} series, {} samples, {} bytes in {}",
                stats.series,
                stats.samples,
                stats.bytes,
                output.display()
            );
            Ok(())
        }
    }
}

fn main() -> ExitCode {
    match run(Cli::parse().what) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {:#}", anyhow::Error::from(e));
            ExitCode::from(2)
        }
    }
}
