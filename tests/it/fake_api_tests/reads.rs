//! Lists, pages, selectors, error replies, dynamic kinds and discovery.

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Namespace, Pod};
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, ListParams, Patch, PatchParams};
use kube::discovery::{self, Discovery, Scope};
use kube::{Client, ResourceExt};
use serde_json::json;

use super::{api_status, deployment, insert_vpa, namespace, pod, raw, vpa_resource};
use crate::support::fake_api::FakeApi;

#[tokio::test]
async fn fake_api_lists_every_item_once_across_pages_in_order() {
    let api = FakeApi::start().await;
    for (ns, name) in [("b", "p2"), ("a", "p3"), ("b", "p1"), ("a", "p1"), ("c", "p0")] {
        api.insert(pod(ns, name, json!({})));
    }
    let pods: Api<Pod> = Api::all(api.client().await);

    let mut seen = Vec::new();
    let mut token: Option<String> = None;
    let mut pages = 0;
    loop {
        let mut params = ListParams::default().limit(2);
        if let Some(token) = &token {
            params = params.continue_token(token);
        }
        let page = pods.list(&params).await.expect("list page");
        pages += 1;
        if pages == 1 {
            assert_eq!(page.metadata.remaining_item_count, Some(3));
        }
        seen.extend(
            page.items
                .iter()
                .map(|p| format!("{}/{}", p.namespace().unwrap(), p.name_any())),
        );
        token = page.metadata.continue_.filter(|t| !t.is_empty());
        if token.is_none() {
            break;
        }
    }
    assert_eq!(seen, ["a/p1", "a/p3", "b/p1", "b/p2", "c/p0"]);
    assert_eq!(pages, 3);
    let queries: Vec<String> = api.requests().into_iter().map(|r| r.query).collect();
    assert!(queries[0].contains("limit=2") && !queries[0].contains("continue="));
    assert!(queries[1..].iter().all(|q| q.contains("continue=")));

    // A server may return fewer items than the limit; the client still gets them all.
    api.set_page_size_cap(Some(1));
    let first = pods.list(&ListParams::default().limit(2)).await.unwrap();
    assert_eq!(first.items.len(), 1);
    assert!(first.metadata.continue_.is_some());
}

#[tokio::test]
async fn fake_api_pages_expire_and_bad_tokens_are_rejected() {
    let api = FakeApi::start().await;
    for name in ["a", "b", "c"] {
        api.insert(pod("default", name, json!({})));
    }
    let pods: Api<Pod> = Api::default_namespaced(api.client().await);
    let first = pods.list(&ListParams::default().limit(1)).await.unwrap();
    let token = first.metadata.continue_.expect("a continue token");

    api.expire_continue_tokens();
    let expired = api_status(pods.list(&ListParams::default().limit(1).continue_token(&token)).await);
    assert_eq!((expired.code, expired.reason.as_str()), (410, "Expired"));
    assert!(
        expired
            .message
            .starts_with("The provided continue parameter is too old")
    );
    // The inconsistent token of the 410 continues the list.
    let inconsistent = expired.metadata.and_then(|m| m.continue_).expect("inconsistent token");
    let rest = pods
        .list(&ListParams::default().continue_token(&inconsistent))
        .await
        .unwrap();
    assert_eq!(rest.items.iter().map(|p| p.name_any()).collect::<Vec<_>>(), ["b", "c"]);

    api.fail_next("/api/v1/namespaces/default/pods", 410, 1);
    let injected = api_status(pods.list(&ListParams::default().limit(1)).await);
    assert_eq!((injected.code, injected.reason.as_str()), (410, "Expired"));

    let invalid = api_status(pods.list(&ListParams::default().continue_token("not-a-token")).await);
    assert_eq!((invalid.code, invalid.reason.as_str()), (400, "BadRequest"));
    assert!(
        invalid.message.contains("continue key is not valid"),
        "{}",
        invalid.message
    );
}

