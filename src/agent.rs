//! Agent mode (`rightsizer agent`): the same run as `recommend` ([`crate::run::run`], with the
//! same settings, outputs and exit codes), scheduled. One run by default, for a CronJob; with
//! `--schedule` (config `schedule`) a long-lived process that runs on a Kubernetes cron
//! schedule and logs the next run. This module adds only the schedule and the signals.
//!
//! Signals (SIGTERM, SIGINT): no new run starts after the first one. Between runs the process
//! exits at once with 0; during a run the run is finished, then the process exits with the
//! run's code. A second signal abandons the run (every file is written atomically, so no
//! partial file is left) and the process exits with 128 + the signal: 143 (SIGTERM), 130
//! (SIGINT). Exit codes: those of `recommend` for a one-shot run (0 ok, 2 an error, 3 changes
//! recommended with `outputs.check`); with `--schedule` a failed run is logged and the next
//! one still runs.

use tokio::signal::unix::{Signal, SignalKind, signal};

use crate::Error;
use crate::collect::cluster::chain;
use crate::emit::outputs::EXIT_ERROR;
use crate::settings::RunSettings;

/// Logs the configuration once and runs; returns the exit code (see the module docs).
pub async fn run(settings: RunSettings) -> Result<u8, Error> {
    let mut signals = Signals::new()?;
    tracing::info!(config = %settings.redacted, "effective configuration");
    let Some(schedule) = settings.schedule.clone() else {
        return match guarded(&settings, &mut signals).await {
            Guarded::Finished(result) => result.map(|(code, _)| code),
            Guarded::Abandoned(signo) => Ok(128 + signo),
        };
    };
    loop {
        let now = chrono::Utc::now();
        let Some(next) = schedule.next_after(&now) else {
            return Err(Error::Config(format!(
                "schedule {:?} never fires again",
                schedule.as_str()
            )));
        };
        tracing::info!(schedule = schedule.as_str(), next_run = %next.to_rfc3339(), "next run scheduled");
        let wait = (next - now).to_std().unwrap_or_default();
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            signo = signals.recv() => {
                tracing::info!(signal = signo, "stopping between runs");
                return Ok(0);
            }
        }
        match guarded(&settings, &mut signals).await {
            Guarded::Finished(Ok((_, stop))) if stop => return Ok(0),
            Guarded::Finished(Ok((code, _))) if code == EXIT_ERROR => {
                tracing::error!("run failed; the next run is still scheduled");
            }
            Guarded::Finished(Ok(_)) => {}
            Guarded::Finished(Err(e)) => {
                tracing::error!(error = %chain(&e), "run failed; the next run is still scheduled");
                if signals.received {
                    return Ok(0);
                }
            }
            Guarded::Abandoned(signo) => return Ok(128 + signo),
        }
    }
}

/// SIGTERM and SIGINT as one stream of signal numbers.
struct Signals {
    term: Signal,
    int: Signal,
    received: bool,
}

impl Signals {
    fn new() -> Result<Signals, Error> {
        let install = |kind| signal(kind).map_err(|e| Error::Config(format!("cannot install signal handlers: {e}")));
        Ok(Signals {
            term: install(SignalKind::terminate())?,
            int: install(SignalKind::interrupt())?,
            received: false,
        })
    }

    async fn recv(&mut self) -> u8 {
        let signo = tokio::select! {
            _ = self.term.recv() => 15,
            _ = self.int.recv() => 2,
        };
        self.received = true;
        signo
    }
}

enum Guarded {
    /// The run ended with its exit code; `true` when a signal asked to stop after it.
    Finished(Result<(u8, bool), Error>),
    Abandoned(u8),
}

/// One run that a first signal lets finish and a second abandons.
async fn guarded(settings: &RunSettings, signals: &mut Signals) -> Guarded {
    let run = async {
        let outcome = crate::run::run(settings).await?;
        Ok::<_, Error>(outcome.exit_code(settings.check))
    };
    tokio::pin!(run);
    let mut stopping = false;
    loop {
        tokio::select! {
            result = &mut run => return Guarded::Finished(result.map(|code| (code, stopping))),
            signo = signals.recv() => {
                if stopping {
                    tracing::warn!(signal = signo, "second signal: abandoning the run");
                    return Guarded::Abandoned(signo);
                }
                tracing::warn!(signal = signo, "finishing the current run, then stopping; send the signal again to abandon it");
                stopping = true;
            }
        }
    }
}
