//! The fake GitHub API through reqwest: the endpoints the pull-request output calls, their
//! errors, authentication, rate limits, permissions and pages.

use serde_json::{Value, json};

use super::{TOKEN, client, files, header, json, read_archive};
use crate::support::forge::{FakeForge, Provider};

const MANIFEST: &str = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n";

pub(super) async fn seeded() -> FakeForge {
    let forge = FakeForge::start(Provider::GitHub, "org/repo", TOKEN).await;
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

pub(super) struct Gh {
    pub http: reqwest::Client,
    pub api: String,
}

impl Gh {
    pub(super) fn new(forge: &FakeForge) -> Gh {
        Gh {
            http: client(),
            api: format!("{}/repos/org/repo", forge.url()),
        }
    }

    pub(super) async fn get(&self, path: &str) -> (u16, Value) {
        json(
            self.http
                .get(format!("{}{path}", self.api))
                .bearer_auth(TOKEN)
                .send()
                .await
                .unwrap(),
        )
        .await
    }

    pub(super) async fn send(&self, method: reqwest::Method, path: &str, body: Value) -> (u16, Value) {
        let request = self.http.request(method, format!("{}{path}", self.api));
        json(request.bearer_auth(TOKEN).json(&body).send().await.unwrap()).await
    }

    pub(super) async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        self.send(reqwest::Method::POST, path, body).await
    }

    pub(super) async fn patch(&self, path: &str, body: Value) -> (u16, Value) {
        self.send(reqwest::Method::PATCH, path, body).await
    }
}

