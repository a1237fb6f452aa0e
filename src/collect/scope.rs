//! The part of a central store one run reads (`--prometheus-selector`): PromQL label matchers
//! such as `cluster="prod-eu",env=~"prod|stage"` that pick one cluster's series out of a
//! Thanos, Mimir or VictoriaMetrics holding many. Parsed and checked once, before any query
//! (label names, operators, PromQL string literals with their escapes, RE2 regex syntax as
//! far as it can be checked without a regex engine; `__name__` is refused: the plan picks the
//! metrics). Every selector the collector builds goes through [`Scope::select`], every
//! `by (...)` through [`Scope::by`] and every remote-read query through [`Scope::remote`],
//! so the matchers are added everywhere and the number of requests does not change.
//!
//! The answers are checked too ([`Scope::contradiction`]): a store that ignores the matchers
//! (a proxy that drops them, a tenant header that is not applied) answers series whose labels
//! contradict an equality matcher, and `by` keeps the equality labels so aggregated answers
//! show it as well. Whatever the selector, series of several values of a cluster label
//! ([`CLUSTER_LABELS`]) in one run are refused: rightsizer would pool pods of different
//! clusters that share a namespace and a pod name.

use std::fmt;

use super::history::promql_string;
use super::promparse::Labels;
use super::remote_read::Matcher;

/// Labels that name a cluster in central stores (Thanos external labels, Prometheus Operator
/// `cluster`, OpenTelemetry's `k8s_cluster_name` once translated): two values of one of them
/// in a run's answers mean two clusters' pods would be pooled.
pub const CLUSTER_LABELS: [&str; 4] = ["cluster", "cluster_name", "k8s_cluster_name", "kubernetes_cluster"];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Eq,
    Neq,
    Re,
    Nre,
}

impl Op {
    fn as_str(self) -> &'static str {
        match self {
            Op::Eq => "=",
            Op::Neq => "!=",
            Op::Re => "=~",
            Op::Nre => "!~",
        }
    }
}

/// One PromQL label matcher.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabelMatcher {
    pub name: String,
    pub op: Op,
    pub value: String,
}

impl fmt::Display for LabelMatcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}{}", self.name, self.op.as_str(), promql_string(&self.value))
    }
}

/// The selector's matchers, in the order given; empty when no selector is set.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Scope {
    matchers: Vec<LabelMatcher>,
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, m) in self.matchers.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{m}")?;
        }
        Ok(())
    }
}

impl Scope {
    /// Parses comma-separated matchers, optionally inside one pair of braces:
    /// `cluster="prod-eu"`, `{cluster="a", env!~'dev|test'}`. Empty text is an error.
    pub fn parse(text: &str) -> Result<Scope, String> {
        let trimmed = text.trim();
        let inner = match trimmed.strip_prefix('{') {
            Some(rest) => rest
                .strip_suffix('}')
                .ok_or_else(|| "an opening '{' without its closing '}'".to_string())?,
            None => trimmed,
        };
        let mut p = Parser { s: inner, pos: 0 };
        let mut matchers = Vec::new();
        loop {
            p.skip_ws();
            if p.at_end() {
                break;
            }
            let m = p.matcher()?;
            if m.name == "__name__" {
                return Err("__name__ cannot be matched: rightsizer chooses the metrics it reads".into());
            }
            if m.name.starts_with("__") {
                return Err(format!(
                    "{}: labels starting with __ are internal and never stored",
                    m.name
                ));
            }
            if matches!(m.op, Op::Re | Op::Nre) {
                re2::check(&m.value).map_err(|e| format!("{m}: invalid regular expression: {e}"))?;
            }
            matchers.push(m);
            p.skip_ws();
            if p.at_end() {
                break;
            }
            if !p.eat(',') {
                return Err(format!("expected ',' between matchers at {:?}", p.rest()));
            }
        }
        if matchers.is_empty() {
            return Err("no label matcher (use e.g. cluster=\"prod-eu\")".into());
        }
        Ok(Scope { matchers })
    }

