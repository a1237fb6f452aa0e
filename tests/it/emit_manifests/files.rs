//! Files left as they were found: modes, read-only files, hard links, symlinks (in and out of
//! the directory, loops), FIFOs, non-UTF-8 and CRLF files; and the values checked against
//! what the manifest holds (request <= limit, HPA min <= max, absurd values), with the
//! manifest's drift from the cluster reported.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::time::Duration;

use rightsizer::emit::change::{HpaChange, WorkloadChange};
use rightsizer::emit::manifests::{ManifestReport, edit_manifests};
use rightsizer::model::{ContainerRole, Resources, WorkloadKind};

use super::{MI, change, res};

fn web_yaml(name: &str, resources: &str) -> String {
    format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {name}\n  namespace: shop\nspec:\n  template:\n    spec:\n      containers:\n        - name: app\n          image: app:1\n          resources:\n{resources}"
    )
}

fn web_change(name: &str, r: Resources) -> WorkloadChange {
    change(
        "shop",
        WorkloadKind::Deployment,
        name,
        &[("app", ContainerRole::App, r)],
    )
}

/// `edit_manifests` with a deadline: a hang (FIFO, link loop) fails the test instead of
/// stalling the suite.
fn edit(dir: &Path, changes: Vec<WorkloadChange>) -> ManifestReport {
    let dir = dir.to_path_buf();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(edit_manifests(&dir, &changes).unwrap());
    });
    rx.recv_timeout(Duration::from_secs(20)).expect("edit_manifests hung")
}

const REQ_500M: &str = "            requests:\n              cpu: 500m\n";

#[test]
fn emit_manifests_keep_modes_and_refuse_read_only_and_hard_linked_files() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let write = |name: &str, mode: u32| {
        let path = d.join(format!("{name}.yaml"));
        std::fs::write(&path, web_yaml(name, REQ_500M)).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        path
    };
    let private = write("private", 0o600);
    let frozen = write("frozen", 0o444);
    let linked = write("linked", 0o644);
    std::fs::hard_link(&linked, d.join("linked.bak")).unwrap();
    let r = res(Some(0.25), None, None, None);
    let report = edit(
        d,
        ["private", "frozen", "linked"]
            .iter()
            .map(|n| web_change(n, r))
            .collect(),
    );
    assert!(std::fs::read_to_string(&private).unwrap().contains("cpu: 250m"));
    assert_eq!(
        std::fs::metadata(&private).unwrap().mode() & 0o777,
        0o600,
        "a private file stays private"
    );
    for (path, why) in [(&frozen, "read-only"), (&linked, "hard links")] {
        assert!(
            std::fs::read_to_string(path).unwrap().contains("cpu: 500m"),
            "{}",
            path.display()
        );
        assert!(
            report
                .problems
                .iter()
                .any(|p| p.path.as_deref() == Some(path.as_path()) && p.reason.contains(why)),
            "{why}: {:#?}",
            report.problems
        );
    }
    assert_eq!(std::fs::metadata(&frozen).unwrap().mode() & 0o777, 0o444);
    assert_eq!(
        std::fs::metadata(&linked).unwrap().nlink(),
        2,
        "the hard link is intact"
    );
    let hidden: Vec<_> = std::fs::read_dir(d)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('.'))
        .collect();
    assert!(hidden.is_empty(), "temporary files left: {hidden:?}");
}

#[test]
fn emit_manifests_walk_stays_inside_and_reads_regular_files_only() {
    let root = tempfile::tempdir().unwrap();
    let d = root.path().join("manifests");
    let outside = root.path().join("outside");
    std::fs::create_dir_all(d.join("real")).unwrap();
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::write(d.join("real/inner.yaml"), web_yaml("inner", REQ_500M)).unwrap();
    std::fs::write(outside.join("outer.yaml"), web_yaml("outer", REQ_500M)).unwrap();
    std::fs::write(outside.join("dir-outer.yaml"), web_yaml("dirouter", REQ_500M)).unwrap();
    let link = |target: &str, name: &str| std::os::unix::fs::symlink(target, d.join(name)).unwrap();
    link("real/inner.yaml", "inner-link.yaml");
    link("../outside/outer.yaml", "outer-link.yaml");
    link("../outside", "outside-dir");
    link(".", "self-loop");
    link("loop-b.yaml", "loop-a.yaml");
    link("loop-a.yaml", "loop-b.yaml");
    assert!(
        std::process::Command::new("mkfifo")
            .arg(d.join("trap.yaml"))
            .status()
            .unwrap()
            .success()
    );
    std::fs::write(d.join("latin1.yaml"), b"# caf\xe9\nkind: ConfigMap\n").unwrap();
    let r = res(Some(0.25), None, None, None);
    let report = edit(
        &d,
        ["inner", "outer", "dirouter"]
            .iter()
            .map(|n| web_change(n, r))
            .collect(),
    );
    // The linked file inside is edited once, at its target; the link stays a link.
    assert!(
        std::fs::read_to_string(d.join("real/inner.yaml"))
            .unwrap()
            .contains("cpu: 250m")
    );
    assert!(
        std::fs::symlink_metadata(d.join("inner-link.yaml"))
            .unwrap()
            .file_type()
            .is_symlink()
    );
    assert_eq!(report.files_changed, [d.join("real/inner.yaml")]);
    // Nothing outside is touched.
    for f in ["outer.yaml", "dir-outer.yaml"] {
        assert!(
            std::fs::read_to_string(outside.join(f)).unwrap().contains("cpu: 500m"),
            "{f}"
        );
    }
    let left: Vec<String> = report
        .left_alone
        .iter()
        .map(|(p, why)| format!("{}: {why}", p.strip_prefix(&d).unwrap().display()))
        .collect();
    for want in [
        "outer-link.yaml: a symlink to",
        "outside-dir: a symlink to",
        "loop-a.yaml: a symlink that does not resolve",
        "trap.yaml: not a regular file",
        "latin1.yaml: not UTF-8",
    ] {
        assert!(left.iter().any(|l| l.starts_with(want)), "{want}: {left:#?}");
    }
}

