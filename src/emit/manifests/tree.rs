//! A YAML document as a tree of nodes that remember where they are in the text (byte offsets,
//! columns, style, anchors), built from the events of serde-saphyr's parser: what the editor
//! needs to change a value in place without re-serializing anything.

use std::collections::HashSet;

use serde_saphyr::granit_parser::{Event, Parser, ScalarStyle, StructureStyle};

#[derive(Debug)]
pub(super) struct Node {
    pub kind: NodeKind,
    /// Byte range in the file text.
    pub start: usize,
    pub end: usize,
    /// Character column of the node's first character (0-based).
    pub col: usize,
    /// Anchor id defined on the node, 0 for none.
    pub anchor: usize,
}

#[derive(Debug)]
pub(super) enum NodeKind {
    Scalar { value: String, style: ScalarStyle },
    Map { entries: Vec<(Node, Node)>, flow: bool },
    Seq { items: Vec<Node>, flow: bool },
    Alias,
}

#[derive(Debug)]
pub(super) struct Document {
    pub root: Node,
    /// Anchor ids some alias in the document refers to.
    pub aliased: HashSet<usize>,
}

impl Node {
    /// The value under `key` of a mapping, with its key node.
    pub fn entry(&self, key: &str) -> Option<(&Node, &Node)> {
        match &self.kind {
            NodeKind::Map { entries, .. } => entries
                .iter()
                .find(|(k, _)| k.as_str() == Some(key))
                .map(|(k, v)| (k, v)),
            _ => None,
        }
    }

    pub fn get(&self, key: &str) -> Option<&Node> {
        self.entry(key).map(|(_, v)| v)
    }

    pub fn as_str(&self) -> Option<&str> {
        match &self.kind {
            NodeKind::Scalar { value, .. } => Some(value),
            _ => None,
        }
    }

    pub fn is_null(&self) -> bool {
        matches!(&self.kind, NodeKind::Scalar { value, style: ScalarStyle::Plain }
            if matches!(value.as_str(), "" | "~" | "null" | "Null" | "NULL"))
    }

    /// Where the node's last line ends, for inserting after it: block scalars end on the
    /// indentation of the next line, so they end after their last line break instead.
    pub fn content_end(&self, text: &str) -> usize {
        match &self.kind {
            NodeKind::Scalar {
                style: ScalarStyle::Literal | ScalarStyle::Folded,
                ..
            } => text[self.start..self.end]
                .rfind('\n')
                .map_or(self.end, |i| self.start + i + 1),
            NodeKind::Map { entries, flow: false } => entries.last().map_or(self.end, |(_, v)| v.content_end(text)),
            NodeKind::Seq { items, flow: false } => items.last().map_or(self.end, |v| v.content_end(text)),
            _ => self.end,
        }
    }
}

enum Frame {
    Map {
        entries: Vec<Node>,
        flow: bool,
        start: usize,
        col: usize,
        anchor: usize,
    },
    Seq {
        items: Vec<Node>,
        flow: bool,
        start: usize,
        col: usize,
        anchor: usize,
    },
}

/// Parses every document of `text`; the error is the parser's message with its position.
pub(super) fn parse(text: &str) -> Result<Vec<Document>, String> {
    let mut docs = Vec::new();
    let mut stack: Vec<Frame> = Vec::new();
    let mut root: Option<Node> = None;
    let mut aliased = HashSet::new();
    for event in Parser::new_from_str(text) {
        let (event, span) = event.map_err(|e| e.to_string())?;
        let start = span.start.byte_offset().unwrap_or(span.start.index());
        let end = span.end.byte_offset().unwrap_or(span.end.index());
        let col = span.start.col();
        let node = match event {
            Event::DocumentStart(..) => {
                root = None;
                aliased = HashSet::new();
                continue;
            }
            Event::DocumentEnd => {
                if let Some(root) = root.take() {
                    docs.push(Document {
                        root,
                        aliased: std::mem::take(&mut aliased),
                    });
                }
                continue;
            }
            Event::Scalar(value, style, anchor, _) => Node {
                kind: NodeKind::Scalar {
                    value: value.into_owned(),
                    style,
                },
                start,
                end,
                col,
                anchor,
            },
            Event::Alias(id) => {
                aliased.insert(id);
                Node {
                    kind: NodeKind::Alias,
                    start,
                    end,
                    col,
                    anchor: 0,
                }
            }
            Event::MappingStart(style, anchor, _) => {
                let flow = style == StructureStyle::Flow;
                stack.push(Frame::Map {
                    entries: Vec::new(),
                    flow,
                    start,
                    col,
                    anchor,
                });
                continue;
            }
            Event::SequenceStart(style, anchor, _) => {
                let flow = style == StructureStyle::Flow;
                stack.push(Frame::Seq {
                    items: Vec::new(),
                    flow,
                    start,
                    col,
                    anchor,
                });
                continue;
            }
            Event::MappingEnd | Event::SequenceEnd => {
                let frame = stack.pop().ok_or("unbalanced collection events")?;
                let (kind, start, col, anchor, flow) = match frame {
                    Frame::Map {
                        entries,
                        flow,
                        start,
                        col,
                        anchor,
                    } => {
                        let mut pairs = Vec::new();
                        let mut it = entries.into_iter();
                        while let (Some(k), Some(v)) = (it.next(), it.next()) {
                            pairs.push((k, v));
                        }
                        (NodeKind::Map { entries: pairs, flow }, start, col, anchor, flow)
                    }
                    Frame::Seq {
                        items,
                        flow,
                        start,
                        col,
                        anchor,
                    } => (NodeKind::Seq { items, flow }, start, col, anchor, flow),
                };
                let mut node = Node {
                    kind,
                    start,
                    end,
                    col,
                    anchor,
                };
                if !flow {
                    node.end = node.content_end(text).max(start);
                }
                node
            }
            _ => continue,
        };
        match stack.last_mut() {
            Some(Frame::Map { entries, .. }) => entries.push(node),
            Some(Frame::Seq { items, .. }) => items.push(node),
            None => root = Some(node),
        }
    }
    Ok(docs)
}
