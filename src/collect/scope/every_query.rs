//! Every request a run makes carries the selector: a recording fake Prometheus (axum on
//! 127.0.0.1:0) answers every query with one small series of the selected cluster, so the
//! whole plan runs (owners, CPU by remote read and by PromQL, short peaks, memory peaks,
//! restarts and OOM kills, CFS counters, HPA, kube-state-metrics discovery and labels, the
//! backtest's per-pod series), and every recorded PromQL query, `/api/v1/series` `match[]`
//! and remote-read body is checked for the matchers. The same fake then answers another
//! cluster's series, and the run stops instead of pooling them.

use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};

use super::Scope;
use crate::collect::filter::Filter;
use crate::collect::history::{self, Window};
use crate::collect::prometheus::{PromClient, PromConfig};
use crate::collect::selector::Selector;
use crate::collect::{Error, ksm, ksm_labels};

const SCOPE: &str = r#"cluster="a",env=~"prod|stage""#;
const END: i64 = 1_793_491_200;

/// One recorded request.
#[derive(Debug, Clone)]
enum Seen {
    /// A PromQL query (instant or range) or a `match[]` of `/api/v1/series`.
    PromQl(String),
    /// A remote-read request body (snappy literal of the protobuf).
    RemoteRead(Vec<u8>),
    /// `/api/v1/label/<name>/values`: deliberately unscoped (it lists what exists).
    LabelValues(String),
}

#[derive(Default)]
struct Fake {
    seen: Mutex<Vec<Seen>>,
    /// The `cluster` label of every answered series.
    cluster: Mutex<String>,
    /// Answer remote read (with an empty stream) instead of 404.
    remote_read: bool,
    /// HTTP requests.
    requests: std::sync::atomic::AtomicUsize,
}

fn form(text: &str) -> Vec<(String, String)> {
    url::form_urlencoded::parse(text.as_bytes()).into_owned().collect()
}

async fn handle(State(fake): State<Arc<Fake>>, req: Request) -> Response {
    fake.requests.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let path = req.uri().path().to_string();
    let query = req.uri().query().unwrap_or("").to_string();
    let body: Bytes = axum::body::to_bytes(req.into_body(), 1 << 20).await.unwrap();
    let cluster = fake.cluster.lock().unwrap().clone();
    let labels = format!(
        r#""namespace":"shop","pod":"web-1","container":"app","cluster":"{cluster}","env":"prod","owner_kind":"ReplicaSet","owner_name":"web-6d9f","replicaset":"web-6d9f","resource":"memory","horizontalpodautoscaler":"web","deployment":"web","label_app":"web""#
    );
    let json = |data: String| ([("content-type", "application/json")], data).into_response();
    let mut seen = fake.seen.lock().unwrap();
    match path.as_str() {
        "/api/v1/read" => {
            seen.push(Seen::RemoteRead(body.to_vec()));
            if fake.remote_read {
                let kind = crate::collect::remote_read::STREAMED_CONTENT_TYPE;
                ([("content-type", kind)], Vec::new()).into_response()
            } else {
                (axum::http::StatusCode::NOT_FOUND, "404 page not found").into_response()
            }
        }
        "/api/v1/series" => {
            for (k, v) in form(&String::from_utf8_lossy(&body)) {
                if k == "match[]" {
                    seen.push(Seen::PromQl(v));
                }
            }
            json(format!(
                r#"{{"status":"success","data":[{{"__name__":"kube_pod_owner",{labels}}}]}}"#
            ))
        }
        "/api/v1/query" | "/api/v1/query_range" => {
            let params = form(&String::from_utf8_lossy(&body));
            let get = |name: &str| {
                params
                    .iter()
                    .find(|(k, _)| k == name)
                    .map(|(_, v)| v.clone())
                    .unwrap_or_default()
            };
            seen.push(Seen::PromQl(get("query")));
            if path.ends_with("range") {
                let (start, step): (i64, i64) = (get("start").parse().unwrap(), get("step").parse().unwrap());
                json(format!(
                    r#"{{"status":"success","data":{{"resultType":"matrix","result":[{{"metric":{{{labels}}},"values":[[{start},"1"],[{},"2"]]}}]}}}}"#,
                    start + step
                ))
            } else {
                json(format!(
                    r#"{{"status":"success","data":{{"resultType":"vector","result":[{{"metric":{{{labels}}},"value":[{},"1"]}}]}}}}"#,
                    get("time")
                ))
            }
        }
        p if p.starts_with("/api/v1/label/") => {
            seen.push(Seen::LabelValues(format!("{p}?{query}")));
            json(r#"{"status":"success","data":["a"]}"#.into())
        }
        other => panic!("unexpected request {other}"),
    }
}

async fn serve(fake: Arc<Fake>) -> String {
    let app = axum::Router::new().fallback(handle).with_state(fake);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    url
}

fn client(url: &str, scope: &str) -> PromClient {
    let mut cfg = PromConfig::new(url.parse().unwrap());
    cfg.scope = if scope.is_empty() {
        Scope::default()
    } else {
        Scope::parse(scope).unwrap()
    };
    cfg.retries = 0;
    PromClient::new(&cfg).unwrap()
}

/// Where `query` leaves the scope out, if it does: every `{...}` selector must hold every
/// matcher, every metric name must open a selector (`kube_...{`), and every `by (...)` must
/// keep the equality labels.
fn unscoped_part(query: &str, scope: &Scope) -> Option<String> {
    let matchers: Vec<String> = scope.matchers().iter().map(ToString::to_string).collect();
    let chars: Vec<char> = query.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '{' {
            let mut j = i + 1;
            let mut quote = None;
            while j < chars.len() {
                match (quote, chars[j]) {
                    (Some(_), '\\') => j += 1,
                    (Some(q), c) if c == q => quote = None,
                    (None, '"' | '\'' | '`') => quote = Some(chars[j]),
                    (None, '}') => break,
                    _ => {}
                }
                j += 1;
            }
            let group: String = chars[i..=j.min(chars.len() - 1)].iter().collect();
            if let Some(m) = matchers.iter().find(|m| !group.contains(m.as_str())) {
                return Some(format!("selector {group} lacks {m}"));
            }
            i = j + 1;
        } else if c.is_ascii_alphabetic() || c == '_' {
            let start = i;
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            let is_metric = word.starts_with("kube_") || word.starts_with("container_");
            if is_metric && chars.get(i) != Some(&'{') {
                return Some(format!("metric {word} without a selector"));
            }
            if word == "by" {
                let rest: String = chars[i..].iter().collect();
                let group = &rest[..rest.find(')').unwrap_or(rest.len())];
                for m in scope.matchers().iter().filter(|m| m.op == super::Op::Eq) {
                    if !group.split([',', '(', ' ']).any(|l| l == m.name) {
                        return Some(format!("by{group}) drops {}", m.name));
                    }
                }
            }
        } else {
            i += 1;
        }
    }
    None
}