/// The product's whole path against GitHub: repository, ref, archive (302 to codeload),
/// trees/commits/refs, pull request create, list and update.
/// Docs: rest/repos/repos#get-a-repository, rest/git/refs, rest/repos/contents#download-a-
/// repository-archive-tar, rest/git/trees#create-a-tree, rest/git/commits#create-a-commit,
/// rest/pulls/pulls (list, create, update).
#[tokio::test]
async fn github_archive_commit_and_pull_request() {
    let forge = seeded().await;
    let gh = Gh::new(&forge);
    let main_head = forge.branch_head("main").unwrap();

    let (status, repo) = gh.get("").await;
    assert_eq!(status, 200);
    assert_eq!(repo["default_branch"], "main");
    assert_eq!(repo["full_name"], "org/repo");
    assert_eq!(repo["permissions"]["push"], true);

    let (status, reference) = gh.get("/git/ref/heads/main").await;
    assert_eq!(status, 200);
    assert_eq!(reference["ref"], "refs/heads/main");
    assert_eq!(reference["object"]["sha"], main_head.as_str());
    assert_eq!(reference["object"]["type"], "commit");

    // The archive: 302 to a codeload URL that needs no Authorization, then a tar.gz with a
    // pax comment naming the commit and everything under `org-repo-<sha7>/`.
    let no_redirect = reqwest::Client::builder()
        .user_agent("t")
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let response = no_redirect
        .get(format!("{}/tarball/main", gh.api))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 302);
    let location = header(&response, "location").expect("location");
    assert!(
        location.contains(&format!("/_codeload/org/repo/legacy.tar.gz/{main_head}?token=")),
        "{location}"
    );
    assert!(
        !location.contains(TOKEN),
        "the codeload URL must not carry the API token"
    );
    let codeload = client().get(&location).send().await.unwrap();
    assert_eq!(codeload.status().as_u16(), 200);
    let archive = read_archive(&codeload.bytes().await.unwrap());
    assert_eq!(archive.comment.as_deref(), Some(main_head.as_str()));
    assert_eq!(archive.tops, vec![format!("org-repo-{}", &main_head[..7])]);
    assert_eq!(archive.files, forge.files("main"));
    // The client follows the redirect by itself, with its token still only sent to the API.
    let followed = gh
        .http
        .get(format!("{}/tarball/main", gh.api))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(read_archive(&followed.bytes().await.unwrap()).files.len(), 3);
    let bad = client()
        .get(location.replace("token=", "token=X"))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status().as_u16(), 404, "codeload checks its token");

    // One commit: a tree over the base tree (inline content, a deletion), a commit, a ref.
    let (status, commit) = gh.get(&format!("/git/commits/{main_head}")).await;
    assert_eq!(status, 200);
    let base_tree = commit["tree"]["sha"].as_str().unwrap().to_string();
    assert_eq!(commit["author"]["name"], "Alice");
    let (status, tree) = gh
        .post(
            "/git/trees",
            json!({"base_tree": base_tree, "tree": [
                {"path": "k8s/web.yaml", "mode": "100644", "type": "blob", "content": "kind: Deployment\n# edited\n"},
                {"path": "k8s/db/sts.yaml", "mode": "100644", "type": "blob", "sha": null},
            ]}),
        )
        .await;
    assert_eq!(status, 201, "{tree}");
    let tree_sha = tree["sha"].as_str().unwrap().to_string();
    assert_eq!(tree_sha.len(), 40);
    let (status, created) = gh
        .post(
            "/git/commits",
            json!({"message": "rightsizer: 1 workload", "tree": tree_sha, "parents": [main_head],
                   "author": {"name": "rightsizer", "email": "bot@rightsizer.dev"}}),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    let bot_sha = created["sha"].as_str().unwrap().to_string();
    assert_eq!(created["parents"][0]["sha"], main_head.as_str());
    assert_eq!(created["tree"]["sha"], tree_sha.as_str());
    let (status, reference) = gh
        .post(
            "/git/refs",
            json!({"ref": "refs/heads/rightsizer/prod", "sha": bot_sha}),
        )
        .await;
    assert_eq!(status, 201, "{reference}");
    assert_eq!(reference["ref"], "refs/heads/rightsizer/prod");
    let (status, again) = gh
        .post(
            "/git/refs",
            json!({"ref": "refs/heads/rightsizer/prod", "sha": bot_sha}),
        )
        .await;
    assert_eq!(
        (status, again["message"].as_str()),
        (422, Some("Reference already exists"))
    );
    assert_eq!(
        forge.files("rightsizer/prod"),
        files(&[
            ("README.md", "# repo\n"),
            ("k8s/web.yaml", "kind: Deployment\n# edited\n")
        ])
    );
    let history = forge.commits("rightsizer/prod");
    assert_eq!(history.len(), 2);
    assert_eq!(
        (history[0].author.as_str(), history[0].message.as_str()),
        ("rightsizer", "rightsizer: 1 workload")
    );
    assert_eq!(history[0].parents, vec![main_head.clone()]);

    // Recreating the branch from the base head is not a fast forward: refused without force.
    let (status, refused) = gh
        .patch("/git/refs/heads/rightsizer/prod", json!({"sha": main_head}))
        .await;
    assert_eq!(
        (status, refused["message"].as_str()),
        (422, Some("Update is not a fast forward"))
    );
    assert_eq!(
        refused["documentation_url"],
        "https://docs.github.com/rest/git/refs#update-a-reference"
    );
    let (status, _) = gh
        .patch(
            "/git/refs/heads/rightsizer/prod",
            json!({"sha": bot_sha, "force": true}),
        )
        .await;
    assert_eq!(status, 200);

    let (status, branch) = gh.get("/branches/rightsizer/prod").await;
    assert_eq!(
        (status, branch["commit"]["sha"].as_str()),
        (200, Some(bot_sha.as_str()))
    );
    let (status, missing) = gh.get("/branches/nope").await;
    assert_eq!((status, missing["message"].as_str()), (404, Some("Branch not found")));
    let (status, missing) = gh.get("/git/ref/heads/nope").await;
    assert_eq!(status, 404);
    assert_eq!(
        missing,
        json!({"message": "Not Found", "documentation_url": "https://docs.github.com/rest/git/refs#get-a-reference", "status": "404"})
    );

    // The pull request: none open, create, a second create refused, list finds it, update.
    let (status, open) = gh.get("/pulls?head=org:rightsizer/prod&base=main&state=open").await;
    assert_eq!((status, open), (200, json!([])));
    let (status, pull) = gh
        .post("/pulls", json!({"title": "Right-size prod", "head": "rightsizer/prod", "base": "main", "body": "summary", "draft": false}))
        .await;
    assert_eq!(status, 201, "{pull}");
    assert_eq!(pull["number"], 1);
    assert_eq!(pull["head"]["ref"], "rightsizer/prod");
    assert_eq!(pull["head"]["sha"], bot_sha.as_str());
    assert_eq!(pull["html_url"], forge.pulls()[0].html_url.as_str());
    let (status, again) = gh
        .post(
            "/pulls",
            json!({"title": "x", "head": "org:rightsizer/prod", "base": "main"}),
        )
        .await;
    assert_eq!(status, 422);
    assert_eq!(again["message"], "Validation Failed");
    assert_eq!(
        again["errors"][0]["message"],
        "A pull request already exists for org:rightsizer/prod."
    );
    let (_, open) = gh.get("/pulls?head=org:rightsizer/prod&state=open").await;
    assert_eq!(open.as_array().map(Vec::len), Some(1));
    assert_eq!(open[0]["number"], 1);
    let (_, other_owner) = gh.get("/pulls?head=someone:rightsizer/prod").await;
    assert_eq!(other_owner, json!([]));
    let (status, updated) = gh
        .patch(
            "/pulls/1",
            json!({"title": "Right-size prod (2)", "body": "new summary"}),
        )
        .await;
    assert_eq!((status, updated["title"].as_str()), (200, Some("Right-size prod (2)")));
    let pulls = forge.pulls();
    assert_eq!(pulls.len(), 1);
    assert_eq!(
        (pulls[0].title.as_str(), pulls[0].body.as_str()),
        ("Right-size prod (2)", "new summary")
    );
    assert_eq!(
        (pulls[0].head.as_str(), pulls[0].base.as_str(), pulls[0].state.as_str()),
        ("rightsizer/prod", "main", "open")
    );
    let (status, _) = gh.patch("/pulls/9", json!({"title": "x"})).await;
    assert_eq!(status, 404);

    // Every request was recorded, writes apart.
    let writes: Vec<String> = forge
        .writes()
        .iter()
        .map(|w| format!("{} {}", w.method, w.path))
        .collect();
    assert_eq!(writes[0], "POST /api/v3/repos/org/repo/git/trees");
    assert!(forge.requests().iter().all(|r| r.status != 0));
}

