//! GitHub pull requests, labels, review requests and assignees: docs.github.com/rest/pulls/pulls,
//! /rest/pulls/review-requests, /rest/issues/labels, /rest/issues/assignees, and the
//! `pull-request` / `pull-request-simple` / `issue` schemas of GitHub's OpenAPI description.

use serde_json::{Value, json};

use super::github::{error, not_found, validation_failed};
use super::server::{Reply, Req, page_of};
use super::store::{iso_date, now};
use super::{PullState, State};

/// The `simple-user` schema (every required field).
pub(super) fn user(base: &str, login: &str) -> Value {
    let api = format!("{base}/api/v3/users/{login}");
    json!({
        "login": login,
        "id": login.bytes().map(u64::from).sum::<u64>() + 1000,
        "node_id": format!("U_{login}"),
        "avatar_url": format!("{base}/avatars/u/{login}"),
        "gravatar_id": "",
        "url": api,
        "html_url": format!("{base}/{login}"),
        "followers_url": format!("{api}/followers"),
        "following_url": format!("{api}/following{{/other_user}}"),
        "gists_url": format!("{api}/gists{{/gist_id}}"),
        "starred_url": format!("{api}/starred{{/owner}}{{/repo}}"),
        "subscriptions_url": format!("{api}/subscriptions"),
        "organizations_url": format!("{api}/orgs"),
        "repos_url": format!("{api}/repos"),
        "events_url": format!("{api}/events{{/privacy}}"),
        "received_events_url": format!("{api}/received_events"),
        "type": "User",
        "site_admin": false,
    })
}

fn label(state: &State, name: &str) -> Value {
    json!({
        "id": 208045946 + name.len() as u64,
        "node_id": format!("LA_{name}"),
        "url": format!("{}/api/v3/repos/{}/labels/{name}", state.base_url(), state.full_name()),
        "name": name,
        "color": "ededed",
        "default": false,
        "description": null,
    })
}

/// The `pull-request-simple` schema (list items), or with `full` the `pull-request` schema
/// (get, create, update, request reviewers); every required field of each.
fn pull_json(state: &State, p: &PullState, full: bool) -> Value {
    let base = state.base_url();
    let api = format!("{base}/api/v3/repos/{}", state.full_name());
    let html = format!("{base}/{}", state.full_name());
    let user = |login: &str| user(&base, login);
    let end = |branch: &str| {
        json!({
            "label": format!("{}:{branch}", state.owner),
            "ref": branch,
            "sha": state.repo.branches.get(branch).cloned().unwrap_or_default(),
            "user": user(&state.owner),
            "repo": {"id": 1296269, "name": state.name, "full_name": state.full_name(), "private": true,
                     "url": api, "html_url": html},
        })
    };
    let n = p.number;
    let head_sha = state.repo.branches.get(&p.head).cloned().unwrap_or_default();
    let link = |href: String| json!({"href": href});
    let links = json!({
        "self": link(format!("{api}/pulls/{n}")),
        "html": link(format!("{html}/pull/{n}")),
        "issue": link(format!("{api}/issues/{n}")),
        "comments": link(format!("{api}/issues/{n}/comments")),
        "review_comments": link(format!("{api}/pulls/{n}/comments")),
        "review_comment": link(format!("{api}/pulls/comments{{/number}}")),
        "commits": link(format!("{api}/pulls/{n}/commits")),
        "statuses": link(format!("{api}/statuses/{head_sha}")),
    });
    let mut value = json!({
        "url": format!("{api}/pulls/{n}"),
        "id": 1000 + n,
        "node_id": format!("PR_{n}"),
        "html_url": format!("{html}/pull/{n}"),
        "diff_url": format!("{html}/pull/{n}.diff"),
        "patch_url": format!("{html}/pull/{n}.patch"),
        "issue_url": format!("{api}/issues/{n}"),
        "commits_url": format!("{api}/pulls/{n}/commits"),
        "review_comments_url": format!("{api}/pulls/{n}/comments"),
        "review_comment_url": format!("{api}/pulls/comments{{/number}}"),
        "comments_url": format!("{api}/issues/{n}/comments"),
        "statuses_url": format!("{api}/statuses/{head_sha}"),
        "number": n,
        "state": p.state,
        "locked": false,
        "title": p.title,
        "user": user("rightsizer-bot"),
        "body": p.body,
        "labels": p.labels.iter().map(|l| label(state, l)).collect::<Vec<_>>(),
        "milestone": null,
        "active_lock_reason": null,
        "created_at": iso_date(p.created),
        "updated_at": iso_date(p.updated),
        "closed_at": if p.state == "closed" { json!(iso_date(p.updated)) } else { Value::Null },
        "merged_at": null,
        "merge_commit_sha": null,
        "assignee": p.assignees.first().map(|a| user(a)),
        "assignees": p.assignees.iter().map(|a| user(a)).collect::<Vec<_>>(),
        "requested_reviewers": p.reviewers.iter().map(|r| user(r)).collect::<Vec<_>>(),
        "requested_teams": [],
        "head": end(&p.head),
        "base": end(&p.base),
        "_links": links,
        "author_association": "CONTRIBUTOR",
        "auto_merge": null,
        "draft": p.draft,
    });
    if full {
        let base_sha = state.repo.branches.get(&p.base).cloned().unwrap_or_default();
        let commits = state.repo.commits_between(&base_sha, &head_sha);
        let changed =
            super::github_git::changed_files(state, &state.repo.files_at(&base_sha), &state.repo.files_at(&head_sha));
        let count = |key: &str| changed.iter().map(|f| f[key].as_u64().unwrap_or(0)).sum::<u64>();
        let extra = json!({
            "merged": false,
            // GitHub computes mergeability in the background; a fresh read reports it unknown.
            "mergeable": null,
            "rebaseable": null,
            "mergeable_state": "unknown",
            "merged_by": null,
            "comments": 0,
            "review_comments": 0,
            "maintainer_can_modify": false,
            "commits": commits,
            "additions": count("additions"),
            "deletions": count("deletions"),
            "changed_files": changed.len(),
        });
        if let (Some(value), Some(extra)) = (value.as_object_mut(), extra.as_object()) {
            value.extend(extra.clone());
        }
    }
    value
}

