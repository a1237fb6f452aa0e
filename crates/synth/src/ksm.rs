//! The kube-state-metrics half of the OpenMetrics history: pod and controller ownership,
//! container requests and limits, OOM terminations and restarts, HPA status and spec, and
//! the replica counts of Deployments, StatefulSets and DaemonSets. Every series carries
//! `job="kube-state-metrics"` and the exporter's `instance`, and exists only while its object
//! does.

use std::io::{self, Write};

use rightsizer::model::WorkloadKind;

use super::Cluster;
use super::openmetrics::{KSM_INSTANCE, Out, node_name, pod_times};
use super::patterns::{ContainerSim, grid_at_or_after};
use super::plan::{PodOwner, WorkloadPlan};
use super::spec::WorkloadSpec;

impl Cluster {
    pub(super) fn write_ksm<W: Write>(&self, o: &mut Out<'_, W>) -> io::Result<()> {
        let s = &self.spec;
        let ksm = [("job", "kube-state-metrics"), ("instance", KSM_INSTANCE)];
        let grid = |from: i64, to: i64| {
            let first = grid_at_or_after(s.start().max(from), s.end, s.step);
            (0..)
                .map(move |k| first + k * s.step)
                .take_while(move |&t| t <= to.min(s.end))
        };
        let all = || self.spec.workloads.iter().zip(&self.plans);

        o.family("kube_pod_owner", "gauge")?;
        for (w, wp) in all() {
            for pod in &wp.pods {
                let (kind, name) = match pod.owner {
                    PodOwner::ReplicaSet(i) => ("ReplicaSet", wp.replica_sets[i].name.as_str()),
                    PodOwner::Job(i) => ("Job", wp.jobs[i].name.as_str()),
                    PodOwner::Workload => (w.kind.as_str(), w.name.as_str()),
                };
                let mut l = vec![
                    ("namespace", w.namespace.as_str()),
                    ("pod", pod.name.as_str()),
                    ("uid", pod.uid.as_str()),
                ];
                l.extend_from_slice(&[
                    ("owner_kind", kind),
                    ("owner_name", name),
                    ("owner_is_controller", "true"),
                ]);
                l.extend_from_slice(&ksm);
                o.series("kube_pod_owner", &l);
                for t in pod_times(self, pod) {
                    o.raw("1", t)?;
                }
            }
        }
        o.family("kube_replicaset_owner", "gauge")?;
        for (w, wp) in all() {
            for rs in &wp.replica_sets {
                let mut l = vec![("namespace", w.namespace.as_str()), ("replicaset", rs.name.as_str())];
                l.extend_from_slice(&[
                    ("owner_kind", "Deployment"),
                    ("owner_name", w.name.as_str()),
                    ("owner_is_controller", "true"),
                ]);
                l.extend_from_slice(&ksm);
                o.series("kube_replicaset_owner", &l);
                for t in grid(rs.created, s.end) {
                    o.raw("1", t)?;
                }
            }
        }
        o.family("kube_job_owner", "gauge")?;
        for (w, wp) in all() {
            for job in &wp.jobs {
                let (kind, name, ctl) = if w.kind == WorkloadKind::CronJob {
                    ("CronJob", w.name.as_str(), "true")
                } else {
                    ("<none>", "<none>", "<none>")
                };
                let mut l = vec![("namespace", w.namespace.as_str()), ("job_name", job.name.as_str())];
                l.extend_from_slice(&[("owner_kind", kind), ("owner_name", name), ("owner_is_controller", ctl)]);
                l.extend_from_slice(&ksm);
                o.series("kube_job_owner", &l);
                for t in grid(job.start, job.deleted.map_or(s.end, |d| d - 1)) {
                    o.raw("1", t)?;
                }
            }
        }
        for (family, init) in [
            ("kube_pod_container_resource_requests", false),
            ("kube_pod_container_resource_limits", false),
            ("kube_pod_init_container_resource_requests", true),
            ("kube_pod_init_container_resource_limits", true),
        ] {
            o.family(family, "gauge")?;
            let limits = family.ends_with("limits");
            for (w, wp) in all() {
                for pod in &wp.pods {
                    let node = node_name(pod.node);
                    for c in w.containers.iter().filter(|c| c.init == init) {
                        let (cpu, mem) = if limits {
                            (c.cpu_limit, c.memory_limit)
                        } else {
                            (c.cpu_request, c.memory_request)
                        };
                        for (res, unit, v) in [
                            ("cpu", "core", cpu.map(|v| v.to_string())),
                            ("memory", "byte", mem.map(|v| (v as u64).to_string())),
                        ] {
                            let Some(v) = v else { continue };
                            let mut l = vec![
                                ("namespace", w.namespace.as_str()),
                                ("pod", pod.name.as_str()),
                                ("uid", pod.uid.as_str()),
                            ];
                            l.extend_from_slice(&[
                                ("container", c.name.as_str()),
                                ("node", node.as_str()),
                                ("resource", res),
                                ("unit", unit),
                            ]);
                            l.extend_from_slice(&ksm);
                            o.series(family, &l);
                            for t in pod_times(self, pod) {
                                o.raw(&v, t)?;
                            }
                        }
                    }
                }
            }
        }
        for (family, metric, restarts) in [
            (
                "kube_pod_container_status_last_terminated_reason",
                "kube_pod_container_status_last_terminated_reason",
                false,
            ),
            (
                "kube_pod_container_status_restarts",
                "kube_pod_container_status_restarts_total",
                true,
            ),
        ] {
            o.family(family, if restarts { "counter" } else { "gauge" })?;
            for (w, wp) in all() {
                for pod in &wp.pods {
                    for (ci, c) in w.containers.iter().enumerate().filter(|(_, c)| !c.init) {
                        let mut l = vec![
                            ("namespace", w.namespace.as_str()),
                            ("pod", pod.name.as_str()),
                            ("uid", pod.uid.as_str()),
                        ];
                        l.push(("container", c.name.as_str()));
                        if !restarts {
                            l.push(("reason", "OOMKilled"));
                        }
                        l.extend_from_slice(&ksm);
                        o.series(metric, &l);
                        for smp in ContainerSim::new(w, wp, c, ci, pod, s.start(), s.end, s.step) {
                            if restarts {
                                o.int(u64::from(smp.restarts), smp.t)?;
                            } else if smp.oom_killed {
                                o.raw("1", smp.t)?;
                            }
                        }
                    }
                }
            }
        }
        self.write_replicas(o, &ksm)
    }

