//! The fake GitHub API's limits through reqwest: rate limits, injected failures, read-only
//! tokens and pages.

use serde_json::json;

use super::github::{Gh, seeded, with_pull};
use super::{TOKEN, client, header, json};
use crate::support::forge::RateLimit;

fn epoch() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// Primary and secondary rate limits. Docs: rest/using-the-rest-api/rate-limits-for-the-rest-api
/// ("Exceeding the rate limit"), rest/using-the-rest-api/troubleshooting-the-rest-api.
#[tokio::test]
async fn github_rate_limits() {
    let forge = seeded().await;
    let http = client();
    let url = format!("{}/repos/org/repo", forge.url());
    forge.set_rate_limit_wait(2);
    forge.rate_limit_next(RateLimit::Primary, 1);
    let response = http.get(&url).bearer_auth(TOKEN).send().await.unwrap();
    assert_eq!(response.status().as_u16(), 403);
    assert_eq!(header(&response, "x-ratelimit-remaining").as_deref(), Some("0"));
    let reset: i64 = header(&response, "x-ratelimit-reset").unwrap().parse().unwrap();
    let now = epoch();
    assert!(
        reset > now && reset <= now + 4,
        "reset {reset} should be a few seconds after {now}"
    );
    let (_, body) = json(response).await;
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .starts_with("API rate limit exceeded for user ID"),
        "{body}"
    );
    assert_eq!(body["status"], "403");
    let ok = http.get(&url).bearer_auth(TOKEN).send().await.unwrap();
    assert_eq!(ok.status().as_u16(), 200, "one refusal only");
    assert_ne!(header(&ok, "x-ratelimit-remaining").as_deref(), Some("0"));

    forge.set_rate_limit_wait(1);
    forge.rate_limit_next(RateLimit::Secondary, 2);
    for _ in 0..2 {
        let response = http.get(&url).bearer_auth(TOKEN).send().await.unwrap();
        assert_eq!(response.status().as_u16(), 403);
        assert_eq!(header(&response, "retry-after").as_deref(), Some("1"));
        let (_, body) = json(response).await;
        assert!(
            body["message"]
                .as_str()
                .unwrap()
                .starts_with("You have exceeded a secondary rate limit."),
            "{body}"
        );
    }
    assert_eq!(
        http.get(&url)
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap()
            .status()
            .as_u16(),
        200
    );
    forge.rate_limit_next(RateLimit::SecondaryTooManyRequests, 1);
    let response = http.get(&url).bearer_auth(TOKEN).send().await.unwrap();
    assert_eq!(response.status().as_u16(), 429);
    assert_eq!(header(&response, "retry-after").as_deref(), Some("1"));
    let statuses: Vec<u16> = forge.requests().iter().map(|r| r.status).collect();
    assert_eq!(statuses, vec![403, 200, 403, 403, 200, 429]);
}

/// Injected failures answer with GitHub's bodies for the status, then the endpoint works
/// again; a read-only token is refused writes with the permission it lacks. Docs:
/// rest/using-the-rest-api/troubleshooting-the-rest-api ("Resource not accessible",
/// x-accepted-github-permissions), rest/git/refs (409 Conflict), rest/pulls/pulls.
#[tokio::test]
async fn github_failures_and_permissions() {
    let forge = seeded().await;
    let gh = Gh::new(&forge);
    forge.commit_as_human("bot", &[("k8s/web.yaml", b"# bot\n")], "edit");
    forge.fail_next("POST", "/api/v3/repos/org/repo/pulls", 502, 1);
    forge.fail_next("*", "/api/v3/repos/org/repo/git/", 409, 1);
    forge.fail_next("GET", "/api/v3/repos/org/repo", 500, 1);
    let (status, _) = gh
        .post("/pulls", json!({"title": "t", "head": "bot", "base": "main"}))
        .await;
    assert_eq!(status, 502);
    let (status, body) = gh.patch("/git/refs/heads/bot", json!({"sha": "x"})).await;
    assert_eq!(
        (status, body["message"].as_str()),
        (409, Some("Git Repository is empty."))
    );
    assert_eq!(
        body["documentation_url"],
        "https://docs.github.com/rest/git/refs#update-a-reference"
    );
    let (status, body) = gh.get("/branches/main").await;
    assert_eq!((status, body), (500, json!({"message": "Server Error"})));
    let (status, _) = gh
        .post("/pulls", json!({"title": "t", "head": "bot", "base": "main"}))
        .await;
    assert_eq!(status, 201, "the injected failure is used up");
    assert_eq!(forge.pulls().len(), 1);

    forge.set_permission(true);
    let head = forge.branch_head("main").unwrap();
    for (path, permissions) in [
        ("/git/refs", "contents=write"),
        ("/pulls", "pull_requests=write"),
        ("/issues/1/labels", "issues=write; pull_requests=write"),
    ] {
        let response = gh
            .http
            .post(format!("{}{path}", gh.api))
            .bearer_auth(TOKEN)
            .json(&json!({"ref": "refs/heads/x", "sha": head, "labels": ["a"]}))
            .send()
            .await
            .unwrap();
        assert_eq!(
            header(&response, "x-accepted-github-permissions").as_deref(),
            Some(permissions),
            "{path}"
        );
        let (status, body) = json(response).await;
        assert_eq!(
            (status, body["message"].as_str()),
            (403, Some("Resource not accessible by personal access token"))
        );
    }
    let (status, repo) = gh.get("").await;
    assert_eq!((status, repo["permissions"]["push"].as_bool()), (200, Some(false)));
    assert_eq!(forge.branch_head("x"), None);
    forge.set_permission(false);
    let (status, _) = gh.post("/git/refs", json!({"ref": "refs/heads/x", "sha": head})).await;
    assert_eq!(status, 201);
}

