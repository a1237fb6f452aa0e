use std::os::unix::fs::{MetadataExt, PermissionsExt};

use super::*;

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap()
}

/// Names in `dir`, sorted, hidden ones included: no temporary file may stay behind.
fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

fn commit<B: AsRef<[u8]>>(dir: &Path, files: &[(PathBuf, B)]) -> Result<(), (PathBuf, std::io::Error)> {
    DirLock::acquire(dir).unwrap().commit(files, &[])
}

#[test]
fn commit_writes_every_file_and_leaves_no_temporary_file() {
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
    commit(dir.path(), &files).unwrap();
    assert_eq!(read(&dir.path().join("f07.yaml")), "file 7\n");
    assert_eq!(read(&dir.path().join("old.yaml")), "new");
    assert_eq!(
        read(&sub.join("a.yaml")),
        "last",
        "a path given twice gets its last content"
    );
    assert_eq!(names(dir.path()).len(), 42, "{:?}", names(dir.path()));
    assert_eq!(names(&sub), ["a.yaml"]);
    commit::<&str>(dir.path(), &[]).unwrap();
}

#[test]
fn a_failed_commit_leaves_every_path_as_it_was() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a.yaml");
    std::fs::write(&a, "old a").unwrap();
    let gone = dir.path().join("gone.yaml");
    std::fs::write(&gone, "stays").unwrap();
    let missing = dir.path().join("missing/b.yaml");
    let files = [
        (a.clone(), "new a"),
        (dir.path().join("c.yaml"), "c"),
        (missing.clone(), "b"),
    ];
    let (path, _) = DirLock::acquire(dir.path())
        .unwrap()
        .commit(&files, std::slice::from_ref(&gone))
        .unwrap_err();
    assert_eq!(path, missing);
    assert_eq!(read(&a), "old a", "the rename already done is undone");
    assert_eq!(read(&gone), "stays");
    assert_eq!(names(dir.path()), ["a.yaml", "gone.yaml"]);
}

#[test]
fn commit_removes_files_with_the_set() {
    let dir = tempfile::tempdir().unwrap();
    let stale = dir.path().join("stale.yaml");
    std::fs::write(&stale, "x").unwrap();
    DirLock::acquire(dir.path())
        .unwrap()
        .commit(&[(dir.path().join("k.yaml"), "k")], &[stale])
        .unwrap();
    assert_eq!(names(dir.path()), ["k.yaml"]);
}

#[test]
fn writes_keep_the_mode_and_refuse_read_only_and_hard_linked_files() {
    let dir = tempfile::tempdir().unwrap();
    let private = dir.path().join("private.yaml");
    std::fs::write(&private, "old").unwrap();
    std::fs::set_permissions(&private, std::fs::Permissions::from_mode(0o600)).unwrap();
    write(&private, b"new").unwrap();
    assert_eq!(read(&private), "new");
    let mode = std::fs::metadata(&private).unwrap().mode() & 0o7777;
    assert_eq!(mode, 0o600, "a private file stays private: {mode:o}");

    let frozen = dir.path().join("frozen.yaml");
    std::fs::write(&frozen, "old").unwrap();
    std::fs::set_permissions(&frozen, std::fs::Permissions::from_mode(0o444)).unwrap();
    let err = write(&frozen, b"new").unwrap_err();
    assert!(err.to_string().contains("read-only"), "{err}");
    assert_eq!(read(&frozen), "old");
    assert_eq!(std::fs::metadata(&frozen).unwrap().mode() & 0o7777, 0o444);

    let linked = dir.path().join("linked.yaml");
    std::fs::write(&linked, "old").unwrap();
    std::fs::hard_link(&linked, dir.path().join("other-name.yaml")).unwrap();
    let err = write(&linked, b"new").unwrap_err();
    assert!(err.to_string().contains("hard links"), "{err}");
    assert_eq!(read(&dir.path().join("other-name.yaml")), "old");
    assert!(
        !names(dir.path()).iter().any(|n| n.starts_with('.')),
        "{:?}",
        names(dir.path())
    );
}

