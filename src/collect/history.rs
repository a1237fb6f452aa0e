//! The query plan: a fixed set of cluster-wide queries, grouped `by (namespace, pod,
//! container)`, whose count does not depend on the number of workloads. Prometheus does the
//! heavy reduction (rates, `max_over_time`, counter deltas); Rust maps pods to the workloads
//! that owned them (`Owners`: kube-state-metrics owner series cover pods that no longer
//! exist) and reduces the streamed answers into one summary per workload x container.
//!
//! The plan for a window `(start, end]` at step `s` (default 14 d at 5 m: 18 queries):
//! - owners: 3 instant queries (`fetch_owners`);
//! - CPU: `rate(container_cpu_usage_seconds_total[s])` by pod and container as range queries
//!   at step `s`, split into chunks of 2 days (and never more than 11,000 points per series;
//!   a chunk the server refuses for loading too many samples is halved and retried);
//! - memory: daily peaks of `container_memory_working_set_bytes` (`max_over_time` over each
//!   UTC day, one range query at step 1 d plus an instant query per partial day at either
//!   edge); the window's peak is the largest daily peak, so it costs no extra query. Days run
//!   `(midnight, next midnight]`; the first day starts at the window start, inclusive;
//! - restarts and OOM kills: one range query each over the restart counter's per-step increase
//!   (`R - R offset s > 0`), sparse since most steps have none; an OOM kill is an increase at
//!   a step where `kube_pod_container_status_last_terminated_reason{reason="OOMKilled"}` is 1
//!   (the kube-prometheus "OOMKilled" pattern), so both are exact integers, not extrapolated;
//! - CFS throttling: `increase()` of the throttled and total period counters over the window;
//! - HPA: one range query of `current_replicas >= bool maxReplicas` per HPA and step.
//!
//! Pooled statistics (what the VPA does): a workload's CPU distribution is the distribution
//! of every 5-minute rate point of every pod it owned in the window, not a max or mean of
//! per-pod percentiles. Each point goes into the workload x container's `Sketch` (DDSketch,
//! 1 % relative error, mergeable), so pooling chunks, pods and retries is exact merging and
//! memory is a few hundred counters per container. The workload's total demand at a step is
//! the sum of its points at that step (within a chunk, so a chunk holds one row of steps per
//! workload); its replica count at a step is the number of pods with a point there.

mod cpu;
mod owners;

use std::collections::HashSet;
use std::sync::Arc;

use futures::stream::{self, StreamExt};

use self::cpu::{CpuChunk, PerContainer};
pub use self::owners::Owners;
use super::Error;
use super::prometheus::{CollectSeries, PromClient};
use crate::model::{ContainerUsage, UsageSet, WorkloadKey, WorkloadKind};

/// The window and resolution of the history to read.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Window {
    /// End of the window, unix seconds (evaluation time of instant queries).
    pub end: i64,
    /// Length of the window in seconds (default 14 days, as KRR).
    pub length: i64,
    /// Resolution of the CPU distribution and width of its rate window (default 5 minutes:
    /// the VPA's and KRR's sample width, long enough to smooth scrape jitter).
    pub step: i64,
}

const DAY: i64 = 86_400;

impl Window {
    fn start(&self) -> i64 {
        self.end - self.length
    }

    fn range(&self) -> String {
        format!("{}s", self.length)
    }

    /// Evaluation times of the CPU rate: multiples of `step`, each rate window inside the
    /// history window.
    fn eval_bounds(&self) -> (i64, i64) {
        let start = self.start();
        // The first multiple of `step` whose rate window starts inside the history window.
        let first = (start + 2 * self.step - 1).div_euclid(self.step) * self.step;
        let last = self.end.div_euclid(self.step) * self.step;
        (first, last)
    }

    /// `[first, last]` evaluation spans of at most `max_points` steps each.
    fn spans(&self, max_points: i64) -> Vec<(i64, i64)> {
        let (first, last) = self.eval_bounds();
        let span = max_points.clamp(1, MAX_POINTS) * self.step;
        (0..)
            .map(|i| first + i * span)
            .take_while(|&s| s <= last)
            .map(|s| (s, (s + span - self.step).min(last)))
            .collect()
    }
}

