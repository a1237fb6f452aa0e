//! Text edits at the spans of a parsed document: replace a scalar keeping its quotes, add
//! missing keys with the indentation of their siblings (block style) or after the last entry
//! (flow style), and refuse to touch aliases or anchored nodes that an alias shares.

use serde_saphyr::granit_parser::ScalarStyle;

use super::tree::{Document, Node, NodeKind};

/// Replace `text[start..end]` with `text`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Edit {
    pub start: usize,
    pub end: usize,
    pub text: String,
}

/// Values to set under a mapping, new keys written in this order.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Want {
    /// A quantity such as `250m`: new ones quoted like their siblings.
    Quantity(String),
    /// An integer, always plain.
    Number(u32),
    Map(Vec<(String, Want)>),
}

impl Want {
    fn scalar(&self) -> Option<String> {
        match self {
            Want::Quantity(s) => Some(s.clone()),
            Want::Number(n) => Some(n.to_string()),
            Want::Map(_) => None,
        }
    }
}

pub(super) struct Editor<'a> {
    pub text: &'a str,
    pub doc: &'a Document,
    /// Indentation step of the document's block mappings.
    pub step: usize,
    /// Style of new quantities: the style of the quantities already there.
    pub quote: ScalarStyle,
    pub edits: Vec<Edit>,
}

/// Whether `node` (or a value inside it) reads as `want`.
pub(super) fn holds(node: &Node, want: &[(String, Want)]) -> bool {
    want.iter().all(|(k, w)| match (node.get(k), w) {
        (Some(v), Want::Map(sub)) => holds(v, sub),
        (Some(v), w) => v.as_str() == w.scalar().as_deref(),
        (None, _) => false,
    })
}

fn quoted(s: &str, style: ScalarStyle) -> String {
    match style {
        ScalarStyle::DoubleQuoted => format!("\"{s}\""),
        ScalarStyle::SingleQuoted => format!("'{s}'"),
        _ => s.to_string(),
    }
}

