//! Kubernetes label selectors (`app=web,tier!=db,env in (prod,staging),!legacy`), parsed once
//! and matched in Rust. The API server applies the selector itself when rightsizer lists
//! through it; every other input (snapshots, kube-state-metrics) is filtered here with the
//! same meaning, so a selector never widens. Syntax and semantics as
//! `k8s.io/apimachinery/pkg/labels` (`selector.go`): requirements are ANDed; `!=` and `notin`
//! match objects without the key.

use std::collections::BTreeMap;
use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Op {
    In(Vec<String>),
    NotIn(Vec<String>),
    Exists,
    DoesNotExist,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Requirement {
    key: String,
    op: Op,
}

/// A parsed label selector; `Display` gives the text the API server is sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selector {
    text: String,
    requirements: Vec<Requirement>,
}

/// A label key: an optional DNS-subdomain prefix and `/`, then a name of at most 63
/// characters of alphanumerics, `-`, `_`, `.`, starting and ending alphanumeric.
fn key_ok(key: &str) -> bool {
    let (prefix, name) = match key.rsplit_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, key),
    };
    let prefix_ok = prefix.is_none_or(|p| {
        !p.is_empty()
            && p.len() <= 253
            && p.split('.').all(|l| {
                !l.is_empty()
                    && l.len() <= 63
                    && l.bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                    && !l.starts_with('-')
                    && !l.ends_with('-')
            })
    });
    prefix_ok && value_ok(name) && !name.is_empty()
}

/// A label value: empty, or at most 63 alphanumerics, `-`, `_`, `.`, alphanumeric at both ends.
fn value_ok(v: &str) -> bool {
    v.is_empty()
        || (v.len() <= 63
            && v.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
            && v.as_bytes()[0].is_ascii_alphanumeric()
            && v.as_bytes()[v.len() - 1].is_ascii_alphanumeric())
}

/// Splits on commas outside parentheses.
fn split_top(s: &str) -> Result<Vec<&str>, String> {
    let (mut depth, mut start, mut parts) = (0i32, 0, Vec::new());
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => {
                depth -= 1;
                if depth < 0 {
                    return Err("unbalanced ')'".into());
                }
            }
            ',' if depth == 0 => {
                parts.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    if depth != 0 {
        return Err("unbalanced '('".into());
    }
    parts.push(&s[start..]);
    Ok(parts)
}

fn set(values: &str) -> Result<Vec<String>, String> {
    let inner = values
        .trim()
        .strip_prefix('(')
        .and_then(|v| v.strip_suffix(')'))
        .ok_or_else(|| format!("expected a parenthesised set of values, got {values:?}"))?;
    let mut out = Vec::new();
    for v in inner.split(',') {
        let v = v.trim();
        if !value_ok(v) {
            return Err(format!("invalid label value {v:?}"));
        }
        out.push(v.to_string());
    }
    Ok(out)
}

fn requirement(part: &str) -> Result<Requirement, String> {
    let part = part.trim();
    if part.is_empty() {
        return Err("empty requirement".into());
    }
    let checked = |key: &str| {
        let key = key.trim();
        if key_ok(key) {
            Ok(key.to_string())
        } else {
            Err(format!("invalid label key {key:?}"))
        }
    };
    if let Some(key) = part.strip_prefix('!') {
        return Ok(Requirement {
            key: checked(key)?,
            op: Op::DoesNotExist,
        });
    }
    for (sym, negate) in [("!=", true), ("==", false), ("=", false)] {
        if let Some((key, value)) = part.split_once(sym) {
            let value = value.trim();
            if !value_ok(value) {
                return Err(format!("invalid label value {value:?}"));
            }
            let values = vec![value.to_string()];
            return Ok(Requirement {
                key: checked(key)?,
                op: if negate { Op::NotIn(values) } else { Op::In(values) },
            });
        }
    }
    let mut words = part.splitn(2, char::is_whitespace);
    let key = words.next().unwrap_or_default();
    match words.next().map(str::trim_start) {
        None => Ok(Requirement {
            key: checked(key)?,
            op: Op::Exists,
        }),
        Some(rest) => {
            if let Some(values) = rest.strip_prefix("notin") {
                Ok(Requirement {
                    key: checked(key)?,
                    op: Op::NotIn(set(values)?),
                })
            } else if let Some(values) = rest.strip_prefix("in") {
                Ok(Requirement {
                    key: checked(key)?,
                    op: Op::In(set(values)?),
                })
            } else {
                Err(format!(
                    "unknown operator in {part:?}: use =, ==, !=, in, notin, or !key"
                ))
            }
        }
    }
}

impl Selector {
    pub fn parse(text: &str) -> Result<Selector, String> {
        let requirements = split_top(text)?
            .into_iter()
            .map(requirement)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Selector {
            text: text.trim().to_string(),
            requirements,
        })
    }

    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.requirements.iter().all(|r| {
            let v = labels.get(&r.key);
            match &r.op {
                Op::In(values) => v.is_some_and(|v| values.contains(v)),
                Op::NotIn(values) => v.is_none_or(|v| !values.contains(v)),
                Op::Exists => v.is_some(),
                Op::DoesNotExist => v.is_none(),
            }
        })
    }

    /// The label keys the selector reads.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.requirements.iter().map(|r| r.key.as_str())
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }
}

impl fmt::Display for Selector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// The label name kube-state-metrics gives a Kubernetes label key in `kube_*_labels`
/// (`app.kubernetes.io/name` -> `label_app_kubernetes_io_name`).
pub fn ksm_label(key: &str) -> String {
    let mut out = String::from("label_");
    out.extend(
        key.chars()
            .map(|c| if c.is_ascii_alphanumeric() || c == '_' { c } else { '_' }),
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn selectors_match_as_kubectl_does() {
        let web = labels(&[("app", "web"), ("tier", "front"), ("env", "prod")]);
        let db = labels(&[("app", "db"), ("env", "staging")]);
        for (sel, on_web, on_db) in [
            ("app=web", true, false),
            ("app==web", true, false),
            ("app!=web", false, true),
            ("tier", true, false),
            ("!tier", false, true),
            ("env in (prod, staging)", true, true),
            ("env notin (prod)", false, true),
            ("app=web,env in (prod)", true, false),
            ("missing!=x", true, true),
            ("app.kubernetes.io/name", false, false),
        ] {
            let s = Selector::parse(sel).unwrap();
            assert_eq!((s.matches(&web), s.matches(&db)), (on_web, on_db), "{sel}");
        }
    }

    #[test]
    fn bad_selectors_are_refused() {
        for sel in [
            "",
            "app=",
            "=web",
            "app in prod",
            "app in (a",
            "Bad Key=1",
            "app=web,",
            "app=$x",
            "a~b",
        ] {
            let parsed = Selector::parse(sel);
            // "app=" is valid (empty value) as in Kubernetes.
            if sel == "app=" {
                assert!(parsed.is_ok());
                continue;
            }
            assert!(parsed.is_err(), "{sel:?} accepted");
        }
    }

    #[test]
    fn ksm_label_names() {
        assert_eq!(ksm_label("app.kubernetes.io/name"), "label_app_kubernetes_io_name");
        assert_eq!(ksm_label("app"), "label_app");
    }
}
