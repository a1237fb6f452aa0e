//! Test support: the fake Kubernetes API server and the real Prometheus/Pushgateway servers.

pub mod fake_api;
pub mod forge;
pub mod proxy;
pub mod serve;
pub mod servers;
pub mod victoria;

use std::path::Path;
use std::sync::OnceLock;

use servers::{DEMO_DAYS, DEMO_END};

/// The arguments of a live run over the demo history's window, to follow a subcommand: the
/// Prometheus at `prom`, the Kubernetes API of `kubeconfig`, `--history` and `--end`.
pub fn live_args<'a>(prom: &'a str, kubeconfig: &'a Path) -> [&'a str; 8] {
    static WINDOW: OnceLock<(String, String)> = OnceLock::new();
    let (history, end) = WINDOW.get_or_init(|| (format!("{DEMO_DAYS}d"), DEMO_END.to_string()));
    [
        "--prometheus-url",
        prom,
        "--kubeconfig",
        kubeconfig.to_str().unwrap(),
        "--history",
        history,
        "--end",
        end,
    ]
}
