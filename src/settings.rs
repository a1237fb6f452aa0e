//! Parses and validates the command line once into `Settings`, so the rest of the code never
//! sees a raw string.

use std::path::PathBuf;
use std::time::Duration;

use url::Url;

use crate::Error;
use crate::cli::{InputArgs, KindArg, KubeArgs, OutputArgs, PromArgs};
use crate::collect::filter::Filter;
use crate::collect::history::Window;
use crate::collect::kube::KubeTarget;
use crate::collect::prometheus::PromConfig;
use crate::emit::{Outputs, PatchOutput, PushTarget, ReportTarget};
use crate::model::WorkloadKind;

/// Where the pipeline reads from.
#[derive(Debug, Clone)]
pub enum Input {
    Snapshot(PathBuf),
    Live {
        prometheus: Box<PromConfig>,
        /// `None` with `--no-kube-api`: discover from kube-state-metrics.
        kube: Option<KubeTarget>,
        filter: Filter,
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
    if let Some(n) = args.prometheus_concurrency {
        if n == 0 {
            return Err(Error::Config("--prometheus-concurrency must be at least 1".into()));
        }
        cfg.concurrency = n;
    }
    if let Some(n) = args.prometheus_retries {
        cfg.retries = n;
    }
    cfg.remote_read = !args.prometheus_no_remote_read;
    if let Some(path) = &args.prometheus_ca_file {
        if args.prometheus_insecure_skip_tls_verify {
            return Err(Error::Config(
                "--prometheus-ca-file and --prometheus-insecure-skip-tls-verify contradict each other: give one".into(),
            ));
        }
        if !path.is_file() {
            return Err(Error::Config(format!(
                "--prometheus-ca-file {} is not a readable file",
                path.display()
            )));
        }
        cfg.ca_file = Some(path.clone());
    }
    cfg.insecure_skip_tls_verify = args.prometheus_insecure_skip_tls_verify;
    Ok(cfg)
}

/// A namespace name is an RFC 1123 label: lowercase letters, digits and `-`, at most 63.
fn namespace_name(flag: &str, name: &str) -> Result<String, Error> {
    let name = name.trim();
    let valid = !name.is_empty()
        && name.len() <= 63
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !name.starts_with('-')
        && !name.ends_with('-');
    if valid {
        Ok(name.to_string())
    } else {
        Err(Error::Config(format!(
            "invalid {flag} {name:?}: a namespace is lowercase letters, digits and '-', at most 63 characters"
        )))
    }
}

fn kind(k: KindArg) -> WorkloadKind {
    match k {
        KindArg::Deployment => WorkloadKind::Deployment,
        KindArg::StatefulSet => WorkloadKind::StatefulSet,
        KindArg::DaemonSet => WorkloadKind::DaemonSet,
        KindArg::CronJob => WorkloadKind::CronJob,
        KindArg::Job => WorkloadKind::Job,
        KindArg::Pod => WorkloadKind::Pod,
    }
}

impl TryFrom<&KubeArgs> for Filter {
    type Error = Error;

    fn try_from(args: &KubeArgs) -> Result<Self, Error> {
        let mut namespaces = Vec::new();
        for n in &args.namespaces {
            let n = namespace_name("--namespace", n)?;
            if !namespaces.contains(&n) {
                namespaces.push(n);
            }
        }
        let mut exclude_namespaces = Vec::new();
        for n in &args.exclude_namespaces {
            let n = namespace_name("--exclude-namespace", n)?;
            if namespaces.contains(&n) {
                return Err(Error::Config(format!(
                    "namespace {n} is both in --namespace and --exclude-namespace"
                )));
            }
            exclude_namespaces.push(n);
        }
        let selector = match args.selector.as_deref().map(str::trim) {
            Some("") => {
                return Err(Error::Config(
                    "--selector is empty: give a label selector like app=web".into(),
                ));
            }
            Some(s) => Some(s.to_string()),
            None => None,
        };
        let mut kinds: Vec<WorkloadKind> = args.kinds.iter().copied().map(kind).collect();
        kinds.sort();
        kinds.dedup();
        Ok(Filter {
            namespaces,
            exclude_namespaces,
            include_system_namespaces: args.include_system_namespaces,
            selector,
            kinds,
        })
    }
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
        let kube = (!args.kube.no_kube_api).then(|| KubeTarget {
            kubeconfig: args.kube.kubeconfig.clone(),
            context: args.kube.context.clone(),
        });
        Ok(Input::Live {
            prometheus: Box::new(prometheus(&args.prometheus, url)?),
            kube,
            filter: Filter::try_from(&args.kube)?,
            window: Window { end, length, step },
        })
    }
}

/// Whether a stream is a terminal that wants colour: `NO_COLOR` (any non-empty value, see
/// no-color.org) turns it off, as does `TERM=dumb`.
pub fn color_wanted(is_terminal: bool) -> bool {
    is_terminal
        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
        && std::env::var_os("TERM").is_none_or(|t| t != "dumb")
}