impl Editor<'_> {
    /// Refuses nodes an edit must not go through: aliases, and anchored nodes that an alias
    /// shares (the edit would change every place that uses it).
    pub fn check(&self, node: &Node, what: &str) -> Result<(), String> {
        match node.kind {
            NodeKind::Alias => Err(format!(
                "{what} is an alias ({}): edit its anchor by hand",
                &self.text[node.start..node.end]
            )),
            _ if node.anchor != 0 && self.doc.aliased.contains(&node.anchor) => Err(format!(
                "{what} is shared through a YAML anchor used elsewhere: edit it by hand"
            )),
            _ => Ok(()),
        }
    }

    fn render_scalar(&self, w: &Want) -> String {
        match w {
            Want::Quantity(s) => quoted(s, self.quote),
            Want::Number(n) => n.to_string(),
            Want::Map(_) => unreachable!("maps are rendered by the callers"),
        }
    }

    fn render_block(&self, want: &[(String, Want)], indent: usize) -> String {
        let pad = " ".repeat(indent);
        want.iter()
            .map(|(k, w)| match w {
                Want::Map(sub) => format!("{pad}{k}:\n{}", self.render_block(sub, indent + self.step)),
                w => format!("{pad}{k}: {}\n", self.render_scalar(w)),
            })
            .collect()
    }

    fn render_flow(&self, want: &[(String, Want)]) -> String {
        want.iter()
            .map(|(k, w)| match w {
                Want::Map(sub) => format!("{k}: {{{}}}", self.render_flow(sub)),
                w => format!("{k}: {}", self.render_scalar(w)),
            })
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// The offset just after the `:` that follows a key.
    fn colon_after(&self, key: &Node) -> Result<usize, String> {
        let rest = &self.text[key.end..];
        let skipped = rest.len() - rest.trim_start_matches([' ', '\t']).len();
        if rest[skipped..].starts_with(':') {
            Ok(key.end + skipped + 1)
        } else {
            Err(format!(
                "cannot find the `:` after key `{}`",
                key.as_str().unwrap_or("?")
            ))
        }
    }

    /// Where a new line after `pos`'s line starts, and whether a line break must come first.
    fn line_after(&self, pos: usize) -> (usize, bool) {
        if pos > 0 && self.text[..pos].ends_with('\n') {
            return (pos, false);
        }
        match self.text[pos..].find('\n') {
            Some(i) => (pos + i + 1, false),
            None => (self.text.len(), true),
        }
    }

    /// Sets `want` under the mapping `map`, editing existing values and adding missing keys.
    pub fn set(&mut self, map: &Node, want: &[(String, Want)]) -> Result<(), String> {
        self.check(map, "the mapping")?;
        let NodeKind::Map { entries, flow } = &map.kind else {
            return Err("expected a mapping".into());
        };
        let mut missing = Vec::new();
        for (k, w) in want {
            let Some((key, value)) = map.entry(k) else {
                missing.push((k.clone(), w.clone()));
                continue;
            };
            self.check(value, &format!("`{k}`"))?;
            match (w, &value.kind) {
                (Want::Map(sub), NodeKind::Map { entries, flow: true }) if entries.is_empty() && !flow_parent(map) => {
                    self.replace_value(key, value, sub)?;
                }
                (Want::Map(sub), NodeKind::Map { .. }) => self.set(value, sub)?,
                (Want::Map(sub), NodeKind::Scalar { .. }) if value.is_null() => self.replace_value(key, value, sub)?,
                (w, NodeKind::Scalar { style, .. }) if w.scalar().is_some() => {
                    let s = w.scalar().expect("checked");
                    match style {
                        ScalarStyle::Literal | ScalarStyle::Folded => return Err(format!("`{k}` is a block scalar")),
                        _ if value.start == value.end => {
                            let at = self.colon_after(key)?;
                            self.edits.push(Edit {
                                start: at,
                                end: at,
                                text: format!(" {s}"),
                            });
                        }
                        _ => self.edits.push(Edit {
                            start: value.start,
                            end: value.end,
                            text: quoted(&s, *style),
                        }),
                    }
                }
                _ => return Err(format!("`{k}` does not have the expected shape")),
            }
        }
        if missing.is_empty() {
            return Ok(());
        }
        if *flow {
            let body = self.render_flow(&missing);
            let (at, text) = match entries.last() {
                Some((_, v)) => (v.end, format!(", {body}")),
                None => (map.start + 1, body),
            };
            self.edits.push(Edit {
                start: at,
                end: at,
                text,
            });
        } else {
            let indent = entries.first().map_or(map.col, |(k, _)| k.col);
            let (at, newline) = self.line_after(map.content_end(self.text));
            let block = self.render_block(&missing, indent);
            let text = if newline { format!("\n{block}") } else { block };
            self.edits.push(Edit {
                start: at,
                end: at,
                text,
            });
        }
        Ok(())
    }

    /// Replaces a null or `{}` value of a block mapping with a block holding `want`.
    fn replace_value(&mut self, key: &Node, value: &Node, want: &[(String, Want)]) -> Result<(), String> {
        let at = self.colon_after(key)?;
        let block = self.render_block(want, key.col + self.step);
        self.edits.push(Edit {
            start: at,
            end: value.end.max(at),
            text: format!("\n{}", block.trim_end_matches('\n')),
        });
        Ok(())
    }
}

fn flow_parent(map: &Node) -> bool {
    matches!(map.kind, NodeKind::Map { flow: true, .. })
}

/// Applies non-overlapping edits; `None` when two overlap (a bug, never written).
pub(super) fn apply(text: &str, mut edits: Vec<Edit>) -> Option<String> {
    edits.sort_by_key(|e| (e.start, e.end));
    let mut out = String::with_capacity(text.len() + 256);
    let mut at = 0;
    for e in edits {
        if e.start < at {
            return None;
        }
        out.push_str(&text[at..e.start]);
        out.push_str(&e.text);
        at = e.end;
    }
    out.push_str(&text[at..]);
    Some(out)
}