#[tokio::test]
async fn fake_api_label_selectors_of_each_form() {
    let api = FakeApi::start().await;
    api.insert(pod(
        "default",
        "web-1",
        json!({ "app": "web", "tier": "front", "canary": "true" }),
    ));
    api.insert(pod("default", "web-2", json!({ "app": "web", "tier": "front" })));
    api.insert(pod("default", "db-1", json!({ "app": "db", "tier": "back" })));
    api.insert(pod("default", "bare", json!({})));
    let pods: Api<Pod> = Api::namespaced(api.client().await, "default");

    let cases: &[(&str, &[&str])] = &[
        ("app=web", &["web-1", "web-2"]),
        ("app==db", &["db-1"]),
        ("app!=web", &["bare", "db-1"]),
        ("app in (web, db)", &["db-1", "web-1", "web-2"]),
        ("app notin (web)", &["bare", "db-1"]),
        ("canary", &["web-1"]),
        ("!canary", &["bare", "db-1", "web-2"]),
        ("app=web,!canary", &["web-2"]),
        ("tier in (front),app", &["web-1", "web-2"]),
    ];
    for (selector, want) in cases {
        let list = pods.list(&ListParams::default().labels(selector)).await.unwrap();
        let names: Vec<String> = list.items.iter().map(|p| p.name_any()).collect();
        assert_eq!(names, *want, "labelSelector {selector}");
    }
    let bad = api_status(pods.list(&ListParams::default().labels("app in web")).await);
    assert_eq!((bad.code, bad.reason.as_str()), (400, "BadRequest"));
}

#[tokio::test]
async fn fake_api_namespaced_all_namespace_and_field_selected_lists() {
    let api = FakeApi::start().await;
    api.insert(namespace("team-a"));
    api.insert(namespace("team-b"));
    api.insert(deployment("team-a", "api"));
    api.insert(deployment("team-a", "worker"));
    api.insert(deployment("team-b", "api"));
    let client = api.client().await;

    let names = |list: kube::core::ObjectList<Deployment>| -> Vec<String> {
        list.items
            .iter()
            .map(|d| format!("{}/{}", d.namespace().unwrap(), d.name_any()))
            .collect()
    };
    let all = Api::<Deployment>::all(client.clone())
        .list(&ListParams::default())
        .await
        .unwrap();
    assert_eq!(names(all), ["team-a/api", "team-a/worker", "team-b/api"]);
    let team_a = Api::<Deployment>::namespaced(client.clone(), "team-a");
    assert_eq!(
        names(team_a.list(&ListParams::default()).await.unwrap()),
        ["team-a/api", "team-a/worker"]
    );
    let by_name = Api::<Deployment>::all(client.clone())
        .list(&ListParams::default().fields("metadata.name=api,metadata.namespace!=team-a"))
        .await
        .unwrap();
    assert_eq!(names(by_name), ["team-b/api"]);
    let unsupported = api_status(team_a.list(&ListParams::default().fields("spec.replicas=2")).await);
    assert_eq!((unsupported.code, unsupported.reason.as_str()), (400, "BadRequest"));
    assert_eq!(unsupported.message, "field label not supported: spec.replicas");

    let namespaces = Api::<Namespace>::all(client)
        .list(&ListParams::default())
        .await
        .unwrap();
    let ns_names: Vec<String> = namespaces.items.iter().map(|n| n.name_any()).collect();
    assert_eq!(ns_names, ["team-a", "team-b"]);

    let requests = api.requests();
    assert_eq!(requests[0].path, "/apis/apps/v1/deployments");
    assert_eq!(requests[1].path, "/apis/apps/v1/namespaces/team-a/deployments");
    assert_eq!(
        (
            requests[1].verb.as_str(),
            requests[1].group.as_str(),
            requests[1].resource.as_str()
        ),
        ("list", "apps", "deployments")
    );
    assert_eq!(requests[1].namespace.as_deref(), Some("team-a"));
    assert_eq!(requests.last().unwrap().path, "/api/v1/namespaces");
}

#[tokio::test]
async fn fake_api_get_of_a_missing_object_is_not_found() {
    let api = FakeApi::start().await;
    api.insert(deployment("default", "web"));
    let deployments: Api<Deployment> = Api::default_namespaced(api.client().await);
    assert_eq!(deployments.get("web").await.unwrap().spec.unwrap().replicas, Some(2));

    let missing = api_status(deployments.get("nope").await);
    assert_eq!((missing.code, missing.reason.as_str()), (404, "NotFound"));
    assert_eq!(missing.message, "deployments.apps \"nope\" not found");
    let details = missing.details.expect("details");
    assert_eq!(
        (details.name.as_str(), details.group.as_str(), details.kind.as_str()),
        ("nope", "apps", "deployments")
    );
}