/// `GET /repos/{o}/{r}/pulls?state=&head=owner:branch&base=&per_page=&page=`: newest first,
/// 30 a page by default (at most 100), `Link` with rel next/last/prev/first.
pub(super) fn list(state: &State, request: &Req) -> Reply {
    let wanted_state = request.param("state").unwrap_or("open");
    if !matches!(wanted_state, "open" | "closed" | "all") {
        return validation_failed(
            json!([{"resource": "PullRequest", "field": "state", "code": "invalid"}]),
            "https://docs.github.com/rest/pulls/pulls#list-pull-requests",
        );
    }
    // `head` is `user:ref-name` or `organization:ref-name`.
    let head = request.param("head").map(|h| match h.split_once(':') {
        Some((owner, branch)) => (Some(owner.to_string()), branch.to_string()),
        None => (None, h.to_string()),
    });
    let base = request.param("base");
    let mut pulls: Vec<&PullState> = state
        .pulls
        .iter()
        .filter(|p| wanted_state == "all" || p.state == wanted_state)
        .filter(|p| match &head {
            Some((Some(owner), branch)) => owner.eq_ignore_ascii_case(&state.owner) && &p.head == branch,
            // Without an owner GitHub ignores the filter.
            Some((None, _)) | None => true,
        })
        .filter(|p| base.is_none_or(|b| p.base == b))
        .collect();
    let ascending = request.param("direction") == Some("asc");
    pulls.sort_by_key(|p| p.number);
    if !ascending {
        pulls.reverse();
    }
    let (per_page, page) = state.page_params(request, 30);
    let (items, last) = page_of(&pulls, per_page, page);
    let body: Vec<Value> = items.into_iter().map(|p| pull_json(state, p, false)).collect();
    let reply = Reply::json(200, Value::Array(body));
    match state.link_header(request, per_page, page, last) {
        Some(link) => reply.header("link", link),
        None => reply,
    }
}

fn find(state: &State, number: u64) -> Option<usize> {
    state.pulls.iter().position(|p| p.number == number)
}

