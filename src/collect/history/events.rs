//! Restarts, OOM kills and HPA saturation from plain series values at each step, reduced in
//! Rust. The PromQL forms (`R - R offset 5m > 0`, `... and on (...) reason == 1`,
//! `current >= bool max`) cost Prometheus a label hash per series and step: 4 s per query at
//! 10,000 pods x 2 days, 0.4 s even when narrowed to the 500 restarted containers. Selecting
//! the same series without an operator costs it a few milliseconds, and the arithmetic here
//! is exactly what those operators did:
//! - a restart counter's increase at step `t` is `v(t) - v(t - step)` when both points exist
//!   (as `R - R offset step`: both sides need a sample in their lookback), counted when > 0;
//! - an increase is an OOM kill when the container's
//!   `kube_pod_container_status_last_terminated_reason{reason="OOMKilled"}` is 1 at `t`;
//! - an HPA is at its maximum at `t` when `current_replicas >= maxReplicas` (each the largest
//!   of its series there, as `max by (namespace, horizontalpodautoscaler)`).
//!
//! Series are not trusted to be unique or ordered: a container scraped by two jobs has two
//! identical counters (a sum would double every restart and OOM kill), and a federated or
//! relabelled source can hand points out of order (a step-to-step difference would then
//! see no increase). Each series' points are sorted and de-duplicated by time, and a
//! container's increase at a step is the largest of its series there, like the CPU series
//! (`cpu`); the duplicates are counted for a warning.
//!
//! The restarted pods narrow the per-step queries by a regex of their names ([`pod_matcher`]),
//! valid RE2 and valid PromQL for any Unicode name: a name is data, not syntax.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use super::Owners;
use super::cpu::{PerContainer, SeriesId, series_id};
use crate::collect::promparse::{Labels, SeriesSink};

/// Positive step-to-step increases of the restart counters, per `(namespace, pod, container)`.
#[derive(Debug)]
pub(super) struct Increases {
    step: i64,
    /// Increases at steps before this are not recorded (the query starts one step early so
    /// the first step has its previous value).
    from: i64,
    current: Option<SeriesId>,
    /// The current series' points, reduced when it ends.
    points: Vec<(i64, f64)>,
    pub(super) events: HashMap<SeriesId, BTreeMap<i64, u32>>,
    /// Points left out: another point of the same series at that time, or another series of
    /// the same container with an increase at that step.
    pub(super) duplicates: u64,
}

impl Increases {
    pub(super) fn new(from: i64, step: i64) -> Self {
        Increases {
            step,
            from,
            current: None,
            points: Vec::new(),
            events: HashMap::new(),
            duplicates: 0,
        }
    }

    /// Reduces the current series: sorted and de-duplicated by time, then its increases
    /// merged into the container's, the largest per step (two series of one container are
    /// one counter seen twice, not two counters).
    fn flush(&mut self) {
        let Some(id) = self.current.take() else {
            self.points.clear();
            return;
        };
        let mut points = std::mem::take(&mut self.points);
        if !points.is_sorted_by_key(|p| p.0) {
            points.sort_by_key(|p| p.0);
        }
        let before = points.len();
        points.dedup_by_key(|p| p.0);
        self.duplicates += (before - points.len()) as u64;
        let mut increases = Vec::new();
        for pair in points.windows(2) {
            let ((tp, vp), (t, v)) = (pair[0], pair[1]);
            if t - tp == self.step && v > vp && t >= self.from {
                increases.push((t, (v - vp).round().min(f64::from(u32::MAX)) as u32));
            }
        }
        if !increases.is_empty() {
            let steps = self.events.entry(id).or_default();
            for (t, n) in increases {
                match steps.entry(t) {
                    std::collections::btree_map::Entry::Vacant(e) => {
                        e.insert(n);
                    }
                    std::collections::btree_map::Entry::Occupied(mut e) => {
                        self.duplicates += 1;
                        let seen = e.get_mut();
                        *seen = (*seen).max(n);
                    }
                }
            }
        }
        points.clear();
        self.points = points;
    }
}

impl SeriesSink for Increases {
    fn series(&mut self, labels: &Labels) {
        self.flush();
        self.current = series_id(labels);
    }

    fn sample(&mut self, t: f64, v: f64) {
        if self.current.is_some() {
            self.points.push((t.round() as i64, v));
        }
    }

    fn end_series(&mut self) {
        self.flush();
    }
}

/// `name` as one alternative of the matcher's regex, escaped for the PromQL string: the
/// string escapes are per character and `|` needs none, so the matcher's string is its
/// alternatives' joined.
fn alternative(name: &str) -> String {
    let quoted = promql_string(&regex_literal(name));
    quoted[1..quoted.len() - 1].to_string()
}

