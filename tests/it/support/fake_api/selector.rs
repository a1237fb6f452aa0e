//! Label and field selectors of list requests, with the grammar of
//! `k8s.io/apimachinery/pkg/labels` and `.../fields`: `a=b`, `a==b`, `a!=b`, `a in (x,y)`,
//! `a notin (x)`, `a`, `!a`, `a>1`, `a<1`, comma for AND.

use serde_json::{Map, Value};

#[derive(Debug, PartialEq)]
enum Op {
    Equals(String),
    NotEquals(String),
    In(Vec<String>),
    NotIn(Vec<String>),
    Exists,
    DoesNotExist,
    GreaterThan(i64),
    LessThan(i64),
}

#[derive(Debug, PartialEq)]
struct Requirement {
    key: String,
    op: Op,
}

/// A parsed `labelSelector`; the empty selector matches everything.
#[derive(Debug, Default)]
pub(super) struct LabelSelector(Vec<Requirement>);

/// Splits on commas outside parentheses.
fn split_terms(s: &str) -> Vec<&str> {
    let mut terms = Vec::new();
    let (mut depth, mut start) = (0usize, 0usize);
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth = depth.saturating_sub(1),
            ',' if depth == 0 => {
                terms.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    terms.push(&s[start..]);
    terms
}

fn is_key_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | '/')
}

fn valid_value(v: &str) -> bool {
    v.len() <= 63
        && v.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
}

fn value(v: &str, term: &str) -> Result<String, String> {
    let v = v.trim();
    if valid_value(v) {
        Ok(v.to_string())
    } else {
        Err(format!(
            "unable to parse requirement: invalid label value: \"{v}\" in \"{term}\""
        ))
    }
}

fn value_set(rest: &str, term: &str) -> Result<Vec<String>, String> {
    let inner = rest
        .trim()
        .strip_prefix('(')
        .and_then(|r| r.strip_suffix(')'))
        .ok_or_else(|| format!("unable to parse requirement: found '{rest}', expected: '(' in \"{term}\""))?;
    inner.split(',').map(|v| value(v, term)).collect()
}

fn parse_requirement(term: &str) -> Result<Requirement, String> {
    let term = term.trim();
    if let Some(key) = term.strip_prefix('!') {
        let key = key.trim();
        if key.is_empty() || !key.chars().all(is_key_char) {
            return Err(format!("unable to parse requirement: invalid label key \"{key}\""));
        }
        return Ok(Requirement {
            key: key.into(),
            op: Op::DoesNotExist,
        });
    }
    let end = term.find(|c: char| !is_key_char(c)).unwrap_or(term.len());
    let (key, rest) = term.split_at(end);
    if key.is_empty() {
        return Err(format!(
            "unable to parse requirement: found '{term}', expected: identifier"
        ));
    }
    let rest = rest.trim_start();
    let number = |v: &str| {
        v.trim().parse::<i64>().map_err(|_| {
            format!("unable to parse requirement: for 'Gt', 'Lt' operators, the value must be an integer in \"{term}\"")
        })
    };
    let op = if rest.is_empty() {
        Op::Exists
    } else if let Some(v) = rest.strip_prefix("!=") {
        Op::NotEquals(value(v, term)?)
    } else if let Some(v) = rest.strip_prefix("==") {
        Op::Equals(value(v, term)?)
    } else if let Some(v) = rest.strip_prefix('=') {
        Op::Equals(value(v, term)?)
    } else if let Some(v) = rest.strip_prefix('>') {
        Op::GreaterThan(number(v)?)
    } else if let Some(v) = rest.strip_prefix('<') {
        Op::LessThan(number(v)?)
    } else if let Some(v) = rest.strip_prefix("notin") {
        Op::NotIn(value_set(v, term)?)
    } else if let Some(v) = rest.strip_prefix("in") {
        Op::In(value_set(v, term)?)
    } else {
        return Err(format!(
            "unable to parse requirement: found '{rest}', expected: in, notin, =, ==, !=, gt, lt"
        ));
    };
    Ok(Requirement { key: key.into(), op })
}

impl LabelSelector {
    pub(super) fn parse(s: &str) -> Result<Self, String> {
        if s.trim().is_empty() {
            return Ok(LabelSelector::default());
        }
        split_terms(s)
            .into_iter()
            .map(parse_requirement)
            .collect::<Result<_, _>>()
            .map(LabelSelector)
    }

