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
//!
//! Files are left as they were found ([`walk`], [`crate::atomic`]): the walk follows a
//! symlink (to a file or a directory) only when it resolves inside the directory, visits each
//! file once, and reads regular files only; a file it cannot read, or that is not UTF-8, is
//! reported and left alone. Edits keep the file's line endings (CRLF stays CRLF), its mode and
//! owner; a symlinked manifest is edited at its target, read-only and hard-linked files are
//! refused. The edits are written under a lock on the directory as one set
//! ([`crate::atomic::DirLock::commit`]): all of them or, on an error, none.
//!
//! Every value is checked against what the manifest holds ([`super::guard`]): a new request
//! above the manifest's limit raises that limit (noted), a limit below the manifest's request
//! or an HPA whose minReplicas would pass its maxReplicas is refused, and every difference
//! between the manifest and what the cluster runs is reported as drift.

mod edit;
mod index;
mod tree;
mod walk;

use std::path::{Path, PathBuf};

use serde_saphyr::granit_parser::ScalarStyle;

use super::Error;
use super::change::{ContainerChange, HpaChange, WorkloadChange};
use super::guard;
use super::patches::{container_list, kind_paths, quantities};
use crate::model::{Resources, WorkloadKey, format_cpu, format_memory, parse_cpu, parse_memory};
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
    /// Workloads found but not (fully) edited: alias, ambiguity, unexpected shape, HPA not
    /// found, a value refused by the checks, a file that may not be replaced.
    pub problems: Vec<ManifestProblem>,
    /// Paths the walk left alone (symlinks out of the directory or that do not resolve,
    /// FIFOs and other non-regular files, unreadable or non-UTF-8 files), with the reason.
    pub left_alone: Vec<(PathBuf, String)>,
    /// Where the manifest differs from what the cluster runs, per workload
    /// (`container app: manifest says requests.cpu 200m, cluster runs 500m`).
    pub drift: Vec<(WorkloadKey, String)>,
    /// Values adjusted so that the edit is valid (a limit raised to fit the new request).
    pub adjusted: Vec<(WorkloadKey, String)>,
}

