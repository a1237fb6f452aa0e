//! Usage patterns: the load factor of a workload over time (daily and weekly cycles, short
//! bursts) and the per-container simulation that turns it into the raw samples cAdvisor and
//! kube-state-metrics would report (CPU counter with resets on OOM restarts, working set with
//! leaks, CFS throttling, restart count). Every value is a pure function of the spec, the
//! plan and the sample time, so each metric family can replay the same samples independently.
//!
//! Simplification: a container restarted after an OOM kill keeps its cAdvisor series (the
//! `id` and `name` labels stay those of the pod x container), so its CPU counter resets inside
//! one series, which `rate` handles. Real cAdvisor gives the new container a new id, hence a
//! new series; pooled per (namespace, pod, container) the two read the same.

use std::f64::consts::PI;

use super::plan::{PodPlan, WorkloadPlan};
use super::rng::{hash2, hash3, normal, unit};
use super::spec::{ContainerProfile, DAY, HOUR, WorkloadSpec};

/// The workload-level load factor (mean 1 over a weekday).
#[derive(Debug, Clone, Copy)]
pub struct Load {
    key: u64,
    tz: i64,
    diurnal: f64,
    weekend: f64,
    burst_prob: f64,
    burst_mult: f64,
    burst_len: i64,
    shift: Option<(i64, f64)>,
    growth: Option<(f64, i64)>,
}

impl Load {
    pub fn new(w: &WorkloadSpec, key: u64) -> Load {
        Load {
            key,
            tz: i64::from(w.tz_offset_hours) * HOUR,
            diurnal: w.diurnal.clamp(0.0, 0.95),
            weekend: w.weekend.max(0.0),
            burst_prob: (w.bursts_per_day / 24.0).clamp(0.0, 1.0),
            burst_mult: w.burst_multiplier.max(1.0),
            burst_len: (w.burst_minutes * 60).clamp(0, HOUR),
            shift: w.shift,
            growth: w.growth,
        }
    }

    /// Load at `t`: `1 + diurnal * cos(...)` peaking at 14:00 local time, times the weekend
    /// factor on Saturday and Sunday, times the burst multiplier inside a burst, times the
    /// level shift after it and the growth since its anchor.
    pub fn factor(&self, t: i64) -> f64 {
        let local = t + self.tz;
        let hour = local.rem_euclid(DAY) as f64 / HOUR as f64;
        let mut f = 1.0 + self.diurnal * (2.0 * PI * (hour - 14.0) / 24.0).cos();
        // 1970-01-01 was a Thursday: day 0 -> 4 (0 = Sunday).
        let weekday = (local.div_euclid(DAY) + 4).rem_euclid(7);
        if weekday == 0 || weekday == 6 {
            f *= self.weekend;
        }
        if self.burst_prob > 0.0 && self.burst_len > 0 {
            let hour_idx = t.div_euclid(HOUR);
            let h = hash3(self.key, 0xB0_257, hour_idx as u64);
            if unit(h) < self.burst_prob {
                let begin = hour_idx * HOUR + (hash2(h, 1) % (HOUR - self.burst_len + 1) as u64) as i64;
                if t >= begin && t < begin + self.burst_len {
                    f *= self.burst_mult;
                }
            }
        }
        if let Some((at, factor)) = self.shift
            && t >= at
        {
            f *= factor;
        }
        if let Some((rate, origin)) = self.growth {
            f *= (1.0 + rate).powf((t - origin) as f64 / DAY as f64);
        }
        f
    }
}

/// One raw sample of one container at time `t`.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Sample {
    pub t: i64,
    /// `container_cpu_usage_seconds_total` in microseconds (resets to 0 on restart).
    pub cpu_us: u64,
    /// Cumulative CPU of the container across restarts (what the pod cgroup counts), us.
    pub cpu_total_us: u64,
    /// Usage over the interval ending at `t`, cores.
    pub usage: f64,
    pub working_set: u64,
    pub restarts: u32,
    /// The last termination was an OOM kill.
    pub oom_killed: bool,
    /// An OOM kill happened in the interval ending at `t`.
    pub oom_now: bool,
    /// When the running container started (after the last restart), unix seconds.
    pub started: i64,
    pub cfs_periods: u64,
    pub cfs_throttled: u64,
}

/// Steps one container of one pod through its sample times.
#[derive(Debug, Clone)]
pub struct ContainerSim<'a> {
    c: &'a ContainerProfile,
    load: Load,
    wp: &'a WorkloadPlan,
    stream: u64,
    share: f64,
    nominal: u32,
    step: i64,
    created: i64,
    next: i64,
    last: i64,
    since: i64,
    state: Sample,
    first: bool,
}

/// First sample time on the grid `end - k * step` at or after `t`.
pub fn grid_at_or_after(t: i64, end: i64, step: i64) -> i64 {
    end - (end - t).div_euclid(step) * step
}

