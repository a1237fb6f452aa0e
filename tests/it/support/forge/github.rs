//! The fake GitHub REST API (GitHub Enterprise Server layout, `/api/v3`): authentication,
//! rate-limit headers and refusals, injected failures, read-only tokens and routing; the git
//! database endpoints are in `github_git.rs`, pulls, labels, reviewers and assignees in
//! `github_pulls.rs`. Shapes follow GitHub's OpenAPI description (github/rest-api-description)
//! and the docs pages named on each endpoint.

use axum::http::Method;
use serde_json::{Value, json};

use super::server::{Reply, Req};
use super::{RateLimit, State, archive, github_git, github_pulls, sha1, store};

/// The endpoints the fake serves, after `/repos/{owner}/{repo}`.
pub(super) enum Endpoint {
    Repo,
    GetRef(String),
    UpdateRef(String),
    DeleteRef(String),
    CreateRef,
    GetCommit(String),
    CreateCommit,
    CreateTree,
    CreateBlob,
    Branch(String),
    ListCommits,
    GetCommitRef(String),
    Compare(String),
    Tarball(String),
    ListPulls,
    CreatePull,
    GetPull(u64),
    UpdatePull(u64),
    AddLabels(u64),
    RequestReviewers(u64),
    AddAssignees(u64),
}

impl Endpoint {
    fn route(method: &Method, rest: &[String]) -> Option<Endpoint> {
        let joined = |from: usize| rest[from..].join("/");
        let number = |s: &String| s.parse::<u64>().ok();
        let r: Vec<&str> = rest.iter().map(String::as_str).collect();
        let m = method.as_str();
        Some(match (m, r.as_slice()) {
            ("GET", []) => Endpoint::Repo,
            ("GET", ["git", "ref", "heads", _, ..]) => Endpoint::GetRef(joined(3)),
            ("GET", ["git", "refs", "heads", _, ..]) => Endpoint::GetRef(joined(3)),
            ("PATCH", ["git", "refs", "heads", _, ..]) => Endpoint::UpdateRef(joined(3)),
            ("DELETE", ["git", "refs", "heads", _, ..]) => Endpoint::DeleteRef(joined(3)),
            ("POST", ["git", "refs"]) => Endpoint::CreateRef,
            ("GET", ["git", "commits", sha]) => Endpoint::GetCommit((*sha).to_string()),
            ("POST", ["git", "commits"]) => Endpoint::CreateCommit,
            ("POST", ["git", "trees"]) => Endpoint::CreateTree,
            ("POST", ["git", "blobs"]) => Endpoint::CreateBlob,
            ("GET", ["branches", _, ..]) => Endpoint::Branch(joined(1)),
            ("GET", ["commits"]) => Endpoint::ListCommits,
            ("GET", ["commits", _, ..]) => Endpoint::GetCommitRef(joined(1)),
            ("GET", ["compare", _, ..]) => Endpoint::Compare(joined(1)),
            ("GET", ["tarball"]) => Endpoint::Tarball(String::new()),
            ("GET", ["tarball", _, ..]) => Endpoint::Tarball(joined(1)),
            ("GET", ["pulls"]) => Endpoint::ListPulls,
            ("POST", ["pulls"]) => Endpoint::CreatePull,
            ("GET", ["pulls", _]) => Endpoint::GetPull(number(&rest[1])?),
            ("PATCH", ["pulls", _]) => Endpoint::UpdatePull(number(&rest[1])?),
            ("POST", ["pulls", _, "requested_reviewers"]) => Endpoint::RequestReviewers(number(&rest[1])?),
            ("POST", ["issues", _, "labels"]) => Endpoint::AddLabels(number(&rest[1])?),
            ("POST", ["issues", _, "assignees"]) => Endpoint::AddAssignees(number(&rest[1])?),
            _ => return None,
        })
    }

