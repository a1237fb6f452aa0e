//! GitHub's git database endpoints (blobs, trees, commits, refs) and the branch endpoint, over
//! the fake's store. Shapes and errors: docs.github.com/rest/git/{blobs,trees,commits,refs}
//! and /rest/branches/branches, and the `git-*` schemas of GitHub's OpenAPI description.

use base64::Engine;
use serde_json::{Value, json};

use super::github::{error, not_found, validation_failed};
use super::server::Reply;
use super::store::{Person, Tree, now};
use super::{State, store};

fn api(state: &State) -> String {
    format!("{}/api/v3/repos/{}", state.base_url(), state.full_name())
}

fn ref_json(state: &State, branch: &str, sha: &str) -> Value {
    let api = api(state);
    json!({
        "ref": format!("refs/heads/{branch}"),
        "node_id": format!("REF_{}", &sha[..12]),
        "url": format!("{api}/git/refs/heads/{branch}"),
        "object": {"type": "commit", "sha": sha, "url": format!("{api}/git/commits/{sha}")},
    })
}

fn person_json(p: &Person) -> Value {
    json!({"name": p.name, "email": p.email, "date": p.date()})
}

/// The `git-commit` schema.
pub(super) fn commit_json(state: &State, sha: &str) -> Value {
    let api = api(state);
    let html = format!("{}/{}", state.base_url(), state.full_name());
    let Some(c) = state.repo.commit(sha) else {
        return Value::Null;
    };
    json!({
        "sha": c.sha,
        "node_id": format!("C_{}", &c.sha[..12]),
        "url": format!("{api}/git/commits/{}", c.sha),
        "html_url": format!("{html}/commit/{}", c.sha),
        "author": person_json(&c.author),
        "committer": person_json(&c.committer),
        "message": c.message,
        "tree": {"sha": c.tree, "url": format!("{api}/git/trees/{}", c.tree)},
        "parents": c.parents.iter().map(|p| json!({
            "sha": p, "url": format!("{api}/git/commits/{p}"), "html_url": format!("{html}/commit/{p}")
        })).collect::<Vec<_>>(),
        "verification": {"verified": false, "reason": "unsigned", "signature": null, "payload": null, "verified_at": null},
    })
}

/// `GET /repos/{o}/{r}/git/ref/heads/{branch}`: 404 when the ref does not exist.
pub(super) fn get_ref(state: &State, branch: &str, doc: &str) -> Reply {
    match state.repo.branches.get(branch) {
        Some(sha) => Reply::json(200, ref_json(state, branch, sha)),
        None => not_found(doc),
    }
}

/// `POST /repos/{o}/{r}/git/refs` {ref, sha}: 201; 422 "Reference already exists", 422
/// "Object does not exist" for an unknown sha, 422 for a name not of the form `refs/x/y`.
pub(super) fn create_ref(state: &mut State, body: &Value, doc: &str) -> Reply {
    let (Some(name), Some(sha)) = (body["ref"].as_str(), body["sha"].as_str()) else {
        return validation_failed(json!([]), doc);
    };
    let Some(branch) = name.strip_prefix("refs/heads/").filter(|b| !b.is_empty()) else {
        return error(422, "Reference name is invalid", doc);
    };
    if state.repo.commit(sha).is_none() {
        return error(422, "Object does not exist", doc);
    }
    if state.repo.branches.contains_key(branch) {
        return error(422, "Reference already exists", doc);
    }
    state.repo.branches.insert(branch.to_string(), sha.to_string());
    let location = format!("{}/git/refs/heads/{branch}", api(state));
    Reply::json(201, ref_json(state, branch, sha)).header("location", location)
}

/// `PATCH /repos/{o}/{r}/git/refs/heads/{branch}` {sha, force}: 200; 422 "Update is not a
/// fast forward" without force when the new commit does not descend from the old one; 422
/// "Reference does not exist" for a missing ref.
pub(super) fn update_ref(state: &mut State, branch: &str, body: &Value, doc: &str) -> Reply {
    let Some(sha) = body["sha"].as_str() else {
        return validation_failed(
            json!([{"resource": "Reference", "field": "sha", "code": "missing_field"}]),
            doc,
        );
    };
    let force = body["force"].as_bool().unwrap_or(false);
    let Some(old) = state.repo.branches.get(branch).cloned() else {
        return error(422, "Reference does not exist", doc);
    };
    if state.repo.commit(sha).is_none() {
        return error(422, "Object does not exist", doc);
    }
    if !force && !state.repo.is_ancestor(&old, sha) {
        return error(422, "Update is not a fast forward", doc);
    }
    state.repo.branches.insert(branch.to_string(), sha.to_string());
    Reply::json(200, ref_json(state, branch, sha))
}