/// A pull request whose head adds nothing to the base, and pull request validation.
/// Docs: rest/pulls/pulls#create-a-pull-request (422 Validation Failed).
#[tokio::test]
async fn github_pull_request_validation() {
    let forge = seeded().await;
    let gh = Gh::new(&forge);
    let head = forge.branch_head("main").unwrap();
    let (status, _) = gh
        .post("/git/refs", json!({"ref": "refs/heads/same", "sha": head}))
        .await;
    assert_eq!(status, 201);
    let (status, body) = gh
        .post("/pulls", json!({"title": "t", "head": "same", "base": "main"}))
        .await;
    assert_eq!(status, 422);
    assert_eq!(body["errors"][0]["message"], "No commits between main and same");
    let (status, body) = gh
        .post("/pulls", json!({"title": "t", "head": "missing", "base": "main"}))
        .await;
    assert_eq!((status, body["errors"][0]["field"].as_str()), (422, Some("head")));
    let (status, body) = gh.post("/pulls", json!({"head": "same", "base": "main"})).await;
    assert_eq!((status, body["errors"][0]["field"].as_str()), (422, Some("title")));
    let (status, body) = gh
        .post("/git/refs", json!({"ref": "refs/heads/x", "sha": "0".repeat(40)}))
        .await;
    assert_eq!((status, body["message"].as_str()), (422, Some("Object does not exist")));
    // Trees: deleting an absent path and naming an unknown blob are refused whole.
    let tree = gh.get(&format!("/git/commits/{head}")).await.1["tree"]["sha"].clone();
    let (status, body) = gh
        .post(
            "/git/trees",
            json!({"base_tree": tree, "tree": [{"path": "nope.yaml", "mode": "100644", "type": "blob", "sha": null}]}),
        )
        .await;
    assert_eq!(
        (status, body["message"].as_str()),
        (422, Some("GitRPC::BadObjectState"))
    );
    let bogus = "1".repeat(40);
    let (status, body) = gh
        .post(
            "/git/trees",
            json!({"tree": [{"path": "a", "mode": "100644", "type": "blob", "sha": bogus}]}),
        )
        .await;
    assert_eq!(status, 422);
    assert_eq!(body["message"], format!("tree.sha {bogus} is not a valid blob"));
    let (status, body) = gh
        .post("/git/commits", json!({"message": "m", "tree": bogus, "parents": []}))
        .await;
    assert_eq!(
        (status, body["message"].as_str()),
        (422, Some("Tree SHA does not exist"))
    );
    // A blob, then a tree naming it.
    let (status, blob) = gh
        .post("/git/blobs", json!({"content": "aGVsbG8K", "encoding": "base64"}))
        .await;
    assert_eq!(
        (status, blob["sha"].as_str()),
        (201, Some("ce013625030ba8dba906f756967f9e9ca394464a"))
    );
    let (status, tree) = gh
        .post(
            "/git/trees",
            json!({"tree": [{"path": "hello.txt", "mode": "100644", "type": "blob", "sha": blob["sha"]}]}),
        )
        .await;
    // The id `git write-tree` gives a tree holding only hello.txt = "hello\n".
    assert_eq!(
        (status, tree["sha"].as_str()),
        (201, Some("aaa96ced2d9a1c8e72c56b253a0e2fe78393feb7"))
    );
}