    /// The docs page of the endpoint, as GitHub puts it in `documentation_url`.
    pub fn doc(&self) -> &'static str {
        match self {
            Endpoint::Repo => "https://docs.github.com/rest/repos/repos#get-a-repository",
            Endpoint::GetRef(_) => "https://docs.github.com/rest/git/refs#get-a-reference",
            Endpoint::UpdateRef(_) => "https://docs.github.com/rest/git/refs#update-a-reference",
            Endpoint::DeleteRef(_) => "https://docs.github.com/rest/git/refs#delete-a-reference",
            Endpoint::CreateRef => "https://docs.github.com/rest/git/refs#create-a-reference",
            Endpoint::GetCommit(_) => "https://docs.github.com/rest/git/commits#get-a-commit-object",
            Endpoint::CreateCommit => "https://docs.github.com/rest/git/commits#create-a-commit",
            Endpoint::CreateTree => "https://docs.github.com/rest/git/trees#create-a-tree",
            Endpoint::CreateBlob => "https://docs.github.com/rest/git/blobs#create-a-blob",
            Endpoint::Branch(_) => "https://docs.github.com/rest/branches/branches#get-a-branch",
            Endpoint::ListCommits => "https://docs.github.com/rest/commits/commits#list-commits",
            Endpoint::GetCommitRef(_) => "https://docs.github.com/rest/commits/commits#get-a-commit",
            Endpoint::Compare(_) => "https://docs.github.com/rest/commits/commits#compare-two-commits",
            Endpoint::Tarball(_) => "https://docs.github.com/rest/repos/contents#download-a-repository-archive-tar",
            Endpoint::ListPulls => "https://docs.github.com/rest/pulls/pulls#list-pull-requests",
            Endpoint::CreatePull => "https://docs.github.com/rest/pulls/pulls#create-a-pull-request",
            Endpoint::GetPull(_) => "https://docs.github.com/rest/pulls/pulls#get-a-pull-request",
            Endpoint::UpdatePull(_) => "https://docs.github.com/rest/pulls/pulls#update-a-pull-request",
            Endpoint::AddLabels(_) => "https://docs.github.com/rest/issues/labels#add-labels-to-an-issue",
            Endpoint::RequestReviewers(_) => {
                "https://docs.github.com/rest/pulls/review-requests#request-reviewers-for-a-pull-request"
            }
            Endpoint::AddAssignees(_) => "https://docs.github.com/rest/issues/assignees#add-assignees-to-an-issue",
        }
    }

    /// The fine-grained permissions the endpoint accepts, as GitHub sends them in
    /// `x-accepted-github-permissions` ("Troubleshooting the REST API": comma-separated within a
    /// set, sets separated by semicolons).
    fn permissions(&self) -> &'static str {
        match self {
            Endpoint::CreateRef
            | Endpoint::UpdateRef(_)
            | Endpoint::DeleteRef(_)
            | Endpoint::CreateCommit
            | Endpoint::CreateTree
            | Endpoint::CreateBlob => "contents=write",
            Endpoint::CreatePull | Endpoint::UpdatePull(_) | Endpoint::RequestReviewers(_) => "pull_requests=write",
            Endpoint::AddLabels(_) | Endpoint::AddAssignees(_) => "issues=write; pull_requests=write",
            Endpoint::ListPulls | Endpoint::GetPull(_) => "pull_requests=read",
            _ => "contents=read",
        }
    }
}

/// A GitHub error body: `message`, `documentation_url` and (since 2024) `status` as a string.
pub(super) fn error(status: u16, message: &str, doc: &str) -> Reply {
    Reply::json(
        status,
        json!({"message": message, "documentation_url": doc, "status": status.to_string()}),
    )
}

/// 422 "Validation Failed" with its `errors` array (the `validation-error` schema).
pub(super) fn validation_failed(errors: Value, doc: &str) -> Reply {
    Reply::json(
        422,
        json!({"message": "Validation Failed", "errors": errors, "documentation_url": doc, "status": "422"}),
    )
}

