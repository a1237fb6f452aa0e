//! The `rightsizer` binary: parse the command line, set up logging, run, map the outcome to
//! an exit code (0 ok, 2 error).

use std::process::ExitCode;

use clap::Parser;
use rightsizer::cli::{Cli, Command, LogFormat};
use rightsizer::settings::Input;
use rightsizer::{generate, pipeline};

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

async fn run(cli: Cli) -> rightsizer::Result<()> {
    match cli.command {
        Command::Recommend(args) => {
            let input = Input::try_from(&args.input)?;
            let mut out = std::io::stdout().lock();
            pipeline::recommend(&input, args.format, &mut out).await?;
        }
        Command::Snapshot(args) => {
            let input = Input::try_from(&args.input)?;
            pipeline::snapshot(&input, &args.output).await?;
            tracing::info!(path = %args.output.display(), "snapshot written");
        }
        Command::Generate(args) => generate::run(args.what)?,
    }
    Ok(())
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
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let e = anyhow::Error::from(e);
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}