impl ManifestReport {
    /// The drift as lines for the report's warnings (and so the Markdown and the table).
    pub fn drift_warnings(&self) -> Vec<String> {
        self.drift
            .iter()
            .map(|(key, what)| format!("{key}: the manifest differs from the cluster: {what}"))
            .collect()
    }
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

/// The resources a container's mapping holds (quantities that do not parse count as unset).
fn manifest_resources(container: &Node) -> Resources {
    let q = |section: &str, resource: &str| {
        let text = container.get("resources")?.get(section)?.get(resource)?.as_str()?;
        if resource == "cpu" {
            parse_cpu(text).ok()
        } else {
            parse_memory(text).ok()
        }
    };
    Resources {
        cpu_request: q("requests", "cpu"),
        cpu_limit: q("limits", "cpu"),
        memory_request: q("requests", "memory"),
        memory_limit: q("limits", "memory"),
    }
}

/// The differences between a container's manifest values and what the cluster runs.
fn drift(c: &ContainerChange, manifest: &Resources, out: &mut Vec<String>) {
    let fields = [
        ("requests.cpu", manifest.cpu_request, c.current.cpu_request, true),
        ("limits.cpu", manifest.cpu_limit, c.current.cpu_limit, true),
        (
            "requests.memory",
            manifest.memory_request,
            c.current.memory_request,
            false,
        ),
        ("limits.memory", manifest.memory_limit, c.current.memory_limit, false),
    ];
    let show = |v: Option<f64>, cpu: bool| match v {
        Some(v) if cpu => format_cpu(v),
        Some(v) => format_memory(v),
        None => "none".into(),
    };
    for (field, file, cluster, cpu) in fields {
        if show(file, cpu) != show(cluster, cpu) {
            out.push(format!(
                "container {}: manifest says {field} {}, cluster runs {}",
                c.name,
                show(file, cpu),
                show(cluster, cpu)
            ));
        }
    }
}

/// What one workload's edit did besides editing: the change as checked (limits raised where
/// needed), the notes of the adjustments and the drift found.
struct Edited {
    change: WorkloadChange,
    notes: Vec<String>,
    drift: Vec<String>,
}

/// The edits that put one workload's recommendation into its document, and the check that
/// reads them back; all or nothing.
fn edit_workload(ed: &mut Editor, change: &WorkloadChange) -> Result<Edited, String> {
    let (_, _, path) = kind_paths(change.key.kind).ok_or("bare pods are never edited")?;
    guard::bounds(change)?;
    let doc = ed.doc;
    let pod = walk(ed, &doc.root, path)?;
    let mut out = Edited {
        change: change.clone(),
        notes: Vec::new(),
        drift: Vec::new(),
    };
    for (slot, c) in out.change.containers.iter_mut().zip(&change.containers) {
        if c.recommended == Resources::default() {
            continue;
        }
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
        let in_file = manifest_resources(container);
        drift(c, &in_file, &mut out.drift);
        *slot = guard::fit_container(c, &in_file, "the manifest", &mut out.notes)?;
        ed.quote = quote_style(container);
        ed.set(container, &container_want(&slot.recommended))?;
    }
    Ok(out)
}

fn edit_hpa(ed: &mut Editor, h: &HpaChange) -> Result<(), String> {
    let doc = ed.doc;
    let spec = walk(ed, &doc.root, &["spec"])?;
    let replicas = |field: &str| spec.get(field).and_then(Node::as_str).and_then(|n| n.parse().ok());
    guard::hpa(
        h,
        Some((replicas("minReplicas"), replicas("maxReplicas"))),
        "the manifest",
    )?;
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
    let read_error = |source| Error::Read {
        path: dir.display().to_string(),
        source,
    };
    let lock = crate::atomic::DirLock::acquire(dir).map_err(read_error)?;
    let paths = walk::yaml_files(dir, &mut report.left_alone).map_err(read_error)?;
    let mut files = Vec::new();
    for path in paths {
        let text = match crate::atomic::read_regular(&path).map(String::from_utf8) {
            Ok(Ok(text)) => text,
            Ok(Err(_)) => {
                report.left_alone.push((path, "not UTF-8: left as it is".into()));
                continue;
            }
            Err(e) => {
                report
                    .left_alone
                    .push((path, format!("cannot be read ({e}): left as it is")));
                continue;
            }
        };
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
            let result = match t.what {
                What::Workload(i) => edit_workload(&mut ed, &changes[i]),
                What::Hpa(i) => edit_hpa(&mut ed, changes[i].hpa.as_ref().expect("hpa target")).map(|()| Edited {
                    change: changes[i].clone(),
                    notes: Vec::new(),
                    drift: Vec::new(),
                }),
            };
            match result {
                Ok(edited) => {
                    edits.extend(ed.edits);
                    report
                        .adjusted
                        .extend(edited.notes.into_iter().map(|n| (t.key.clone(), n)));
                    report
                        .drift
                        .extend(edited.drift.into_iter().map(|d| (t.key.clone(), d)));
                    done.push((t, edited.change));
                }
                Err(reason) => report.problems.push(problem(&t.key, Some(&file.path), reason)),
            }
        }
        // New lines in the file's own line ending: a CRLF file stays CRLF.
        if file.text.split_once('\n').is_some_and(|(line, _)| line.ends_with('\r')) {
            for e in &mut edits {
                e.text = e.text.replace('\n', "\r\n");
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
            // A file that may not be replaced (read-only, hard links, another owner) is
            // refused here, before any file of the set is written.
            if let Err(e) = crate::atomic::check_replaceable(&file.path) {
                for (t, _) in done {
                    report
                        .problems
                        .push(problem(&t.key, Some(&file.path), format!("not edited: the file {e}")));
                }
                continue;
            }
            report.files_changed.push(file.path.clone());
            writes.push((file.path.clone(), text));
        }
        for (t, _) in done {
            report.edited.push((t.key.clone(), file.path.clone()));
        }
    }
    lock.commit(&writes, &[]).map_err(|(path, source)| Error::Write {
        path: path.display().to_string(),
        source,
    })?;
    Ok(report)
}