pub(super) fn not_found(doc: &str) -> Reply {
    error(404, "Not Found", doc)
}

/// The body GitHub sends with an injected status.
fn injected(status: u16, endpoint: Option<&Endpoint>) -> Reply {
    let doc = endpoint.map_or("https://docs.github.com/rest", Endpoint::doc);
    match status {
        401 => error(401, "Bad credentials", "https://docs.github.com/rest"),
        403 => error(403, "Resource not accessible by personal access token", doc).header(
            "x-accepted-github-permissions",
            endpoint.map_or("contents=read", Endpoint::permissions),
        ),
        404 => not_found(doc),
        // The git database endpoints document 409 for an empty repository.
        409 => error(409, "Git Repository is empty.", doc),
        422 => validation_failed(json!([]), doc),
        500 => Reply::json(500, json!({"message": "Server Error"})),
        502 => Reply::bytes(502, "text/html", b"<h1>502 Bad Gateway</h1>".to_vec()),
        503 => error(503, "Service Unavailable", doc),
        _ => error(status, "Injected failure", doc),
    }
}

/// Entry point for every request to a GitHub fake.
pub(super) fn serve(state: &mut State, request: &Req) -> Reply {
    let segments = &request.segments;
    if segments.first().map(String::as_str) == Some("_codeload") {
        return codeload(state, request);
    }
    // "Troubleshooting the REST API" / "User agent required": a request without a
    // User-Agent header is refused before anything else, with a text body.
    if request.header("user-agent").is_none_or(str::is_empty) {
        return Reply::bytes(
            403,
            "text/html",
            b"Request forbidden by administrative rules. Please make sure your request has a User-Agent header \
(https://docs.github.com/en/rest/overview/resources-in-the-rest-api#user-agent-required). \
Check https://developer.github.com for other possible causes."
                .to_vec(),
        );
    }
    let reply = authenticated(state, request);
    with_rate_headers(state, reply)
}

fn with_rate_headers(state: &State, reply: Reply) -> Reply {
    if reply.headers.iter().any(|(k, _)| k == "x-ratelimit-remaining") {
        return reply;
    }
    // "Rate limits for the REST API": every response carries the primary limit's state.
    reply
        .header("x-ratelimit-limit", "5000")
        .header(
            "x-ratelimit-remaining",
            5000u64.saturating_sub(state.rate_used).to_string(),
        )
        .header("x-ratelimit-reset", state.rate_reset.to_string())
        .header("x-ratelimit-used", state.rate_used.to_string())
        .header("x-ratelimit-resource", "core")
        .header("x-github-api-version-selected", "2022-11-28")
        .header("x-github-request-id", request_id(state))
}

fn request_id(state: &State) -> String {
    let n = state.requests.len() as u64;
    format!("C0DE:{:04X}:{:06X}:{:07X}:{:08X}", n % 0xFFFF, n * 7, n * 13, n * 31)
}

