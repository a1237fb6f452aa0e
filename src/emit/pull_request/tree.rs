//! The repository side of a pull-request run, without the network: the files under the path
//! read from the provider's archive (bounded), the private working copy the engines edit,
//! the changes against the download, and the trailers that mark rightsizer's own commits.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Component, Path, PathBuf};

/// The head commit of a branch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    pub sha: String,
    /// The commit's tree (GitHub's `base_tree`; empty for GitLab, which does not need it).
    pub tree: String,
    pub message: String,
    pub parents: Vec<String>,
}

/// One file of the repository.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct File {
    pub bytes: Vec<u8>,
    pub executable: bool,
}

/// Files by path relative to the repository root.
pub type Files = BTreeMap<String, File>;

/// One file the commit writes (`content`) or deletes (`None`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub path: String,
    pub content: Option<Vec<u8>>,
    pub executable: bool,
    /// The file is in the base commit (GitLab's `update` against `create`).
    pub existed: bool,
}

impl Change {
    /// The new content as text (both APIs take commits' file contents as strings), `None`
    /// for a deletion; a file that is not UTF-8 is an error.
    pub fn text(&self) -> Result<Option<&str>, super::http::Fail> {
        self.content
            .as_deref()
            .map(|bytes| {
                std::str::from_utf8(bytes)
                    .map_err(|_| super::http::Fail(format!("{} is not UTF-8 text: not committed", self.path)))
            })
            .transpose()
    }
}

/// Bounds of one archive read.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Files kept under the path.
    pub files: usize,
    /// Bytes kept under the path.
    pub bytes: u64,
    /// Bytes of the whole archive decompressed (GitHub's tarball is the whole repository).
    pub scanned: u64,
}

impl Default for Limits {
    /// 10,000 files and 64 MiB of manifests are far above a real manifests directory; 4 GiB
    /// of repository stops a runaway download.
    fn default() -> Self {
        Limits {
            files: 10_000,
            bytes: 64 << 20,
            scanned: 4 << 30,
        }
    }
}

/// The regular files under `path` in a tar.gz archive whose entries all sit under one top
/// directory (`owner-repo-sha/` on GitHub, `project-sha/` on GitLab), that component
/// stripped. Links, directories and pax headers are skipped; an entry that would leave the
/// tree is an error.
pub fn extract(archive: impl Read, path: &str, limits: &Limits) -> Result<Files, String> {
    let gz = flate2::read::GzDecoder::new(archive);
    let mut tar = tar::Archive::new(gz);
    let mut files = Files::new();
    let (mut kept, mut scanned) = (0u64, 0u64);
    let entries = tar.entries().map_err(|e| format!("not a tar.gz archive: {e}"))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| format!("unreadable archive entry: {e}"))?;
        let size = entry.header().size().unwrap_or(0);
        scanned = scanned.saturating_add(size);
        if scanned > limits.scanned {
            return Err(format!(
                "the repository is larger than {} MiB decompressed: too large to read",
                limits.scanned >> 20
            ));
        }
        if !entry.header().entry_type().is_file() {
            continue;
        }
        let name = entry.path().map_err(|e| format!("unreadable entry name: {e}"))?;
        let mut parts = name.components();
        parts.next();
        let mut rel = Vec::new();
        for part in parts {
            match part {
                Component::Normal(p) => match p.to_str() {
                    Some(p) => rel.push(p.to_string()),
                    None => {
                        rel.clear();
                        break;
                    }
                },
                Component::CurDir => {}
                _ => return Err(format!("entry {} leaves the archive's directory", name.display())),
            }
        }
        let rel = rel.join("/");
        if rel.is_empty() || !under(&rel, path) {
            continue;
        }
        if files.len() >= limits.files {
            return Err(format!(
                "more than {} files under {path:?}: narrow outputs.pullRequest.path",
                limits.files
            ));
        }
        kept = kept.saturating_add(size);
        if kept > limits.bytes {
            return Err(format!(
                "more than {} MiB of files under {path:?}: narrow outputs.pullRequest.path",
                limits.bytes >> 20
            ));
        }
        let executable = entry.header().mode().is_ok_and(|m| m & 0o111 != 0);
        let mut bytes = Vec::with_capacity(size as usize);
        entry
            .by_ref()
            .take(size)
            .read_to_end(&mut bytes)
            .map_err(|e| format!("entry {rel}: {e}"))?;
        files.insert(rel, File { bytes, executable });
    }
    Ok(files)
}

/// Whether repository path `file` is under directory `dir` (empty = the root).
pub fn under(file: &str, dir: &str) -> bool {
    dir.is_empty() || file.strip_prefix(dir).is_some_and(|rest| rest.starts_with('/'))
}

/// A private directory (mode 0700, under `TMPDIR` or `/tmp`) removed when dropped: the
/// downloaded archive (`archive.tar.gz`) and the working copy of the files (`tree/`).
pub struct Scratch {
    root: PathBuf,
    tree: PathBuf,
}

