//! Mode `patches` through the pull request: the patch set of an earlier, merged run sits on
//! the base; a stale file of it (a workload that no longer has a change) is deleted by the
//! commit, on both providers (GitHub: a tree entry with `sha: null`; GitLab: a `delete`
//! action), and the rest equals what `--patches-dir` writes locally.

use std::collections::BTreeMap;

use super::{SNAPSHOT, TOKEN, collect, run_binary};
use crate::support::forge::{FakeForge, Provider};

#[test]
fn pull_request_patches_mode_deletes_stale_patch_files() {
    let local = tempfile::tempdir().unwrap();
    let set = local.path().join("set");
    run_binary(
        &[
            "recommend",
            "--snapshot",
            SNAPSHOT,
            "--patches-dir",
            set.to_str().unwrap(),
        ]
        .map(String::from),
        "warn",
    )
    .assert_ok();
    let mut want = BTreeMap::new();
    collect(&set, &set, &mut want);
    assert!(want.contains_key("shop/deployment-cart.yaml"), "{:?}", want.keys());
    for provider in [Provider::GitHub, Provider::GitLab] {
        let forge = FakeForge::start_blocking(provider, "org/repo", TOKEN);
        // The merged set of an earlier run, plus one of rightsizer's files whose workload has
        // no change any more (its marker and checksum are intact: it is rightsizer's).
        let mut seeded: Vec<(String, Vec<u8>)> = want
            .iter()
            .map(|(p, b)| (format!("deploy/rightsizer/{p}"), b.clone()))
            .collect();
        seeded.push((
            "deploy/rightsizer/shop/deployment-gone.yaml".into(),
            want["shop/deployment-cart.yaml"].clone(),
        ));
        seeded.push(("deploy/base/web.yaml".into(), b"kind: Deployment\n".to_vec()));
        let refs: Vec<(&str, &[u8])> = seeded.iter().map(|(p, b)| (p.as_str(), b.as_slice())).collect();
        forge.seed("main", &refs);
        let dir = tempfile::tempdir().unwrap();
        let token = dir.path().join("token");
        std::fs::write(&token, TOKEN).unwrap();
        let name = if provider == Provider::GitHub {
            "github"
        } else {
            "gitlab"
        };
        let args: Vec<String> = [
            "recommend",
            "--snapshot",
            SNAPSHOT,
            "--pull-request",
            // No base branch: the repository's default branch, read from the API.
            &format!("{name}:org/repo:deploy/rightsizer"),
            "--pull-request-mode",
            "patches",
            "--pull-request-api-url",
            &forge.url(),
            "--pull-request-token-file",
            token.to_str().unwrap(),
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let run = run_binary(&args, "info");
        run.assert_ok();
        // One write carries every file inline, the deletion included; no blob per file.
        let writes = forge.writes();
        let commit = match provider {
            Provider::GitHub => writes.iter().find(|r| r.path.ends_with("/git/trees")).unwrap(),
            Provider::GitLab => writes.iter().find(|r| r.path.ends_with("/repository/commits")).unwrap(),
        };
        let body: serde_json::Value = serde_json::from_str(&commit.body).unwrap();
        let gone = "deploy/rightsizer/shop/deployment-gone.yaml";
        match provider {
            Provider::GitHub => {
                assert!(body["base_tree"].is_string(), "{body}");
                let entry = body["tree"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .find(|e| e["path"] == gone)
                    .unwrap();
                assert!(entry["sha"].is_null() && entry.get("sha").is_some(), "{entry}");
                assert!(!writes.iter().any(|r| r.path.ends_with("/git/blobs")));
            }
            Provider::GitLab => {
                assert_eq!(body["force"], true);
                assert!(body["start_sha"].is_string(), "{body}");
                let action = body["actions"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .find(|a| a["file_path"] == gone)
                    .unwrap();
                assert_eq!(action["action"], "delete", "{action}");
            }
        }
        let files = forge.files("rightsizer/resources");
        assert!(
            !files.contains_key("deploy/rightsizer/shop/deployment-gone.yaml"),
            "{name}: the stale patch is deleted: {:?}",
            files.keys()
        );
        assert_eq!(files["deploy/base/web.yaml"], b"kind: Deployment\n", "outside the path");
        let got: BTreeMap<String, Vec<u8>> = files
            .into_iter()
            .filter_map(|(p, b)| p.strip_prefix("deploy/rightsizer/").map(|r| (r.to_string(), b)))
            .collect();
        assert_eq!(got, want, "{name}: the set --patches-dir writes");
        assert_eq!(forge.pulls().len(), 1, "{name}: {}", run.stderr);
    }
}
