//! The pull-request output: one bot branch and one pull request (GitHub) or merge request
//! (GitLab) per target, kept up to date run after run through the providers' REST APIs
//! (reqwest, no git binary: the image is distroless).
//!
//! One run: read the head of the base branch, download the files under `path` at that commit
//! as one archive ([`tree::extract`], bounded), run the same engine as `--manifests`
//! (mode `edit`) or `--patches-dir` (mode `patches`) on a private copy, and diff the copy
//! against what was downloaded. Nothing changed: nothing is written and nothing is closed.
//! Otherwise all changed files become one commit whose parent is the base head, force-written
//! to the bot branch (so the pull request always shows one current diff), and the pull request
//! is opened, or its title and body (the Markdown summary) updated.
//!
//! Every commit rightsizer writes carries trailers ([`tree::trailers`]): the base it was made
//! on and a stable hash of its content. A bot branch whose head lacks them, or whose head is
//! not a single commit on that base, has a human commit: the run leaves the branch and the pull
//! request alone and says so (a warning; the run does not fail). A head with the same base and
//! content is not written again.
//!
//! Failures (a refused token, a missing repository, a rate limit that outlasts the bounded
//! wait) fail this output only ([`super::outputs::RunOutcome::errors`], exit 2), after the report
//! and every other output are written; the previous pull request stays as it was.

mod github;
mod gitlab;
mod http;
pub mod spec;
pub mod tree;

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::change::WorkloadChange;
use super::patches::{CurrentObjects, PatchFormat};
use super::{Context, Format, manifests, patches};
use crate::model::Workload;
use crate::recommend::Report;
use tree::{Change, Head};

pub use http::Fail;

/// The code host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Provider {
    /// GitHub or GitHub Enterprise Server (REST API v3).
    #[value(name = "github")]
    GitHub,
    /// GitLab.com or self-managed GitLab (REST API v4).
    #[value(name = "gitlab")]
    GitLab,
}

impl Provider {
    pub fn name(self) -> &'static str {
        match self {
            Provider::GitHub => "GitHub",
            Provider::GitLab => "GitLab",
        }
    }

    /// The public API of the provider, when `apiUrl` is not given.
    pub fn default_api_url(self) -> &'static str {
        match self {
            Provider::GitHub => "https://api.github.com",
            Provider::GitLab => "https://gitlab.com",
        }
    }
}

/// How the recommendation reaches the repository.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Edit the `resources:` blocks of the manifests under `path` in place (`--manifests`).
    #[default]
    Edit,
    /// Write the kustomize patch set under `path` (`--patches-dir`).
    Patches,
}

/// One pull-request target, checked by the settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PullRequestTarget {
    pub provider: Provider,
    /// API base without a trailing slash: `https://api.github.com`, `https://HOST/api/v3`,
    /// `https://gitlab.com`.
    pub api_url: String,
    /// `org/repo` (GitLab: `group/subgroup/project`).
    pub repository: String,
    /// None: the repository's default branch, read at each run.
    pub base_branch: Option<String>,
    /// Directory in the repository, without leading or trailing `/`; empty = the root.
    pub path: String,
    pub mode: Mode,
    pub patch_format: PatchFormat,
    /// The bot branch, a valid git ref name.
    pub branch: String,
    pub title: String,
    pub labels: Vec<String>,
    pub reviewers: Vec<String>,
    pub assignees: Vec<String>,
    pub draft: bool,
    /// The token, re-read at every run (a mounted Secret rotates); never logged.
    pub token_file: PathBuf,
    /// Longest total wait for rate limits in one run; past it the output fails.
    pub max_wait: Duration,
}

/// The title when none is configured: stable, so a run does not rewrite it.
pub const DEFAULT_TITLE: &str = "Right-size CPU and memory requests (rightsizer)";