impl<'a> ContainerSim<'a> {
    /// The samples of container `c` in pod `pod`, on the grid `end - k * step`, from the
    /// window start (or pod creation) to the pod's deletion (or `end`). Init containers stop
    /// after `init_seconds`.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        w: &WorkloadSpec,
        wp: &'a WorkloadPlan,
        c: &'a ContainerProfile,
        ci: usize,
        pod: &PodPlan,
        window_start: i64,
        end: i64,
        step: i64,
    ) -> Self {
        let mut last = pod.last_alive(end);
        if c.init {
            last = last.min(pod.created + c.init_seconds.max(1));
        }
        let next = grid_at_or_after(window_start.max(pod.created), end, step);
        let stream = hash2(pod.key, ci as u64 + 1);
        let mut state = Sample::default();
        let mut since = pod.created;
        if c.init && next > pod.created + step {
            // An init container that ran before the window left no samples in it.
            last = next - 1;
        }
        if let (Some(limit), true) = (c.memory_limit, c.memory_growth > 0.0) {
            // OOM cycles that happened before the window: restart count and phase.
            let cycle = ((limit - c.memory_base) / c.memory_growth * HOUR as f64).max(step as f64) as i64;
            let before = (next - pod.created).max(0) / cycle.max(1);
            if before > 0 {
                state.restarts = before as u32;
                state.oom_killed = true;
                since = pod.created + before * cycle;
            }
        }
        state.started = since;
        ContainerSim {
            c,
            load: Load::new(w, wp.key),
            wp,
            stream,
            share: pod.share,
            nominal: w.replicas.max(1),
            step,
            created: pod.created,
            next,
            last,
            since,
            state,
            first: true,
        }
    }

    /// Time of the next sample, if any.
    pub fn peek_time(&self) -> Option<i64> {
        (self.next <= self.last).then_some(self.next)
    }

    fn cpu_usage(&self, t: i64, load: f64) -> f64 {
        let mut share = self.share;
        if !self.wp.schedule.is_empty() {
            share *= f64::from(self.nominal) / f64::from(self.wp.replicas_at(t, self.nominal).max(1));
        }
        let noise = 1.0 + self.c.cpu_noise * normal(hash2(self.stream, t as u64));
        let mut u = (self.c.cpu_base * load * share * noise).max(0.0002);
        if let Some(limit) = self.c.cpu_limit {
            u = u.min(limit);
        }
        u
    }

    fn working_set(&self, t: i64, f: f64) -> f64 {
        let noise = self.c.memory_noise * normal(hash2(self.stream ^ 0x3E3, t as u64));
        let grown = self.c.memory_growth * (t - self.since).max(0) as f64 / HOUR as f64;
        (self.c.memory_base * (1.0 + 0.08 * (f - 1.0) + noise) + grown).max(1.0 * 1024.0 * 1024.0)
    }
}

impl Iterator for ContainerSim<'_> {
    type Item = Sample;

    fn next(&mut self) -> Option<Sample> {
        let t = self.next;
        if t > self.last {
            return None;
        }
        self.next += self.step;
        let load = self.load.factor(t);
        let u = self.cpu_usage(t, load);
        let ws = self.working_set(t, load);
        let s = &mut self.state;
        s.t = t;
        s.usage = u;
        s.oom_now = false;
        // The interval ending at t, clipped to the container's life.
        let interval = if self.first {
            (t - self.created).clamp(1, self.step)
        } else {
            self.step
        };
        let mut inc = (u * interval as f64 * 1e6).round() as u64;
        if self.first && t - self.created > self.step {
            // Started long before the window: a counter that already accumulated.
            inc = (u * (t - self.since).max(1) as f64 * 1e6).round() as u64;
        }
        self.first = false;
        match self.c.memory_limit {
            Some(limit) if ws >= limit => {
                // OOM kill during the interval: the new container has run half of it.
                s.restarts += 1;
                s.oom_killed = true;
                s.oom_now = true;
                self.since = t - self.step / 2;
                s.started = self.since;
                inc /= 2;
                s.cpu_us = inc;
                // Fresh container: the base working set plus half an interval of growth.
                let grown = self.c.memory_growth * (self.step / 2) as f64 / HOUR as f64;
                s.working_set = (self.c.memory_base + grown) as u64;
            }
            _ => {
                s.cpu_us += inc;
                s.working_set = ws as u64;
            }
        }
        s.cpu_total_us += inc;
        if let Some(limit) = self.c.cpu_limit {
            // 100 ms CFS periods; a container uses the periods in which it runs, and is
            // throttled in more of them the closer its usage gets to the limit.
            let x = u / limit;
            let periods = (self.step as f64 * 10.0 * (0.3 + x).min(1.0)).round();
            let ratio = ((x - 0.6) / 0.4).clamp(0.0, 1.0).powi(2) * 0.6;
            s.cfs_periods += periods as u64;
            s.cfs_throttled += (periods * ratio).round() as u64;
        }
        Some(*s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rightsizer::model::WorkloadKind;

    #[test]
    fn load_peaks_mid_day_and_drops_on_weekends() {
        let w = WorkloadSpec::new("ns", WorkloadKind::Deployment, "w", 1, 0).cycles(0.5, 0.5, 0);
        let l = Load::new(&w, 1);
        // 1970-01-05 was a Monday; 1970-01-03 a Saturday.
        let monday = 4 * DAY;
        assert!((l.factor(monday + 14 * HOUR) - 1.5).abs() < 1e-9);
        assert!((l.factor(monday + 2 * HOUR) - 0.5).abs() < 1e-9);
        assert!((l.factor(2 * DAY + 14 * HOUR) - 0.75).abs() < 1e-9);
        assert_eq!(grid_at_or_after(61, 600, 60), 120);
        // A level shift doubles the load from its time on; growth compounds per day.
        let shifted = Load::new(&w.clone().shift_at(monday, 2.0), 1);
        assert_eq!(shifted.factor(monday - HOUR), l.factor(monday - HOUR));
        assert!((shifted.factor(monday + 14 * HOUR) - 3.0).abs() < 1e-9);
        let growing = Load::new(&w.growth(0.03, monday + DAY + 14 * HOUR), 1);
        assert!((growing.factor(monday + DAY + 14 * HOUR) - 1.5).abs() < 1e-9);
        assert!((growing.factor(monday + 14 * HOUR) - 1.5 / 1.03).abs() < 1e-9);
        assert_eq!(grid_at_or_after(120, 600, 60), 120);
    }
}