/// Authentication and the headers on every response. Docs: rest/authentication/
/// authenticating-to-the-rest-api, rest/using-the-rest-api/troubleshooting-the-rest-api
/// (User-Agent required, 401 Bad credentials, 404 for private resources),
/// rest/using-the-rest-api/rate-limits-for-the-rest-api (x-ratelimit-* headers).
#[tokio::test]
async fn github_authentication() {
    let forge = seeded().await;
    let http = client();
    let url = format!("{}/repos/org/repo", forge.url());
    for auth in [format!("Bearer {TOKEN}"), format!("token {TOKEN}")] {
        let response = http.get(&url).header("authorization", auth).send().await.unwrap();
        assert_eq!(response.status().as_u16(), 200);
        for name in [
            "x-ratelimit-limit",
            "x-ratelimit-remaining",
            "x-ratelimit-reset",
            "x-ratelimit-used",
            "x-ratelimit-resource",
        ] {
            assert!(header(&response, name).is_some(), "{name} missing");
        }
    }
    let wrong = http.get(&url).bearer_auth("nope").send().await.unwrap();
    let (status, body) = json(wrong).await;
    assert_eq!(status, 401);
    assert_eq!(
        body,
        json!({"message": "Bad credentials", "documentation_url": "https://docs.github.com/rest", "status": "401"})
    );
    let anonymous = http.get(&url).send().await.unwrap();
    assert_eq!(
        json(anonymous).await,
        (
            404,
            json!({"message": "Not Found", "documentation_url": "https://docs.github.com/rest/repos/repos#get-a-repository", "status": "404"})
        )
    );
    let bare = reqwest::Client::new()
        .get(&url)
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    let (status, body) = json(bare).await;
    assert_eq!(status, 403);
    assert!(
        body.as_str()
            .unwrap()
            .starts_with("Request forbidden by administrative rules."),
        "{body}"
    );
    let other = http
        .get(format!("{}/repos/org/other", forge.url()))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(json(other).await.0, 404);
    let unknown = http
        .get(format!("{url}/contents/README.md"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(
        json(unknown).await,
        (
            404,
            json!({"message": "Not Found", "documentation_url": "https://docs.github.com/rest", "status": "404"})
        )
    );
    assert_eq!(forge.writes(), vec![]);
    let statuses: Vec<u16> = forge.requests().iter().map(|r| r.status).collect();
    assert_eq!(statuses, vec![200, 200, 401, 404, 403, 404, 404]);
}

/// A bot branch with one commit on top of main, and an open pull request for it.
pub(super) async fn with_pull(forge: &FakeForge, gh: &Gh, branch: &str) -> u64 {
    forge.commit_as_human(branch, &[("k8s/web.yaml", format!("# {branch}\n").as_bytes())], "edit");
    let (status, pull) = gh
        .post("/pulls", json!({"title": branch, "head": branch, "base": "main"}))
        .await;
    assert_eq!(status, 201, "{pull}");
    pull["number"].as_u64().unwrap()
}

/// Labels, review requests and assignees. Docs: rest/issues/labels#add-labels-to-an-issue,
/// rest/pulls/review-requests#request-reviewers-for-a-pull-request (422 for a
/// non-collaborator), rest/issues/assignees#add-assignees-to-an-issue (silently ignored).
#[tokio::test]
async fn github_labels_reviewers_assignees() {
    let forge = seeded().await;
    let gh = Gh::new(&forge);
    let n = with_pull(&forge, &gh, "bot").await;
    let (status, labels) = gh
        .post(
            &format!("/issues/{n}/labels"),
            json!({"labels": ["rightsizer", "resources"]}),
        )
        .await;
    assert_eq!(status, 200);
    let names: Vec<&str> = labels
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, vec!["rightsizer", "resources"]);
    let (_, labels) = gh
        .post(&format!("/issues/{n}/labels"), json!({"labels": ["rightsizer"]}))
        .await;
    assert_eq!(labels.as_array().unwrap().len(), 2, "adding a label twice keeps one");

    let (status, body) = gh
        .post(
            &format!("/pulls/{n}/requested_reviewers"),
            json!({"reviewers": ["carol"]}),
        )
        .await;
    assert_eq!(status, 422);
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .starts_with("Reviews may only be requested from collaborators."),
        "{body}"
    );
    let (status, body) = gh
        .post(
            &format!("/pulls/{n}/requested_reviewers"),
            json!({"reviewers": ["rightsizer-bot"]}),
        )
        .await;
    assert_eq!(
        (status, body["message"].as_str()),
        (422, Some("Review cannot be requested from pull request author."))
    );
    forge.add_collaborator("carol");
    let (status, pull) = gh
        .post(
            &format!("/pulls/{n}/requested_reviewers"),
            json!({"reviewers": ["carol"]}),
        )
        .await;
    assert_eq!(
        (status, pull["requested_reviewers"][0]["login"].as_str()),
        (201, Some("carol"))
    );

    let (status, issue) = gh
        .post(
            &format!("/issues/{n}/assignees"),
            json!({"assignees": ["carol", "mallory"]}),
        )
        .await;
    assert_eq!(status, 201);
    assert_eq!(
        issue["assignees"].as_array().unwrap().len(),
        1,
        "a non-collaborator is ignored"
    );
    let pull = &forge.pulls()[0];
    assert_eq!(pull.labels, vec!["rightsizer", "resources"]);
    assert_eq!(
        (pull.reviewers.clone(), pull.assignees.clone()),
        (vec!["carol".to_string()], vec!["carol".to_string()])
    );
    let (status, _) = gh.post("/issues/99/labels", json!({"labels": ["x"]})).await;
    assert_eq!(status, 404);
}

/// `start_blocking` serves from its own thread, for tests that run the binary without a
/// runtime of their own; dropping the fake stops it.
#[test]
fn github_start_blocking_serves_until_dropped() {
    let forge = FakeForge::start_blocking(Provider::GitHub, "org/repo", TOKEN);
    forge.seed("main", &[("a.yaml", b"a: 1\n")]);
    let url = format!("{}/repos/org/repo/git/ref/heads/main", forge.url());
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (status, body) =
        runtime.block_on(async { json(client().get(&url).bearer_auth(TOKEN).send().await.unwrap()).await });
    assert_eq!(
        (status, body["object"]["sha"].as_str()),
        (200, forge.branch_head("main").as_deref())
    );
    drop(forge);
    let after = runtime.block_on(async { client().get(&url).bearer_auth(TOKEN).send().await });
    assert!(after.is_err(), "the server stops on drop");
}
