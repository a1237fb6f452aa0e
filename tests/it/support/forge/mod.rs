//! In-process fake GitHub and GitLab REST APIs for the pull-request output (`emit/`): the
//! product downloads the manifests as an archive, commits the edited files on a bot branch and
//! opens or updates one pull/merge request, through reqwest against these servers, as against
//! github.com / GitHub Enterprise (`/api/v3`) or a self-managed GitLab (`/api/v4`).
//!
//! Each server holds one repository (a content-addressed store with git's object ids, see
//! `store.rs`) and its pull/merge requests, answers with the status codes, bodies and headers
//! the providers document (GitHub's OpenAPI description and REST docs, GitLab's REST docs; each
//! handler names its page), records every request, and injects failures: errors, primary and
//! secondary rate limits, read-only tokens, small pages. Anything it does not implement answers
//! the provider's 404, so a client calling an unknown endpoint fails loudly.
//!
//! Served, GitHub (under `/api/v3/repos/{owner}/{repo}`): `GET ""`, `GET git/ref/heads/{b}`,
//! `POST git/refs`, `PATCH`/`DELETE git/refs/heads/{b}`, `GET git/commits/{sha}`,
//! `POST git/commits`, `POST git/trees`, `POST git/blobs`, `GET branches/{b}`, `GET commits`,
//! `GET commits/{ref}`, `GET compare/{base}...{head}`, `GET tarball/{ref}` (302 to
//! `/_codeload/...`), `GET`/`POST pulls`, `GET`/`PATCH pulls/{n}`,
//! `POST pulls/{n}/requested_reviewers`, `POST issues/{n}/labels`, `POST issues/{n}/assignees`.
//! GitLab (under `/api/v4/projects/{id}`, id = `org%2Frepo` or the number): `GET ""`,
//! `GET`/`DELETE repository/branches/{b}`, `POST repository/branches`, `GET`/`POST
//! repository/commits`, `GET repository/commits/{sha}`, `GET repository/archive[.tar.gz]`,
//! `GET`/`POST merge_requests`, `GET`/`PUT merge_requests/{iid}`; and `GET /api/v4/users`.
//!
//! As on the real services, a request without credentials is answered 404 for the private
//! repository/project (GitHub "Troubleshooting the REST API"; GitLab likewise), a wrong token
//! 401. Not modelled: GraphQL, the contents and files APIs, tags, forks, merging, checks and
//! statuses, ETags, `X-GitHub-Api-Version` validation, form-encoded GitLab bodies (JSON only).
//!
//! ```ignore
//! let forge = FakeForge::start_blocking(Provider::GitHub, "org/repo", "token");
//! forge.seed("main", &[("k8s/web.yaml", b"kind: Deployment\n")]);
//! // run the binary with the API base `forge.url()` and the token, then:
//! assert_eq!(forge.pulls()[0].head, "rightsizer/prod");
//! assert!(forge.writes().is_empty()); // on a run with nothing to change
//! ```
#![allow(dead_code)]

mod archive;
mod github;
mod github_git;
mod github_pulls;
mod gitlab;
mod gitlab_commits;
mod gitlab_mr;
mod server;
mod sha1;
mod store;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::MutexGuard;

use super::serve::{self, Serving, lock};
use store::{Person, Repo};

/// Which forge the server imitates.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Provider {
    GitHub,
    GitLab,
}

/// Which rate limit an injected refusal reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RateLimit {
    /// GitHub: 403 with `x-ratelimit-remaining: 0` and `x-ratelimit-reset` a few seconds
    /// ahead; GitLab: 429 with `RateLimit-*` and `Retry-After`.
    Primary,
    /// GitHub: 403 with `retry-after` and "You have exceeded a secondary rate limit";
    /// GitLab has one kind only and answers as for `Primary`.
    Secondary,
    /// The same secondary limit answered with 429, which GitHub also sends ("If you exceed a
    /// secondary rate limit, you will receive a 403 or 429 response").
    SecondaryTooManyRequests,
}

/// A commit of the repository, as tests look at it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Commit {
    pub sha: String,
    pub message: String,
    pub parents: Vec<String>,
    /// Author name.
    pub author: String,
    pub author_email: String,
    pub committer: String,
}

