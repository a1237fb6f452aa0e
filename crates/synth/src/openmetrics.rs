//! Writes the generated history as OpenMetrics text for `promtool tsdb create-blocks-from
//! openmetrics`: cAdvisor series (as scraped from the kubelet's `/metrics/cadvisor`) and
//! kube-state-metrics series, one metric family at a time, each series' samples in time
//! order, integer timestamps in seconds, `# EOF` last (kube-state-metrics families are in
//! `ksm.rs`). Streaming: label blocks are built once per series and samples are formatted
//! into a reused buffer, so memory does not grow with the history and no `String` is
//! allocated per sample.

use std::io::{self, Write};

use super::Cluster;
use super::patterns::{ContainerSim, Sample, grid_at_or_after};
use super::plan::{PodPlan, WorkloadPlan};
use super::rng::{container_id, hash2};
use super::spec::{ContainerProfile, WorkloadSpec};

/// What `write_openmetrics` wrote.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WriteStats {
    pub series: u64,
    pub samples: u64,
    pub bytes: u64,
}

/// The `instance` label of the kube-state-metrics target.
pub const KSM_INSTANCE: &str = "10.244.0.15:8080";

pub(super) struct Out<'a, W: Write> {
    w: &'a mut W,
    buf: Vec<u8>,
    prefix: Vec<u8>,
    pending: bool,
    stats: WriteStats,
}