fn authenticated(state: &mut State, request: &Req) -> Reply {
    let segments = &request.segments;
    if segments.len() < 2 || segments[0] != "api" || segments[1] != "v3" {
        return not_found("https://docs.github.com/rest");
    }
    // "Authenticating to the REST API": `Authorization: Bearer TOKEN` or `token TOKEN`.
    let presented = request.header("authorization").and_then(|value| {
        let (scheme, token) = value.split_once(' ')?;
        matches!(scheme.to_ascii_lowercase().as_str(), "bearer" | "token").then(|| token.trim().to_string())
    });
    let api = &segments[2..];
    let on_repo = api.len() >= 3 && api[0] == "repos";
    let endpoint = if on_repo {
        Endpoint::route(&request.method, &api[3..])
    } else {
        None
    };
    match presented {
        Some(token) if token == state.token => {}
        Some(_) => return error(401, "Bad credentials", "https://docs.github.com/rest"),
        // Unauthenticated: a private repository is not revealed ("Troubleshooting the REST
        // API": 404 Not Found rather than 403 for resources the caller may not see).
        None if on_repo => return not_found(endpoint.as_ref().map_or("https://docs.github.com/rest", Endpoint::doc)),
        None => return error(401, "Requires authentication", "https://docs.github.com/rest"),
    }
    state.count_request();
    if let Some(kind) = state.take_rate_limit() {
        return rate_limited(state, kind);
    }
    if let Some(status) = state.take_failure(request) {
        return injected(status, endpoint.as_ref());
    }
    if !on_repo {
        return not_found("https://docs.github.com/rest");
    }
    let known = api[1].eq_ignore_ascii_case(&state.owner) && api[2].eq_ignore_ascii_case(&state.name);
    let Some(endpoint) = endpoint else {
        return not_found("https://docs.github.com/rest");
    };
    if !known {
        return not_found(endpoint.doc());
    }
    if state.read_only && request.is_write() {
        return injected(403, Some(&endpoint));
    }
    let body = if request.is_write() {
        match request.json() {
            Ok(body) if body.is_object() => body,
            _ => {
                return error(400, "Problems parsing JSON", endpoint.doc());
            }
        }
    } else {
        Value::Null
    };
    dispatch(state, request, &endpoint, &body)
}

fn dispatch(state: &mut State, request: &Req, endpoint: &Endpoint, body: &Value) -> Reply {
    let doc = endpoint.doc();
    match endpoint {
        Endpoint::Repo => Reply::json(200, repo_json(state)),
        Endpoint::GetRef(branch) => github_git::get_ref(state, branch, doc),
        Endpoint::UpdateRef(branch) => github_git::update_ref(state, branch, body, doc),
        Endpoint::DeleteRef(branch) => github_git::delete_ref(state, branch, doc),
        Endpoint::CreateRef => github_git::create_ref(state, body, doc),
        Endpoint::GetCommit(sha) => github_git::get_commit(state, sha, doc),
        Endpoint::CreateCommit => github_git::create_commit(state, body, doc),
        Endpoint::CreateTree => github_git::create_tree(state, body, doc),
        Endpoint::CreateBlob => github_git::create_blob(state, body, doc),
        Endpoint::Branch(branch) => github_git::branch(state, branch, doc),
        Endpoint::ListCommits => github_git::list_commits(state, request, doc),
        Endpoint::GetCommitRef(reference) => github_git::get_commit_ref(state, reference, doc),
        Endpoint::Compare(basehead) => github_git::compare(state, basehead, doc),
        Endpoint::Tarball(reference) => tarball(state, reference, doc),
        Endpoint::ListPulls => github_pulls::list(state, request),
        Endpoint::CreatePull => github_pulls::create(state, body, doc),
        Endpoint::GetPull(n) => github_pulls::get(state, *n, doc),
        Endpoint::UpdatePull(n) => github_pulls::update(state, *n, body, doc),
        Endpoint::AddLabels(n) => github_pulls::add_labels(state, *n, body, doc),
        Endpoint::RequestReviewers(n) => github_pulls::request_reviewers(state, *n, body, doc),
        Endpoint::AddAssignees(n) => github_pulls::add_assignees(state, *n, body, doc),
    }
}