    /// Several selectors (a repeated flag) as one: all their matchers apply.
    pub fn parse_all<S: AsRef<str>>(texts: &[S]) -> Result<Scope, String> {
        let mut out = Scope::default();
        for t in texts {
            out.matchers.extend(Scope::parse(t.as_ref())?.matchers);
        }
        Ok(out)
    }

    pub fn is_empty(&self) -> bool {
        self.matchers.is_empty()
    }

    pub fn matchers(&self) -> &[LabelMatcher] {
        &self.matchers
    }

    /// The one way the collector writes a vector selector: `metric{matchers,<scope>}`.
    /// `metric` may be empty (`{__name__=~"a|b",...}`); `matchers` is the inner text of the
    /// braces the query needs without the scope (may be empty).
    pub fn select(&self, metric: &str, matchers: &str) -> String {
        let mut inner = matchers.trim_matches(',').to_string();
        for m in &self.matchers {
            if !inner.is_empty() {
                inner.push(',');
            }
            inner.push_str(&m.to_string());
        }
        if inner.is_empty() {
            metric.to_string()
        } else {
            format!("{metric}{{{inner}}}")
        }
    }

    /// The labels of a `by (...)` clause with the scope's equality labels added, so that an
    /// aggregated answer still shows which cluster each series came from (a store that
    /// ignores the selector is caught there too). With the selector honoured the series are
    /// the same.
    pub fn by(&self, labels: &str) -> String {
        let mut out = labels.to_string();
        for m in &self.matchers {
            let present = out.split(',').any(|l| l.trim() == m.name);
            if m.op == Op::Eq && !m.value.is_empty() && !present {
                out.push_str(", ");
                out.push_str(&m.name);
            }
        }
        out
    }

    /// A remote-read query's matchers with the scope's added.
    pub fn remote(&self, base: impl IntoIterator<Item = Matcher>) -> Vec<Matcher> {
        let mut out: Vec<Matcher> = base.into_iter().collect();
        out.extend(self.matchers.iter().map(|m| {
            let (n, v) = (m.name.clone(), m.value.clone());
            match m.op {
                Op::Eq => Matcher::Eq(n, v),
                Op::Neq => Matcher::Neq(n, v),
                Op::Re => Matcher::Re(n, v),
                Op::Nre => Matcher::Nre(n, v),
            }
        }));
        out
    }

    /// The first matcher an answered series contradicts, with the value it has (`""` when
    /// it lacks the label): only `=` and `!=` are checked (no regex engine here). A label
    /// that is absent equals `""`, as in PromQL.
    pub fn contradiction<'a>(&'a self, labels: &'a Labels) -> Option<(&'a LabelMatcher, &'a str)> {
        self.matchers.iter().find_map(|m| {
            let v = labels.get(&m.name).map_or("", String::as_str);
            let bad = match m.op {
                Op::Eq => v != m.value,
                Op::Neq => v == m.value,
                Op::Re | Op::Nre => false,
            };
            bad.then_some((m, v))
        })
    }

    /// The label names the matchers read, each once.
    pub fn names(&self) -> Vec<&str> {
        let mut out: Vec<&str> = Vec::new();
        for m in &self.matchers {
            if !out.contains(&m.name.as_str()) {
                out.push(&m.name);
            }
        }
        out
    }
}

struct Parser<'a> {
    s: &'a str,
    pos: usize,
}

