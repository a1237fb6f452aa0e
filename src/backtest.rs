//! `rightsizer backtest`: how would the recommendations have fared? On the user's own
//! Prometheus, recommend as of `end - holdout` from the `--history` before it (the same
//! collection as `recommend`), then read what every pod really used in the held-out window
//! and score rightsizer's policy, today's requests and limits, and the reference methods
//! (KRR `simple`, the VPA recommender) side by side (`recommend::backtest`).
//!
//! Requests: the collection's own (see `collect::history`), plus a constant number whatever
//! the number of workloads: one owner-series request over both windows, two range queries
//! per window (per-pod CPU rate and working set, per 11,000 steps), and two over the
//! training window for OOM kills (restart counter and last-terminated reason).

mod render;

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;

use serde::Serialize;

use crate::Error;
use crate::cli::{BacktestArgs, BacktestFormat};
use crate::collect::history::{self, Owners, Window};
use crate::collect::prometheus::{PromClient, RangeSeries};
use crate::emit::progress::Progress;
use crate::model::ContainerKey;
use crate::recommend;
use crate::recommend::backtest::{ContainerHistory, Evaluation, PodSeries, evaluate};
use crate::settings::{Input, RunSettings, parse_duration};

/// The backtest's result: the windows, what data there was, and the evaluation.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Backtest {
    pub source: String,
    /// Training window `(start, end]` and held-out window `(end, held_out_end]`, unix seconds.
    pub training_start: i64,
    pub training_end: i64,
    pub held_out_end: i64,
    pub step: i64,
    /// Earliest and latest CPU point found, unix seconds.
    pub data_start: Option<i64>,
    pub data_end: Option<i64>,
    /// Requests beyond the collection's (which logs its own count in its `collected` line).
    pub extra_prometheus_requests: u64,
    pub warnings: Vec<String>,
    #[serde(flatten)]
    pub evaluation: Evaluation,
}

/// Container selector of the cAdvisor queries, as in `collect::history`.
const CONTAINERS: &str = r#"container!="",container!="POD""#;
/// Prometheus refuses range queries of more than 11,000 points per series.
const MAX_POINTS: i64 = 11_000;

/// Runs the backtest with the run's settings (config file, flags, policy: as `recommend`)
/// and writes its report.
pub async fn run(args: &BacktestArgs, settings: &RunSettings) -> Result<(), Error> {
    let holdout = parse_duration(&args.holdout)?.as_secs() as i64;
    if !matches!(settings.input, Input::Live { .. }) {
        return Err(Error::Config(
            "backtest reads history from prometheus: give --prometheus-url, not --snapshot (a snapshot holds no held-out usage)".into(),
        ));
    }
    let window = settings.window.at(chrono::Utc::now().timestamp());
    if holdout <= window.step || holdout >= window.end {
        return Err(Error::Config(format!(
            "--holdout {} must be longer than the step ({} s) and end after 1970",
            args.holdout, window.step
        )));
    }
    let progress = Progress::new(!args.no_progress && std::io::IsTerminal::is_terminal(&std::io::stderr()));
    let training = Window {
        end: window.end - holdout,
        ..window
    };
    let mut training_settings = settings.clone();
    training_settings.window.end = Some(training.end);
    let result = backtest(&training_settings, training, holdout, &progress).await;
    progress.clear();
    let report = result?;
    let text = match args.format {
        BacktestFormat::Table => render::table(&report),
        BacktestFormat::Markdown => render::markdown(&report),
        BacktestFormat::Json => serde_json::to_string_pretty(&report).expect("report serializes") + "\n",
    };
    match &args.output {
        Some(path) => crate::atomic::write(path, text.as_bytes()).map_err(|source| Error::Write {
            path: path.display().to_string(),
            source,
        }),
        None => {
            use std::io::Write;
            std::io::stdout()
                .write_all(text.as_bytes())
                .map_err(|source| Error::Write {
                    path: "stdout".into(),
                    source,
                })
        }
    }
}

