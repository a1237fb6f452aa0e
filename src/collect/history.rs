//! The query plan: a fixed set of cluster-wide requests whose count does not depend on the
//! number of workloads. Each piece of history is read the way that costs Prometheus least:
//! raw chunks by remote read where the reduction is cheap in Rust (CPU rates, daily peaks),
//! one-pass functions where the answer is small (`changes`, `increase` over the window),
//! plain selections instead of per-step operators (restarts, OOM kills, HPA); measured in
//! `benches/e2e.rs`. Rust maps pods to the workloads that owned them (`Owners`:
//! kube-state-metrics owner series cover pods that no longer exist) and reduces the streamed
//! answers into one summary per workload x container.
//!
//! The plan for a window `(start, end]` at step `s` (2 d at 5 m: 11 requests, 14 d: 16; 13
//! and 18 without remote read, plus one remote-read probe against a server that has none;
//! 2 fewer when no container restarted, 2 more per further 8 KiB of restarted pods' names,
//! and one more per part a server refuses for its size). Every selector, `by (...)` and remote-read query
//! carries the run's `--prometheus-selector` (`scope::Scope`, added by one function):
//! - owners: one `/api/v1/series` request for the three kube-state-metrics owner metrics
//!   (`fetch_owners`; index only, no sample decoded);
//! - CPU: `rate(container_cpu_usage_seconds_total[s])` at step `s`, in chunks of at most 2
//!   days and at least two. By remote read when the server has it (`/api/v1/read`, streamed
//!   XOR chunks: Prometheus sends the stored chunks as they are, and the rate is Prometheus 2's
//!   `extrapolatedRate` computed in Rust, the same doubles as the server's); else as PromQL
//!   range queries (never more than 11,000 points per series; a chunk the server refuses for
//!   loading too many samples is halved and retried). No `sum by` on the server either way:
//!   duplicate series are resolved per step in Rust (see `cpu`). The same points also fill a
//!   sketch per UTC day (the daily levels that level-shift and trend detection read), and the
//!   raw samples give the peak 2-minute rate (bursts a CPU limit must leave room for; without
//!   remote read one `max_over_time(rate(...[2m])[window:1m])` subquery);
//! - memory: daily peaks of `container_memory_working_set_bytes`, by remote read reduced in
//!   Rust, or `max_over_time` over each UTC day (one range query at step 1 d plus an instant
//!   query per partial day at either edge); the window's peak is the largest daily peak, so
//!   it costs no extra query. Days run `(midnight, next midnight]`; the first day starts at
//!   the window start, inclusive;
//! - restarts and OOM kills: `stddev_over_time()` of the restart counter over the window finds the
//!   containers that restarted; two range queries over those pods only count the counter's
//!   per-step increases and the ones with an `OOMKilled` last-terminated reason, exactly
//!   (`restart_events`; skipped when nothing restarted); the OOM query also selects those
//!   pods' `kube_pod_container_resource_limits`, so each kill carries the memory limit in
//!   force at that step (the OOM bump's anchor, `limits`);
//! - CFS throttling: `increase()` of the throttled and total period counters over the window,
//!   and the lowest CPU limit in force over it (`min_over_time`: the throttling raise's
//!   anchor);
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
mod events;
mod limits;
mod owners;
mod short_rate;

use std::sync::Arc;

use futures::stream::{self, StreamExt};

use self::cpu::{CpuChunk, PerContainer};
pub(crate) use self::events::promql_string;
pub use self::owners::Owners;
use super::Error;
use super::prometheus::PromClient;
use crate::model::{ContainerUsage, UsageSet, WorkloadKey, WorkloadKind};