impl Parser<'_> {
    fn rest(&self) -> &str {
        &self.s[self.pos..]
    }

    fn at_end(&self) -> bool {
        self.pos >= self.s.len()
    }

    fn peek(&self) -> Option<char> {
        self.rest().chars().next()
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.pos += c.len_utf8();
        Some(c)
    }

    fn eat(&mut self, c: char) -> bool {
        if self.peek() == Some(c) {
            self.pos += c.len_utf8();
            true
        } else {
            false
        }
    }

    fn skip_ws(&mut self) {
        while self.peek().is_some_and(char::is_whitespace) {
            self.bump();
        }
    }

    fn matcher(&mut self) -> Result<LabelMatcher, String> {
        let start = self.pos;
        while self.peek().is_some_and(|c| c.is_ascii_alphanumeric() || c == '_') {
            self.bump();
        }
        let name = &self.s[start..self.pos];
        let valid = name.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
        if !valid {
            return Err(format!(
                "expected a label name ([a-zA-Z_][a-zA-Z0-9_]*) at {:?}",
                &self.s[start..]
            ));
        }
        self.skip_ws();
        let op = if self.rest().starts_with("=~") {
            Op::Re
        } else if self.rest().starts_with("!~") {
            Op::Nre
        } else if self.rest().starts_with("!=") {
            Op::Neq
        } else if self.rest().starts_with('=') && !self.rest().starts_with("==") {
            Op::Eq
        } else {
            return Err(format!(
                "expected one of =, !=, =~, !~ after {name} at {:?}",
                self.rest()
            ));
        };
        self.pos += op.as_str().len();
        self.skip_ws();
        let value = self.string().map_err(|e| format!("{name}{}: {e}", op.as_str()))?;
        Ok(LabelMatcher {
            name: name.to_string(),
            op,
            value,
        })
    }

    /// A PromQL string literal: "double" or 'single' quoted with Go's escapes, or `raw`.
    fn string(&mut self) -> Result<String, String> {
        let quote = match self.peek() {
            Some(q @ ('"' | '\'' | '`')) => q,
            _ => {
                return Err(format!(
                    "expected a quoted string (\"...\", '...' or `...`) at {:?}",
                    self.rest()
                ));
            }
        };
        self.bump();
        let mut out = String::new();
        loop {
            let c = self.bump().ok_or("the string is not closed")?;
            if c == quote {
                return Ok(out);
            }
            if quote == '`' {
                out.push(c);
                continue;
            }
            if c == '\n' {
                return Err("a newline inside a quoted string".into());
            }
            if c != '\\' {
                out.push(c);
                continue;
            }
            let e = self.bump().ok_or("the string ends in a backslash")?;
            match e {
                'a' => out.push('\x07'),
                'b' => out.push('\x08'),
                'f' => out.push('\x0c'),
                'n' => out.push('\n'),
                'r' => out.push('\r'),
                't' => out.push('\t'),
                'v' => out.push('\x0b'),
                '\\' => out.push('\\'),
                q if q == quote => out.push(q),
                'x' => out.push(self.code(2, 16)?),
                'u' => out.push(self.code(4, 16)?),
                'U' => out.push(self.code(8, 16)?),
                '0'..='7' => {
                    self.pos -= 1;
                    out.push(self.code(3, 8)?);
                }
                other => return Err(format!("unknown escape \\{other} in a quoted string")),
            }
        }
    }

    /// `digits` digits in `radix` as one character.
    fn code(&mut self, digits: usize, radix: u32) -> Result<char, String> {
        let text: String = self.rest().chars().take(digits).collect();
        if text.chars().count() != digits || !text.chars().all(|c| c.is_digit(radix)) {
            return Err(format!("a bad escape code {text:?}"));
        }
        self.pos += text.len();
        let n = u32::from_str_radix(&text, radix).map_err(|e| e.to_string())?;
        if radix == 8 && n > 255 {
            return Err(format!("octal escape \\{text} is over 255"));
        }
        char::from_u32(n).ok_or_else(|| format!("escape {text:?} is not a character"))
    }
}

mod re2;