fn matcher(alternatives: &[String]) -> String {
    if alternatives.is_empty() {
        return String::new();
    }
    format!(",pod=~\"{}\"", alternatives.join("|"))
}

/// Adds one part's increases (a span, or half of one the server refused) to those of the
/// parts before: a series in several parts keeps the steps of each.
pub(super) fn merge_increases(
    into: &mut HashMap<SeriesId, BTreeMap<i64, u32>>,
    part: HashMap<SeriesId, BTreeMap<i64, u32>>,
) {
    for (id, steps) in part {
        into.entry(id).or_default().extend(steps);
    }
}

/// Label matchers `,pod=~"..."` that select `pods` by name, for any name: each name is
/// a regex literal with only ASCII punctuation escaped (RE2 rejects `\` before a letter,
/// digit or non-ASCII character), and the regex is a PromQL double-quoted string with
/// backslash, quote and control characters escaped (a backtick in a raw string would end
/// it).
///
/// The pods in order, in matchers of at most `max_bytes` each (a name whose matcher alone
/// is longer gets one of its own): a query per matcher stays under a server's query length
/// limit however many pods there are, and reads only their series. None when `pods` is empty.
pub(crate) fn pod_matchers<'a>(pods: impl IntoIterator<Item = &'a str>, max_bytes: usize) -> Vec<String> {
    // `,pod=~""` and one `|` per alternative after the first.
    const FRAME: usize = 8;
    let mut out = Vec::new();
    let (mut group, mut len) = (Vec::new(), FRAME);
    for pod in pods {
        let a = alternative(pod);
        let more = a.len() + usize::from(!group.is_empty());
        if !group.is_empty() && len + more > max_bytes {
            out.push(matcher(&group));
            (group, len) = (Vec::new(), FRAME);
        }
        len += a.len() + usize::from(!group.is_empty());
        group.push(a);
    }
    if !group.is_empty() {
        out.push(matcher(&group));
    }
    out
}

