//! The `rightsizer` binary: parse the command line, set up logging, run, map the outcome to
//! an exit code: 0 ok, 2 error (including an output that failed, or a workload that could
//! not be annotated or patched), 3 changes recommended (`recommend --check` only).

use std::process::ExitCode;

use clap::Parser;
use rightsizer::cli::{Cli, Command, LogFormat};
use rightsizer::collect::kube::chain;
use rightsizer::emit::Outputs;
use rightsizer::settings::Input;

const OK: u8 = 0;
const ERROR: u8 = 2;
/// `recommend --check` found changes to recommend (for CI).
const CHANGES_RECOMMENDED: u8 = 3;
use rightsizer::pipeline;

fn init_tracing(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

async fn run(cli: Cli) -> rightsizer::Result<u8> {
    let mut code = OK;
    match cli.command {
        Command::Recommend(args) => {
            let input = Input::try_from(&args.input)?;
            let outputs = Outputs::try_from(&args.output)?;
            let outcome = pipeline::run(&input, &outputs).await?;
            code = exit_code(&outcome, args.check);
        }
        Command::Snapshot(args) => {
            let input = Input::try_from(&args.input)?;
            pipeline::snapshot(&input, &args.output).await?;
            tracing::info!(path = %args.output.display(), "snapshot written");
        }
        Command::Backtest(args) => rightsizer::backtest::run(&args).await?,
        Command::Agent(args) => match rightsizer::agent::run(args).await? {
            0 => {}
            code => std::process::exit(code.into()),
        },
    }
    Ok(code)
}

/// Prints what failed in the outputs and picks the exit code of a `recommend` run.
fn exit_code(outcome: &pipeline::RunOutcome, check: bool) -> u8 {
    for e in &outcome.errors {
        eprintln!("error: {}", chain(e));
    }
    let failed = outcome
        .annotated
        .iter()
        .flat_map(|a| &a.failed)
        .chain(outcome.applied.iter().flat_map(|a| &a.failed));
    for (key, e) in failed {
        eprintln!("error: {key}: {}", chain(e));
    }
    if !outcome.errors.is_empty() || outcome.failed_workloads() > 0 {
        ERROR
    } else if check && outcome.changes_recommended() {
        CHANGES_RECOMMENDED
    } else {
        OK
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing(cli.log_format);
    rightsizer::install_crypto_provider();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(2);
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            let e = anyhow::Error::from(e);
            eprintln!("error: {e:#}");
            ExitCode::from(ERROR)
        }
    }
}