#[cfg(test)]
mod every_query;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matchers_parse_with_every_operator_and_quote() {
        let s = Scope::parse(r#"cluster="prod-eu", env=~'prod|stage',team!=`a"b`,{x}!~"\x41\u00e9\"""#);
        assert!(s.is_err(), "a brace inside is not a label name");
        let s =
            Scope::parse(r#" {cluster="prod-eu", env=~'prod|stage',team!=`a"b`, x!~"\x41\u00e9\"\\\\" ,} "#).unwrap();
        assert_eq!(
            s.to_string(),
            r#"cluster="prod-eu",env=~"prod|stage",team!="a\"b",x!~"Aé\"\\\\""#
        );
        assert_eq!(s.matchers()[3].value, "Aé\"\\\\", "escapes decoded");
        assert_eq!(Scope::parse(&s.to_string()).unwrap(), s, "the display parses back");
        let two = Scope::parse_all(&["cluster=\"a\"", "env=\"x\""]).unwrap();
        assert_eq!(two.to_string(), r#"cluster="a",env="x""#);
        assert_eq!(two.names(), ["cluster", "env"]);
    }

    #[test]
    fn bad_selectors_say_why() {
        for (text, why) in [
            ("", "no label matcher"),
            ("cluster", "expected one of"),
            ("cluster==\"a\"", "expected one of"),
            ("cluster=a", "expected a quoted string"),
            ("cluster=\"a", "not closed"),
            ("1x=\"a\"", "expected a label name"),
            ("clu-ster=\"a\"", "expected one of"),
            ("cluster=\"a\" env=\"b\"", "expected ','"),
            ("__name__=\"up\"", "__name__ cannot be matched"),
            ("__meta_x=\"up\"", "internal"),
            ("cluster=\"\\q\"", "unknown escape"),
            ("cluster=\"\\x4\"", "bad escape code"),
            ("cluster=~\"(a\"", "missing closing )"),
            ("cluster=~\"a)\"", "unexpected )"),
            ("cluster=~\"*a\"", "missing argument"),
            ("cluster=~\"a**\"", "missing argument"),
            ("cluster=~\"[a\"", "missing closing ]"),
            ("cluster=~\"[z-a]\"", "invalid character class range"),
            ("cluster=~\"[[:nope:]]\"", "invalid character class range"),
            ("cluster=~\"a\\\\q\"", "invalid escape \\q"),
            ("cluster=~\"(a)\\\\1\"", "invalid escape \\1"),
            ("cluster=~\"a{2,1}\"", "invalid repeat count"),
            ("cluster=~\"a{1001}\"", "invalid repeat count"),
            ("cluster=~\"(?<x>a)\"", "unsupported Perl syntax"),
            ("{cluster=\"a\"", "closing '}'"),
        ] {
            let err = Scope::parse(text).expect_err(text);
            assert!(err.contains(why), "{text:?}: {err}");
        }
    }

    #[test]
    fn selectors_are_built_with_the_scope() {
        let s = Scope::parse(r#"cluster="a",env!~"dev""#).unwrap();
        assert_eq!(s.select("up", r#"job="x""#), r#"up{job="x",cluster="a",env!~"dev"}"#);
        assert_eq!(s.select("up", ""), r#"up{cluster="a",env!~"dev"}"#);
        assert_eq!(Scope::default().select("up", ""), "up");
        assert_eq!(Scope::default().select("up", "a=\"1\""), "up{a=\"1\"}");
        assert_eq!(s.by("namespace, pod"), "namespace, pod, cluster");
        assert_eq!(s.by("cluster, pod"), "cluster, pod");
        assert_eq!(
            s.remote([Matcher::Eq("__name__".into(), "up".into())]),
            vec![
                Matcher::Eq("__name__".into(), "up".into()),
                Matcher::Eq("cluster".into(), "a".into()),
                Matcher::Nre("env".into(), "dev".into()),
            ]
        );
    }

    #[test]
    fn contradictions_name_the_matcher_and_the_value() {
        let s = Scope::parse(r#"cluster="a",env!="dev""#).unwrap();
        let labels =
            |pairs: &[(&str, &str)]| -> Labels { pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect() };
        assert_eq!(s.contradiction(&labels(&[("cluster", "a"), ("env", "prod")])), None);
        let b = labels(&[("cluster", "b")]);
        let (m, v) = s.contradiction(&b).unwrap();
        assert_eq!((m.to_string().as_str(), v), (r#"cluster="a""#, "b"));
        let none = labels(&[("pod", "x")]);
        assert_eq!(
            s.contradiction(&none).unwrap().1,
            "",
            "a missing label is the empty value"
        );
        let dev = labels(&[("cluster", "a"), ("env", "dev")]);
        assert_eq!(s.contradiction(&dev).unwrap().0.name, "env");
    }
}