/// Pages of pull requests and commits, followed through `Link` as a client does. Docs:
/// rest/using-the-rest-api/using-pagination-in-the-rest-api, rest/pulls/pulls#list-pull-
/// requests, rest/commits/commits#list-commits.
#[tokio::test]
async fn github_pagination() {
    let forge = seeded().await;
    let gh = Gh::new(&forge);
    for i in 1..=5 {
        with_pull(&forge, &gh, &format!("bot-{i}")).await;
    }
    forge.set_page_size(2);
    let mut url = format!("{}/pulls?state=all&per_page=100", gh.api);
    let mut numbers = Vec::new();
    let mut pages = 0;
    loop {
        let response = gh.http.get(&url).bearer_auth(TOKEN).send().await.unwrap();
        let link = header(&response, "link").expect("Link on every page of a multi-page list");
        let (_, page) = json(response).await;
        numbers.extend(page.as_array().unwrap().iter().map(|p| p["number"].as_u64().unwrap()));
        pages += 1;
        if pages == 1 {
            assert!(link.contains("page=3>; rel=\"last\""), "{link}");
            assert!(!link.contains("rel=\"prev\""), "{link}");
        }
        let next = link
            .split(", ")
            .find(|l| l.ends_with("rel=\"next\""))
            .map(|l| l.trim_start_matches('<').split('>').next().unwrap().to_string());
        match next {
            Some(next) => url = next,
            None => {
                assert!(
                    link.contains("rel=\"prev\"") && link.contains("rel=\"first\""),
                    "{link}"
                );
                break;
            }
        }
    }
    assert_eq!((numbers, pages), (vec![5, 4, 3, 2, 1], 3));
    // One page needs no Link; the filter by head applies before paging.
    let one = gh
        .http
        .get(format!("{}/pulls?head=org:bot-3", gh.api))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(header(&one, "link"), None);
    assert_eq!(json(one).await.1[0]["number"], 3);

    // Commits of a branch, newest first; a human commit shows its author.
    forge.commit_as_human("bot-1", &[("extra.yaml", b"x: 1\n")], "a person's fix");
    let (status, commits) = gh.get("/commits?sha=bot-1&per_page=2").await;
    assert_eq!(status, 200);
    assert_eq!(commits.as_array().unwrap().len(), 2);
    assert_eq!(commits[0]["commit"]["message"], "a person's fix");
    assert_eq!(commits[0]["commit"]["author"]["name"], "Alice");
    let (status, body) = gh.get("/commits?sha=nope").await;
    assert_eq!(
        (status, body["message"].as_str()),
        (404, Some("No commit found for SHA: nope"))
    );
    let (status, compare) = gh.get("/compare/main...bot-1").await;
    assert_eq!(status, 200);
    assert_eq!(
        (compare["status"].as_str(), compare["ahead_by"].as_u64()),
        (Some("ahead"), Some(2))
    );
    assert_eq!(compare["commits"][1]["commit"]["message"], "a person's fix");
    assert_eq!(
        compare["files"]
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
        vec![("extra.yaml", "added", 1, 0), ("k8s/web.yaml", "modified", 1, 4)]
    );
}
