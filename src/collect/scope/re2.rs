//! RE2 regular-expression syntax (what Prometheus, Thanos, Mimir and VictoriaMetrics compile
//! a `=~` or `!~` matcher with), checked without a regex engine so that a bad
//! `--prometheus-selector` regex is an error before any query instead of a 400 from the store.

/// Checks a regular expression against RE2's syntax (what Prometheus, Thanos, Mimir and
/// VictoriaMetrics compile), as far as that goes without compiling it: balanced groups and
/// classes, known escapes (RE2 rejects `\` before a letter it does not know, and
/// backreferences), known group flags and class names, repetition operators with something to
/// repeat and counts of at most 1000.
pub fn check(re: &str) -> Result<(), String> {
    let chars: Vec<char> = re.chars().collect();
    let (mut i, mut depth, mut can_repeat) = (0, 0usize, false);
    while i < chars.len() {
        let c = chars[i];
        i += 1;
        match c {
            '\\' => {
                i = escape(&chars, i, false)?;
                can_repeat = true;
            }
            '(' => {
                if chars.get(i) == Some(&'?') {
                    i += 1;
                    if chars.get(i) == Some(&'P') && chars.get(i + 1) == Some(&'<') {
                        i += 2;
                        let start = i;
                        while chars.get(i).is_some_and(|c| c.is_ascii_alphanumeric() || *c == '_') {
                            i += 1;
                        }
                        if i == start || chars.get(i) != Some(&'>') {
                            return Err("invalid named capture".into());
                        }
                        i += 1;
                    } else {
                        while chars.get(i).is_some_and(|c| "imsU-".contains(*c)) {
                            i += 1;
                        }
                        match chars.get(i) {
                            Some(':') => i += 1,
                            Some(')') => {
                                i += 1;
                                can_repeat = false;
                                continue;
                            }
                            _ => return Err("invalid or unsupported Perl syntax after (?".into()),
                        }
                    }
                }
                depth += 1;
                can_repeat = false;
            }
            ')' => {
                if depth == 0 {
                    return Err("unexpected )".into());
                }
                depth -= 1;
                can_repeat = true;
            }
            '|' => can_repeat = false,
            '*' | '+' | '?' => {
                if !can_repeat {
                    return Err(format!("missing argument to repetition operator {c}"));
                }
                if chars.get(i) == Some(&'?') {
                    i += 1;
                }
                can_repeat = false;
            }
            '{' => match counted(&chars, i)? {
                Some(next) => {
                    if !can_repeat {
                        return Err("missing argument to repetition operator {".into());
                    }
                    i = next;
                    if chars.get(i) == Some(&'?') {
                        i += 1;
                    }
                    can_repeat = false;
                }
                // Not a count: a literal brace, as RE2 reads it.
                None => can_repeat = true,
            },
            '[' => {
                i = class(&chars, i)?;
                can_repeat = true;
            }
            _ => can_repeat = true,
        }
    }
    if depth > 0 {
        return Err("missing closing )".into());
    }
    Ok(())
}

/// After `{` at `i`: the index past `n}`, `n,}` or `n,m}`, or `None` when it is not a count.
fn counted(chars: &[char], mut i: usize) -> Result<Option<usize>, String> {
    let number = |i: &mut usize| {
        let start = *i;
        while chars.get(*i).is_some_and(char::is_ascii_digit) {
            *i += 1;
        }
        (start < *i).then(|| {
            chars[start..*i]
                .iter()
                .collect::<String>()
                .parse::<u64>()
                .unwrap_or(u64::MAX)
        })
    };
    let Some(lo) = number(&mut i) else { return Ok(None) };
    let mut hi = Some(lo);
    if chars.get(i) == Some(&',') {
        i += 1;
        hi = number(&mut i);
    }
    if chars.get(i) != Some(&'}') {
        return Ok(None);
    }
    if lo > 1000 || hi.is_some_and(|h| h > 1000 || h < lo) {
        return Err("invalid repeat count (at most 1000, and min <= max)".into());
    }
    Ok(Some(i + 1))
}

