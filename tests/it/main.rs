//! Integration tests, one binary (each test binary links all of kube): the real rightsizer
//! binary against a real Prometheus and Pushgateway and the fake Kubernetes API server.

mod agent;
mod backtest;
mod dashboard;
mod demo;
mod deploy;
mod discover;
mod emit_cluster;
mod emit_manifests;
mod emit_patches;
mod fake_api_tests;
mod fixed_point;
mod forge_fakes;
mod history;
mod hostile;
mod one_path;
mod outputs;
mod pull_request;
mod recommend_truth;
mod secrets;
mod slice;
mod snapshot_cmd;
mod support;
mod victoria;
