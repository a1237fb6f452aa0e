//! The fake GitLab API through reqwest: the endpoints the pull-request output calls, their
//! errors, authentication, rate limits, permissions and pages.

use serde_json::{Value, json};

use super::{TOKEN, client, files, header, json, read_archive};
use crate::support::forge::{FakeForge, Provider};

const MANIFEST: &str = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n";

async fn seeded() -> FakeForge {
    let forge = FakeForge::start(Provider::GitLab, "org/repo", TOKEN).await;
    forge.seed(
        "main",
        &[
            ("k8s/web.yaml", MANIFEST.as_bytes()),
            ("k8s/db/sts.yaml", b"kind: StatefulSet\n"),
            ("README.md", b"# repo\n"),
        ],
    );
    forge
}

struct Gl {
    http: reqwest::Client,
    api: String,
}

impl Gl {
    fn new(forge: &FakeForge) -> Gl {
        Gl {
            http: client(),
            api: format!("{}/api/v4/projects/org%2Frepo", forge.url()),
        }
    }

    async fn get(&self, path: &str) -> (u16, Value) {
        json(
            self.http
                .get(format!("{}{path}", self.api))
                .header("PRIVATE-TOKEN", TOKEN)
                .send()
                .await
                .unwrap(),
        )
        .await
    }

    async fn send(&self, method: reqwest::Method, path: &str, body: Value) -> (u16, Value) {
        let request = self.http.request(method, format!("{}{path}", self.api));
        json(request.header("PRIVATE-TOKEN", TOKEN).json(&body).send().await.unwrap()).await
    }
}