/// `DELETE /repos/{o}/{r}/git/refs/heads/{branch}`: 204; 422 "Reference does not exist".
/// As on GitHub, deleting the head branch of an open pull request closes it.
pub(super) fn delete_ref(state: &mut State, branch: &str, doc: &str) -> Reply {
    if state.repo.branches.remove(branch).is_none() {
        return error(422, "Reference does not exist", doc);
    }
    for pull in state.pulls.iter_mut().filter(|p| p.head == branch && p.state == "open") {
        pull.state = "closed".into();
        pull.updated = now();
    }
    Reply::empty(204)
}

/// `GET /repos/{o}/{r}/git/commits/{sha}`.
pub(super) fn get_commit(state: &State, sha: &str, doc: &str) -> Reply {
    if state.repo.commit(sha).is_none() {
        return not_found(doc);
    }
    Reply::json(200, commit_json(state, sha))
}

/// `POST /repos/{o}/{r}/git/commits` {message, tree, parents, author?, committer?}: 201;
/// 422 "Tree SHA does not exist", "Parent SHA does not exist or is not a commit object".
pub(super) fn create_commit(state: &mut State, body: &Value, doc: &str) -> Reply {
    let (Some(message), Some(tree)) = (body["message"].as_str(), body["tree"].as_str()) else {
        return validation_failed(json!([]), doc);
    };
    if !state.repo.trees.contains_key(tree) {
        return error(422, "Tree SHA does not exist", doc);
    }
    let parents: Vec<String> = match &body["parents"] {
        Value::Null => Vec::new(),
        Value::Array(items) => items.iter().filter_map(|p| p.as_str().map(str::to_string)).collect(),
        _ => return validation_failed(json!([]), doc),
    };
    if parents.iter().any(|p| state.repo.commit(p).is_none()) {
        return error(422, "Parent SHA does not exist or is not a commit object", doc);
    }
    // Without `author`, GitHub uses the authenticated user; `committer` defaults to the author.
    let person = |v: &Value, default: &Person| -> Person {
        match (v["name"].as_str(), v["email"].as_str()) {
            (Some(name), Some(email)) => Person::new(name, email, default.time),
            _ => default.clone(),
        }
    };
    let bot = Person::new("rightsizer-bot", "rightsizer-bot@users.noreply.github.com", now());
    let author = person(&body["author"], &bot);
    let committer = person(&body["committer"], &author);
    let sha = state.repo.put_commit(tree, parents, message, author, committer);
    let location = format!("{}/git/commits/{sha}", api(state));
    Reply::json(201, commit_json(state, &sha)).header("location", location)
}

/// `POST /repos/{o}/{r}/git/blobs` {content, encoding utf-8|base64}: 201 {sha, url}.
pub(super) fn create_blob(state: &mut State, body: &Value, doc: &str) -> Reply {
    let Some(content) = body["content"].as_str() else {
        return validation_failed(
            json!([{"resource": "Blob", "field": "content", "code": "missing_field"}]),
            doc,
        );
    };
    let bytes = match body["encoding"].as_str().unwrap_or("utf-8") {
        "utf-8" | "utf8" => content.as_bytes().to_vec(),
        "base64" => match base64::engine::general_purpose::STANDARD.decode(content.replace('\n', "")) {
            Ok(bytes) => bytes,
            Err(_) => return error(422, "Invalid Base64 content", doc),
        },
        other => {
            return validation_failed(
                json!([{"resource": "Blob", "field": "encoding", "code": "invalid", "value": other}]),
                doc,
            );
        }
    };
    let sha = state.repo.put_blob(&bytes);
    let url = format!("{}/git/blobs/{sha}", api(state));
    Reply::json(201, json!({"sha": sha, "url": url})).header("location", url)
}

