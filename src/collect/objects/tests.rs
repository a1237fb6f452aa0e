//! Conversion of objects: slim views from API JSON and from typed objects, listed pods,
//! owners, bare pods and VPA modes.

use super::*;
use serde_json::json;

fn vpa(ns: &str, target: &str, mode: Option<&str>) -> DynamicObject {
    let mut spec = json!({"targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": target}});
    if let Some(m) = mode {
        spec["updatePolicy"] = json!({"updateMode": m});
    }
    serde_json::from_value(json!({
        "apiVersion": "autoscaling.k8s.io/v1", "kind": "VerticalPodAutoscaler",
        "metadata": {"name": format!("{target}-vpa"), "namespace": ns}, "spec": spec,
    }))
    .unwrap()
}

fn pod(name: &str, owner: Option<(&str, &str)>) -> slim::Pod {
    let owners = owner
        .map(|(kind, n)| json!([{"apiVersion": "apps/v1", "kind": kind, "name": n, "uid": "u", "controller": true}]));
    serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": "shop", "ownerReferences": owners,
            "labels": {"app": "x"}, "annotations": {"rightsizer.dev/cpu-buffer": "1.3"},
            "managedFields": [{"manager": "kubelet", "operation": "Update"}]},
        "spec": {
            "containers": [{"name": "app", "image": "app:1", "env": [{"name": "A", "value": "b"}],
                "resources": {"requests": {"cpu": "250m", "memory": "256Mi"}}}],
            "initContainers": [{"name": "proxy", "image": "envoy", "restartPolicy": "Always",
                "resources": {"requests": {"cpu": "50m", "memory": "lots"}}}],
            "nodeName": "node-1", "volumes": [{"name": "data", "emptyDir": {}}]},
        "status": {"phase": "Running", "podIP": "10.0.0.1"},
    }))
    .unwrap()
}

#[test]
fn listed_pods_keep_what_discovery_reads() {
    let bare = pod("lone", None);
    let mut warn = Vec::new();
    let direct = workload(
        bare.metadata.clone(),
        WorkloadKind::Pod,
        Some(1),
        bare.spec.as_ref(),
        &mut warn,
    );
    assert_eq!(warn.len(), 1, "{warn:?}");
    let listed = listed_pod(bare);
    let mut got_warn = Vec::new();
    let workloads = bare_pods(std::slice::from_ref(&listed), &Owners::default(), &mut got_warn);
    assert_eq!(workloads, [direct]);
    assert_eq!(got_warn, warn, "conversion warnings are kept for bare pods");
    assert_eq!(workloads[0].containers.len(), 2);
    assert_eq!(workloads[0].annotations.len(), 1);

    // Pods of a ReplicaSet might be bare (a ReplicaSet without a Deployment): kept.
    let rs_pod = listed_pod(pod("web-1", Some(("ReplicaSet", "web-a"))));
    assert!(rs_pod.alone.is_some());
    // Pods of a StatefulSet never are: name, namespace and owner only, and no warning.
    let sts = listed_pod(pod("db-0", Some(("StatefulSet", "db"))));
    assert!(sts.alone.is_none());
    assert_eq!(sts.controller, Some(("StatefulSet".into(), "db".into())));
    let live = LiveOwners::new(std::slice::from_ref(&sts), Vec::new(), Vec::new());
    assert_eq!(
        live.pods,
        [("shop".into(), "db-0".into(), "StatefulSet".into(), "db".into())]
    );
    let mut none = Vec::new();
    assert!(bare_pods(&[sts], &Owners::default(), &mut none).is_empty() && none.is_empty());
}

#[test]
fn vpa_modes_keep_only_modes_that_change_pods() {
    let vpas = [
        vpa("shop", "a", Some("Auto")),
        vpa("shop", "b", Some("Off")),
        vpa("shop", "c", Some("Initial")),
        vpa("shop", "d", Some("InPlaceOrRecreate")),
        vpa("shop", "e", None),
        vpa("shop", "f", Some("Recreate")),
    ];
    let modes = vpa_modes(&vpas);
    let got: Vec<(&str, &str)> = modes.iter().map(|(k, m)| (k.name.as_str(), m.as_str())).collect();
    assert_eq!(
        got,
        [
            ("a", "Auto"),
            ("c", "Initial"),
            ("d", "InPlaceOrRecreate"),
            ("e", "Auto"),
            ("f", "Recreate")
        ]
    );
}