#[test]
fn writes_keep_the_owner_when_this_process_may_set_it() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("owned.yaml");
    std::fs::write(&file, "old").unwrap();
    if std::os::unix::fs::chown(&file, Some(4321), Some(4321)).is_err() {
        // Not root: a file of another owner must be refused, not taken over.
        return;
    }
    write(&file, b"new").unwrap();
    let meta = std::fs::metadata(&file).unwrap();
    assert_eq!((meta.uid(), meta.gid()), (4321, 4321));
    assert_eq!(read(&file), "new");
}

#[test]
fn a_symlink_is_written_through_and_stays_a_symlink() {
    let dir = tempfile::tempdir().unwrap();
    let real = dir.path().join("real.json");
    std::fs::write(&real, "old").unwrap();
    let link = dir.path().join("link.json");
    std::os::unix::fs::symlink("real.json", &link).unwrap();
    write(&link, b"new").unwrap();
    assert!(std::fs::symlink_metadata(&link).unwrap().file_type().is_symlink());
    assert_eq!(read(&real), "new");
}

#[test]
fn devices_and_fifos_are_written_in_place() {
    // /dev/null stays a character device (as root it used to be replaced by a regular file).
    write(Path::new("/dev/null"), b"report").unwrap();
    let meta = std::fs::symlink_metadata("/dev/null").unwrap();
    assert!(!meta.is_file());

    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("out.fifo");
    let status = std::process::Command::new("mkfifo").arg(&fifo).status().unwrap();
    assert!(status.success());
    let reader = {
        let fifo = fifo.clone();
        std::thread::spawn(move || std::fs::read_to_string(fifo).unwrap())
    };
    write(&fifo, b"through the fifo").unwrap();
    assert_eq!(reader.join().unwrap(), "through the fifo");
    assert!(!std::fs::symlink_metadata(&fifo).unwrap().is_file());
}

#[test]
fn read_regular_refuses_a_fifo_without_blocking() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("trap.yaml");
    assert!(
        std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success()
    );
    let err = read_regular(&fifo).unwrap_err();
    assert!(err.to_string().contains("not a regular file"), "{err}");
}

#[test]
fn a_second_lock_waits_and_stale_staging_directories_are_removed() {
    let dir = tempfile::tempdir().unwrap();
    let stale = dir.path().join(format!("{STAGING_PREFIX}999999"));
    std::fs::create_dir(&stale).unwrap();
    std::fs::write(stale.join("new-0"), "half").unwrap();
    let first = DirLock::acquire(dir.path()).unwrap();
    assert!(!stale.exists(), "a killed run's staging directory is removed");
    let err = DirLock::acquire_within(dir.path(), Duration::from_millis(200)).unwrap_err();
    assert!(err.to_string().contains("another rightsizer run"), "{err}");
    drop(first);
    DirLock::acquire_within(dir.path(), Duration::from_millis(200)).unwrap();
}

#[test]
fn a_killed_runs_staging_directory_is_invisible_to_git() {
    let dir = tempfile::tempdir().unwrap();
    let git = |args: &[&str]| {
        let out = std::process::Command::new("git")
            .args(args)
            .current_dir(dir.path())
            .output()
            .expect("git not found: apt-get install git");
        assert!(
            out.status.success(),
            "git {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    git(&["init", "-q"]);
    // What a SIGKILL between writing and renaming leaves: the staging directory, full.
    let staging = Staging::create(dir.path()).unwrap();
    std::fs::write(staging.path.join("new-0"), "half of a set").unwrap();
    std::mem::forget(staging);
    assert_eq!(git(&["status", "--porcelain", "--untracked-files=all"]), "");
    // The next write into the directory removes it.
    write(&dir.path().join("report.json"), b"{}").unwrap();
    assert_eq!(names(dir.path()), [".git", "report.json"]);
}