/// "Rate limits for the REST API" / "Troubleshooting the REST API": a primary limit answers
/// 403 with `x-ratelimit-remaining: 0` and the window's end in `x-ratelimit-reset`; a
/// secondary limit answers 403 with `retry-after` and a message naming it.
fn rate_limited(state: &State, kind: RateLimit) -> Reply {
    let id = request_id(state);
    let reset = store::now() + state.rate_limit_wait.max(0) + 1;
    match kind {
        RateLimit::Primary => error(
            403,
            &format!(
                "API rate limit exceeded for user ID 1. If you reach out to GitHub Support for help, please include the request ID {id} and timestamp {} UTC.",
                store::iso_date(store::now()).replace('T', " ").trim_end_matches('Z')
            ),
            "https://docs.github.com/rest/overview/rate-limits-for-the-rest-api",
        )
        .header("x-ratelimit-limit", "5000")
        .header("x-ratelimit-remaining", "0")
        .header("x-ratelimit-reset", reset.to_string())
        .header("x-ratelimit-used", "5000")
        .header("x-ratelimit-resource", "core")
        .header("x-github-request-id", id),
        RateLimit::Secondary | RateLimit::SecondaryTooManyRequests => error(
            if kind == RateLimit::Secondary { 403 } else { 429 },
            &format!(
                "You have exceeded a secondary rate limit. Please wait a few minutes before you try again. If you reach out to GitHub Support for help, please include the request ID {id}."
            ),
            "https://docs.github.com/free-pro-team@latest/rest/overview/rate-limits-for-the-rest-api#about-secondary-rate-limits",
        )
        .header("retry-after", state.rate_limit_wait.max(0).to_string()),
    }
}

/// `GET /repos/{owner}/{repo}` (the `full-repository` schema, fields a client reads).
fn repo_json(state: &State) -> Value {
    let base = state.base_url();
    let full = state.full_name();
    let write = !state.read_only;
    json!({
        "id": 1296269,
        "node_id": "MDEwOlJlcG9zaXRvcnkxMjk2MjY5",
        "name": state.name,
        "full_name": full,
        "owner": {"login": state.owner, "id": 1, "type": "Organization"},
        "private": true,
        "visibility": "private",
        "html_url": format!("{base}/{full}"),
        "url": format!("{base}/api/v3/repos/{full}"),
        "default_branch": state.repo.default_branch,
        "archived": false,
        "disabled": false,
        "permissions": {"admin": false, "maintain": false, "push": write, "triage": write, "pull": true},
    })
}

/// `GET /repos/{owner}/{repo}/tarball/{ref}`: 302 to a short-lived codeload URL
/// ("Download a repository archive (tar)"; the link of a private repository carries a token
/// and expires after five minutes, so it needs no Authorization header).
fn tarball(state: &State, reference: &str, doc: &str) -> Reply {
    let reference = if reference.is_empty() {
        state.repo.default_branch.as_str()
    } else {
        reference
    };
    let Some(sha) = state.repo.resolve(reference) else {
        return not_found(doc);
    };
    let token = codeload_token(&sha);
    let location = format!(
        "{}/_codeload/{}/{}/legacy.tar.gz/{sha}?token={token}",
        state.base_url(),
        state.owner,
        state.name
    );
    Reply::empty(302).header("location", location)
}

fn codeload_token(sha: &str) -> String {
    sha1::object_id("codeload", sha.as_bytes())[..24].to_uppercase()
}

/// The codeload host: `/_codeload/{owner}/{repo}/legacy.tar.gz/{sha}?token=...`, the archive
/// with its top directory `{owner}-{repo}-{sha7}/` as GitHub names it.
fn codeload(state: &State, request: &Req) -> Reply {
    let s: Vec<&str> = request.segments.iter().map(String::as_str).collect();
    let ["_codeload", owner, name, "legacy.tar.gz", sha] = s.as_slice() else {
        return Reply::bytes(404, "text/plain", b"404: Not Found".to_vec());
    };
    let valid = owner.eq_ignore_ascii_case(&state.owner)
        && name.eq_ignore_ascii_case(&state.name)
        && state.repo.commit(sha).is_some()
        && request.param("token") == Some(codeload_token(sha).as_str());
    if !valid {
        return Reply::bytes(404, "text/plain", b"404: Not Found".to_vec());
    }
    let commit = state.repo.commit(sha).expect("checked above");
    let prefix = format!("{}-{}-{}", state.owner, state.name, &sha[..7]);
    let bytes = archive::tar_gz(&prefix, sha, commit.committer.time, &state.repo.files_at(sha));
    Reply::bytes(200, "application/x-gzip", bytes)
        .header("content-disposition", format!("attachment; filename={prefix}.tar.gz"))
}
