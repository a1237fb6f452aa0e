//! Cluster outputs: annotations written through the fake API server (method, path, content
//! type, field manager and body of every PATCH; the spec untouched; nothing sent twice; RBAC
//! errors that say what to grant) and metrics pushed to a real Pushgateway, read back from the
//! real Prometheus that scrapes it.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use k8s_openapi::jiff::Timestamp;
use rightsizer::emit::PushTarget;
use rightsizer::emit::annotate::{Annotation, annotate, recommendation_json};
use rightsizer::emit::push::{ContainerMetrics, RunMetrics, exposition, push_metrics};
use rightsizer::model::{Resources, WorkloadKey, WorkloadKind};
use serde_json::json;

use crate::emit_patches::{changes, cron_job, deployment, stateful_set};
use crate::support::fake_api::FakeApi;
use crate::support::servers::{Prometheus, Pushgateway};

fn annotations(known: Option<BTreeMap<String, String>>) -> Vec<Annotation> {
    changes()
        .into_iter()
        .map(|change| Annotation {
            change,
            confidence: "high".into(),
            known_annotations: known.clone(),
        })
        .collect()
}

fn now() -> Timestamp {
    "2026-11-01T06:30:00Z".parse().unwrap()
}

#[tokio::test]
async fn emit_cluster_annotations_are_merge_patches_on_metadata_only() {
    let api = FakeApi::start().await;
    api.insert(deployment());
    api.insert(cron_job());
    api.insert(stateful_set());
    let before = api.get_object("apps", "deployments", Some("shop"), "web").unwrap();
    let client = api.client().await;
    let input = annotations(None);

    let report = annotate(&client, &input, now()).await;
    assert!(report.failed.is_empty(), "{:?}", report.failed);
    assert_eq!(report.annotated.len(), 3);
    let patches = api.patches();
    let paths: Vec<&str> = patches.iter().map(|p| p.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "/apis/apps/v1/namespaces/shop/deployments/web",
            "/apis/apps/v1/namespaces/data/statefulsets/db",
            "/apis/batch/v1/namespaces/shop/cronjobs/report",
        ]
    );
    let web = &patches[0];
    assert_eq!(web.content_type, "application/merge-patch+json");
    assert_eq!(web.field_manager.as_deref(), Some("rightsizer"));
    let json = r#"{"containers":[{"name":"app","cpuRequest":"250m","memoryRequest":"384Mi","memoryLimit":"384Mi"},{"name":"worker"},{"name":"migrate","role":"Init","cpuRequest":"100m"},{"name":"proxy","role":"Sidecar","cpuRequest":"50m","memoryRequest":"64Mi"}],"hpa":{"name":"web","minReplicas":3,"maxReplicas":8,"cpuUtilization":75}}"#;
    assert_eq!(recommendation_json(&input[0].change), json);
    assert_eq!(
        web.body,
        json!({ "metadata": { "annotations": {
            "rightsizer.dev/recommendation": json,
            "rightsizer.dev/updated-at": "2026-11-01T06:30:00Z",
            "rightsizer.dev/confidence": "high",
        } } })
    );
    assert!(api.requests().iter().all(|r| r.method == "GET" || r.method == "PATCH"));

    let after = api.get_object("apps", "deployments", Some("shop"), "web").unwrap();
    assert_eq!(after["spec"], before["spec"], "the spec is never touched");
    assert_eq!(after["metadata"]["annotations"]["rightsizer.dev/confidence"], "high");
    assert_eq!(after["metadata"]["generation"], before["metadata"]["generation"]);

    // Nothing new to say: no PATCH at all, whether the annotations come from a GET ...
    api.clear_records();
    let again = annotate(&client, &input, now()).await;
    assert_eq!(again.unchanged.len(), 3, "{again:?}");
    assert!(api.patches().is_empty(), "{:?}", api.patches());
    // ... or from discovery.
    let known: BTreeMap<String, String> = serde_json::from_value(after["metadata"]["annotations"].clone()).unwrap();
    let mut input = annotations(None);
    input[0].known_annotations = Some(known);
    api.clear_records();
    let again = annotate(&client, &input[..1], now()).await;
    assert_eq!(again.unchanged.len(), 1);
    assert!(api.requests().is_empty(), "{:?}", api.requests());
}