/// What the output did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// A new pull request was opened.
    Opened,
    /// The open pull request got a new commit, or a new title or body.
    Updated,
    /// The branch and the pull request already held this run's result: nothing written.
    Unchanged,
    /// The recommendation changes no file under the path: nothing written, nothing closed.
    NothingToChange,
    /// A human committed on the bot branch: branch and pull request left alone.
    LeftAlone,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Opened => "opened",
            Action::Updated => "updated",
            Action::Unchanged => "unchanged",
            Action::NothingToChange => "nothing-to-change",
            Action::LeftAlone => "left-alone",
        }
    }
}

/// What the pull-request output did in one run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PullRequestReport {
    pub action: Action,
    /// The pull request's web page, when there is one.
    pub url: Option<String>,
    pub branch: String,
    /// Files the commit writes or deletes, relative to the repository root.
    pub files: Vec<String>,
    /// A new commit was written to the branch.
    pub committed: bool,
    /// API requests made (redirects not counted), in order: `GET /repos/o/r/branches/main 200`.
    pub requests: Vec<String>,
    /// Why the branch was left alone, and other notes for the log.
    pub note: Option<String>,
}

/// What the output gets from the run.
pub struct Input<'a> {
    pub report: &'a Report,
    pub ctx: &'a Context<'a>,
    pub writable: &'a [WorkloadChange],
    pub workloads: &'a [Workload],
}

/// Bounded: a stuck provider must not hold the CronJob until its deadline.
const OUTPUT_DEADLINE: Duration = Duration::from_secs(15 * 60);

/// Runs the output for `target` (see the module docs).
pub async fn run(target: &PullRequestTarget, input: Input<'_>) -> Result<PullRequestReport, Fail> {
    let token = read_token(target)?;
    let api = http::Api::new(target, &token)?;
    let forge = match target.provider {
        Provider::GitHub => Forge::GitHub(github::GitHub::new(&api, target)),
        Provider::GitLab => Forge::GitLab(gitlab::GitLab::new(&api, target)),
    };
    let result = tokio::time::timeout(OUTPUT_DEADLINE, steps(&forge, target, &input)).await;
    let requests = api.requests();
    let mut report = match result {
        Ok(r) => r?,
        Err(_) => {
            return Err(Fail(format!(
                "the pull request output did not finish within {} minutes ({} requests made)",
                OUTPUT_DEADLINE.as_secs() / 60,
                requests.len()
            )));
        }
    };
    report.requests = requests;
    Ok(report)
}

fn read_token(target: &PullRequestTarget) -> Result<String, Fail> {
    let path = &target.token_file;
    let text = std::fs::read_to_string(path).map_err(|e| {
        Fail(format!(
            "cannot read the token file {} (outputs.pullRequest.tokenFile): {e}",
            path.display()
        ))
    })?;
    let token = text.trim().to_string();
    if token.is_empty() || token.chars().any(|c| c.is_control() || c == ' ') {
        return Err(Fail(format!(
            "the token file {} (outputs.pullRequest.tokenFile) holds no usable token: one line, no spaces",
            path.display()
        )));
    }
    Ok(token)
}