    pub(super) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether an object with `labels` (metadata.labels) matches every requirement.
    pub(super) fn matches(&self, labels: Option<&Map<String, Value>>) -> bool {
        self.0.iter().all(|req| {
            let label = labels.and_then(|l| l.get(&req.key)).and_then(Value::as_str);
            match (&req.op, label) {
                (Op::Exists, found) => found.is_some(),
                (Op::DoesNotExist, found) => found.is_none(),
                (Op::Equals(v), found) => found == Some(v.as_str()),
                (Op::NotEquals(v), found) => found != Some(v.as_str()),
                (Op::In(set), found) => found.is_some_and(|l| set.iter().any(|v| v == l)),
                (Op::NotIn(set), found) => !found.is_some_and(|l| set.iter().any(|v| v == l)),
                (Op::GreaterThan(n), found) => found.and_then(|l| l.parse::<i64>().ok()).is_some_and(|l| l > *n),
                (Op::LessThan(n), found) => found.and_then(|l| l.parse::<i64>().ok()).is_some_and(|l| l < *n),
            }
        })
    }
}

/// A parsed `fieldSelector`: `field=value`, `field==value`, `field!=value`, comma for AND.
#[derive(Debug, Default)]
pub(super) struct FieldSelector(Vec<(String, bool, String)>);

/// The fields apiserver indexes for a resource beyond metadata.name and metadata.namespace.
fn extra_fields(group: &str, plural: &str) -> &'static [&'static str] {
    match (group, plural) {
        ("", "pods") => &[
            "spec.nodeName",
            "spec.restartPolicy",
            "spec.schedulerName",
            "spec.serviceAccountName",
            "spec.hostNetwork",
            "status.phase",
            "status.podIP",
            "status.nominatedNodeName",
        ],
        ("", "nodes") => &["spec.unschedulable"],
        ("", "namespaces") => &["status.phase"],
        ("apps", "replicasets") => &["status.replicas"],
        ("batch", "jobs") => &["status.successful"],
        _ => &[],
    }
}

impl FieldSelector {
    /// Parses `s` and checks every field is one the resource supports (400 otherwise).
    pub(super) fn parse(s: &str, group: &str, plural: &str) -> Result<Self, String> {
        let mut terms = Vec::new();
        for term in s.split(',').map(str::trim).filter(|t| !t.is_empty()) {
            let (field, eq, v) = if let Some((f, v)) = term.split_once("!=") {
                (f, false, v)
            } else if let Some((f, v)) = term.split_once("==") {
                (f, true, v)
            } else if let Some((f, v)) = term.split_once('=') {
                (f, true, v)
            } else {
                return Err(format!("invalid selector: '{s}'; can't understand '{term}'"));
            };
            let field = field.trim();
            let supported =
                matches!(field, "metadata.name" | "metadata.namespace") || extra_fields(group, plural).contains(&field);
            if !supported {
                return Err(format!("field label not supported: {field}"));
            }
            terms.push((field.to_string(), eq, v.trim().to_string()));
        }
        Ok(FieldSelector(terms))
    }

    pub(super) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub(super) fn matches(&self, obj: &Value) -> bool {
        self.0.iter().all(|(field, eq, want)| {
            let found = field.split('.').fold(obj, |v, part| &v[part]);
            let found = match found {
                Value::String(s) => s.clone(),
                Value::Null => String::new(),
                other => other.to_string(),
            };
            (found == *want) == *eq
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn labels(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn label_selector_forms() {
        let l = labels(json!({"app": "web", "tier": "front", "n": "5"}));
        let cases = [
            ("", true),
            ("app=web", true),
            ("app==web", true),
            ("app!=web", false),
            ("app!=db", true),
            ("missing!=x", true),
            ("app in (web, db)", true),
            ("app notin (web)", false),
            ("missing notin (web)", true),
            ("tier", true),
            ("!tier", false),
            ("!missing", true),
            ("app=web,tier=back", false),
            ("app in (web,db),tier", true),
            ("n>4,n<6", true),
        ];
        for (selector, want) in cases {
            let parsed = LabelSelector::parse(selector).unwrap();
            assert_eq!(parsed.matches(Some(&l)), want, "{selector}");
        }
        assert!(LabelSelector::parse("app in web").is_err());
        assert!(LabelSelector::parse("=x").is_err());
    }
}
