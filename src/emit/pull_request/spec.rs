//! The pure parts of the pull-request settings: the CLI short form
//! (`github:org/repo@main:k8s/`), repository and path normalisation, and git ref names
//! (`git check-ref-format` rules), so the settings refuse a bad value before the run.

/// The parts of `--pull-request PROVIDER:REPOSITORY[@BASE][:PATH]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Short {
    pub provider: String,
    pub repository: String,
    pub base_branch: Option<String>,
    pub path: Option<String>,
}

/// Parses the short form. A repository name holds neither `@` nor `:`, and a branch name
/// holds no `:` (git refuses it), so the first `:` ends the provider, the next `@` the
/// repository and the next `:` the base branch.
pub fn parse_short(text: &str) -> Result<Short, String> {
    let usage = "use PROVIDER:REPOSITORY[@BASE][:PATH], e.g. github:org/repo@main:k8s/";
    let (provider, rest) = text.split_once(':').ok_or_else(|| format!("no provider: {usage}"))?;
    let (head, path) = match rest.split_once(':') {
        Some((head, path)) => (head, Some(path.to_string())),
        None => (rest, None),
    };
    let (repository, base) = match head.split_once('@') {
        Some((repo, base)) => (repo, Some(base.to_string())),
        None => (head, None),
    };
    if repository.is_empty() {
        return Err(format!("no repository: {usage}"));
    }
    if base.as_deref() == Some("") {
        return Err(format!("empty base branch after '@': {usage}"));
    }
    Ok(Short {
        provider: provider.trim().to_ascii_lowercase(),
        repository: repository.to_string(),
        base_branch: base,
        path,
    })
}

/// Checks `org/repo` (GitLab: `group/subgroup/project`): segments of letters, digits, `.`,
/// `-` and `_`, not `.` or `..`. GitHub has exactly two segments.
pub fn check_repository(repo: &str, github: bool) -> Result<(), String> {
    let parts: Vec<&str> = repo.split('/').collect();
    if parts.len() < 2 || (github && parts.len() != 2) {
        return Err(if github {
            "use OWNER/REPO".into()
        } else {
            "use GROUP/PROJECT (subgroups: GROUP/SUBGROUP/PROJECT)".into()
        });
    }
    for p in parts {
        let ok = !p.is_empty()
            && p != "."
            && p != ".."
            && p.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'));
        if !ok {
            return Err(format!(
                "segment {p:?}: a repository name is letters, digits, '.', '-' and '_'"
            ));
        }
    }
    Ok(())
}

/// `./k8s/` -> `k8s`; `/`, `.` and empty -> the root (empty). Refuses `..` and empty segments.
pub fn normalize_path(path: &str) -> Result<String, String> {
    let mut parts = Vec::new();
    for part in path.trim().split('/') {
        match part {
            "" | "." => continue,
            ".." => return Err("'..' leaves the repository".into()),
            p if p.chars().any(|c| c.is_control() || c == '\\') => {
                return Err("control characters and '\\' are not taken in a path".into());
            }
            p => parts.push(p),
        }
    }
    Ok(parts.join("/"))
}

/// Whether `name` is a valid branch name (`git check-ref-format --branch` rules).
pub fn check_branch(name: &str) -> Result<(), String> {
    let bad = |why: &str| Err(format!("not a valid git branch name: {why}"));
    if name.is_empty() {
        return bad("empty");
    }
    if name.len() > 200 {
        return bad("longer than 200 characters");
    }
    if name == "@" {
        return bad("'@' alone");
    }
    if name.starts_with('-') {
        return bad("starts with '-'");
    }
    if name.starts_with('/') || name.ends_with('/') || name.contains("//") {
        return bad("empty path component");
    }
    if name.ends_with('.') {
        return bad("ends with '.'");
    }
    if name.contains("..") || name.contains("@{") {
        return bad("contains '..' or '@{'");
    }
    if let Some(c) = name
        .chars()
        .find(|c| c.is_ascii_control() || matches!(c, ' ' | '~' | '^' | ':' | '?' | '*' | '[' | '\\' | '\x7f'))
    {
        return bad(&format!("contains {c:?}"));
    }
    for part in name.split('/') {
        if part.starts_with('.') || part.ends_with(".lock") {
            return bad(&format!("component {part:?} starts with '.' or ends with '.lock'"));
        }
    }
    Ok(())
}