/// The protobuf `LabelMatcher` of a matcher inside a remote-read request.
fn encoded(m: &super::LabelMatcher) -> Vec<u8> {
    let mut out = Vec::new();
    let kind = match m.op {
        super::Op::Eq => 0,
        super::Op::Neq => 1,
        super::Op::Re => 2,
        super::Op::Nre => 3,
    };
    if kind != 0 {
        out.extend([0x08, kind]);
    }
    out.extend([0x12, m.name.len() as u8]);
    out.extend(m.name.as_bytes());
    out.extend([0x1a, m.value.len() as u8]);
    out.extend(m.value.as_bytes());
    out
}

fn check_all(seen: &[Seen], scope: &Scope) -> (usize, usize) {
    let (mut promql, mut remote) = (0, 0);
    for s in seen {
        match s {
            Seen::PromQl(q) => {
                promql += 1;
                if let Some(why) = unscoped_part(q, scope) {
                    panic!("{why} in {q}");
                }
            }
            Seen::RemoteRead(body) => {
                remote += 1;
                for m in scope.matchers() {
                    let want = encoded(m);
                    assert!(
                        body.windows(want.len()).any(|w| w == want.as_slice()),
                        "remote read without {m}"
                    );
                }
            }
            Seen::LabelValues(_) => {}
        }
    }
    (promql, remote)
}