/// `POST /repos/{o}/{r}/git/trees` {base_tree?, tree: [{path, mode, type, sha|content}]}:
/// 201 with the new root tree; entries overwrite `base_tree`'s at the same path, `sha: null`
/// deletes (422 `GitRPC::BadObjectState` when the path is absent), an unknown blob sha is 422
/// "tree.sha ... is not a valid blob".
pub(super) fn create_tree(state: &mut State, body: &Value, doc: &str) -> Reply {
    let Some(entries) = body["tree"].as_array() else {
        return validation_failed(
            json!([{"resource": "Tree", "field": "tree", "code": "missing_field"}]),
            doc,
        );
    };
    let mut tree: Tree = match body["base_tree"].as_str() {
        Some(base) => match state.repo.trees.get(base) {
            Some(tree) => tree.clone(),
            None => return error(422, "base_tree is not a valid tree oid", doc),
        },
        None => Tree::new(),
    };
    for entry in entries {
        let Some(path) = entry["path"]
            .as_str()
            .map(|p| p.trim_matches('/'))
            .filter(|p| !p.is_empty())
        else {
            return validation_failed(
                json!([{"resource": "Tree", "field": "path", "code": "missing_field"}]),
                doc,
            );
        };
        let mode = entry["mode"].as_str().unwrap_or("");
        if !matches!(mode, "100644" | "100755" | "040000" | "160000" | "120000") {
            return error(422, &format!("Invalid tree info: mode {mode:?} for {path}"), doc);
        }
        let has_sha = entry.get("sha").is_some();
        match (entry.get("content").and_then(Value::as_str), &entry["sha"]) {
            (Some(content), _) if !has_sha => {
                let blob = state.repo.put_blob(content.as_bytes());
                tree.insert(path.to_string(), blob);
            }
            (None, Value::Null) if has_sha => {
                let dir = format!("{path}/");
                let before = tree.len();
                tree.retain(|p, _| p != path && !p.starts_with(&dir));
                if tree.len() == before {
                    return error(422, "GitRPC::BadObjectState", doc);
                }
            }
            (None, Value::String(sha)) => {
                if !state.repo.blobs.contains_key(sha.as_str()) {
                    return error(422, &format!("tree.sha {sha} is not a valid blob"), doc);
                }
                tree.insert(path.to_string(), sha.clone());
            }
            _ => {
                return error(
                    422,
                    "Must supply either tree.sha or tree.content. Request will be rejected if both are present.",
                    doc,
                );
            }
        }
    }
    let sha = state.repo.put_tree(tree.clone());
    Reply::json(201, tree_json(state, &sha, &tree))
}

/// The `git-tree` schema: the root's entries (files, and directories as `tree` entries).
fn tree_json(state: &State, sha: &str, tree: &Tree) -> Value {
    let api = api(state);
    let mut entries = Vec::new();
    let mut dirs: std::collections::BTreeMap<String, Tree> = Default::default();
    for (path, blob) in tree {
        match path.split_once('/') {
            Some((dir, rest)) => {
                dirs.entry(dir.to_string())
                    .or_default()
                    .insert(rest.to_string(), blob.clone());
            }
            None => entries.push(json!({
                "path": path, "mode": "100644", "type": "blob", "sha": blob,
                "size": state.repo.blobs.get(blob).map_or(0, Vec::len),
                "url": format!("{api}/git/blobs/{blob}"),
            })),
        }
    }
    for (dir, sub) in dirs {
        let id = store::tree_id(&sub);
        entries.push(
            json!({"path": dir, "mode": "040000", "type": "tree", "sha": id, "url": format!("{api}/git/trees/{id}")}),
        );
    }
    entries.sort_by(|a, b| a["path"].as_str().cmp(&b["path"].as_str()));
    json!({"sha": sha, "url": format!("{api}/git/trees/{sha}"), "tree": entries, "truncated": false})
}

