//! The patch set on disk, the one entry point both `recommend --patches-dir` and the agent
//! call ([`write_patches`]): a directory of kustomize Components that users include as they
//! are, written in place under a lock, rightsizer's own files marked, updated and removed,
//! everyone else's left alone.
//!
//! Layout (docs/patches.md has an example overlay):
//!
//! ```text
//! DIR/kustomization.yaml                 Component: components: [shop, data]
//! DIR/shop/kustomization.yaml            Component: the patches of namespace shop
//! DIR/shop/deployment-web.yaml           the workload's patch
//! DIR/shop/deployment-web_hpa.yaml       its HPA's RFC 6902 patch
//! ```
//!
//! kustomize applies a Component's patches before the including overlay's `namespace:`
//! transformer, and a target that matches nothing is skipped silently. So targets select by
//! group, version, kind and name, and by the namespace as a regular expression that also
//! accepts a resource without one (kustomize counts it as `default`): `namespace:
//! shop|default`. A base whose manifests (or own kustomization) set `shop` matches, and so
//! does a namespace-less base whose overlay sets `namespace: shop`. The one exception: when
//! the same kind and name also exist in namespace `default`, the target names `shop` alone.
//!
//! Ownership: every file rightsizer writes starts with [`MARKER`] and a checksum of the rest
//! of the file. A file with the marker and a matching checksum is rightsizer's: rewritten
//! when its content changes, removed when its workload no longer has a change. Any other
//! file is never rewritten or removed: a patch file in the way skips its workload, a
//! namespace `kustomization.yaml` in the way skips the namespace, and the report says so.
//!
//! Names: namespaces and names are checked to be Kubernetes names before they become file
//! names ([`super::super::guard`]); file names are then cut to a length every file system
//! takes, with a hash of the whole name, and each directory is checked to resolve inside DIR.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use super::{
    CurrentObjects, PatchFormat, PatchReport, changed, container_list, hpa_patch, json_patch, kind_paths,
    strategic_patch,
};
use crate::atomic::{self, DirLock};
use crate::emit::Error;
use crate::emit::change::{ContainerChange, WorkloadChange};
use crate::emit::guard;
use crate::model::{Resources, WorkloadKey, WorkloadKind, parse_cpu, parse_memory};

/// First line of every file rightsizer writes into a patch directory, followed by the
/// checksum of the rest of the file.
pub const MARKER: &str = "# rightsizer.dev/generated: ";

/// The longest file name stem written as it is; longer ones are cut and get a hash (file
/// systems take 255 bytes; a Kubernetes name can have 253).
const MAX_STEM: usize = 160;

