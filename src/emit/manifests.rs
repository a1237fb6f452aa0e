//! Manifest edits for a pull request: rewrite the `resources:` blocks (and HPA fields) of the
//! YAML manifests that define each changed workload, in place, so that `git diff` shows
//! exactly the change and nothing else.
//!
//! No serde round trip (it would drop comments and reformat): serde-saphyr's parser gives every
//! node's byte span ([`tree`]), and [`edit`] changes the text at those spans. Existing values
//! keep their quoting (`cpu: "500m"` stays quoted); missing `resources:`, `requests:`,
//! `limits:` keys are added with their siblings' indentation (block style) or after the last
//! entry (flow style, `resources: {requests: {cpu: 100m}}`); `resources: {}` and an empty
//! `resources:` become a block. A value reached through an alias (`*x`), or inside an anchored
//! node some alias shares, is never edited: it is reported. Every edited file is parsed again
//! and checked to hold the recommended values before it is written (only when its content
//! changed); the files are written together at the end, each atomically
//! ([`crate::atomic::write_many`]).
//!
//! Which documents define a workload: `.yaml`/`.yml` files under the directory (recursively,
//! skipping hidden directories), every `---` document, matched on the API group of
//! `apiVersion`, `kind` and `metadata.name`. A document with `metadata.namespace` matches only
//! that namespace. A document without one (a kustomize base whose overlay sets the namespace)
//! matches when it is unambiguous: no document names the namespace explicitly, exactly one
//! namespace-less document defines the object, and no other changed workload has the same
//! kind and name. Otherwise the workload is reported as ambiguous and left alone. HPAs
//! (`autoscaling/v2`) are matched the same way by their own name.

mod edit;
mod index;
mod tree;

use std::path::{Path, PathBuf};

use serde_saphyr::granit_parser::ScalarStyle;

use super::Error;
use super::change::{HpaChange, WorkloadChange};
use super::patches::{container_list, kind_paths, quantities};
use crate::model::{Resources, WorkloadKey};
use edit::{Editor, Want};
use index::{Documents, Shared};
use tree::{Document, Node, NodeKind};

/// What [`edit_manifests`] did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ManifestReport {
    /// Files rewritten, sorted.
    pub files_changed: Vec<PathBuf>,
    /// Workloads whose manifests now hold the recommendation, with the file edited (an HPA
    /// in another file appears twice).
    pub edited: Vec<(WorkloadKey, PathBuf)>,
    /// Changed workloads no manifest defines.
    pub not_found: Vec<WorkloadKey>,
    /// YAML files that do not parse: left untouched.
    pub unparsable: Vec<(PathBuf, String)>,
    /// Workloads found but not (fully) edited: alias, ambiguity, unexpected shape, HPA not found.
    pub problems: Vec<ManifestProblem>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ManifestProblem {
    pub key: WorkloadKey,
    pub path: Option<PathBuf>,
    pub reason: String,
}

struct File {
    path: PathBuf,
    text: String,
    docs: Vec<Document>,
}

/// One edit target: a document of the file it is listed under, and what to set in it.
struct Target {
    doc: usize,
    key: WorkloadKey,
    what: What,
}

#[derive(Clone, Copy)]
enum What {
    Workload(usize),
    Hpa(usize),
}

fn yaml_files(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), Error> {
    let read = |source| Error::Read {
        path: dir.display().to_string(),
        source,
    };
    for entry in std::fs::read_dir(dir).map_err(read)? {
        let entry = entry.map_err(read)?;
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        if path.is_dir() {
            if !name.starts_with('.') {
                yaml_files(&path, out)?;
            }
        } else if name.ends_with(".yaml") || name.ends_with(".yml") {
            out.push(path);
        }
    }
    Ok(())
}

/// The values to set under a container's mapping.
fn container_want(r: &Resources) -> Vec<(String, Want)> {
    let mut sections: Vec<(String, Want)> = Vec::new();
    for (section, resource, value) in quantities(r) {
        let entry = match sections.iter_mut().find(|(s, _)| s == section) {
            Some(e) => e,
            None => {
                sections.push((section.to_string(), Want::Map(Vec::new())));
                sections.last_mut().expect("just pushed")
            }
        };
        if let Want::Map(m) = &mut entry.1 {
            m.push((resource.to_string(), Want::Quantity(value)));
        }
    }
    vec![("resources".to_string(), Want::Map(sections))]
}

fn hpa_spec_want(h: &HpaChange) -> Vec<(String, Want)> {
    let mut want = Vec::new();
    if let Some(n) = h.min_replicas {
        want.push(("minReplicas".to_string(), Want::Number(n)));
    }
    if let Some(n) = h.max_replicas {
        want.push(("maxReplicas".to_string(), Want::Number(n)));
    }
    want
}

fn utilization_want(target: u32) -> Vec<(String, Want)> {
    let inner = vec![("averageUtilization".to_string(), Want::Number(target))];
    vec![("target".to_string(), Want::Map(inner))]
}

