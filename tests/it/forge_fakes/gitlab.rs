//! The fake GitLab API through reqwest: the endpoints the pull-request output calls, their
//! errors, authentication, rate limits, permissions and pages.

use serde_json::{Value, json};

use super::{TOKEN, client, files, header, json, read_archive};
use crate::support::forge::{FakeForge, Provider, RateLimit};

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

/// Branch create and delete. Docs: api/branches (create repository branch, delete repository
/// branch); the default branch cannot be deleted.
#[tokio::test]
async fn gitlab_branch_create_and_delete() {
    let forge = seeded().await;
    let gl = Gl::new(&forge);
    let (status, branch) = gl
        .send(
            reqwest::Method::POST,
            "/repository/branches?branch=bot&ref=main",
            json!({}),
        )
        .await;
    assert_eq!((status, branch["name"].as_str()), (201, Some("bot")));
    assert_eq!(forge.branch_head("bot"), forge.branch_head("main"));
    let (status, body) = gl
        .send(
            reqwest::Method::POST,
            "/repository/branches?branch=bot&ref=main",
            json!({}),
        )
        .await;
    assert_eq!((status, body), (400, json!({"message": "Branch already exists"})));
    let (status, _) = gl
        .send(reqwest::Method::DELETE, "/repository/branches/bot", json!({}))
        .await;
    assert_eq!(status, 204);
    assert_eq!(forge.branch_head("bot"), None);
    let (status, body) = gl
        .send(reqwest::Method::DELETE, "/repository/branches/bot", json!({}))
        .await;
    assert_eq!((status, body), (404, json!({"message": "404 Branch Not Found"})));
    let (status, body) = gl
        .send(reqwest::Method::DELETE, "/repository/branches/main", json!({}))
        .await;
    assert_eq!((status, body), (405, json!({"message": "Cannot remove HEAD branch"})));
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

async fn with_mr(forge: &FakeForge, gl: &Gl, branch: &str, extra: Value) -> u64 {
    forge.commit_as_human(branch, &[("k8s/web.yaml", format!("# {branch}\n").as_bytes())], "edit");
    let mut body = json!({"source_branch": branch, "target_branch": "main", "title": branch});
    if let (Some(body), Some(extra)) = (body.as_object_mut(), extra.as_object()) {
        body.extend(extra.clone());
    }
    let (status, mr) = gl.send(reqwest::Method::POST, "/merge_requests", body).await;
    assert_eq!(status, 201, "{mr}");
    mr["iid"].as_u64().unwrap()
}

/// A 429 with GitLab's headers, then service again. Docs: user/gitlab_com (rate limits),
/// administration/settings/user_and_ip_rate_limits ("Response headers", `Retry later`).
#[tokio::test]
async fn gitlab_rate_limit() {
    let forge = seeded().await;
    let gl = Gl::new(&forge);
    forge.rate_limit_next(RateLimit::Primary, 1);
    let response = gl
        .http
        .get(&gl.api)
        .header("PRIVATE-TOKEN", TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 429);
    assert_eq!(header(&response, "Retry-After").as_deref(), Some("1"));
    assert_eq!(header(&response, "RateLimit-Remaining").as_deref(), Some("0"));
    assert!(header(&response, "RateLimit-Reset").is_some() && header(&response, "RateLimit-Limit").is_some());
    assert_eq!(response.text().await.unwrap(), "Retry later\n");
    assert_eq!(gl.get("").await.0, 200);
}

/// Injected failures with GitLab's bodies; a read_api token refused writes with
/// insufficient_scope. Docs: api/rest/troubleshooting (status codes), api/rest/authentication
/// (403 insufficient_scope).
#[tokio::test]
async fn gitlab_failures_and_permissions() {
    let forge = seeded().await;
    let gl = Gl::new(&forge);
    let iid = with_mr(&forge, &gl, "bot", json!({})).await;
    forge.fail_next("PUT", "/api/v4/projects/org%2Frepo/merge_requests", 409, 1);
    forge.fail_next("GET", "/api/v4/projects/org%2Frepo/repository", 503, 2);
    let (status, body) = gl
        .send(
            reqwest::Method::PUT,
            &format!("/merge_requests/{iid}"),
            json!({"title": "t"}),
        )
        .await;
    assert_eq!((status, body), (409, json!({"message": "409 Conflict"})));
    for _ in 0..2 {
        assert_eq!(
            gl.get("/repository/branches/main").await,
            (503, json!({"message": "503 Service Unavailable"}))
        );
    }
    assert_eq!(gl.get("/repository/branches/main").await.0, 200);
    let (status, _) = gl
        .send(
            reqwest::Method::PUT,
            &format!("/merge_requests/{iid}"),
            json!({"title": "t"}),
        )
        .await;
    assert_eq!(status, 200);

    forge.set_permission(true);
    let before = forge.branch_head("main");
    let response = gl
        .http
        .post(format!("{}/repository/commits", gl.api))
        .header("PRIVATE-TOKEN", TOKEN)
        .json(&json!({"branch": "main", "commit_message": "m", "actions": []}))
        .send()
        .await
        .unwrap();
    assert!(
        header(&response, "WWW-Authenticate")
            .unwrap()
            .contains("insufficient_scope")
    );
    let (status, body) = json(response).await;
    assert_eq!(status, 403);
    assert_eq!(body["error"], "insufficient_scope");
    assert_eq!(body["scope"], "api");
    assert_eq!(forge.branch_head("main"), before);
    assert_eq!(gl.get("").await.0, 200, "reads still work");
}

/// Pages of merge requests and commits with GitLab's headers, followed through
/// `x-next-page`. Docs: api/rest (pagination: offset-based pagination headers).
#[tokio::test]
async fn gitlab_pagination() {
    let forge = seeded().await;
    let gl = Gl::new(&forge);
    for i in 1..=5 {
        with_mr(&forge, &gl, &format!("bot-{i}"), json!({})).await;
    }
    forge.set_page_size(2);
    let mut page = "1".to_string();
    let mut iids = Vec::new();
    while !page.is_empty() {
        let response = gl
            .http
            .get(format!(
                "{}/merge_requests?state=opened&per_page=50&page={page}",
                gl.api
            ))
            .header("PRIVATE-TOKEN", TOKEN)
            .send()
            .await
            .unwrap();
        assert_eq!(header(&response, "x-total").as_deref(), Some("5"));
        assert_eq!(header(&response, "x-total-pages").as_deref(), Some("3"));
        assert_eq!(header(&response, "x-per-page").as_deref(), Some("2"));
        assert_eq!(header(&response, "x-page"), Some(page.clone()));
        assert!(header(&response, "link").unwrap().contains("rel=\"last\""));
        page = header(&response, "x-next-page").unwrap();
        let (_, items) = json(response).await;
        iids.extend(items.as_array().unwrap().iter().map(|m| m["iid"].as_u64().unwrap()));
    }
    assert_eq!(iids, vec![5, 4, 3, 2, 1]);
    let (_, one) = gl
        .get("/merge_requests?state=opened&source_branch=bot-2&target_branch=main")
        .await;
    assert_eq!(one.as_array().map(|a| a.len()), Some(1));
    assert_eq!(one[0]["iid"], 2);

    forge.commit_as_human("bot-1", &[("extra.yaml", b"x: 1\n")], "a person's fix");
    let (status, commits) = gl.get("/repository/commits?ref_name=bot-1").await;
    assert_eq!(status, 200);
    assert_eq!(commits.as_array().unwrap().len(), 2, "page size 2 of 3 commits");
    assert_eq!(
        (commits[0]["title"].as_str(), commits[0]["author_name"].as_str()),
        (Some("a person's fix"), Some("Alice"))
    );
}

/// Users, reviewers, assignees and labels on merge requests. Docs: api/users (list users by
/// username), api/merge_requests (create: labels, assignee_ids, reviewer_ids; update:
/// add_labels, remove_labels).
#[tokio::test]
async fn gitlab_users_reviewers_labels() {
    let forge = seeded().await;
    let gl = Gl::new(&forge);
    let carol = forge.add_user("carol");
    let dave = forge.add_user("dave");
    let http = &gl.http;
    let users = |name: &str| {
        http.get(format!("{}/api/v4/users?username={name}", forge.url()))
            .header("PRIVATE-TOKEN", TOKEN)
            .send()
    };
    let (status, found) = json(users("carol").await.unwrap()).await;
    assert_eq!(
        (status, found[0]["id"].as_u64(), found[0]["username"].as_str()),
        (200, Some(carol), Some("carol"))
    );
    assert_eq!(json(users("nobody").await.unwrap()).await, (200, json!([])));

    let iid = with_mr(
        &forge,
        &gl,
        "bot",
        json!({"labels": "rightsizer,resources", "reviewer_ids": [carol], "assignee_ids": [dave]}),
    )
    .await;
    let mr = &forge.pulls()[0];
    assert_eq!(
        (mr.labels.clone(), mr.reviewers.clone(), mr.assignees.clone()),
        (
            vec!["rightsizer".to_string(), "resources".to_string()],
            vec!["carol".to_string()],
            vec!["dave".to_string()]
        )
    );
    let (status, updated) = gl
        .send(
            reqwest::Method::PUT,
            &format!("/merge_requests/{iid}"),
            json!({"add_labels": "cost", "remove_labels": "resources", "reviewer_ids": [carol, dave]}),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(updated["labels"], json!(["rightsizer", "cost"]));
    assert_eq!(updated["reviewers"].as_array().unwrap().len(), 2);
    let (_, closed) = gl
        .send(
            reqwest::Method::PUT,
            &format!("/merge_requests/{iid}"),
            json!({"state_event": "close"}),
        )
        .await;
    assert_eq!(closed["state"], "closed");
    let (_, open) = gl.get("/merge_requests?state=opened").await;
    assert_eq!(open, json!([]));
}