pub use crate::model::Window;

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

    /// Steps per CPU chunk: at most 2 days, and short enough that a window yields at least
    /// [`CHUNK_CONCURRENCY`] chunks, so Prometheus evaluates and encodes them on as many cores.
    fn chunk_points(&self) -> i64 {
        let (first, last) = self.eval_bounds();
        let points = (last - first) / self.step.max(1) + 1;
        let per_chunk = (points + CHUNK_CONCURRENCY as i64 - 1) / CHUNK_CONCURRENCY as i64;
        per_chunk.clamp(1, CHUNK_SECONDS / self.step.max(1))
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
/// Longest CPU chunk. Two days keeps a 14-day window at 7 queries, and a chunk's answer
/// within Prometheus' default 50 M `--query.max-samples` up to ~80,000 containers at 5 m.
const CHUNK_SECONDS: i64 = 2 * DAY;
/// Concurrent CPU chunks (each holds one row of steps per workload and a bit per series and
/// step while it is read). Shorter windows are cut into this many chunks.
const CHUNK_CONCURRENCY: usize = 2;

const KSM_HINT: &str = "hint: is kube-state-metrics installed and scraped by this prometheus?";

/// Reads the owner series of the window: one `/api/v1/series` request for the three owner
/// metrics. Ownership is in the labels, so the index answers it without decoding a sample
/// (three `max_over_time` queries took Prometheus ~0.5 s of CPU at 10,000 pods x 2 days; the
/// series request ~0.1 s). Series are matched at chunk granularity, so a pod gone shortly
/// before the window may be included: it maps pods, it never adds usage.
pub async fn fetch_owners(prom: &PromClient, w: &Window) -> Result<Owners, Error> {
    let selectors = ["kube_pod_owner", "kube_replicaset_owner", "kube_job_owner"].map(|m| prom.scope().select(m, ""));
    let selectors = selectors.each_ref().map(String::as_str);
    let owners = prom.series_into(&selectors, w.start(), w.end, Owners::default).await?;
    if owners.ksm_pods == 0 {
        prom.warn(format!(
            "no kube_pod_owner series (kube-state-metrics) in the window: gone pods are reported as their own workloads, and restarts, OOM kills and HPA history are unknown\n{KSM_HINT}"
        ));
    }
    Ok(owners)
}

/// Container selector shared by every cAdvisor query: `container=""` is the pod-level cgroup
/// and `POD` the pause container; neither is a container anyone sizes.
pub(crate) const CONTAINERS: &str = r#"container!="",container!="POD""#;

/// `metric{container!="",container!="POD",<scope>}`: every cAdvisor selector.
fn containers(prom: &PromClient, metric: &str) -> String {
    prom.scope().select(metric, CONTAINERS)
}

/// `metric{container!="",container!="POD"}` ([`CONTAINERS`]) with the scope's matchers, as
/// remote-read matchers.
fn container_matchers(prom: &PromClient, metric: &str) -> Vec<super::remote_read::Matcher> {
    use super::remote_read::Matcher;
    prom.scope().remote([
        Matcher::Eq("__name__".into(), metric.into()),
        Matcher::Neq("container".into(), String::new()),
        Matcher::Neq("container".into(), "POD".into()),
    ])
}

/// Why a metric the plan needs has no series: with a selector, the error says that nothing
/// matched it and which values its labels have for that metric (one `/api/v1/label/.../values`
/// request per label, only on this error path); without one, the exporter is missing.
pub async fn missing(prom: &PromClient, w: &Window, metric: &'static str, hint: &'static str) -> Error {
    let scope = prom.scope();
    if scope.is_empty() {
        return Error::MissingMetric { metric, hint };
    }
    let mut present = Vec::new();
    for label in scope.names() {
        match prom.label_values(label, metric, w.start(), w.end).await {
            Ok(values) if values.is_empty() => present.push(format!("no {metric} series carries the label {label}")),
            Ok(values) => {
                const SHOWN: usize = 20;
                let mut shown: Vec<String> = values
                    .iter()
                    .take(SHOWN)
                    .map(|v| format!("{label}={}", promql_string(v)))
                    .collect();
                if values.len() > SHOWN {
                    shown.push(format!("and {} more", values.len() - SHOWN));
                }
                present.push(format!("the labels present are {}", shown.join(", ")));
            }
            Err(e) => present.push(format!("the values of {label} could not be listed: {e}")),
        }
    }
    Error::NoSeriesMatch {
        selector: scope.to_string(),
        metric,
        present: present.join("; "),
    }
}

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
        // VictoriaMetrics: "not enough memory for processing ... data points".
        "not enough memory for processing",
    ]
    .iter()
    .any(|m| text.contains(m))
}

