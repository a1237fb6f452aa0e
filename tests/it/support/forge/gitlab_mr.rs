//! GitLab merge requests ("Merge requests API"): list with filters and pages, create, get and
//! update (title, description, labels, reviewers, assignees, state, draft by title prefix).
//! Errors as `lib/api/merge_requests.rb` renders them: a second open MR for the same source
//! and target branches is 409 with the `validate_branches` message, other model errors 422
//! or 400, as arrays under `message`.

use serde_json::{Value, json};

use super::gitlab::{bad_params, message, user_json};
use super::server::{Reply, Req, page_of};
use super::store::{iso_date, now};
use super::{PullState, State};

/// "Draft merge requests": a title starting `Draft:`, `[Draft]` or `(Draft)` marks a draft.
fn is_draft(title: &str) -> bool {
    let lower = title.trim_start().to_ascii_lowercase();
    lower.starts_with("draft:") || lower.starts_with("[draft]") || lower.starts_with("(draft)")
}

fn user(state: &State, username: &str) -> Value {
    let id = state.users.get(username).copied().unwrap_or(0);
    user_json(state, username, id)
}

fn mr_json(state: &State, p: &PullState) -> Value {
    let full = state.full_name();
    json!({
        "id": 5000 + p.number,
        "iid": p.number,
        "project_id": state.project_id,
        "title": p.title,
        "description": p.body,
        "state": p.state,
        "created_at": iso_date(p.created),
        "updated_at": iso_date(p.updated),
        "merged_by": null,
        "merged_at": null,
        "closed_at": null,
        "target_branch": p.base,
        "source_branch": p.head,
        "user_notes_count": 0,
        "upvotes": 0,
        "downvotes": 0,
        "author": user(state, "rightsizer-bot"),
        "assignee": p.assignees.first().map(|a| user(state, a)),
        "assignees": p.assignees.iter().map(|a| user(state, a)).collect::<Vec<_>>(),
        "reviewers": p.reviewers.iter().map(|r| user(state, r)).collect::<Vec<_>>(),
        "source_project_id": state.project_id,
        "target_project_id": state.project_id,
        "labels": p.labels,
        "draft": p.draft,
        "work_in_progress": p.draft,
        "milestone": null,
        "merge_when_pipeline_succeeds": false,
        "merge_status": "can_be_merged",
        "detailed_merge_status": "mergeable",
        "sha": state.repo.branches.get(&p.head).cloned(),
        "merge_commit_sha": null,
        "squash": false,
        "has_conflicts": false,
        "references": {"short": format!("!{}", p.number), "relative": format!("!{}", p.number), "full": format!("{full}!{}", p.number)},
        "web_url": format!("{}/{full}/-/merge_requests/{}", state.base_url(), p.number),
    })
}

/// `GET /projects/:id/merge_requests?state=&source_branch=&target_branch=&page=&per_page=`:
/// newest first, 20 a page by default; `x-page`, `x-per-page`, `x-next-page`, `x-prev-page`,
/// `x-total`, `x-total-pages` and `Link` ("REST API": pagination).
pub(super) fn list(state: &State, request: &Req) -> Reply {
    let wanted = request.param("state").unwrap_or("all");
    if !matches!(wanted, "opened" | "closed" | "locked" | "merged" | "all") {
        return bad_params("state does not have a valid value");
    }
    let source = request.param("source_branch");
    let target = request.param("target_branch");
    let mut mrs: Vec<&PullState> = state
        .pulls
        .iter()
        .filter(|p| wanted == "all" || p.state == wanted)
        .filter(|p| source.is_none_or(|s| p.head == s))
        .filter(|p| target.is_none_or(|t| p.base == t))
        .collect();
    mrs.sort_by_key(|p| std::cmp::Reverse(p.number));
    if request.param("sort") == Some("asc") {
        mrs.reverse();
    }
    let (per_page, page) = state.page_params(request, 20);
    let (items, last) = page_of(&mrs, per_page, page);
    let body: Vec<Value> = items.into_iter().map(|p| mr_json(state, p)).collect();
    state.gitlab_pages(
        Reply::json(200, Value::Array(body)),
        request,
        per_page,
        page,
        last,
        mrs.len(),
    )
}

fn find(state: &State, iid: &str) -> Option<usize> {
    let iid: u64 = iid.parse().ok()?;
    state.pulls.iter().position(|p| p.number == iid)
}

pub(super) fn get(state: &State, iid: &str) -> Reply {
    match find(state, iid) {
        Some(i) => Reply::json(200, mr_json(state, &state.pulls[i])),
        None => message(404, "404 Not found"),
    }
}

/// Labels as a comma-separated string or an array.
fn label_list(value: &Value) -> Option<Vec<String>> {
    match value {
        Value::String(s) => Some(
            s.split(',')
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .map(str::to_string)
                .collect(),
        ),
        Value::Array(items) => Some(items.iter().filter_map(|l| l.as_str().map(str::to_string)).collect()),
        _ => None,
    }
}

