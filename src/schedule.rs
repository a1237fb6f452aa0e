//! Kubernetes CronJob schedules (5 fields, `@daily` and friends) on top of the `cron` crate,
//! which speaks Quartz: a seconds field first, day-of-week 1-7 with 1 = Sunday, and
//! day-of-month AND day-of-week when both are restricted, where Kubernetes (robfig/cron)
//! matches either. The adapter expands each field to explicit values, renumbers the
//! weekdays and, when both day fields are restricted, keeps two schedules and takes the
//! earlier next time.

use std::collections::BTreeSet;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use thiserror::Error;

#[derive(Debug, Error, PartialEq)]
#[error("invalid schedule {schedule:?}: {reason}")]
pub struct ScheduleError {
    pub schedule: String,
    pub reason: String,
}

#[derive(Debug, Clone)]
pub struct Schedule {
    source: String,
    parts: Vec<cron::Schedule>,
}

const MONTHS: [&str; 12] = [
    "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
];
const DAYS: [&str; 7] = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];

struct Field {
    name: &'static str,
    min: u32,
    max: u32,
    names: &'static [&'static str],
}

const FIELDS: [Field; 5] = [
    Field {
        name: "minute",
        min: 0,
        max: 59,
        names: &[],
    },
    Field {
        name: "hour",
        min: 0,
        max: 23,
        names: &[],
    },
    Field {
        name: "day of month",
        min: 1,
        max: 31,
        names: &[],
    },
    Field {
        name: "month",
        min: 1,
        max: 12,
        names: &MONTHS,
    },
    // robfig/cron accepts 0-6; 7 is Sunday too in most crons, and we accept it.
    Field {
        name: "day of week",
        min: 0,
        max: 7,
        names: &DAYS,
    },
];

impl Field {
    fn value(&self, s: &str) -> Result<u32, String> {
        let upper = s.to_ascii_uppercase();
        if let Some(i) = self.names.iter().position(|n| *n == upper) {
            // Month names count from 1 (JAN), day names from 0 (SUN).
            return Ok(if self.min == 1 { i as u32 + 1 } else { i as u32 });
        }
        let v: u32 = s
            .parse()
            .map_err(|_| format!("{} value {s:?} is not a number", self.name))?;
        if v < self.min || v > self.max {
            return Err(format!("{} value {v} is outside {}-{}", self.name, self.min, self.max));
        }
        Ok(v)
    }

    /// Expands `*`, `a`, `a-b`, `*/n`, `a-b/n`, `a/n` and comma lists to the set of values.
    fn expand(&self, field: &str) -> Result<BTreeSet<u32>, String> {
        let mut out = BTreeSet::new();
        for part in field.split(',') {
            let (range, step) = match part.split_once('/') {
                Some((r, s)) => {
                    let step: u32 = s
                        .parse()
                        .map_err(|_| format!("{} step {s:?} is not a number", self.name))?;
                    if step == 0 {
                        return Err(format!("{} step must be positive", self.name));
                    }
                    (r, step)
                }
                None => (part, 1),
            };
            let (lo, hi) = match range {
                "*" | "?" => (self.min, self.max),
                r => match r.split_once('-') {
                    Some((a, b)) => (self.value(a)?, self.value(b)?),
                    // `a/n` runs from a to the end of the range.
                    None if step > 1 => (self.value(r)?, self.max),
                    None => {
                        let v = self.value(r)?;
                        (v, v)
                    }
                },
            };
            if lo > hi {
                return Err(format!("{} range {range} runs backwards", self.name));
            }
            out.extend((lo..=hi).step_by(step as usize));
        }
        Ok(out)
    }
}

fn list(values: &BTreeSet<u32>) -> String {
    values.iter().map(u32::to_string).collect::<Vec<_>>().join(",")
}

impl FromStr for Schedule {
    type Err = ScheduleError;