#[test]
fn the_checker_finds_what_is_left_out() {
    let scope = Scope::parse(SCOPE).unwrap();
    let ok = scope.select("container_cpu_usage_seconds_total", r#"container!="""#);
    assert_eq!(
        unscoped_part(&format!("max by ({}) (rate({ok}[5m]))", scope.by("pod")), &scope),
        None
    );
    for bad in [
        "rate(container_cpu_usage_seconds_total[5m])",
        r#"kube_pod_owner{cluster="a"}"#,
        &format!("max by (pod) ({ok})"),
        r#"{__name__=~"a|b"}"#,
    ] {
        assert!(unscoped_part(bad, &scope).is_some(), "{bad}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_query_of_a_run_carries_the_selector() {
    let scope = Scope::parse(SCOPE).unwrap();
    let w = Window {
        end: END,
        length: 2 * 86_400,
        step: 300,
    };
    for remote_read in [false, true] {
        let fake = Arc::new(Fake {
            remote_read,
            cluster: Mutex::new("a".into()),
            ..Fake::default()
        });
        let url = serve(fake.clone()).await;
        let prom = client(&url, SCOPE);
        let owners = history::fetch_owners(&prom, &w).await.unwrap();
        let usage = history::fetch_usage(&prom, &w, &owners).await;
        ksm::discover(&prom, &w, &Filter::default()).await.unwrap();
        ksm_labels::fetch(&prom, &w, &Selector::parse("app=web").unwrap())
            .await
            .unwrap();
        let seen = fake.seen.lock().unwrap().clone();
        let (promql, remote) = check_all(&seen, &scope);
        if remote_read {
            // The empty remote-read answers leave no CPU series: the run says that nothing
            // matched, after listing the values (the one unscoped request).
            let e = usage.expect_err("no CPU series");
            assert!(matches!(e, Error::NoSeriesMatch { .. }), "{e}");
            assert!(e.to_string().contains(r#"the labels present are cluster="a""#), "{e}");
            assert_eq!(remote, 3, "two CPU chunks and the memory peaks by remote read");
            let probes: Vec<&String> = seen
                .iter()
                .filter_map(|s| match s {
                    Seen::LabelValues(q) => Some(q),
                    _ => None,
                })
                .collect();
            assert_eq!(probes.len(), 2, "cluster and env: {probes:?}");
            assert!(
                probes[0].starts_with("/api/v1/label/cluster/values?match%5B%5D=container_cpu_usage_seconds_total&"),
                "{probes:?}"
            );
        } else {
            usage.unwrap();
            assert_eq!(remote, 1, "one remote-read probe, then PromQL");
            assert!(
                seen.iter().all(|s| !matches!(s, Seen::LabelValues(_))),
                "label values only on the error path"
            );
        }
        let queries = prom.stats().queries.load(std::sync::atomic::Ordering::Relaxed) as usize;
        let requests = fake.requests.load(std::sync::atomic::Ordering::Relaxed);
        assert_eq!(queries, requests, "every request counted once");
        assert!(promql >= 30, "{promql} PromQL queries checked");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_backtest_queries_carry_the_selector() {
    let scope = Scope::parse(SCOPE).unwrap();
    let fake = Arc::new(Fake {
        cluster: Mutex::new("a".into()),
        ..Fake::default()
    });
    let url = serve(fake.clone()).await;
    let end = END.to_string();
    let settings = crate::settings::RunSettings::from_argv([
        "rightsizer",
        "backtest",
        "--prometheus-url",
        &url,
        "--prometheus-selector",
        SCOPE,
        "--no-kube-api",
        "--history",
        "2d",
        "--end",
        &end,
    ])
    .unwrap();
    let training = Window {
        end: END - 86_400,
        length: 2 * 86_400,
        step: 300,
    };
    let progress = crate::emit::progress::Progress::new(false);
    let _ = crate::backtest::backtest(&settings, training, 86_400, &progress).await;
    let seen = fake.seen.lock().unwrap().clone();
    let backtest_only = seen
        .iter()
        .filter(|s| matches!(s, Seen::PromQl(q) if q.contains("max by (namespace, pod, container, cluster) (rate(") || q.contains("last_terminated_reason{container!=\"\",reason=")))
        .count();
    assert!(backtest_only >= 3, "the backtest's own queries ran: {seen:#?}");
    check_all(&seen, &scope);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_that_ignores_the_selector_or_mixes_clusters_is_refused() {
    let w = Window {
        end: END,
        length: 2 * 86_400,
        step: 300,
    };
    let fake = Arc::new(Fake {
        cluster: Mutex::new("b".into()),
        ..Fake::default()
    });
    let url = serve(fake.clone()).await;
    // The store answers cluster b to a query for cluster a.
    let e = history::fetch_owners(&client(&url, SCOPE), &w).await.unwrap_err();
    let text = e.to_string();
    assert!(
        matches!(e, Error::SelectorIgnored { .. })
            && text.contains(r#"cluster="b""#)
            && text.contains(r#"matcher cluster="a""#),
        "{text}"
    );
    // No selector: cluster a's owners, then cluster b's CPU series in the same run.
    *fake.cluster.lock().unwrap() = "a".into();
    let prom = client(&url, "");
    let owners = history::fetch_owners(&prom, &w).await.unwrap();
    *fake.cluster.lock().unwrap() = "b".into();
    let e = history::fetch_usage(&prom, &w, &owners).await.unwrap_err();
    let text = e.to_string();
    assert!(matches!(e, Error::SeveralClusters { .. }), "{text}");
    assert!(
        text.contains(r#"cluster: "a", "b""#) && text.contains(r#"--prometheus-selector 'cluster="a"'"#),
        "{text}"
    );
}
