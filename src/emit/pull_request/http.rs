//! HTTP for the pull-request output: one client per run with the provider's headers, every
//! request counted, rate limits honoured within a bounded wait, transient failures retried a
//! bounded number of times, and every refusal turned into a message that names the permission
//! or the setting to fix.
//!
//! Rate limits: GitHub answers 403 or 429 with `x-ratelimit-remaining: 0` and
//! `x-ratelimit-reset` (primary limit), or with `retry-after` or a "secondary rate limit"
//! message (secondary limits; without a header its docs say to wait at least a minute).
//! GitLab answers 429 with `Retry-After` and `RateLimit-Reset`. A success that reports no
//! request left makes the next request wait for the reset. Every wait of a run adds up and is
//! bounded (`max_wait`): past it the output fails with the time of the reset.
//!
//! Retries: a request that got no answer, or a 500/502/503/504, is tried again after 1 s and
//! 2 s, unless it is a `POST` (creating a pull request twice is worse than failing once).
//! The token goes in a header marked sensitive and is never part of a message.

use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use reqwest::Method;
use reqwest::header::{HeaderMap, HeaderValue};
use serde_json::Value;

use super::{Provider, PullRequestTarget};

/// A failure of the pull-request output, as the message a person reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fail(pub String);

impl std::fmt::Display for Fail {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Fail {}

/// One request's answer (2xx, or a 404 the caller expects).
pub(crate) struct Answer {
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl Answer {
    pub fn json(&self) -> Result<Value, Fail> {
        serde_json::from_slice(&self.body)
            .map_err(|e| Fail(format!("the provider answered something that is not JSON: {e}")))
    }
}

/// What a request is for: named in messages, and the setting a 422 points at.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Step<'a> {
    pub what: &'a str,
    pub setting: &'a str,
}

/// What a request expects back.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Expect<'a> {
    /// JSON; a 404 is an error.
    Json,
    /// A branch: JSON, or `None` for the provider's 404 of a missing branch ("Branch not
    /// found", "404 Branch Not Found"); any other 404 (the repository) is an error.
    Branch,
    /// A repository archive, streamed into this file (memory stays flat whatever its
    /// size); the answer's body is then empty.
    Archive(&'a std::fs::File),
}

impl Expect<'_> {
    fn max_bytes(self) -> u64 {
        match self {
            // A page of 100 pull requests is well under 1 MiB.
            Expect::Json | Expect::Branch => 16 << 20,
            // Compressed, on disk; `tree::Limits` bounds what it holds.
            Expect::Archive(_) => ARCHIVE_BYTES,
        }
    }
}

/// Largest archive downloaded, compressed (deploy/pull-request's `/tmp` holds 512 MiB).
pub(crate) const ARCHIVE_BYTES: u64 = 256 << 20;
/// Retries of a rate-limited request before giving up, whatever the wait.
const RATE_RETRIES: u32 = 4;
/// Attempts of a request that got no answer or a 5xx.
const ATTEMPTS: u32 = 3;
/// One request, the archive download included.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(120);
/// GitHub's docs: after a secondary limit without `retry-after`, wait at least a minute.
const SECONDARY_WAIT: Duration = Duration::from_secs(60);

#[derive(Default)]
struct State {
    requests: Vec<String>,
    waited: Duration,
    /// A success said no request is left until then (unix seconds).
    blocked_until: Option<u64>,
}

pub(crate) struct Api {
    client: reqwest::Client,
    base: String,
    provider: Provider,
    repo: String,
    token_file: PathBuf,
    max_wait: Duration,
    state: Mutex<State>,
}

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

fn rfc3339(unix: u64) -> String {
    chrono::DateTime::from_timestamp(unix as i64, 0).map_or_else(|| unix.to_string(), |t| t.to_rfc3339())
}

fn header_u64(headers: &HeaderMap, names: &[&str]) -> Option<u64> {
    names
        .iter()
        .find_map(|n| headers.get(*n)?.to_str().ok()?.trim().parse().ok())
}

