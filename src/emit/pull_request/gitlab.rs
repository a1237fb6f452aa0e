//! GitLab (gitlab.com and self-managed) REST API v4 for the pull-request output.
//!
//! The project is addressed by its URL-encoded path (`group%2Fsub%2Fproject`). Calls:
//! `GET /projects/:id` (only without `baseBranch`), `GET /projects/:id/repository/branches/:b`
//! (base and bot branch), `GET /projects/:id/repository/archive.tar.gz?sha=&path=`, one commit
//! `POST /projects/:id/repository/commits` with `branch`, `start_sha` (the base head),
//! `force: true` and create/update/delete actions, `GET /projects/:id/merge_requests?
//! source_branch=&state=opened` (paginated), `POST /projects/:id/merge_requests` or `PUT
//! /projects/:id/merge_requests/:iid`, and on creation one `GET /users?username=` per
//! reviewer and assignee. A draft is a title starting with `Draft: `.

use reqwest::Method;
use serde_json::{Value, json};

use super::http::{Api, Expect, Fail, Step, next_link, segment};
use super::tree::{Change, Head};
use super::{Pull, PullRequestTarget};

const MAX_PAGES: u32 = 10;
const DRAFT: &str = "Draft: ";

pub(crate) struct GitLab<'a> {
    api: &'a Api,
    t: &'a PullRequestTarget,
    project: String,
}

fn text(v: &Value, key: &str) -> String {
    v[key].as_str().unwrap_or_default().to_string()
}

fn pull(v: &Value) -> Pull {
    Pull {
        number: v["iid"].as_u64().unwrap_or_default(),
        url: text(v, "web_url"),
        title: text(v, "title"),
        body: text(v, "description"),
    }
}

/// `title`, with the `Draft: ` prefix when the merge request has one now (whoever set it).
pub(crate) fn keep_draft_prefix(current: &str, title: &str) -> String {
    let drafted = ["Draft:", "[Draft]", "(Draft)"]
        .iter()
        .any(|p| current.to_ascii_lowercase().starts_with(&p.to_ascii_lowercase()));
    if drafted {
        format!("{DRAFT}{title}")
    } else {
        title.to_string()
    }
}

impl<'a> GitLab<'a> {
    pub fn new(api: &'a Api, t: &'a PullRequestTarget) -> Self {
        GitLab {
            api,
            t,
            project: format!("/api/v4/projects/{}", segment(&t.repository)),
        }
    }

    pub async fn default_branch(&self) -> Result<String, Fail> {
        self.api
            .default_branch(
                &self.project,
                "reading the project's default branch",
                &self.t.repository,
            )
            .await
    }

    pub async fn branch(&self, name: &str) -> Result<Option<Head>, Fail> {
        let what = format!("reading branch {name}");
        let step = Step {
            what: &what,
            setting: "outputs.pullRequest.baseBranch and branch",
        };
        let path = format!("{}/repository/branches/{}", self.project, segment(name));
        let Some(answer) = self
            .api
            .send(step, Method::GET, &path, &[], None, Expect::Branch)
            .await?
        else {
            return Ok(None);
        };
        let v = answer.json()?;
        let c = &v["commit"];
        let head = Head {
            sha: text(c, "id"),
            tree: String::new(),
            message: text(c, "message"),
            parents: c["parent_ids"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|p| p.as_str().map(str::to_string))
                .collect(),
        };
        if head.sha.is_empty() {
            return Err(Fail(format!("GitLab answered branch {name} without its commit")));
        }
        Ok(Some(head))
    }

    pub async fn archive(&self, sha: &str, file: &std::fs::File) -> Result<(), Fail> {
        let step = Step {
            what: "downloading the repository archive",
            setting: "outputs.pullRequest.path",
        };
        let path = format!("{}/repository/archive.tar.gz", self.project);
        let mut query = vec![("sha", sha)];
        if !self.t.path.is_empty() {
            query.push(("path", self.t.path.as_str()));
        }
        self.api
            .send(step, Method::GET, &path, &query, None, Expect::Archive(file))
            .await?;
        Ok(())
    }