impl Scratch {
    pub fn new() -> std::io::Result<Scratch> {
        use std::os::unix::fs::DirBuilderExt;
        use std::sync::atomic::{AtomicU64, Ordering};
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let root = std::env::temp_dir().join(format!(
            "rightsizer-pr-{}-{}-{nanos}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::DirBuilder::new().mode(0o700).create(&root)?;
        let tree = root.join("tree");
        let scratch = Scratch { root, tree };
        std::fs::create_dir(&scratch.tree)?;
        Ok(scratch)
    }

    fn archive_path(&self) -> PathBuf {
        self.root.join("archive.tar.gz")
    }

    /// The (empty) file the archive is downloaded into.
    pub fn archive(&self) -> std::io::Result<std::fs::File> {
        use std::os::unix::fs::OpenOptionsExt;
        std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(self.archive_path())
    }

    /// The files under `path` in the downloaded archive ([`extract`]); the archive is
    /// removed after.
    pub fn read_archive(&self, path: &str, limits: &Limits) -> Result<Files, String> {
        let file = std::fs::File::open(self.archive_path()).map_err(|e| e.to_string())?;
        let files = extract(std::io::BufReader::new(file), path, limits);
        let _ = std::fs::remove_file(self.archive_path());
        files
    }

    /// Writes `files` into the working copy.
    pub fn fill(&self, files: &Files) -> std::io::Result<()> {
        for (path, file) in files {
            let target = self.tree.join(path);
            std::fs::create_dir_all(crate::atomic::parent(&target))?;
            std::fs::write(&target, &file.bytes)?;
        }
        Ok(())
    }

    /// The working directory of repository path `path`, created when missing.
    pub fn dir(&self, path: &str) -> PathBuf {
        let dir = self.tree.join(path);
        let _ = std::fs::create_dir_all(&dir);
        dir
    }

    /// `path` relative to the repository root, for messages.
    pub fn relative(&self, path: &Path) -> String {
        path.strip_prefix(&self.tree).unwrap_or(path).display().to_string()
    }

    /// The files under `path` that differ from `base`: written (new or changed content) or
    /// deleted, sorted by path.
    pub fn changes(&self, base: &Files, path: &str) -> std::io::Result<Vec<Change>> {
        let mut now = BTreeMap::new();
        collect(&self.tree, &self.tree.join(path), &mut now)?;
        let mut out = Vec::new();
        for (p, bytes) in &now {
            match base.get(p) {
                Some(old) if &old.bytes == bytes => {}
                old => out.push(Change {
                    path: p.clone(),
                    content: Some(bytes.clone()),
                    executable: old.is_some_and(|o| o.executable),
                    existed: old.is_some(),
                }),
            }
        }
        for (p, old) in base {
            if under(p, path) && !now.contains_key(p) {
                out.push(Change {
                    path: p.clone(),
                    content: None,
                    executable: old.executable,
                    existed: true,
                });
            }
        }
        out.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(out)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

fn collect(root: &Path, dir: &Path, out: &mut BTreeMap<String, Vec<u8>>) -> std::io::Result<()> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Ok(());
    };
    for entry in entries {
        let entry = entry?;
        let name = entry.file_name();
        if name.to_string_lossy().starts_with(crate::atomic::STAGING_PREFIX) {
            continue;
        }
        let kind = entry.file_type()?;
        let path = entry.path();
        if kind.is_dir() {
            collect(root, &path, out)?;
        } else if kind.is_file() {
            let rel = path.strip_prefix(root).unwrap_or(&path);
            let rel: Vec<String> = rel
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect();
            out.insert(rel.join("/"), std::fs::read(&path)?);
        }
    }
    Ok(())
}

/// FNV-1a, 64 bits: stable across Rust versions and machines (std's `DefaultHasher` is not),
/// which is what a hash written into a commit and compared a run later needs.
fn fnv(h: u64, bytes: &[u8]) -> u64 {
    bytes
        .iter()
        .fold(h, |h, b| (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3))
}

/// The hash of a set of changes: paths, contents and deletions, in path order.
pub fn content_hash(changes: &[Change]) -> String {
    let mut h = 0xcbf2_9ce4_8422_2325;
    for c in changes {
        h = fnv(h, c.path.as_bytes());
        match &c.content {
            Some(bytes) => {
                h = fnv(h, &[0, 1]);
                h = fnv(h, &(bytes.len() as u64).to_le_bytes());
                h = fnv(h, bytes);
            }
            None => h = fnv(h, &[0, 0]),
        }
    }
    format!("{h:016x}")
}

pub const BASE_TRAILER: &str = "Rightsizer-Base";
pub const CONTENT_TRAILER: &str = "Rightsizer-Content";

/// What the trailers of one of rightsizer's commits say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trailers {
    pub base: String,
    pub content: String,
}

/// The trailers of `head` when it is rightsizer's: both trailers present, and one parent,
/// the base the trailer names. `None` means someone else committed.
pub fn trailers(head: &Head) -> Option<Trailers> {
    let value = |key: &str| {
        head.message.lines().rev().find_map(|l| {
            l.trim()
                .strip_prefix(key)
                .and_then(|r| r.strip_prefix(':'))
                .map(|v| v.trim().to_string())
        })
    };
    let t = Trailers {
        base: value(BASE_TRAILER)?,
        content: value(CONTENT_TRAILER)?,
    };
    (head.parents.len() == 1 && head.parents[0] == t.base).then_some(t)
}

/// The message of the commit: what it does, the files, then the trailers.
pub fn commit_message(changes: &[Change], base: &str, hash: &str, workloads: usize) -> String {
    let mut m = format!(
        "Right-size CPU and memory requests ({} file{}, {workloads} workload{} with a change)\n\n",
        changes.len(),
        if changes.len() == 1 { "" } else { "s" },
        if workloads == 1 { "" } else { "s" }
    );
    for c in changes.iter().take(50) {
        let verb = if c.content.is_none() { "delete" } else { "update" };
        m.push_str(&format!("- {verb} {}\n", c.path));
    }
    if changes.len() > 50 {
        m.push_str(&format!("- and {} more\n", changes.len() - 50));
    }
    m.push_str(&format!("\n{BASE_TRAILER}: {base}\n{CONTENT_TRAILER}: {hash}\n"));
    m
}

#[cfg(test)]
mod tests;
