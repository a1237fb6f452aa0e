//! The Kubernetes permissions rightsizer uses, one table per role, and the one error for a
//! 403. Each role is a file under `deploy/` (the read-only ClusterRole, and the opt-in
//! components for annotations, `--apply` and the report ConfigMap); tests check each table
//! against its file both ways and against every request the fake API server records, and a
//! 403 names the permission and the file that grants it.

use thiserror::Error;

/// One kind of request rightsizer can make to the Kubernetes API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ApiCall {
    /// API group, "" for the core group.
    pub group: &'static str,
    /// Resource plural, as in RBAC rules.
    pub resource: &'static str,
    /// RBAC verb.
    pub verb: &'static str,
}

impl ApiCall {
    pub const fn new(group: &'static str, resource: &'static str, verb: &'static str) -> Self {
        ApiCall { group, resource, verb }
    }

    pub const fn list(group: &'static str, resource: &'static str) -> Self {
        ApiCall::new(group, resource, "list")
    }
}

/// Who grants a permission: the file under `deploy/` a user installs for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Discovery (always): `deploy/clusterrole.yaml`.
    Read,
    /// `outputs.annotate`: the opt-in component `deploy/annotate/`.
    Annotate,
    /// `outputs.apply`: the opt-in component `deploy/apply/`.
    Apply,
    /// `outputs.configMap`: `deploy/role-report.yaml`.
    Report,
}

impl Role {
    pub fn file(self) -> &'static str {
        match self {
            Role::Read => "deploy/base/clusterrole.yaml",
            Role::Annotate => "deploy/annotate/clusterrole.yaml (kustomize component deploy/annotate)",
            Role::Apply => "deploy/apply/clusterrole.yaml (kustomize component deploy/apply)",
            Role::Report => "deploy/base/role-report.yaml",
        }
    }
}

pub const DEPLOYMENTS: ApiCall = ApiCall::list("apps", "deployments");
pub const STATEFUL_SETS: ApiCall = ApiCall::list("apps", "statefulsets");
pub const DAEMON_SETS: ApiCall = ApiCall::list("apps", "daemonsets");
pub const REPLICA_SETS: ApiCall = ApiCall::list("apps", "replicasets");
pub const CRON_JOBS: ApiCall = ApiCall::list("batch", "cronjobs");
pub const JOBS: ApiCall = ApiCall::list("batch", "jobs");
pub const PODS: ApiCall = ApiCall::list("", "pods");
pub const HPAS: ApiCall = ApiCall::list("autoscaling", "horizontalpodautoscalers");
pub const VPAS: ApiCall = ApiCall::list("autoscaling.k8s.io", "verticalpodautoscalers");
pub const POD_METRICS: ApiCall = ApiCall::list("metrics.k8s.io", "pods");

/// Every read: discovery lists only these (`collect::cluster::list_all` takes calls from here).
/// deploy/clusterrole.yaml.
pub const API_CALLS: &[ApiCall] = &[
    DEPLOYMENTS,
    STATEFUL_SETS,
    DAEMON_SETS,
    REPLICA_SETS,
    CRON_JOBS,
    JOBS,
    PODS,
    HPAS,
    VPAS,
    POD_METRICS,
];

/// The writes of `outputs.annotate` (emit/annotate.rs: a merge patch on the workload; the
/// run passes the annotations discovery found, so it never GETs). deploy/annotate/.
pub const ANNOTATE_CALLS: &[ApiCall] = &[
    ApiCall::new("apps", "deployments", "patch"),
    ApiCall::new("apps", "statefulsets", "patch"),
    ApiCall::new("apps", "daemonsets", "patch"),
    ApiCall::new("batch", "cronjobs", "patch"),
    ApiCall::new("batch", "jobs", "patch"),
];

/// The report ConfigMap, written with server-side apply: `patch`, plus `create` the first
/// time (an apply that creates is also authorized as create). deploy/role-report.yaml.
pub const REPORT_CALLS: &[ApiCall] = &[
    ApiCall::new("", "configmaps", "create"),
    ApiCall::new("", "configmaps", "patch"),
];

/// What `--apply` needs (resources of the workloads and their HPAs): deploy/apply/. Bare Jobs
/// are never applied (a Job's pod template is immutable), so no `patch` on jobs.
pub const APPLY_CALLS: &[ApiCall] = &[
    ApiCall::new("apps", "deployments", "patch"),
    ApiCall::new("apps", "statefulsets", "patch"),
    ApiCall::new("apps", "daemonsets", "patch"),
    ApiCall::new("batch", "cronjobs", "patch"),
    ApiCall::new("autoscaling", "horizontalpodautoscalers", "patch"),
    // The HPA JSON patch is computed from a fresh read of the HPA (emit/apply.rs).
    ApiCall::new("autoscaling", "horizontalpodautoscalers", "get"),
];

/// The API server refused a request (403): the permission, and the file that grants it.
#[derive(Debug, Clone, Error)]
#[error(
    "{message}\nhint: rightsizer needs the RBAC permission `{verb}` on `{resource}` (API group \"{group}\"); see {}",
    role.file()
)]
pub struct Forbidden {
    pub verb: &'static str,
    pub group: String,
    pub resource: String,
    pub message: String,
    pub role: Role,
}

/// The [`Forbidden`] error of a 403 answer, else `None`.
pub fn forbidden(e: &kube::Error, verb: &'static str, group: &str, resource: &str, role: Role) -> Option<Forbidden> {
    match e {
        kube::Error::Api(status) if status.code == 403 => Some(Forbidden {
            verb,
            group: group.to_string(),
            resource: resource.to_string(),
            message: status.message.clone(),
            role,
        }),
        _ => None,
    }
}