/// The provider calls the steps need; each implementation maps them onto its REST API.
enum Forge<'a> {
    GitHub(github::GitHub<'a>),
    GitLab(gitlab::GitLab<'a>),
}

/// An open pull (merge) request.
#[derive(Debug, Clone)]
pub(crate) struct Pull {
    /// GitHub number, GitLab iid.
    pub number: u64,
    pub url: String,
    pub title: String,
    pub body: String,
}

impl Forge<'_> {
    async fn default_branch(&self) -> Result<String, Fail> {
        match self {
            Forge::GitHub(f) => f.default_branch().await,
            Forge::GitLab(f) => f.default_branch().await,
        }
    }

    async fn branch(&self, name: &str) -> Result<Option<Head>, Fail> {
        match self {
            Forge::GitHub(f) => f.branch(name).await,
            Forge::GitLab(f) => f.branch(name).await,
        }
    }

    async fn archive(&self, sha: &str, file: &std::fs::File) -> Result<(), Fail> {
        match self {
            Forge::GitHub(f) => f.archive(sha, file).await,
            Forge::GitLab(f) => f.archive(sha, file).await,
        }
    }

    async fn commit(&self, base: &Head, exists: bool, changes: &[Change], message: &str) -> Result<String, Fail> {
        match self {
            Forge::GitHub(f) => f.commit(base, exists, changes, message).await,
            Forge::GitLab(f) => f.commit(base, changes, message).await,
        }
    }

    async fn open_pull(&self) -> Result<Option<Pull>, Fail> {
        match self {
            Forge::GitHub(f) => f.open_pull().await,
            Forge::GitLab(f) => f.open_pull().await,
        }
    }

    async fn create_pull(&self, base: &str, title: &str, body: &str) -> Result<Pull, Fail> {
        match self {
            Forge::GitHub(f) => f.create_pull(base, title, body).await,
            Forge::GitLab(f) => f.create_pull(base, title, body).await,
        }
    }

    /// The title to write for `pull`: GitLab keeps a draft's `Draft: ` prefix as it is.
    fn title_for(&self, pull: &Pull, title: &str) -> String {
        match self {
            Forge::GitHub(_) => title.to_string(),
            Forge::GitLab(_) => gitlab::keep_draft_prefix(&pull.title, title),
        }
    }

    async fn update_pull(&self, pull: &Pull, title: &str, body: &str) -> Result<(), Fail> {
        match self {
            Forge::GitHub(f) => f.update_pull(pull, title, body).await,
            Forge::GitLab(f) => f.update_pull(pull, title, body).await,
        }
    }

    fn body_limit(&self) -> usize {
        match self {
            // GitHub refuses a body over 65,536 characters.
            Forge::GitHub(_) => 60_000,
            // GitLab's description limit is 1,048,576 characters.
            Forge::GitLab(_) => 1_000_000,
        }
    }
}

async fn steps(forge: &Forge<'_>, target: &PullRequestTarget, input: &Input<'_>) -> Result<PullRequestReport, Fail> {
    let repo = &target.repository;
    let base_name = match &target.base_branch {
        Some(b) => b.clone(),
        None => forge.default_branch().await?,
    };
    if base_name == target.branch {
        return Err(Fail(format!(
            "the bot branch {} is the base branch of {repo}: set outputs.pullRequest.branch to a branch of its own",
            target.branch
        )));
    }
    let base = forge.branch(&base_name).await?.ok_or_else(|| {
        Fail(format!(
            "the base branch {base_name} does not exist in {repo} (outputs.pullRequest.baseBranch)"
        ))
    })?;
    let scratch = tree::Scratch::new().map_err(|e| Fail(format!("cannot make a private working directory: {e}")))?;
    let archive = scratch
        .archive()
        .map_err(|e| Fail(format!("cannot make a private working directory: {e}")))?;
    forge.archive(&base.sha, &archive).await?;
    let files = scratch
        .read_archive(&target.path, &tree::Limits::default())
        .map_err(|e| Fail(format!("the archive of {repo} at {}: {e}", short(&base.sha))))?;
    tracing::debug!(files = files.len(), path = %target.path, base = %base.sha, "repository files read");
    let (changes, drift) = edit(target, input, &files, &scratch)?;
    let mut report = PullRequestReport {
        action: Action::NothingToChange,
        url: None,
        branch: target.branch.clone(),
        files: changes.iter().map(|c| c.path.clone()).collect(),
        committed: false,
        requests: Vec::new(),
        note: None,
    };
    let bot = forge.branch(&target.branch).await?;
    let ours = bot.as_ref().map(tree::trailers);
    if let (Some(head), Some(None)) = (&bot, &ours) {
        report.action = Action::LeftAlone;
        report.note = Some(format!(
            "branch {} has a commit rightsizer did not make ({}); the branch and its pull request are left alone until the branch is deleted (after merging, or to start again)",
            target.branch,
            short(&head.sha)
        ));
        return Ok(report);
    }
    if changes.is_empty() {
        return Ok(report);
    }
    let hash = tree::content_hash(&changes);
    let same = matches!(&ours, Some(Some(t)) if t.base == base.sha && t.content == hash);
    if !same {
        let message = tree::commit_message(&changes, &base.sha, &hash, input.writable.len());
        forge.commit(&base, bot.is_some(), &changes, &message).await?;
        report.committed = true;
    }
    let body = body(input, &drift, &base_name, &base.sha, forge.body_limit())?;
    match forge.open_pull().await? {
        None => {
            let pull = forge.create_pull(&base_name, &target.title, &body).await?;
            report.action = Action::Opened;
            report.url = Some(pull.url);
        }
        Some(pull) => {
            let title = forge.title_for(&pull, &target.title);
            let rewrite = pull.title != title || pull.body.trim_end() != body.trim_end();
            if rewrite {
                forge.update_pull(&pull, &title, &body).await?;
            }
            report.action = if rewrite || report.committed {
                Action::Updated
            } else {
                Action::Unchanged
            };
            report.url = Some(pull.url);
        }
    }
    Ok(report)
}

