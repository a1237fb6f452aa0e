//! The four patch content types, field managers, dry run and resourceVersion conflicts.

use k8s_openapi::api::apps::v1::Deployment;
use kube::ResourceExt;
use kube::api::{Api, Patch, PatchParams};
use serde_json::json;

use super::{api_status, deployment};
use crate::support::fake_api::FakeApi;

#[tokio::test]
async fn fake_api_merge_patch_replaces_lists_and_bumps_resource_version() {
    let api = FakeApi::start().await;
    api.insert(deployment("default", "web"));
    let before = api.get_object("apps", "deployments", Some("default"), "web").unwrap();
    let deployments: Api<Deployment> = Api::default_namespaced(api.client().await);

    let annotate = json!({ "metadata": { "annotations": { "rightsizer.io/cpu": "250m" } } });
    let patched = deployments
        .patch("web", &PatchParams::default(), &Patch::Merge(&annotate))
        .await
        .unwrap();
    assert_eq!(patched.annotations()["rightsizer.io/cpu"], "250m");
    assert_ne!(
        patched.resource_version(),
        before["metadata"]["resourceVersion"].as_str().map(String::from)
    );
    assert_eq!(
        patched.metadata.generation,
        Some(1),
        "metadata-only change keeps generation"
    );

    let containers =
        json!({ "spec": { "template": { "spec": { "containers": [{ "name": "app", "image": "app:2" }] } } } });
    deployments
        .patch("web", &PatchParams::default(), &Patch::Merge(&containers))
        .await
        .unwrap();
    let stored = api.get_object("apps", "deployments", Some("default"), "web").unwrap();
    assert_eq!(
        stored["spec"]["template"]["spec"]["containers"],
        json!([{ "name": "app", "image": "app:2" }])
    );
    assert_eq!(stored["metadata"]["generation"], 2);

    let patches = api.patches();
    assert_eq!(patches[0].content_type, "application/merge-patch+json");
    assert_eq!(patches[0].path, "/apis/apps/v1/namespaces/default/deployments/web");
    assert_eq!(patches[0].body, annotate);

    let missing = api_status(
        deployments
            .patch("nope", &PatchParams::default(), &Patch::Merge(&annotate))
            .await,
    );
    assert_eq!(missing.code, 404);
}

#[tokio::test]
async fn fake_api_strategic_merge_patch_merges_containers_by_name() {
    let api = FakeApi::start().await;
    api.insert(deployment("default", "web"));
    let deployments: Api<Deployment> = Api::default_namespaced(api.client().await);

    let patch = json!({ "spec": { "template": { "spec": { "containers": [
        { "name": "app", "resources": { "requests": { "cpu": "250m" } } },
    ] } } } });
    let params = PatchParams {
        field_manager: Some("rightsizer".into()),
        ..PatchParams::default()
    };
    deployments
        .patch("web", &params, &Patch::Strategic(&patch))
        .await
        .unwrap();

    let stored = api.get_object("apps", "deployments", Some("default"), "web").unwrap();
    let containers = &stored["spec"]["template"]["spec"]["containers"];
    assert_eq!(containers[0]["name"], "app");
    assert_eq!(containers[0]["image"], "app:1");
    assert_eq!(
        containers[0]["resources"]["requests"],
        json!({ "cpu": "250m", "memory": "256Mi" })
    );
    assert_eq!(containers[1]["name"], "sidecar", "the other container is kept");
    let recorded = &api.patches()[0];
    assert_eq!(recorded.content_type, "application/strategic-merge-patch+json");
    assert_eq!(recorded.field_manager.as_deref(), Some("rightsizer"));
    assert!(!recorded.force && !recorded.dry_run);
}

#[tokio::test]
async fn fake_api_json_patch_applies_and_a_failed_test_is_invalid() {
    let api = FakeApi::start().await;
    api.insert(deployment("default", "web"));
    let deployments: Api<Deployment> = Api::default_namespaced(api.client().await);

    let ops = json!([
        { "op": "test", "path": "/spec/replicas", "value": 2 },
        { "op": "replace", "path": "/spec/template/spec/containers/0/resources/requests/cpu", "value": "300m" },
        { "op": "add", "path": "/metadata/labels", "value": { "rightsized": "true" } },
    ]);
    let patched = deployments
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::<()>::Json(serde_json::from_value(ops.clone()).unwrap()),
        )
        .await
        .unwrap();
    assert_eq!(patched.labels()["rightsized"], "true");
    let stored = api.get_object("apps", "deployments", Some("default"), "web").unwrap();
    assert_eq!(
        stored["spec"]["template"]["spec"]["containers"][0]["resources"]["requests"]["cpu"],
        "300m"
    );
    assert_eq!(api.patches()[0].content_type, "application/json-patch+json");
    assert_eq!(api.patches()[0].body, ops);

    let stale = json!([{ "op": "test", "path": "/spec/replicas", "value": 7 }, { "op": "replace", "path": "/spec/replicas", "value": 1 }]);
    let failed = api_status(
        deployments
            .patch(
                "web",
                &PatchParams::default(),
                &Patch::<()>::Json(serde_json::from_value(stale).unwrap()),
            )
            .await,
    );
    assert_eq!((failed.code, failed.reason.as_str()), (422, "Invalid"));
    assert_eq!(
        api.get_object("apps", "deployments", Some("default"), "web").unwrap()["spec"]["replicas"],
        2
    );
}

