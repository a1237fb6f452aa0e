//! Tests of the fake API server itself, each through a real `kube::Client` built from the
//! kubeconfig it writes: if these hold, tests of the collectors and emitters against it
//! exercise the same requests and replies as against a cluster. Reads (lists, pages,
//! selectors, errors, dynamic kinds, discovery) are in `reads.rs`, writes in `writes.rs`.

mod reads;
mod writes;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Namespace, Pod};
use kube::api::{ApiResource, GroupVersionKind};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::fake_api::FakeApi;

pub(super) fn namespace(name: &str) -> Namespace {
    serde_json::from_value(json!({ "apiVersion": "v1", "kind": "Namespace", "metadata": { "name": name } }))
        .expect("valid namespace")
}

pub(super) fn pod(ns: &str, name: &str, labels: Value) -> Pod {
    serde_json::from_value(json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": { "name": name, "namespace": ns, "labels": labels },
        "spec": { "containers": [{ "name": "app", "image": "app:1" }] },
    }))
    .expect("valid pod")
}

/// A Deployment with two containers: `app` (requests 500m / 256Mi) and `sidecar`.
pub(super) fn deployment(ns: &str, name: &str) -> Deployment {
    serde_json::from_value(json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": { "name": name, "namespace": ns, "generation": 1 },
        "spec": {
            "replicas": 2,
            "selector": { "matchLabels": { "app": name } },
            "template": {
                "metadata": { "labels": { "app": name } },
                "spec": { "containers": [
                    { "name": "app", "image": "app:1", "resources": { "requests": { "cpu": "500m", "memory": "256Mi" } } },
                    { "name": "sidecar", "image": "proxy:1" },
                ] },
            },
        },
    }))
    .expect("valid deployment")
}

pub(super) fn vpa_resource() -> ApiResource {
    let gvk = GroupVersionKind::gvk("autoscaling.k8s.io", "v1", "VerticalPodAutoscaler");
    ApiResource::from_gvk_with_plural(&gvk, "verticalpodautoscalers")
}

pub(super) fn insert_vpa(api: &FakeApi, ns: &str, name: &str, cpu: &str) {
    api.insert_dynamic(
        "autoscaling.k8s.io",
        "v1",
        "VerticalPodAutoscaler",
        "verticalpodautoscalers",
        true,
        json!({
            "metadata": { "name": name, "namespace": ns },
            "spec": { "targetRef": { "apiVersion": "apps/v1", "kind": "Deployment", "name": name } },
            "status": { "recommendation": { "containerRecommendations": [
                { "containerName": "app", "target": { "cpu": cpu, "memory": "300Mi" } },
            ] } },
        }),
    );
}

/// The `Status` of a request that must fail with an API error.
pub(super) fn api_status<T>(result: kube::Result<T>) -> kube::core::Status {
    match result {
        Err(kube::Error::Api(status)) => *status,
        Err(other) => panic!("expected an API status error, got {other}"),
        Ok(_) => panic!("expected an API status error, got success"),
    }
}

/// A raw HTTP/1.1 exchange, for what the kube client hides (headers, retries):
/// returns status code, header block and body.
pub(super) async fn raw(api: &FakeApi, method: &str, path: &str) -> (u16, String, Value) {
    let addr = api.url().trim_start_matches("http://").to_string();
    let mut stream = tokio::net::TcpStream::connect(&addr)
        .await
        .expect("connect to fake api");
    let request = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.expect("write request");
    let mut response = String::new();
    stream.read_to_string(&mut response).await.expect("read response");
    let (head, body) = response.split_once("\r\n\r\n").expect("http response");
    let code = head[9..12].parse().expect("status code");
    (code, head.to_string(), serde_json::from_str(body).expect("json body"))
}