/// Collects the training window as `recommend` does, recommends with `policy`, reads the
/// per-pod series and scores every method.
pub async fn backtest(
    settings: &RunSettings,
    training: Window,
    holdout: i64,
    progress: &Progress,
) -> Result<Backtest, Error> {
    let collected = crate::run::collect(settings, progress).await?;
    progress.stage("reading per-pod usage of the training and held-out windows…");
    let prometheus = settings.input.prometheus()?.expect("a live input");
    let prom = PromClient::new(&prometheus)?;
    let step = training.step;
    let (start, as_of, end) = (training.end - training.length, training.end, training.end + holdout);
    let both = Window {
        end,
        length: training.length + holdout,
        step,
    };
    let owners = history::fetch_owners(&prom, &both).await?;
    let (train_series, held_series, ooms) = futures::try_join!(
        pod_series(&prom, &owners, start, as_of, step),
        pod_series(&prom, &owners, as_of, end, step),
        oom_kills(&prom, &owners, start, as_of, step),
    )?;
    let mut histories: BTreeMap<ContainerKey, ContainerHistory> = BTreeMap::new();
    for (key, pods) in train_series {
        histories.entry(key).or_default().training = pods;
    }
    for (key, pods) in held_series {
        histories.entry(key).or_default().held_out = pods;
    }
    for (key, events) in ooms {
        histories.entry(key).or_default().ooms = events;
    }
    let points = || histories.values().flat_map(|h| h.training.iter().chain(&h.held_out));
    let data_start = points().filter_map(|p| p.cpu.first().map(|x| x.0)).min();
    let data_end = points().filter_map(|p| p.cpu.last().map(|x| x.0)).max();
    let mut warnings = collected.warnings.clone();
    warnings.extend(prom.warnings());
    // The collection and the Prometheus client logged theirs when they happened.
    for w in coverage(start, as_of, end, step, data_start, data_end)? {
        tracing::warn!("{w}");
        warnings.push(w);
    }
    progress.stage("recommending and scoring…");
    let report = recommend::recommend(&collected.workloads, &collected.usage, &settings.policy);
    let evaluation = evaluate(&collected.workloads, &report, &histories, step, as_of);
    Ok(Backtest {
        source: collected.source,
        training_start: start,
        training_end: as_of,
        held_out_end: end,
        step,
        data_start,
        data_end,
        extra_prometheus_requests: prom.stats().queries.load(Ordering::Relaxed),
        warnings,
        evaluation,
    })
}

/// What the data covers against what was asked: an error when nothing is in the held-out
/// window (nothing to score), a warning when the history starts late (the methods train on
/// less) or the held-out data ends early.
fn coverage(
    start: i64,
    as_of: i64,
    end: i64,
    step: i64,
    data_start: Option<i64>,
    data_end: Option<i64>,
) -> Result<Vec<String>, Error> {
    let days = |s: i64| s as f64 / 86_400.0;
    let (Some(first), Some(last)) = (data_start, data_end) else {
        return Err(Error::Config("no CPU usage in prometheus for the training or held-out window\nhint: check --end, --history and --holdout against the data prometheus holds".into()));
    };
    if last <= as_of {
        return Err(Error::Config(format!(
            "no usage in the held-out window: the data ends at {} ({:.1} days of data from {}), the held-out window starts at {}\nhint: set --end to the end of the data, or shorten --holdout",
            rfc3339(last),
            days(last - first),
            rfc3339(first),
            rfc3339(as_of)
        )));
    }
    let mut warnings = Vec::new();
    if first > start + 2 * step {
        warnings.push(format!(
            "the history holds {:.1} days of training data (from {}), less than the {:.1} days --history asks for: every method is trained on what there is",
            days((as_of - first).max(0)),
            rfc3339(first),
            days(as_of - start)
        ));
    }
    if last < end - 2 * step {
        warnings.push(format!(
            "the held-out data ends at {}: {:.1} of the {:.1} held-out days are scored",
            rfc3339(last),
            days(last - as_of),
            days(end - as_of)
        ));
    }
    Ok(warnings)
}

/// `2026-11-01T00:00:00Z`.
pub(crate) fn rfc3339(t: i64) -> String {
    chrono::DateTime::from_timestamp(t, 0).map_or_else(|| t.to_string(), |d| d.format("%Y-%m-%dT%H:%M:%SZ").to_string())
}

/// `[start, end]` evaluation spans of at most [`MAX_POINTS`] steps, covering `(from, to]`.
fn spans(from: i64, to: i64, step: i64) -> Vec<(i64, i64)> {
    let first = (from.div_euclid(step) + 1) * step;
    let last = to.div_euclid(step) * step;
    let width = MAX_POINTS * step;
    (0..)
        .map(|i| first + i * width)
        .take_while(|&s| s <= last)
        .map(|s| (s, (s + width - step).min(last)))
        .collect()
}

/// Per-pod CPU rate and peak working set per step in `(from, to]`, by container: two range
/// queries per 11,000 steps. One series per pod and container (`max by`, as KRR reads them:
/// a restarted container's old and new series are one).
async fn pod_series(
    prom: &PromClient,
    owners: &Owners,
    from: i64,
    to: i64,
    step: i64,
) -> Result<BTreeMap<ContainerKey, Vec<PodSeries>>, Error> {
    // The scope's matchers and equality labels as every collector query has them
    // (`--prometheus-selector`, `collect::scope`).
    let (scope, by) = (prom.scope(), prom.scope().by("namespace, pod, container"));
    let cpu = format!(
        "max by ({by}) (rate({}[{step}s]))",
        scope.select("container_cpu_usage_seconds_total", CONTAINERS)
    );
    let memory = format!(
        "max by ({by}) (max_over_time({}[{step}s]))",
        scope.select("container_memory_working_set_bytes", CONTAINERS)
    );
    let mut by_pod: BTreeMap<(ContainerKey, String), PodSeries> = BTreeMap::new();
    for (s, e) in spans(from, to, step) {
        let (cpu, memory) = futures::try_join!(
            prom.query_range(&cpu, s, e, step),
            prom.query_range(&memory, s, e, step)
        )?;
        for (series, is_cpu) in cpu
            .into_iter()
            .map(|s| (s, true))
            .chain(memory.into_iter().map(|s| (s, false)))
        {
            let Some((key, pod)) = container_of(owners, &series) else {
                continue;
            };
            let entry = by_pod.entry((key, pod.clone())).or_insert_with(|| PodSeries {
                pod,
                ..PodSeries::default()
            });
            let values = series.values.into_iter().filter(|(_, v)| v.is_finite());
            if is_cpu {
                entry.cpu.extend(values);
            } else {
                entry.memory.extend(values);
            }
        }
    }
    let mut out: BTreeMap<ContainerKey, Vec<PodSeries>> = BTreeMap::new();
    for ((key, _), series) in by_pod {
        out.entry(key).or_default().push(series);
    }
    Ok(out)
}

