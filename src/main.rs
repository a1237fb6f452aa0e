//! The `rightsizer` binary: parse the command line, set up logging, build the settings, run
//! (or schedule the run), map the outcome to an exit code: 0 ok, 2 error (an output that
//! failed, or a workload that could not be annotated or patched), 3 changes recommended
//! (`--check`).

use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches};
use rightsizer::cli::{Cli, Command, LogFormat};
use rightsizer::emit::outputs::{EXIT_ERROR, EXIT_OK};
use rightsizer::run;
use rightsizer::settings::{RunSettings, Sources};

/// Logs go to stderr, in colour only when stderr is a terminal that wants it and the user did
/// not say `--no-color` (or `NO_COLOR`).
fn init_tracing(format: LogFormat, no_color: bool) {
    use std::io::IsTerminal;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into());
    let color = !no_color && rightsizer::settings::color_wanted(std::io::stderr().is_terminal());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(color)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

async fn main_run(cli: Cli, matches: &clap::ArgMatches) -> rightsizer::Result<u8> {
    let definition = Cli::command();
    let (name, sub) = matches.subcommand().expect("clap requires a subcommand");
    let command = definition.find_subcommand(name).expect("the subcommand clap matched");
    let sources = Sources::new(sub, command);
    match cli.command {
        Command::Recommend(args) => {
            let settings = RunSettings::recommend(&args, &sources)?;
            let outcome = run::run(&settings).await?;
            Ok(outcome.exit_code(settings.check))
        }
        Command::Agent(args) => {
            let settings = RunSettings::agent(&args, &sources)?;
            rightsizer::agent::run(settings).await
        }
        Command::Snapshot(args) => {
            let settings = RunSettings::snapshot(&args, &sources)?;
            run::snapshot(&settings, &args.output).await?;
            tracing::info!(path = %args.output.display(), "snapshot written");
            Ok(EXIT_OK)
        }
        Command::Backtest(args) => {
            let settings = RunSettings::backtest(&args, &sources)?;
            rightsizer::backtest::run(&args, &settings).await?;
            Ok(EXIT_OK)
        }
    }
}

/// `--no-color` (or `RIGHTSIZER_NO_COLOR`) of the subcommand, for the log.
fn no_color(cli: &Cli) -> bool {
    let flag = match &cli.command {
        Command::Recommend(a) => a.run.output.no_color,
        Command::Agent(a) => a.run.output.no_color,
        _ => None,
    };
    flag.unwrap_or(false)
}

fn main() -> ExitCode {
    let matches = Cli::command().get_matches();
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    init_tracing(cli.log_format, no_color(&cli));
    rightsizer::install_crypto_provider();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(EXIT_ERROR);
        }
    };
    match runtime.block_on(main_run(cli, &matches)) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            let e = anyhow::Error::from(e);
            eprintln!("error: {e:#}");
            ExitCode::from(EXIT_ERROR)
        }
    }
}