/// Indentation step of a document: key column difference of its first nested block mapping.
fn step(node: &Node) -> Option<usize> {
    match &node.kind {
        NodeKind::Map { entries, flow: false } => entries.iter().find_map(|(k, v)| match &v.kind {
            NodeKind::Map {
                entries: sub,
                flow: false,
            } if !sub.is_empty() && sub[0].0.col > k.col => Some(sub[0].0.col - k.col),
            _ => step(v),
        }),
        NodeKind::Seq { items, .. } => items.iter().find_map(step),
        _ => None,
    }
}

/// The style of the first quoted quantity under `resources`, so new ones look the same.
fn quote_style(container: &Node) -> ScalarStyle {
    let Some(resources) = container.get("resources") else {
        return ScalarStyle::Plain;
    };
    for section in ["requests", "limits"] {
        if let Some(NodeKind::Map { entries, .. }) = resources.get(section).map(|n| &n.kind) {
            for (_, v) in entries {
                if let NodeKind::Scalar { style, .. } = &v.kind {
                    return *style;
                }
            }
        }
    }
    ScalarStyle::Plain
}

/// Walks `path` from the root, refusing aliases and shared anchors on the way.
fn walk<'a>(ed: &Editor, root: &'a Node, path: &[&str]) -> Result<&'a Node, String> {
    let mut node = root;
    for key in path {
        ed.check(node, "the pod template")?;
        node = node
            .get(key)
            .ok_or_else(|| format!("no `{}` in the document", path.join(".")))?;
    }
    ed.check(node, "the pod spec")?;
    Ok(node)
}

fn seq_items(node: &Node) -> &[Node] {
    match &node.kind {
        NodeKind::Seq { items, .. } => items,
        _ => &[],
    }
}

/// The edits that put one workload's recommendation into its document, and the check that
/// reads them back; all or nothing.
fn edit_workload(ed: &mut Editor, change: &WorkloadChange) -> Result<(), String> {
    let (_, _, path) = kind_paths(change.key.kind).ok_or("bare pods are never edited")?;
    let doc = ed.doc;
    let pod = walk(ed, &doc.root, path)?;
    for c in change
        .containers
        .iter()
        .filter(|c| c.recommended != Resources::default())
    {
        let list = container_list(c.role);
        let items = pod.get(list).map(seq_items).unwrap_or_default();
        if let Some(alias) = pod.get(list).filter(|n| matches!(n.kind, NodeKind::Alias)) {
            ed.check(alias, list)?;
        }
        let container = items
            .iter()
            .find(|i| i.get("name").and_then(Node::as_str) == Some(&c.name))
            .ok_or_else(|| format!("container {} not found in {list}", c.name))?;
        if container.get("<<").is_some() {
            return Err(format!(
                "container {} uses a YAML merge key (<<): edit it by hand",
                c.name
            ));
        }
        ed.quote = quote_style(container);
        ed.set(container, &container_want(&c.recommended))?;
    }
    Ok(())
}

fn edit_hpa(ed: &mut Editor, h: &HpaChange) -> Result<(), String> {
    let doc = ed.doc;
    let spec = walk(ed, &doc.root, &["spec"])?;
    ed.quote = ScalarStyle::Plain;
    ed.set(spec, &hpa_spec_want(h))?;
    for (resource, target) in [("cpu", h.cpu_utilization), ("memory", h.memory_utilization)] {
        let Some(target) = target else { continue };
        let metric = spec
            .get("metrics")
            .map(seq_items)
            .unwrap_or_default()
            .iter()
            .find(|m| {
                m.get("type").and_then(Node::as_str) == Some("Resource")
                    && m.get("resource").and_then(|r| r.get("name")).and_then(Node::as_str) == Some(resource)
            })
            .and_then(|m| m.get("resource"))
            .ok_or_else(|| format!("HPA {} has no Resource metric on {resource}", h.name))?;
        ed.set(metric, &utilization_want(target))?;
    }
    Ok(())
}

/// Whether the (re-parsed) document holds what `target` asked for.
fn verify(doc: &Document, change: &WorkloadChange, what: &What) -> bool {
    match what {
        What::Workload(_) => {
            let Some((_, _, path)) = kind_paths(change.key.kind) else {
                return false;
            };
            let pod = path.iter().try_fold(&doc.root, |n, k| n.get(k));
            change
                .containers
                .iter()
                .filter(|c| c.recommended != Resources::default())
                .all(|c| {
                    pod.and_then(|p| p.get(container_list(c.role)))
                        .map(seq_items)
                        .unwrap_or_default()
                        .iter()
                        .find(|i| i.get("name").and_then(Node::as_str) == Some(&c.name))
                        .is_some_and(|n| edit::holds(n, &container_want(&c.recommended)))
                })
        }
        What::Hpa(_) => {
            let h = change.hpa.as_ref().expect("an HPA target has an HPA change");
            doc.root.get("spec").is_some_and(|s| edit::holds(s, &hpa_spec_want(h)))
        }
    }
}

