//! The pull-request output end to end: the real binary (`recommend --snapshot` on the demo
//! snapshot, and `agent` against the fake Kubernetes API and a real Prometheus) against the
//! fake GitHub and GitLab servers (`support/forge`). First run opens the pull request with the
//! files `--manifests` would write and the Markdown summary as body; the same input again
//! writes nothing; a changed policy updates the same pull request with one new commit on the
//! base; nothing to change writes nothing; a human commit is respected; refusals and rate
//! limits; the token never shows at any log level.

mod agent;
mod failures;
mod patches;

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use crate::support::forge::{FakeForge, Provider};

pub(crate) const SNAPSHOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/demo/cluster.snapshot.json.gz");
pub(crate) const TOKEN: &str = "tok-PR-s3cret-1234567890";
pub(crate) const BRANCH: &str = "rightsizer/demo";

/// The demo snapshot's workloads as hand-written manifests, one file each under `k8s/`, with
/// a comment the edit must keep; and a README outside the path.
pub(crate) fn demo_manifests() -> Vec<(String, Vec<u8>)> {
    let mut text = String::new();
    flate2::read::GzDecoder::new(std::fs::File::open(SNAPSHOT).unwrap())
        .read_to_string(&mut text)
        .unwrap();
    let doc: Value = serde_json::from_str(&text).unwrap();
    let mut files = vec![("README.md".to_string(), b"# deploy repo\n".to_vec())];
    for w in doc["workloads"].as_array().unwrap() {
        let (ns, kind, name) = (
            w["key"]["namespace"].as_str().unwrap(),
            w["key"]["kind"].as_str().unwrap(),
            w["key"]["name"].as_str().unwrap(),
        );
        let (api, indent) = match kind {
            "Deployment" | "StatefulSet" | "DaemonSet" => ("apps/v1", "      "),
            "Job" => ("batch/v1", "      "),
            "CronJob" => ("batch/v1", "          "),
            _ => continue,
        };
        let mut y = format!(
            "# {ns}/{name}: kept by hand, comments stay\napiVersion: {api}\nkind: {kind}\nmetadata:\n  name: {name}\n  namespace: {ns}\nspec:\n"
        );
        if kind == "CronJob" {
            y.push_str("  schedule: \"0 3 * * *\"\n  jobTemplate:\n    spec:\n      template:\n        spec:\n");
        } else {
            y.push_str("  template:\n    spec:\n");
        }
        for (list, roles) in [
            ("containers", &["App"][..]),
            ("initContainers", &["Init", "Sidecar"][..]),
        ] {
            let items: Vec<&Value> = w["containers"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|c| roles.contains(&c["role"].as_str().unwrap()))
                .collect();
            if items.is_empty() {
                continue;
            }
            y.push_str(&format!("{indent}{list}:\n"));
            for c in items {
                y.push_str(&format!(
                    "{indent}  - name: {}\n{indent}    image: example/{}:1\n",
                    c["name"].as_str().unwrap(),
                    c["name"].as_str().unwrap()
                ));
                if c["role"] == "Sidecar" {
                    y.push_str(&format!("{indent}    restartPolicy: Always\n"));
                }
                let r = &c["resources"];
                let mut block = String::new();
                for (section, cpu, mem) in [
                    ("requests", "cpuRequest", "memoryRequest"),
                    ("limits", "cpuLimit", "memoryLimit"),
                ] {
                    let mut lines = String::new();
                    if let Some(v) = r[cpu].as_f64() {
                        lines.push_str(&format!("{indent}        cpu: {}\n", rightsizer::model::format_cpu(v)));
                    }
                    if let Some(v) = r[mem].as_f64() {
                        lines.push_str(&format!(
                            "{indent}        memory: {}\n",
                            rightsizer::model::format_memory(v)
                        ));
                    }
                    if !lines.is_empty() {
                        block.push_str(&format!("{indent}      {section}:\n{lines}"));
                    }
                }
                if !block.is_empty() {
                    y.push_str(&format!("{indent}    resources:\n{block}"));
                }
            }
        }
        files.push((format!("k8s/{ns}/{}-{name}.yaml", kind.to_lowercase()), y.into_bytes()));
    }
    files
}

/// What one run of the binary gave.
pub(crate) struct Run {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn assert_ok(&self) -> &Self {
        assert_eq!(self.code, Some(0), "stderr:\n{}", self.stderr);
        self
    }