/// `name` as an RE2 literal.
fn regex_literal(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 4);
    for c in name.chars() {
        // `-` and `_` mean nothing outside a class: left as they are, so names read well.
        if c.is_ascii_punctuation() && c != '-' && c != '_' {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// `text` as a PromQL double-quoted string literal (Go escapes: `\\`, `\"`, `\n`, `\uXXXX`).
pub(crate) fn promql_string(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            // Control characters are all in the Basic Multilingual Plane: one `\uXXXX` each.
            c if c.is_control() => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The increases that happened while the container's last termination reason was
/// `OOMKilled`, found by streaming that reason's series over the same steps.
#[derive(Debug)]
pub(super) struct OomMatches {
    increases: Arc<HashMap<SeriesId, BTreeMap<i64, u32>>>,
    current: Option<SeriesId>,
    pub(super) matched: HashSet<(SeriesId, i64)>,
}

impl OomMatches {
    pub(super) fn new(increases: Arc<HashMap<SeriesId, BTreeMap<i64, u32>>>) -> Self {
        OomMatches {
            increases,
            current: None,
            matched: HashSet::new(),
        }
    }
}

impl SeriesSink for OomMatches {
    fn series(&mut self, labels: &Labels) {
        self.current = series_id(labels).filter(|id| self.increases.contains_key(id));
    }

    fn sample(&mut self, t: f64, v: f64) {
        let Some(id) = &self.current else { return };
        let t = t.round() as i64;
        if v == 1.0 && self.increases[id].contains_key(&t) {
            self.matched.insert((id.clone(), t));
        }
    }
}

/// Restarts and OOM kills per workload x container.
pub(super) fn restarts_and_ooms(
    owners: &Arc<Owners>,
    increases: &HashMap<SeriesId, BTreeMap<i64, u32>>,
    ooms: &HashSet<(SeriesId, i64)>,
) -> PerContainer {
    let mut out = PerContainer::new(owners.clone(), |_, _, _| {});
    for (id, steps) in increases {
        out.series += 1;
        let key = crate::model::ContainerKey::new(owners.resolve(&id.0, &id.1), id.2.as_str());
        let u = out.out.entry(key).or_default();
        for (&t, &n) in steps {
            u.restarts += n;
            if ooms.contains(&(id.clone(), t)) {
                u.oom_kills += n;
                u.last_oom = u.last_oom.max(Some(t));
            }
        }
    }
    out
}

/// An HPA's `(namespace, name)`.
type HpaId = (String, String);
/// At one step: (current replicas, maxReplicas), each when a series had a point.
type HpaStep = (Option<f64>, Option<f64>);

/// Per HPA and step: the largest current replicas and the largest maxReplicas of its series.
#[derive(Debug, Default)]
pub(super) struct HpaSteps {
    current: Option<(HpaId, bool)>,
    steps: HashMap<HpaId, BTreeMap<i64, HpaStep>>,
}

impl SeriesSink for HpaSteps {
    fn series(&mut self, labels: &Labels) {
        let get = |k: &str| labels.get(k).cloned().unwrap_or_default();
        let is_current = match labels.get("__name__").map(String::as_str) {
            Some("kube_horizontalpodautoscaler_status_current_replicas") => true,
            Some("kube_horizontalpodautoscaler_spec_max_replicas") => false,
            _ => {
                self.current = None;
                return;
            }
        };
        self.current = Some(((get("namespace"), get("horizontalpodautoscaler")), is_current));
    }

    fn sample(&mut self, t: f64, v: f64) {
        let Some((hpa, is_current)) = &self.current else { return };
        let step = self
            .steps
            .entry(hpa.clone())
            .or_default()
            .entry(t.round() as i64)
            .or_default();
        let slot = if *is_current { &mut step.0 } else { &mut step.1 };
        *slot = Some(slot.map_or(v, |s| s.max(v)));
    }
}

impl HpaSteps {
    /// Per HPA: (seconds with both values, seconds at maxReplicas).
    pub(super) fn seconds(&self, step: i64) -> Vec<(HpaId, (i64, i64))> {
        let mut out: Vec<_> = self
            .steps
            .iter()
            .map(|(hpa, steps)| {
                let both = steps.values().filter_map(|&(c, m)| Some((c?, m?)));
                let (mut seen, mut at_max) = (0, 0);
                for (c, m) in both {
                    seen += step;
                    if c >= m {
                        at_max += step;
                    }
                }
                (hpa.clone(), (seen, at_max))
            })
            .filter(|(_, (seen, _))| *seen > 0)
            .collect();
        out.sort();
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{ContainerKey, WorkloadKey, WorkloadKind};

    fn labels(pairs: &[(&str, &str)]) -> Labels {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn increases_need_both_steps_and_ooms_need_the_reason_at_that_step() {
        let app = labels(&[("namespace", "shop"), ("pod", "db-0"), ("container", "app")]);
        let mut inc = Increases::new(600, 300);
        inc.series(&app);
        // 300 is before `from`; 1200 follows a gap (no point at 900), so it is not an
        // increase of one step; 1500 (+2) and 2100 (+1) are.
        for (t, v) in [
            (300.0, 0.0),
            (600.0, 0.0),
            (1200.0, 1.0),
            (1500.0, 3.0),
            (1800.0, 3.0),
            (2100.0, 4.0),
        ] {
            inc.sample(t, v);
        }
        let id = series_id(&app).unwrap();
        inc.end_series();
        let steps: Vec<(i64, u32)> = inc.events[&id].iter().map(|(&t, &n)| (t, n)).collect();
        assert_eq!(steps, [(1500, 2), (2100, 1)]);

        let increases = Arc::new(inc.events);
        let mut oom = OomMatches::new(increases.clone());
        oom.series(&labels(&[
            ("namespace", "shop"),
            ("pod", "db-0"),
            ("container", "app"),
            ("reason", "OOMKilled"),
        ]));
        for (t, v) in [(1500.0, 1.0), (1800.0, 1.0), (2100.0, 0.0)] {
            oom.sample(t, v);
        }
        // Another container's reason never matches.
        oom.series(&labels(&[("namespace", "shop"), ("pod", "db-1"), ("container", "app")]));
        oom.sample(1500.0, 1.0);

        let mut owners = Owners::default();
        owners.insert_pod("shop", "db-0", "StatefulSet", "db");
        let out = restarts_and_ooms(&Arc::new(owners), &increases, &oom.matched);
        let key = ContainerKey::new(WorkloadKey::new("shop", WorkloadKind::StatefulSet, "db"), "app");
        let u = &out.out[&key];
        assert_eq!((u.restarts, u.oom_kills, u.last_oom), (3, 2, Some(1500)));
    }

    #[test]
    fn duplicate_and_unordered_series_count_each_restart_once() {
        let app = labels(&[("namespace", "shop"), ("pod", "db-0"), ("container", "app")]);
        let mut inc = Increases::new(0, 300);
        // The same counter scraped by two jobs, the second one out of order with a repeated
        // point: one restart at 600 and one at 1200, never two.
        inc.series(&app);
        for (t, v) in [(300.0, 0.0), (600.0, 1.0), (900.0, 1.0), (1200.0, 2.0)] {
            inc.sample(t, v);
        }
        inc.end_series();
        inc.series(&app);
        for (t, v) in [(1200.0, 2.0), (600.0, 1.0), (300.0, 0.0), (900.0, 1.0), (900.0, 1.0)] {
            inc.sample(t, v);
        }
        inc.end_series();
        let id = series_id(&app).unwrap();
        let steps: Vec<(i64, u32)> = inc.events[&id].iter().map(|(&t, &n)| (t, n)).collect();
        assert_eq!(steps, [(600, 1), (1200, 1)]);
        assert_eq!(inc.duplicates, 3);
    }

    #[test]
    fn a_series_in_two_parts_keeps_the_increases_of_both() {
        let mut first = Increases::new(600, 300);
        let app = labels(&[("namespace", "shop"), ("pod", "web-1"), ("container", "app")]);
        first.series(&app);
        for (t, v) in [(300.0, 0.0), (600.0, 1.0), (900.0, 1.0)] {
            first.sample(t, v);
        }
        first.end_series();
        let mut second = Increases::new(1200, 300);
        second.series(&app);
        for (t, v) in [(900.0, 1.0), (1200.0, 2.0)] {
            second.sample(t, v);
        }
        second.end_series();
        let mut all = HashMap::new();
        merge_increases(&mut all, first.events);
        merge_increases(&mut all, second.events);
        let id = series_id(&app).unwrap();
        assert_eq!(
            all[&id].iter().map(|(&t, &n)| (t, n)).collect::<Vec<_>>(),
            [(600, 1), (1200, 1)]
        );
    }

    fn pod_matcher<'a>(pods: impl IntoIterator<Item = &'a str>) -> String {
        pod_matchers(pods, usize::MAX).pop().unwrap_or_default()
    }

    #[test]
    fn pod_matchers_split_the_pods_under_their_bound() {
        let few: Vec<String> = (0..10).map(|i| format!("web-{i}")).collect();
        let m = pod_matchers(few.iter().map(String::as_str), 8 * 1024);
        assert_eq!(m, [pod_matcher(few.iter().map(String::as_str))]);
        // 2,000 pods of a generated cluster's name length: about 70 KiB of regex in one
        // matcher (VictoriaMetrics refuses queries over 16 KiB by default), so several
        // matchers under 8 KiB that name every pod once, in order.
        let many: Vec<String> = (0..2000).map(|i| format!("checkout-worker-7d9f8c6b5-{i:05}")).collect();
        assert!(pod_matcher(many.iter().map(String::as_str)).len() > 60 * 1024);
        let m = pod_matchers(many.iter().map(String::as_str), 8 * 1024);
        assert!(m.len() >= 8, "{}", m.len());
        assert!(m.iter().all(|m| m.len() <= 8 * 1024 && m.starts_with(",pod=~\"")));
        let named: Vec<&str> = m.iter().flat_map(|m| m[7..m.len() - 1].split('|')).collect();
        assert_eq!(named, many.iter().map(String::as_str).collect::<Vec<_>>());
        // A name longer than the bound still gets a matcher.
        let long = "x".repeat(300);
        assert_eq!(pod_matchers([long.as_str(), "a"], 100).len(), 2);
        assert!(pod_matchers(std::iter::empty(), 100).is_empty());
    }

    #[test]
    fn pod_matchers_are_valid_for_any_name() {
        assert_eq!(pod_matcher(["web-1", "db.0"]), r#",pod=~"web-1|db\\.0""#);
        assert_eq!(pod_matcher(["a`b"]), ",pod=~\"a\\\\`b\"");
        // Non-ASCII letters are never escaped (RE2: `invalid escape sequence`).
        assert_eq!(pod_matcher(["zürich"]), r#",pod=~"zürich""#);
        assert_eq!(pod_matcher(["a\"b\nc"]), r#",pod=~"a\\\"b\nc""#);
        assert_eq!(pod_matcher(std::iter::empty()), "");
    }

    #[test]
    fn hpa_seconds_count_steps_with_both_values() {
        let mut h = HpaSteps::default();
        let cur = labels(&[
            ("__name__", "kube_horizontalpodautoscaler_status_current_replicas"),
            ("namespace", "shop"),
            ("horizontalpodautoscaler", "web"),
        ]);
        let max = labels(&[
            ("__name__", "kube_horizontalpodautoscaler_spec_max_replicas"),
            ("namespace", "shop"),
            ("horizontalpodautoscaler", "web"),
        ]);
        h.series(&cur);
        for (t, v) in [(300.0, 3.0), (600.0, 10.0), (900.0, 10.0)] {
            h.sample(t, v);
        }
        h.series(&max);
        for t in [300.0, 600.0] {
            h.sample(t, 10.0);
        }
        assert_eq!(h.seconds(300), [(("shop".to_string(), "web".to_string()), (600, 300))]);
    }
}
