//! The fake forge's repository: a content-addressed object store like git's (blobs, trees,
//! commits named by the SHA-1 of git's canonical encoding) plus branches. Trees are kept flat
//! (full path -> blob id); their ids are those git would give the nested tree objects.

use std::collections::{BTreeMap, HashMap};

use super::sha1::{self, object_id};

#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Person {
    pub name: String,
    pub email: String,
    /// Seconds since the epoch.
    pub time: i64,
}

impl Person {
    pub fn new(name: &str, email: &str, time: i64) -> Self {
        Person {
            name: name.into(),
            email: email.into(),
            time,
        }
    }

    /// RFC 3339 in UTC, as both APIs write dates.
    pub fn date(&self) -> String {
        iso_date(self.time)
    }
}

pub(super) fn iso_date(time: i64) -> String {
    k8s_openapi::jiff::Timestamp::from_second(time)
        .map(|t| t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string())
        .unwrap_or_default()
}

pub(super) fn now() -> i64 {
    k8s_openapi::jiff::Timestamp::now().as_second()
}

#[derive(Clone, Debug)]
pub(super) struct StoredCommit {
    pub sha: String,
    pub tree: String,
    pub parents: Vec<String>,
    pub message: String,
    pub author: Person,
    pub committer: Person,
}

impl StoredCommit {
    /// The first line of the message.
    pub fn title(&self) -> &str {
        self.message.lines().next().unwrap_or("")
    }
}

/// Flat tree: path -> blob id.
pub(super) type Tree = BTreeMap<String, String>;

#[derive(Debug)]
pub(super) struct Repo {
    pub blobs: HashMap<String, Vec<u8>>,
    pub trees: HashMap<String, Tree>,
    pub commits: HashMap<String, StoredCommit>,
    pub branches: BTreeMap<String, String>,
    pub default_branch: String,
}

impl Repo {
    pub fn new() -> Self {
        let mut repo = Repo {
            blobs: HashMap::new(),
            trees: HashMap::new(),
            commits: HashMap::new(),
            branches: BTreeMap::new(),
            default_branch: "main".into(),
        };
        repo.put_tree(Tree::new());
        repo
    }

    pub fn put_blob(&mut self, bytes: &[u8]) -> String {
        let sha = object_id("blob", bytes);
        self.blobs.entry(sha.clone()).or_insert_with(|| bytes.to_vec());
        sha
    }

    /// Stores a flat tree and returns the id git gives its root tree object.
    pub fn put_tree(&mut self, tree: Tree) -> String {
        let sha = tree_id(&tree);
        self.trees.entry(sha.clone()).or_insert(tree);
        sha
    }

    pub fn put_commit(
        &mut self,
        tree: &str,
        parents: Vec<String>,
        message: &str,
        author: Person,
        committer: Person,
    ) -> String {
        let mut body = format!("tree {tree}\n");
        for parent in &parents {
            body.push_str(&format!("parent {parent}\n"));
        }
        for (role, who) in [("author", &author), ("committer", &committer)] {
            body.push_str(&format!("{role} {} <{}> {} +0000\n", who.name, who.email, who.time));
        }
        body.push('\n');
        body.push_str(message);
        let sha = object_id("commit", body.as_bytes());
        self.commits.insert(
            sha.clone(),
            StoredCommit {
                sha: sha.clone(),
                tree: tree.into(),
                parents,
                message: message.into(),
                author,
                committer,
            },
        );
        sha
    }

    /// A branch name or a full commit id (GitHub and GitLab also take abbreviated ids; seven
    /// or more hex digits are accepted when unambiguous).
    pub fn resolve(&self, reference: &str) -> Option<String> {
        if let Some(sha) = self.branches.get(reference) {
            return Some(sha.clone());
        }
        let reference = reference.strip_prefix("refs/heads/").unwrap_or(reference);
        if let Some(sha) = self.branches.get(reference) {
            return Some(sha.clone());
        }
        if reference.len() >= 7 && reference.chars().all(|c| c.is_ascii_hexdigit()) {
            let lower = reference.to_ascii_lowercase();
            let mut found = self.commits.keys().filter(|sha| sha.starts_with(&lower));
            if let (Some(sha), None) = (found.next(), found.next()) {
                return Some(sha.clone());
            }
        }
        None
    }

    pub fn commit(&self, sha: &str) -> Option<&StoredCommit> {
        self.commits.get(sha)
    }

