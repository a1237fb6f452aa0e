//! The lookups behind the matching rule of the module docs, built once per run: every document
//! of every file by its identity, and the names that changed workloads (and their HPAs) share
//! across namespaces. Each change then costs a few hash lookups instead of a walk over every
//! document and every other change, so an edit takes time linear in documents plus changes.

use std::collections::{HashMap, HashSet};
use std::hash::Hash;

use super::File;
use super::tree::{Document, Node};
use crate::emit::change::WorkloadChange;
use crate::model::{WorkloadKey, WorkloadKind};

/// `(group, kind, name, namespace)` of a document; an empty namespace counts as none.
type Identity<'a> = (&'a str, &'a str, &'a str, Option<&'a str>);

fn identity(doc: &Document) -> Option<Identity<'_>> {
    let root = &doc.root;
    let api_version = root.get("apiVersion")?.as_str()?;
    let group = api_version.rsplit_once('/').map_or("", |(g, _)| g);
    let kind = root.get("kind")?.as_str()?;
    let meta = root.get("metadata")?;
    let name = meta.get("name")?.as_str()?;
    let namespace = meta.get("namespace").and_then(Node::as_str).filter(|ns| !ns.is_empty());
    Some((group, kind, name, namespace))
}

/// Every document with an identity, as `(file, document)` indexes in file order, then
/// document order: the order the edits and their problems are reported in.
pub(super) struct Documents<'a> {
    /// Index into `lists` (not the list itself: a lookup with a shorter-lived key could
    /// then only lend the list for as long as the key lives).
    by_identity: HashMap<Identity<'a>, usize>,
    lists: Vec<Vec<(usize, usize)>>,
}

impl<'a> Documents<'a> {
    pub fn new(files: &'a [File]) -> Self {
        let mut by_identity = HashMap::new();
        let mut lists: Vec<Vec<(usize, usize)>> = Vec::new();
        for (f, file) in files.iter().enumerate() {
            for (d, doc) in file.docs.iter().enumerate() {
                if let Some(id) = identity(doc) {
                    let list = *by_identity.entry(id).or_insert_with(|| {
                        lists.push(Vec::new());
                        lists.len() - 1
                    });
                    lists[list].push((f, d));
                }
            }
        }
        Documents { by_identity, lists }
    }

    /// The documents that define `(group, kind, name)` in `namespace`, per the module's rule;
    /// `shared` when another changed object of another namespace has the same name.
    pub fn find(
        &self,
        files: &[File],
        (group, kind, name): (&str, &str, &str),
        namespace: &str,
        shared: bool,
    ) -> Result<&[(usize, usize)], String> {
        let docs = |namespace| {
            self.by_identity
                .get(&(group, kind, name, namespace))
                .map_or(&[][..], |&list| self.lists[list].as_slice())
        };
        let explicit = docs(Some(namespace));
        if !explicit.is_empty() {
            return Ok(explicit);
        }
        let implicit = docs(None);
        if implicit.len() > 1 || (implicit.len() == 1 && shared) {
            let where_: Vec<String> = implicit
                .iter()
                .map(|&(f, _)| files[f].path.display().to_string())
                .collect();
            let why = if shared {
                "another namespace's workload has the same name"
            } else {
                "several documents define it"
            };
            return Err(format!(
                "ambiguous: {why} without metadata.namespace ({}); set metadata.namespace to edit it",
                where_.join(", ")
            ));
        }
        Ok(implicit)
    }
}

/// The names more than one namespace uses among the changes: a workload's kind and name, an
/// HPA's name (of any workload kind).
pub(super) struct Shared<'a> {
    workloads: HashSet<(WorkloadKind, &'a str)>,
    hpas: HashSet<&'a str>,
}

/// Records that `namespace` uses `name`: `shared` gets every name a second namespace uses.
fn note<'a, K: Eq + Hash + Copy>(
    first: &mut HashMap<K, &'a str>,
    shared: &mut HashSet<K>,
    name: K,
    namespace: &'a str,
) {
    if *first.entry(name).or_insert(namespace) != namespace {
        shared.insert(name);
    }
}

impl<'a> Shared<'a> {
    /// Every change counts, empty ones and bare pods too: they are the workloads the run saw.
    pub fn new(changes: &'a [WorkloadChange]) -> Self {
        let (mut workloads, mut hpas) = (HashSet::new(), HashSet::new());
        let (mut first_workload, mut first_hpa) = (HashMap::new(), HashMap::new());
        for change in changes {
            let key = &change.key;
            let ns = key.namespace.as_str();
            note(&mut first_workload, &mut workloads, (key.kind, key.name.as_str()), ns);
            if let Some(h) = &change.hpa {
                note(&mut first_hpa, &mut hpas, h.name.as_str(), ns);
            }
        }
        Shared { workloads, hpas }
    }

    /// Whether a changed workload of another namespace has `key`'s kind and name.
    pub fn workload(&self, key: &WorkloadKey) -> bool {
        self.workloads.contains(&(key.kind, key.name.as_str()))
    }

    /// Whether HPAs of changed workloads in two namespaces or more are called `name` (the
    /// caller's own HPA is one of them).
    pub fn hpa(&self, name: &str) -> bool {
        self.hpas.contains(name)
    }
}