/// `GET /repos/{o}/{r}/branches/{branch}`: the `branch-with-protection` schema; 404 "Branch
/// not found".
pub(super) fn branch(state: &State, name: &str, doc: &str) -> Reply {
    let Some(sha) = state.repo.branches.get(name) else {
        return error(404, "Branch not found", doc);
    };
    let api = api(state);
    let html = format!("{}/{}", state.base_url(), state.full_name());
    let commit = commit_json(state, sha);
    Reply::json(
        200,
        json!({
            "name": name,
            "commit": {
                "sha": sha,
                "node_id": commit["node_id"],
                "commit": {
                    "author": commit["author"], "committer": commit["committer"], "message": commit["message"],
                    "tree": commit["tree"], "url": commit["url"], "comment_count": 0, "verification": commit["verification"],
                },
                "url": format!("{api}/commits/{sha}"),
                "html_url": format!("{html}/commit/{sha}"),
                "comments_url": format!("{api}/commits/{sha}/comments"),
                "parents": commit["parents"],
                "author": null,
                "committer": null,
            },
            "_links": {"self": format!("{api}/branches/{name}"), "html": format!("{html}/tree/{name}")},
            "protected": false,
            "protection": {"enabled": false, "required_status_checks": {"enforcement_level": "off", "contexts": [], "checks": []}},
            "protection_url": format!("{api}/branches/{name}/protection"),
        }),
    )
}

/// The `commit` schema of the commits API (`GET /repos/{o}/{r}/commits`, compare).
fn listed_commit(state: &State, sha: &str) -> Value {
    let git = commit_json(state, sha);
    let api = api(state);
    let html = format!("{}/{}", state.base_url(), state.full_name());
    json!({
        "sha": sha,
        "node_id": git["node_id"],
        "commit": {
            "author": git["author"], "committer": git["committer"], "message": git["message"],
            "tree": git["tree"], "url": git["url"], "comment_count": 0, "verification": git["verification"],
        },
        "url": format!("{api}/commits/{sha}"),
        "html_url": format!("{html}/commit/{sha}"),
        "comments_url": format!("{api}/commits/{sha}/comments"),
        // The GitHub accounts behind the git identities are not modelled.
        "author": null,
        "committer": null,
        "parents": git["parents"],
    })
}

/// `GET /repos/{o}/{r}/commits?sha=&per_page=&page=` ("List commits"): newest first, 30 a
/// page, `Link`; 404 "No commit found for SHA: ..." for an unknown ref.
pub(super) fn list_commits(state: &State, request: &super::server::Req, doc: &str) -> Reply {
    let reference = request.param("sha").unwrap_or(&state.repo.default_branch).to_string();
    let Some(head) = state.repo.resolve(&reference) else {
        return error(404, &format!("No commit found for SHA: {reference}"), doc);
    };
    let history: Vec<String> = state.repo.history(&head).into_iter().map(|c| c.sha).collect();
    let (per_page, page) = state.page_params(request, 30);
    let (items, last) = super::server::page_of(&history, per_page, page);
    let body: Vec<Value> = items.iter().map(|sha| listed_commit(state, sha)).collect();
    let reply = Reply::json(200, Value::Array(body));
    match state.link_header(request, per_page, page, last) {
        Some(link) => reply.header("link", link),
        None => reply,
    }
}

/// `GET /repos/{o}/{r}/commits/{ref}` ("Get a commit"): the commit a branch or sha names,
/// with its `files` against the first parent; 422 "No commit found for SHA: ..." otherwise.
pub(super) fn get_commit_ref(state: &State, reference: &str, doc: &str) -> Reply {
    let Some(sha) = state.repo.resolve(reference) else {
        return error(422, &format!("No commit found for SHA: {reference}"), doc);
    };
    let mut value = listed_commit(state, &sha);
    let parent = state.repo.commit(&sha).and_then(|c| c.parents.first().cloned());
    let old = parent.map(|p| state.repo.files_at(&p)).unwrap_or_default();
    value["files"] = Value::Array(changed_files(state, &old, &state.repo.files_at(&sha)));
    Reply::json(200, value)
}