/// The product's whole path against GitLab: project, branch, archive of a path, one commit
/// with actions onto a bot branch started from the base, merge request create, list, update.
/// Docs: api/projects (get single project), api/branches, api/repositories (get file archive),
/// api/commits (create a commit with multiple files and actions), api/merge_requests.
#[tokio::test]
async fn gitlab_archive_commit_and_merge_request() {
    let forge = seeded().await;
    let gl = Gl::new(&forge);
    let main_head = forge.branch_head("main").unwrap();
    let post = reqwest::Method::POST;
    let put = reqwest::Method::PUT;

    let (status, project) = gl.get("").await;
    assert_eq!(status, 200);
    assert_eq!(
        (
            project["default_branch"].as_str(),
            project["path_with_namespace"].as_str()
        ),
        (Some("main"), Some("org/repo"))
    );
    let by_id = gl
        .http
        .get(format!("{}/api/v4/projects/{}", forge.url(), forge.project_id()))
        .header("PRIVATE-TOKEN", TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(json(by_id).await.1["id"], forge.project_id());

    let (status, branch) = gl.get("/repository/branches/main").await;
    assert_eq!(
        (status, branch["commit"]["id"].as_str()),
        (200, Some(main_head.as_str()))
    );
    let (status, missing) = gl.get("/repository/branches/rightsizer%2Fprod").await;
    assert_eq!((status, missing), (404, json!({"message": "404 Branch Not Found"})));

    // The archive of `k8s` at main: only that path, under `repo-main-<sha>-k8s/`.
    let response = gl
        .http
        .get(format!("{}/repository/archive.tar.gz?sha=main&path=k8s", gl.api))
        .header("PRIVATE-TOKEN", TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let archive = read_archive(&response.bytes().await.unwrap());
    assert_eq!(archive.tops, vec![format!("repo-main-{main_head}-k8s")]);
    assert_eq!(archive.comment.as_deref(), Some(main_head.as_str()));
    assert_eq!(
        archive.files,
        files(&[("k8s/db/sts.yaml", "kind: StatefulSet\n"), ("k8s/web.yaml", MANIFEST)])
    );

    // One commit on a new bot branch started from main.
    let actions = json!([
        {"action": "update", "file_path": "k8s/web.yaml", "content": "kind: Deployment\n# edited\n"},
        {"action": "create", "file_path": "k8s/new.yaml", "content": "a2luZDogTmV3Cg==", "encoding": "base64"},
        {"action": "delete", "file_path": "k8s/db/sts.yaml"},
    ]);
    let body = json!({"branch": "rightsizer/prod", "start_branch": "main", "commit_message": "rightsizer: 2 workloads",
                      "actions": actions, "author_name": "rightsizer", "author_email": "bot@rightsizer.dev"});
    let (status, commit) = gl.send(post.clone(), "/repository/commits", body.clone()).await;
    assert_eq!(status, 201, "{commit}");
    assert_eq!(commit["parent_ids"], json!([main_head]));
    assert_eq!(
        (commit["author_name"].as_str(), commit["title"].as_str()),
        (Some("rightsizer"), Some("rightsizer: 2 workloads"))
    );
    assert_eq!(
        forge.files("rightsizer/prod"),
        files(&[
            ("README.md", "# repo\n"),
            ("k8s/new.yaml", "kind: New\n"),
            ("k8s/web.yaml", "kind: Deployment\n# edited\n")
        ])
    );
    // Again from main onto the existing branch: refused without force, replaced with it.
    let (status, refused) = gl.send(post.clone(), "/repository/commits", body.clone()).await;
    assert_eq!(status, 400);
    assert_eq!(
        refused["message"],
        "A branch called 'rightsizer/prod' already exists. Switch to that branch in order to make changes"
    );
    let mut forced = body.clone();
    forced["force"] = json!(true);
    let (status, commit) = gl.send(post.clone(), "/repository/commits", forced).await;
    assert_eq!(status, 201);
    assert_eq!(
        commit["parent_ids"],
        json!([main_head]),
        "force recreates the branch from start_branch"
    );
    assert_eq!(forge.commits("rightsizer/prod").len(), 2);
    let (status, commit_get) = gl
        .get(&format!("/repository/commits/{}", commit["id"].as_str().unwrap()))
        .await;
    assert_eq!(
        (status, commit_get["message"].as_str()),
        (200, Some("rightsizer: 2 workloads"))
    );

    // Merge request: none open, create, a second refused with 409, list, update.
    let (status, open) = gl
        .get("/merge_requests?state=opened&source_branch=rightsizer%2Fprod&target_branch=main")
        .await;
    assert_eq!((status, open), (200, json!([])));
    let create = json!({"source_branch": "rightsizer/prod", "target_branch": "main", "title": "Right-size prod", "description": "summary"});
    let (status, mr) = gl.send(post.clone(), "/merge_requests", create.clone()).await;
    assert_eq!(status, 201, "{mr}");
    assert_eq!((mr["iid"].as_u64(), mr["state"].as_str()), (Some(1), Some("opened")));
    let (status, conflict) = gl.send(post.clone(), "/merge_requests", create).await;
    assert_eq!(status, 409);
    assert_eq!(
        conflict,
        json!({"message": ["Another open merge request already exists for this source branch: !1"]})
    );
    let (_, open) = gl
        .get("/merge_requests?state=opened&source_branch=rightsizer%2Fprod")
        .await;
    assert_eq!(open[0]["iid"], 1);
    let (status, updated) = gl
        .send(
            put.clone(),
            "/merge_requests/1",
            json!({"title": "Draft: Right-size prod", "description": "new", "labels": "rightsizer,resources"}),
        )
        .await;
    assert_eq!((status, updated["draft"].as_bool()), (200, Some(true)));
    let mrs = forge.pulls();
    assert_eq!((mrs[0].body.as_str(), mrs[0].draft), ("new", true));
    assert_eq!(mrs[0].labels, vec!["rightsizer", "resources"]);
    assert_eq!(mrs[0].html_url, format!("{}/org/repo/-/merge_requests/1", forge.url()));
    let (status, _) = gl.send(put, "/merge_requests/1", json!({})).await;
    assert_eq!(status, 400, "an update with no parameter is refused");
}

/// Commit action errors. Docs: api/commits (create a commit with multiple files and actions);
/// messages from `Commits::CreateService` / `Files::MultiService` in gitlab-org/gitlab.
#[tokio::test]
async fn gitlab_commit_errors() {
    let forge = seeded().await;
    let gl = Gl::new(&forge);
    let post = reqwest::Method::POST;
    let commit = |actions: Value| json!({"branch": "main", "commit_message": "m", "actions": actions});
    let (status, body) = gl
        .send(
            post.clone(),
            "/repository/commits",
            commit(json!([{"action": "create", "file_path": "README.md", "content": "x"}])),
        )
        .await;
    assert_eq!(
        (status, body),
        (400, json!({"message": "A file with this name already exists"}))
    );
    let (status, body) = gl
        .send(
            post.clone(),
            "/repository/commits",
            commit(json!([{"action": "update", "file_path": "nope", "content": "x"}])),
        )
        .await;
    assert_eq!(
        (status, body),
        (400, json!({"message": "A file with this name doesn't exist"}))
    );
    let (status, body) = gl
        .send(
            post.clone(),
            "/repository/commits",
            json!({"branch": "new", "commit_message": "m", "actions": []}),
        )
        .await;
    assert_eq!(
        (status, body),
        (
            400,
            json!({"message": "You can only create or edit files when you are on a branch"})
        )
    );
    let (status, body) = gl.send(post, "/repository/commits", json!({"branch": "main"})).await;
    assert_eq!(
        (status, body),
        (400, json!({"error": "commit_message is missing, actions is missing"}))
    );
    assert_eq!(forge.commits("main").len(), 1, "refused commits change nothing");
}

/// Authentication and the headers on every response. Docs: api/rest/authentication
/// (PRIVATE-TOKEN, Bearer), api/rest/troubleshooting (401, 404), user/gitlab_com rate limits
/// (RateLimit-* headers).
#[tokio::test]
async fn gitlab_authentication() {
    let forge = seeded().await;
    let http = client();
    let url = format!("{}/api/v4/projects/org%2Frepo", forge.url());
    let private = http.get(&url).header("PRIVATE-TOKEN", TOKEN).send().await.unwrap();
    for name in [
        "RateLimit-Limit",
        "RateLimit-Remaining",
        "RateLimit-Reset",
        "RateLimit-Observed",
    ] {
        assert!(header(&private, name).is_some(), "{name} missing");
    }
    assert_eq!(private.status().as_u16(), 200);
    let bearer = http.get(&url).bearer_auth(TOKEN).send().await.unwrap();
    assert_eq!(bearer.status().as_u16(), 200);
    let wrong = http.get(&url).header("PRIVATE-TOKEN", "nope").send().await.unwrap();
    assert_eq!(json(wrong).await, (401, json!({"message": "401 Unauthorized"})));
    let anonymous = http.get(&url).send().await.unwrap();
    assert_eq!(
        json(anonymous).await,
        (404, json!({"message": "404 Project Not Found"}))
    );
    let other = http
        .get(format!("{}/api/v4/projects/org%2Fother", forge.url()))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(json(other).await, (404, json!({"message": "404 Project Not Found"})));
    let unknown = http
        .get(format!("{url}/repository/tree"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(json(unknown).await, (404, json!({"error": "404 Not Found"})));
    assert_eq!(forge.writes(), vec![]);
}