/// Prometheus refuses range queries of more than 11,000 points per series.
const MAX_POINTS: i64 = 11_000;
/// CPU chunk length. Two days keeps a 14-day window at 7 queries, and a chunk's answer
/// within Prometheus' default 50 M `--query.max-samples` up to ~80,000 containers at 5 m.
const CHUNK_SECONDS: i64 = 2 * DAY;
/// Concurrent CPU chunks (each holds one row of steps per workload while it is read).
const CHUNK_CONCURRENCY: usize = 2;

fn label<'a>(s: &'a super::prometheus::InstantSample, name: &str) -> &'a str {
    s.labels.get(name).map(String::as_str).unwrap_or("")
}

/// kube-state-metrics writes `<none>` for a missing owner.
fn has_owner(kind: &str) -> bool {
    !kind.is_empty() && kind != "<none>"
}

const KSM_HINT: &str = "hint: is kube-state-metrics installed and scraped by this prometheus?";

/// Reads the owner series (3 queries).
pub async fn fetch_owners(prom: &PromClient, w: &Window) -> Result<Owners, Error> {
    let range = w.range();
    let pods = format!("max by (namespace, pod, owner_kind, owner_name) (max_over_time(kube_pod_owner[{range}]))");
    let sets = format!(
        "max by (namespace, replicaset, owner_kind, owner_name) (max_over_time(kube_replicaset_owner[{range}]))"
    );
    let jobs = format!("max by (namespace, job_name, owner_kind, owner_name) (max_over_time(kube_job_owner[{range}]))");
    let (pods, sets, jobs) = futures::try_join!(
        prom.query(&pods, w.end),
        prom.query(&sets, w.end),
        prom.query(&jobs, w.end)
    )?;
    let mut owners = Owners::default();
    owners.ksm_pods = pods.len();
    for s in pods.iter().filter(|s| has_owner(label(s, "owner_kind"))) {
        owners.insert_pod(
            label(s, "namespace"),
            label(s, "pod"),
            label(s, "owner_kind"),
            label(s, "owner_name"),
        );
    }
    for s in sets.iter().filter(|s| has_owner(label(s, "owner_kind"))) {
        owners.insert_replica_set(
            label(s, "namespace"),
            label(s, "replicaset"),
            label(s, "owner_kind"),
            label(s, "owner_name"),
        );
    }
    for s in jobs.iter().filter(|s| has_owner(label(s, "owner_kind"))) {
        owners.insert_job(
            label(s, "namespace"),
            label(s, "job_name"),
            label(s, "owner_kind"),
            label(s, "owner_name"),
        );
    }
    if pods.is_empty() {
        prom.warn(format!(
            "no kube_pod_owner series (kube-state-metrics) in the window: gone pods are reported as their own workloads, and restarts, OOM kills and HPA history are unknown\n{KSM_HINT}"
        ));
    }
    Ok(owners)
}

/// Container selector shared by every cAdvisor query: `container=""` is the pod-level cgroup
/// and `POD` the pause container; neither is a container anyone sizes.
const CONTAINERS: &str = r#"container!="",container!="POD""#;

/// The day (its midnight, unix seconds) a daily-peak evaluation at `t` stands for: days run
/// `(midnight, next midnight]`.
fn day_of(t: i64) -> i64 {
    (t - 1).div_euclid(DAY) * DAY
}

fn is_too_many_samples(e: &Error) -> bool {
    let text = match e {
        Error::PrometheusQuery { error, .. } => error,
        Error::PrometheusStatus { detail, .. } => detail,
        _ => return false,
    };
    [
        "too many samples",
        "maxSamplesPerQuery",
        "maximum resolution",
        "maxPointsPerTimeseries",
    ]
    .iter()
    .any(|m| text.contains(m))
}

