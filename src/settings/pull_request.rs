//! `outputs.pullRequest` checked into a [`PullRequestTarget`]: every key validated once, each
//! error naming the key and the layer it came from. The token is only ever a file: a token in
//! the configuration is refused (a ConfigMap is readable by anyone who can read the namespace
//! and ends up in logs); the file is read now, so a wrong path fails before the run, and again
//! at every run (a mounted Secret rotates). Its content is never shown.

use std::time::Duration;

use url::Url;

use super::{Config, Origins, parse_duration};
use crate::Error;
use crate::emit::patches::PatchFormat;
use crate::emit::pull_request::{DEFAULT_TITLE, Mode, Provider, PullRequestTarget, spec};

/// Rate limits: GitHub's primary limit resets hourly, which no CronJob should sit through;
/// five minutes rides out secondary limits (GitHub asks for at least one) and GitLab's.
const DEFAULT_MAX_WAIT: Duration = Duration::from_secs(300);

pub(super) fn target(c: &Config, o: &Origins) -> Result<Option<PullRequestTarget>, Error> {
    let Some(pr) = &c.outputs.pull_request else {
        return Ok(None);
    };
    let k = |key: &str| format!("outputs.pullRequest.{key}");
    let Some(provider) = pr.provider else {
        return Err(Error::Config(format!(
            "outputs.pullRequest (from {}) has no provider: give github or gitlab (--pull-request github:org/repo@main:k8s/)",
            o.of("outputs.pullRequest")
        )));
    };
    if pr.token.is_some() {
        return Err(Error::Config(format!(
            "{} (from {}) is refused: a token never sits in the configuration; put it in a Secret and give {} (--pull-request-token-file)",
            k("token"),
            o.of(&k("token")),
            k("tokenFile")
        )));
    }
    let Some(token_file) = &pr.token_file else {
        return Err(Error::Config(format!(
            "outputs.pullRequest (from {}) has no tokenFile: give the file of a mounted Secret (--pull-request-token-file)",
            o.of("outputs.pullRequest")
        )));
    };
    match std::fs::read_to_string(token_file) {
        Ok(t) if !t.trim().is_empty() => {}
        Ok(_) => return Err(o.bad(&k("tokenFile"), token_file, "the file is empty")),
        Err(e) => return Err(o.bad(&k("tokenFile"), token_file, format!("cannot be read: {e}"))),
    }
    if pr.repository.is_empty() {
        return Err(Error::Config(format!(
            "outputs.pullRequest (from {}) has no repository: give org/repo",
            o.of("outputs.pullRequest")
        )));
    }
    spec::check_repository(&pr.repository, provider == Provider::GitHub)
        .map_err(|e| o.bad(&k("repository"), &pr.repository, e))?;
    let api_url = api_url(pr.api_url.as_deref(), provider).map_err(|e| {
        o.bad(
            &k("apiUrl"),
            crate::settings::file::redact_url(pr.api_url.as_deref().unwrap_or_default()),
            e,
        )
    })?;
    if let Some(base) = &pr.base_branch {
        spec::check_branch(base).map_err(|e| o.bad(&k("baseBranch"), base, e))?;
    }
    let path = spec::normalize_path(&pr.path).map_err(|e| o.bad(&k("path"), &pr.path, e))?;
    let branch = match &pr.branch {
        Some(b) => {
            spec::check_branch(b).map_err(|e| o.bad(&k("branch"), b, e))?;
            b.clone()
        }
        None => {
            let cluster = c.kube.context.as_deref().or_else(|| {
                c.outputs
                    .push
                    .as_ref()
                    .and_then(|p| p.grouping.get("cluster"))
                    .map(String::as_str)
            });
            spec::default_branch(cluster)
        }
    };
    if pr.base_branch.as_deref() == Some(branch.as_str()) {
        return Err(Error::Config(format!(
            "{} {branch:?} (from {}) is the base branch too: the bot needs a branch of its own",
            k("branch"),
            o.of(&k("branch"))
        )));
    }
    let title = pr.title.clone().unwrap_or_else(|| DEFAULT_TITLE.to_string());
    if title.trim().is_empty() || title.chars().any(char::is_control) || title.len() > 250 {
        return Err(o.bad(&k("title"), &title, "one line of at most 250 characters"));
    }
    for (key, values) in [
        ("labels", &pr.labels),
        ("reviewers", &pr.reviewers),
        ("assignees", &pr.assignees),
    ] {
        for v in values {
            let bad = v.trim().is_empty()
                || v.chars().any(char::is_control)
                || (key != "labels" && v.contains(char::is_whitespace))
                || (key == "labels" && provider == Provider::GitLab && v.contains(','));
            if bad {
                return Err(o.bad(
                    &k(key),
                    v,
                    if key == "labels" {
                        "a label is a non-empty line (GitLab: without ',')"
                    } else {
                        "a username without spaces"
                    },
                ));
            }
        }
    }
    if provider == Provider::GitLab && pr.reviewers.iter().any(|r| r.contains('/')) {
        return Err(o.bad(
            &k("reviewers"),
            &pr.reviewers,
            "GitLab takes usernames; team reviewers (org/team) are GitHub's",
        ));
    }
    let patch_format = match (pr.mode, pr.patch_format) {
        (Mode::Edit, Some(_)) => {
            return Err(Error::Config(format!(
                "{} (from {}) applies to mode patches only, and {} is edit (from {})",
                k("patchFormat"),
                o.of(&k("patchFormat")),
                k("mode"),
                o.of(&k("mode"))
            )));
        }
        (_, f) => f.unwrap_or(PatchFormat::Strategic),
    };
    let max_wait = match &pr.max_wait {
        Some(d) => parse_duration(d).map_err(|e| o.bad(&k("maxWait"), d, e))?,
        None => DEFAULT_MAX_WAIT,
    };
    Ok(Some(PullRequestTarget {
        provider,
        api_url,
        repository: pr.repository.clone(),
        base_branch: pr.base_branch.clone(),
        path,
        mode: pr.mode,
        patch_format,
        branch,
        title,
        labels: pr.labels.clone(),
        reviewers: pr.reviewers.clone(),
        assignees: pr.assignees.clone(),
        draft: pr.draft,
        token_file: token_file.clone(),
        max_wait,
    }))
}