pub(super) fn get(state: &State, number: u64, doc: &str) -> Reply {
    match find(state, number) {
        Some(i) => Reply::json(200, pull_json(state, &state.pulls[i], true)),
        None => not_found(doc),
    }
}

/// `POST /repos/{o}/{r}/pulls` {title, head, base, body?, draft?}: 201 with `Location`; 422
/// Validation Failed for a missing head/base branch, "A pull request already exists for
/// owner:branch.", "No commits between base and head".
pub(super) fn create(state: &mut State, body: &Value, doc: &str) -> Reply {
    let (Some(title), Some(head), Some(base)) = (body["title"].as_str(), body["head"].as_str(), body["base"].as_str())
    else {
        let missing: Vec<Value> = ["title", "head", "base"]
            .iter()
            .filter(|f| !body[**f].is_string())
            .map(|f| json!({"resource": "PullRequest", "field": f, "code": "missing_field"}))
            .collect();
        return validation_failed(Value::Array(missing), doc);
    };
    let head_branch = match head.split_once(':') {
        Some((owner, branch)) if owner.eq_ignore_ascii_case(&state.owner) => branch,
        Some(_) => {
            return validation_failed(
                json!([{"resource": "PullRequest", "field": "head", "code": "invalid"}]),
                doc,
            );
        }
        None => head,
    };
    let Some(head_sha) = state.repo.branches.get(head_branch).cloned() else {
        return validation_failed(
            json!([{"resource": "PullRequest", "field": "head", "code": "invalid"}]),
            doc,
        );
    };
    let Some(base_sha) = state.repo.branches.get(base).cloned() else {
        return validation_failed(
            json!([{"resource": "PullRequest", "field": "base", "code": "invalid"}]),
            doc,
        );
    };
    if state
        .pulls
        .iter()
        .any(|p| p.state == "open" && p.head == head_branch && p.base == base)
    {
        let message = format!("A pull request already exists for {}:{head_branch}.", state.owner);
        return validation_failed(
            json!([{"resource": "PullRequest", "code": "custom", "message": message}]),
            doc,
        );
    }
    if state.repo.commits_between(&base_sha, &head_sha) == 0 {
        let message = format!("No commits between {base} and {head_branch}");
        return validation_failed(
            json!([{"resource": "PullRequest", "code": "custom", "message": message}]),
            doc,
        );
    }
    let number = state.pulls.iter().map(|p| p.number).max().unwrap_or(0) + 1;
    let t = now();
    let pull = PullState {
        number,
        title: title.to_string(),
        body: body["body"].as_str().unwrap_or("").to_string(),
        head: head_branch.to_string(),
        base: base.to_string(),
        state: "open".into(),
        draft: body["draft"].as_bool().unwrap_or(false),
        labels: Vec::new(),
        reviewers: Vec::new(),
        assignees: Vec::new(),
        created: t,
        updated: t,
    };
    let json = pull_json(state, &pull, true);
    state.pulls.push(pull);
    let location = json["url"].as_str().unwrap_or_default().to_string();
    Reply::json(201, json).header("location", location)
}

/// `PATCH /repos/{o}/{r}/pulls/{n}` {title?, body?, state?, base?}.
pub(super) fn update(state: &mut State, number: u64, body: &Value, doc: &str) -> Reply {
    let Some(i) = find(state, number) else {
        return not_found(doc);
    };
    if let Some(s) = body["state"].as_str()
        && !matches!(s, "open" | "closed")
    {
        return validation_failed(
            json!([{"resource": "PullRequest", "field": "state", "code": "invalid"}]),
            doc,
        );
    }
    if let Some(base) = body["base"].as_str()
        && !state.repo.branches.contains_key(base)
    {
        return validation_failed(
            json!([{"resource": "PullRequest", "field": "base", "code": "invalid"}]),
            doc,
        );
    }
    let pull = &mut state.pulls[i];
    if let Some(title) = body["title"].as_str() {
        pull.title = title.to_string();
    }
    if let Some(text) = body["body"].as_str() {
        pull.body = text.to_string();
    }
    if let Some(s) = body["state"].as_str() {
        pull.state = s.to_string();
    }
    if let Some(base) = body["base"].as_str() {
        pull.base = base.to_string();
    }
    pull.updated = now();
    Reply::json(200, pull_json(state, &state.pulls[i], true))
}

