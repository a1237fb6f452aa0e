//! Parses and validates the command line once into `Settings`, so the rest of the code never
//! sees a raw string.

use std::path::PathBuf;
use std::time::Duration;

use url::Url;

use crate::Error;
use crate::cli::{InputArgs, PromArgs};
use crate::collect::history::Window;
use crate::collect::kube::KubeTarget;
use crate::collect::prometheus::PromConfig;

/// Where the pipeline reads from.
#[derive(Debug, Clone)]
pub enum Input {
    Snapshot(PathBuf),
    Live {
        prometheus: Box<PromConfig>,
        kube: KubeTarget,
        namespaces: Vec<String>,
        window: Window,
    },
}

/// Parses `30s`, `5m`, `36h`, `14d`, `2w` (also combined: `1d12h`).
pub fn parse_duration(input: &str) -> Result<Duration, Error> {
    let err = || {
        Error::Config(format!(
            "invalid duration {input:?}: use a number with s, m, h, d or w, e.g. 14d"
        ))
    };
    let mut total = 0u64;
    let mut number = String::new();
    for c in input.trim().chars() {
        if c.is_ascii_digit() {
            number.push(c);
            continue;
        }
        let unit = match c {
            's' => 1,
            'm' => 60,
            'h' => 3_600,
            'd' => 86_400,
            'w' => 604_800,
            _ => return Err(err()),
        };
        let n: u64 = number.parse().map_err(|_| err())?;
        total += n * unit;
        number.clear();
    }
    if !number.is_empty() || total == 0 {
        return Err(err());
    }
    Ok(Duration::from_secs(total))
}

/// Parses unix seconds or an RFC 3339 UTC timestamp (`2026-11-01T00:00:00Z`).
pub fn parse_time(input: &str) -> Result<i64, Error> {
    if let Ok(secs) = input.trim().parse::<i64>() {
        return Ok(secs);
    }
    let err = || {
        Error::Config(format!(
            "invalid time {input:?}: use unix seconds or RFC 3339 like 2026-11-01T00:00:00Z"
        ))
    };
    let s = input.trim();
    let s = s
        .strip_suffix('Z')
        .or_else(|| s.strip_suffix("+00:00"))
        .ok_or_else(err)?;
    let (date, time) = s.split_once('T').ok_or_else(err)?;
    let d: Vec<i64> = date
        .split('-')
        .map(|p| p.parse().map_err(|_| err()))
        .collect::<Result<_, _>>()?;
    let t: Vec<i64> = time
        .split(':')
        .map(|p| p.split('.').next().unwrap_or("").parse().map_err(|_| err()))
        .collect::<Result<_, _>>()?;
    if d.len() != 3 || t.len() != 3 {
        return Err(err());
    }
    Ok(days_from_civil(d[0], d[1], d[2]) * 86_400 + t[0] * 3_600 + t[1] * 60 + t[2])
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
pub fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (m + if m > 2 { -3 } else { 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

fn prometheus(args: &PromArgs, url: &str) -> Result<PromConfig, Error> {
    let url = Url::parse(url).map_err(|e| Error::Config(format!("invalid --prometheus-url {url:?}: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(Error::Config(format!(
            "--prometheus-url must be http or https, not {}",
            url.scheme()
        )));
    }
    let mut cfg = PromConfig::new(url);
    cfg.bearer_token = match (&args.prometheus_token, &args.prometheus_token_file) {
        (Some(t), _) => Some(t.clone()),
        (None, Some(path)) => Some(
            std::fs::read_to_string(path)
                .map_err(|e| Error::Config(format!("cannot read --prometheus-token-file {}: {e}", path.display())))?
                .trim()
                .to_string(),
        ),
        (None, None) => None,
    };
    if let Some(user) = &args.prometheus_user {
        cfg.basic_auth = Some((user.clone(), args.prometheus_password.clone().unwrap_or_default()));
    }
    for h in &args.prometheus_headers {
        let (name, value) = h
            .split_once('=')
            .ok_or_else(|| Error::Config(format!("invalid --prometheus-header {h:?}: use Name=value")))?;
        cfg.headers.push((name.trim().to_string(), value.trim().to_string()));
    }
    cfg.timeout = parse_duration(&args.prometheus_timeout)?;
    Ok(cfg)
}

impl TryFrom<&InputArgs> for Input {
    type Error = Error;

    fn try_from(args: &InputArgs) -> Result<Self, Error> {
        if let Some(path) = &args.snapshot {
            return Ok(Input::Snapshot(path.clone()));
        }
        let Some(url) = &args.prometheus.prometheus_url else {
            return Err(Error::Config(
                "no input: give --prometheus-url (with a kubeconfig or in-cluster access) or --snapshot FILE".into(),
            ));
        };
        let length = parse_duration(&args.history)?.as_secs() as i64;
        let step = parse_duration(&args.step)?.as_secs() as i64;
        if step >= length {
            return Err(Error::Config(format!(
                "--step {} must be shorter than --history {}",
                args.step, args.history
            )));
        }
        let end = match &args.end {
            Some(t) => parse_time(t)?,
            None => now(),
        };
        Ok(Input::Live {
            prometheus: Box::new(prometheus(&args.prometheus, url)?),
            kube: KubeTarget {
                kubeconfig: args.kube.kubeconfig.clone(),
                context: args.kube.context.clone(),
            },
            namespaces: args.kube.namespaces.clone(),
            window: Window { end, length, step },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        for (s, secs) in [
            ("30s", 30),
            ("5m", 300),
            ("36h", 129_600),
            ("14d", 1_209_600),
            ("2w", 1_209_600),
            ("1d12h", 129_600),
        ] {
            assert_eq!(parse_duration(s).unwrap().as_secs(), secs, "{s}");
        }
        for s in ["", "14", "d", "5x", "0s", "-1d"] {
            assert!(parse_duration(s).is_err(), "{s}");
        }
    }

    #[test]
    fn times() {
        assert_eq!(parse_time("1700000000").unwrap(), 1_700_000_000);
        assert_eq!(parse_time("1970-01-01T00:00:00Z").unwrap(), 0);
        assert_eq!(parse_time("2026-11-01T00:00:00Z").unwrap(), 1_793_491_200);
        assert_eq!(parse_time("2000-02-29T12:30:15Z").unwrap(), 951_827_415);
        assert!(parse_time("yesterday").is_err());
    }
}
