//! rightsizer: Kubernetes resource right-sizing from usage history.
//!
//! The pipeline, one module per stage: `collect` (Kubernetes API, Prometheus, snapshots) ->
//! `model` (pure data) -> `recommend` (pure maths) -> `emit` (reports and side effects).
//! Around it: `cli` (flags) -> `settings` (one typed model, every layer) -> `run` (the one
//! run) <- `agent` (schedule and signals). The history generator behind the demo, the tests
//! and the benchmarks is the development crate `crates/synth` (`rightsizer-synth`), not part
//! of this one.

pub mod agent;
pub mod atomic;
pub mod backtest;
pub mod cli;
pub mod collect;
pub mod emit;
pub mod model;
pub mod rbac;
pub mod recommend;
pub mod run;
pub mod schedule;
pub mod settings;

use thiserror::Error;

/// Every failure that ends a command, by stage. `main` prints the whole chain.
#[derive(Debug, Error)]
pub enum Error {
    #[error("{0}")]
    Config(String),
    #[error(transparent)]
    Collect(#[from] collect::Error),
    #[error(transparent)]
    Emit(#[from] emit::Error),
    #[error("failed to write {path}")]
    Write {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Installs the process-wide TLS provider (ring) shared by the kube and Prometheus clients.
/// Safe to call more than once.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}