/// `POST /repos/{o}/{r}/issues/{n}/labels` {labels: [..]} (or a bare array): 200 with every
/// label now on the issue; unknown labels are created.
pub(super) fn add_labels(state: &mut State, number: u64, body: &Value, doc: &str) -> Reply {
    let Some(i) = find(state, number) else {
        return not_found(doc);
    };
    let names: Vec<String> = match (body.get("labels"), body) {
        (Some(Value::Array(items)), _) | (None, Value::Array(items)) => {
            items.iter().filter_map(|l| l.as_str().map(str::to_string)).collect()
        }
        _ => {
            return validation_failed(
                json!([{"resource": "Label", "field": "labels", "code": "missing_field"}]),
                doc,
            );
        }
    };
    let pull = &mut state.pulls[i];
    for name in names {
        if !pull.labels.iter().any(|l| l.eq_ignore_ascii_case(&name)) {
            pull.labels.push(name);
        }
    }
    let labels: Vec<Value> = state.pulls[i].labels.iter().map(|l| label(state, l)).collect();
    Reply::json(200, Value::Array(labels))
}

/// `POST /repos/{o}/{r}/pulls/{n}/requested_reviewers` {reviewers, team_reviewers}: 201 with
/// the pull request; 422 when a reviewer is not a collaborator or is the author.
pub(super) fn request_reviewers(state: &mut State, number: u64, body: &Value, doc: &str) -> Reply {
    let Some(i) = find(state, number) else {
        return not_found(doc);
    };
    let reviewers: Vec<String> = body["reviewers"]
        .as_array()
        .map(|items| items.iter().filter_map(|r| r.as_str().map(str::to_string)).collect())
        .unwrap_or_default();
    if reviewers.iter().any(|r| r == "rightsizer-bot") {
        return error(422, "Review cannot be requested from pull request author.", doc);
    }
    if reviewers.iter().any(|r| !state.collaborators.contains(r)) {
        let message = format!(
            "Reviews may only be requested from collaborators. One or more of the users or teams you specified is not a collaborator of the {} repository.",
            state.full_name()
        );
        return error(422, &message, doc);
    }
    let pull = &mut state.pulls[i];
    for r in reviewers {
        if !pull.reviewers.contains(&r) {
            pull.reviewers.push(r);
        }
    }
    Reply::json(201, pull_json(state, &state.pulls[i], true))
}

/// `POST /repos/{o}/{r}/issues/{n}/assignees` {assignees}: 201 with the issue; users without
/// push access are silently ignored (as the docs say).
pub(super) fn add_assignees(state: &mut State, number: u64, body: &Value, doc: &str) -> Reply {
    let Some(i) = find(state, number) else {
        return not_found(doc);
    };
    let wanted: Vec<String> = body["assignees"]
        .as_array()
        .map(|items| items.iter().filter_map(|a| a.as_str().map(str::to_string)).collect())
        .unwrap_or_default();
    let collaborators = state.collaborators.clone();
    let pull = &mut state.pulls[i];
    for a in wanted.into_iter().filter(|a| collaborators.contains(a)) {
        if !pull.assignees.contains(&a) && pull.assignees.len() < 10 {
            pull.assignees.push(a);
        }
    }
    let p = &state.pulls[i];
    let html = format!("{}/{}", state.base_url(), state.full_name());
    let issue = json!({
        "id": 2000 + p.number,
        "number": p.number,
        "title": p.title,
        "state": p.state,
        "html_url": format!("{html}/pull/{}", p.number),
        "assignee": p.assignees.first().map(|a| user(&state.base_url(), a)),
        "assignees": p.assignees.iter().map(|a| user(&state.base_url(), a)).collect::<Vec<_>>(),
        "labels": p.labels.iter().map(|l| label(state, l)).collect::<Vec<_>>(),
        "pull_request": {"url": format!("{}/api/v3/repos/{}/pulls/{}", state.base_url(), state.full_name(), p.number)},
    });
    Reply::json(201, issue)
}
