//! GitLab commits ("Commits API"): list a branch's commits, and create one commit from a list
//! of file actions, the way the pull-request output writes its bot branch.

use base64::Engine;
use serde_json::Value;

use super::gitlab::{bad_params, commit_json, message};
use super::server::{Reply, Req};
use super::store::{Person, now};
use super::{State, store};

/// `GET /projects/:id/repository/commits?ref_name=&page=&per_page=` ("Commits API": list
/// repository commits): newest first, 20 a page, GitLab's pagination headers; an unknown
/// ref lists nothing.
pub(super) fn list(state: &State, request: &Req) -> Reply {
    let reference = request
        .param("ref_name")
        .unwrap_or(&state.repo.default_branch)
        .to_string();
    let history: Vec<String> = state
        .repo
        .resolve(&reference)
        .map(|head| state.repo.history(&head).into_iter().map(|c| c.sha).collect())
        .unwrap_or_default();
    let (per_page, page) = state.page_params(request, 20);
    let (items, last) = super::server::page_of(&history, per_page, page);
    let body: Vec<Value> = items.iter().map(|sha| commit_json(state, sha, None)).collect();
    state.gitlab_pages(
        Reply::json(200, Value::Array(body)),
        request,
        per_page,
        page,
        last,
        history.len(),
    )
}

/// `POST /projects/:id/repository/commits` ("Commits API": create a commit with multiple
/// files and actions). Branch rules from `Commits::CreateService` (gitlab-org/gitlab):
/// without `start_branch`/`start_sha` the branch must exist ("You can only create or edit
/// files when you are on a branch"); starting elsewhere onto an existing branch needs `force`
/// ("A branch called '...' already exists. Switch to that branch in order to make changes").
pub(super) fn create(state: &mut State, body: &Value) -> Reply {
    let missing: Vec<&str> = ["branch", "commit_message", "actions"]
        .into_iter()
        .filter(|k| body[*k].is_null())
        .collect();
    if !missing.is_empty() {
        let text: Vec<String> = missing.iter().map(|k| format!("{k} is missing")).collect();
        return bad_params(&text.join(", "));
    }
    let (Some(branch), Some(commit_message), Some(actions)) = (
        body["branch"].as_str(),
        body["commit_message"].as_str(),
        body["actions"].as_array(),
    ) else {
        return bad_params("branch is invalid, commit_message is invalid, actions is invalid");
    };
    let start_branch = body["start_branch"].as_str();
    let start_sha = body["start_sha"].as_str();
    if start_branch.is_some() && start_sha.is_some() {
        return bad_params("start_branch, start_sha are mutually exclusive");
    }
    let force = body["force"].as_bool().unwrap_or(false);
    let empty = state.repo.branches.is_empty();
    let parent = match (start_sha, start_branch) {
        (Some(sha), _) => match state.repo.commit(sha) {
            Some(c) => Some(c.sha.clone()),
            None => return message(400, &format!("Invalid start_sha: {sha}")),
        },
        (None, from) => {
            let from = from.unwrap_or(branch);
            match state.repo.branches.get(from) {
                Some(sha) => Some(sha.clone()),
                None if empty => None,
                None => return message(400, "You can only create or edit files when you are on a branch"),
            }
        }
    };
    let different_branch = start_sha.is_some() || start_branch.is_some_and(|s| s != branch);
    if !empty && different_branch && state.repo.branches.contains_key(branch) && !force {
        return message(
            400,
            &format!("A branch called '{branch}' already exists. Switch to that branch in order to make changes"),
        );
    }
    let mut tree = parent
        .as_deref()
        .and_then(|sha| state.repo.commit(sha))
        .and_then(|c| state.repo.trees.get(&c.tree))
        .cloned()
        .unwrap_or_default();
    let (mut additions, mut deletions) = (0usize, 0usize);
    for (i, action) in actions.iter().enumerate() {
        let Some(path) = action["file_path"]
            .as_str()
            .map(|p| p.trim_start_matches('/').to_string())
        else {
            return bad_params(&format!("actions[{i}][file_path] is missing"));
        };
        let content = match action["content"].as_str() {
            None => None,
            Some(text) => match action["encoding"].as_str().unwrap_or("text") {
                "text" => Some(text.as_bytes().to_vec()),
                "base64" => match base64::engine::general_purpose::STANDARD.decode(text.replace('\n', "")) {
                    Ok(bytes) => Some(bytes),
                    Err(_) => return message(400, "Invalid base64 content"),
                },
                _ => return bad_params(&format!("actions[{i}][encoding] does not have a valid value")),
            },
        };
        let lines = |bytes: &[u8]| bytes.split(|b| *b == b'\n').filter(|l| !l.is_empty()).count();
        let old_lines = |tree: &store::Tree, path: &str| {
            tree.get(path)
                .and_then(|blob| state.repo.blobs.get(blob))
                .map_or(0, |b| lines(b))
        };
        match action["action"].as_str().unwrap_or("") {
            "create" => {
                if tree.contains_key(&path) {
                    return message(400, "A file with this name already exists");
                }
                let bytes = content.unwrap_or_default();
                additions += lines(&bytes);
                tree.insert(path, state.repo.put_blob(&bytes));
            }
            "update" => {
                if !tree.contains_key(&path) {
                    return message(400, "A file with this name doesn't exist");
                }
                let bytes = content.unwrap_or_default();
                deletions += old_lines(&tree, &path);
                additions += lines(&bytes);
                tree.insert(path, state.repo.put_blob(&bytes));
            }
            "delete" => {
                if !tree.contains_key(&path) {
                    return message(400, "A file with this name doesn't exist");
                }
                deletions += old_lines(&tree, &path);
                tree.remove(&path);
            }
            "move" => {
                let Some(previous) = action["previous_path"]
                    .as_str()
                    .map(|p| p.trim_start_matches('/').to_string())
                else {
                    return bad_params(&format!("actions[{i}][previous_path] is missing"));
                };
                let Some(blob) = tree.get(&previous).cloned() else {
                    return message(400, "A file with this name doesn't exist");
                };
                if tree.contains_key(&path) {
                    return message(400, "A file with this name already exists");
                }
                tree.remove(&previous);
                let blob = match content {
                    Some(bytes) => state.repo.put_blob(&bytes),
                    None => blob,
                };
                tree.insert(path, blob);
            }
            "chmod" => {
                if !tree.contains_key(&path) {
                    return message(400, "A file with this name doesn't exist");
                }
            }
            _ => return bad_params(&format!("actions[{i}][action] does not have a valid value")),
        }
    }
    let tree = state.repo.put_tree(tree);
    // The author may be set; the committer is the token's user.
    let t = now();
    let bot = Person::new("rightsizer-bot", "rightsizer-bot@example.com", t);
    let author = match (body["author_name"].as_str(), body["author_email"].as_str()) {
        (Some(name), Some(email)) => Person::new(name, email, t),
        (Some(name), None) => Person::new(name, &bot.email, t),
        _ => bot.clone(),
    };
    let sha = state
        .repo
        .put_commit(&tree, parent.into_iter().collect(), commit_message, author, bot);
    state.repo.branches.insert(branch.to_string(), sha.clone());
    Reply::json(201, commit_json(state, &sha, Some((additions, deletions))))
}