    /// Neither stream holds the token.
    pub fn assert_no_token(&self) -> &Self {
        assert!(
            !self.stdout.contains(TOKEN) && !self.stderr.contains(TOKEN),
            "the token leaked"
        );
        self
    }
}

/// A repository on a fake forge, seeded with the demo manifests on `main`, and a token file.
pub(crate) struct Repo {
    pub forge: FakeForge,
    pub provider: Provider,
    pub main: String,
    pub dir: tempfile::TempDir,
    pub token: PathBuf,
}

impl Repo {
    pub fn new(provider: Provider) -> Repo {
        let forge = FakeForge::start_blocking(provider, "org/repo", TOKEN);
        let files = demo_manifests();
        let refs: Vec<(&str, &[u8])> = files.iter().map(|(p, b)| (p.as_str(), b.as_slice())).collect();
        let main = forge.seed("main", &refs);
        let dir = tempfile::tempdir().unwrap();
        let token = dir.path().join("token");
        std::fs::write(&token, format!("{TOKEN}\n")).unwrap();
        Repo {
            forge,
            provider,
            main,
            dir,
            token,
        }
    }

    pub fn name(&self) -> &'static str {
        match self.provider {
            Provider::GitHub => "github",
            Provider::GitLab => "gitlab",
        }
    }

    /// `recommend --snapshot` with the pull request to `org/repo@main:k8s/` on this forge.
    pub fn run(&self, extra: &[&str], rust_log: &str) -> Run {
        self.run_to(&format!("{}:org/repo@main:k8s/", self.name()), extra, rust_log)
    }

    /// The same with another `--pull-request` target.
    pub fn run_to(&self, spec: &str, extra: &[&str], rust_log: &str) -> Run {
        let mut args: Vec<String> = [
            "recommend",
            "--snapshot",
            SNAPSHOT,
            "--format",
            "json",
            "--pull-request",
            spec,
            "--pull-request-api-url",
            &self.forge.url(),
            "--pull-request-token-file",
            self.token.to_str().unwrap(),
            "--pull-request-branch",
            BRANCH,
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        args.extend(extra.iter().map(|s| s.to_string()));
        run_binary(&args, rust_log)
    }

    /// The files under `k8s/` on `branch`.
    pub fn k8s(&self, branch: &str) -> BTreeMap<String, Vec<u8>> {
        self.forge
            .files(branch)
            .into_iter()
            .filter(|(p, _)| p.starts_with("k8s/"))
            .collect()
    }
}