/// Reads one CPU span: by remote read when the server has it, else by the PromQL range
/// query, halving it while the server refuses it for its size.
async fn cpu_span(
    prom: &PromClient,
    promql: &str,
    owners: &Arc<Owners>,
    span: (i64, i64),
    step: i64,
) -> Result<Vec<CpuChunk>, Error> {
    if prom.remote_read() {
        match remote_cpu_span(prom, owners, span, step).await {
            Ok(chunk) => return Ok(vec![chunk]),
            // Whatever went wrong, PromQL may still work: one try of remote read per run.
            Err(e) => prom.remote_read_unsupported(&e),
        }
    }
    halving("CPU chunk", span, step_halves(step), async |(s, e)| {
        let make = || CpuChunk::new(owners.clone(), s, e, step);
        prom.query_range_into(promql, s, e, step, make).await
    })
    .await
}

/// `(first step, last step)`, unix seconds.
type Span = (i64, i64);

/// Cuts a step-aligned span `(first step, last step)` into two halves on the step grid; a
/// span of one step stays whole.
fn step_halves(step: i64) -> impl Fn(Span) -> Option<(Span, Span)> {
    move |(s, e)| {
        let mid = s + ((e - s) / step / 2) * step;
        (e > s).then_some(((s, mid), (mid + step, e)))
    }
}

/// Runs `attempt` on `span` and, while the server refuses a part for its size (see
/// [`is_too_many_samples`]), on the two parts `split` cuts it into, first part first; `None`
/// from `split` lets the refusal stand. The answers of the parts, in the order run.
async fn halving<T>(
    what: &str,
    span: (i64, i64),
    split: impl Fn((i64, i64)) -> Option<((i64, i64), (i64, i64))>,
    mut attempt: impl AsyncFnMut((i64, i64)) -> Result<T, Error>,
) -> Result<Vec<T>, Error> {
    let mut todo = vec![span];
    let mut done = Vec::new();
    while let Some(part) = todo.pop() {
        match attempt(part).await {
            Ok(answer) => done.push(answer),
            Err(err) if is_too_many_samples(&err) => {
                let Some((first, second)) = split(part) else {
                    return Err(err);
                };
                tracing::info!(
                    start = part.0,
                    end = part.1,
                    "prometheus refused a {what} as too large; splitting it"
                );
                todo.push(second);
                todo.push(first);
            }
            Err(err) => return Err(err),
        }
    }
    Ok(done)
}

/// The raw `container_cpu_usage_seconds_total` samples of one span by remote read (the TSDB's
/// chunks, streamed: Prometheus neither evaluates PromQL nor formats a number), turned into
/// the same 5-minute rate points in Rust (`cpu::RateSink`). Evaluating the rate range query
/// and encoding its answer as JSON cost Prometheus about twice its own single pass over the
/// same samples (10,000 pods x 2 days).
async fn remote_cpu_span(
    prom: &PromClient,
    owners: &Arc<Owners>,
    (s, e): (i64, i64),
    step: i64,
) -> Result<CpuChunk, Error> {
    let matchers = container_matchers(prom, "container_cpu_usage_seconds_total");
    let make = || cpu::RateSink::new(CpuChunk::new(owners.clone(), s, e, step), step * 1000);
    let (sink, _) = prom
        .remote_read_into(&matchers, (s - step) * 1000, e * 1000, make)
        .await?;
    Ok(sink.chunk)
}

