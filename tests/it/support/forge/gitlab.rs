//! The fake GitLab REST API (`/api/v4`): authentication, `RateLimit-*` headers and 429s,
//! injected failures, read-only tokens, projects, branches, commits (read, and create with
//! actions, in `gitlab_commits.rs`), repository archives and users; merge requests are in
//! `gitlab_mr.rs`. Shapes and errors follow docs.gitlab.com/api (rest/, projects, branches,
//! commits, repositories, users, rest/troubleshooting) and GitLab's own API code where the
//! docs are silent (named in place).

use axum::http::Method;
use serde_json::{Value, json};

use super::server::{Reply, Req};
use super::store::now;
use super::{State, archive, gitlab_commits, gitlab_mr};

/// `{"message": "..."}`, the body of GitLab's `render_api_error!`.
pub(super) fn message(status: u16, text: &str) -> Reply {
    Reply::json(status, json!({"message": text}))
}

/// `{"error": "..."}`, the body of parameter validation failures (Grape) and unknown routes.
pub(super) fn bad_params(text: &str) -> Reply {
    Reply::json(400, json!({"error": text}))
}

fn route_not_found() -> Reply {
    Reply::json(404, json!({"error": "404 Not Found"}))
}

/// The body GitLab's API helpers send with each status (`lib/api/helpers.rb`:
/// `bad_request!`, `unauthorized!`, `forbidden!`, `not_found!`, `conflict!`, ...).
fn injected(status: u16) -> Reply {
    match status {
        400 => message(400, "400 Bad request"),
        401 => message(401, "401 Unauthorized"),
        403 => message(403, "403 Forbidden"),
        404 => message(404, "404 Not Found"),
        405 => message(405, "405 Method Not Allowed"),
        409 => message(409, "409 Conflict"),
        422 => message(422, "422 Unprocessable Entity"),
        500 => message(500, "500 Internal Server Error"),
        502 => Reply::bytes(
            502,
            "text/html",
            b"<html><body><h1>502</h1>GitLab is not responding</body></html>".to_vec(),
        ),
        503 => message(503, "503 Service Unavailable"),
        _ => message(status, &format!("{status} Injected failure")),
    }
}

/// Entry point for every request to a GitLab fake.
pub(super) fn serve(state: &mut State, request: &Req) -> Reply {
    let reply = authenticated(state, request);
    if reply.headers.iter().any(|(k, _)| k == "RateLimit-Remaining") {
        return reply;
    }
    // "Rate limits" (user/admin docs): API responses carry the throttle's state.
    let reset = now() - now().rem_euclid(60) + 60;
    reply
        .header("RateLimit-Limit", "2000")
        .header("RateLimit-Observed", state.rate_used.to_string())
        .header(
            "RateLimit-Remaining",
            2000u64.saturating_sub(state.rate_used).to_string(),
        )
        .header("RateLimit-Reset", reset.to_string())
        .header("RateLimit-ResetTime", http_date(reset))
        .header("X-Request-Id", format!("01FAKE{:020}", state.requests.len()))
}

fn http_date(epoch: i64) -> String {
    k8s_openapi::jiff::Timestamp::from_second(epoch)
        .map(|t| t.strftime("%a, %d %b %Y %H:%M:%S GMT").to_string())
        .unwrap_or_default()
}

