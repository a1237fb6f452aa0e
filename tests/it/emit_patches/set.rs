//! What the patch directory keeps, removes and refuses across runs: rightsizer's stale files
//! go, everyone else's files stay, names from labels never leave the directory, absurd or
//! invalid values never reach a file, and two runs on one directory leave one whole set.

use std::path::{Path, PathBuf};

use rightsizer::emit::change::WorkloadChange;
use rightsizer::emit::patches::{MARKER, PatchFormat, write_patches};
use rightsizer::model::{WorkloadKey, WorkloadKind};
use serde_json::Value;

use super::{changes, current, files_under};

fn read(path: &Path) -> Value {
    serde_saphyr::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// Every file each kustomization of the set lists, checked to exist.
fn listed(dir: &Path) -> Vec<PathBuf> {
    let top = read(&dir.join("kustomization.yaml"));
    let mut out = Vec::new();
    for ns in top["components"].as_array().unwrap() {
        let ns_dir = dir.join(ns.as_str().unwrap());
        let k = read(&ns_dir.join("kustomization.yaml"));
        for p in k["patches"].as_array().unwrap() {
            let path = ns_dir.join(p["path"].as_str().unwrap());
            assert!(path.is_file(), "{} is listed and missing", path.display());
            out.push(path);
        }
    }
    out
}

fn write(dir: &Path, changes: &[WorkloadChange]) -> rightsizer::emit::patches::PatchReport {
    write_patches(dir, changes, PatchFormat::Strategic, &current()).unwrap()
}

#[test]
fn stale_patches_of_earlier_runs_are_removed_and_other_files_kept() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("patches");
    write(&dir, &changes());
    std::fs::write(dir.join("notes.yaml"), "# mine\n").unwrap();
    std::fs::write(dir.join("shop/extra.yaml"), "# mine too\n").unwrap();
    assert_eq!(listed(&dir).len(), 4);
    // web no longer has a change: its patch and HPA patch go, the user's files stay.
    let report = write(&dir, &changes()[1..]);
    let mut removed: Vec<String> = report
        .removed
        .iter()
        .map(|p| p.strip_prefix(&dir).unwrap().display().to_string())
        .collect();
    removed.sort();
    assert_eq!(removed, ["shop/deployment-web.yaml", "shop/deployment-web_hpa.yaml"]);
    assert!(!dir.join("shop/deployment-web.yaml").exists());
    assert_eq!(std::fs::read_to_string(dir.join("notes.yaml")).unwrap(), "# mine\n");
    assert_eq!(
        std::fs::read_to_string(dir.join("shop/extra.yaml")).unwrap(),
        "# mine too\n"
    );
    assert_eq!(listed(&dir).len(), 2);
    // Nothing left to patch in data: its directory goes with its files.
    let report = write(&dir, &changes()[2..]);
    assert!(!dir.join("data").exists(), "{:?}", report.removed);
    assert_eq!(listed(&dir).len(), 1);
}

#[test]
fn a_kustomization_edited_by_hand_is_never_rewritten() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("patches");
    write(&dir, &changes());
    let shop = dir.join("shop/kustomization.yaml");
    let edited = format!("{}resources: [../../base]\n", std::fs::read_to_string(&shop).unwrap());
    std::fs::write(&shop, &edited).unwrap();
    let report = write(&dir, &changes());
    assert_eq!(
        std::fs::read_to_string(&shop).unwrap(),
        edited,
        "the user's edit survives"
    );
    for f in [
        "shop/deployment-web.yaml",
        "shop/deployment-web_hpa.yaml",
        "shop/cronjob-report.yaml",
    ] {
        assert!(
            dir.join(f).is_file(),
            "{f}, listed by the user's kustomization, is kept"
        );
    }
    assert!(
        report.kept.iter().any(|(p, why)| p == &shop && why.contains("edited")),
        "{:?}",
        report.kept
    );
    let skipped: Vec<&str> = report.skipped.iter().map(|(k, _)| k.name.as_str()).collect();
    assert_eq!(skipped, ["web", "report"], "{:?}", report.skipped);
    // The data namespace is still written, and its files still rightsizer's.
    assert!(
        std::fs::read_to_string(dir.join("data/statefulset-db.yaml"))
            .unwrap()
            .starts_with(MARKER)
    );
    // A top-level kustomization without the marker is left alone too.
    let top = dir.join("kustomization.yaml");
    std::fs::write(&top, "components: [data]\n").unwrap();
    let report = write(&dir, &changes());
    assert_eq!(std::fs::read_to_string(&top).unwrap(), "components: [data]\n");
    assert!(report.kept.iter().any(|(p, _)| p == &top), "{:?}", report.kept);
}

