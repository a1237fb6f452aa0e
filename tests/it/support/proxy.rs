//! A recording, fault-injecting reverse proxy (axum on 127.0.0.1:0) in front of a real
//! Prometheus: it can require headers (bearer token, basic auth, tenant header) and answer 401
//! without them, and serves a queue of faults, one per request, before passing requests
//! through: HTTP errors (with `Retry-After`), malformed or torn bodies, `NaN` values,
//! partial-data warnings and slow answers (client timeouts). For hostile-input tests it can
//! also cut a body mid-stream (the connection drops before `Content-Length` bytes), trickle
//! one byte at a time, loop (an answer that never ends), inflate (one label value of any
//! size, streamed, never held) and inject raw bytes or thousands of warnings.

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
    /// Pass through, announcing the whole length but dropping the connection halfway.
    Cut,
    /// Pass through, one byte per interval.
    Trickle(Duration),
    /// Answer 200 with an instant vector that never ends (a new series per element).
    Endless,
    /// Answer 200 with one series whose `pod` label value is this many bytes long.
    HugeLabel(u64),
    /// Answer 200 with this many `kube_pod_owner`-like series (a dozen labels each).
    ManySeries(u64),
    /// Pass through, adding this many distinct partial-data warnings.
    Warnings(usize),
    /// Answer 200 with these bytes and this content type.
    Raw(&'static str, Vec<u8>),
}

type Chunks = futures::stream::BoxStream<'static, Result<Bytes, std::io::Error>>;

/// A body made of `chunks`, with `Content-Length` when given.
fn streamed(content_type: &str, length: Option<usize>, chunks: Chunks) -> Response {
    let mut r = Response::builder().status(200).header("content-type", content_type);
    if let Some(n) = length {
        r = r.header("content-length", n);
    }
    r.body(Body::from_stream(chunks)).unwrap()
}

/// An endless instant vector: series `{pod="p<i>"}` for i = 0, 1, 2, ...
fn endless() -> Chunks {
    use futures::StreamExt;
    let head = futures::stream::once(async {
        Ok(Bytes::from_static(
            br#"{"status":"success","data":{"resultType":"vector","result":["#,
        ))
    });
    let series = futures::stream::unfold(0u64, |i| async move {
        let mut chunk = String::with_capacity(64 << 10);
        let mut j = i;
        while chunk.len() < (64 << 10) - 100 {
            chunk.push_str(&format!(r#"{{"metric":{{"pod":"p{j}"}},"value":[1,"1"]}},"#));
            j += 1;
        }
        Some((Ok(Bytes::from(chunk)), j))
    });
    head.chain(series).boxed()
}

/// An instant vector of `n` series shaped like kube-state-metrics' `kube_pod_owner`, in
/// chunks of about 64 KiB.
fn many_series(n: u64) -> Chunks {
    use futures::StreamExt;
    let head = futures::stream::once(async {
        Ok(Bytes::from_static(
            br#"{"status":"success","data":{"resultType":"vector","result":["#,
        ))
    });
    let series = futures::stream::unfold(0u64, move |i| async move {
        if i >= n {
            return None;
        }
        let mut chunk = String::with_capacity(64 << 10);
        let mut j = i;
        while j < n && chunk.len() < (64 << 10) - 600 {
            let comma = if j + 1 < n { "," } else { "" };
            chunk.push_str(&format!(
                r#"{{"metric":{{"__name__":"kube_pod_owner","container":"kube-state-metrics","endpoint":"http","instance":"10.0.0.1:8080","job":"kube-state-metrics","namespace":"ns-{}","owner_is_controller":"true","owner_kind":"ReplicaSet","owner_name":"app-{j}-5d8f7c9b4","pod":"app-{j}-5d8f7c9b4-x7k2p","service":"kube-state-metrics","uid":"3f1e2d4c-{j:08}-4b5a-9c8d-7e6f5a4b3c2d"}},"value":[1793491200,"1"]}}{comma}"#,
                j % 50
            ));
            j += 1;
        }
        Some((Ok(Bytes::from(chunk)), j))
    });
    let tail = futures::stream::once(async { Ok(Bytes::from_static(b"]}}")) });
    head.chain(series).chain(tail).boxed()
}

/// One series whose `pod` label value is `n` bytes of `x`, in 64 KiB chunks.
fn huge_label(n: u64) -> Chunks {
    use futures::StreamExt;
    const CHUNK: u64 = 64 << 10;
    let head = futures::stream::once(async {
        Ok(Bytes::from_static(
            br#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{"pod":""#,
        ))
    });
    let block = Bytes::from(vec![b'x'; CHUNK as usize]);
    let body = futures::stream::unfold(n, move |left| {
        let block = block.clone();
        async move { (left > 0).then(|| (Ok(block.slice(..left.min(CHUNK) as usize)), left - left.min(CHUNK))) }
    });
    let tail = futures::stream::once(async { Ok(Bytes::from_static(br#""},"value":[1,"1"]}]}}"#)) });
    head.chain(body).chain(tail).boxed()
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
    /// Faults for requests to one path, served before the general queue.
    routed: Mutex<Vec<(String, VecDeque<Fault>)>>,
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
            routed: Mutex::new(Vec::new()),
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

    /// Queues faults for requests to `path` only (e.g. `/api/v1/read`), served one per such
    /// request, in order, before the general queue.
    pub fn inject_on(&self, path: &str, faults: impl IntoIterator<Item = Fault>) {
        self.shared
            .routed
            .lock()
            .unwrap()
            .push((path.to_string(), faults.into_iter().collect()));
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
    let routed = s
        .routed
        .lock()
        .unwrap()
        .iter_mut()
        .find(|(p, q)| *p == path && !q.is_empty())
        .and_then(|(_, q)| q.pop_front());
    let fault = routed.or_else(|| s.faults.lock().unwrap().pop_front());
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
        Some(Fault::Endless) => return streamed("application/json", None, endless()),
        Some(Fault::HugeLabel(n)) => return streamed("application/json", None, huge_label(*n)),
        Some(Fault::ManySeries(n)) => return streamed("application/json", None, many_series(*n)),
        Some(Fault::Raw(content_type, bytes)) => {
            let chunk = Bytes::from(bytes.clone());
            let chunks = futures::stream::once(async move { Ok(chunk) });
            return streamed(content_type, Some(bytes.len()), Box::pin(chunks));
        }
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
        Some(Fault::Warnings(n)) => rewrite(&bytes, |doc| {
            let many: Vec<String> = (0..n).map(|i| format!("store {i} did not answer")).collect();
            doc["warnings"] = serde_json::json!(many);
        }),
        Some(Fault::Cut) => {
            let half = bytes.slice(..bytes.len() / 2);
            let chunks =
                futures::stream::iter([Ok(half), Err(std::io::Error::other("the proxy drops the connection"))]);
            return streamed("application/json", Some(bytes.len()), Box::pin(chunks));
        }
        Some(Fault::Trickle(every)) => {
            let chunks = futures::stream::unfold(0usize, move |i| {
                let bytes = bytes.clone();
                async move {
                    if i >= bytes.len() {
                        return None;
                    }
                    tokio::time::sleep(every).await;
                    Some((Ok(bytes.slice(i..i + 1)), i + 1))
                }
            });
            return streamed("application/json", None, Box::pin(chunks));
        }
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