fn push_u64(buf: &mut Vec<u8>, mut v: u64) {
    let mut tmp = [0u8; 20];
    let mut i = tmp.len();
    loop {
        i -= 1;
        tmp[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    buf.extend_from_slice(&tmp[i..]);
}

impl<'a, W: Write> Out<'a, W> {
    pub(super) fn family(&mut self, name: &str, kind: &str) -> io::Result<()> {
        self.buf.extend_from_slice(b"# TYPE ");
        self.buf.extend_from_slice(name.as_bytes());
        self.buf.push(b' ');
        self.buf.extend_from_slice(kind.as_bytes());
        self.buf.push(b'\n');
        self.maybe_flush()
    }

    /// Starts a series; it is counted when its first sample is written.
    pub(super) fn series(&mut self, metric: &str, labels: &[(&str, &str)]) {
        self.prefix.clear();
        self.prefix.extend_from_slice(metric.as_bytes());
        self.prefix.push(b'{');
        for (i, (k, v)) in labels.iter().enumerate() {
            if i > 0 {
                self.prefix.push(b',');
            }
            self.prefix.extend_from_slice(k.as_bytes());
            self.prefix.extend_from_slice(b"=\"");
            for b in v.bytes() {
                match b {
                    b'\\' => self.prefix.extend_from_slice(b"\\\\"),
                    b'"' => self.prefix.extend_from_slice(b"\\\""),
                    b'\n' => self.prefix.extend_from_slice(b"\\n"),
                    _ => self.prefix.push(b),
                }
            }
            self.prefix.push(b'"');
        }
        self.prefix.extend_from_slice(b"} ");
        self.pending = true;
    }

    fn start_line(&mut self) {
        if self.pending {
            self.pending = false;
            self.stats.series += 1;
        }
        self.stats.samples += 1;
        self.buf.extend_from_slice(&self.prefix);
    }

    fn end_line(&mut self, t: i64) -> io::Result<()> {
        self.buf.push(b' ');
        push_u64(&mut self.buf, t.max(0) as u64);
        self.buf.push(b'\n');
        self.maybe_flush()
    }

    pub(super) fn int(&mut self, v: u64, t: i64) -> io::Result<()> {
        self.start_line();
        push_u64(&mut self.buf, v);
        self.end_line(t)
    }

    /// A value in microseconds as a fixed-point decimal with six places.
    pub(super) fn micros(&mut self, us: u64, t: i64) -> io::Result<()> {
        self.start_line();
        push_u64(&mut self.buf, us / 1_000_000);
        let frac = us % 1_000_000;
        self.buf.push(b'.');
        let mut tmp = [b'0'; 6];
        let mut f = frac;
        for d in tmp.iter_mut().rev() {
            *d = b'0' + (f % 10) as u8;
            f /= 10;
        }
        self.buf.extend_from_slice(&tmp);
        self.end_line(t)
    }

    pub(super) fn raw(&mut self, v: &str, t: i64) -> io::Result<()> {
        self.start_line();
        self.buf.extend_from_slice(v.as_bytes());
        self.end_line(t)
    }

    fn maybe_flush(&mut self) -> io::Result<()> {
        if self.buf.len() >= 1 << 16 {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.stats.bytes += self.buf.len() as u64;
        self.w.write_all(&self.buf)?;
        self.buf.clear();
        Ok(())
    }
}

/// Kubernetes QoS class path segment of a pod's cgroup.
fn qos(w: &WorkloadSpec) -> &'static str {
    let cs = &w.containers;
    if cs.iter().all(|c| {
        c.cpu_request.is_none() && c.memory_request.is_none() && c.cpu_limit.is_none() && c.memory_limit.is_none()
    }) {
        "besteffort"
    } else if cs.iter().all(|c| {
        c.cpu_limit.is_some()
            && c.memory_limit.is_some()
            && c.cpu_request == c.cpu_limit
            && c.memory_request == c.memory_limit
    }) {
        "guaranteed"
    } else {
        "burstable"
    }
}

pub fn pod_cgroup(w: &WorkloadSpec, pod: &PodPlan) -> String {
    match qos(w) {
        "guaranteed" => format!("/kubepods/pod{}", pod.uid),
        q => format!("/kubepods/{q}/pod{}", pod.uid),
    }
}

pub fn image(c: &ContainerProfile, pod: &PodPlan) -> String {
    format!("{}:1.{}.0", c.image, pod.revision)
}

pub fn cid(pod: &PodPlan, ci: usize) -> String {
    container_id(hash2(pod.key, 0xC1D + ci as u64))
}

pub fn node_name(n: u32) -> String {
    format!("node-{}", n + 1)
}

/// The pod's own sample times (KSM series and pod cgroup): grid points while it exists.
pub(super) fn pod_times(c: &Cluster, pod: &PodPlan) -> impl Iterator<Item = i64> + use<> {
    let (start, end, step) = (c.spec.start(), c.spec.end, c.spec.step);
    let first = grid_at_or_after(start.max(pod.created), end, step);
    let last = pod.last_alive(end);
    (0..).map(move |k| first + k * step).take_while(move |&t| t <= last)
}

#[derive(Clone, Copy, PartialEq)]
enum Cadv {
    Cpu,
    Memory,
    Periods,
    Throttled,
}

impl Cluster {
    /// Streams the whole history as OpenMetrics text into `w` (wrap files in a `BufWriter`
    /// or not: output is buffered in 64 KiB chunks here).
    pub fn write_openmetrics(&self, w: &mut impl Write) -> io::Result<WriteStats> {
        let mut o = Out {
            w,
            buf: Vec::with_capacity(1 << 17),
            prefix: Vec::new(),
            pending: false,
            stats: WriteStats::default(),
        };
        let families = [
            ("container_cpu_usage_seconds", "counter", Cadv::Cpu),
            ("container_memory_working_set_bytes", "gauge", Cadv::Memory),
            ("container_cpu_cfs_periods", "counter", Cadv::Periods),
            ("container_cpu_cfs_throttled_periods", "counter", Cadv::Throttled),
        ];
        for (name, kind, which) in families {
            o.family(name, kind)?;
            let metric = if kind == "counter" {
                format!("{name}_total")
            } else {
                name.to_string()
            };
            for (w, wp) in self.spec.workloads.iter().zip(&self.plans) {
                for pod in &wp.pods {
                    self.cadvisor_pod(&mut o, &metric, which, w, wp, pod)?;
                }
            }
        }
        self.write_ksm(&mut o)?;
        o.buf.extend_from_slice(b"# EOF\n");
        o.flush()?;
        o.w.flush()?;
        Ok(o.stats)
    }

    #[allow(clippy::too_many_arguments)]
    fn cadvisor_pod<W: Write>(
        &self,
        o: &mut Out<'_, W>,
        metric: &str,
        which: Cadv,
        w: &WorkloadSpec,
        wp: &WorkloadPlan,
        pod: &PodPlan,
    ) -> io::Result<()> {
        let s = &self.spec;
        let node = node_name(pod.node);
        let cgroup = pod_cgroup(w, pod);
        let cpu = if which == Cadv::Cpu {
            vec![("cpu", "total")]
        } else {
            vec![]
        };
        let value = |o: &mut Out<'_, W>, smp: &Sample| match which {
            Cadv::Cpu => o.micros(smp.cpu_us, smp.t),
            Cadv::Memory => o.int(smp.working_set, smp.t),
            Cadv::Periods => o.int(smp.cfs_periods, smp.t),
            Cadv::Throttled => o.int(smp.cfs_throttled, smp.t),
        };
        for (ci, c) in w.containers.iter().enumerate() {
            if matches!(which, Cadv::Periods | Cadv::Throttled) && c.cpu_limit.is_none() {
                continue;
            }
            let id = cid(pod, ci);
            let path = format!("{cgroup}/{id}");
            let img = image(c, pod);
            let mut labels = vec![("container", c.name.as_str())];
            labels.extend_from_slice(&cpu);
            labels.extend_from_slice(&[
                ("id", path.as_str()),
                ("image", img.as_str()),
                ("instance", node.as_str()),
                ("job", "kubelet"),
                ("metrics_path", "/metrics/cadvisor"),
                ("name", id.as_str()),
                ("namespace", w.namespace.as_str()),
                ("node", node.as_str()),
                ("pod", pod.name.as_str()),
            ]);
            o.series(metric, &labels);
            for smp in ContainerSim::new(w, wp, c, ci, pod, s.start(), s.end, s.step) {
                value(o, &smp)?;
            }
        }
        if matches!(which, Cadv::Periods | Cadv::Throttled) {
            return Ok(());
        }
        // The pod cgroup (container=""): the sum of its containers; no "POD" pause series.
        let mut labels = vec![("container", "")];
        labels.extend_from_slice(&cpu);
        labels.extend_from_slice(&[
            ("id", cgroup.as_str()),
            ("image", ""),
            ("instance", node.as_str()),
            ("job", "kubelet"),
            ("metrics_path", "/metrics/cadvisor"),
            ("name", ""),
            ("namespace", w.namespace.as_str()),
            ("node", node.as_str()),
            ("pod", pod.name.as_str()),
        ]);
        o.series(metric, &labels);
        let mut sims: Vec<_> = w
            .containers
            .iter()
            .enumerate()
            .map(|(ci, c)| {
                (
                    ContainerSim::new(w, wp, c, ci, pod, s.start(), s.end, s.step),
                    None::<Sample>,
                )
            })
            .collect();
        for t in pod_times(self, pod) {
            let (mut cpu_us, mut ws) = (0u64, 0u64);
            for (sim, latest) in sims.iter_mut() {
                let mut alive = false;
                if sim.peek_time() == Some(t) {
                    *latest = sim.next();
                    alive = true;
                }
                if let Some(l) = latest {
                    cpu_us += l.cpu_total_us;
                    if alive {
                        ws += l.working_set;
                    }
                }
            }
            match which {
                Cadv::Cpu => o.micros(cpu_us, t)?,
                _ => o.int(ws, t)?,
            }
        }
        Ok(())
    }
}