#[tokio::test]
async fn emit_cluster_transient_write_failures_are_retried_a_bounded_number_of_times() {
    let api = FakeApi::start().await;
    api.insert(deployment());
    api.insert(cron_job());
    // A 429 twice (priority and fairness), then the write goes through; a 503 that never
    // ends fails that workload after the bounded attempts, and the others still run.
    api.fail_next("/apis/apps/v1/namespaces/shop/deployments/web", 429, 2);
    api.fail_next("/apis/batch/v1/namespaces/shop/cronjobs/report", 503, 100);
    // The product's client: kube's own retry layer is off there, so only ours retries.
    let (client, _dir) = crate::discover::client(&api).await;
    let started = std::time::Instant::now();
    let report = annotate(&client, &annotations(Some(BTreeMap::new())), now()).await;
    assert!(
        report
            .annotated
            .contains(&WorkloadKey::new("shop", WorkloadKind::Deployment, "web")),
        "{report:?}"
    );
    let failed: Vec<String> = report.failed.iter().map(|(k, _)| k.to_string()).collect();
    assert!(failed.contains(&"shop/CronJob/report".to_string()), "{failed:?}");
    let cron_requests = api
        .requests()
        .iter()
        .filter(|r| r.path.contains("cronjobs/report"))
        .count();
    assert_eq!(
        cron_requests,
        rightsizer::emit::retry::ATTEMPTS as usize,
        "bounded attempts"
    );
    assert!(
        started.elapsed() < std::time::Duration::from_secs(15),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn emit_cluster_one_failed_workload_never_stops_the_others() {
    let api = FakeApi::start().await;
    api.insert(deployment());
    api.insert(cron_job());
    // No StatefulSet: a 404. Deployments may not be patched: a 403. The CronJob conflicts once.
    api.deny("patch", "apps", "deployments");
    api.fail_next("/apis/batch/v1/namespaces/shop/cronjobs/report", 409, 1);
    let client = api.client().await;
    let report = annotate(&client, &annotations(Some(BTreeMap::new())), now()).await;

    assert_eq!(
        report.annotated,
        [WorkloadKey::new("shop", WorkloadKind::CronJob, "report")]
    );
    let failed: BTreeMap<String, String> = report
        .failed
        .iter()
        .map(|(k, e)| (k.to_string(), format!("{e}")))
        .collect();
    assert_eq!(failed.len(), 2, "{failed:#?}");
    let forbidden = &failed["shop/Deployment/web"];
    assert!(
        forbidden.contains("cannot patch resource \"deployments\""),
        "{forbidden}"
    );
    assert!(
        forbidden.contains("rightsizer needs the RBAC permission `patch` on `deployments` (API group \"apps\")"),
        "{forbidden}"
    );
    assert_eq!(
        failed["data/StatefulSet/db"],
        "failed to patch data/StatefulSet/db through the kubernetes api"
    );
    let cron_patches = api.patches().iter().filter(|p| p.path.contains("cronjobs")).count();
    assert_eq!(cron_patches, 2, "the conflict is retried once");
}

fn metrics() -> RunMetrics {
    let web = WorkloadKey::new("shop", WorkloadKind::Deployment, "web");
    let res = |cpu, mem, mem_limit| Resources {
        cpu_request: Some(cpu),
        memory_request: Some(mem),
        cpu_limit: None,
        memory_limit: mem_limit,
    };
    RunMetrics {
        containers: vec![
            ContainerMetrics {
                workload: web.clone(),
                container: "app".into(),
                current: res(0.5, 536870912.0, Some(536870912.0)),
                recommended: res(0.25, 402653184.0, Some(402653184.0)),
                confidence: Some(0.9),
            },
            ContainerMetrics {
                workload: WorkloadKey::new("data", WorkloadKind::StatefulSet, "db"),
                container: "postgres".into(),
                current: Resources::default(),
                recommended: res(2.0, 4294967296.0, None),
                confidence: None,
            },
        ],
        savings_by_namespace: vec![("shop".into(), 12.5), ("data".into(), -3.25)],
        workloads_analysed: 3,
        workloads_skipped: 1,
        workloads_failed: 0,
        duration: Duration::from_millis(2500),
        finished_at: 1_793_520_000,
    }
}

/// A sample value in one spelling (Prometheus writes large numbers in exponent form).
fn number(text: &str) -> String {
    format!("{}", text.parse::<f64>().unwrap())
}

/// The sample lines of an exposition.
fn samples(text: &str) -> BTreeSet<String> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .map(str::to_string)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn emit_cluster_pushed_metrics_reach_prometheus() {
    let gateway = Pushgateway::start();
    let prom = Prometheus::start(None, std::slice::from_ref(&gateway.address));
    let grouping = vec![("cluster".to_string(), "prod/eu-1".to_string())];
    let metrics = metrics();
    let text = exposition(&metrics);
    assert!(
        text.contains("# HELP rightsizer_container_recommended_cpu_request_cores "),
        "{text}"
    );
    push_metrics(&PushTarget::new(&gateway.url, "rightsizer", grouping.clone()), &metrics)
        .await
        .unwrap();

    // Rebuild the exposition from what Prometheus scraped and compare sample by sample.
    let want = samples(&text);
    let result = crate::support::servers::scraped(&prom.url, "{__name__=~\"rightsizer_.*\"}", want.len()).await;
    let mut got = BTreeSet::new();
    for s in &result {
        let m = s["metric"].as_object().unwrap();
        assert_eq!(m["job"], "rightsizer");
        assert_eq!(m["cluster"], "prod/eu-1");
        let labels: Vec<String> = m
            .iter()
            .filter(|(k, _)| !["__name__", "job", "cluster", "instance"].contains(&k.as_str()))
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        got.insert((
            m["__name__"].as_str().unwrap().to_string(),
            labels,
            number(s["value"][1].as_str().unwrap()),
        ));
    }
    let want: BTreeSet<_> = want
        .iter()
        .map(|line| {
            let (series, value) = line.rsplit_once(' ').unwrap();
            let (name, labels) = series.split_once('{').unwrap_or((series, "}"));
            let mut labels: Vec<String> = labels
                .trim_end_matches('}')
                .split(',')
                .filter(|l| !l.is_empty())
                .map(|l| {
                    let (k, v) = l.split_once('=').unwrap();
                    format!("{k}={v}")
                })
                .collect();
            labels.sort();
            (name.to_string(), labels, number(value))
        })
        .collect();
    assert_eq!(got, want);
}

#[tokio::test]
async fn emit_cluster_push_retries_server_errors() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    let calls = Arc::new(AtomicUsize::new(0));
    let seen = calls.clone();
    let app = axum::Router::new().fallback(move |req: axum::extract::Request| {
        let seen = seen.clone();
        async move {
            assert_eq!(req.method(), "PUT");
            assert_eq!(req.uri().path(), "/metrics/job/rightsizer/cluster/prod");
            if seen.fetch_add(1, Ordering::SeqCst) == 0 {
                (axum::http::StatusCode::SERVICE_UNAVAILABLE, "busy")
            } else {
                (axum::http::StatusCode::OK, "")
            }
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let grouping = vec![("cluster".to_string(), "prod".to_string())];
    push_metrics(&PushTarget::new(&url, "rightsizer", grouping), &metrics())
        .await
        .unwrap();
    assert_eq!(calls.load(Ordering::SeqCst), 2);
}

/// `--apply` leaves bare Jobs out (their pod template is immutable: a patch is a 422), and a
/// new request above the live object's limit raises that limit in the same patch.
#[tokio::test]
async fn emit_cluster_apply_leaves_bare_jobs_out_and_fits_limits_to_the_live_object() {
    use rightsizer::emit::apply::apply;
    use rightsizer::model::{ContainerRole, ContainerSpec, Workload};
    const MI: f64 = 1024.0 * 1024.0;
    let api = FakeApi::start().await;
    api.insert(deployment());
    api.insert(crate::emit_patches::hpa());
    let job: k8s_openapi::api::batch::v1::Job = serde_json::from_value(json!({
        "metadata": { "name": "backfill", "namespace": "batch" },
        "spec": { "template": { "spec": { "restartPolicy": "Never",
            "containers": [{ "name": "backfill", "image": "b:1", "resources": { "requests": { "cpu": "1" } } }] } } },
    }))
    .unwrap();
    api.insert(job);
    let client = api.client().await;
    let mut web = changes()[0].clone();
    web.containers[0].recommended.memory_request = Some(600.0 * MI);
    web.containers[0].recommended.memory_limit = None;
    let mut backfill = changes()[2].clone();
    backfill.key = WorkloadKey::new("batch", WorkloadKind::Job, "backfill");
    backfill.containers[0].name = "backfill".into();
    let live = Workload {
        key: web.key.clone(),
        replicas: Some(2),
        containers: vec![ContainerSpec {
            name: "app".into(),
            role: ContainerRole::App,
            resources: Resources {
                cpu_request: Some(0.5),
                memory_request: Some(512.0 * MI),
                memory_limit: Some(512.0 * MI),
                cpu_limit: None,
            },
        }],
        hpa: None,
        labels: BTreeMap::new(),
        annotations: BTreeMap::new(),
    };
    let workloads = BTreeMap::from([(live.key.clone(), &live)]);
    let report = apply(&client, &[web.clone(), backfill], &workloads, &BTreeMap::new(), false).await;
    assert!(report.failed.is_empty(), "{:?}", report.failed);
    assert_eq!(report.applied, [web.key]);
    assert_eq!(report.refused.len(), 1, "{:?}", report.refused);
    assert!(report.refused[0].1.contains("immutable"), "{:?}", report.refused);
    assert!(
        !api.patches().iter().any(|p| p.path.contains("/jobs/")),
        "no PATCH may reach a bare Job: {:?}",
        api.patches()
    );
    let deployed = api.get_object("apps", "deployments", Some("shop"), "web").unwrap();
    let app = &deployed["spec"]["template"]["spec"]["containers"][0]["resources"];
    assert_eq!(app["requests"]["memory"], "600Mi");
    assert_eq!(app["limits"]["memory"], "600Mi", "the limit follows the request: {app}");
}