/// A pull request (GitHub) or merge request (GitLab; `number` is the iid).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pull {
    pub number: u64,
    pub title: String,
    pub body: String,
    /// Source branch name (without `owner:`).
    pub head: String,
    pub base: String,
    /// GitHub `open`/`closed`, GitLab `opened`/`closed`/`merged`.
    pub state: String,
    pub draft: bool,
    pub labels: Vec<String>,
    /// Logins / usernames.
    pub reviewers: Vec<String>,
    pub assignees: Vec<String>,
    pub html_url: String,
}

/// One request as the server saw it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Recorded {
    pub method: String,
    /// The raw path, still percent-encoded.
    pub path: String,
    /// The raw query string ("" when absent).
    pub query: String,
    /// The request body as text (lossy UTF-8; "" when empty).
    pub body: String,
    pub status: u16,
}

#[derive(Clone, Debug)]
struct PullState {
    number: u64,
    title: String,
    body: String,
    head: String,
    base: String,
    state: String,
    draft: bool,
    labels: Vec<String>,
    reviewers: Vec<String>,
    assignees: Vec<String>,
    created: i64,
    updated: i64,
}

#[derive(Debug)]
struct Failure {
    method: String,
    prefix: String,
    status: u16,
    remaining: usize,
}

/// Everything the server knows, behind one mutex.
#[derive(Debug)]
struct State {
    provider: Provider,
    /// `org` of `org/repo` (GitLab: the namespace, which may hold `/`).
    owner: String,
    name: String,
    token: String,
    address: String,
    repo: Repo,
    pulls: Vec<PullState>,
    collaborators: BTreeSet<String>,
    /// GitLab users: username -> id.
    users: BTreeMap<String, u64>,
    project_id: u64,
    requests: Vec<Recorded>,
    failures: Vec<Failure>,
    rate_limits: Vec<(RateLimit, usize)>,
    /// Seconds a rate-limited client is told to wait (`retry-after`, reset distance).
    rate_limit_wait: i64,
    read_only: bool,
    page_size: Option<usize>,
    /// Requests counted in the current rate-limit window and its end (epoch seconds).
    rate_used: u64,
    rate_reset: i64,
}

impl State {
    fn new(provider: Provider, repository: &str, token: &str, address: String) -> Self {
        let (owner, name) = repository
            .rsplit_once('/')
            .expect("fake forge: repository must be `owner/name`");
        let mut users = BTreeMap::new();
        users.insert("rightsizer-bot".to_string(), 2);
        State {
            provider,
            owner: owner.into(),
            name: name.into(),
            token: token.into(),
            address,
            repo: Repo::new(),
            pulls: Vec::new(),
            collaborators: ["rightsizer-bot".to_string()].into(),
            users,
            project_id: 42,
            requests: Vec::new(),
            failures: Vec::new(),
            rate_limits: Vec::new(),
            rate_limit_wait: 1,
            read_only: false,
            page_size: None,
            rate_used: 0,
            rate_reset: store::now() + 3600,
        }
    }

    fn full_name(&self) -> String {
        format!("{}/{}", self.owner, self.name)
    }

    fn base_url(&self) -> String {
        format!("http://{}", self.address)
    }

    /// Applies `files` (None deletes) on top of `branch` (or the default branch's head when
    /// the branch is missing) as a commit by `who`, and moves the branch.
    fn human_commit(&mut self, branch: &str, files: &[(&str, Option<&[u8]>)], message: &str, who: &str) -> String {
        let parent = self
            .repo
            .branches
            .get(branch)
            .or_else(|| self.repo.branches.get(&self.repo.default_branch))
            .cloned();
        let mut tree = parent
            .as_deref()
            .and_then(|sha| self.repo.commit(sha))
            .and_then(|c| self.repo.trees.get(&c.tree))
            .cloned()
            .unwrap_or_default();
        for (path, bytes) in files {
            match bytes {
                Some(bytes) => {
                    let blob = self.repo.put_blob(bytes);
                    tree.insert(path.trim_start_matches('/').to_string(), blob);
                }
                None => {
                    tree.remove(*path);
                }
            }
        }
        let tree = self.repo.put_tree(tree);
        let email = format!("{}@example.com", who.to_ascii_lowercase());
        let person = Person::new(who, &email, store::now());
        let sha = self
            .repo
            .put_commit(&tree, parent.into_iter().collect(), message, person.clone(), person);
        self.repo.branches.insert(branch.to_string(), sha.clone());
        sha
    }
}