#[test]
fn emit_manifests_keep_crlf_line_endings() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("web.yaml");
    let text = web_yaml("web", REQ_500M).replace('\n', "\r\n");
    std::fs::write(&path, &text).unwrap();
    // A changed request and a new limits section (new lines).
    let report = edit(
        dir.path(),
        vec![web_change("web", res(Some(0.25), None, Some(1.0), None))],
    );
    assert_eq!(report.files_changed.len(), 1, "{report:#?}");
    let edited = std::fs::read_to_string(&path).unwrap();
    assert!(
        edited.contains("cpu: 250m\r\n") && edited.contains("limits:\r\n"),
        "{edited:?}"
    );
    assert_eq!(
        edited.matches('\n').count(),
        edited.matches("\r\n").count(),
        "{edited:?}"
    );
}

#[test]
fn emit_manifests_check_values_against_the_manifest_and_report_drift() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // The manifest is behind the cluster: it says 200m where the cluster runs a limit of 1.
    let limited = "            requests:\n              cpu: 100m\n            limits:\n              cpu: 200m\n";
    std::fs::write(d.join("web.yaml"), web_yaml("web", limited)).unwrap();
    let mut web = web_change("web", res(Some(0.315), None, None, None));
    web.containers[0].current = res(Some(0.5), None, Some(1.0), None);
    std::fs::write(d.join("big.yaml"), web_yaml("big", REQ_500M)).unwrap();
    let big = web_change("big", res(None, Some(1e308), None, None));
    std::fs::write(
        d.join("hpa.yaml"),
        format!(
            "{}---\napiVersion: autoscaling/v2\nkind: HorizontalPodAutoscaler\nmetadata:\n  name: api\n  namespace: shop\nspec:\n  minReplicas: 2\n  maxReplicas: 3\n",
            web_yaml("api", REQ_500M)
        ),
    )
    .unwrap();
    let mut api = web_change("api", res(Some(0.25), None, None, None));
    api.hpa = Some(HpaChange {
        name: "api".into(),
        min_replicas: Some(5),
        max_replicas: None,
        cpu_utilization: None,
        memory_utilization: None,
    });
    let report = edit(d, vec![web, big, api]);
    let text = std::fs::read_to_string(d.join("web.yaml")).unwrap();
    assert!(text.contains("cpu: 315m") && !text.contains("cpu: 200m"), "{text}");
    assert!(
        report
            .adjusted
            .iter()
            .any(|(_, n)| n.contains("limits.cpu raised from 200m (the manifest) to 315m")),
        "{:?}",
        report.adjusted
    );
    let drift: Vec<&str> = report.drift.iter().map(|(_, d)| d.as_str()).collect();
    assert!(
        drift.contains(&"container app: manifest says limits.cpu 200m, cluster runs 1"),
        "{drift:?}"
    );
    assert!(
        drift.contains(&"container app: manifest says requests.cpu 100m, cluster runs 500m"),
        "{drift:?}"
    );
    assert!(
        report.drift_warnings().contains(
            &"shop/Deployment/web: the manifest differs from the cluster: container app: manifest says limits.cpu 200m, cluster runs 1".to_string()
        ),
        "{:?}",
        report.drift_warnings()
    );
    // The absurd value and the HPA min above its max are refused, naming the workload.
    assert!(
        std::fs::read_to_string(d.join("big.yaml"))
            .unwrap()
            .contains("cpu: 500m")
    );
    let problems: Vec<String> = report
        .problems
        .iter()
        .map(|p| format!("{}: {}", p.key, p.reason))
        .collect();
    assert!(
        problems
            .iter()
            .any(|p| p.contains("big") && p.contains("requests.memory")),
        "{problems:#?}"
    );
    assert!(
        problems
            .iter()
            .any(|p| p.contains("minReplicas 5 would be above maxReplicas 3")),
        "{problems:#?}"
    );
    let _ = MI;
}
