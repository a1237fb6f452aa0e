//! Atomic file writes: every file rightsizer writes appears whole or not at all, even when
//! the run is killed half-way.
//!
//! [`write()`] writes one file (a report, a snapshot); [`write_many`] writes a set of them (the
//! patch files, the edited manifests) with the same guarantee for each file, but syncs the
//! whole set in one parallel pass instead of one file after the other: written one by one,
//! 11,000 patch files spent 95 % of their time waiting for their syncs.

use std::collections::HashSet;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Files synced at the same time by [`write_many`]. Syncs that run together share the file
/// system's journal commits and the disk's cache flushes: syncing 11,000 freshly written
/// 600-byte files on ext4 over virtio took 2.2 s one after the other, 0.9 s 4 at a time,
/// 0.35 s 16 at a time, 0.27 s 32 at a time and 0.25 s 64 at a time. The threads wait on the
/// disk, not on a core.
const SYNC_THREADS: usize = 32;

/// The directory `path` is in (`.` for a bare file name).
fn parent(path: &Path) -> &Path {
    match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    }
}

/// `.<name>.<pid><tag>.tmp` beside `path`: hidden, and unique to this process.
fn temp_path(path: &Path, tag: &str) -> std::io::Result<PathBuf> {
    let name = path
        .file_name()
        .ok_or_else(|| std::io::Error::other("path has no file name"))?;
    Ok(parent(path).join(format!(".{}.{}{tag}.tmp", name.to_string_lossy(), std::process::id())))
}

/// Writes `bytes` to a temporary file beside `path`, syncs it, then renames it over `path`.
pub fn write(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = temp_path(path, "")?;
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// Writes every `(path, bytes)` of `files`: all of them to temporary files beside their paths
/// (`.<name>.<pid>-<n>.tmp`), then syncs them all, many at a time, renames them
/// over their paths in the order given, and last syncs each directory the files are in, once.
///
/// What a crash (power loss, kernel panic) at any point leaves: every path holds its previous
/// content or its whole new content, never a part of either, because a file's data is on disk
/// before it is renamed. Once `write_many` has returned `Ok`, the new contents are on disk for
/// good (their renames too, which [`write()`] leaves to the file system). The set is not atomic
/// as a whole: after a crash before it returns, any mix of old and new files is possible, and
/// temporary files may be left behind. A run that is killed (not a crash) changes no path until
/// every file is written and synced, then only a prefix of them in the order given: a file
/// that lists the others (`kustomization.yaml`) goes last. A path given twice gets its last
/// content, as writing the files one by one would leave it.
///
/// On an error, the path of the first file (or directory) that could not be written, synced or
/// renamed, with the error. The temporary files not yet renamed are removed; the files already
/// renamed stay renamed.
pub fn write_many<B: AsRef<[u8]>>(files: &[(PathBuf, B)]) -> Result<(), (PathBuf, std::io::Error)> {
    let fail = |i: usize| move |e: std::io::Error| (files[i].0.clone(), e);
    let mut temps = Vec::with_capacity(files.len());
    for (i, (path, _)) in files.iter().enumerate() {
        temps.push(temp_path(path, &format!("-{i}")).map_err(fail(i))?);
    }
    let mut renamed = 0;
    let result = (|| {
        for (i, ((_, bytes), tmp)) in files.iter().zip(&temps).enumerate() {
            std::fs::write(tmp, bytes).map_err(fail(i))?;
        }
        sync_files(&temps).map_err(|(i, e)| fail(i)(e))?;
        for (i, ((path, _), tmp)) in files.iter().zip(&temps).enumerate() {
            std::fs::rename(tmp, path).map_err(fail(i))?;
            renamed += 1;
        }
        Ok(())
    })();
    if result.is_err() {
        for tmp in &temps[renamed..] {
            let _ = std::fs::remove_file(tmp);
        }
    }
    result?;
    let mut synced = HashSet::new();
    for (path, _) in files {
        let dir = parent(path);
        if synced.insert(dir) {
            sync_dir(dir).map_err(|e| (dir.to_path_buf(), e))?;
        }
    }
    Ok(())
}

/// Syncs the files at `paths`, [`SYNC_THREADS`] at a time; on an error, the index of the
/// first file (in `paths` order) that failed.
fn sync_files(paths: &[PathBuf]) -> Result<(), (usize, std::io::Error)> {
    // Syncing through a new handle syncs the file, whichever handle wrote it; write access is
    // what some systems (Windows) require to flush a file.
    let sync = |from: usize, chunk: &[PathBuf]| {
        chunk.iter().enumerate().try_for_each(|(i, path)| {
            std::fs::OpenOptions::new()
                .write(true)
                .open(path)
                .and_then(|f| f.sync_all())
                .map_err(|e| (from + i, e))
        })
    };
    if paths.len() <= 1 {
        return sync(0, paths);
    }
    let size = paths.len().div_ceil(SYNC_THREADS);
    std::thread::scope(|s| {
        let threads: Vec<_> = paths
            .chunks(size)
            .enumerate()
            .map(|(n, chunk)| s.spawn(move || sync(n * size, chunk)))
            .collect();
        let results: Vec<_> = threads
            .into_iter()
            .map(|t| t.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic)))
            .collect();
        results.into_iter().collect()
    })
}

/// Makes the renames in `dir` durable.
#[cfg(unix)]
fn sync_dir(dir: &Path) -> std::io::Result<()> {
    match std::fs::File::open(dir).and_then(|d| d.sync_all()) {
        // A few file systems cannot sync a directory (EINVAL): their renames are as durable as
        // they get.
        Err(e) if e.kind() == std::io::ErrorKind::InvalidInput => Ok(()),
        result => result,
    }
}

/// Elsewhere a directory cannot be opened as a file to sync it; the renames are left to the
/// file system, as [`write()`] leaves them.
#[cfg(not(unix))]
fn sync_dir(_: &Path) -> std::io::Result<()> {
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(path: &Path) -> String {
        std::fs::read_to_string(path).unwrap()
    }

    /// Names in `dir`, sorted: no temporary file may stay behind.
    fn names(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn write_many_writes_every_file_and_leaves_no_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        let sub = dir.path().join("sub");
        std::fs::create_dir(&sub).unwrap();
        std::fs::write(dir.path().join("old.yaml"), "old").unwrap();
        let mut files: Vec<(PathBuf, String)> = (0..40)
            .map(|i| (dir.path().join(format!("f{i:02}.yaml")), format!("file {i}\n")))
            .collect();
        files.push((dir.path().join("old.yaml"), "new".into()));
        files.push((sub.join("a.yaml"), "first".into()));
        files.push((sub.join("a.yaml"), "last".into()));
        write_many(&files).unwrap();
        assert_eq!(read(&dir.path().join("f07.yaml")), "file 7\n");
        assert_eq!(read(&dir.path().join("old.yaml")), "new");
        assert_eq!(
            read(&sub.join("a.yaml")),
            "last",
            "a path given twice gets its last content"
        );
        assert_eq!(names(dir.path()).len(), 42, "{:?}", names(dir.path()));
        assert_eq!(names(&sub), ["a.yaml"]);
        write_many::<&str>(&[]).unwrap();
    }

    #[test]
    fn write_many_names_the_failing_path_and_removes_its_temporary_files() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing/b.yaml");
        let files = [
            (dir.path().join("a.yaml"), "a"),
            (missing.clone(), "b"),
            (dir.path().join("c.yaml"), "c"),
        ];
        let (path, _) = write_many(&files).unwrap_err();
        assert_eq!(path, missing);
        assert!(names(dir.path()).is_empty(), "{:?}", names(dir.path()));
    }
}
