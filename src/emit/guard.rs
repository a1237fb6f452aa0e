//! The last check before anything is written (a patch file, a manifest edit, `--apply`): the
//! values to write are checked against the values actually in force in the object being
//! changed (the manifest's text, the live object), so nothing goes out that the API server
//! would reject or that no machine could run.
//!
//! - **Names**: a namespace is an RFC 1123 label, a workload or HPA name an RFC 1123
//!   subdomain, a container name a label. Anything else cannot name a Kubernetes object (it
//!   came from a hostile or broken label) and is never written anywhere.
//! - **Bounds**: every quantity is finite, positive and at most [`MAX_CPU_CORES`] /
//!   [`MAX_MEMORY_BYTES`]; a value outside is refused with the workload named.
//! - **Request <= limit**, per container and resource, on the values as written (rounded):
//!   when the new request exceeds the limit in force and rightsizer does not set that limit,
//!   the limit is raised to the request (the smallest change the API server accepts, and it
//!   never takes capacity away from the workload; the note says so). When rightsizer's own
//!   limit is below the request in force (its own or the object's), the workload is refused:
//!   that is drift between the object and what the recommendation was computed from.
//! - **HPA**: `minReplicas` (default 1) <= `maxReplicas`, both at least 1, on the values in
//!   force after the change.

use super::change::{ContainerChange, HpaChange, WorkloadChange};
use crate::model::{Resources, format_cpu, format_memory, parse_cpu, parse_memory};

/// The most cores one container may be given: more logical CPUs than any machine
/// Kubernetes schedules on has (the largest cloud instances have 896 to 1,920).
pub const MAX_CPU_CORES: f64 = 4096.0;
/// The most memory one container may be given, 64 TiB: more than any single machine sold
/// (the largest cloud instances have 24 to 32 TiB).
pub const MAX_MEMORY_BYTES: f64 = 64.0 * 1024.0 * 1024.0 * 1024.0 * 1024.0;

/// A change that passed the checks, with the limits raised where needed, and what was adjusted.
#[derive(Debug, Clone)]
pub struct Checked {
    pub change: WorkloadChange,
    pub notes: Vec<String>,
}

fn label(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && b[0] != b'-'
        && b[b.len() - 1] != b'-'
}

fn subdomain(s: &str) -> bool {
    s.len() <= 253 && s.split('.').all(label)
}

/// `s` shortened for a message: a hostile name can be megabytes long.
pub fn shown(s: &str) -> String {
    const MAX: usize = 80;
    let escaped: String = s.chars().flat_map(char::escape_debug).collect();
    match escaped.char_indices().nth(MAX) {
        Some((i, _)) => format!("\"{}…\" ({} bytes)", &escaped[..i], s.len()),
        None => format!("\"{escaped}\""),
    }
}

/// Whether every name in `change` can name a Kubernetes object.
pub fn names(change: &WorkloadChange) -> Result<(), String> {
    let key = &change.key;
    if !label(&key.namespace) {
        return Err(format!(
            "namespace {} is not a valid Kubernetes namespace name (RFC 1123 label): nothing written for it",
            shown(&key.namespace)
        ));
    }
    if !subdomain(&key.name) {
        return Err(format!(
            "{} name {} is not a valid Kubernetes name (RFC 1123 subdomain): nothing written for it",
            key.kind.as_str(),
            shown(&key.name)
        ));
    }
    if let Some(c) = change.containers.iter().find(|c| !label(&c.name)) {
        return Err(format!(
            "container name {} is not a valid Kubernetes name (RFC 1123 label)",
            shown(&c.name)
        ));
    }
    if let Some(h) = change.hpa.as_ref().filter(|h| !subdomain(&h.name)) {
        return Err(format!(
            "HPA name {} is not a valid Kubernetes name (RFC 1123 subdomain)",
            shown(&h.name)
        ));
    }
    Ok(())
}

/// One quantity within physical bounds, as `section.resource` of container `name`.
fn bounded(name: &str, field: &str, value: Option<f64>, max: f64) -> Result<(), String> {
    let Some(v) = value else { return Ok(()) };
    if !v.is_finite() || v <= 0.0 || v > max {
        let why = if !v.is_finite() {
            "not a finite number".to_string()
        } else if v <= 0.0 {
            "not positive".to_string()
        } else {
            format!("above the ceiling of {max:e}")
        };
        return Err(format!(
            "container {name}: the recommended {field} {v:e} is {why}: refused (the usage history is likely corrupt)"
        ));
    }
    Ok(())
}

