//! Discovery against the fake API server (through a kubeconfig, as against a cluster): every
//! workload kind, owner chains of live and churned pods, HPAs, VPAs, filters, pagination, RBAC
//! errors, contexts, the metrics API, the kube-state-metrics fallback against a real
//! Prometheus, and the table of API calls.

use std::collections::BTreeSet;

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment};
use k8s_openapi::api::core::v1::Pod;
use rightsizer::collect::cluster::{self as cluster, API_CALLS, KubeTarget};
use rightsizer::collect::filter::Filter;
use rightsizer::collect::history::Window;
use rightsizer::collect::objects::Discovered;
use rightsizer::collect::prometheus::{PromClient, PromConfig};
use rightsizer::collect::{Error, ksm, metrics_api, objects};
use rightsizer::model::{ContainerKey, ContainerRole, WorkloadKey, WorkloadKind};
use rightsizer_synth::{Cluster, ClusterSpec};
use serde_json::json;

use crate::slice::rightsizer;
use crate::support::fake_api::FakeApi;
use crate::support::servers::{DEMO_DAYS, DEMO_END, Prometheus, demo_history};

/// The client as the product builds it (`collect::cluster::client`: kube's own retry layer off).
pub(crate) async fn client(api: &FakeApi) -> (kube::Client, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let target = KubeTarget {
        kubeconfig: Some(api.write_kubeconfig(dir.path())),
        context: None,
    };
    (cluster::client(&target).await.expect("client from kubeconfig"), dir)
}

/// Discovery through the API, then the filter as the run applies it to every input.
async fn discover(api: &FakeApi, filter: &Filter) -> Result<Discovered, Error> {
    let (client, _dir) = client(api).await;
    let mut d = cluster::discover(&client, filter).await?;
    let (kept, skipped) = filter.apply(std::mem::take(&mut d.workloads));
    d.workloads = kept;
    d.skipped = skipped;
    Ok(d)
}

fn keys(d: &Discovered) -> Vec<String> {
    d.workloads.iter().map(|w| w.key.to_string()).collect()
}

fn key(ns: &str, kind: WorkloadKind, name: &str) -> WorkloadKey {
    WorkloadKey::new(ns, kind, name)
}

/// The requests the server saw, as (group, resource, verb), all in `API_CALLS`.
fn assert_calls_are_declared(api: &FakeApi) -> BTreeSet<(String, String, String)> {
    let seen: BTreeSet<(String, String, String)> = api
        .requests()
        .into_iter()
        .filter(|r| !r.resource.is_empty())
        .map(|r| (r.group, r.resource, r.verb))
        .collect();
    for (group, resource, verb) in &seen {
        let declared = API_CALLS
            .iter()
            .any(|c| (c.group, c.resource, c.verb) == (group.as_str(), resource.as_str(), verb.as_str()));
        assert!(declared, "{verb} {group}/{resource} is not in API_CALLS");
    }
    seen
}

fn pod(ns: &str, name: &str, owner: Option<(&str, &str)>) -> Pod {
    let mut meta = json!({"name": name, "namespace": ns});
    if let Some((kind, owner)) = owner {
        meta["ownerReferences"] =
            json!([{"apiVersion": "apps/v1", "kind": kind, "name": owner, "uid": "x", "controller": true}]);
    }
    serde_json::from_value(json!({"metadata": meta, "spec": {"containers": [
        {"name": "shell", "resources": {"requests": {"cpu": "50m", "memory": "64Mi"}}}
    ]}}))
    .unwrap()
}