/// The fake forge; dropping it shuts the server down.
pub struct FakeForge {
    server: Serving<State>,
}

impl FakeForge {
    /// Binds 127.0.0.1:0 and serves `repository` (`org/repo`) on the current tokio runtime;
    /// requests must carry `token`.
    pub async fn start(provider: Provider, repository: &str, token: &str) -> FakeForge {
        let new = |addr| State::new(provider, repository, token, addr);
        FakeForge {
            server: Serving::start("fake forge", new).await,
        }
    }

    /// Starts the server on a thread with its own runtime, for tests that run the binary
    /// (no runtime of their own).
    pub fn start_blocking(provider: Provider, repository: &str, token: &str) -> FakeForge {
        let (repository, token) = (repository.to_string(), token.to_string());
        let new = move |addr| State::new(provider, &repository, &token, addr);
        FakeForge {
            server: Serving::start_blocking("fake forge", new),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        lock(&self.server.state)
    }

    /// The API base URL: GitHub `http://127.0.0.1:P/api/v3` (the GitHub Enterprise Server
    /// layout), GitLab `http://127.0.0.1:P` (the API is under `/api/v4`).
    pub fn url(&self) -> String {
        match self.lock().provider {
            Provider::GitHub => format!("http://{}/api/v3", self.server.addr),
            Provider::GitLab => format!("http://{}", self.server.addr),
        }
    }

    /// The GitLab project's numeric id (also accepted in place of the URL-encoded path).
    pub fn project_id(&self) -> u64 {
        self.lock().project_id
    }

    /// Creates the first commit on `branch` (author "Alice") with these files.
    pub fn seed(&self, branch: &str, files: &[(&str, &[u8])]) -> String {
        let files: Vec<(&str, Option<&[u8]>)> = files.iter().map(|(p, b)| (*p, Some(*b))).collect();
        let mut state = self.lock();
        if state.repo.branches.is_empty() {
            state.repo.default_branch = branch.to_string();
        }
        state.human_commit(branch, &files, "Initial commit", "Alice")
    }

    /// A person's commit on top of `branch` (created from the default branch when missing):
    /// adds or replaces these files.
    pub fn commit_as_human(&self, branch: &str, files: &[(&str, &[u8])], message: &str) -> String {
        let files: Vec<(&str, Option<&[u8]>)> = files.iter().map(|(p, b)| (*p, Some(*b))).collect();
        self.lock().human_commit(branch, &files, message, "Alice")
    }

    /// A person's commit deleting `paths` from `branch`.
    pub fn delete_as_human(&self, branch: &str, paths: &[&str], message: &str) -> String {
        let files: Vec<(&str, Option<&[u8]>)> = paths.iter().map(|p| (*p, None)).collect();
        self.lock().human_commit(branch, &files, message, "Alice")
    }

    pub fn set_default_branch(&self, name: &str) {
        self.lock().repo.default_branch = name.to_string();
    }

    /// The files at the head of `branch` (empty when the branch does not exist).
    pub fn files(&self, branch: &str) -> BTreeMap<String, Vec<u8>> {
        let state = self.lock();
        match state.repo.branches.get(branch) {
            Some(sha) => state.repo.files_at(sha),
            None => BTreeMap::new(),
        }
    }

    pub fn branch_head(&self, branch: &str) -> Option<String> {
        self.lock().repo.branches.get(branch).cloned()
    }

    /// Branch names.
    pub fn branches(&self) -> Vec<String> {
        self.lock().repo.branches.keys().cloned().collect()
    }

    /// The history of `branch`, newest first.
    pub fn commits(&self, branch: &str) -> Vec<Commit> {
        let state = self.lock();
        let Some(head) = state.repo.branches.get(branch) else {
            return Vec::new();
        };
        state
            .repo
            .history(head)
            .into_iter()
            .map(|c| Commit {
                sha: c.sha,
                message: c.message,
                parents: c.parents,
                author: c.author.name,
                author_email: c.author.email,
                committer: c.committer.name,
            })
            .collect()
    }

    /// Pull requests (GitHub) or merge requests (GitLab), in creation order.
    pub fn pulls(&self) -> Vec<Pull> {
        let state = self.lock();
        state.pulls.iter().map(|p| state.public_pull(p)).collect()
    }

    /// Every request, in order.
    pub fn requests(&self) -> Vec<Recorded> {
        self.lock().requests.clone()
    }

    /// The recorded requests that are not GET (nor HEAD).
    pub fn writes(&self) -> Vec<Recorded> {
        self.requests()
            .into_iter()
            .filter(|r| r.method != "GET" && r.method != "HEAD")
            .collect()
    }

    /// Forgets the recorded requests (not the repository).
    pub fn clear_records(&self) {
        self.lock().requests.clear();
    }

    /// Answers the next `times` requests with `method` ("*" for any) whose raw, still
    /// percent-encoded path starts with `path_prefix` (e.g. `/api/v3/repos/org/repo/pulls`,
    /// `/api/v4/projects/org%2Frepo/merge_requests`) with `status` and the body the provider
    /// sends with it. Checked after authentication and rate limits, before routing.
    pub fn fail_next(&self, method: &str, path_prefix: &str, status: u16, times: usize) {
        self.lock().failures.push(Failure {
            method: method.to_ascii_uppercase(),
            prefix: path_prefix.to_string(),
            status,
            remaining: times,
        });
    }

    /// Refuses the next `times` API requests for exceeding a rate limit.
    pub fn rate_limit_next(&self, kind: RateLimit, times: usize) {
        self.lock().rate_limits.push((kind, times));
    }

    /// Seconds a rate-limited client is told to wait (default 1).
    pub fn set_rate_limit_wait(&self, secs: i64) {
        self.lock().rate_limit_wait = secs;
    }

    /// A read-only token: every write answers 403 with the provider's body.
    pub fn set_permission(&self, read_only: bool) {
        self.lock().read_only = read_only;
    }

    /// Caps list pages at `n` items whatever `per_page` asks.
    pub fn set_page_size(&self, n: usize) {
        self.lock().page_size = Some(n.max(1));
    }

    /// GitHub: a user who may be asked for reviews and assigned.
    pub fn add_collaborator(&self, login: &str) {
        self.lock().collaborators.insert(login.to_string());
    }

    /// GitLab: a user (for `GET /users?username=`, reviewer and assignee ids); returns the id.
    pub fn add_user(&self, username: &str) -> u64 {
        let mut state = self.lock();
        if let Some(id) = state.users.get(username) {
            return *id;
        }
        let id = state.users.values().max().copied().unwrap_or(1) + 1;
        state.users.insert(username.to_string(), id);
        id
    }

    /// A pull/merge request changed outside the client, e.g. closed by a person.
    pub fn set_pull_state(&self, number: u64, state_name: &str) {
        let mut state = self.lock();
        if let Some(pull) = state.pulls.iter_mut().find(|p| p.number == number) {
            pull.state = state_name.to_string();
        }
    }
}

impl State {
    fn public_pull(&self, p: &PullState) -> Pull {
        let html_url = match self.provider {
            Provider::GitHub => format!("{}/{}/pull/{}", self.base_url(), self.full_name(), p.number),
            Provider::GitLab => format!("{}/{}/-/merge_requests/{}", self.base_url(), self.full_name(), p.number),
        };
        Pull {
            number: p.number,
            title: p.title.clone(),
            body: p.body.clone(),
            head: p.head.clone(),
            base: p.base.clone(),
            state: p.state.clone(),
            draft: p.draft,
            labels: p.labels.clone(),
            reviewers: p.reviewers.clone(),
            assignees: p.assignees.clone(),
            html_url,
        }
    }
}