    fn from_str(input: &str) -> Result<Self, ScheduleError> {
        let err = |reason: String| ScheduleError {
            schedule: input.to_string(),
            reason,
        };
        let expr = match input.trim() {
            "@yearly" | "@annually" => "0 0 1 1 *",
            "@monthly" => "0 0 1 * *",
            "@weekly" => "0 0 * * 0",
            "@daily" | "@midnight" => "0 0 * * *",
            "@hourly" => "0 * * * *",
            s if s.starts_with('@') => return Err(err(format!("{s} is not a Kubernetes schedule macro"))),
            s if s.starts_with("TZ=") || s.starts_with("CRON_TZ=") => {
                return Err(err(
                    "time zones are not part of the schedule; schedules run in UTC".into()
                ));
            }
            s => s,
        };
        let fields: Vec<&str> = expr.split_whitespace().collect();
        if fields.len() != 5 {
            return Err(err(format!(
                "expected 5 fields (minute hour day-of-month month day-of-week), found {}",
                fields.len()
            )));
        }
        let sets: Vec<BTreeSet<u32>> = fields
            .iter()
            .zip(&FIELDS)
            .map(|(f, spec)| spec.expand(f))
            .collect::<Result<_, _>>()
            .map_err(err)?;
        // Quartz numbers Sunday 1 .. Saturday 7; Kubernetes 0 (or 7) .. 6.
        let dow: BTreeSet<u32> = sets[4].iter().map(|d| d % 7 + 1).collect();
        let restricted = |f: &str| f != "*" && f != "?";
        let (dom_r, dow_r) = (restricted(fields[2]), restricted(fields[4]));
        let (min, hour, dom, month) = (list(&sets[0]), list(&sets[1]), list(&sets[2]), list(&sets[3]));
        let mut exprs = Vec::new();
        match (dom_r, dow_r) {
            // Kubernetes matches either day field when both are restricted.
            (true, true) => {
                exprs.push(format!("0 {min} {hour} {dom} {month} *"));
                exprs.push(format!("0 {min} {hour} * {month} {}", list(&dow)));
            }
            (_, true) => exprs.push(format!("0 {min} {hour} * {month} {}", list(&dow))),
            _ => exprs.push(format!("0 {min} {hour} {dom} {month} *")),
        }
        let parts = exprs
            .iter()
            .map(|e| cron::Schedule::from_str(e).map_err(|e| err(format!("cannot be expressed: {e}"))))
            .collect::<Result<_, _>>()?;
        Ok(Schedule {
            source: input.trim().to_string(),
            parts,
        })
    }
}

impl Schedule {
    /// The first run strictly after `t`.
    pub fn next_after(&self, t: &DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.parts.iter().filter_map(|s| s.after(t).next()).min()
    }

    pub fn as_str(&self) -> &str {
        &self.source
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn next(schedule: &str, after: &str) -> String {
        let s: Schedule = schedule.parse().unwrap();
        s.next_after(&at(after)).unwrap().to_rfc3339()
    }

    #[test]
    fn kubernetes_schedules_fire_when_kubernetes_would() {
        // 2026-11-30 is a Monday.
        let from = "2026-11-30T10:07:00+00:00";
        let cases = [
            ("*/15 * * * *", "2026-11-30T10:15:00+00:00"),
            ("0 */6 * * *", "2026-11-30T12:00:00+00:00"),
            ("30 2 * * *", "2026-12-01T02:30:00+00:00"),
            ("@hourly", "2026-11-30T11:00:00+00:00"),
            ("@daily", "2026-12-01T00:00:00+00:00"),
            ("@weekly", "2026-12-06T00:00:00+00:00"),
            ("@monthly", "2026-12-01T00:00:00+00:00"),
            ("@yearly", "2027-01-01T00:00:00+00:00"),
            // Sunday is 0 and 7; weekdays 1-5 are Monday to Friday.
            ("0 9 * * 0", "2026-12-06T09:00:00+00:00"),
            ("0 9 * * 7", "2026-12-06T09:00:00+00:00"),
            ("0 9 * * 1-5", "2026-12-01T09:00:00+00:00"),
            ("0 9 * * SAT", "2026-12-05T09:00:00+00:00"),
            ("0 0 1 JAN *", "2027-01-01T00:00:00+00:00"),
            // Both day fields restricted: either matches (the 15th, or any Wednesday).
            ("0 0 15 * 3", "2026-12-02T00:00:00+00:00"),
            ("0 0 1 * 5", "2026-12-01T00:00:00+00:00"),
            ("5/20 * * * *", "2026-11-30T10:25:00+00:00"),
        ];
        for (schedule, want) in cases {
            assert_eq!(next(schedule, from), want, "{schedule}");
        }
    }

    #[test]
    fn invalid_schedules_say_why() {
        let cases = [
            ("* * * *", "expected 5 fields"),
            ("61 * * * *", "minute value 61 is outside 0-59"),
            ("* 24 * * *", "hour value 24"),
            ("* * 0 * *", "day of month value 0"),
            ("* * * 13 *", "month value 13"),
            ("* * * * 8", "day of week value 8"),
            ("*/0 * * * *", "step must be positive"),
            ("5-1 * * * *", "runs backwards"),
            ("@every 5m", "not a Kubernetes schedule macro"),
            ("TZ=UTC 0 * * * *", "time zones"),
            ("x * * * *", "is not a number"),
        ];
        for (schedule, reason) in cases {
            let e = schedule.parse::<Schedule>().unwrap_err();
            assert!(e.to_string().contains(reason), "{schedule}: {e}");
        }
    }
}