    fn write_replicas<W: Write>(&self, o: &mut Out<'_, W>, ksm: &[(&'static str, &'static str)]) -> io::Result<()> {
        let s = &self.spec;
        let times = |from: i64| {
            let first = grid_at_or_after(s.start().max(from), s.end, s.step);
            (0..).map(move |k| first + k * s.step).take_while(move |&t| t <= s.end)
        };
        let all = || self.spec.workloads.iter().zip(&self.plans);
        type Value = fn(&WorkloadSpec, &WorkloadPlan, u32, i64) -> u64;
        let hpa_families: [(&str, Value); 5] = [
            ("kube_horizontalpodautoscaler_status_current_replicas", |w, p, _, t| {
                u64::from(p.replicas_at(t, w.replicas))
            }),
            ("kube_horizontalpodautoscaler_status_desired_replicas", |w, p, _, t| {
                u64::from(p.replicas_at(t + 300, w.replicas))
            }),
            ("kube_horizontalpodautoscaler_spec_min_replicas", |w, _, _, _| {
                w.hpa.as_ref().map_or(0, |h| u64::from(h.min_replicas))
            }),
            ("kube_horizontalpodautoscaler_spec_max_replicas", |w, _, _, _| {
                w.hpa.as_ref().map_or(0, |h| u64::from(h.max_replicas))
            }),
            ("kube_horizontalpodautoscaler_spec_target_metric", |w, _, _, _| {
                w.hpa.as_ref().map_or(0, |h| u64::from(h.target_cpu_utilization))
            }),
        ];
        for (family, value) in hpa_families {
            o.family(family, "gauge")?;
            for (w, wp) in all().filter(|(w, _)| w.hpa.is_some() && w.kind == WorkloadKind::Deployment) {
                let mut l = vec![
                    ("namespace", w.namespace.as_str()),
                    ("horizontalpodautoscaler", w.name.as_str()),
                ];
                if family.ends_with("target_metric") {
                    l.extend_from_slice(&[("metric_name", "cpu"), ("metric_target_type", "utilization")]);
                }
                l.extend_from_slice(ksm);
                o.series(family, &l);
                for t in times(w.created) {
                    o.int(value(w, wp, s.nodes, t), t)?;
                }
            }
        }
        let kinds: [(&str, &str, WorkloadKind, Value); 3] = [
            (
                "kube_deployment_spec_replicas",
                "deployment",
                WorkloadKind::Deployment,
                |w, p, _, t| u64::from(p.replicas_at(t, w.replicas)),
            ),
            (
                "kube_statefulset_replicas",
                "statefulset",
                WorkloadKind::StatefulSet,
                |w, _, _, _| u64::from(w.replicas.max(1)),
            ),
            (
                "kube_daemonset_status_desired_number_scheduled",
                "daemonset",
                WorkloadKind::DaemonSet,
                |_, _, n, _| u64::from(n),
            ),
        ];
        for (family, label, kind, value) in kinds {
            o.family(family, "gauge")?;
            for (w, wp) in all().filter(|(w, _)| w.kind == kind) {
                let mut l = vec![("namespace", w.namespace.as_str()), (label, w.name.as_str())];
                l.extend_from_slice(ksm);
                o.series(family, &l);
                for t in times(w.created) {
                    o.int(value(w, wp, s.nodes, t), t)?;
                }
            }
        }
        Ok(())
    }
}