/// Runs the engine of the mode on a private copy of `files`; the changes against them and
/// the drift the manifests show.
fn edit(
    target: &PullRequestTarget,
    input: &Input<'_>,
    files: &tree::Files,
    copy: &tree::Scratch,
) -> Result<(Vec<Change>, Vec<String>), Fail> {
    copy.fill(files)
        .map_err(|e| Fail(format!("cannot make a private working copy: {e}")))?;
    let dir = copy.dir(&target.path);
    let mut drift = Vec::new();
    match target.mode {
        Mode::Edit => {
            if files.is_empty() {
                return Err(Fail(format!(
                    "no file under {:?} in {} (outputs.pullRequest.path): mode edit needs the manifests there",
                    target.path, target.repository
                )));
            }
            let r = manifests::edit_manifests(&dir, input.writable)
                .map_err(|e| Fail(format!("editing the manifests: {}", crate::collect::cluster::chain(&e))))?;
            for key in &r.not_found {
                tracing::warn!(workload = %key, "no manifest under {}:{} defines it", target.repository, target.path);
            }
            for p in &r.problems {
                tracing::warn!(workload = %p.key, "manifest not edited: {}", p.reason);
            }
            for (path, reason) in &r.unparsable {
                tracing::warn!(path = %copy.relative(path), "not valid YAML, left untouched: {reason}");
            }
            drift = r.drift_warnings();
        }
        Mode::Patches => {
            let current = CurrentObjects::from_workloads(input.workloads);
            let r = patches::write_patches(&dir, input.writable, target.patch_format, &current)
                .map_err(|e| Fail(format!("writing the patch set: {}", crate::collect::cluster::chain(&e))))?;
            for (key, reason) in &r.skipped {
                tracing::warn!(workload = %key, "no patch written: {reason}");
            }
        }
    }
    let changes = copy
        .changes(files, &target.path)
        .map_err(|e| Fail(format!("cannot read the private working copy: {e}")))?;
    Ok((changes, drift))
}

/// The pull request's body: the Markdown summary, the manifests' drift, and a footer.
fn body(input: &Input<'_>, drift: &[String], base: &str, sha: &str, limit: usize) -> Result<String, Fail> {
    let mut report = input.report.clone();
    report.warnings.extend(drift.iter().cloned());
    let mut md = Vec::new();
    super::write(&report, input.ctx, Format::Markdown, false, &mut md)
        .map_err(|e| Fail(format!("cannot write the Markdown summary: {e}")))?;
    let mut text = String::from_utf8_lossy(&md).into_owned();
    let footer = format!(
        "\n---\n<sub>Written by rightsizer on `{base}` at `{}`. Each run rewrites this branch from the base; a commit pushed to it makes rightsizer leave this pull request alone.</sub>\n",
        short(sha)
    );
    if text.len() + footer.len() > limit {
        let mut cut = limit.saturating_sub(footer.len() + 200);
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
        text.push_str("\n\n… (summary cut to the provider's size limit; the commit holds every change)\n");
    }
    text.push_str(&footer);
    Ok(text)
}

/// The first 12 characters of a commit id, for messages.
pub(crate) fn short(sha: &str) -> &str {
    &sha[..sha.len().min(12)]
}
