//! The JSON and YAML report: a versioned envelope (`apiVersion: rightsizer.dev/v1alpha1`,
//! `kind: Report`) around the recommendations, with what the run found beside them (VPA
//! modes, usage now, workloads skipped). Field names are a public schema, documented in
//! `docs/report-schema.md`: add fields, never rename or remove them within a version.
//! Workloads are in key order, containers in spec order, so two runs diff line by line.

use serde::Serialize;

use super::Context;
use crate::collect::filter::Skipped;
use crate::collect::metrics_api::CurrentUsage;
use crate::model::WorkloadKey;
use crate::recommend::{HpaRecommendation, QosClass, Recommendation, Report, Skip, Totals, WorkloadRecommendation};

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct Document<'a> {
    api_version: &'static str,
    kind: &'static str,
    source: &'a str,
    window_start: i64,
    window_end: i64,
    workloads: Vec<WorkloadDoc<'a>>,
    totals: &'a Totals,
    warnings: &'a [String],
    skipped_workloads: Vec<&'a Skipped>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct WorkloadDoc<'a> {
    key: &'a WorkloadKey,
    replicas: f64,
    current_qos: QosClass,
    qos: QosClass,
    /// Update mode of the active VPA that manages the workload, or null.
    vpa_mode: Option<&'a str>,
    containers: Vec<ContainerDoc<'a>>,
    hpa: Option<&'a HpaRecommendation>,
    monthly_savings: f64,
    notes: &'a [String],
    skip: Option<&'a Skip>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ContainerDoc<'a> {
    #[serde(flatten)]
    recommendation: &'a Recommendation,
    /// Usage now from metrics-server over the live pods, or null.
    current_usage: Option<&'a CurrentUsage>,
}

/// Workloads in key order (the order of every machine format).
pub(super) fn by_key(report: &Report) -> Vec<&WorkloadRecommendation> {
    let mut workloads: Vec<&WorkloadRecommendation> = report.workloads.iter().collect();
    workloads.sort_by(|a, b| a.key.cmp(&b.key));
    workloads
}

impl<'a> Document<'a> {
    pub(super) fn new(report: &'a Report, ctx: &'a Context<'a>) -> Self {
        let mut skipped: Vec<&Skipped> = ctx.skipped.iter().collect();
        skipped.sort_by(|a, b| a.key.cmp(&b.key));
        Document {
            api_version: crate::collect::snapshot::API_VERSION,
            kind: "Report",
            source: ctx.source,
            window_start: report.window_start,
            window_end: report.window_end,
            workloads: by_key(report)
                .into_iter()
                .map(|w| WorkloadDoc {
                    key: &w.key,
                    replicas: w.replicas,
                    current_qos: w.current_qos,
                    qos: w.qos,
                    vpa_mode: ctx.vpa.get(&w.key).map(String::as_str),
                    containers: w
                        .containers
                        .iter()
                        .map(|c| ContainerDoc {
                            recommendation: c,
                            current_usage: ctx.usage(&c.key),
                        })
                        .collect(),
                    hpa: w.hpa.as_ref(),
                    monthly_savings: w.monthly_savings,
                    notes: &w.notes,
                    skip: w.skip.as_ref(),
                })
                .collect(),
            totals: &report.totals,
            warnings: &report.warnings,
            skipped_workloads: skipped,
        }
    }
}