fn container_of(owners: &Owners, series: &RangeSeries) -> Option<(ContainerKey, String)> {
    let label = |name: &str| series.labels.get(name).filter(|v| !v.is_empty());
    let (ns, pod, container) = (label("namespace")?, label("pod")?, label("container")?);
    Some((
        ContainerKey::new(owners.resolve(ns, pod), container.clone()),
        pod.clone(),
    ))
}

/// OOM kills in `(from, to]`, `(pod, time)` by container: steps where the restart counter
/// rose while the last termination's reason was `OOMKilled` (two range queries per 11,000
/// steps, as `collect::history` counts them).
async fn oom_kills(
    prom: &PromClient,
    owners: &Owners,
    from: i64,
    to: i64,
    step: i64,
) -> Result<BTreeMap<ContainerKey, Vec<(String, i64)>>, Error> {
    let restarts = &prom
        .scope()
        .select("kube_pod_container_status_restarts_total", r#"container!="""#);
    let reason = &prom.scope().select(
        "kube_pod_container_status_last_terminated_reason",
        r#"container!="",reason="OOMKilled""#,
    );
    let mut out: BTreeMap<ContainerKey, Vec<(String, i64)>> = BTreeMap::new();
    for (s, e) in spans(from, to, step) {
        let (counters, reasons) = futures::try_join!(
            prom.query_range(restarts, s - step, e, step),
            prom.query_range(reason, s, e, step)
        )?;
        let oom_steps: std::collections::HashSet<(String, String, String, i64)> = reasons
            .iter()
            .flat_map(|r| {
                let id = ids(r);
                r.values
                    .iter()
                    .filter(|(_, v)| *v > 0.0)
                    .map(move |&(t, _)| (id.0.clone(), id.1.clone(), id.2.clone(), t))
            })
            .collect();
        for c in &counters {
            let Some((key, pod)) = container_of(owners, c) else {
                continue;
            };
            let (ns, _, container) = ids(c);
            for pair in c.values.windows(2) {
                let ((_, before), (t, after)) = (pair[0], pair[1]);
                if after > before && oom_steps.contains(&(ns.clone(), pod.clone(), container.clone(), t)) {
                    out.entry(key.clone()).or_default().push((pod.clone(), t));
                }
            }
        }
    }
    Ok(out)
}

fn ids(s: &RangeSeries) -> (String, String, String) {
    let get = |k: &str| s.labels.get(k).cloned().unwrap_or_default();
    (get("namespace"), get("pod"), get("container"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_cover_the_window_in_steps() {
        assert_eq!(spans(0, 900, 300), vec![(300, 900)]);
        let long = spans(0, 300 * 25_000, 300);
        assert_eq!(long.len(), 3);
        assert_eq!(long[0], (300, 300 * 11_000));
        assert_eq!(long[1].0, 300 * 11_001);
        assert_eq!(long[2].1, 300 * 25_000);
    }

    #[test]
    fn coverage_says_how_much_data_there_is() {
        const D: i64 = 86_400;
        // Asked for 14 days of training, the data starts 3 days before the held-out window.
        let w = coverage(0, 14 * D, 21 * D, 300, Some(11 * D), Some(21 * D)).unwrap();
        assert_eq!(w.len(), 1);
        assert!(
            w[0].contains("holds 3.0 days of training data") && w[0].contains("14.0 days"),
            "{w:?}"
        );
        // The data ends before the held-out window: an error that names its span.
        let e = coverage(0, 14 * D, 21 * D, 300, Some(0), Some(10 * D))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("no usage in the held-out window") && e.contains("10.0 days of data"),
            "{e}"
        );
        assert!(coverage(0, 14 * D, 21 * D, 300, None, None).is_err());
        // Everything there: no warning.
        assert!(
            coverage(0, 14 * D, 21 * D, 300, Some(300), Some(21 * D))
                .unwrap()
                .is_empty()
        );
    }
}
