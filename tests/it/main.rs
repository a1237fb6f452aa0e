//! Integration tests, one binary (each test binary links all of kube): the real rightsizer
//! binary against a real Prometheus and Pushgateway and the fake Kubernetes API server.

mod demo;
mod fake_api_tests;
mod slice;
mod support;
