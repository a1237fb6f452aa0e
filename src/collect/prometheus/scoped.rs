//! The check every answer passes on its way to the caller's sink: a series whose labels
//! contradict the selector (`--prometheus-selector`) is held back and makes the request an
//! error, and the values of the cluster labels seen are collected so that a run that meets
//! two clusters' series stops instead of pooling their pods (`collect::scope`).

use std::sync::Arc;

use crate::collect::promparse::{Labels, SeriesSink};
use crate::collect::remote_read::RawSink;
use crate::collect::scope::{CLUSTER_LABELS, Scope};

/// Most distinct cluster label values remembered per answer (two already make an error).
const MAX_CLUSTERS: usize = 8;

/// A sink behind the scope check.
pub(super) struct Scoped<S> {
    pub(super) inner: S,
    scope: Arc<Scope>,
    /// The first contradiction: (matcher, label, value).
    pub(super) ignored: Option<(String, String, String)>,
    /// Distinct (cluster label, value) pairs seen.
    pub(super) clusters: Vec<(&'static str, String)>,
    /// The current series is held back.
    skipping: bool,
}

impl<S> Scoped<S> {
    pub(super) fn new(scope: Arc<Scope>, inner: S) -> Self {
        Scoped {
            inner,
            scope,
            ignored: None,
            clusters: Vec::new(),
            skipping: false,
        }
    }

    /// Whether the series is held back.
    fn observe(&mut self, labels: &Labels) -> bool {
        if let Some((m, value)) = self.scope.contradiction(labels) {
            if self.ignored.is_none() {
                self.ignored = Some((m.to_string(), m.name.clone(), value.to_string()));
            }
            return true;
        }
        for name in CLUSTER_LABELS {
            if let Some(v) = labels.get(name).filter(|v| !v.is_empty())
                && self.clusters.len() < MAX_CLUSTERS
                && !self.clusters.iter().any(|(n, x)| *n == name && x == v)
            {
                self.clusters.push((name, v.clone()));
            }
        }
        false
    }
}

impl<S: SeriesSink> SeriesSink for Scoped<S> {
    fn series(&mut self, labels: &Labels) {
        self.skipping = self.observe(labels);
        if !self.skipping {
            self.inner.series(labels);
        }
    }

    fn sample(&mut self, t: f64, v: f64) {
        if !self.skipping {
            self.inner.sample(t, v);
        }
    }

    fn end_series(&mut self) {
        if !self.skipping {
            self.inner.end_series();
        }
    }
}

impl<S: RawSink> RawSink for Scoped<S> {
    fn series(&mut self, labels: &Labels) {
        self.skipping = self.observe(labels);
        if !self.skipping {
            self.inner.series(labels);
        }
    }

    fn samples(&mut self, samples: &[(i64, f64)]) {
        if !self.skipping {
            self.inner.samples(samples);
        }
    }

    fn end_series(&mut self) {
        if !self.skipping {
            self.inner.end_series();
        }
    }
}