/// The provider's own words: GitHub's `message` (and `errors`), GitLab's `message` or
/// `error`, else the start of the body.
pub(crate) fn provider_message(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let said = match serde_json::from_slice::<Value>(body) {
        Ok(v) => {
            let mut parts = Vec::new();
            for key in ["message", "error", "error_description"] {
                match &v[key] {
                    Value::String(s) => parts.push(s.clone()),
                    Value::Null => {}
                    other => parts.push(other.to_string()),
                }
            }
            if let Some(errors) = v["errors"].as_array() {
                for e in errors {
                    let line = e["message"]
                        .as_str()
                        .map(str::to_string)
                        .or_else(|| e.as_str().map(str::to_string))
                        .unwrap_or_else(|| {
                            format!(
                                "{} {} {}",
                                e["resource"].as_str().unwrap_or_default(),
                                e["field"].as_str().unwrap_or_default(),
                                e["code"].as_str().unwrap_or_default()
                            )
                        });
                    parts.push(line.trim().to_string());
                }
            }
            if parts.is_empty() {
                text.trim().to_string()
            } else {
                parts.join("; ")
            }
        }
        Err(_) => text.trim().to_string(),
    };
    let said: String = said.chars().filter(|c| !c.is_control()).take(400).collect();
    if said.is_empty() { "(no message)".into() } else { said }
}

/// How long a refused request must wait, when the refusal is a rate limit.
fn rate_limit(status: u16, headers: &HeaderMap, body: &[u8], now: u64) -> Option<(Duration, &'static str)> {
    let retry_after = header_u64(headers, &["retry-after"]);
    let remaining = header_u64(headers, &["x-ratelimit-remaining", "ratelimit-remaining"]);
    let reset = header_u64(headers, &["x-ratelimit-reset", "ratelimit-reset"]);
    let text = String::from_utf8_lossy(body).to_ascii_lowercase();
    let secondary = text.contains("secondary rate limit") || text.contains("abuse detection");
    let limited = status == 429
        || (status == 403
            && (retry_after.is_some() || remaining == Some(0) || secondary || text.contains("rate limit")));
    if !limited {
        return None;
    }
    let kind = if remaining == Some(0) && !secondary {
        "primary"
    } else {
        "secondary"
    };
    let wait = match (retry_after, remaining, reset) {
        (Some(s), _, _) => Duration::from_secs(s),
        (None, Some(0), Some(reset)) => Duration::from_secs(reset.saturating_sub(now).max(1)),
        _ => SECONDARY_WAIT,
    };
    Some((wait, kind))
}

impl Api {
    pub fn new(target: &PullRequestTarget, token: &str) -> Result<Api, Fail> {
        crate::install_crypto_provider();
        let mut headers = HeaderMap::new();
        let mut auth = HeaderValue::from_str(&format!("Bearer {token}"))
            .map_err(|_| Fail("the token holds characters a header cannot carry".into()))?;
        auth.set_sensitive(true);
        headers.insert(reqwest::header::AUTHORIZATION, auth);
        if target.provider == Provider::GitHub {
            headers.insert(
                reqwest::header::ACCEPT,
                HeaderValue::from_static("application/vnd.github+json"),
            );
            headers.insert("x-github-api-version", HeaderValue::from_static("2022-11-28"));
        }
        let client = reqwest::Client::builder()
            .user_agent(concat!("rightsizer/", env!("CARGO_PKG_VERSION")))
            .default_headers(headers)
            .connect_timeout(Duration::from_secs(10))
            .timeout(REQUEST_TIMEOUT)
            .build()
            .map_err(|e| Fail(format!("cannot build the HTTP client: {e}")))?;
        Ok(Api {
            client,
            base: target.api_url.trim_end_matches('/').to_string(),
            provider: target.provider,
            repo: target.repository.clone(),
            token_file: target.token_file.clone(),
            max_wait: target.max_wait,
            state: Mutex::new(State::default()),
        })
    }

    /// The requests made so far, `METHOD /path STATUS`, in order.
    pub fn requests(&self) -> Vec<String> {
        self.state.lock().expect("not poisoned").requests.clone()
    }

    fn record(&self, method: &Method, path: &str, status: Option<u16>) {
        let status = status.map_or_else(|| "no answer".to_string(), |s| s.to_string());
        let line = format!("{method} {path} {status}");
        tracing::debug!(request = %line, "pull request api");
        self.state.lock().expect("not poisoned").requests.push(line);
    }

    /// Waits `wait` within the run's bound, or fails naming when the limit resets.
    async fn wait(&self, step: Step<'_>, wait: Duration, kind: &str) -> Result<(), Fail> {
        let waited = self.state.lock().expect("not poisoned").waited;
        if waited + wait > self.max_wait {
            return Err(Fail(format!(
                "{} rate limit ({kind}) while {}: the limit resets at {} ({} s from now), past the {} s this output waits in one run\nhint: the next run tries again; a token of its own gives rightsizer its own quota",
                self.provider.name(),
                step.what,
                rfc3339(now() + wait.as_secs()),
                wait.as_secs(),
                self.max_wait.as_secs()
            )));
        }
        tracing::warn!(
            wait_s = wait.as_secs(),
            limit = kind,
            "{} rate limit while {}: waiting",
            self.provider.name(),
            step.what
        );
        tokio::time::sleep(wait).await;
        self.state.lock().expect("not poisoned").waited += wait;
        Ok(())
    }

