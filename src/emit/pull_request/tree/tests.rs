//! Unit tests of the repository side: archives, the working copy, hashes and trailers.

use super::*;

/// A tar.gz with `prefix/` in front of every entry, as the providers answer.
pub fn archive(entries: &[(&str, &[u8])]) -> Vec<u8> {
    let mut builder = tar::Builder::new(flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast()));
    for (path, bytes) in entries {
        let mut header = tar::Header::new_gnu();
        header.set_size(bytes.len() as u64);
        header.set_mode(if path.ends_with(".sh") { 0o755 } else { 0o644 });
        header.set_entry_type(tar::EntryType::Regular);
        builder.append_data(&mut header, path, *bytes).unwrap();
    }
    builder.into_inner().unwrap().finish().unwrap()
}

fn link_archive() -> Vec<u8> {
    let mut builder = tar::Builder::new(flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast()));
    let mut header = tar::Header::new_gnu();
    header.set_entry_type(tar::EntryType::Symlink);
    header.set_size(0);
    builder
        .append_link(&mut header, "o-r-1/k8s/link.yaml", "/etc/passwd")
        .unwrap();
    builder.into_inner().unwrap().finish().unwrap()
}

#[test]
fn extract_keeps_regular_files_under_the_path() {
    let long = format!("o-r-abc/k8s/{}/deep.yaml", "d".repeat(150));
    let a = archive(&[
        ("o-r-abc/README.md", b"readme"),
        ("o-r-abc/k8s/web.yaml", b"kind: Deployment\n"),
        ("o-r-abc/k8s/tools/run.sh", b"#!/bin/sh\n"),
        ("o-r-abc/k8s-other/x.yaml", b"no"),
        (&long, b"long name"),
    ]);
    let files = extract(&a[..], "k8s", &Limits::default()).unwrap();
    let names: Vec<&str> = files.keys().map(String::as_str).collect();
    assert_eq!(names.len(), 3, "{names:?}");
    assert!(names.contains(&"k8s/web.yaml") && names.contains(&"k8s/tools/run.sh"));
    assert!(files["k8s/tools/run.sh"].executable && !files["k8s/web.yaml"].executable);
    assert_eq!(files["k8s/web.yaml"].bytes, b"kind: Deployment\n");
    assert_eq!(extract(&a[..], "", &Limits::default()).unwrap().len(), 5);
    assert!(extract(&link_archive()[..], "", &Limits::default()).unwrap().is_empty());
}

#[test]
fn extract_is_bounded_with_a_clear_error() {
    let a = archive(&[
        ("p/k8s/a.yaml", b"aaaa"),
        ("p/k8s/b.yaml", b"bbbb"),
        ("p/k8s/c.yaml", b"c"),
    ]);
    let few = Limits {
        files: 2,
        ..Limits::default()
    };
    let err = extract(&a[..], "k8s", &few).unwrap_err();
    assert!(
        err.contains("more than 2 files") && err.contains("outputs.pullRequest.path"),
        "{err}"
    );
    let small = Limits {
        bytes: 6,
        ..Limits::default()
    };
    assert!(extract(&a[..], "k8s", &small).unwrap_err().contains("MiB"));
    let scanned = Limits {
        scanned: 5,
        ..Limits::default()
    };
    assert!(extract(&a[..], "", &scanned).unwrap_err().contains("too large"));
    assert!(extract(&b"not gzip at all"[..], "", &Limits::default()).is_err());
}

#[test]
fn changes_are_writes_and_deletions_under_the_path() {
    let a = archive(&[
        ("p/k8s/web.yaml", b"cpu: 1\n"),
        ("p/k8s/old.yaml", b"# rightsizer\n"),
        ("p/k8s/same.yaml", b"same\n"),
        ("p/other.yaml", b"x"),
    ]);
    let scratch = Scratch::new().unwrap();
    std::io::Write::write_all(&mut scratch.archive().unwrap(), &a).unwrap();
    let files = scratch.read_archive("", &Limits::default()).unwrap();
    assert!(!scratch.archive_path().exists(), "the archive goes once read");
    scratch.fill(&files).unwrap();
    let dir = scratch.dir("k8s");
    std::fs::write(dir.join("web.yaml"), "cpu: 2\n").unwrap();
    std::fs::remove_file(dir.join("old.yaml")).unwrap();
    std::fs::create_dir_all(dir.join("shop")).unwrap();
    std::fs::write(dir.join("shop/new.yaml"), "new\n").unwrap();
    let changes = scratch.changes(&files, "k8s").unwrap();
    let summary: Vec<(&str, bool, bool)> = changes
        .iter()
        .map(|c| (c.path.as_str(), c.content.is_some(), c.existed))
        .collect();
    assert_eq!(
        summary,
        [
            ("k8s/old.yaml", false, true),
            ("k8s/shop/new.yaml", true, false),
            ("k8s/web.yaml", true, true)
        ]
    );
    let root = scratch.root.clone();
    assert!(root.exists());
    drop(scratch);
    assert!(!root.exists(), "the working copy is removed");
}

#[test]
fn content_hash_is_stable_and_sensitive() {
    let c = |path: &str, content: Option<&[u8]>| Change {
        path: path.into(),
        content: content.map(<[u8]>::to_vec),
        executable: false,
        existed: true,
    };
    let one = [c("a.yaml", Some(b"x")), c("b.yaml", None)];
    // A fixed value: the hash is compared with what an earlier build wrote into a commit.
    assert_eq!(content_hash(&one), content_hash(&one.clone()));
    assert_eq!(content_hash(&[]), "cbf29ce484222325");
    assert_ne!(
        content_hash(&one),
        content_hash(&[c("a.yaml", Some(b"y")), c("b.yaml", None)])
    );
    assert_ne!(
        content_hash(&one),
        content_hash(&[c("a.yaml", Some(b"x")), c("b.yaml", Some(b""))])
    );
    assert_ne!(content_hash(&one), content_hash(&[c("a.yaml", Some(b"x"))]));
}

#[test]
fn trailers_tell_our_commits_from_a_human_one() {
    let changes = [Change {
        path: "k8s/web.yaml".into(),
        content: Some(b"x".to_vec()),
        executable: false,
        existed: true,
    }];
    let message = commit_message(&changes, "base1", "abcd", 1);
    assert!(message.contains("- update k8s/web.yaml"), "{message}");
    let head = |message: &str, parents: &[&str]| Head {
        sha: "c1".into(),
        tree: String::new(),
        message: message.into(),
        parents: parents.iter().map(|p| p.to_string()).collect(),
    };
    assert_eq!(
        trailers(&head(&message, &["base1"])),
        Some(Trailers {
            base: "base1".into(),
            content: "abcd".into()
        })
    );
    // A human commit on top of ours, a squash onto another parent, no trailers: not ours.
    assert_eq!(trailers(&head("fix limits by hand", &["c0"])), None);
    assert_eq!(trailers(&head(&message, &["other"])), None);
    assert_eq!(trailers(&head(&message, &["base1", "x"])), None);
}
