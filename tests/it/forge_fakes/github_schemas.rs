//! The fake GitHub's JSON against the `required` lists of the schemas in GitHub's OpenAPI
//! description (github/rest-api-description, `components/schemas/<name>`): a client decoding
//! responses with a generated or hand-written model finds every field it may rely on.

use serde_json::{Value, json};

use super::github::{Gh, seeded, with_pull};

const GIT_REF: &[&str] = &["ref", "node_id", "url", "object"];
const GIT_REF_OBJECT: &[&str] = &["type", "sha", "url"];
const GIT_COMMIT: &[&str] = &[
    "sha",
    "node_id",
    "url",
    "html_url",
    "author",
    "committer",
    "tree",
    "message",
    "parents",
    "verification",
];
const GIT_USER: &[&str] = &["email", "name", "date"];
const VERIFICATION: &[&str] = &["verified", "reason", "signature", "payload"];
const GIT_TREE: &[&str] = &["sha", "url", "tree", "truncated"];
const SHORT_BLOB: &[&str] = &["url", "sha"];
const BRANCH_WITH_PROTECTION: &[&str] = &["name", "commit", "_links", "protection", "protected", "protection_url"];
const COMMIT: &[&str] = &[
    "url",
    "sha",
    "node_id",
    "html_url",
    "comments_url",
    "commit",
    "author",
    "committer",
    "parents",
];
const COMMIT_COMMIT: &[&str] = &["author", "committer", "comment_count", "message", "tree", "url"];
const DIFF_ENTRY: &[&str] = &[
    "additions",
    "blob_url",
    "changes",
    "contents_url",
    "deletions",
    "filename",
    "raw_url",
    "sha",
    "status",
];
const COMMIT_COMPARISON: &[&str] = &[
    "url",
    "html_url",
    "permalink_url",
    "diff_url",
    "patch_url",
    "base_commit",
    "merge_base_commit",
    "status",
    "ahead_by",
    "behind_by",
    "total_commits",
    "commits",
];
const PULL_REQUEST_SIMPLE: &[&str] = &[
    "_links",
    "assignee",
    "labels",
    "base",
    "body",
    "closed_at",
    "comments_url",
    "commits_url",
    "created_at",
    "diff_url",
    "head",
    "html_url",
    "id",
    "node_id",
    "issue_url",
    "merge_commit_sha",
    "merged_at",
    "milestone",
    "number",
    "patch_url",
    "review_comment_url",
    "review_comments_url",
    "statuses_url",
    "state",
    "locked",
    "title",
    "updated_at",
    "url",
    "user",
    "author_association",
    "auto_merge",
];
const PULL_REQUEST_EXTRA: &[&str] = &[
    "additions",
    "changed_files",
    "comments",
    "commits",
    "deletions",
    "mergeable",
    "mergeable_state",
    "merged",
    "maintainer_can_modify",
    "merged_by",
    "review_comments",
];
const PULL_REQUEST_END: &[&str] = &["label", "ref", "repo", "sha", "user"];
const SIMPLE_USER: &[&str] = &[
    "avatar_url",
    "events_url",
    "followers_url",
    "following_url",
    "gists_url",
    "gravatar_id",
    "html_url",
    "id",
    "node_id",
    "login",
    "organizations_url",
    "received_events_url",
    "repos_url",
    "site_admin",
    "starred_url",
    "subscriptions_url",
    "type",
    "url",
];
const LABEL: &[&str] = &["id", "node_id", "url", "name", "description", "color", "default"];

#[track_caller]
fn has(schema: &str, value: &Value, required: &[&str]) {
    let missing: Vec<&&str> = required.iter().filter(|k| value.get(**k).is_none()).collect();
    assert!(missing.is_empty(), "{schema}: missing {missing:?} in {value}");
}