/// User ids (array, or a single id) to usernames; unknown ids are dropped, as GitLab drops
/// users it cannot find.
fn usernames(state: &State, value: &Value) -> Option<Vec<String>> {
    let ids: Vec<u64> = match value {
        Value::Array(items) => items.iter().filter_map(Value::as_u64).collect(),
        Value::Number(n) => n.as_u64().into_iter().collect(),
        _ => return None,
    };
    Some(
        ids.into_iter()
            .filter_map(|id| state.users.iter().find(|(_, v)| **v == id).map(|(k, _)| k.clone()))
            .collect(),
    )
}

/// `POST /projects/:id/merge_requests` {source_branch, target_branch, title, description?,
/// labels?, assignee_ids?, reviewer_ids?}: 201; 409 for a second open MR of the same branches.
pub(super) fn create(state: &mut State, body: &Value) -> Reply {
    let missing: Vec<String> = ["source_branch", "target_branch", "title"]
        .into_iter()
        .filter(|k| !body[*k].is_string())
        .map(|k| format!("{k} is missing"))
        .collect();
    if !missing.is_empty() {
        return bad_params(&missing.join(", "));
    }
    let source = body["source_branch"].as_str().unwrap_or_default().to_string();
    let target = body["target_branch"].as_str().unwrap_or_default().to_string();
    let title = body["title"].as_str().unwrap_or_default().to_string();
    if source == target {
        return Reply::json(
            422,
            json!({"message": ["You can't use same project/branch for source and target"]}),
        );
    }
    // `MergeRequests::BuildService#validate_branches` errors, rendered 422.
    for (kind, branch) in [("Source", &source), ("Target", &target)] {
        if !state.repo.branches.contains_key(branch) {
            return Reply::json(
                422,
                json!({"message": [format!("{kind} branch \"{branch}\" does not exist")]}),
            );
        }
    }
    if let Some(other) = state
        .pulls
        .iter()
        .find(|p| p.state == "opened" && p.head == source && p.base == target)
    {
        let text = format!(
            "Another open merge request already exists for this source branch: !{}",
            other.number
        );
        return Reply::json(409, json!({"message": [text]}));
    }
    let number = state.pulls.iter().map(|p| p.number).max().unwrap_or(0) + 1;
    let t = now();
    let mut pull = PullState {
        number,
        draft: is_draft(&title),
        title,
        body: body["description"].as_str().unwrap_or("").to_string(),
        head: source,
        base: target,
        state: "opened".into(),
        labels: label_list(&body["labels"]).unwrap_or_default(),
        reviewers: usernames(state, &body["reviewer_ids"]).unwrap_or_default(),
        assignees: usernames(state, &body["assignee_ids"])
            .or_else(|| usernames(state, &body["assignee_id"]))
            .unwrap_or_default(),
        created: t,
        updated: t,
    };
    pull.labels.dedup();
    let json = mr_json(state, &pull);
    state.pulls.push(pull);
    Reply::json(201, json)
}

/// `PUT /projects/:id/merge_requests/:iid`: title (draft by prefix), description, labels
/// (replace), add_labels, remove_labels, assignee_ids, reviewer_ids, target_branch,
/// state_event close|reopen; 400 when no parameter is given.
pub(super) fn update(state: &mut State, iid: &str, body: &Value) -> Reply {
    let Some(i) = find(state, iid) else {
        return message(404, "404 Not found");
    };
    const KEYS: [&str; 11] = [
        "title",
        "description",
        "labels",
        "add_labels",
        "remove_labels",
        "assignee_id",
        "assignee_ids",
        "reviewer_ids",
        "target_branch",
        "state_event",
        "discussion_locked",
    ];
    if KEYS.iter().all(|k| body[*k].is_null()) {
        return bad_params(&format!(
            "{} are missing, at least one parameter must be provided",
            KEYS.join(", ")
        ));
    }
    if let Some(event) = body["state_event"].as_str()
        && !matches!(event, "close" | "reopen")
    {
        return bad_params("state_event does not have a valid value");
    }
    let reviewers = usernames(state, &body["reviewer_ids"]);
    let assignees = usernames(state, &body["assignee_ids"]).or_else(|| usernames(state, &body["assignee_id"]));
    let pull = &mut state.pulls[i];
    if let Some(title) = body["title"].as_str() {
        pull.title = title.to_string();
        pull.draft = is_draft(title);
    }
    if let Some(text) = body["description"].as_str() {
        pull.body = text.to_string();
    }
    if let Some(labels) = label_list(&body["labels"]) {
        pull.labels = labels;
    }
    if let Some(add) = label_list(&body["add_labels"]) {
        for l in add {
            if !pull.labels.contains(&l) {
                pull.labels.push(l);
            }
        }
    }
    if let Some(remove) = label_list(&body["remove_labels"]) {
        pull.labels.retain(|l| !remove.contains(l));
    }
    if let Some(reviewers) = reviewers {
        pull.reviewers = reviewers;
    }
    if let Some(assignees) = assignees {
        pull.assignees = assignees;
    }
    if let Some(target) = body["target_branch"].as_str() {
        pull.base = target.to_string();
    }
    match body["state_event"].as_str() {
        Some("close") => pull.state = "closed".into(),
        Some("reopen") => pull.state = "opened".into(),
        _ => {}
    }
    pull.updated = now();
    Reply::json(200, mr_json(state, &state.pulls[i]))
}