fn authenticated(state: &mut State, request: &Req) -> Reply {
    let segments = &request.segments;
    if segments.len() < 2 || segments[0] != "api" || segments[1] != "v4" {
        return route_not_found();
    }
    let api = &segments[2..];
    // "REST API authentication": `PRIVATE-TOKEN: <token>` or `Authorization: Bearer <token>`.
    let presented = request.header("private-token").map(str::to_string).or_else(|| {
        let (scheme, token) = request.header("authorization")?.split_once(' ')?;
        scheme.eq_ignore_ascii_case("bearer").then(|| token.trim().to_string())
    });
    match presented {
        Some(token) if token == state.token => {}
        Some(_) => return message(401, "401 Unauthorized"),
        // Anonymous: a private project does not exist for the caller.
        None if api.first().map(String::as_str) == Some("projects") => return message(404, "404 Project Not Found"),
        None => return message(401, "401 Unauthorized"),
    }
    state.count_request();
    if state.take_rate_limit().is_some() {
        return rate_limited(state);
    }
    if let Some(status) = state.take_failure(request) {
        return injected(status);
    }
    if state.read_only && request.is_write() {
        // A `read_api` token writing: 403 insufficient_scope (docs "REST API": status codes).
        let description = "The request requires higher privileges than provided by the access token.";
        return Reply::json(
            403,
            json!({"error": "insufficient_scope", "error_description": description, "scope": "api"}),
        )
        .header(
            "WWW-Authenticate",
            format!(
                "Bearer realm=\"\", error=\"insufficient_scope\", error_description=\"{description}\", scope=\"api\""
            ),
        );
    }
    let body = if request.is_write() {
        match request.json() {
            Ok(body) if body.is_object() => body,
            _ => return message(400, "400 Bad request - body must be a JSON object"),
        }
    } else {
        Value::Null
    };
    let a: Vec<&str> = api.iter().map(String::as_str).collect();
    let m = &request.method;
    if a.as_slice() == ["users"] && m == Method::GET {
        return users(state, request);
    }
    let ["projects", id, rest @ ..] = a.as_slice() else {
        return route_not_found();
    };
    // Project paths are matched without regard to case, as GitLab routes them.
    let known = id.eq_ignore_ascii_case(&state.full_name()) || *id == state.project_id.to_string();
    let routed = route(m, rest);
    if !known {
        return if routed {
            message(404, "404 Project Not Found")
        } else {
            route_not_found()
        };
    }
    match (m.as_str(), rest) {
        ("GET", []) => Reply::json(200, project_json(state)),
        ("GET", ["repository", "branches", branch @ ..]) if !branch.is_empty() => get_branch(state, &branch.join("/")),
        ("POST", ["repository", "branches"]) => create_branch(state, request, &body),
        ("DELETE", ["repository", "branches", branch @ ..]) if !branch.is_empty() => {
            delete_branch(state, &branch.join("/"))
        }
        ("GET", ["repository", "commits", sha]) => match state.repo.resolve(sha) {
            Some(sha) => Reply::json(200, commit_json(state, &sha, None)),
            None => message(404, "404 Commit Not Found"),
        },
        ("POST", ["repository", "commits"]) => gitlab_commits::create(state, &body),
        ("GET", ["repository", "commits"]) => gitlab_commits::list(state, request),
        ("GET", ["repository", "archive.tar.gz"]) | ("GET", ["repository", "archive"]) => archive(state, request),
        ("GET", ["merge_requests"]) => gitlab_mr::list(state, request),
        ("POST", ["merge_requests"]) => gitlab_mr::create(state, &body),
        ("GET", ["merge_requests", iid]) => gitlab_mr::get(state, iid),
        ("PUT", ["merge_requests", iid]) => gitlab_mr::update(state, iid, &body),
        _ => route_not_found(),
    }
}

/// Whether the fake knows the route under `/projects/:id`.
fn route(method: &Method, rest: &[&str]) -> bool {
    matches!(
        (method.as_str(), rest),
        ("GET", [])
            | ("GET", ["repository", "branches", _, ..])
            | ("POST", ["repository", "branches"])
            | ("DELETE", ["repository", "branches", _, ..])
            | ("GET", ["repository", "commits", _])
            | ("POST", ["repository", "commits"])
            | ("GET", ["repository", "commits"])
            | ("GET", ["repository", "archive.tar.gz"])
            | ("GET", ["repository", "archive"])
            | ("GET", ["merge_requests"])
            | ("POST", ["merge_requests"])
            | ("GET", ["merge_requests", _])
            | ("PUT", ["merge_requests", _])
    )
}

/// "Rate limits on GitLab.com" / "User and IP rate limits": 429 with a plain `Retry later`
/// body, `Retry-After` and the `RateLimit-*` headers of the exhausted throttle.
fn rate_limited(state: &State) -> Reply {
    let wait = state.rate_limit_wait.max(0);
    let reset = now() + wait;
    Reply::bytes(429, "text/plain", b"Retry later\n".to_vec())
        .header("RateLimit-Name", "throttle_authenticated_api")
        .header("RateLimit-Limit", "2000")
        .header("RateLimit-Observed", "2001")
        .header("RateLimit-Remaining", "0")
        .header("RateLimit-Reset", reset.to_string())
        .header("RateLimit-ResetTime", http_date(reset))
        .header("Retry-After", wait.to_string())
}

/// `GET /projects/:id` (fields a client reads; "Projects API").
fn project_json(state: &State) -> Value {
    let base = state.base_url();
    let full = state.full_name();
    let access = if state.read_only { 20 } else { 30 };
    json!({
        "id": state.project_id,
        "description": "",
        "name": state.name,
        "name_with_namespace": format!("{} / {}", state.owner, state.name),
        "path": state.name,
        "path_with_namespace": full,
        "default_branch": state.repo.default_branch,
        "visibility": "private",
        "web_url": format!("{base}/{full}"),
        "http_url_to_repo": format!("{base}/{full}.git"),
        "namespace": {"id": 7, "name": state.owner, "path": state.owner, "kind": "group", "full_path": state.owner},
        "archived": false,
        "empty_repo": state.repo.branches.is_empty(),
        "permissions": {"project_access": {"access_level": access, "notification_level": 3}, "group_access": null},
    })
}

/// The commit entity ("Commits API": get a single commit), with `stats` when given.
pub(super) fn commit_json(state: &State, sha: &str, stats: Option<(usize, usize)>) -> Value {
    let Some(c) = state.repo.commit(sha) else {
        return Value::Null;
    };
    let mut value = json!({
        "id": c.sha,
        "short_id": &c.sha[..8],
        "created_at": c.committer.date(),
        "parent_ids": c.parents,
        "title": c.title(),
        "message": c.message,
        "author_name": c.author.name,
        "author_email": c.author.email,
        "authored_date": c.author.date(),
        "committer_name": c.committer.name,
        "committer_email": c.committer.email,
        "committed_date": c.committer.date(),
        "trailers": {},
        "extended_trailers": {},
        "web_url": format!("{}/{}/-/commit/{}", state.base_url(), state.full_name(), c.sha),
    });
    if let Some((additions, deletions)) = stats {
        value["stats"] = json!({"additions": additions, "deletions": deletions, "total": additions + deletions});
        value["status"] = Value::Null;
        value["project_id"] = json!(state.project_id);
        value["last_pipeline"] = Value::Null;
    }
    value
}