/// Whether every recommended quantity of `change` is within physical bounds.
pub fn bounds(change: &WorkloadChange) -> Result<(), String> {
    for c in &change.containers {
        let r = &c.recommended;
        bounded(&c.name, "requests.cpu", r.cpu_request, MAX_CPU_CORES)?;
        bounded(&c.name, "limits.cpu", r.cpu_limit, MAX_CPU_CORES)?;
        bounded(&c.name, "requests.memory", r.memory_request, MAX_MEMORY_BYTES)?;
        bounded(&c.name, "limits.memory", r.memory_limit, MAX_MEMORY_BYTES)?;
    }
    Ok(())
}

/// A value as it will be written: rounded the way it is formatted.
fn as_written(v: f64, cpu: bool) -> f64 {
    let text = if cpu { format_cpu(v) } else { format_memory(v) };
    let parsed = if cpu { parse_cpu(&text) } else { parse_memory(&text) };
    parsed.unwrap_or(v)
}

/// Fits one resource of one container: `(request, limit)` recommended and in force.
#[allow(clippy::too_many_arguments)]
fn fit(
    container: &str,
    resource: &str,
    cpu: bool,
    rec_request: Option<f64>,
    rec_limit: &mut Option<f64>,
    live_request: Option<f64>,
    live_limit: Option<f64>,
    source: &str,
    notes: &mut Vec<String>,
) -> Result<(), String> {
    let show = |v: f64| if cpu { format_cpu(v) } else { format_memory(v) };
    let request = rec_request.or(live_request);
    let limit = rec_limit.or(live_limit);
    let (Some(request), Some(limit)) = (request, limit) else {
        return Ok(());
    };
    if as_written(request, cpu) <= as_written(limit, cpu) {
        return Ok(());
    }
    match (rec_request, *rec_limit) {
        (Some(_), None) => {
            notes.push(format!(
                "container {container}: limits.{resource} raised from {} ({source}) to {} so that the new request fits under it",
                show(limit),
                show(request)
            ));
            *rec_limit = Some(request);
            Ok(())
        }
        (Some(_), Some(_)) => Err(format!(
            "container {container}: the recommended requests.{resource} {} is above the recommended limit {}",
            show(request),
            show(limit)
        )),
        _ => Err(format!(
            "container {container}: the recommended limits.{resource} {} is below the request {} in {source}; the {source} differs from what the recommendation was computed from: fix the drift first",
            show(limit),
            show(request)
        )),
    }
}

/// Checks a container's recommendation against the values in force (`live`, from `source`:
/// "the manifest", "the live object") and returns it with its limits raised where needed.
pub fn fit_container(
    c: &ContainerChange,
    live: &Resources,
    source: &str,
    notes: &mut Vec<String>,
) -> Result<ContainerChange, String> {
    let mut out = c.clone();
    let r = &mut out.recommended;
    fit(
        &c.name,
        "cpu",
        true,
        r.cpu_request,
        &mut r.cpu_limit,
        live.cpu_request,
        live.cpu_limit,
        source,
        notes,
    )?;
    fit(
        &c.name,
        "memory",
        false,
        r.memory_request,
        &mut r.memory_limit,
        live.memory_request,
        live.memory_limit,
        source,
        notes,
    )?;
    Ok(out)
}

/// Checks an HPA change against the `(minReplicas, maxReplicas)` in force.
pub fn hpa(h: &HpaChange, live: Option<(Option<u32>, Option<u32>)>, source: &str) -> Result<(), String> {
    let (live_min, live_max) = live.unwrap_or((None, None));
    let min = h.min_replicas.or(live_min).unwrap_or(1);
    if min < 1 {
        return Err(format!("HPA {}: minReplicas {min} is below 1", h.name));
    }
    for target in [h.cpu_utilization, h.memory_utilization].into_iter().flatten() {
        if target < 1 {
            return Err(format!(
                "HPA {}: a utilization target of {target} % is below 1 %",
                h.name
            ));
        }
    }
    let Some(max) = h.max_replicas.or(live_max) else {
        return Ok(());
    };
    if min > max {
        return Err(format!(
            "HPA {}: minReplicas {min} would be above maxReplicas {max} (values after the change, against {source})",
            h.name
        ));
    }
    Ok(())
}