/// Docs: GitHub's OpenAPI description, schemas git-ref, git-commit, git-tree, short-blob,
/// branch-with-protection, commit, diff-entry, commit-comparison, pull-request-simple,
/// pull-request, simple-user, label.
#[tokio::test]
async fn github_responses_carry_every_required_field() {
    let forge = seeded().await;
    let gh = Gh::new(&forge);
    let n = with_pull(&forge, &gh, "bot").await;
    gh.post(&format!("/issues/{n}/labels"), json!({"labels": ["rightsizer"]}))
        .await;
    forge.add_collaborator("carol");
    gh.post(&format!("/issues/{n}/assignees"), json!({"assignees": ["carol"]}))
        .await;

    let (_, reference) = gh.get("/git/ref/heads/bot").await;
    has("git-ref", &reference, GIT_REF);
    has("git-ref.object", &reference["object"], GIT_REF_OBJECT);
    let sha = reference["object"]["sha"].as_str().unwrap().to_string();

    let (_, commit) = gh.get(&format!("/git/commits/{sha}")).await;
    has("git-commit", &commit, GIT_COMMIT);
    has("git-commit.author", &commit["author"], GIT_USER);
    has("git-commit.committer", &commit["committer"], GIT_USER);
    has("git-commit.verification", &commit["verification"], VERIFICATION);
    has(
        "git-commit.parents[]",
        &commit["parents"][0],
        &["sha", "url", "html_url"],
    );
    let tree = commit["tree"]["sha"].clone();
    let (_, created) = gh
        .post("/git/trees", json!({"base_tree": tree, "tree": [{"path": "x.yaml", "mode": "100644", "type": "blob", "content": "x\n"}]}))
        .await;
    has("git-tree", &created, GIT_TREE);
    let (_, blob) = gh.post("/git/blobs", json!({"content": "x"})).await;
    has("short-blob", &blob, SHORT_BLOB);

    let (_, branch) = gh.get("/branches/bot").await;
    has("branch-with-protection", &branch, BRANCH_WITH_PROTECTION);
    has("branch-with-protection.commit", &branch["commit"], COMMIT);
    has("commit.commit", &branch["commit"]["commit"], COMMIT_COMMIT);

    let (_, commits) = gh.get("/commits?sha=bot").await;
    has("commit", &commits[0], COMMIT);
    let (_, one) = gh.get("/commits/bot").await;
    has("commit", &one, COMMIT);
    has("diff-entry", &one["files"][0], DIFF_ENTRY);
    let (_, comparison) = gh.get("/compare/main...bot").await;
    has("commit-comparison", &comparison, COMMIT_COMPARISON);
    has("commit-comparison.commits[]", &comparison["commits"][0], COMMIT);
    has("commit-comparison.files[]", &comparison["files"][0], DIFF_ENTRY);

    let (_, list) = gh.get("/pulls").await;
    let simple = &list[0];
    has("pull-request-simple", simple, PULL_REQUEST_SIMPLE);
    has("pull-request-simple.head", &simple["head"], PULL_REQUEST_END);
    has("pull-request-simple.user", &simple["user"], SIMPLE_USER);
    has("pull-request-simple.labels[]", &simple["labels"][0], LABEL);
    has("pull-request-simple.assignees[]", &simple["assignees"][0], SIMPLE_USER);
    for (name, pull) in [
        ("GET", gh.get(&format!("/pulls/{n}")).await.1),
        ("PATCH", gh.patch(&format!("/pulls/{n}"), json!({"body": "b"})).await.1),
        (
            "requested_reviewers",
            gh.post(
                &format!("/pulls/{n}/requested_reviewers"),
                json!({"reviewers": ["carol"]}),
            )
            .await
            .1,
        ),
    ] {
        has(&format!("pull-request ({name})"), &pull, PULL_REQUEST_SIMPLE);
        has(&format!("pull-request ({name})"), &pull, PULL_REQUEST_EXTRA);
        has("pull-request.base", &pull["base"], PULL_REQUEST_END);
    }
    let (_, labels) = gh.post(&format!("/issues/{n}/labels"), json!({"labels": ["x"]})).await;
    has("label", &labels[0], LABEL);
}