impl TryFrom<&OutputArgs> for Outputs {
    type Error = Error;

    /// Validates the output flags. Colour and progress depend on the terminal: colour when
    /// the report goes to a terminal stdout, progress when stderr is a terminal.
    fn try_from(args: &OutputArgs) -> Result<Self, Error> {
        use std::io::IsTerminal;
        let push = match &args.push_metrics {
            Some(url) => {
                let mut grouping = Vec::new();
                for g in &args.push_grouping {
                    let (name, value) = g.split_once('=').ok_or_else(|| {
                        Error::Config(format!(
                            "invalid --push-grouping {g:?}: use name=value, e.g. cluster=prod"
                        ))
                    })?;
                    grouping.push((name.trim().to_string(), value.trim().to_string()));
                }
                // Checked now, so a typo fails before the (long) run rather than after it.
                crate::emit::push::push_url(url, &args.push_job, &grouping)?;
                Some(PushTarget {
                    url: url.clone(),
                    job: args.push_job.clone(),
                    grouping,
                })
            }
            None => None,
        };
        if let Some(dir) = &args.manifests
            && !dir.is_dir()
        {
            return Err(Error::Config(format!(
                "--manifests {} is not a directory",
                dir.display()
            )));
        }
        let report = match &args.output {
            Some(path) => ReportTarget::File(path.clone()),
            None => ReportTarget::Stdout,
        };
        let to_terminal = report == ReportTarget::Stdout && std::io::stdout().is_terminal();
        Ok(Outputs {
            report,
            format: args.format,
            color: !args.no_color && color_wanted(to_terminal),
            markdown: args.markdown.clone(),
            patches: args.patches_dir.as_ref().map(|dir| PatchOutput {
                dir: dir.clone(),
                format: args.patch_format,
            }),
            manifests: args.manifests.clone(),
            annotate: args.annotate,
            push,
            apply: args.apply,
            force: args.force,
            progress: !args.no_progress && std::io::stderr().is_terminal(),
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

    fn input(args: &[&str]) -> Result<Input, Error> {
        use clap::Parser;
        let mut argv = vec!["rightsizer", "recommend", "--prometheus-url", "http://prom:9090"];
        argv.extend(args);
        let cli = crate::cli::Cli::try_parse_from(argv).map_err(|e| Error::Config(e.to_string()))?;
        match cli.command {
            crate::cli::Command::Recommend(r) => Input::try_from(&r.input),
            _ => unreachable!(),
        }
    }

    #[test]
    fn discovery_flags_become_a_filter() {
        let Input::Live {
            filter,
            kube,
            prometheus,
            ..
        } = input(&[
            "-n",
            "shop,data",
            "--namespace",
            "shop",
            "--exclude-namespace",
            "tmp",
            "-l",
            "app=web",
            "--kind",
            "statefulset,Deployment",
            "--include-system-namespaces",
        ])
        .unwrap()
        else {
            panic!("live input expected")
        };
        assert_eq!(filter.namespaces, ["shop", "data"]);
        assert_eq!(filter.exclude_namespaces, ["tmp"]);
        assert_eq!(filter.selector.as_deref(), Some("app=web"));
        assert_eq!(filter.kinds, [WorkloadKind::Deployment, WorkloadKind::StatefulSet]);
        assert!(filter.include_system_namespaces);
        assert_eq!(kube, Some(KubeTarget::default()));
        assert!(prometheus.remote_read, "remote read is tried by default");
        let Input::Live { kube, prometheus, .. } = input(&[
            "--no-kube-api",
            "--prometheus-concurrency",
            "8",
            "--prometheus-retries",
            "0",
            "--prometheus-no-remote-read",
        ])
        .unwrap() else {
            panic!("live input expected")
        };
        assert_eq!(kube, None);
        assert_eq!((prometheus.concurrency, prometheus.retries), (8, 0));
        assert!(!prometheus.remote_read);
    }

    #[test]
    fn bad_discovery_flags_are_refused() {
        for (args, expect) in [
            (&["-n", "Shop"][..], "invalid --namespace \"Shop\""),
            (
                &["-n", "shop", "--exclude-namespace", "shop"],
                "both in --namespace and --exclude-namespace",
            ),
            (&["-l", " "], "--selector is empty"),
            (&["--prometheus-concurrency", "0"], "at least 1"),
            (&["--prometheus-ca-file", "/nonexistent.pem"], "not a readable file"),
            (&["--kind", "ReplicaSet"], "invalid value 'ReplicaSet'"),
            (&["--no-kube-api", "--context", "prod"], "cannot be used with"),
        ] {
            let err = input(args)
                .err()
                .unwrap_or_else(|| panic!("{args:?} accepted"))
                .to_string();
            assert!(err.contains(expect), "{args:?}: {err}");
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