    /// A success that says no request is left blocks the next one until the reset.
    fn note_quota(&self, headers: &HeaderMap) {
        let remaining = header_u64(headers, &["x-ratelimit-remaining", "ratelimit-remaining"]);
        let reset = header_u64(headers, &["x-ratelimit-reset", "ratelimit-reset"]);
        let mut state = self.state.lock().expect("not poisoned");
        state.blocked_until = match (remaining, reset) {
            (Some(0), Some(reset)) if reset > now() => Some(reset),
            _ => None,
        };
    }

    /// Sends one request (see the module docs for retries and limits). `Ok(None)` is a 404
    /// of a missing branch with [`Expect::Branch`].
    pub async fn send(
        &self,
        step: Step<'_>,
        method: Method,
        path: &str,
        query: &[(&str, &str)],
        body: Option<&Value>,
        expect: Expect<'_>,
    ) -> Result<Option<Answer>, Fail> {
        let max_bytes = expect.max_bytes();
        let url = format!("{}{path}", self.base);
        let retry_failures = method != Method::POST;
        let (mut attempt, mut limited) = (1, 0);
        loop {
            let blocked = self.state.lock().expect("not poisoned").blocked_until.take();
            if let Some(until) = blocked.filter(|u| *u > now()) {
                self.wait(step, Duration::from_secs(until - now()), "primary").await?;
            }
            let mut request = self.client.request(method.clone(), &url);
            if !query.is_empty() {
                request = request.query(query);
            }
            if let Some(body) = body {
                request = request.json(body);
            }
            let answer = match request.send().await {
                Ok(r) => {
                    let status = r.status().as_u16();
                    let headers = r.headers().clone();
                    match expect {
                        Expect::Archive(file) if (200..300).contains(&status) => download(r, file, max_bytes)
                            .await
                            .map(|()| (status, headers, Vec::new())),
                        _ => read_capped(r, max_bytes.min(16 << 20))
                            .await
                            .map(|body| (status, headers, body)),
                    }
                }
                Err(e) => Err(e.without_url().to_string()),
            };
            let (status, headers, bytes) = match answer {
                Ok(a) => a,
                Err(e) => {
                    self.record(&method, path, None);
                    if retry_failures && attempt < ATTEMPTS {
                        tracing::warn!(attempt, error = %e, "no answer from {} while {}: retrying", self.provider.name(), step.what);
                        tokio::time::sleep(Duration::from_secs(1 << (attempt - 1))).await;
                        attempt += 1;
                        continue;
                    }
                    return Err(Fail(format!(
                        "no answer from {} at {} while {}: {e}",
                        self.provider.name(),
                        self.base,
                        step.what
                    )));
                }
            };
            self.record(&method, path, Some(status));
            self.note_quota(&headers);
            if (200..300).contains(&status) {
                return Ok(Some(Answer { headers, body: bytes }));
            }
            if status == 404
                && matches!(expect, Expect::Branch)
                && provider_message(&bytes).to_ascii_lowercase().contains("branch")
            {
                return Ok(None);
            }
            if let Some((wait, kind)) = rate_limit(status, &headers, &bytes, now()) {
                if limited < RATE_RETRIES {
                    limited += 1;
                    self.wait(step, wait, kind).await?;
                    continue;
                }
                return Err(Fail(format!(
                    "{} kept answering {status} (rate limit, {kind}) while {} after {RATE_RETRIES} waits",
                    self.provider.name(),
                    step.what
                )));
            }
            if retry_failures && matches!(status, 500 | 502 | 503 | 504) && attempt < ATTEMPTS {
                tracing::warn!(
                    attempt,
                    status,
                    "{} failed while {}: retrying",
                    self.provider.name(),
                    step.what
                );
                tokio::time::sleep(Duration::from_secs(1 << (attempt - 1))).await;
                attempt += 1;
                continue;
            }
            return Err(self.refused(step, &method, path, status, &bytes));
        }
    }