/// Edits the manifests under `dir` so that they hold `changes` (see the module docs for the
/// matching rule). Fails only when the directory cannot be read or a file cannot be written;
/// everything else is in the report.
pub fn edit_manifests(dir: &Path, changes: &[WorkloadChange]) -> Result<ManifestReport, Error> {
    let mut report = ManifestReport::default();
    let mut paths = Vec::new();
    yaml_files(dir, &mut paths)?;
    paths.sort();
    let mut files = Vec::new();
    for path in paths {
        let text = std::fs::read_to_string(&path).map_err(|source| Error::Read {
            path: path.display().to_string(),
            source,
        })?;
        match tree::parse(&text) {
            Ok(docs) => files.push(File { path, text, docs }),
            Err(reason) => report.unparsable.push((path, reason)),
        }
    }
    let problem = |key: &WorkloadKey, path: Option<&Path>, reason: String| ManifestProblem {
        key: key.clone(),
        path: path.map(Path::to_path_buf),
        reason,
    };
    let documents = Documents::new(&files);
    let shared = Shared::new(changes);
    // Per file, in the order found: the order edits and their problems are reported in.
    let mut targets: Vec<Vec<Target>> = files.iter().map(|_| Vec::new()).collect();
    let mut add = |found: &[(usize, usize)], key: &WorkloadKey, what: What| {
        for &(file, doc) in found {
            targets[file].push(Target {
                doc,
                key: key.clone(),
                what,
            });
        }
    };
    for (i, change) in changes.iter().enumerate() {
        let key = &change.key;
        let Some((group, _, _)) = kind_paths(key.kind) else {
            continue;
        };
        if change.is_empty() {
            continue;
        }
        let workload = (group, key.kind.as_str(), key.name.as_str());
        match documents.find(&files, workload, &key.namespace, shared.workload(key)) {
            Ok([]) => report.not_found.push(key.clone()),
            Ok(found) => add(found, key, What::Workload(i)),
            Err(reason) => report.problems.push(problem(key, None, reason)),
        }
        let Some(h) = change
            .hpa
            .as_ref()
            .filter(|h| !hpa_spec_want(h).is_empty() || h.cpu_utilization.or(h.memory_utilization).is_some())
        else {
            continue;
        };
        let hpa = ("autoscaling", "HorizontalPodAutoscaler", h.name.as_str());
        match documents.find(&files, hpa, &key.namespace, shared.hpa(&h.name)) {
            Ok([]) => report
                .problems
                .push(problem(key, None, format!("no manifest defines HPA {}", h.name))),
            Ok(found) => add(found, key, What::Hpa(i)),
            Err(reason) => report
                .problems
                .push(problem(key, None, format!("HPA {}: {reason}", h.name))),
        }
    }
    let mut writes = Vec::new();
    for (file, mine) in files.iter().zip(&targets) {
        if mine.is_empty() {
            continue;
        }
        let mut edits = Vec::new();
        let mut done = Vec::new();
        for t in mine {
            let doc = &file.docs[t.doc];
            let mut ed = Editor {
                text: &file.text,
                doc,
                step: step(&doc.root).unwrap_or(2),
                quote: ScalarStyle::Plain,
                edits: Vec::new(),
            };
            let (change, result) = match t.what {
                What::Workload(i) => (&changes[i], edit_workload(&mut ed, &changes[i])),
                What::Hpa(i) => (
                    &changes[i],
                    edit_hpa(&mut ed, changes[i].hpa.as_ref().expect("hpa target")),
                ),
            };
            match result {
                Ok(()) => {
                    edits.extend(ed.edits);
                    done.push((t, change));
                }
                Err(reason) => report.problems.push(problem(&t.key, Some(&file.path), reason)),
            }
        }
        let Some(text) = edit::apply(&file.text, edits) else {
            for (t, _) in done {
                report
                    .problems
                    .push(problem(&t.key, Some(&file.path), "overlapping edits".into()));
            }
            continue;
        };
        let reparsed = tree::parse(&text);
        let ok = match &reparsed {
            Ok(docs) => docs.len() == file.docs.len() && done.iter().all(|(t, c)| verify(&docs[t.doc], c, &t.what)),
            Err(_) => false,
        };
        if !ok {
            for (t, _) in done {
                let reason = "the edited text did not read back as the recommendation; left untouched".to_string();
                report.problems.push(problem(&t.key, Some(&file.path), reason));
            }
            continue;
        }
        if text != file.text {
            report.files_changed.push(file.path.clone());
            writes.push((file.path.clone(), text));
        }
        for (t, _) in done {
            report.edited.push((t.key.clone(), file.path.clone()));
        }
    }
    crate::atomic::write_many(&writes).map_err(|(path, source)| Error::Write {
        path: path.display().to_string(),
        source,
    })?;
    Ok(report)
}