#[tokio::test]
async fn fake_api_denied_verbs_answer_forbidden_with_the_real_message() {
    let api = FakeApi::start().await;
    api.insert(deployment("prod", "web"));
    api.deny("list", "apps", "deployments");
    api.deny("patch", "apps", "deployments");
    let client = api.client().await;

    let all = api_status(
        Api::<Deployment>::all(client.clone())
            .list(&ListParams::default())
            .await,
    );
    assert_eq!((all.code, all.reason.as_str()), (403, "Forbidden"));
    assert_eq!(
        all.message,
        "deployments.apps is forbidden: User \"system:serviceaccount:rightsizer:rightsizer\" cannot list resource \"deployments\" in API group \"apps\" at the cluster scope"
    );
    let prod = Api::<Deployment>::namespaced(client, "prod");
    let in_ns = api_status(prod.list(&ListParams::default()).await);
    assert!(
        in_ns
            .message
            .ends_with("in API group \"apps\" in the namespace \"prod\""),
        "{}",
        in_ns.message
    );
    let patch = api_status(
        prod.patch(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({ "spec": { "replicas": 1 } })),
        )
        .await,
    );
    assert!(
        patch.message.starts_with("deployments.apps \"web\" is forbidden"),
        "{}",
        patch.message
    );
    assert!(prod.get("web").await.is_ok(), "get is not denied");
    assert_eq!(
        api.get_object("apps", "deployments", Some("prod"), "web").unwrap()["spec"]["replicas"],
        2
    );
}

#[tokio::test]
async fn fake_api_injects_internal_errors_and_throttling() {
    let api = FakeApi::start().await;
    api.insert(pod("default", "web-1", json!({})));
    let pods: Api<Pod> = Api::default_namespaced(api.client().await);

    api.fail_next("/api/v1/namespaces/default/pods", 500, 1);
    let failed = api_status(pods.list(&ListParams::default()).await);
    assert_eq!((failed.code, failed.reason.as_str()), (500, "InternalError"));
    assert_eq!(
        pods.list(&ListParams::default()).await.unwrap().items.len(),
        1,
        "only the next request fails"
    );

    // kube's default retry layer honours Retry-After on 429: the list succeeds on the retry.
    api.set_retry_after_secs(0);
    api.clear_records();
    api.fail_next("/api/v1/namespaces/default/pods", 429, 1);
    assert_eq!(pods.list(&ListParams::default()).await.unwrap().items.len(), 1);
    let codes: Vec<u16> = api.requests().iter().map(|r| r.status).collect();
    assert_eq!(codes, [429, 200]);

    api.set_retry_after_secs(1);
    api.fail_next("/api/v1/pods", 429, 1);
    let (code, head, body) = raw(&api, "GET", "/api/v1/pods").await;
    assert_eq!(code, 429);
    assert!(head.to_ascii_lowercase().contains("retry-after: 1"), "{head}");
    assert_eq!(body["reason"], "TooManyRequests");
    assert_eq!(body["details"]["retryAfterSeconds"], 1);
}

