//! Test support: the fake Kubernetes API server and the real Prometheus/Pushgateway servers.

pub mod fake_api;
pub mod forge;
pub mod proxy;
pub mod serve;
pub mod servers;
pub mod victoria;
