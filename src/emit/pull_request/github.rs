//! GitHub (and GitHub Enterprise Server) REST API v3 for the pull-request output.
//!
//! Calls: `GET /repos/{repo}` (only without `baseBranch`), `GET /repos/{repo}/branches/{b}`
//! (base and bot branch: head commit, its tree, message and parents), `GET
//! /repos/{repo}/tarball/{sha}` (302 to codeload), one commit through the Git Data API
//! (`POST git/trees` with inline contents on the base tree, `POST git/commits`, then `PATCH
//! git/refs/heads/{b}` with `force` or `POST git/refs`), `GET /repos/{repo}/pulls?head=&state=open`
//! (paginated), `POST /repos/{repo}/pulls` or `PATCH /repos/{repo}/pulls/{n}`, and on creation
//! `POST issues/{n}/labels`, `POST pulls/{n}/requested_reviewers`, `POST issues/{n}/assignees`.

use reqwest::Method;
use serde_json::{Value, json};

use super::http::{Answer, Api, Expect, Fail, Step, next_link};
use super::tree::{Change, Head};
use super::{Pull, PullRequestTarget};

/// Pages of open pull requests read for the bot branch (100 each).
const MAX_PAGES: u32 = 10;

pub(crate) struct GitHub<'a> {
    api: &'a Api,
    t: &'a PullRequestTarget,
    repo: String,
}