#[tokio::test]
async fn fake_api_server_side_apply_creates_merges_and_records_the_manager() {
    let api = FakeApi::start().await;
    let deployments: Api<Deployment> = Api::default_namespaced(api.client().await);
    let params = PatchParams::apply("rightsizer").force();

    let created = deployments
        .patch("web", &params, &Patch::Apply(deployment("default", "web")))
        .await
        .unwrap();
    assert!(created.uid().is_some());
    let apply = json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": { "name": "web", "namespace": "default" },
        "spec": { "template": { "spec": { "containers": [
            { "name": "app", "resources": { "requests": { "cpu": "200m" } } },
        ] } } },
    });
    deployments.patch("web", &params, &Patch::Apply(&apply)).await.unwrap();

    let stored = api.get_object("apps", "deployments", Some("default"), "web").unwrap();
    let containers = &stored["spec"]["template"]["spec"]["containers"];
    assert_eq!(containers[0]["resources"]["requests"]["cpu"], "200m");
    assert_eq!(containers[1]["name"], "sidecar");
    let managers = stored["metadata"]["managedFields"].as_array().unwrap();
    assert_eq!(managers.len(), 1);
    assert_eq!(
        (managers[0]["manager"].as_str(), managers[0]["operation"].as_str()),
        (Some("rightsizer"), Some("Apply"))
    );

    let recorded = api.patches();
    assert_eq!(recorded.len(), 2);
    assert_eq!(recorded[1].content_type, "application/apply-patch+yaml");
    assert_eq!(recorded[1].field_manager.as_deref(), Some("rightsizer"));
    assert!(recorded[1].force);
    assert_eq!(recorded[1].body, apply);

    // Dry run answers the result without storing it.
    let mut dry = params.clone();
    dry.dry_run = true;
    let replicas = json!({ "apiVersion": "apps/v1", "kind": "Deployment", "metadata": { "name": "web" }, "spec": { "replicas": 9 } });
    let answered = deployments.patch("web", &dry, &Patch::Apply(&replicas)).await.unwrap();
    assert_eq!(answered.spec.unwrap().replicas, Some(9));
    assert_eq!(
        api.get_object("apps", "deployments", Some("default"), "web").unwrap()["spec"]["replicas"],
        2
    );
    assert!(api.patches()[2].dry_run);

    let no_manager = api_status(
        deployments
            .patch("web", &PatchParams::default(), &Patch::Apply(&apply))
            .await,
    );
    assert_eq!((no_manager.code, no_manager.reason.as_str()), (422, "Invalid"));
    assert_eq!(
        no_manager.message,
        "PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Required value: is required for apply patch"
    );
}

#[tokio::test]
async fn fake_api_stale_resource_version_conflicts() {
    let api = FakeApi::start().await;
    api.insert(deployment("default", "web"));
    let deployments: Api<Deployment> = Api::default_namespaced(api.client().await);
    let read = deployments.get("web").await.unwrap();
    let stale = read.resource_version().unwrap();

    let bump = json!({ "metadata": { "labels": { "touched": "yes" } } });
    deployments
        .patch("web", &PatchParams::default(), &Patch::Merge(&bump))
        .await
        .unwrap();

    let guarded = json!({ "metadata": { "resourceVersion": stale }, "spec": { "replicas": 5 } });
    let conflict = api_status(
        deployments
            .patch("web", &PatchParams::default(), &Patch::Merge(&guarded))
            .await,
    );
    assert_eq!((conflict.code, conflict.reason.as_str()), (409, "Conflict"));
    assert_eq!(
        conflict.message,
        "Operation cannot be fulfilled on deployments.apps \"web\": the object has been modified; please apply your changes to the latest version and try again"
    );
    let replaced = api_status(deployments.replace("web", &Default::default(), &read).await);
    assert_eq!(replaced.code, 409);
    assert_eq!(
        api.get_object("apps", "deployments", Some("default"), "web").unwrap()["spec"]["replicas"],
        2
    );
}

#[tokio::test]
async fn fake_api_create_status_subresource_and_delete() {
    let api = FakeApi::start().await;
    let deployments: Api<Deployment> = Api::default_namespaced(api.client().await);

    let created = deployments
        .create(&Default::default(), &deployment("default", "web"))
        .await
        .unwrap();
    assert_eq!(created.metadata.generation, Some(1));
    let again = api_status(
        deployments
            .create(&Default::default(), &deployment("default", "web"))
            .await,
    );
    assert_eq!((again.code, again.reason.as_str()), (409, "AlreadyExists"));

    // Status goes through its subresource only; the main resource ignores it.
    let status = json!({ "status": { "replicas": 2, "readyReplicas": 2 } });
    deployments
        .patch_status("web", &PatchParams::default(), &Patch::Merge(&status))
        .await
        .unwrap();
    let ignored = json!({ "status": { "replicas": 0 } });
    deployments
        .patch("web", &PatchParams::default(), &Patch::Merge(&ignored))
        .await
        .unwrap();
    let stored = api.get_object("apps", "deployments", Some("default"), "web").unwrap();
    assert_eq!(stored["status"]["readyReplicas"], 2);
    assert_eq!(stored["status"]["replicas"], 2);

    let deleted = deployments.delete("web", &Default::default()).await.unwrap();
    assert!(
        deleted.is_right(),
        "apiserver answers a Status for a deleted Deployment"
    );
    assert!(api.get_object("apps", "deployments", Some("default"), "web").is_none());
    assert_eq!(api_status(deployments.get("web").await).code, 404);
    let verbs: Vec<String> = api.requests().into_iter().map(|r| r.verb).collect();
    assert_eq!(verbs, ["create", "create", "patch", "patch", "delete", "get"]);
}