#[tokio::test]
async fn fake_api_serves_vpas_as_dynamic_objects() {
    let api = FakeApi::start().await;
    insert_vpa(&api, "team-a", "web", "250m");
    insert_vpa(&api, "team-b", "api", "1");
    let client = api.client().await;
    let vpas: Api<DynamicObject> = Api::all_with(client.clone(), &vpa_resource());

    let list = vpas.list(&ListParams::default()).await.unwrap();
    let names: Vec<String> = list.items.iter().map(|v| v.name_any()).collect();
    assert_eq!(names, ["web", "api"]);
    let target = &list.items[0].data["status"]["recommendation"]["containerRecommendations"][0]["target"];
    assert_eq!(target["cpu"], "250m");
    assert_eq!(list.items[0].types.as_ref().unwrap().kind, "VerticalPodAutoscaler");
    assert_eq!(
        api.requests()[0].path,
        "/apis/autoscaling.k8s.io/v1/verticalpodautoscalers"
    );

    // A CRD takes no strategic merge patch.
    let team_a: Api<DynamicObject> = Api::namespaced_with(client, "team-a", &vpa_resource());
    let patch = json!({ "spec": { "updatePolicy": { "updateMode": "Off" } } });
    let unsupported = api_status(
        team_a
            .patch("web", &PatchParams::default(), &Patch::Strategic(&patch))
            .await,
    );
    assert_eq!(
        (unsupported.code, unsupported.reason.as_str()),
        (415, "UnsupportedMediaType")
    );
    team_a
        .patch("web", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    let stored = api
        .get_object("autoscaling.k8s.io", "verticalpodautoscalers", Some("team-a"), "web")
        .unwrap();
    assert_eq!(stored["spec"]["updatePolicy"]["updateMode"], "Off");
}

#[tokio::test]
async fn fake_api_serves_pod_metrics() {
    let api = FakeApi::start().await;
    api.insert(pod("default", "web-1", json!({})));
    api.insert_dynamic(
        "metrics.k8s.io",
        "v1beta1",
        "PodMetrics",
        "pods",
        true,
        json!({
            "metadata": { "name": "web-1", "namespace": "default" },
            "timestamp": "2026-01-01T00:00:00Z",
            "window": "30s",
            "containers": [{ "name": "app", "usage": { "cpu": "120m", "memory": "200Mi" } }],
        }),
    );
    let gvk = GroupVersionKind::gvk("metrics.k8s.io", "v1beta1", "PodMetrics");
    let resource = ApiResource::from_gvk_with_plural(&gvk, "pods");
    let metrics: Api<DynamicObject> = Api::default_namespaced_with(api.client().await, &resource);

    let list = metrics.list(&ListParams::default()).await.unwrap();
    assert_eq!(list.items.len(), 1);
    assert_eq!(list.items[0].data["containers"][0]["usage"]["cpu"], "120m");
    assert_eq!(
        api.requests()[0].path,
        "/apis/metrics.k8s.io/v1beta1/namespaces/default/pods"
    );
    let read_only = api_status(
        metrics
            .patch("web-1", &PatchParams::default(), &Patch::Merge(json!({})))
            .await,
    );
    assert_eq!(read_only.code, 405);
}

#[tokio::test]
async fn fake_api_discovery_serves_built_in_and_registered_groups() {
    let api = FakeApi::start().await;
    let client: Client = api.client().await;
    assert_eq!(client.apiserver_version().await.unwrap().git_version, "v1.33.0");

    let apps = discovery::group(&client, "apps").await.unwrap();
    let (deployments, caps) = apps.recommended_kind("Deployment").expect("Deployment discovered");
    assert_eq!(
        (deployments.plural.as_str(), caps.scope.clone()),
        ("deployments", Scope::Namespaced)
    );
    let core = discovery::group(&client, "").await.unwrap();
    assert_eq!(core.recommended_kind("Namespace").unwrap().1.scope, Scope::Cluster);

    // Without a VPA the CRD's group is not served.
    assert!(discovery::group(&client, "autoscaling.k8s.io").await.is_err());
    let not_served = api_status(client.list_api_group_resources("autoscaling.k8s.io/v1").await);
    assert_eq!(not_served.code, 404);

    insert_vpa(&api, "default", "web", "100m");
    let vpa = discovery::group(&client, "autoscaling.k8s.io").await.unwrap();
    let (resource, _) = vpa.recommended_kind("VerticalPodAutoscaler").expect("VPA discovered");
    assert_eq!(resource.plural, "verticalpodautoscalers");

    let full = Discovery::new(client.clone()).run().await.unwrap();
    let aggregated = Discovery::new(client).run_aggregated().await.unwrap();
    for found in [&full, &aggregated] {
        for group in ["", "apps", "batch", "autoscaling", "autoscaling.k8s.io"] {
            assert!(found.has_group(group), "group {group:?} discovered");
        }
        assert!(!found.has_group("metrics.k8s.io"));
    }
}

#[test]
fn fake_api_start_blocking_serves_without_a_caller_runtime() {
    let api = FakeApi::start_blocking();
    api.insert(namespace("team-a"));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let names: Vec<String> = runtime.block_on(async {
        let namespaces: Api<Namespace> = Api::all(api.client().await);
        namespaces
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .iter()
            .map(|n| n.name_any())
            .collect()
    });
    assert_eq!(names, ["team-a"]);
}