#[test]
fn bare_pods_are_pods_without_a_sized_controller() {
    let pod = |name: &str, owner: Option<(&str, &str)>| -> slim::Pod {
        let mut meta = json!({"name": name, "namespace": "shop"});
        if let Some((kind, n)) = owner {
            meta["ownerReferences"] =
                json!([{"apiVersion": "v1", "kind": kind, "name": n, "uid": "u", "controller": true}]);
        }
        serde_json::from_value(json!({"metadata": meta, "spec": {"containers": [{"name": "app"}]}})).unwrap()
    };
    let pods = [
        pod("debug", None),
        pod("web-1", Some(("ReplicaSet", "web-abc"))),
        pod("static-node1", Some(("Node", "node1"))),
        pod("db-0", Some(("StatefulSet", "db"))),
    ];
    let rs: slim::ReplicaSet = serde_json::from_value(json!({"metadata": {"name": "web-abc", "namespace": "shop",
        "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": "web", "uid": "w", "controller": true}]}}))
    .unwrap();
    let pods: Vec<ListedPod> = pods.into_iter().map(listed_pod).collect();
    let live = LiveOwners::new(&pods, replica_set_owner(rs).into_iter().collect(), Vec::new());
    let mut warn = Vec::new();
    let bare: Vec<String> = bare_pods(&pods, &live.owners(), &mut warn)
        .into_iter()
        .map(|w| w.key.to_string())
        .collect();
    assert_eq!(bare, ["shop/Pod/debug", "shop/Pod/static-node1"]);
    assert_eq!(
        live.owners().resolve("shop", "web-1"),
        WorkloadKey::new("shop", WorkloadKind::Deployment, "web")
    );
}

/// A Deployment as the API server returns it: managedFields, status, probes, env,
/// volumes, an extended resource, a native sidecar and an init container.
fn full_deployment() -> Deployment {
    let container = |name: &str, cpu: &str, extra: serde_json::Value| {
        let mut c = json!({"name": name, "image": format!("{name}:1.2"), "imagePullPolicy": "IfNotPresent",
            "env": [{"name": "A", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}],
            "ports": [{"containerPort": 8080, "protocol": "TCP"}],
            "readinessProbe": {"httpGet": {"path": "/ready", "port": 8080}, "periodSeconds": 5},
            "volumeMounts": [{"name": "data", "mountPath": "/data"}],
            "resources": {"requests": {"cpu": cpu, "memory": "256Mi", "nvidia.com/gpu": "1"},
                "limits": {"memory": "512Mi", "nvidia.com/gpu": "1"}},
            "terminationMessagePath": "/dev/termination-log"});
        c.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        c
    };
    serde_json::from_value(json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "shop", "uid": "0b7c", "resourceVersion": "812",
            "generation": 4, "creationTimestamp": "2026-10-01T00:00:00Z",
            "labels": {"app": "web"},
            "annotations": {"deployment.kubernetes.io/revision": "4", "rightsizer.dev/cpu-buffer": "1.2",
                "kubectl.kubernetes.io/last-applied-configuration": "{\"apiVersion\":\"apps/v1\"}"},
            "managedFields": [{"manager": "kubectl", "operation": "Apply", "apiVersion": "apps/v1",
                "time": "2026-10-01T00:00:00Z", "fieldsType": "FieldsV1",
                "fieldsV1": {"f:spec": {"f:replicas": {}, "f:template": {"f:spec": {}}}}}]},
        "spec": {"replicas": 3, "revisionHistoryLimit": 10,
            "selector": {"matchLabels": {"app": "web"}},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": 0}},
            "template": {"metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [container("app", "250m", json!({})), container("bad", "lots", json!({}))],
                    "initContainers": [container("proxy", "50m", json!({"restartPolicy": "Always"})),
                        container("migrate", "1", json!({}))],
                    "volumes": [{"name": "data", "emptyDir": {}}], "nodeSelector": {"pool": "a"},
                    "tolerations": [{"key": "k", "operator": "Exists"}], "dnsPolicy": "ClusterFirst"}}},
        "status": {"replicas": 3, "readyReplicas": 3, "observedGeneration": 4,
            "conditions": [{"type": "Available", "status": "True", "lastUpdateTime": "2026-10-01T00:00:00Z"}]},
    }))
    .unwrap()
}