fn demo() -> &'static Cluster {
    &demo_history().0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_kind_with_owners_hpas_and_declared_calls() {
    let cluster = demo();
    let api = FakeApi::start().await;
    api.load(cluster);
    // A pod of an old ReplicaSet still terminating after a rollout, and a bare debug pod.
    let old_rs = cluster
        .objects
        .replica_sets
        .iter()
        .find(|r| r.metadata.name.as_deref().unwrap().starts_with("web-"));
    let old_rs = old_rs.unwrap().metadata.name.clone().unwrap();
    api.insert(pod("shop", "web-old-1", Some(("ReplicaSet", &old_rs))));
    api.insert(pod("shop", "debug", None));

    let d = discover(&api, &Filter::default()).await.unwrap();
    let (mut expected, _) = objects::workloads(&rightsizer_synth::export::objects_of(cluster));
    let debug = key("shop", WorkloadKind::Pod, "debug");
    let found = d
        .workloads
        .iter()
        .find(|w| w.key == debug)
        .expect("bare pod discovered");
    assert_eq!(found.containers[0].resources.cpu_request, Some(0.05));
    expected.push(found.clone());
    expected.sort_by(|a, b| a.key.cmp(&b.key));
    assert_eq!(
        d.workloads, expected,
        "discovery differs from the objects' own conversion"
    );
    let kinds: BTreeSet<WorkloadKind> = d.workloads.iter().map(|w| w.key.kind).collect();
    assert_eq!(kinds.len(), WorkloadKind::ALL.len(), "{kinds:?}");
    assert!(d.warnings.is_empty(), "{:?}", d.warnings);

    let web = d
        .workloads
        .iter()
        .find(|w| w.key == key("shop", WorkloadKind::Deployment, "web"))
        .unwrap();
    assert_eq!(web.container("migrate").unwrap().role, ContainerRole::Init);
    assert_eq!(web.replicas, Some(3));
    let api_hpa = d
        .workloads
        .iter()
        .find(|w| w.key.name == "api")
        .unwrap()
        .hpa
        .clone()
        .unwrap();
    assert_eq!((api_hpa.min_replicas, api_hpa.max_replicas), (2, 10));

    // Every live pod resolves to its workload, the churned one included.
    let owners = d.owners.owners();
    let truth: std::collections::HashMap<(String, String), WorkloadKey> = cluster
        .all_pods()
        .into_iter()
        .map(|(ns, p, _, k)| ((ns, p), k))
        .collect();
    for p in &cluster.objects.pods {
        let (ns, name) = (p.metadata.namespace.clone().unwrap(), p.metadata.name.clone().unwrap());
        assert_eq!(
            owners.resolve(&ns, &name),
            truth[&(ns.clone(), name.clone())],
            "{ns}/{name}"
        );
    }
    assert_eq!(owners.resolve("shop", "web-old-1"), web.key);
    assert_eq!(d.owners.pods(), cluster.objects.pods.len() + 1);

    // No VPA CRD: a 404, no VPAs, no warning.
    assert!(d.vpa.is_empty());
    let vpa_404 = api
        .requests()
        .iter()
        .any(|r| r.resource == "verticalpodautoscalers" && r.status == 404);
    assert!(vpa_404, "the VPA list was not tried");

    // The metrics API: current usage per workload x container over the live pods.
    let (client, _dir) = client(&api).await;
    let (current, warnings) = metrics_api::fetch(&client, &[], &owners).await;
    assert!(warnings.is_empty(), "{warnings:?}");
    let app = &current[&ContainerKey::new(web.key.clone(), "app")];
    let live_web = cluster
        .objects
        .pod_metrics
        .iter()
        .filter(|m| m["metadata"]["namespace"] == "shop")
        .filter(|m| owners.resolve("shop", m["metadata"]["name"].as_str().unwrap()) == web.key);
    assert_eq!(app.pods as usize, live_web.count());
    assert!(
        app.cpu_sum >= app.cpu_max && app.cpu_max > 0.0 && app.memory_max > 0.0,
        "{app:?}"
    );

    let seen = assert_calls_are_declared(&api);
    eprintln!("{} distinct calls, {} requests", seen.len(), api.requests().len());
    assert!(seen.iter().any(|(g, r, _)| g == "metrics.k8s.io" && r == "pods"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vpas_in_active_modes_flag_their_workloads() {
    let cluster = demo();
    let api = FakeApi::start().await;
    api.load(cluster);
    for (target, mode) in [("web", "Auto"), ("cart", "Off"), ("api", "InPlaceOrRecreate")] {
        api.insert_vpa("shop", &format!("{target}-vpa"), target, mode);
    }
    let d = discover(&api, &Filter::default()).await.unwrap();
    let got: Vec<(String, String)> = d.vpa.iter().map(|(k, m)| (k.to_string(), m.clone())).collect();
    assert_eq!(
        got,
        [
            ("shop/Deployment/api".to_string(), "InPlaceOrRecreate".to_string()),
            ("shop/Deployment/web".to_string(), "Auto".to_string())
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filters_namespaces_selector_kinds_and_the_ignore_annotation() {
    let cluster = demo();
    let api = FakeApi::start().await;
    api.load(cluster);
    let mut proxy: DaemonSet = cluster.objects.daemon_sets[0].clone();
    proxy.metadata.namespace = Some("kube-system".into());
    proxy.metadata.name = Some("kube-proxy".into());
    api.insert(proxy);
    let mut legacy: Deployment = cluster.objects.deployments[0].clone();
    legacy.metadata.name = Some("legacy".into());
    legacy.metadata.annotations = Some([("rightsizer.dev/ignore".to_string(), "true".to_string())].into());
    api.insert(legacy);

    let all = discover(&api, &Filter::default()).await.unwrap();
    assert!(
        !keys(&all).iter().any(|k| k.starts_with("kube-system/")),
        "{:?}",
        keys(&all)
    );
    assert_eq!(all.skipped.len(), 1);
    assert_eq!(all.skipped[0].key, key("shop", WorkloadKind::Deployment, "legacy"));
    assert!(
        all.skipped[0].reason.contains("rightsizer.dev/ignore"),
        "{}",
        all.skipped[0].reason
    );

    let system = Filter {
        include_system_namespaces: true,
        ..Filter::default()
    };
    let with_system = discover(&api, &system).await.unwrap();
    assert!(keys(&with_system).contains(&"kube-system/DaemonSet/kube-proxy".to_string()));

    let namespaces = |d: &Discovered| {
        d.workloads
            .iter()
            .map(|w| w.key.namespace.clone())
            .collect::<BTreeSet<_>>()
    };
    let shop = Filter {
        namespaces: vec!["shop".into(), "kube-system".into()],
        ..Filter::default()
    };
    assert_eq!(
        namespaces(&discover(&api, &shop).await.unwrap()),
        ["kube-system".to_string(), "shop".to_string()].into()
    );
    let not_shop = Filter {
        exclude_namespaces: vec!["shop".into()],
        ..Filter::default()
    };
    assert_eq!(
        namespaces(&discover(&api, &not_shop).await.unwrap()),
        ["batch".to_string(), "data".to_string(), "platform".to_string()].into()
    );

    api.clear_records();
    let selected = Filter {
        selector: Some(
            rightsizer::collect::selector::Selector::parse("app.kubernetes.io/name in (web,postgres)").unwrap(),
        ),
        ..Filter::default()
    };
    let d = discover(&api, &selected).await.unwrap();
    assert_eq!(keys(&d), ["data/StatefulSet/postgres", "shop/Deployment/web"]);
    assert!(
        api.requests()
            .iter()
            .any(|r| r.resource == "deployments" && r.query.contains("labelSelector="))
    );

    api.clear_records();
    let kinds = Filter {
        kinds: vec![WorkloadKind::StatefulSet, WorkloadKind::CronJob],
        ..Filter::default()
    };
    let d = discover(&api, &kinds).await.unwrap();
    assert_eq!(
        keys(&d),
        [
            "batch/CronJob/cleanup",
            "batch/CronJob/report",
            "data/StatefulSet/postgres",
            "data/StatefulSet/redis"
        ]
    );
    assert!(
        !api.requests()
            .iter()
            .any(|r| r.resource == "deployments" || r.resource == "daemonsets")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_of_two_list_everything_once() {
    let cluster = rightsizer_synth::generate(ClusterSpec::generated(60, 7, DEMO_END, 86_400));
    let api = FakeApi::start().await;
    api.load(&cluster);
    let whole = discover(&api, &Filter::default()).await.unwrap();
    api.clear_records();
    api.set_page_size_cap(Some(2));
    let paged = discover(&api, &Filter::default()).await.unwrap();
    assert_eq!(paged.workloads, whole.workloads);
    assert_eq!(paged.owners, whole.owners);
    assert_eq!(paged.workloads.len(), 60, "{:?}", keys(&paged));
    let unique: BTreeSet<_> = paged.workloads.iter().map(|w| &w.key).collect();
    assert_eq!(unique.len(), paged.workloads.len());
    let pages = api.requests().iter().filter(|r| r.query.contains("continue=")).count();
    assert!(pages > 100, "only {pages} continued pages");
    eprintln!(
        "60 workloads, {} pods: {} list requests with pages of 2",
        cluster.objects.pods.len(),
        api.requests().len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forbidden_names_the_permission_and_one_namespace_does_not_stop_the_others() {
    let api = FakeApi::start().await;
    api.load(demo());
    api.deny("list", "", "pods");
    let err = discover(&api, &Filter::default()).await.unwrap_err().to_string();
    assert!(
        err.contains("RBAC permission `list` on `pods` (API group \"\")"),
        "{err}"
    );

    let api = FakeApi::start().await;
    api.load(demo());
    api.fail_next("/apis/apps/v1/namespaces/data/", 403, 100);
    let two = Filter {
        namespaces: vec!["shop".into(), "data".into()],
        ..Filter::default()
    };
    let d = discover(&api, &two).await.unwrap();
    assert!(
        keys(&d).iter().all(|k| k.starts_with("shop/")) && keys(&d).len() >= 6,
        "{:?}",
        keys(&d)
    );
    assert!(
        d.warnings
            .iter()
            .any(|w| w.starts_with("namespace data skipped") && w.contains("`list` on `statefulsets`")),
        "{:?}",
        d.warnings
    );

    api.fail_next("/apis/apps/v1/namespaces/shop/", 404, 100);
    let err = discover(&api, &two).await.unwrap_err();
    assert_eq!(
        cluster::status_code(&err).map(|c| c == 403 || c == 404),
        Some(true),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn context_selects_the_cluster() {
    let api = FakeApi::start().await;
    api.load(demo());
    let dir = tempfile::tempdir().unwrap();
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let text = std::fs::read_to_string(api.write_kubeconfig(dir.path())).unwrap();
    let text = text
        .replace(
            "clusters:\n",
            &format!("clusters:\n- name: dead\n  cluster:\n    server: http://127.0.0.1:{dead}\n"),
        )
        .replace(
            "contexts:\n",
            "contexts:\n- name: dead\n  context:\n    cluster: dead\n    user: fake\n",
        )
        .replace("current-context: fake", "current-context: dead");
    let path = dir.path().join("two-contexts");
    std::fs::write(&path, text).unwrap();
    let target = |context: Option<&str>| KubeTarget {
        kubeconfig: Some(path.clone()),
        context: context.map(String::from),
    };
    let client = cluster::client(&target(Some("fake"))).await.unwrap();
    assert!(
        !cluster::discover(&client, &Filter::default())
            .await
            .unwrap()
            .workloads
            .is_empty()
    );
    let client = cluster::client(&target(None)).await.unwrap();
    let err = cluster::discover(&client, &Filter::default()).await.unwrap_err();
    assert!(
        cluster::chain(&err).contains("failed to list"),
        "{}",
        cluster::chain(&err)
    );
    let missing = match cluster::client(&target(Some("nope"))).await {
        Ok(_) => panic!("an unknown context was accepted"),
        Err(e) => e.to_string(),
    };
    assert!(missing.contains("nope"), "{missing}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_metrics_server_is_a_warning_with_a_hint() {
    let api = FakeApi::start().await;
    let cluster = demo();
    for d in &cluster.objects.deployments {
        api.insert(d.clone());
    }
    let (client, _dir) = client(&api).await;
    let (current, warnings) = metrics_api::fetch(&client, &["shop".into(), "data".into()], &Default::default()).await;
    assert!(current.is_empty());
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(
        warnings[0].contains("hint: is metrics-server installed?"),
        "{}",
        warnings[0]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kube_state_metrics_fallback_matches_the_api() {
    let (cluster, tsdb) = demo_history();
    let prom = Prometheus::start(Some(tsdb), &[]);
    let api = FakeApi::start().await;
    api.load(cluster);
    let live = discover(&api, &Filter::default()).await.unwrap();

    let client = PromClient::new(&PromConfig::new(prom.url.parse().unwrap())).unwrap();
    let window = Window {
        end: DEMO_END,
        length: DEMO_DAYS * 86_400,
        step: 300,
    };
    let ksm = ksm::discover(&client, &window, &Filter::default()).await.unwrap();
    let queries = client.stats().queries.load(std::sync::atomic::Ordering::Relaxed);
    assert_eq!(queries as usize, ksm::queries(&window).len());
    eprintln!(
        "kube-state-metrics discovery: {queries} queries, {} workloads",
        ksm.workloads.len()
    );
    assert_eq!(keys(&ksm), keys(&live));
    for (k, l) in ksm.workloads.iter().zip(&live.workloads) {
        let mut lc = l.containers.clone();
        lc.sort_by(|a, b| (a.role != ContainerRole::App, &a.name).cmp(&(b.role != ContainerRole::App, &b.name)));
        assert_eq!(k.containers, lc, "{}: containers", k.key);
        assert_eq!(k.replicas, l.replicas, "{}: replicas", k.key);
        assert_eq!(
            k.hpa.as_ref().map(|h| (h.min_replicas, h.max_replicas)),
            l.hpa.as_ref().map(|h| (h.min_replicas, h.max_replicas)),
            "{}",
            k.key
        );
    }

    // Through the binary: --no-kube-api recommends for the same containers.
    let (end, history) = (DEMO_END.to_string(), format!("{DEMO_DAYS}d"));
    let common = [
        "recommend",
        "--prometheus-url",
        &prom.url,
        "--history",
        &history,
        "--end",
        &end,
        "-f",
        "json",
    ];
    let out = rightsizer(&[&common[..], &["--no-kube-api"]].concat()).await;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let recs = recommended_containers(&doc);
    let expected: usize = live.workloads.iter().map(|w| w.containers.len()).sum();
    assert_eq!(recs, expected);

    // No kubeconfig anywhere and not in a pod: warn and fall back to the same discovery.
    let home = tempfile::tempdir().unwrap();
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_rightsizer"))
        .args(common)
        .env("RUST_LOG", "warn")
        .env("HOME", home.path())
        .env_remove("KUBECONFIG")
        .env_remove("KUBERNETES_SERVICE_HOST")
        .output()
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("discovering workloads from kube-state-metrics instead"),
        "{stderr}"
    );
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(recommended_containers(&doc), expected);
}

/// Containers with a recommendation in a JSON report, whatever its layout: every object with
/// a `recommended` field.
pub fn recommended_containers(doc: &serde_json::Value) -> usize {
    match doc {
        serde_json::Value::Object(m) => {
            usize::from(m.contains_key("recommended")) + m.values().map(recommended_containers).sum::<usize>()
        }
        serde_json::Value::Array(v) => v.iter().map(recommended_containers).sum(),
        _ => 0,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_namespace_keeps_exit_code_zero() {
    let (cluster, tsdb) = demo_history();
    let prom = Prometheus::start(Some(tsdb), &[]);
    let api = FakeApi::start().await;
    api.load(cluster);
    api.fail_next("/apis/apps/v1/namespaces/data/", 403, 100);
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = api.write_kubeconfig(dir.path());
    let (end, history) = (DEMO_END.to_string(), format!("{DEMO_DAYS}d"));
    let args = [
        "recommend",
        "--prometheus-url",
        &prom.url,
        "--kubeconfig",
        kubeconfig.to_str().unwrap(),
    ];
    let out = rightsizer(&[&args[..], &["--history", &history, "--end", &end, "-n", "shop,data"]].concat()).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("namespace data skipped"), "{stderr}");
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(
        table.contains("Deployment/web") && !table.contains("StatefulSet/postgres"),
        "{table}"
    );
}
