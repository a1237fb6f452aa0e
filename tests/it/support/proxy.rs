//! A recording, fault-injecting reverse proxy (axum on 127.0.0.1:0) in front of a real
//! Prometheus: it can require headers (bearer token, basic auth, tenant header) and answer 401
//! without them, and serves a queue of faults, one per request, before passing requests
//! through: HTTP errors (with `Retry-After`), malformed or torn bodies, `NaN` values,
//! partial-data warnings and slow answers (client timeouts).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::Value;

/// What the proxy does to one request.
#[derive(Debug, Clone)]
pub enum Fault {
    /// Answer this status with a Prometheus-style error body, and `Retry-After` seconds.
    Status(u16, Option<u64>),
    /// Answer 200 with a body that is not JSON.
    Malformed,
    /// Pass through, but cut the body in half.
    Torn,
    /// Pass through, with every value of the first series replaced by `NaN`.
    NanValues,
    /// Pass through, adding a partial-data warning.
    Warning(&'static str),
    /// Wait this long before passing through.
    Slow(Duration),
}

/// One request as the proxy saw it.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub path: String,
    pub headers: HeaderMap,
    pub body: String,
}

struct Shared {
    upstream: String,
    http: reqwest::Client,
    required: Mutex<Vec<(String, String)>>,
    faults: Mutex<VecDeque<Fault>>,
    log: Mutex<Vec<Recorded>>,
}

pub struct Proxy {
    pub url: String,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Proxy {
    pub async fn start(upstream: &str) -> Proxy {
        rightsizer::install_crypto_provider();
        let shared = Arc::new(Shared {
            upstream: upstream.trim_end_matches('/').to_string(),
            http: reqwest::Client::new(),
            required: Mutex::new(Vec::new()),
            faults: Mutex::new(VecDeque::new()),
            log: Mutex::new(Vec::new()),
        });
        let app = axum::Router::new().fallback(handle).with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Proxy { url, shared, task }
    }

    /// Requests without this header value get 401.
    pub fn require(&self, name: &str, value: &str) {
        self.shared
            .required
            .lock()
            .unwrap()
            .push((name.to_lowercase(), value.to_string()));
    }

    /// Queues faults, served one per request, in order.
    pub fn inject(&self, faults: impl IntoIterator<Item = Fault>) {
        self.shared.faults.lock().unwrap().extend(faults);
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.shared.log.lock().unwrap().clone()
    }
}

fn error_body(status: u16, message: &str) -> String {
    serde_json::json!({"status": "error", "errorType": format!("http_{status}"), "error": message}).to_string()
}

async fn handle(State(s): State<Arc<Shared>>, req: Request) -> Response {
    let path = req.uri().path().to_string();
    let query = req.uri().query().map(str::to_string);
    let headers = req.headers().clone();
    let body = axum::body::to_bytes(req.into_body(), 1 << 20).await.unwrap_or_default();
    s.log.lock().unwrap().push(Recorded {
        path: path.clone(),
        headers: headers.clone(),
        body: String::from_utf8_lossy(&body).into_owned(),
    });
    let required = s.required.lock().unwrap().clone();
    for (name, value) in &required {
        if headers.get(name.as_str()).and_then(|v| v.to_str().ok()) != Some(value.as_str()) {
            return (
                StatusCode::UNAUTHORIZED,
                error_body(401, &format!("missing or wrong {name}")),
            )
                .into_response();
        }
    }
    let fault = s.faults.lock().unwrap().pop_front();
    match &fault {
        Some(Fault::Status(code, retry_after)) => {
            let mut r = (
                StatusCode::from_u16(*code).unwrap(),
                error_body(*code, "injected failure"),
            )
                .into_response();
            if let Some(secs) = retry_after {
                r.headers_mut().insert("retry-after", secs.to_string().parse().unwrap());
            }
            return r;
        }
        Some(Fault::Malformed) => return (StatusCode::OK, "<html>upstream hiccup</html>").into_response(),
        Some(Fault::Slow(d)) => tokio::time::sleep(*d).await,
        _ => {}
    }
    let mut url = format!("{}{path}", s.upstream);
    if let Some(q) = query {
        url = format!("{url}?{q}");
    }
    let mut upstream = s.http.post(url).body(body);
    if let Some(ct) = headers.get("content-type") {
        upstream = upstream.header("content-type", ct.to_str().unwrap());
    }
    let answer = upstream.send().await.expect("upstream prometheus answers");
    let status = answer.status().as_u16();
    let bytes: Bytes = answer.bytes().await.unwrap();
    let bytes = match fault {
        Some(Fault::Torn) => bytes.slice(..bytes.len() / 2),
        Some(Fault::NanValues) => rewrite(&bytes, |doc| {
            if let Some(first) = doc["data"]["result"].get_mut(0) {
                if let Some(values) = first["values"].as_array_mut() {
                    values.iter_mut().for_each(|p| p[1] = Value::from("NaN"));
                }
                if first.get("value").is_some() {
                    first["value"][1] = Value::from("NaN");
                }
            }
        }),
        Some(Fault::Warning(w)) => rewrite(&bytes, |doc| doc["warnings"] = serde_json::json!([w])),
        _ => bytes,
    };
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Body::from(bytes))
        .unwrap()
}

fn rewrite(bytes: &Bytes, f: impl FnOnce(&mut Value)) -> Bytes {
    let mut doc: Value = serde_json::from_slice(bytes).expect("prometheus json");
    f(&mut doc);
    Bytes::from(serde_json::to_vec(&doc).unwrap())
}