/// Reads one CPU span, halving it while the server refuses it for its size.
async fn cpu_span(
    prom: &PromClient,
    promql: &str,
    owners: &Arc<Owners>,
    span: (i64, i64),
    step: i64,
) -> Result<Vec<CpuChunk>, Error> {
    let mut todo = vec![span];
    let mut done = Vec::new();
    while let Some((s, e)) = todo.pop() {
        let make = || CpuChunk::new(owners.clone(), s, e, step);
        match prom.query_range_into(promql, s, e, step, make).await {
            Ok(chunk) => done.push(chunk),
            Err(err) if is_too_many_samples(&err) && e > s => {
                let mid = s + ((e - s) / step / 2) * step;
                tracing::info!(
                    start = s,
                    end = e,
                    "prometheus refused a chunk as too large; splitting it"
                );
                todo.push((mid + step, e));
                todo.push((s, mid));
            }
            Err(err) => return Err(err),
        }
    }
    Ok(done)
}

/// Reads usage for every container in the window with a fixed number of queries (see the
/// module docs): about 10 for 2 days, 18 for 14 days, whatever the number of workloads.
pub async fn fetch_usage(prom: &PromClient, w: &Window, owners: &Owners) -> Result<UsageSet, Error> {
    let owners = Arc::new(owners.clone());
    let mut usage = UsageSet {
        start: w.start(),
        end: w.end,
        step: w.step,
        ..Default::default()
    };
    let (events, hpa, cpu) = futures::join!(
        container_events(prom, w, &owners),
        hpa_at_max(prom, w),
        cpu(prom, w, &owners, &mut usage)
    );
    cpu?;
    let (peaks, counters) = events?;
    if peaks.series == 0 {
        prom.warn(
            "no container_memory_working_set_bytes series (cAdvisor) in the window: no memory recommendation can be made\nhint: is the kubelet's cAdvisor endpoint (/metrics/cadvisor) scraped?"
                .to_string(),
        );
    }
    peaks.merge_into(&mut usage);
    for c in counters {
        c.merge_into(&mut usage);
    }
    for (key, (seconds, at_max)) in hpa? {
        let u = usage.workloads.entry(key).or_default();
        u.hpa_seconds += seconds;
        u.hpa_at_max_seconds += at_max;
    }
    let skipped = prom.stats().skipped.load(std::sync::atomic::Ordering::Relaxed);
    if skipped > 0 {
        prom.warn(format!(
            "skipped {skipped} NaN, infinite or non-numeric points in prometheus answers"
        ));
    }
    // Containers seen only in the memory or event queries have no CPU history; keep those
    // with a memory peak so the report can say so.
    usage
        .containers
        .retain(|_, u: &mut ContainerUsage| u.memory_peak.is_some() || !u.cpu.is_empty());
    Ok(usage)
}

/// CPU: the pooled sketches, first/last seen, pods, workload totals and replicas.
async fn cpu(prom: &PromClient, w: &Window, owners: &Arc<Owners>, usage: &mut UsageSet) -> Result<(), Error> {
    let promql = format!(
        "sum by (namespace, pod, container) (rate(container_cpu_usage_seconds_total{{{CONTAINERS}}}[{}s]))",
        w.step
    );
    let spans = w.spans(CHUNK_SECONDS / w.step.max(1));
    let mut answers = stream::iter(spans)
        .map(|span| cpu_span(prom, &promql, owners, span, w.step))
        .buffer_unordered(CHUNK_CONCURRENCY);
    let mut seen = HashSet::new();
    let (mut series, mut dropped, mut bad) = (0, 0, 0);
    while let Some(chunks) = answers.next().await {
        for chunk in chunks? {
            series += chunk.series_count();
            dropped += chunk.dropped;
            bad += chunk.bad_series;
            chunk.merge_into(usage, &mut seen);
        }
    }
    if series == 0 {
        return Err(Error::MissingMetric {
            metric: "container_cpu_usage_seconds_total",
            hint: "is the kubelet's cAdvisor endpoint (/metrics/cadvisor) scraped, and is the window right?",
        });
    }
    if dropped > 0 {
        prom.warn(format!("ignored {dropped} negative CPU rate points"));
    }
    if bad > 0 {
        prom.warn(format!(
            "ignored {bad} CPU series without namespace, pod or container labels (relabelled cAdvisor?)"
        ));
    }
    Ok(())
}