/// Reads usage for every container in the window with a fixed number of queries (see the
/// module docs): 11 for 2 days, 16 for 14 days (two more each without remote read, 2 fewer
/// when no container restarted), whatever the number of workloads.
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
        "rate({}[{}s])",
        containers(prom, "container_cpu_usage_seconds_total"),
        w.step
    );
    let spans = w.spans(w.chunk_points());
    let mut answers = stream::iter(spans)
        .map(|span| cpu_span(prom, &promql, owners, span, w.step))
        .buffer_unordered(CHUNK_CONCURRENCY);
    let mut seen = cpu::SeenPods::new();
    let (mut series, mut dropped, mut bad, mut duplicates) = (0, 0, 0, 0);
    while let Some(chunks) = answers.next().await {
        for chunk in chunks? {
            series += chunk.series_count();
            dropped += chunk.dropped;
            bad += chunk.bad_series;
            duplicates += chunk.duplicates;
            chunk.merge_into(usage, &mut seen);
        }
    }
    if series > 0 && !prom.remote_read() {
        // Remote read computed the short-window peaks from the raw samples; PromQL needs
        // one subquery for them (one pass at 1-minute steps, whatever the cluster size). A
        // server that refuses it for its size (Prometheus' `--query.max-samples`,
        // VictoriaMetrics' memory limit for a query) gets it again in halves of the window:
        // the subquery's 1-minute grid is absolute, so the halves' points are the window's.
        let apply: fn(&mut ContainerUsage, i64, f64) = |u, _, v| u.observe_short_cpu(v);
        // Parts as (end, length).
        let split = |(end, length): (i64, i64)| {
            let half = length / 2;
            (length >= 2 * short_rate::SHORT_RATE_STEP).then_some(((end - half, length - half), (end, half)))
        };
        halving(
            "short-peak subquery",
            (w.end, w.length),
            split,
            async |(end, length)| {
                let promql = format!(
                    "max by ({}) (max_over_time(rate({}[{}s])[{}s:{}s]))",
                    prom.scope().by("namespace, pod, container"),
                    containers(prom, "container_cpu_usage_seconds_total"),
                    short_rate::SHORT_RATE_SECONDS,
                    length,
                    short_rate::SHORT_RATE_STEP
                );
                prom.query_into(&promql, end, || PerContainer::new(owners.clone(), apply))
                    .await?
                    .apply_to_known(usage);
                Ok(())
            },
        )
        .await?;
    }
    if series == 0 {
        return Err(missing(
            prom,
            w,
            "container_cpu_usage_seconds_total",
            "is the kubelet's cAdvisor endpoint (/metrics/cadvisor) scraped, and is the window right?",
        )
        .await);
    }
    if dropped > 0 {
        prom.warn(format!("ignored {dropped} negative CPU rate points"));
    }
    if duplicates > 0 {
        tracing::debug!(
            duplicates,
            "CPU points left out: another series of the same pod and container had a point at that step"
        );
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
    let restarts = restart_events(prom, w, owners);
    let range = w.range();
    let by = prom.scope().by("namespace, pod, container");
    let throttled = format!(
        "sum by ({by}) (increase({}[{range}]))",
        containers(prom, "container_cpu_cfs_throttled_periods_total")
    );
    let periods = format!(
        "sum by ({by}) (increase({}[{range}]))",
        containers(prom, "container_cpu_cfs_periods_total")
    );
    // The lowest CPU limit in force over the window: the one the container was throttled
    // against (a limit raised after throttling is not what throttled it). One pass.
    let cpu_limit = format!(
        "min by ({by}) (min_over_time({}[{range}]))",
        prom.scope()
            .select("kube_pod_container_resource_limits", r#"resource="cpu",container!="""#)
    );
    let instant = |promql: String, apply: fn(&mut ContainerUsage, i64, f64)| async move {
        prom.query_into(&promql, w.end, || PerContainer::new(owners.clone(), apply))
            .await
    };
    let (peaks, mut restarts, throttled, periods, cpu_limit) = futures::try_join!(
        peaks,
        restarts,
        instant(throttled, |u, _, v| u.cfs_throttled_periods += v.max(0.0)),
        instant(periods, |u, _, v| u.cfs_periods += v.max(0.0)),
        instant(cpu_limit, |u, _, v| if v.is_finite() && v > 0.0 {
            u.throttled_limit = Some(u.throttled_limit.map_or(v, |l| l.min(v)));
        }),
    )?;
    restarts.extend([throttled, periods, cpu_limit]);
    Ok((peaks, restarts))
}

/// Restarts and OOM kills, per container. First an instant `stddev_over_time(R[window]) > 0`
/// over the restart counter `R` (one pass over its samples, an answer as small as the set of
/// containers that restarted: the counter is an integer, so its deviation is exactly 0 unless
/// it changed; `changes()` would do on Prometheus, but VictoriaMetrics' counts the first
/// sample of a series that starts inside the window, which named every pod created in it:
/// 135,000 series at 1,000 workloads x 14 days); then, for the pods it named only, the counter's values and
/// the `OOMKilled` last-terminated reason at each step, reduced in Rust (`events`) to exact
/// integer counts. No restart in the window: 1 query; otherwise 1 + 2 per group of restarted
/// pods (`max_pod_matcher_bytes` of pod names, 8 KiB: about 250 pods) per 11,000 steps, a
/// part the server refuses for its size asked again in halves. Reading every container's
/// series instead of naming pods (what a long list did before) was, at 1,000 workloads x 14
/// days, 135,000 series x 4,033 steps, which VictoriaMetrics refused for memory.
async fn restart_events(prom: &PromClient, w: &Window, owners: &Arc<Owners>) -> Result<Vec<PerContainer>, Error> {
    let counter = "kube_pod_container_status_restarts_total";
    let pods = prom
        .query_into(
            &format!(
                "stddev_over_time({}[{}]) > 0",
                prom.scope().select(counter, ""),
                w.range()
            ),
            w.end,
            PodNames::default,
        )
        .await?
        .names;
    if pods.is_empty() {
        return Ok(Vec::new());
    }
    let step = w.step;
    let mut increases = std::collections::HashMap::new();
    let mut ooms = std::collections::HashSet::new();
    let mut limits = std::collections::HashMap::new();
    let mut duplicates = 0;
    for pods in events::pod_matchers(pods.iter().map(String::as_str), prom.max_pod_matcher_bytes()) {
        // The groups name disjoint pods: each one's increases are all its OOM pass needs.
        let mut group = std::collections::HashMap::new();
        for span in w.spans(MAX_POINTS) {
            // One step early, so the first step has the value before it.
            let promql = prom.scope().select(counter, &format!("container!=\"\"{pods}"));
            for part in halving("restart counter selection", span, step_halves(step), async |(s, e)| {
                prom.query_range_into(&promql, s - step, e, step, || events::Increases::new(s, step))
                    .await
            })
            .await?
            {
                duplicates += part.duplicates;
                events::merge_increases(&mut group, part.events);
            }
        }
        let group = Arc::new(group);
        for span in w.spans(MAX_POINTS) {
            // The OOMKilled reasons and, in the same selection, the memory limits in force at
            // each restart (the OOM bump's anchor: `limits`); other reasons and resources are
            // left out in Rust.
            let promql = prom
                .scope()
                .select("", &format!("{},container!=\"\"{pods}", limits::OOM_AND_LIMITS));
            for part in halving("OOM reason selection", span, step_halves(step), async |(s, e)| {
                prom.query_range_into(&promql, s, e, step, || limits::OomsAndLimits::new(group.clone()))
                    .await
            })
            .await?
            {
                ooms.extend(part.ooms.matched);
                limits.extend(part.limits);
            }
        }
        increases.extend(Arc::unwrap_or_clone(group));
    }
    if duplicates > 0 {
        prom.warn(format!(
            "{duplicates} restart counter points were duplicated (the same container in two series or twice at one time): each restart counted once"
        ));
    }
    Ok(vec![
        events::restarts_and_ooms(owners, &increases, &ooms),
        limits::oom_limits(owners, &limits, &ooms),
    ])
}

/// The pod names of the series that have a point in an answer: all the restart probe keeps
/// (the full label sets of every restarted container were a fifth of the heap at 1,000
/// workloads, issue 16).
#[derive(Default)]
struct PodNames {
    current: Option<String>,
    names: std::collections::BTreeSet<String>,
}

impl super::promparse::SeriesSink for PodNames {
    fn series(&mut self, labels: &super::promparse::Labels) {
        self.current = labels.get("pod").filter(|p| !p.is_empty()).cloned();
    }

    fn sample(&mut self, _: f64, _: f64) {
        if let Some(pod) = self.current.take() {
            self.names.insert(pod);
        }
    }
}

/// Peak working set per UTC day (at most 3 queries: the first partial day, the full days,
/// the last partial day). Ranges are in milliseconds so that a sample at exactly midnight
/// falls in one day only, with Prometheus 2 (closed ranges) and 3 (left-open ranges) alike.
async fn daily_peaks(prom: &PromClient, w: &Window, owners: &Arc<Owners>) -> Result<PerContainer, Error> {
    if prom.remote_read() {
        match remote_daily_peaks(prom, w, owners).await {
            Ok(peaks) => return Ok(peaks),
            Err(e) => prom.remote_read_unsupported(&e),
        }
    }
    let (by, memory) = (
        prom.scope().by("namespace, pod, container"),
        containers(prom, "container_memory_working_set_bytes"),
    );
    let peak = |range_ms: i64| format!("max by ({by}) (max_over_time({memory}[{range_ms}ms]))");
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
        out.extend(part);
    }
    Ok(out)
}