/// `rightsizer/<name>` with `name` made a valid ref component: every character git refuses
/// (and `/`) becomes `-`, runs of `-` and `.` collapse (an EKS context
/// `arn:aws:eks:eu-west-1:123:cluster/prod` gives `rightsizer/arn-aws-eks-eu-west-1-123-cluster-prod`).
pub fn default_branch(name: Option<&str>) -> String {
    let Some(name) = name.map(str::trim).filter(|n| !n.is_empty()) else {
        return "rightsizer/resources".into();
    };
    let mut out = String::new();
    for c in name.chars() {
        let keep = c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.');
        let c = if keep { c } else { '-' };
        if (c == '-' || c == '.') && out.ends_with(['-', '.']) {
            continue;
        }
        out.push(c);
    }
    let out = out.trim_matches(['-', '.']).to_string();
    let out = out.strip_suffix(".lock").unwrap_or(&out).to_string();
    if out.is_empty() {
        "rightsizer/resources".into()
    } else {
        format!("rightsizer/{}", &out[..out.len().min(100)])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_form_parts() {
        let s = parse_short("github:org/repo@main:k8s/").unwrap();
        assert_eq!(
            s,
            Short {
                provider: "github".into(),
                repository: "org/repo".into(),
                base_branch: Some("main".into()),
                path: Some("k8s/".into()),
            }
        );
        let s = parse_short("gitlab:group/sub/project").unwrap();
        assert_eq!((s.base_branch, s.path), (None, None));
        let s = parse_short("GitHub:o/r:deploy/prod").unwrap();
        assert_eq!(s.provider, "github");
        assert_eq!((s.base_branch, s.path.as_deref()), (None, Some("deploy/prod")));
        let s = parse_short("github:o/r@release/v1.2").unwrap();
        assert_eq!(s.base_branch.as_deref(), Some("release/v1.2"));
        for bad in ["org/repo", "github:", "github:@main", "github:o/r@:k8s"] {
            assert!(parse_short(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn repositories_and_paths() {
        assert!(check_repository("org/repo", true).is_ok());
        assert!(check_repository("group/sub/project", false).is_ok());
        assert!(check_repository("group/sub/project", true).is_err());
        for bad in ["repo", "org/", "org/../x", "org/re po", "org//repo"] {
            assert!(check_repository(bad, false).is_err(), "{bad}");
        }
        assert_eq!(normalize_path("./k8s/").unwrap(), "k8s");
        assert_eq!(normalize_path("/deploy//prod/").unwrap(), "deploy/prod");
        assert_eq!(normalize_path(".").unwrap(), "");
        assert!(normalize_path("k8s/../..").is_err());
    }

    #[test]
    fn branch_names_follow_git() {
        for ok in ["rightsizer/prod", "main", "feature/a.b", "r@x"] {
            assert!(check_branch(ok).is_ok(), "{ok}");
        }
        for bad in [
            "", "-x", "a..b", "a b", "a:b", "a/", "/a", "a//b", "x.lock", "a/.b", "a@{1}", "a~1", "a^", "a?", "a*",
            "a[", "@", "x.",
        ] {
            assert!(check_branch(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn default_branches_are_valid_refs() {
        assert_eq!(default_branch(None), "rightsizer/resources");
        assert_eq!(default_branch(Some("prod")), "rightsizer/prod");
        let eks = default_branch(Some("arn:aws:eks:eu-west-1:123:cluster/prod"));
        assert_eq!(eks, "rightsizer/arn-aws-eks-eu-west-1-123-cluster-prod");
        for name in ["a..b", "..", "x.lock", "ctx@{1}", "~^:", "kind-kind"] {
            let b = default_branch(Some(name));
            assert!(check_branch(&b).is_ok(), "{name} -> {b}");
        }
    }
}
