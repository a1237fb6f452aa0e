//! Repository archives as both forges serve them: `git archive` output, gzip-compressed tar
//! with a pax global header whose `comment` is the commit id, every member under one top
//! directory (GitHub `{owner}-{repo}-{sha7}/`, GitLab `{project}-{ref}-{sha}[-{path}]/`), and
//! a directory entry before the files of each directory.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;

use flate2::Compression;
use flate2::write::GzEncoder;

/// A tar.gz of `files` under `prefix/`, with the pax global header `git archive` writes.
pub(super) fn tar_gz(prefix: &str, commit: &str, mtime: i64, files: &BTreeMap<String, Vec<u8>>) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    // `git archive` starts with a pax global header named `pax_global_header` carrying the
    // commit id as `comment` (git-archive(1): "tar.umask", "the commit ID is stored in a
    // global extended pax header").
    let record = pax_record("comment", commit);
    let mut global = tar::Header::new_ustar();
    global.set_entry_type(tar::EntryType::XGlobalHeader);
    global.set_size(record.len() as u64);
    global.set_mode(0o666);
    global.set_mtime(mtime.max(0) as u64);
    let _ = global.set_path("pax_global_header");
    global.set_cksum();
    builder
        .append(&global, record.as_slice())
        .expect("forge archive: pax header");

    let mut dirs = BTreeSet::new();
    dirs.insert(String::new());
    for path in files.keys() {
        let mut at = 0;
        while let Some(i) = path[at..].find('/') {
            dirs.insert(path[..at + i].to_string());
            at += i + 1;
        }
    }
    // Members in path order, each directory before its contents (as git archive walks trees).
    let mut members: Vec<(String, Option<&Vec<u8>>)> = dirs
        .into_iter()
        .map(|d| {
            let name = if d.is_empty() {
                format!("{prefix}/")
            } else {
                format!("{prefix}/{d}/")
            };
            (name, None)
        })
        .collect();
    members.extend(
        files
            .iter()
            .map(|(path, bytes)| (format!("{prefix}/{path}"), Some(bytes))),
    );
    members.sort_by(|a, b| a.0.cmp(&b.0));
    for (name, bytes) in members {
        let mut header = tar::Header::new_ustar();
        header.set_mtime(mtime.max(0) as u64);
        match bytes {
            None => {
                header.set_entry_type(tar::EntryType::Directory);
                header.set_mode(0o775);
                header.set_size(0);
                builder
                    .append_data(&mut header, &name, std::io::empty())
                    .expect("forge archive: directory");
            }
            Some(bytes) => {
                header.set_entry_type(tar::EntryType::Regular);
                header.set_mode(0o664);
                header.set_size(bytes.len() as u64);
                builder
                    .append_data(&mut header, &name, bytes.as_slice())
                    .expect("forge archive: file");
            }
        }
    }
    let tar = builder.into_inner().expect("forge archive: finish tar");
    let mut gz = GzEncoder::new(Vec::new(), Compression::fast());
    gz.write_all(&tar).expect("forge archive: gzip");
    gz.finish().expect("forge archive: gzip finish")
}

/// One pax record: `"{len} {key}={value}\n"` where len counts the whole record.
fn pax_record(key: &str, value: &str) -> Vec<u8> {
    let rest = format!(" {key}={value}\n");
    let mut len = rest.len() + 1;
    while (len.to_string().len() + rest.len()) != len {
        len = len.to_string().len() + rest.len();
    }
    format!("{len}{rest}").into_bytes()
}

/// GitLab's name for an archive and its top directory (`Gitlab::Git::Repository#archive_prefix`
/// in gitlab-org/gitlab): project path, ref with `/` as `-`, the commit id (the API always
/// appends it), then the requested path with `/` as `-`.
pub(super) fn gitlab_prefix(project: &str, reference: &str, sha: &str, path: Option<&str>) -> String {
    let mut parts = vec![project.to_string(), reference.replace('/', "-"), sha.to_string()];
    if let Some(path) = path.filter(|p| !p.is_empty()) {
        parts.push(path.trim_matches('/').replace('/', "-"));
    }
    parts.join("-")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pax_record_length_counts_itself() {
        let record = pax_record("comment", &"a".repeat(40));
        assert_eq!(record.len(), 52);
        assert!(record.starts_with(b"52 comment="));
    }

    #[test]
    fn gitlab_prefix_as_gitlab_names_it() {
        assert_eq!(gitlab_prefix("repo", "main", "abc", None), "repo-main-abc");
        assert_eq!(
            gitlab_prefix("repo", "feat/x", "abc", Some("k8s/apps/")),
            "repo-feat-x-abc-k8s-apps"
        );
    }
}
