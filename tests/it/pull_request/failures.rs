//! The pull-request output when something is in the way: a human commit on the bot branch,
//! refusals (401, 403, 404, 422) with the message that names what to fix, rate limits waited
//! out or refused past the bounded wait. Every failure leaves the report written and the
//! previous pull request as it was, and exits 2.

use super::{BRANCH, Repo, TOKEN, calls};
use crate::support::forge::{Provider, RateLimit};

#[test]
fn pull_request_a_human_commit_on_the_branch_is_left_alone() {
    for provider in [Provider::GitHub, Provider::GitLab] {
        let repo = Repo::new(provider);
        repo.run(&[], "info").assert_ok();
        let human = repo.forge.commit_as_human(
            BRANCH,
            &[("k8s/shop/deployment-cart.yaml", b"# tuned by hand\n")],
            "cart: keep 2 cores",
        );
        let pull = repo.forge.pulls()[0].clone();
        repo.forge.clear_records();
        let run = repo.run(&["--cpu-percentile", "0.5"], "info");
        run.assert_ok();
        assert_eq!(repo.forge.writes(), [], "{}", repo.name());
        assert_eq!(repo.forge.branch_head(BRANCH).as_deref(), Some(human.as_str()));
        assert_eq!(repo.forge.pulls(), [pull]);
        assert!(
            run.stderr.contains("left-alone") && run.stderr.contains("a commit rightsizer did not make"),
            "{}",
            run.stderr
        );
    }
}

/// The run fails with exit 2 after writing the report, and stderr holds every `want`.
fn fails(repo: &Repo, extra: &[&str], wants: &[&str]) -> String {
    fails_to(repo, &format!("{}:org/repo@main:k8s/", repo.name()), extra, wants)
}

fn fails_to(repo: &Repo, spec: &str, extra: &[&str], wants: &[&str]) -> String {
    let run = repo.run_to(spec, extra, "debug");
    assert_eq!(run.code, Some(2), "{}", run.stderr);
    run.assert_no_token();
    let report: serde_json::Value = serde_json::from_str(&run.stdout)
        .unwrap_or_else(|e| panic!("the report is written first ({e}):\n{}", run.stderr));
    assert_eq!(report["kind"], "Report");
    // The messages as a person reads them (shown with --nocapture).
    for line in run
        .stderr
        .lines()
        .filter(|l| l.starts_with("error") || l.starts_with("hint"))
    {
        eprintln!("{}: {line}", repo.name());
    }
    for want in wants {
        assert!(
            run.stderr.contains(want),
            "{}: no {want:?} in\n{}",
            repo.name(),
            run.stderr
        );
    }
    run.stderr
}