/// Every check of the module on `change`; `live` gives the values in force per container
/// (`None`: not known, only the change's own values are checked) and `live_hpa` the HPA's.
pub fn check(
    change: &WorkloadChange,
    live: impl Fn(&ContainerChange) -> Option<Resources>,
    live_hpa: Option<(Option<u32>, Option<u32>)>,
    source: &str,
) -> Result<Checked, String> {
    names(change)?;
    bounds(change)?;
    let mut notes = Vec::new();
    let mut out = change.clone();
    for (slot, c) in out.containers.iter_mut().zip(&change.containers) {
        let in_force = live(c).unwrap_or_default();
        *slot = fit_container(c, &in_force, source, &mut notes)?;
    }
    if let Some(h) = &change.hpa {
        hpa(h, live_hpa, source)?;
    }
    Ok(Checked { change: out, notes })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{ContainerRole, WorkloadKey, WorkloadKind};

    const MI: f64 = 1024.0 * 1024.0;

    fn change(name: &str, recommended: Resources) -> WorkloadChange {
        WorkloadChange {
            key: WorkloadKey::new("shop", WorkloadKind::Deployment, name),
            containers: vec![ContainerChange {
                name: "app".into(),
                role: ContainerRole::App,
                current: Resources::default(),
                recommended,
            }],
            hpa: None,
        }
    }

    fn req(cpu: Option<f64>, mem: Option<f64>) -> Resources {
        Resources {
            cpu_request: cpu,
            memory_request: mem,
            ..Resources::default()
        }
    }

    #[test]
    fn a_request_above_the_limit_in_force_raises_the_limit() {
        let live = Resources {
            cpu_limit: Some(0.2),
            ..Resources::default()
        };
        let c = check(
            &change("web", req(Some(0.315), None)),
            |_| Some(live),
            None,
            "the manifest",
        )
        .unwrap();
        assert_eq!(c.change.containers[0].recommended.cpu_limit, Some(0.315));
        assert!(
            c.notes[0].contains("limits.cpu raised from 200m (the manifest) to 315m"),
            "{:?}",
            c.notes
        );
        // Under the limit: nothing changes.
        let c = check(
            &change("web", req(Some(0.15), None)),
            |_| Some(live),
            None,
            "the manifest",
        )
        .unwrap();
        assert_eq!(c.change.containers[0].recommended.cpu_limit, None);
        assert!(c.notes.is_empty());
    }

    #[test]
    fn a_limit_below_the_request_in_force_is_refused() {
        let live = Resources {
            memory_request: Some(512.0 * MI),
            ..Resources::default()
        };
        let rec = Resources {
            memory_limit: Some(256.0 * MI),
            ..Resources::default()
        };
        let err = check(&change("web", rec), |_| Some(live), None, "the live object").unwrap_err();
        assert!(err.contains("below the request 512Mi in the live object"), "{err}");
        let both = Resources {
            memory_request: Some(512.0 * MI),
            memory_limit: Some(256.0 * MI),
            ..Resources::default()
        };
        let err = check(&change("web", both), |_| None, None, "x").unwrap_err();
        assert!(err.contains("above the recommended limit"), "{err}");
    }

    #[test]
    fn absurd_quantities_are_refused_naming_the_container() {
        for (rec, why) in [
            (req(None, Some(1e308)), "above the ceiling"),
            (req(Some(f64::NAN), None), "not a finite number"),
            (req(Some(-0.5), None), "not positive"),
            (req(Some(f64::INFINITY), None), "not a finite number"),
            (req(Some(5000.0), None), "above the ceiling"),
        ] {
            let err = check(&change("web", rec), |_| None, None, "x").unwrap_err();
            assert!(err.contains("container app") && err.contains(why), "{err}");
        }
        check(
            &change("web", req(Some(64.0), Some(512.0 * 1024.0 * MI))),
            |_| None,
            None,
            "x",
        )
        .unwrap();
    }

    #[test]
    fn names_that_cannot_be_kubernetes_names_are_refused() {
        let long = "a".repeat(10_000);
        for (ns, name) in [
            ("../../../../tmp/x", "web"),
            ("/tmp/x", "web"),
            ("shop", "a/b"),
            ("shop", long.as_str()),
            ("shop", "Web"),
            ("shop", "web\n# heading"),
            ("", "web"),
        ] {
            let mut c = change(name, req(Some(0.1), None));
            c.key.namespace = ns.into();
            let err = check(&c, |_| None, None, "x").unwrap_err();
            assert!(err.contains("not a valid Kubernetes"), "{err}");
            assert!(
                err.len() < 300,
                "a long name is shortened in the message: {} bytes",
                err.len()
            );
        }
        check(&change("web.v2-api", req(Some(0.1), None)), |_| None, None, "x").unwrap();
    }

    #[test]
    fn hpa_min_above_max_is_refused_against_the_values_in_force() {
        let h = HpaChange {
            name: "web".into(),
            min_replicas: Some(5),
            max_replicas: None,
            cpu_utilization: None,
            memory_utilization: None,
        };
        let err = hpa(&h, Some((Some(2), Some(3))), "the live HPA").unwrap_err();
        assert!(err.contains("minReplicas 5 would be above maxReplicas 3"), "{err}");
        hpa(&h, Some((Some(2), Some(10))), "the live HPA").unwrap();
        let zero = HpaChange {
            min_replicas: Some(0),
            ..h.clone()
        };
        assert!(hpa(&zero, None, "x").is_err());
    }
}