    pub async fn commit(&self, base: &Head, changes: &[Change], message: &str) -> Result<String, Fail> {
        let mut actions = Vec::new();
        for c in changes {
            actions.push(match c.text()? {
                Some(content) => {
                    let action = if c.existed { "update" } else { "create" };
                    json!({ "action": action, "file_path": c.path, "content": content, "encoding": "text" })
                }
                None => json!({ "action": "delete", "file_path": c.path }),
            });
        }
        let step = Step {
            what: "writing the commit",
            setting: "outputs.pullRequest.branch and path",
        };
        let body = json!({
            "branch": self.t.branch,
            "start_sha": base.sha,
            "force": true,
            "commit_message": message,
            "actions": actions,
        });
        let path = format!("{}/repository/commits", self.project);
        let v = self.api.write(step, Method::POST, &path, &body).await?.json()?;
        Ok(text(&v, "id"))
    }

    pub async fn open_pull(&self) -> Result<Option<Pull>, Fail> {
        let step = Step {
            what: "looking for the open merge request",
            setting: "outputs.pullRequest.branch",
        };
        let path = format!("{}/merge_requests", self.project);
        for page in 1..=MAX_PAGES {
            let page = page.to_string();
            let query = [
                ("source_branch", self.t.branch.as_str()),
                ("state", "opened"),
                ("per_page", "100"),
                ("page", page.as_str()),
            ];
            let answer = self.api.get(step, &path, &query).await?;
            let v = answer.json()?;
            let found = v
                .as_array()
                .into_iter()
                .flatten()
                .find(|m| m["source_branch"] == self.t.branch.as_str() && m["state"] == "opened");
            if let Some(m) = found {
                return Ok(Some(pull(m)));
            }
            let more = next_link(&answer.headers).is_some()
                || answer
                    .headers
                    .get("x-next-page")
                    .and_then(|v| v.to_str().ok())
                    .is_some_and(|v| !v.trim().is_empty());
            if !more {
                break;
            }
        }
        Ok(None)
    }

    /// The ids of GitLab users by username, one request each.
    async fn user_ids(&self, names: &[String], setting: &str) -> Result<Vec<u64>, Fail> {
        let mut ids = Vec::new();
        for name in names {
            let what = format!("looking up user {name}");
            let step = Step { what: &what, setting };
            let v = self
                .api
                .get(step, "/api/v4/users", &[("username", name.as_str())])
                .await?
                .json()?;
            let id = v
                .as_array()
                .and_then(|a| a.first())
                .and_then(|u| u["id"].as_u64())
                .ok_or_else(|| Fail(format!("GitLab has no user {name:?} ({setting})")))?;
            ids.push(id);
        }
        Ok(ids)
    }

    pub async fn create_pull(&self, base: &str, title: &str, body: &str) -> Result<Pull, Fail> {
        let t = self.t;
        let reviewers = self.user_ids(&t.reviewers, "outputs.pullRequest.reviewers").await?;
        let assignees = self.user_ids(&t.assignees, "outputs.pullRequest.assignees").await?;
        let title = if t.draft {
            format!("{DRAFT}{title}")
        } else {
            title.to_string()
        };
        let mut request = json!({
            "source_branch": t.branch,
            "target_branch": base,
            "title": title,
            "description": body,
            "remove_source_branch": true,
        });
        if !t.labels.is_empty() {
            request["labels"] = json!(t.labels.join(","));
        }
        if !reviewers.is_empty() {
            request["reviewer_ids"] = json!(reviewers);
        }
        if !assignees.is_empty() {
            request["assignee_ids"] = json!(assignees);
        }
        let step = Step {
            what: "opening the merge request",
            setting: "outputs.pullRequest.baseBranch, branch and title",
        };
        let path = format!("{}/merge_requests", self.project);
        Ok(pull(
            &self.api.write(step, Method::POST, &path, &request).await?.json()?,
        ))
    }

    pub async fn update_pull(&self, pull: &Pull, title: &str, body: &str) -> Result<(), Fail> {
        let step = Step {
            what: "updating the merge request",
            setting: "outputs.pullRequest.title",
        };
        let path = format!("{}/merge_requests/{}", self.project, pull.number);
        self.api
            .write(
                step,
                Method::PUT,
                &path,
                &json!({ "title": title, "description": body }),
            )
            .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_draft_stays_a_draft_and_a_ready_one_stays_ready() {
        assert_eq!(keep_draft_prefix("Draft: old", "new"), "Draft: new");
        assert_eq!(keep_draft_prefix("draft: old", "new"), "Draft: new");
        assert_eq!(keep_draft_prefix("old", "new"), "new");
    }
}