#[test]
fn a_file_in_the_way_skips_its_workload_and_stays() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("patches");
    std::fs::create_dir_all(dir.join("shop")).unwrap();
    std::fs::write(dir.join("shop/deployment-web.yaml"), "# hand-written\n").unwrap();
    let report = write(&dir, &changes());
    assert_eq!(
        std::fs::read_to_string(dir.join("shop/deployment-web.yaml")).unwrap(),
        "# hand-written\n"
    );
    assert_eq!(report.skipped.len(), 1, "{:?}", report.skipped);
    assert!(report.skipped[0].1.contains("in the way"), "{:?}", report.skipped);
    assert_eq!(listed(&dir).len(), 2, "db and report are still written");
    // rightsizer's own file made read-only: refused, not replaced, the rest still written.
    use std::os::unix::fs::PermissionsExt;
    let db = dir.join("data/statefulset-db.yaml");
    let before = std::fs::read_to_string(&db).unwrap();
    std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o444)).unwrap();
    let mut other = changes();
    other[1].containers[0].recommended.cpu_request = Some(3.0);
    let report = write(&dir, &other);
    assert_eq!(std::fs::read_to_string(&db).unwrap(), before);
    assert!(
        report
            .skipped
            .iter()
            .any(|(k, r)| k.name == "db" && r.contains("read-only")),
        "{:?}",
        report.skipped
    );
}

fn hostile(ns: &str, name: &str) -> WorkloadChange {
    let mut c = changes()[1].clone();
    c.key = WorkloadKey::new(ns, WorkloadKind::StatefulSet, name);
    c
}

#[test]
fn names_from_labels_never_write_outside_the_directory() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("a/b/c/patches");
    let long = "x".repeat(10_000);
    let mut all = changes();
    all.extend([
        hostile("../../../../escape", "db"),
        hostile(&format!("{}/escape", root.path().display()), "db"),
        hostile("shop", "a/../../../../escape"),
        hostile("shop", &long),
        hostile("shop", "db\nkind: Secret"),
    ]);
    // A long but valid name is written, under a cut name with a hash.
    let valid_long = format!("{0}.{0}.{0}.{1}", "y".repeat(63), "z".repeat(50));
    all.push(hostile("shop", &valid_long));
    let report = write(&dir, &all);
    let reasons: Vec<&str> = report.skipped.iter().map(|(_, r)| r.as_str()).collect();
    assert_eq!(reasons.len(), 5, "{reasons:#?}");
    for (key, reason) in &report.skipped {
        assert!(reason.contains("not a valid Kubernetes"), "{key}: {reason}");
        assert!(reason.len() < 400, "the reason is readable: {} bytes", reason.len());
    }
    assert!(!root.path().join("escape").exists());
    assert!(!root.path().join("a/escape").exists());
    for f in files_under(root.path()) {
        assert!(
            f.starts_with(&dir),
            "{} written outside the patch directory",
            f.display()
        );
        assert!(f.file_name().unwrap().len() <= 200, "{}", f.display());
    }
    let kustomizations: String = files_under(&dir)
        .iter()
        .filter(|p| p.ends_with("kustomization.yaml"))
        .map(|p| std::fs::read_to_string(p).unwrap())
        .collect();
    assert!(!kustomizations.contains("escape") && !kustomizations.contains("xxxxxxxxxx"));
    assert!(
        kustomizations.contains(&valid_long.replace('.', "\\.")),
        "the long name is targeted"
    );
    assert_eq!(listed(&dir).len(), 5, "the good workloads are all written");
}