    /// The default branch from `GET path` (GitHub's repository, GitLab's project: both
    /// answer `default_branch`).
    pub async fn default_branch(&self, path: &str, what: &str, repository: &str) -> Result<String, Fail> {
        let step = Step {
            what,
            setting: "outputs.pullRequest.repository",
        };
        let v = self.get(step, path, &[]).await?.json()?;
        v["default_branch"].as_str().map(str::to_string).ok_or_else(|| {
            Fail(format!(
                "{repository} has no default branch: set outputs.pullRequest.baseBranch"
            ))
        })
    }

    pub async fn get(&self, step: Step<'_>, path: &str, query: &[(&str, &str)]) -> Result<Answer, Fail> {
        Ok(self
            .send(step, Method::GET, path, query, None, Expect::Json)
            .await?
            .expect("a 404 is an error here"))
    }

    pub async fn write(&self, step: Step<'_>, method: Method, path: &str, body: &Value) -> Result<Answer, Fail> {
        Ok(self
            .send(step, method, path, &[], Some(body), Expect::Json)
            .await?
            .expect("a 404 is an error here"))
    }

    /// The message for a refusal, with the hint that fits the status.
    fn refused(&self, step: Step<'_>, method: &Method, path: &str, status: u16, body: &[u8]) -> Fail {
        let (provider, repo) = (self.provider.name(), &self.repo);
        let hint = match (status, self.provider) {
            (401, _) => format!(
                "the token from {} is not accepted: it is wrong, expired or revoked",
                self.token_file.display()
            ),
            (403, Provider::GitHub) => format!(
                "the token needs `contents: write` and `pull_requests: write` on {repo} (fine-grained token), or the `repo` scope (classic token)"
            ),
            (403, Provider::GitLab) => format!(
                "the token needs the `api` scope and at least the Developer role on {repo} (Maintainer when the branch is protected)"
            ),
            (404, Provider::GitHub) => format!(
                "{repo} is not at {} or the token cannot see it: check outputs.pullRequest.repository and apiUrl (GitHub Enterprise: https://HOST/api/v3); a fine-grained token must include the repository",
                self.base
            ),
            (404, Provider::GitLab) => format!(
                "project {repo} is not at {} or the token cannot see it: check outputs.pullRequest.repository and apiUrl (self-managed GitLab: https://HOST)",
                self.base
            ),
            (409, _) => "the repository refused the write as a conflict (an empty repository, or a branch that moved during the run): run again".into(),
            (422, _) => format!("check {}", step.setting),
            _ => format!("{provider} may be unavailable: the next run tries again"),
        };
        Fail(format!(
            "{provider} answered {status} to {method} {path} while {}: {}\nhint: {hint}",
            step.what,
            provider_message(body)
        ))
    }
}

async fn read_capped(mut r: reqwest::Response, max: u64) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    while let Some(chunk) = r.chunk().await.map_err(|e| e.without_url().to_string())? {
        if (out.len() + chunk.len()) as u64 > max {
            return Err(format!("the answer is larger than {} MiB", max >> 20));
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}

/// Streams the body into `file` from its start (a retry rewrites it), at most `max` bytes.
async fn download(mut r: reqwest::Response, file: &std::fs::File, max: u64) -> Result<(), String> {
    use std::io::{Seek, Write};
    let mut out = file;
    let io = |e: std::io::Error| format!("cannot write the archive to the working directory: {e}");
    out.set_len(0).map_err(io)?;
    out.seek(std::io::SeekFrom::Start(0)).map_err(io)?;
    let mut written = 0u64;
    while let Some(chunk) = r.chunk().await.map_err(|e| e.without_url().to_string())? {
        written += chunk.len() as u64;
        if written > max {
            return Err(format!(
                "the archive is larger than {} MiB: too large to read",
                max >> 20
            ));
        }
        out.write_all(&chunk).map_err(io)?;
    }
    out.flush().map_err(io)?;
    Ok(())
}

/// Percent-encodes one path segment (GitLab project paths and branch names: `/` is `%2F`).
pub(crate) fn segment(s: &str) -> String {
    use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
    const KEEP: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.').remove(b'~');
    utf8_percent_encode(s, KEEP).to_string()
}

/// The URL of the next page from a `Link` header (GitHub, and GitLab's keyset pages).
pub(crate) fn next_link(headers: &HeaderMap) -> Option<String> {
    let link = headers.get("link")?.to_str().ok()?;
    link.split(',').find_map(|part| {
        let (url, params) = part.split_once(';')?;
        params
            .split(';')
            .any(|p| p.trim() == r#"rel="next""#)
            .then(|| url.trim().trim_start_matches('<').trim_end_matches('>').to_string())
    })
}

#[cfg(test)]
mod tests;