/// After `\` at `i`: the index past the escape, or why RE2 refuses it.
fn escape(chars: &[char], mut i: usize, in_class: bool) -> Result<usize, String> {
    let c = *chars.get(i).ok_or("trailing backslash at end of expression")?;
    i += 1;
    match c {
        c if c.is_ascii_punctuation() => Ok(i),
        'd' | 'D' | 's' | 'S' | 'w' | 'W' | 'n' | 't' | 'r' | 'f' | 'v' | 'a' => Ok(i),
        'b' | 'B' | 'A' | 'z' if !in_class => Ok(i),
        'p' | 'P' => match chars.get(i) {
            Some('{') => {
                let end = chars[i..]
                    .iter()
                    .position(|&c| c == '}')
                    .ok_or("invalid character class range \\p{")?;
                Ok(i + end + 1)
            }
            Some(c) if c.is_ascii_alphabetic() => Ok(i + 1),
            _ => Err(format!("invalid character class range \\{c}")),
        },
        'x' => match chars.get(i) {
            Some('{') => {
                let end = chars[i..].iter().position(|&c| c == '}').ok_or("invalid escape \\x{")?;
                let hex = &chars[i + 1..i + end];
                if hex.is_empty() || !hex.iter().all(char::is_ascii_hexdigit) {
                    return Err("invalid escape \\x{...}".into());
                }
                Ok(i + end + 1)
            }
            _ if chars
                .get(i..i + 2)
                .is_some_and(|h| h.iter().all(char::is_ascii_hexdigit)) =>
            {
                Ok(i + 2)
            }
            _ => Err("invalid escape \\x".into()),
        },
        '0' => {
            while i < chars.len() && chars[i].is_digit(8) {
                i += 1;
            }
            Ok(i)
        }
        // A single non-zero digit is a backreference, which RE2 does not have.
        '1'..='7' if chars.get(i).is_some_and(|c| c.is_digit(8)) => Ok(i + 1),
        'Q' if !in_class => {
            // Literal text up to \E or the end.
            while i < chars.len() {
                if chars[i] == '\\' && chars.get(i + 1) == Some(&'E') {
                    return Ok(i + 2);
                }
                i += 1;
            }
            Ok(i)
        }
        other => Err(format!("invalid escape \\{other}")),
    }
}

/// After `[` at `i`: the index past the class's `]`.
fn class(chars: &[char], mut i: usize) -> Result<usize, String> {
    const NAMES: [&str; 14] = [
        "alnum", "alpha", "ascii", "blank", "cntrl", "digit", "graph", "lower", "print", "punct", "space", "upper",
        "word", "xdigit",
    ];
    if chars.get(i) == Some(&'^') {
        i += 1;
    }
    let mut first = true;
    let mut prev: Option<char> = None;
    loop {
        let c = *chars.get(i).ok_or("missing closing ]")?;
        if c == ']' && !first {
            return Ok(i + 1);
        }
        first = false;
        i += 1;
        match c {
            '[' if chars.get(i) == Some(&':') => {
                let rest: String = chars[i + 1..].iter().collect();
                let end = rest.find(":]").ok_or("invalid character class range [:")?;
                let name = rest[..end].trim_start_matches('^');
                if !NAMES.contains(&name) {
                    return Err(format!("invalid character class range [:{name}:]"));
                }
                i += 1 + rest[..end].chars().count() + 2;
                prev = None;
            }
            '\\' => {
                let start = i;
                i = escape(chars, i, true)?;
                prev = (i == start + 1 && chars[start].is_ascii_punctuation()).then(|| chars[start]);
            }
            '-' if prev.is_some() && chars.get(i).is_some_and(|&n| n != ']') => {
                let hi = chars[i];
                if hi == '\\' {
                    i = escape(chars, i + 1, true)?;
                } else {
                    if hi < prev.unwrap_or(hi) {
                        return Err(format!("invalid character class range {}-{hi}", prev.unwrap_or(hi)));
                    }
                    i += 1;
                }
                prev = None;
            }
            c => prev = Some(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn re2_syntax_that_is_fine_passes() {
        for re in [
            "prod|stage",
            "prod-.*",
            "(?i)PROD",
            "(?:a|b)+?",
            "(?P<n>x)",
            r"a\.b\-c",
            r"\d{2,}\s\w",
            "[a-z0-9_-]+",
            "[]a]",
            "[^[:alpha:]]",
            r"\p{Greek}\pL",
            r"\x41\x{263a}",
            "a{,",
            r"\Qa.b\E",
            "^*",
            r"\012",
            r"[\d-z]",
            "",
        ] {
            check(re).unwrap_or_else(|e| panic!("{re:?}: {e}"));
        }
    }

    /// Each refused here as Go's regexp (RE2) refuses it: the accepted and refused lists of
    /// these tests agree with `promtool check rules` on `up{x=~"..."}`.
    #[test]
    fn re2_syntax_errors_are_found() {
        for re in [
            "(a",
            "a)",
            "*a",
            "a**",
            "[a",
            "[z-a]",
            "[[:nope:]]",
            r"a\q",
            r"(a)\1",
            "a{2,1}",
            "a{1001}",
            "(?<x>a)",
            r"\8",
            r"\C",
            r"a\",
        ] {
            assert!(check(re).is_err(), "{re:?} accepted");
        }
    }
}