/// FNV-1a, 64 bits: stable across Rust versions (unlike `DefaultHasher`), enough to tell
/// an edited file or two long names apart; not a defence against a forger.
fn fnv(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// `body` with the marker line in front.
fn stamp(body: &str) -> String {
    format!(
        "{MARKER}{:016x} (written by rightsizer: its next run rewrites or removes this file, unless it was edited)\n{body}",
        fnv(body.as_bytes())
    )
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Owner {
    /// rightsizer's, unchanged since it wrote it.
    Ours,
    /// Someone else's: no marker, edited since, not a regular UTF-8 file.
    Theirs(&'static str),
}

fn owner(bytes: &[u8]) -> Owner {
    let Ok(text) = std::str::from_utf8(bytes) else {
        return Owner::Theirs("not written by rightsizer");
    };
    let Some(rest) = text.strip_prefix(MARKER) else {
        return Owner::Theirs("not written by rightsizer");
    };
    let (first, body) = rest.split_once('\n').unwrap_or((rest, ""));
    match first.get(..16).and_then(|h| u64::from_str_radix(h, 16).ok()) {
        Some(sum) if sum == fnv(body.as_bytes()) => Owner::Ours,
        _ => Owner::Theirs("edited since rightsizer wrote it"),
    }
}

/// A file name stem of safe characters (`[a-z0-9.-]`, not starting with a dot, at most
/// [`MAX_STEM`] bytes): the stem itself when it is one, otherwise its safe characters cut
/// short, `_` and a hash of the whole stem (`_` never occurs in a Kubernetes name, so a cut
/// stem never equals a whole one).
fn safe_stem(stem: &str) -> String {
    let ok = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '.' || c == '-';
    if !stem.is_empty() && stem.len() <= MAX_STEM && stem.chars().all(ok) && !stem.starts_with('.') {
        return stem.to_string();
    }
    let kept: String = stem
        .chars()
        .map(|c| if ok(c) { c } else { '-' })
        .skip_while(|c| *c == '.')
        .take(MAX_STEM - 17)
        .collect();
    format!("{kept}_{:016x}", fnv(stem.as_bytes()))
}

/// `DIR/<name>` after checking `name` is one plain path component.
fn inside(dir: &Path, name: &str) -> Result<PathBuf, String> {
    let mut parts = Path::new(name).components();
    match (parts.next(), parts.next()) {
        (Some(std::path::Component::Normal(_)), None) => Ok(dir.join(name)),
        _ => Err(format!("{} is not a plain file name", guard::shown(name))),
    }
}

/// `name` as a kustomize target regex (which kustomize anchors): a Kubernetes name's only
/// special character is `.`.
fn literal(name: &str) -> String {
    name.replace('.', "\\.")
}

fn to_yaml(value: &Value, what: &str) -> Result<String, Error> {
    serde_saphyr::to_string(value).map_err(|e| Error::Encode {
        format: "yaml",
        reason: format!("{what}: {e}"),
    })
}

/// The values in force of container `c` in the live object, when it has them.
fn live_resources(object: &Value, kind: WorkloadKind, c: &ContainerChange) -> Option<Resources> {
    let (_, _, path) = kind_paths(kind)?;
    let pod = path.iter().try_fold(object, |v, k| v.get(*k))?;
    let item = pod[container_list(c.role)]
        .as_array()?
        .iter()
        .find(|i| i["name"] == c.name.as_str())?;
    let r = &item["resources"];
    let q = |section: &str, resource: &str| {
        let text = r[section][resource].as_str()?;
        if resource == "cpu" {
            parse_cpu(text).ok()
        } else {
            parse_memory(text).ok()
        }
    };
    Some(Resources {
        cpu_request: q("requests", "cpu"),
        cpu_limit: q("limits", "cpu"),
        memory_request: q("requests", "memory"),
        memory_limit: q("limits", "memory"),
    })
}

/// One workload's files: `(file name, body)` with their kustomization entries.
struct Planned {
    files: Vec<(String, String, Value)>,
    notes: Vec<String>,
}

/// Why a workload gets no patch file at all, or its checked patches.
fn plan(
    change: &WorkloadChange,
    format: PatchFormat,
    current: &CurrentObjects,
    changes: &[&WorkloadChange],
) -> Result<Option<Planned>, String> {
    let key = &change.key;
    match key.kind {
        WorkloadKind::Pod => return Err("bare pods are never patched: change what creates them".into()),
        WorkloadKind::Job => {
            return Err(
                "a bare Job's pod template is immutable (the API server answers 422 to a patch): change the manifest or CronJob that creates it".into(),
            );
        }
        _ => {}
    }
    let Some((group, version, _)) = kind_paths(key.kind) else {
        return Ok(None);
    };
    let object = current.get(key.kind.as_str(), &key.namespace, &key.name);
    let live_hpa = change
        .hpa
        .as_ref()
        .and_then(|h| current.get("HorizontalPodAutoscaler", &key.namespace, &h.name))
        .map(|h| {
            let n = |field: &str| h["spec"][field].as_u64().map(|n| n.min(u64::from(u32::MAX)) as u32);
            (n("minReplicas"), n("maxReplicas"))
        });
    let checked = guard::check(
        change,
        |c| object.and_then(|o| live_resources(o, key.kind, c)).or(Some(c.current)),
        live_hpa,
        "the live object",
    )?;
    let change = &checked.change;
    // The workload and HPA patches go together or not at all: a new request with the old
    // utilization target would move the HPA's scale point.
    let workload = match format {
        _ if changed(&change.containers).next().is_none() => None,
        PatchFormat::Strategic => strategic_patch(change),
        PatchFormat::Json6902 => {
            let object = object.ok_or("a JSON patch needs the current object")?;
            Some(Value::Array(json_patch(change, object)?))
        }
    };
    let hpa = match &change.hpa {
        Some(h) => {
            let ops = hpa_patch(h, current.get("HorizontalPodAutoscaler", &key.namespace, &h.name))?;
            (!ops.is_empty()).then_some((h.name.as_str(), Value::Array(ops)))
        }
        None => None,
    };
    // `shop|default` also matches a namespace-less base, unless a namesake lives in default.
    let namespace = |kind: &str, name: &str| {
        let namesake = key.namespace != "default"
            && (current.get(kind, "default", name).is_some()
                || changes.iter().any(|c| {
                    c.key.namespace == "default"
                        && (c.key.kind.as_str() == kind && c.key.name == name
                            || c.hpa
                                .as_ref()
                                .is_some_and(|h| kind == "HorizontalPodAutoscaler" && h.name == name))
                }));
        if key.namespace == "default" || namesake {
            key.namespace.clone()
        } else {
            format!("{}|default", key.namespace)
        }
    };
    let stem = safe_stem(&format!("{}-{}", key.kind.as_str().to_lowercase(), key.name));
    let mut files = Vec::new();
    if let Some(body) = workload {
        let target = json!({ "group": group, "version": version, "kind": key.kind.as_str(), "name": literal(&key.name), "namespace": namespace(key.kind.as_str(), &key.name) });
        files.push((
            format!("{stem}.yaml"),
            to_yaml(&body, &stem).map_err(|e| e.to_string())?,
            target,
        ));
    }
    if let Some((name, ops)) = hpa {
        let target = json!({ "group": "autoscaling", "version": "v2", "kind": "HorizontalPodAutoscaler", "name": literal(name), "namespace": namespace("HorizontalPodAutoscaler", name) });
        files.push((
            format!("{stem}_hpa.yaml"),
            to_yaml(&ops, &stem).map_err(|e| e.to_string())?,
            target,
        ));
    }
    Ok((!files.is_empty()).then_some(Planned {
        files,
        notes: checked.notes,
    }))
}

/// rightsizer's files and everyone else's in `dir` and its namespace directories, relative,
/// with the content of rightsizer's own (to leave files already right alone).
fn scan(dir: &Path) -> BTreeMap<PathBuf, (Owner, Vec<u8>)> {
    let mut out = BTreeMap::new();
    let mut look = |rel: PathBuf| {
        let path = dir.join(&rel);
        let found = match std::fs::symlink_metadata(&path) {
            Ok(m) if m.is_file() => match atomic::read_regular(&path) {
                Ok(b) if owner(&b) == Owner::Ours => (Owner::Ours, b),
                Ok(b) => (owner(&b), Vec::new()),
                Err(_) => (Owner::Theirs("unreadable"), Vec::new()),
            },
            Ok(m) if m.file_type().is_symlink() => (Owner::Theirs("a symlink"), Vec::new()),
            Ok(_) => (Owner::Theirs("not a regular file"), Vec::new()),
            Err(_) => return,
        };
        out.insert(rel, found);
    };
    let Ok(entries) = std::fs::read_dir(dir) else {
        return BTreeMap::new();
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') {
            continue;
        }
        match entry.file_type() {
            Ok(t) if t.is_dir() => {
                for sub in std::fs::read_dir(entry.path()).into_iter().flatten().flatten() {
                    let file = sub.file_name().to_string_lossy().into_owned();
                    if file.ends_with(".yaml") && !file.starts_with('.') {
                        look(Path::new(&name).join(file));
                    }
                }
            }
            _ if name.ends_with(".yaml") => look(PathBuf::from(name)),
            _ => {}
        }
    }
    out
}

/// The staging and old directories an earlier version of the agent left beside `dir`
/// (`.<name>.staging-<pid>`, `.<name>.old-<pid>`): the old set is put back when it is all
/// that is left of the directory, the rest removed.
fn clean_legacy_siblings(dir: &Path) {
    let (Some(name), parent) = (dir.file_name(), atomic::parent(dir)) else {
        return;
    };
    let name = name.to_string_lossy();
    let Ok(entries) = std::fs::read_dir(parent) else {
        return;
    };
    let mut siblings: Vec<PathBuf> = entries
        .flatten()
        .filter(|e| {
            let n = e.file_name().to_string_lossy().into_owned();
            n.starts_with(&format!(".{name}.staging-")) || n.starts_with(&format!(".{name}.old-"))
        })
        .map(|e| e.path())
        .collect();
    siblings.sort();
    if !dir.exists()
        && let Some(old) = siblings
            .iter()
            .find(|p| p.to_string_lossy().contains(&format!(".{name}.old-")))
    {
        let _ = std::fs::rename(old, dir);
    }
    for s in siblings {
        let _ = std::fs::remove_dir_all(s);
    }
}

/// A namespace's part of the set.
#[derive(Default)]
struct Group {
    files: Vec<(String, String)>,
    entries: Vec<Value>,
    keys: Vec<WorkloadKey>,
}

/// Writes the patch set of `changes` into `dir` (created if missing), see the module docs;
/// the same function for `recommend` and the agent. Workloads are written in key order;
/// empty changes are left out silently, every other workload without a file is in
/// [`PatchReport::skipped`] with the reason. Fails only when the directory cannot be
/// created, locked or written.
///
/// The set is written under a lock on `dir` (a second run waits, see
/// [`atomic::DirLock`]) and in one [`DirLock::commit`]: new and changed files first, each
/// namespace's `kustomization.yaml` after its patches, the top one after them, stale files
/// removed last, so every file a kustomization lists exists at every moment. Files whose
/// content is already right are not rewritten.
pub fn write_patches(
    dir: &Path,
    changes: &[WorkloadChange],
    format: PatchFormat,
    current: &CurrentObjects,
) -> Result<PatchReport, Error> {
    let io = |path: &Path| {
        let path = path.display().to_string();
        move |source| Error::Write { path, source }
    };
    clean_legacy_siblings(dir);
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let lock = DirLock::acquire(dir).map_err(io(dir))?;
    let found = scan(dir);
    let theirs = |rel: &Path| match found.get(rel) {
        Some((Owner::Theirs(why), _)) => Some(*why),
        _ => None,
    };
    let mut report = PatchReport::default();
    let mut sorted: Vec<&WorkloadChange> = changes.iter().filter(|c| !c.is_empty()).collect();
    sorted.sort_by(|a, b| a.key.cmp(&b.key));
    let mut groups: BTreeMap<String, Group> = BTreeMap::new();
    // Files that may not be replaced are not removed either.
    let mut refused_files = BTreeSet::new();
    'changes: for change in &sorted {
        let key = &change.key;
        let planned = match plan(change, format, current, &sorted) {
            Ok(Some(p)) => p,
            Ok(None) => continue,
            Err(reason) => {
                report.skipped.push((key.clone(), reason));
                continue;
            }
        };
        let ns = safe_stem(&key.namespace);
        let group = groups.entry(ns.clone()).or_default();
        for (file, _, _) in &planned.files {
            let rel = Path::new(&ns).join(file);
            let refused = match theirs(&rel) {
                Some(why) => Some(why.to_string()),
                // rightsizer's own file, made read-only or hard-linked since: not replaced.
                None if found.contains_key(&rel) => {
                    atomic::check_replaceable(&dir.join(&rel)).err().map(|e| e.to_string())
                }
                None => None,
            };
            if let Some(why) = refused {
                refused_files.insert(rel.clone());
                let reason = format!(
                    "{} is in the way ({why}): left as it is; delete it to let rightsizer write the patch",
                    dir.join(&rel).display()
                );
                report.kept.push((dir.join(&rel), reason.clone()));
                report.skipped.push((key.clone(), reason));
                continue 'changes;
            }
            if group.files.iter().any(|(f, _)| f == file) {
                report.skipped.push((
                    key.clone(),
                    format!("another workload's patch file is also called {file}"),
                ));
                continue 'changes;
            }
        }
        for note in planned.notes {
            report.adjusted.push((key.clone(), note));
        }
        for (file, body, target) in planned.files {
            group.entries.push(json!({ "path": file, "target": target }));
            group.files.push((file, body));
        }
        group.keys.push(key.clone());
    }
    let mut writes: Vec<(PathBuf, String)> = Vec::new();
    let mut components = Vec::new();
    // Namespaces whose kustomization is someone else's: none of their files is touched, the
    // other kustomization may list them.
    let mut blocked_namespaces = BTreeSet::new();
    for (ns, group) in groups.into_iter().filter(|(_, g)| !g.files.is_empty()) {
        let rel = Path::new(&ns).join("kustomization.yaml");
        let ns_dir = inside(dir, &ns).and_then(|d| namespace_dir(dir, &d));
        let blocked = theirs(&rel)
            .map(|why| format!("{} is not rightsizer's ({why})", dir.join(&rel).display()))
            .or(ns_dir.err());
        if let Some(why) = blocked {
            report.kept.push((dir.join(&rel), why.clone()));
            blocked_namespaces.insert(ns.clone());
            for key in group.keys {
                report
                    .skipped
                    .push((key, format!("{why}: the patches of this namespace were not written")));
            }
            continue;
        }
        let namespace = &group.keys[0].namespace;
        let kustomization = json!({
            "apiVersion": "kustomize.config.k8s.io/v1alpha1",
            "kind": "Component",
            "patches": group.entries,
        });
        let body = format!(
            "# Resource patches of namespace {namespace}, one per workload, HPA patches beside them: a kustomize\n# Component. Add it under `components:` of the overlay that builds namespace {namespace}.\n# Targets match by kind and name in namespace {namespace}, or without a namespace (a base whose\n# overlay sets `namespace:`); see docs/patches.md.\n{}",
            to_yaml(&kustomization, "kustomization.yaml")?
        );
        for (file, text) in group.files {
            writes.push((dir.join(&ns).join(file), stamp(&text)));
        }
        writes.push((dir.join(&rel), stamp(&body)));
        components.push(ns);
    }
    let top = Path::new("kustomization.yaml");
    match theirs(top) {
        Some(why) => report.kept.push((
            dir.join(top),
            format!("not rightsizer's ({why}): left as it is; include the namespace directories directly"),
        )),
        None => {
            let kustomization = json!({
                "apiVersion": "kustomize.config.k8s.io/v1alpha1",
                "kind": "Component",
                "components": components,
            });
            let body = format!(
                "# The resource patches of every namespace, one Component per directory. Add this directory under\n# `components:` of an overlay whose base sets the namespaces, or one namespace directory per\n# overlay whose `namespace:` sets it; see docs/patches.md.\n{}",
                to_yaml(&kustomization, "kustomization.yaml")?
            );
            writes.push((dir.join(top), stamp(&body)));
        }
    }
    let wanted: BTreeSet<PathBuf> = writes.iter().map(|(p, _)| p.clone()).collect();
    let removes: Vec<PathBuf> = found
        .iter()
        .filter(|(rel, (owner, _))| {
            *owner == Owner::Ours && !wanted.contains(&dir.join(rel)) && !refused_files.contains(*rel)
        })
        .filter(|(rel, _)| {
            let ns = rel
                .components()
                .next()
                .map(|c| c.as_os_str().to_string_lossy().into_owned());
            !(rel.components().count() > 1 && ns.is_some_and(|ns| blocked_namespaces.contains(&ns)))
        })
        .map(|(rel, _)| dir.join(rel))
        .collect();
    report.files = writes.iter().map(|(p, _)| p.clone()).collect();
    // Files already holding their content are not written again (nor synced).
    writes.retain(|(path, text)| match found.get(path.strip_prefix(dir).unwrap_or(path)) {
        Some((Owner::Ours, old)) => old != text.as_bytes(),
        _ => true,
    });
    lock.commit(&writes, &removes).map_err(|(path, source)| Error::Write {
        path: path.display().to_string(),
        source,
    })?;
    for path in &removes {
        // A namespace directory left empty goes too (only an empty one can be removed).
        if let Some(ns) = path.parent().filter(|p| *p != dir) {
            let _ = std::fs::remove_dir(ns);
        }
    }
    report.removed = removes;
    drop(lock);
    Ok(report)
}

/// Creates the namespace directory `path` (one component under `dir`) unless it exists as a
/// directory, and checks that it resolves inside `dir` (no symlink out).
fn namespace_dir(dir: &Path, path: &Path) -> Result<(), String> {
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => return Err(format!("{} is not a directory", path.display())),
        Err(_) => std::fs::create_dir(path).map_err(|e| format!("cannot create {}: {e}", path.display()))?,
    }
    let (Ok(real), Ok(root)) = (std::fs::canonicalize(path), std::fs::canonicalize(dir)) else {
        return Err(format!("cannot resolve {}", path.display()));
    };
    if real.parent() != Some(root.as_path()) {
        return Err(format!("{} resolves outside {}", path.display(), dir.display()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_marker_tells_our_files_from_edited_and_foreign_ones() {
        let ours = stamp("kind: Component\n");
        assert_eq!(owner(ours.as_bytes()), Owner::Ours);
        let edited = ours.replace("Component", "Kustomization");
        assert_eq!(
            owner(edited.as_bytes()),
            Owner::Theirs("edited since rightsizer wrote it")
        );
        assert_eq!(
            owner(b"resources: [../base]\n"),
            Owner::Theirs("not written by rightsizer")
        );
        assert_eq!(owner(b"\xff\xfe"), Owner::Theirs("not written by rightsizer"));
    }

    #[test]
    fn file_names_are_plain_short_and_safe() {
        assert_eq!(safe_stem("deployment-web.v2"), "deployment-web.v2");
        for hostile in [
            "../../../../tmp/x",
            "/tmp/x",
            ".hidden",
            "a/b",
            &"a".repeat(10_000),
            "web\n",
            "",
        ] {
            let stem = safe_stem(hostile);
            assert!(stem.len() <= MAX_STEM, "{stem}");
            assert!(!stem.contains('/') && !stem.starts_with('.'), "{stem}");
            assert!(inside(Path::new("/out"), &format!("{stem}.yaml")).is_ok(), "{stem}");
        }
        assert_ne!(safe_stem(&"a".repeat(300)), safe_stem(&"a".repeat(301)));
        assert!(inside(Path::new("/out"), "..").is_err());
        assert!(inside(Path::new("/out"), "/tmp/x").is_err());
        assert!(inside(Path::new("/out"), "a/b").is_err());
    }
}