/// `GET /projects/:id/repository/branches/:branch` ("Branches API"); 404 "404 Branch Not Found".
fn get_branch(state: &State, name: &str) -> Reply {
    let Some(sha) = state.repo.branches.get(name) else {
        return message(404, "404 Branch Not Found");
    };
    let default = *name == state.repo.default_branch;
    Reply::json(
        200,
        json!({
            "name": name,
            "merged": false,
            "protected": default,
            "default": default,
            "developers_can_push": false,
            "developers_can_merge": false,
            "can_push": !state.read_only,
            "web_url": format!("{}/{}/-/tree/{name}", state.base_url(), state.full_name()),
            "commit": commit_json(state, sha, None),
        }),
    )
}

/// `POST /projects/:id/repository/branches` (branch, ref; query or body) ("Branches API":
/// create repository branch): 201; 400 "Branch already exists" / "Invalid reference name".
fn create_branch(state: &mut State, request: &Req, body: &Value) -> Reply {
    let param = |key: &str| {
        request
            .param(key)
            .map(str::to_string)
            .or_else(|| body[key].as_str().map(str::to_string))
    };
    let (Some(branch), Some(reference)) = (param("branch"), param("ref")) else {
        let missing: Vec<String> = ["branch", "ref"]
            .into_iter()
            .filter(|k| param(k).is_none())
            .map(|k| format!("{k} is missing"))
            .collect();
        return bad_params(&missing.join(", "));
    };
    if state.repo.branches.contains_key(&branch) {
        return message(400, "Branch already exists");
    }
    let Some(sha) = state.repo.resolve(&reference) else {
        return message(400, &format!("Invalid reference name: {reference}"));
    };
    state.repo.branches.insert(branch.clone(), sha);
    let mut reply = get_branch(state, &branch);
    reply.status = 201;
    reply
}

/// `DELETE /projects/:id/repository/branches/:branch`: 204; 404 "404 Branch Not Found".
/// Open merge requests from it stay open, as on GitLab.
fn delete_branch(state: &mut State, branch: &str) -> Reply {
    if branch == state.repo.default_branch {
        // `Branches::DeleteService`: the default branch is refused with 405.
        return message(405, "Cannot remove HEAD branch");
    }
    if state.repo.branches.remove(branch).is_none() {
        return message(404, "404 Branch Not Found");
    }
    Reply::empty(204)
}

/// `GET /projects/:id/repository/archive[.tar.gz]?sha=&path=` ("Repositories API": get file
/// archive): the tree at `sha` (default branch when absent), only the files under `path`,
/// under the top directory GitLab names (`archive::gitlab_prefix`).
fn archive(state: &State, request: &Req) -> Reply {
    if let Some(format) = request.param("format")
        && format != "tar.gz"
    {
        return message(404, "404 Not Found");
    }
    let reference = request.param("sha").unwrap_or(&state.repo.default_branch).to_string();
    let Some(sha) = state.repo.resolve(&reference) else {
        return message(404, "404 File Not Found");
    };
    let path = request
        .param("path")
        .map(|p| p.trim_matches('/'))
        .filter(|p| !p.is_empty());
    let files: std::collections::BTreeMap<String, Vec<u8>> = state
        .repo
        .files_at(&sha)
        .into_iter()
        .filter(|(p, _)| path.is_none_or(|dir| p == dir || p.starts_with(&format!("{dir}/"))))
        .collect();
    let prefix = archive::gitlab_prefix(&state.name, &reference, &sha, path);
    let time = state.repo.commit(&sha).map_or(0, |c| c.committer.time);
    let bytes = archive::tar_gz(&prefix, &sha, time, &files);
    Reply::bytes(200, "application/octet-stream", bytes).header(
        "Content-Disposition",
        format!("attachment; filename=\"{prefix}.tar.gz\""),
    )
}

/// `GET /users?username=` ("Users API"): an array of zero or one user.
fn users(state: &State, request: &Req) -> Reply {
    let list: Vec<Value> = state
        .users
        .iter()
        .filter(|(name, _)| request.param("username").is_none_or(|u| u.eq_ignore_ascii_case(name)))
        .map(|(name, id)| user_json(state, name, *id))
        .collect();
    Reply::json(200, Value::Array(list))
}

pub(super) fn user_json(state: &State, username: &str, id: u64) -> Value {
    json!({
        "id": id,
        "username": username,
        "name": username,
        "state": "active",
        "locked": false,
        "avatar_url": null,
        "web_url": format!("{}/{username}", state.base_url()),
    })
}