/// The API base: http(s), no credentials (the token comes from its file), no query.
fn api_url(raw: Option<&str>, provider: Provider) -> Result<String, String> {
    let raw = raw.unwrap_or(provider.default_api_url());
    let url = Url::parse(raw).map_err(|e| e.to_string())?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err("use an http or https URL".into());
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("credentials in the URL are refused: give tokenFile".into());
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err("no query or fragment: the API base only".into());
    }
    if provider == Provider::GitLab && url.path().trim_end_matches('/').ends_with("/api/v4") {
        return Err("give GitLab's base URL (https://HOST), without /api/v4".into());
    }
    Ok(url.as_str().trim_end_matches('/').to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::RunSettings;

    fn token() -> tempfile::NamedTempFile {
        let f = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(f.path(), "ghp_s3cret\n").unwrap();
        f
    }

    fn recommend(args: &[&str]) -> Result<RunSettings, Error> {
        let mut argv = vec!["rightsizer", "recommend", "--snapshot", "x.json.gz"];
        argv.extend(args);
        RunSettings::from_argv(argv)
    }

    fn err(args: &[&str]) -> String {
        recommend(args).expect_err("accepted").to_string()
    }

    #[test]
    fn the_short_form_and_the_flags_make_a_target() {
        let t = token();
        let file = t.path().to_str().unwrap();
        // The default branch comes from the kube context (set through --set: --context and
        // --snapshot exclude each other).
        let s = recommend(&[
            "--pull-request",
            "github:org/repo@main:./k8s/",
            "--pull-request-token-file",
            file,
            "--pull-request-labels",
            "resources,bot",
            "--pull-request-draft",
            "--set",
            "kube.context=arn:aws:eks:eu-west-1:1:cluster/prod",
        ])
        .unwrap();
        let p = s.outputs.pull_request.unwrap();
        assert_eq!(p.provider, Provider::GitHub);
        assert_eq!(p.api_url, "https://api.github.com");
        assert_eq!(
            (p.repository.as_str(), p.base_branch.as_deref()),
            ("org/repo", Some("main"))
        );
        assert_eq!(p.path, "k8s");
        assert_eq!(p.mode, Mode::Edit);
        assert_eq!(p.branch, "rightsizer/arn-aws-eks-eu-west-1-1-cluster-prod");
        assert_eq!(p.labels, ["resources", "bot"]);
        assert!(p.draft);
        assert_eq!(p.max_wait, DEFAULT_MAX_WAIT);
        assert!(!s.redacted.contains("ghp_s3cret"));
    }

    #[test]
    fn errors_name_the_key_and_its_origin() {
        let t = token();
        let file = t.path().to_str().unwrap();
        let e = err(&["--pull-request", "org/repo"]);
        assert!(e.contains("--pull-request") && e.contains("PROVIDER:REPOSITORY"), "{e}");
        let e = err(&["--pull-request", "bitbucket:o/r", "--pull-request-token-file", file]);
        assert!(
            e.contains("outputs.pullRequest.provider") && e.contains("--pull-request"),
            "{e}"
        );
        let e = err(&["--pull-request", "github:o/r:../x", "--pull-request-token-file", file]);
        assert!(
            e.contains("outputs.pullRequest.path") && e.contains("(from --pull-request)"),
            "{e}"
        );
        let e = err(&["--pull-request", "github:o/r"]);
        assert!(e.contains("no tokenFile"), "{e}");
        let e = err(&[
            "--pull-request",
            "github:o/r",
            "--pull-request-token-file",
            "/nonexistent/token",
        ]);
        assert!(
            e.contains("outputs.pullRequest.tokenFile") && e.contains("cannot be read"),
            "{e}"
        );
        let e = err(&[
            "--pull-request",
            "github:o/r",
            "--pull-request-token-file",
            file,
            "--pull-request-branch",
            "a..b",
        ]);
        assert!(
            e.contains("outputs.pullRequest.branch") && e.contains("--pull-request-branch"),
            "{e}"
        );
        let e = err(&[
            "--pull-request",
            "github:o/r@main",
            "--pull-request-token-file",
            file,
            "--pull-request-branch",
            "main",
        ]);
        assert!(e.contains("base branch too"), "{e}");
        let e = err(&["--pull-request", "github:a/b/c", "--pull-request-token-file", file]);
        assert!(e.contains("OWNER/REPO"), "{e}");
        let e = err(&["--pull-request-draft"]);
        assert!(e.contains("no provider") && e.contains("--pull-request-draft"), "{e}");
        let e = err(&[
            "--pull-request",
            "github:o/r",
            "--pull-request-token-file",
            file,
            "--set",
            "outputs.pullRequest.patchFormat=json6902",
        ]);
        assert!(e.contains("patchFormat") && e.contains("mode patches only"), "{e}");
    }

    #[test]
    fn a_token_in_the_config_file_is_refused_and_never_shown() {
        let t = token();
        let config = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(
            config.path(),
            format!(
                "outputs:\n  pullRequest:\n    provider: gitlab\n    repository: group/sub/project\n    tokenFile: {}\n    token: glpat-inline\n",
                t.path().display()
            ),
        )
        .unwrap();
        let e = err(&["--config", config.path().to_str().unwrap()]);
        assert!(e.contains("outputs.pullRequest.token") && e.contains("line 6"), "{e}");
        assert!(e.contains("tokenFile") && !e.contains("glpat-inline"), "{e}");
        std::fs::write(
            config.path(),
            format!(
                "outputs:\n  pullRequest:\n    provider: gitlab\n    repository: group/sub/project\n    tokenFile: {}\n    mode: patches\n",
                t.path().display()
            ),
        )
        .unwrap();
        let s = recommend(&["--config", config.path().to_str().unwrap()]).unwrap();
        let p = s.outputs.pull_request.unwrap();
        assert_eq!(
            (p.provider, p.mode, p.path.as_str()),
            (Provider::GitLab, Mode::Patches, "")
        );
        assert_eq!(
            (p.api_url.as_str(), p.branch.as_str()),
            ("https://gitlab.com", "rightsizer/resources")
        );
    }

    #[test]
    fn api_urls() {
        assert_eq!(api_url(None, Provider::GitHub).unwrap(), "https://api.github.com");
        assert_eq!(api_url(None, Provider::GitLab).unwrap(), "https://gitlab.com");
        assert_eq!(
            api_url(Some("https://ghe.example.com/api/v3/"), Provider::GitHub).unwrap(),
            "https://ghe.example.com/api/v3"
        );
        assert!(api_url(Some("https://u:p@ghe/api/v3"), Provider::GitHub).is_err());
        assert!(api_url(Some("ftp://x"), Provider::GitHub).is_err());
        assert!(api_url(Some("https://gitlab.example/api/v4"), Provider::GitLab).is_err());
    }
}
