//! The README's demo: the bundled snapshot is what the generator makes today, and the demo
//! command prints a recommendations table from it.

use crate::slice::rightsizer;

const SNAPSHOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/demo/cluster.snapshot.json.gz");

#[test]
fn bundled_demo_snapshot_is_up_to_date() {
    let fresh = rightsizer_synth::export::demo_snapshot();
    let checked_in = std::fs::read(SNAPSHOT).unwrap_or_default();
    if fresh.to_bytes() != checked_in {
        let old = rightsizer::collect::snapshot::Snapshot::from_bytes(&checked_in, SNAPSHOT).ok();
        let differs = match &old {
            None => "the checked-in file is missing or unreadable".to_string(),
            Some(old) => format!(
                "workloads {} -> {}, containers {} -> {}",
                old.workloads.len(),
                fresh.workloads.len(),
                old.usage.containers.len(),
                fresh.usage.containers.len()
            ),
        };
        panic!(
            "demo/cluster.snapshot.json.gz is out of date ({differs}).\n\
             Regenerate it with: cargo run -p rightsizer-synth -- demo-snapshot -o demo/cluster.snapshot.json.gz"
        );
    }
}

#[tokio::test]
async fn demo_command_prints_a_table() {
    let out = rightsizer(&["recommend", "--snapshot", SNAPSHOT]).await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "demo failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut lines = stdout.lines();
    let header = lines.next().unwrap();
    for column in ["NAMESPACE", "WORKLOAD", "CONTAINER", "CPU REQUEST", "MEMORY REQUEST"] {
        assert!(header.contains(column), "{header}");
    }
    let rows = stdout.lines().filter(|l| l.contains(" -> ")).count();
    assert!(rows >= 10, "expected recommendations in the table:\n{stdout}");
    assert!(
        stdout.contains("Deployment/") && stdout.contains("StatefulSet/") && stdout.contains("CronJob/"),
        "{stdout}"
    );
}