/// The workload `full_deployment` is, as the conversion of typed objects gave it before
/// list pages were read as slim views.
fn full_deployment_workload() -> (Workload, Vec<String>) {
    let key = WorkloadKey::new("shop", WorkloadKind::Deployment, "web");
    let container = |name: &str, role, cpu| ContainerSpec {
        name: name.into(),
        role,
        resources: Resources {
            cpu_request: cpu,
            memory_request: Some(256.0 * 1024.0 * 1024.0),
            cpu_limit: None,
            memory_limit: Some(512.0 * 1024.0 * 1024.0),
        },
    };
    let workload = Workload {
        replicas: Some(3),
        containers: vec![
            container("app", ContainerRole::App, Some(0.25)),
            container("bad", ContainerRole::App, None),
            container("proxy", ContainerRole::Sidecar, Some(0.05)),
            container("migrate", ContainerRole::Init, Some(1.0)),
        ],
        hpa: None,
        labels: [("app".to_string(), "web".to_string())].into(),
        annotations: [
            ("deployment.kubernetes.io/revision", "4"),
            ("rightsizer.dev/cpu-buffer", "1.2"),
            (
                "kubectl.kubernetes.io/last-applied-configuration",
                "{\"apiVersion\":\"apps/v1\"}",
            ),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect(),
        key,
    };
    let warning = format!("shop/Deployment/web/bad: {}", parse_cpu("lots").unwrap_err());
    (workload, vec![warning])
}

#[test]
fn a_full_api_object_decodes_to_the_same_workload_as_its_typed_form() {
    let typed = full_deployment();
    let expected = full_deployment_workload();
    // The typed path (demo data) ...
    let objects = Objects {
        deployments: vec![typed.clone()],
        ..Objects::default()
    };
    assert_eq!(workloads(&objects), (vec![expected.0.clone()], expected.1.clone()));
    // ... and the JSON an API server sends, decoded into the slim view.
    let body = serde_json::to_vec(&typed).unwrap();
    let slim: slim::Deployment = serde_json::from_slice(&body).unwrap();
    assert_eq!(deployment(slim), expected);

    // The pod of that Deployment, bare, is the same workload of kind Pod.
    let mut pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": serde_json::to_value(&typed.metadata).unwrap(),
        "spec": serde_json::to_value(typed.spec.as_ref().unwrap().template.spec.as_ref().unwrap()).unwrap(),
        "status": {"phase": "Running", "podIP": "10.0.0.1", "containerStatuses": [{"name": "app", "ready": true,
            "restartCount": 0, "image": "app:1.2", "imageID": "x", "state": {"running": {}}}]}});
    pod["metadata"]["ownerReferences"] = json!([{"apiVersion": "v1", "kind": "Node", "name": "n1", "uid": "n"}]);
    let typed_pod: k8s_openapi::api::core::v1::Pod = serde_json::from_value(pod).unwrap();
    let listed = listed_pod(serde_json::from_slice(&serde_json::to_vec(&typed_pod).unwrap()).unwrap());
    let (mut w, warn) = expected;
    w.key = WorkloadKey::new("shop", WorkloadKind::Pod, "web");
    w.replicas = Some(1);
    let warn: Vec<String> = warn.iter().map(|m| m.replace("/Deployment/", "/Pod/")).collect();
    let mut got_warn = Vec::new();
    assert_eq!(bare_pods(&[listed], &Owners::default(), &mut got_warn), [w]);
    assert_eq!(got_warn, warn);
}

#[test]
fn every_listed_kind_reads_its_replicas_and_pod_template() {
    let template = json!({"spec": {"containers": [{"name": "c", "resources": {"limits": {"cpu": "1"}}}]}});
    let meta = |name: &str| json!({"name": name, "namespace": "ns"});
    let objects = Objects {
        deployments: vec![
            serde_json::from_value(json!({"metadata": meta("d"), "spec": {"template": template,
            "selector": {}}}))
            .unwrap(),
        ],
        stateful_sets: vec![
            serde_json::from_value(json!({"metadata": meta("s"), "spec": {"replicas": -2,
            "template": template, "selector": {}, "serviceName": "s"}}))
            .unwrap(),
        ],
        daemon_sets: vec![
            serde_json::from_value(json!({"metadata": meta("ds"), "spec": {"template": template,
            "selector": {}}, "status": {"desiredNumberScheduled": 7, "currentNumberScheduled": 7,
            "numberMisscheduled": 0, "numberReady": 7}}))
            .unwrap(),
        ],
        cron_jobs: vec![
            serde_json::from_value(json!({"metadata": meta("cj"), "spec": {"schedule": "* * * * *",
            "jobTemplate": {"spec": {"parallelism": 4, "template": template}}}}))
            .unwrap(),
        ],
        jobs: vec![
            serde_json::from_value(json!({"metadata": meta("j"), "spec": {"template": template}})).unwrap(),
            serde_json::from_value(
                json!({"metadata": {"name": "cj-1", "namespace": "ns", "ownerReferences":
                [{"apiVersion": "batch/v1", "kind": "CronJob", "name": "cj", "uid": "u", "controller": true}]},
                "spec": {"template": template}}),
            )
            .unwrap(),
        ],
        hpas: vec![
            serde_json::from_value(json!({"metadata": meta("h"), "spec": {"maxReplicas": 5,
            "scaleTargetRef": {"kind": "StatefulSet", "name": "s"}}}))
            .unwrap(),
        ],
    };
    let (got, warn) = workloads(&objects);
    assert!(warn.is_empty(), "{warn:?}");
    let summary: Vec<(String, Option<u32>, Option<f64>)> = got
        .iter()
        .map(|w| (w.key.to_string(), w.replicas, w.containers[0].resources.cpu_request))
        .collect();
    assert_eq!(
        summary,
        [
            ("ns/Deployment/d".to_string(), Some(1), Some(1.0)),
            ("ns/StatefulSet/s".to_string(), Some(0), Some(1.0)),
            ("ns/DaemonSet/ds".to_string(), Some(7), Some(1.0)),
            ("ns/CronJob/cj".to_string(), Some(4), Some(1.0)),
            ("ns/Job/j".to_string(), Some(1), Some(1.0)),
        ]
    );
    assert_eq!(got[1].hpa.as_ref().map(|h| h.max_replicas), Some(5));
    let owned = job(slim::from_typed(&objects.jobs[1]));
    assert_eq!(
        owned,
        ListedJob::Owned(("ns".into(), "cj-1".into(), "CronJob".into(), "cj".into()))
    );
}
