//! Reading a branch's history on the fake GitHub, as a client does to see whether a person
//! committed on the bot branch, and what deleting a branch does to its pull request.

use serde_json::json;

use super::TOKEN;
use super::github::{Gh, seeded, with_pull};

/// Docs: rest/commits/commits#get-a-commit (422 "No commit found for SHA"),
/// rest/git/refs#delete-a-reference (the pull request of a deleted head branch is closed).
#[tokio::test]
async fn github_commit_reads_and_branch_deletion() {
    let forge = seeded().await;
    let gh = Gh::new(&forge);
    let n = with_pull(&forge, &gh, "rightsizer/prod").await;
    let human = forge.commit_as_human("rightsizer/prod", &[("k8s/web.yaml", b"# by hand\n")], "hand edit");
    let (status, commit) = gh.get("/commits/rightsizer/prod").await;
    assert_eq!(status, 200);
    assert_eq!(commit["sha"], human.as_str());
    assert_eq!(commit["commit"]["author"]["name"], "Alice");
    assert_eq!(
        commit["files"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| (
                f["filename"].as_str().unwrap(),
                f["status"].as_str().unwrap(),
                f["additions"].as_u64().unwrap(),
                f["deletions"].as_u64().unwrap()
            ))
            .collect::<Vec<_>>(),
        vec![("k8s/web.yaml", "modified", 1, 1)]
    );
    let (status, body) = gh.get("/commits/nope").await;
    assert_eq!(
        (status, body["message"].as_str()),
        (422, Some("No commit found for SHA: nope"))
    );

    let response = gh
        .http
        .delete(format!("{}/git/refs/heads/rightsizer/prod", gh.api))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 204);
    assert_eq!(forge.branch_head("rightsizer/prod"), None);
    assert_eq!(forge.pulls()[0].state, "closed");
    let (_, open) = gh.get("/pulls?state=open").await;
    assert_eq!(open, json!([]));
    let (_, closed) = gh.get("/pulls?state=closed").await;
    assert_eq!(closed[0]["number"], n);
    let again = gh
        .http
        .delete(format!("{}/git/refs/heads/rightsizer/prod", gh.api))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(super::json(again).await.1["message"], "Reference does not exist");
    // The recorded write carries its body.
    let writes = forge.writes();
    assert!(
        writes[0].body.contains("\"head\":\"rightsizer/prod\""),
        "{:?}",
        writes[0]
    );
}