/// Daily memory peaks, restarts, OOM kills and CFS counters.
async fn container_events(
    prom: &PromClient,
    w: &Window,
    owners: &Arc<Owners>,
) -> Result<(PerContainer, Vec<PerContainer>), Error> {
    let peaks = daily_peaks(prom, w, owners);
    let step = w.step;
    let restarts_total = "kube_pod_container_status_restarts_total";
    let increase = format!("({restarts_total} - {restarts_total} offset {step}s > 0)");
    let restarts = format!("sum by (namespace, pod, container) {increase}");
    let ooms = format!(
        "sum by (namespace, pod, container) ({increase} and on (namespace, pod, container) (kube_pod_container_status_last_terminated_reason{{reason=\"OOMKilled\"}} == 1))"
    );
    let range = w.range();
    let throttled = format!(
        "sum by (namespace, pod, container) (increase(container_cpu_cfs_throttled_periods_total{{{CONTAINERS}}}[{range}]))"
    );
    let periods = format!(
        "sum by (namespace, pod, container) (increase(container_cpu_cfs_periods_total{{{CONTAINERS}}}[{range}]))"
    );
    let sparse = |promql: String, apply: fn(&mut ContainerUsage, i64, f64)| async move {
        let mut out = PerContainer::new(owners.clone(), apply);
        for (s, e) in w.spans(MAX_POINTS) {
            let part = prom
                .query_range_into(&promql, s, e, step, || PerContainer::new(owners.clone(), apply))
                .await?;
            out.series += part.series;
            for (k, u) in part.out {
                out.out.entry(k).or_default().merge(&u);
            }
        }
        Ok::<_, Error>(out)
    };
    let instant = |promql: String, apply: fn(&mut ContainerUsage, i64, f64)| async move {
        prom.query_into(&promql, w.end, || PerContainer::new(owners.clone(), apply))
            .await
    };
    let (peaks, restarts, ooms, throttled, periods) = futures::try_join!(
        peaks,
        sparse(restarts, |u, _, v| u.restarts += v.round() as u32),
        sparse(ooms, |u, t, v| {
            u.oom_kills += v.round() as u32;
            u.last_oom = u.last_oom.max(Some(t));
        }),
        instant(throttled, |u, _, v| u.cfs_throttled_periods += v.max(0.0)),
        instant(periods, |u, _, v| u.cfs_periods += v.max(0.0)),
    )?;
    Ok((peaks, vec![restarts, ooms, throttled, periods]))
}

/// Peak working set per UTC day (at most 3 queries: the first partial day, the full days,
/// the last partial day). Ranges are in milliseconds so that a sample at exactly midnight
/// falls in one day only, with Prometheus 2 (closed ranges) and 3 (left-open ranges) alike.
async fn daily_peaks(prom: &PromClient, w: &Window, owners: &Arc<Owners>) -> Result<PerContainer, Error> {
    let peak = |range_ms: i64| {
        format!(
            "max by (namespace, pod, container) (max_over_time(container_memory_working_set_bytes{{{CONTAINERS}}}[{range_ms}ms]))"
        )
    };
    let apply: fn(&mut ContainerUsage, i64, f64) = |u, t, v| u.observe_daily_peak(day_of(t), v);
    let make = || PerContainer::new(owners.clone(), apply);
    let (start, end) = (w.start(), w.end);
    let m1 = (start.div_euclid(DAY) + 1) * DAY;
    let m_last = end.div_euclid(DAY) * DAY;
    // The first day, from the window start (inclusive) to its midnight or the window end.
    let first_end = m1.min(end);
    let first_query = peak((first_end - start) * 1000 + 1);
    let first = prom.query_into(&first_query, first_end, make);
    let full = async {
        if m1 + DAY <= m_last {
            prom.query_range_into(&peak(DAY * 1000 - 1), m1 + DAY, m_last, DAY, make)
                .await
                .map(Some)
        } else {
            Ok(None)
        }
    };
    let last = async {
        if end > m_last && m_last >= m1 {
            prom.query_into(&peak((end - m_last) * 1000 - 1), end, make)
                .await
                .map(Some)
        } else {
            Ok(None)
        }
    };
    let (mut out, full, last) = futures::try_join!(first, full, last)?;
    for part in [full, last].into_iter().flatten() {
        out.series += part.series;
        for (k, u) in part.out {
            out.out.entry(k).or_default().merge(&u);
        }
    }
    Ok(out)
}