#[test]
fn bare_jobs_and_pods_get_no_patch_and_say_why() {
    let dir = tempfile::tempdir().unwrap();
    let mut job = changes()[2].clone();
    job.key = WorkloadKey::new("batch", WorkloadKind::Job, "backfill");
    let mut pod = changes()[2].clone();
    pod.key = WorkloadKey::new("batch", WorkloadKind::Pod, "debug");
    let report = write(dir.path(), &[job, pod]);
    let reasons: Vec<&str> = report.skipped.iter().map(|(_, r)| r.as_str()).collect();
    assert_eq!(reasons.len(), 2, "{reasons:?}");
    assert!(reasons[0].contains("immutable"), "{reasons:?}");
    assert!(reasons[1].contains("bare pods"), "{reasons:?}");
    assert!(!dir.path().join("batch").exists());
}

#[test]
fn values_are_checked_against_the_live_object() {
    let dir = tempfile::tempdir().unwrap();
    let mut all = changes();
    // The live report CronJob has no limit; the live web app has a 512Mi memory limit. A new
    // memory request of 600Mi with no new limit raises the limit to it.
    all[0].containers[0].recommended.memory_request = Some(600.0 * 1024.0 * 1024.0);
    all[0].containers[0].recommended.memory_limit = None;
    // An absurd memory request from corrupt history never reaches a file.
    all[1].containers[0].recommended.memory_request = Some(1e308);
    let report = write(dir.path(), &all);
    let skipped: Vec<String> = report.skipped.iter().map(|(k, r)| format!("{k}: {r}")).collect();
    assert_eq!(skipped.len(), 1, "{skipped:#?}");
    assert!(
        skipped[0].contains("db") && skipped[0].contains("requests.memory"),
        "{skipped:?}"
    );
    let web = read(&dir.path().join("shop/deployment-web.yaml"));
    let app = &web["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(app["resources"]["requests"]["memory"], "600Mi");
    assert_eq!(app["resources"]["limits"]["memory"], "600Mi");
    assert!(
        report
            .adjusted
            .iter()
            .any(|(_, n)| n.contains("limits.memory raised from 512Mi")),
        "{:?}",
        report.adjusted
    );

    let mut hpa = changes()[..1].to_vec();
    let h = hpa[0].hpa.as_mut().unwrap();
    h.min_replicas = Some(12);
    h.max_replicas = None;
    let report = write(dir.path(), &hpa);
    assert_eq!(report.skipped.len(), 1, "{:?}", report.skipped);
    assert!(
        report.skipped[0]
            .1
            .contains("minReplicas 12 would be above maxReplicas 10"),
        "{:?}",
        report.skipped
    );
}

#[test]
fn two_runs_on_one_directory_leave_one_whole_set_and_no_leftovers() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("patches");
    // What an earlier version could leave behind.
    std::fs::create_dir_all(root.path().join(".patches.staging-123")).unwrap();
    std::fs::create_dir_all(root.path().join(".patches.old-456")).unwrap();
    let sets = [changes(), changes()[1..].to_vec(), changes()[..1].to_vec()];
    std::thread::scope(|s| {
        for (i, set) in sets.iter().enumerate() {
            let dir = &dir;
            s.spawn(move || {
                for _ in 0..10 + i {
                    write_patches(dir, set, PatchFormat::Strategic, &current()).unwrap();
                    // Under the directory's lock, every listed file exists: no run is
                    // half-way through its set.
                    let _lock = rightsizer::atomic::DirLock::acquire(dir).unwrap();
                    listed(dir);
                }
            });
        }
    });
    let mut names: Vec<String> = std::fs::read_dir(root.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["patches"], "no staging or old directory is left");
    assert!(
        !files_under(&dir)
            .iter()
            .any(|p| p.to_string_lossy().contains(".rightsizer")),
        "{:?}",
        files_under(&dir)
    );
    // The last set written is whole: every listed file and nothing of rightsizer's besides.
    let listed = listed(&dir);
    let ours: Vec<PathBuf> = files_under(&dir)
        .into_iter()
        .filter(|p| !p.ends_with("kustomization.yaml"))
        .collect();
    assert_eq!(listed.len(), ours.len(), "{listed:?} vs {ours:?}");
}