fn text(v: &Value, pointer: &str) -> String {
    v.pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

fn pull(v: &Value) -> Pull {
    Pull {
        number: v["number"].as_u64().unwrap_or_default(),
        url: text(v, "/html_url"),
        title: text(v, "/title"),
        body: text(v, "/body"),
    }
}

impl<'a> GitHub<'a> {
    pub fn new(api: &'a Api, t: &'a PullRequestTarget) -> Self {
        GitHub {
            api,
            t,
            repo: format!("/repos/{}", t.repository),
        }
    }

    pub async fn default_branch(&self) -> Result<String, Fail> {
        self.api
            .default_branch(
                &self.repo,
                "reading the repository's default branch",
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
        let path = format!("{}/branches/{name}", self.repo);
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
            sha: text(c, "/sha"),
            tree: text(c, "/commit/tree/sha"),
            message: text(c, "/commit/message"),
            parents: c["parents"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|p| text(p, "/sha"))
                .collect(),
        };
        if head.sha.is_empty() {
            return Err(Fail(format!("GitHub answered branch {name} without its commit")));
        }
        Ok(Some(head))
    }

    pub async fn archive(&self, sha: &str, file: &std::fs::File) -> Result<(), Fail> {
        let step = Step {
            what: "downloading the repository archive",
            setting: "outputs.pullRequest.path",
        };
        let path = format!("{}/tarball/{sha}", self.repo);
        self.api
            .send(step, Method::GET, &path, &[], None, Expect::Archive(file))
            .await?;
        Ok(())
    }

    pub async fn commit(&self, base: &Head, exists: bool, changes: &[Change], message: &str) -> Result<String, Fail> {
        let setting = "outputs.pullRequest.path";
        let mut entries = Vec::new();
        for c in changes {
            let mode = if c.executable { "100755" } else { "100644" };
            entries.push(match c.text()? {
                Some(content) => json!({ "path": c.path, "mode": mode, "type": "blob", "content": content }),
                None => json!({ "path": c.path, "mode": mode, "type": "blob", "sha": null }),
            });
        }
        let step = Step {
            what: "writing the tree of the commit",
            setting,
        };
        let tree = self
            .api
            .write(
                step,
                Method::POST,
                &format!("{}/git/trees", self.repo),
                &json!({ "base_tree": base.tree, "tree": entries }),
            )
            .await?
            .json()?;
        let step = Step {
            what: "writing the commit",
            setting,
        };
        let commit = self
            .api
            .write(
                step,
                Method::POST,
                &format!("{}/git/commits", self.repo),
                &json!({ "message": message, "tree": text(&tree, "/sha"), "parents": [base.sha] }),
            )
            .await?
            .json()?;
        let sha = text(&commit, "/sha");
        let branch = &self.t.branch;
        let what = format!("moving branch {branch} to the commit");
        let step = Step {
            what: &what,
            setting: "outputs.pullRequest.branch",
        };
        if exists {
            let path = format!("{}/git/refs/heads/{branch}", self.repo);
            self.api
                .write(step, Method::PATCH, &path, &json!({ "sha": sha, "force": true }))
                .await?;
        } else {
            let body = json!({ "ref": format!("refs/heads/{branch}"), "sha": sha });
            self.api
                .write(step, Method::POST, &format!("{}/git/refs", self.repo), &body)
                .await?;
        }
        Ok(sha)
    }

    pub async fn open_pull(&self) -> Result<Option<Pull>, Fail> {
        let owner = self.t.repository.split('/').next().unwrap_or_default();
        let head = format!("{owner}:{}", self.t.branch);
        let step = Step {
            what: "looking for the open pull request",
            setting: "outputs.pullRequest.branch",
        };
        let path = format!("{}/pulls", self.repo);
        for page in 1..=MAX_PAGES {
            let page = page.to_string();
            let query = [
                ("head", head.as_str()),
                ("state", "open"),
                ("per_page", "100"),
                ("page", page.as_str()),
            ];
            let answer: Answer = self.api.get(step, &path, &query).await?;
            let v = answer.json()?;
            // `head` filters on the server; checked again, so another fork's branch of the
            // same name never counts.
            let found = v.as_array().into_iter().flatten().find(|p| {
                p["head"]["ref"] == self.t.branch.as_str()
                    && p["head"]["repo"]["full_name"]
                        .as_str()
                        .is_none_or(|r| r.eq_ignore_ascii_case(&self.t.repository))
            });
            if let Some(p) = found {
                return Ok(Some(pull(p)));
            }
            if next_link(&answer.headers).is_none() {
                break;
            }
        }
        Ok(None)
    }

    pub async fn create_pull(&self, base: &str, title: &str, body: &str) -> Result<Pull, Fail> {
        let t = self.t;
        let step = Step {
            what: "opening the pull request",
            setting: "outputs.pullRequest.baseBranch, branch, title and draft (draft pull requests need a plan that has them)",
        };
        let request = json!({ "title": title, "head": t.branch, "base": base, "body": body, "draft": t.draft });
        let created = pull(
            &self
                .api
                .write(step, Method::POST, &format!("{}/pulls", self.repo), &request)
                .await?
                .json()?,
        );
        let n = created.number;
        if !t.labels.is_empty() {
            let step = Step {
                what: "labelling the pull request",
                setting: "outputs.pullRequest.labels",
            };
            let path = format!("{}/issues/{n}/labels", self.repo);
            self.api
                .write(step, Method::POST, &path, &json!({ "labels": t.labels }))
                .await?;
        }
        if !t.reviewers.is_empty() {
            // `org/team` asks a team for review.
            let (teams, users): (Vec<&String>, Vec<&String>) = t.reviewers.iter().partition(|r| r.contains('/'));
            let teams: Vec<&str> = teams.iter().map(|r| r.rsplit('/').next().unwrap_or_default()).collect();
            let step = Step {
                what: "requesting reviewers",
                setting: "outputs.pullRequest.reviewers (each a collaborator of the repository, or org/team)",
            };
            let path = format!("{}/pulls/{n}/requested_reviewers", self.repo);
            self.api
                .write(
                    step,
                    Method::POST,
                    &path,
                    &json!({ "reviewers": users, "team_reviewers": teams }),
                )
                .await?;
        }
        if !t.assignees.is_empty() {
            let step = Step {
                what: "assigning the pull request",
                setting: "outputs.pullRequest.assignees",
            };
            let path = format!("{}/issues/{n}/assignees", self.repo);
            self.api
                .write(step, Method::POST, &path, &json!({ "assignees": t.assignees }))
                .await?;
        }
        Ok(created)
    }

    pub async fn update_pull(&self, pull: &Pull, title: &str, body: &str) -> Result<(), Fail> {
        let step = Step {
            what: "updating the pull request",
            setting: "outputs.pullRequest.title",
        };
        let path = format!("{}/pulls/{}", self.repo, pull.number);
        self.api
            .write(step, Method::PATCH, &path, &json!({ "title": title, "body": body }))
            .await?;
        Ok(())
    }
}