/// Daily working-set peaks from the raw samples (remote read, one request for the window),
/// reduced in Rust (`cpu::DailyPeaks`): the `max_over_time` queries read the same samples and
/// cost Prometheus a pass over them.
async fn remote_daily_peaks(prom: &PromClient, w: &Window, owners: &Arc<Owners>) -> Result<PerContainer, Error> {
    let matchers = container_matchers(prom, "container_memory_working_set_bytes");
    let apply: fn(&mut ContainerUsage, i64, f64) = |u, t, v| u.observe_daily_peak(day_of(t), v);
    let range = (w.start() * 1000, w.end * 1000);
    let make = || cpu::DailyPeaks::new(PerContainer::new(owners.clone(), apply), range);
    let (sink, _) = prom.remote_read_into(&matchers, range.0, range.1, make).await?;
    Ok(sink.out)
}

/// Seconds of HPA status history and seconds at `maxReplicas`, per target workload: both
/// series at each step in one selection, compared in Rust (`events::HpaSteps`). The HPA's
/// target is taken to be the Deployment of the same name (kube-state-metrics does not export
/// `scaleTargetRef` by default).
async fn hpa_at_max(prom: &PromClient, w: &Window) -> Result<Vec<(WorkloadKey, (i64, i64))>, Error> {
    let promql = prom.scope().select(
        "",
        r#"__name__=~"kube_horizontalpodautoscaler_status_current_replicas|kube_horizontalpodautoscaler_spec_max_replicas""#,
    );
    let mut out = std::collections::BTreeMap::<WorkloadKey, (i64, i64)>::new();
    for (s, e) in w.spans(MAX_POINTS) {
        let answer = prom
            .query_range_into(&promql, s, e, w.step, events::HpaSteps::default)
            .await?;
        for ((namespace, name), (seen, at_max)) in answer.seconds(w.step) {
            let entry = out
                .entry(WorkloadKey::new(namespace, WorkloadKind::Deployment, name))
                .or_default();
            entry.0 += seen;
            entry.1 += at_max;
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
        let vm = Error::PrometheusQuery {
            error_type: "422".into(),
            error: "not enough memory for processing 259200000 data points across 60000 time series with 4320 points in each time series; total available memory for concurrent requests: 1073741824 bytes; requested memory: 5184000000 bytes".into(),
            query: String::new(),
        };
        assert!(is_too_many_samples(&vm));
        assert!(!is_too_many_samples(&Error::Config("x".into())));
    }
}