#[test]
fn pull_request_refusals_name_the_permission_or_the_setting() {
    // 401: a token the provider does not know.
    for provider in [Provider::GitHub, Provider::GitLab] {
        let repo = Repo::new(provider);
        std::fs::write(&repo.token, "not-the-token\n").unwrap();
        fails(
            &repo,
            &[],
            &["answered 401", "is not accepted: it is wrong, expired or revoked"],
        );
        assert!(repo.forge.pulls().is_empty());
    }
    // 403: a read-only token.
    let repo = Repo::new(Provider::GitHub);
    repo.forge.set_permission(true);
    fails(
        &repo,
        &[],
        &[
            "answered 403",
            "`contents: write` and `pull_requests: write` on org/repo",
            "`repo` scope (classic token)",
        ],
    );
    assert_eq!(repo.forge.branch_head(BRANCH), None);
    let repo = Repo::new(Provider::GitLab);
    repo.forge.set_permission(true);
    fails(
        &repo,
        &[],
        &[
            "answered 403",
            "the `api` scope and at least the Developer role on org/repo",
        ],
    );
    // 404: a repository that is not there (or that the token cannot see), and a base branch
    // that does not exist.
    for provider in [Provider::GitHub, Provider::GitLab] {
        let repo = Repo::new(provider);
        let spec = format!("{}:org/other@main:k8s/", repo.name());
        fails_to(
            &repo,
            &spec,
            &[],
            &[
                "answered 404",
                "org/other",
                "check outputs.pullRequest.repository and apiUrl",
            ],
        );
        let spec = format!("{}:org/repo@nope:k8s/", repo.name());
        fails_to(
            &repo,
            &spec,
            &[],
            &["the base branch nope does not exist in org/repo (outputs.pullRequest.baseBranch)"],
        );
    }
    // 422 when opening the pull request: the branch is written, the pull request is not, and
    // the next run opens it.
    let repo = Repo::new(Provider::GitHub);
    repo.forge.fail_next("POST", "/api/v3/repos/org/repo/pulls", 422, 1);
    fails(
        &repo,
        &[],
        &[
            "answered 422",
            "opening the pull request",
            "hint: check outputs.pullRequest",
        ],
    );
    assert!(repo.forge.pulls().is_empty());
    repo.run(&[], "info").assert_ok();
    assert_eq!(repo.forge.pulls().len(), 1);
    // A failure after the pull request exists leaves it as it was.
    let before = repo.forge.pulls();
    let head = repo.forge.branch_head(BRANCH);
    repo.forge.fail_next("POST", "/api/v3/repos/org/repo/git/trees", 422, 1);
    fails(
        &repo,
        &["--cpu-percentile", "0.5"],
        &["answered 422", "writing the tree of the commit"],
    );
    assert_eq!(repo.forge.pulls(), before);
    assert_eq!(repo.forge.branch_head(BRANCH), head);
}

#[test]
fn pull_request_rate_limits_are_waited_out_within_the_bound() {
    for (provider, kind) in [
        (Provider::GitHub, RateLimit::Primary),
        (Provider::GitHub, RateLimit::Secondary),
        (Provider::GitLab, RateLimit::Primary),
    ] {
        let repo = Repo::new(provider);
        repo.forge.set_rate_limit_wait(1);
        repo.forge.rate_limit_next(kind, 2);
        let started = std::time::Instant::now();
        let run = repo.run(&[], "info");
        run.assert_ok();
        assert!(run.stderr.contains("rate limit"), "{}", run.stderr);
        assert!(started.elapsed().as_secs_f64() >= 1.0, "the wait was honoured");
        let limited = repo
            .forge
            .requests()
            .iter()
            .filter(|r| r.status == 429 || r.status == 403)
            .count();
        assert_eq!(limited, 2, "{:?}: {:#?}", kind, calls(&repo.forge));
        assert_eq!(repo.forge.pulls().len(), 1, "{provider:?} {kind:?}");
    }
    // A 502 on the archive and a 503 on a branch: retried, the archive file rewritten whole.
    let repo = Repo::new(Provider::GitHub);
    repo.forge.fail_next("GET", "/api/v3/repos/org/repo/tarball", 502, 1);
    repo.forge
        .fail_next("GET", "/api/v3/repos/org/repo/branches/main", 503, 1);
    let run = repo.run(&[], "info");
    run.assert_ok();
    assert!(run.stderr.contains("retrying"), "{}", run.stderr);
    assert_eq!(repo.forge.pulls().len(), 1);
    // A reset further away than the bound: a clear error with the time, no wait.
    let repo = Repo::new(Provider::GitHub);
    repo.forge.set_rate_limit_wait(3600);
    repo.forge.rate_limit_next(RateLimit::Primary, 1);
    let started = std::time::Instant::now();
    let stderr = fails(
        &repo,
        &["--set", "outputs.pullRequest.maxWait=30s"],
        &[
            "GitHub rate limit (primary)",
            "the limit resets at",
            "past the 30 s this output waits",
        ],
    );
    assert!(started.elapsed().as_secs() < 20, "{stderr}");
    assert!(!stderr.contains(TOKEN));
}