    /// The files of a commit: path -> bytes.
    pub fn files_at(&self, sha: &str) -> BTreeMap<String, Vec<u8>> {
        let Some(commit) = self.commits.get(sha) else {
            return BTreeMap::new();
        };
        self.trees
            .get(&commit.tree)
            .map(|tree| {
                tree.iter()
                    .map(|(path, blob)| (path.clone(), self.blobs.get(blob).cloned().unwrap_or_default()))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Whether `ancestor` is `descendant` or one of its ancestors.
    pub fn is_ancestor(&self, ancestor: &str, descendant: &str) -> bool {
        let mut stack = vec![descendant.to_string()];
        let mut seen = std::collections::HashSet::new();
        while let Some(sha) = stack.pop() {
            if sha == ancestor {
                return true;
            }
            if seen.insert(sha.clone())
                && let Some(commit) = self.commits.get(&sha)
            {
                stack.extend(commit.parents.iter().cloned());
            }
        }
        false
    }

    /// The commits reachable from `head`, newest first (by time, then by walk order).
    pub fn history(&self, head: &str) -> Vec<StoredCommit> {
        let mut out: Vec<StoredCommit> = Vec::new();
        let mut stack = vec![head.to_string()];
        let mut seen = std::collections::HashSet::new();
        while let Some(sha) = stack.pop() {
            if !seen.insert(sha.clone()) {
                continue;
            }
            if let Some(commit) = self.commits.get(&sha) {
                stack.extend(commit.parents.iter().rev().cloned());
                out.push(commit.clone());
            }
        }
        out
    }

    /// Commits on `head` that are not on `base` (what a pull request would show).
    pub fn commits_between(&self, base: &str, head: &str) -> usize {
        let base_set: std::collections::HashSet<String> = self.history(base).into_iter().map(|c| c.sha).collect();
        self.history(head).iter().filter(|c| !base_set.contains(&c.sha)).count()
    }
}

/// The id of the root tree git would write for these files (all mode 100644), built from the
/// nested tree objects: entries sorted by name, a directory compared as `name/`.
pub(super) fn tree_id(tree: &Tree) -> String {
    #[derive(Default)]
    struct Dir {
        files: BTreeMap<String, String>,
        dirs: BTreeMap<String, Dir>,
    }
    fn insert(dir: &mut Dir, parts: &[&str], blob: &str) {
        match parts {
            [name] => {
                dir.files.insert((*name).to_string(), blob.to_string());
            }
            [name, rest @ ..] => insert(dir.dirs.entry((*name).to_string()).or_default(), rest, blob),
            [] => {}
        }
    }
    fn hash(dir: &Dir) -> [u8; 20] {
        let mut entries: Vec<(String, Vec<u8>)> = Vec::new();
        for (name, blob) in &dir.files {
            let mut e = format!("100644 {name}\0").into_bytes();
            e.extend_from_slice(&unhex(blob));
            entries.push((name.clone(), e));
        }
        for (name, sub) in &dir.dirs {
            let mut e = format!("40000 {name}\0").into_bytes();
            e.extend_from_slice(&hash(sub));
            entries.push((format!("{name}/"), e));
        }
        entries.sort_by(|a, b| a.0.cmp(&b.0));
        let body: Vec<u8> = entries.into_iter().flat_map(|(_, e)| e).collect();
        let mut data = format!("tree {}\0", body.len()).into_bytes();
        data.extend_from_slice(&body);
        sha1::digest(&data)
    }
    let mut root = Dir::default();
    for (path, blob) in tree {
        let parts: Vec<&str> = path.split('/').collect();
        insert(&mut root, &parts, blob);
    }
    sha1::hex(&hash(&root))
}

fn unhex(hex: &str) -> Vec<u8> {
    (0..hex.len() / 2)
        .map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap_or(0))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tree_ids_match_git() {
        // `git mktree` of nothing is git's well-known empty tree.
        assert_eq!(tree_id(&Tree::new()), "4b825dc642cb6eb9a060e54bf8d69288fbee4904");
        // A repository holding only `hello.txt` = "hello\n": `git write-tree` gives this id.
        let mut repo = Repo::new();
        let blob = repo.put_blob(b"hello\n");
        let tree: Tree = [("hello.txt".to_string(), blob)].into();
        assert_eq!(tree_id(&tree), "aaa96ced2d9a1c8e72c56b253a0e2fe78393feb7");
        // Nested, and `a.txt` sorting before the directory `a` (compared as `a/`).
        let tree: Tree = [
            ("hello.txt".to_string(), repo.put_blob(b"hello\n")),
            ("a.txt".to_string(), repo.put_blob(b"y\n")),
            ("a/b/c.yaml".to_string(), repo.put_blob(b"x\n")),
        ]
        .into();
        assert_eq!(tree_id(&tree), "8131fbb14299d90d27837d85e17e9fd0fc19b811");
    }
}
