//! The YAML files under a manifests directory, found without leaving it: hidden directories
//! are skipped; a symlink (to a file or a directory) is followed only when it resolves inside
//! the directory, and a file reached twice (through a link, or a link loop) is listed once;
//! only regular files are listed. Everything passed over that looked like a manifest is
//! reported with the reason, so the user knows what was not looked at.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

fn is_yaml(name: &str) -> bool {
    name.ends_with(".yaml") || name.ends_with(".yml")
}

struct Walk<'a> {
    /// The directory, resolved: every path followed must stay under it.
    root: PathBuf,
    /// The directory as given: listed paths are under it, as the user wrote it.
    shown: &'a Path,
    dirs: HashSet<PathBuf>,
    files: HashSet<PathBuf>,
    out: Vec<PathBuf>,
    left: &'a mut Vec<(PathBuf, String)>,
}

impl Walk<'_> {
    /// `real` (resolved, under the root) as the user would name it: under the given directory.
    fn shown(&self, real: &Path) -> PathBuf {
        real.strip_prefix(&self.root)
            .map_or_else(|_| real.to_path_buf(), |rel| self.shown.join(rel))
    }

    fn dir(&mut self, real: PathBuf) -> std::io::Result<()> {
        if !self.dirs.insert(real.clone()) {
            return Ok(());
        }
        let mut entries: Vec<_> = std::fs::read_dir(&real)?.collect::<Result<_, _>>()?;
        entries.sort_by_key(|e| e.file_name());
        for entry in entries {
            let name = entry.file_name().to_string_lossy().into_owned();
            let path = real.join(&name);
            let kind = entry.file_type()?;
            if kind.is_dir() {
                if !name.starts_with('.') {
                    self.dir(path)?;
                }
            } else if kind.is_symlink() {
                self.link(&path, &name)?;
            } else if is_yaml(&name) {
                if kind.is_file() {
                    self.file(path);
                } else {
                    self.left
                        .push((self.shown(&path), "not a regular file: left as it is".into()));
                }
            }
        }
        Ok(())
    }

    fn link(&mut self, path: &Path, name: &str) -> std::io::Result<()> {
        let shown = self.shown(path);
        let real = match std::fs::canonicalize(path) {
            Ok(real) => real,
            Err(e) => {
                if is_yaml(name) {
                    self.left
                        .push((shown, format!("a symlink that does not resolve ({e}): left as it is")));
                }
                return Ok(());
            }
        };
        let meta = std::fs::metadata(&real)?;
        if !meta.is_dir() && !is_yaml(name) {
            return Ok(());
        }
        if !real.starts_with(&self.root) {
            self.left.push((
                shown,
                format!("a symlink to {}, outside the directory: left as it is", real.display()),
            ));
            return Ok(());
        }
        if meta.is_dir() {
            if !name.starts_with('.') {
                self.dir(real)?;
            }
        } else if meta.is_file() {
            self.file(real);
        } else {
            self.left.push((shown, "not a regular file: left as it is".into()));
        }
        Ok(())
    }

    /// A regular file, by its resolved path: edits go to the file itself, never over a link.
    fn file(&mut self, real: PathBuf) {
        if self.files.insert(real.clone()) {
            let shown = self.shown(&real);
            self.out.push(shown);
        }
    }
}

/// The YAML files under `dir`, sorted, each once, as paths under `dir` that name the files
/// themselves (no symlink on the way); what was passed over goes to `left`.
pub(super) fn yaml_files(dir: &Path, left: &mut Vec<(PathBuf, String)>) -> std::io::Result<Vec<PathBuf>> {
    let root = std::fs::canonicalize(dir)?;
    let mut walk = Walk {
        root: root.clone(),
        shown: dir,
        dirs: HashSet::new(),
        files: HashSet::new(),
        out: Vec::new(),
        left,
    };
    walk.dir(root)?;
    let mut out = walk.out;
    out.sort();
    Ok(out)
}