pub(crate) fn run_binary(args: &[String], rust_log: &str) -> Run {
    let out = Command::new(env!("CARGO_BIN_EXE_rightsizer"))
        .args(args)
        .env("RUST_LOG", rust_log)
        .env_remove("KUBECONFIG")
        .output()
        .expect("run rightsizer");
    Run {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// What `--manifests` makes of the demo manifests locally: the files the pull request must hold.
fn edited_locally(extra: &[&str]) -> BTreeMap<String, Vec<u8>> {
    let dir = tempfile::tempdir().unwrap();
    for (path, bytes) in demo_manifests() {
        let target = dir.path().join(&path);
        std::fs::create_dir_all(target.parent().unwrap()).unwrap();
        std::fs::write(target, bytes).unwrap();
    }
    let k8s = dir.path().join("k8s");
    let mut args: Vec<String> = [
        "recommend",
        "--snapshot",
        SNAPSHOT,
        "--manifests",
        k8s.to_str().unwrap(),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    args.extend(extra.iter().map(|s| s.to_string()));
    run_binary(&args, "warn").assert_ok();
    let mut out = BTreeMap::new();
    collect(dir.path(), &k8s, &mut out);
    out
}

pub(crate) fn collect(root: &Path, dir: &Path, out: &mut BTreeMap<String, Vec<u8>>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            collect(root, &p, out);
        } else {
            let rel = p.strip_prefix(root).unwrap().to_str().unwrap().to_string();
            out.insert(rel, std::fs::read(&p).unwrap());
        }
    }
}

/// The requests of the last run as `METHOD path status`, for the report and the counts.
pub(crate) fn calls(forge: &FakeForge) -> Vec<String> {
    forge
        .requests()
        .iter()
        .map(|r| format!("{} {} {}", r.method, r.path, r.status))
        .collect()
}

/// First run, the same run again, then a changed policy, on one provider.
fn opens_keeps_and_updates(provider: Provider) {
    let repo = Repo::new(provider);
    let forge = &repo.forge;
    forge.add_collaborator("alice");
    forge.add_user("alice");
    let extras = [
        "--pull-request-labels",
        "resources,bot",
        "--pull-request-reviewers",
        "alice",
        "--pull-request-assignees",
        "alice",
        "--pull-request-draft",
    ];
    // 1. Opens the pull request, at the most verbose log level: the token never shows.
    let first = repo.run(&extras, "trace");
    first.assert_ok().assert_no_token();
    let first_calls = calls(forge);
    eprintln!(
        "{} first run: {} requests\n{}",
        repo.name(),
        first_calls.len(),
        first_calls.join("\n")
    );
    let pulls = forge.pulls();
    assert_eq!(pulls.len(), 1, "{pulls:?}");
    let pull = &pulls[0];
    assert_eq!((pull.head.as_str(), pull.base.as_str()), (BRANCH, "main"));
    assert!(pull.draft, "{pull:?}");
    assert!(
        pull.title.contains("Right-size CPU and memory requests"),
        "{}",
        pull.title
    );
    assert_eq!(pull.labels, ["resources", "bot"]);
    assert_eq!(
        (pull.reviewers.clone(), pull.assignees.clone()),
        (vec!["alice".to_string()], vec!["alice".to_string()])
    );
    // The body is the Markdown summary of the same run, with the footer.
    let report: Value = serde_json::from_str(&first.stdout).unwrap();
    assert!(
        pull.body.starts_with("## rightsizer: resource recommendations"),
        "{}",
        pull.body
    );
    assert!(
        pull.body.contains("`shop/Deployment/cart` | `app` | 2 → 70m"),
        "{}",
        pull.body
    );
    assert!(pull.body.contains("Each run rewrites this branch"), "{}", pull.body);
    assert!(report["totals"]["changed"].as_u64().unwrap() > 5);
    // The branch holds exactly what --manifests writes, in one commit on main; nothing
    // outside the path moved.
    let want = edited_locally(&[]);
    let got = repo.k8s(BRANCH);
    assert_eq!(got.keys().collect::<Vec<_>>(), want.keys().collect::<Vec<_>>());
    for (path, bytes) in &want {
        assert_eq!(
            String::from_utf8_lossy(&got[path]),
            String::from_utf8_lossy(bytes),
            "{path} differs from the --manifests edit"
        );
    }
    let base = repo.k8s("main");
    let changed: Vec<&String> = got.keys().filter(|p| got[*p] != base[*p]).collect();
    assert!(changed.len() >= 8, "{changed:?}");
    assert_eq!(forge.files(BRANCH)["README.md"], forge.files("main")["README.md"]);
    let history = forge.commits(BRANCH);
    assert_eq!(history[0].parents, std::slice::from_ref(&repo.main));
    assert!(
        history[0].message.contains(&format!("Rightsizer-Base: {}", repo.main)),
        "{}",
        history[0].message
    );
    let head1 = forge.branch_head(BRANCH).unwrap();

    // 2. The same input: no write at all.
    forge.clear_records();
    let again = repo.run(&extras, "info");
    again.assert_ok().assert_no_token();
    assert_eq!(forge.writes(), [], "a run on the same input writes nothing");
    let again_calls = calls(forge);
    eprintln!(
        "{} same input: {} requests\n{}",
        repo.name(),
        again_calls.len(),
        again_calls.join("\n")
    );
    assert!(
        again.stderr.contains("action=\"unchanged\"") || again.stderr.contains("action=unchanged"),
        "{}",
        again.stderr
    );
    assert_eq!(forge.branch_head(BRANCH).unwrap(), head1);

    // 3. A changed policy: the same pull request, a new single commit on main, a new body.
    forge.clear_records();
    let changed_policy = ["--cpu-percentile", "0.5"];
    let third = repo.run(&[&extras[..], &changed_policy[..]].concat(), "info");
    third.assert_ok();
    let update_calls = calls(forge);
    eprintln!(
        "{} changed policy: {} requests\n{}",
        repo.name(),
        update_calls.len(),
        update_calls.join("\n")
    );
    let pulls = forge.pulls();
    assert_eq!(pulls.len(), 1, "still one pull request: {pulls:?}");
    assert_eq!(pulls[0].number, pull.number);
    assert_ne!(pulls[0].body, pull.body, "the body follows the new summary");
    assert!(pulls[0].draft, "a draft stays a draft");
    let head3 = forge.branch_head(BRANCH).unwrap();
    assert_ne!(head3, head1);
    assert_eq!(
        forge.commits(BRANCH)[0].parents,
        std::slice::from_ref(&repo.main),
        "one commit on the base"
    );
    let want = edited_locally(&changed_policy);
    let got = repo.k8s(BRANCH);
    for (path, bytes) in &want {
        assert_eq!(got[path], *bytes, "{path} differs from the --manifests edit");
    }
    // Writes: one commit (GitHub: tree, commit, ref) and one update of the pull request.
    let writes: Vec<String> = forge
        .writes()
        .iter()
        .map(|r| format!("{} {}", r.method, r.path))
        .collect();
    match provider {
        Provider::GitHub => assert_eq!(writes.len(), 4, "{writes:?}"),
        Provider::GitLab => assert_eq!(writes.len(), 2, "{writes:?}"),
    }
}

#[test]
fn pull_request_github_opens_keeps_and_updates_one_pull_request() {
    opens_keeps_and_updates(Provider::GitHub);
}

#[test]
fn pull_request_gitlab_opens_keeps_and_updates_one_merge_request() {
    opens_keeps_and_updates(Provider::GitLab);
}

/// Manifests that already hold the recommendation: nothing to change, no write, no pull
/// request; the patch-set mode writes its Component under the path.
#[test]
fn pull_request_nothing_to_change_writes_nothing_and_patches_mode_writes_the_set() {
    let forge = FakeForge::start_blocking(Provider::GitHub, "org/repo", TOKEN);
    let edited = edited_locally(&[]);
    let refs: Vec<(&str, &[u8])> = edited.iter().map(|(p, b)| (p.as_str(), b.as_slice())).collect();
    forge.seed("main", &refs);
    let repo = Repo {
        main: forge.branch_head("main").unwrap(),
        forge,
        provider: Provider::GitHub,
        dir: tempfile::tempdir().unwrap(),
        token: PathBuf::new(),
    };
    let token = repo.dir.path().join("token");
    std::fs::write(&token, TOKEN).unwrap();
    let repo = Repo { token, ..repo };
    let run = repo.run(&[], "info");
    run.assert_ok();
    assert!(run.stderr.contains("nothing-to-change"), "{}", run.stderr);
    assert_eq!(repo.forge.writes(), []);
    assert!(repo.forge.pulls().is_empty());
    assert_eq!(repo.forge.branch_head(BRANCH), None);
    let nothing = calls(&repo.forge);
    eprintln!("nothing to change: {} requests\n{}", nothing.len(), nothing.join("\n"));

    // Mode patches on the same repository: the patch set appears under k8s/rightsizer.
    repo.forge.clear_records();
    let spec = "github:org/repo@main:k8s/rightsizer";
    let args: Vec<String> = [
        "recommend",
        "--snapshot",
        SNAPSHOT,
        "--pull-request",
        spec,
        "--pull-request-mode",
        "patches",
        "--pull-request-api-url",
        &repo.forge.url(),
        "--pull-request-token-file",
        repo.token.to_str().unwrap(),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    run_binary(&args, "info").assert_ok();
    let branch = "rightsizer/resources";
    let files = repo.forge.files(branch);
    assert!(
        files.contains_key("k8s/rightsizer/kustomization.yaml"),
        "{:?}",
        files.keys()
    );
    assert!(
        files.contains_key("k8s/rightsizer/shop/deployment-cart.yaml"),
        "{:?}",
        files.keys()
    );
    assert_eq!(repo.forge.pulls().len(), 1);
    // Local --patches-dir writes the same set.
    let local = tempfile::tempdir().unwrap();
    let dir = local.path().join("set");
    run_binary(
        &[
            "recommend",
            "--snapshot",
            SNAPSHOT,
            "--patches-dir",
            dir.to_str().unwrap(),
        ]
        .map(String::from),
        "warn",
    )
    .assert_ok();
    let mut want = BTreeMap::new();
    collect(local.path(), &dir, &mut want);
    let got: BTreeMap<String, Vec<u8>> = files
        .into_iter()
        .filter_map(|(p, b)| p.strip_prefix("k8s/rightsizer/").map(|r| (format!("set/{r}"), b)))
        .collect();
    assert_eq!(got, want);
}