/// The `diff-entry` list between two file sets (every required field): status
/// added/removed/modified, and line counts from a line-multiset difference (what a unified
/// diff of a changed block counts).
pub(super) fn changed_files(
    state: &State,
    old: &std::collections::BTreeMap<String, Vec<u8>>,
    new: &std::collections::BTreeMap<String, Vec<u8>>,
) -> Vec<Value> {
    let (api, html) = (api(state), format!("{}/{}", state.base_url(), state.full_name()));
    fn lines(bytes: &[u8]) -> std::collections::BTreeMap<&[u8], usize> {
        let mut out = std::collections::BTreeMap::new();
        for line in bytes.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
            *out.entry(line).or_insert(0) += 1;
        }
        out
    }
    fn minus(a: &std::collections::BTreeMap<&[u8], usize>, b: &std::collections::BTreeMap<&[u8], usize>) -> usize {
        a.iter()
            .map(|(line, n)| n.saturating_sub(*b.get(line).unwrap_or(&0)))
            .sum()
    }
    let mut changed = Vec::new();
    for path in old.keys().chain(new.keys()).collect::<std::collections::BTreeSet<_>>() {
        let (before, after) = (old.get(path), new.get(path));
        let status = match (before, after) {
            (None, Some(_)) => "added",
            (Some(_), None) => "removed",
            (Some(a), Some(b)) if a != b => "modified",
            _ => continue,
        };
        let (a, b) = (
            lines(before.map_or(&[][..], Vec::as_slice)),
            lines(after.map_or(&[][..], Vec::as_slice)),
        );
        let (additions, deletions) = (minus(&b, &a), minus(&a, &b));
        let blob = super::sha1::object_id("blob", after.or(before).map_or(&[][..], Vec::as_slice));
        changed.push(json!({
            "sha": blob,
            "filename": path,
            "status": status,
            "additions": additions,
            "deletions": deletions,
            "changes": additions + deletions,
            "blob_url": format!("{html}/blob/{blob}/{path}"),
            "raw_url": format!("{html}/raw/{blob}/{path}"),
            "contents_url": format!("{api}/contents/{path}"),
        }));
    }
    changed
}

/// `GET /repos/{o}/{r}/compare/{base}...{head}` ("Compare two commits"): status, ahead_by,
/// behind_by, the commits on head not on base (oldest first), and the changed files.
pub(super) fn compare(state: &State, basehead: &str, doc: &str) -> Reply {
    let Some((base, head)) = basehead.split_once("...") else {
        return not_found(doc);
    };
    let (Some(base_sha), Some(head_sha)) = (state.repo.resolve(base), state.repo.resolve(head)) else {
        return not_found(doc);
    };
    let on_base: std::collections::HashSet<String> = state.repo.history(&base_sha).into_iter().map(|c| c.sha).collect();
    let on_head: std::collections::HashSet<String> = state.repo.history(&head_sha).into_iter().map(|c| c.sha).collect();
    let mut ahead: Vec<String> = state
        .repo
        .history(&head_sha)
        .into_iter()
        .map(|c| c.sha)
        .filter(|s| !on_base.contains(s))
        .collect();
    ahead.reverse();
    let behind = on_base.iter().filter(|s| !on_head.contains(*s)).count();
    let status = match (ahead.len(), behind) {
        (0, 0) => "identical",
        (_, 0) => "ahead",
        (0, _) => "behind",
        _ => "diverged",
    };
    let changed = changed_files(state, &state.repo.files_at(&base_sha), &state.repo.files_at(&head_sha));
    let merge_base = state
        .repo
        .history(&head_sha)
        .into_iter()
        .find(|c| on_base.contains(&c.sha))
        .map(|c| listed_commit(state, &c.sha));
    Reply::json(
        200,
        json!({
            "url": format!("{}/compare/{basehead}", api(state)),
            "html_url": format!("{}/{}/compare/{basehead}", state.base_url(), state.full_name()),
            "permalink_url": format!("{}/{}/compare/{base_sha}...{head_sha}", state.base_url(), state.full_name()),
            "diff_url": format!("{}/{}/compare/{basehead}.diff", state.base_url(), state.full_name()),
            "patch_url": format!("{}/{}/compare/{basehead}.patch", state.base_url(), state.full_name()),
            "status": status,
            "ahead_by": ahead.len(),
            "behind_by": behind,
            "total_commits": ahead.len(),
            "base_commit": listed_commit(state, &base_sha),
            "merge_base_commit": merge_base,
            "commits": ahead.iter().map(|sha| listed_commit(state, sha)).collect::<Vec<_>>(),
            "files": changed,
        }),
    )
}