/// Seconds of HPA status history and seconds at `maxReplicas`, per target workload. The
/// HPA's target is taken to be the Deployment of the same name (kube-state-metrics does not
/// export `scaleTargetRef` by default).
async fn hpa_at_max(prom: &PromClient, w: &Window) -> Result<Vec<(WorkloadKey, (i64, i64))>, Error> {
    let by = "max by (namespace, horizontalpodautoscaler)";
    let promql = format!(
        "{by} (kube_horizontalpodautoscaler_status_current_replicas) >= bool on (namespace, horizontalpodautoscaler) {by} (kube_horizontalpodautoscaler_spec_max_replicas)"
    );
    let mut out = std::collections::BTreeMap::<WorkloadKey, (i64, i64)>::new();
    for (s, e) in w.spans(MAX_POINTS) {
        let answer = prom
            .query_range_into(&promql, s, e, w.step, CollectSeries::default)
            .await?;
        for series in answer.0 {
            let get = |k: &str| series.labels.get(k).cloned().unwrap_or_default();
            let key = WorkloadKey::new(
                get("namespace"),
                WorkloadKind::Deployment,
                get("horizontalpodautoscaler"),
            );
            let entry = out.entry(key).or_default();
            for &(_, v) in &series.values {
                entry.0 += w.step;
                if v >= 1.0 {
                    entry.1 += w.step;
                }
            }
        }
    }
    Ok(out.into_iter().collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eval_bounds_are_aligned_and_inside_the_window() {
        let w = Window {
            end: 1_000_123,
            length: 86_400,
            step: 300,
        };
        let (first, last) = w.eval_bounds();
        assert_eq!(first % 300, 0);
        assert_eq!(last % 300, 0);
        assert!(first - 300 >= w.end - w.length);
        assert!(last <= w.end && w.end - last < 300);
    }

    #[test]
    fn spans_cover_the_bounds_without_overlap() {
        let w = Window {
            end: 1_793_491_200,
            length: 14 * DAY,
            step: 300,
        };
        let spans = w.spans(CHUNK_SECONDS / 300);
        assert_eq!(spans.len(), 7);
        let (first, last) = w.eval_bounds();
        assert_eq!(spans[0].0, first);
        assert_eq!(spans.last().unwrap().1, last);
        for pair in spans.windows(2) {
            assert_eq!(pair[0].1 + 300, pair[1].0);
            assert!((pair[0].1 - pair[0].0) / 300 < MAX_POINTS);
        }
        assert_eq!(w.spans(MAX_POINTS).len(), 1);
    }

    #[test]
    fn days_end_at_midnight_inclusive() {
        assert_eq!(day_of(2 * DAY), DAY);
        assert_eq!(day_of(2 * DAY + 1), 2 * DAY);
        assert_eq!(day_of(3 * DAY - 1), 2 * DAY);
    }

    #[test]
    fn recognises_size_refusals() {
        let e = Error::PrometheusQuery {
            error_type: "execution".into(),
            error: "query processing would load too many samples into memory in query execution".into(),
            query: String::new(),
        };
        assert!(is_too_many_samples(&e));
        assert!(!is_too_many_samples(&Error::Config("x".into())));
    }
}
