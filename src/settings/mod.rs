//! One typed settings model for every subcommand. [`RunSettings`] is built the same way for
//! `recommend`, `agent` and `snapshot`, in one order of layers: the defaults, then the config
//! file (`--config`), then `RIGHTSIZER_*` environment variables, then flags, then `--set`.
//! Every layer writes into the same document ([`file::Config`]); the document is then checked
//! once and turned into typed values, so the rest of the program never sees a raw string. An
//! error names the key, its value and the layer it came from (for the file, the line).

pub mod file;
pub mod flags;
mod pull_request;

use std::path::{Path, PathBuf};
use std::time::Duration;

use url::Url;

use crate::Error;
use crate::cli::{AgentArgs, ConfigArgs, RecommendArgs, RunArgs, SnapshotArgs};
use crate::collect::cluster::{KubeTarget, ListLimits};
use crate::collect::filter::Filter;
use crate::collect::prometheus::PromConfig;
use crate::collect::scope::Scope;
use crate::collect::selector::Selector;
use crate::emit::{ConfigMapTarget, Outputs, PatchOutput, PushTarget, ReportTarget};
use crate::model::{Window, WorkloadKind};
use crate::recommend::Policy;
use crate::schedule::Schedule;
pub use file::{Config, Override};
pub use flags::Sources;

/// Where a run reads from.
#[derive(Debug, Clone)]
pub enum Input {
    Snapshot {
        path: PathBuf,
        /// Largest snapshot read, decompressed.
        max_bytes: u64,
    },
    Live {
        prometheus: Box<PromConfig>,
        /// Read again at every run (a mounted Secret may rotate).
        token_file: Option<PathBuf>,
        /// `None` with `kube.noKubeApi`: discover from kube-state-metrics.
        kube: Option<KubeTarget>,
        /// Bounds of the Kubernetes lists.
        limits: ListLimits,
    },
}

impl Input {
    /// The Prometheus settings of a live run, with the token file read now.
    pub fn prometheus(&self) -> Result<Option<PromConfig>, Error> {
        let Input::Live {
            prometheus, token_file, ..
        } = self
        else {
            return Ok(None);
        };
        let mut cfg = (**prometheus).clone();
        if let Some(path) = token_file {
            cfg.bearer_token = Some(read_token(path)?);
        }
        Ok(Some(cfg))
    }
}

fn read_token(path: &Path) -> Result<String, Error> {
    let token = std::fs::read_to_string(path)
        .map_err(|e| Error::Config(format!("cannot read prometheus.tokenFile {}: {e}", path.display())))?;
    Ok(token.trim().to_string())
}

/// The window a run reads: length and step, and an end that defaults to the time of each run.
/// Keys the user set explicitly are kept with their origin: a snapshot, which holds its own
/// window, refuses a different one instead of ignoring it.
#[derive(Debug, Clone, PartialEq)]
pub struct WindowSpec {
    pub length: i64,
    pub step: i64,
    pub end: Option<i64>,
    /// `(key, origin)` of `history`, `step`, `end` when not defaults.
    pub explicit: Vec<(&'static str, String)>,
}

impl WindowSpec {
    /// The window of a run that starts at `now`.
    pub fn at(&self, now: i64) -> Window {
        Window {
            end: self.end.unwrap_or(now),
            length: self.length,
            step: self.step,
        }
    }

    /// Checks the explicit keys against the window a snapshot holds.
    pub fn check_snapshot(&self, held: &Window, path: &Path) -> Result<(), Error> {
        for (key, origin) in &self.explicit {
            let (asked, has) = match *key {
                "history" => (self.length, held.length),
                "step" => (self.step, held.step),
                _ => (self.end.unwrap_or(held.end), held.end),
            };
            if asked != has {
                return Err(Error::Config(format!(
                    "{key} (from {origin}) asks for {}, but snapshot {} holds {} of history at a {} step ending {}: a snapshot cannot be re-windowed\nhint: leave out {key}, or take a new snapshot with it",
                    describe(key, asked),
                    path.display(),
                    describe("history", held.length),
                    describe("step", held.step),
                    describe("end", held.end),
                )));
            }
        }
        Ok(())
    }
}

fn describe(key: &str, v: i64) -> String {
    if key == "end" {
        chrono::DateTime::from_timestamp(v, 0).map_or_else(|| v.to_string(), |t| t.to_rfc3339())
    } else {
        format_duration(v)
    }
}

/// `14d`, `36h`, `5m`, `90s`: the largest unit that divides the seconds.
pub fn format_duration(secs: i64) -> String {
    for (unit, n) in [("d", 86_400), ("h", 3_600), ("m", 60)] {
        if secs >= n && secs % n == 0 {
            return format!("{}{unit}", secs / n);
        }
    }
    format!("{secs}s")
}

/// Everything one run needs, checked and typed.
#[derive(Debug, Clone)]
pub struct RunSettings {
    pub input: Input,
    pub window: WindowSpec,
    pub filter: Filter,
    pub policy: Policy,
    pub outputs: Outputs,
    /// Exit with 3 when a change is recommended.
    pub check: bool,
    /// `agent`'s schedule; none = one run.
    pub schedule: Option<Schedule>,
    /// The effective configuration as one line of JSON, secrets redacted (logged once).
    pub redacted: String,
}

/// Which subcommand the settings are for: what it may read and write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    Recommend,
    Agent,
    /// Input only: the outputs and the policy of a config file do not apply.
    Snapshot,
    /// Input and policy: `backtest` writes its own report.
    Backtest,
}

/// Where each key's value came from: the last override that set it, else the config file's
/// line, else the default.
struct Origins {
    overrides: Vec<Override>,
    file: Option<(PathBuf, String)>,
}

impl Origins {
    fn explicit(&self, path: &str) -> Option<String> {
        let under = |a: &str, b: &str| a == b || a.starts_with(&format!("{b}.")) || b.starts_with(&format!("{a}."));
        if let Some(o) = self.overrides.iter().rev().find(|o| under(&o.path, path)) {
            return Some(o.from.clone());
        }
        let (file, text) = self.file.as_ref()?;
        file::line_of(text, path).map(|line| format!("config file {}, line {line}", file.display()))
    }

    fn of(&self, path: &str) -> String {
        self.explicit(path).unwrap_or_else(|| "the default".into())
    }

    /// `invalid KEY VALUE (from ORIGIN): WHY`.
    fn bad(&self, key: &str, value: impl std::fmt::Debug, why: impl std::fmt::Display) -> Error {
        Error::Config(format!("invalid {key} {value:?} (from {}): {why}", self.of(key)))
    }
}

impl RunSettings {
    pub fn recommend(args: &RecommendArgs, sources: &Sources) -> Result<RunSettings, Error> {
        RunSettings::build(&args.run.config, run_overrides(&args.run, sources)?, Purpose::Recommend)
    }

    pub fn agent(args: &AgentArgs, sources: &Sources) -> Result<RunSettings, Error> {
        let mut overrides = run_overrides(&args.run, sources)?;
        if let Some(schedule) = &args.schedule {
            // Before --set, which comes last.
            let at = overrides
                .iter()
                .position(|o| o.from.starts_with("--set "))
                .unwrap_or(overrides.len());
            overrides.insert(
                at,
                Override {
                    path: "schedule".into(),
                    value: schedule.clone().into(),
                    from: sources.origin("schedule"),
                },
            );
        }
        RunSettings::build(&args.run.config, overrides, Purpose::Agent)
    }

    pub fn backtest(args: &crate::cli::BacktestArgs, sources: &Sources) -> Result<RunSettings, Error> {
        let mut overrides = flags::input(&args.input, sources)?;
        overrides.extend(flags::policy(&args.policy, sources));
        overrides.extend(flags::set(&args.config)?);
        RunSettings::build(&args.config, overrides, Purpose::Backtest)
    }

    pub fn snapshot(args: &SnapshotArgs, sources: &Sources) -> Result<RunSettings, Error> {
        let mut overrides = flags::input(&args.input, sources)?;
        overrides.extend(flags::set(&args.config)?);
        RunSettings::build(&args.config, overrides, Purpose::Snapshot)
    }

    /// The settings of a whole command line (`["rightsizer", "recommend", ...]`), as the
    /// binary builds them; for tests and library callers.
    pub fn from_argv<I, T>(argv: I) -> Result<RunSettings, Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        use clap::{CommandFactory, FromArgMatches};
        let definition = crate::cli::Cli::command();
        let matches = definition
            .clone()
            .try_get_matches_from(argv)
            .map_err(|e| Error::Config(e.to_string()))?;
        let cli = crate::cli::Cli::from_arg_matches(&matches).map_err(|e| Error::Config(e.to_string()))?;
        let (name, sub) = matches
            .subcommand()
            .ok_or_else(|| Error::Config("no subcommand".into()))?;
        let command = definition
            .find_subcommand(name)
            .ok_or_else(|| Error::Config(format!("unknown subcommand {name}")))?;
        let sources = Sources::new(sub, command);
        match &cli.command {
            crate::cli::Command::Recommend(a) => RunSettings::recommend(a, &sources),
            crate::cli::Command::Agent(a) => RunSettings::agent(a, &sources),
            crate::cli::Command::Snapshot(a) => RunSettings::snapshot(a, &sources),
            crate::cli::Command::Backtest(a) => RunSettings::backtest(a, &sources),
        }
    }

    /// Reads the config file, applies the overrides in order, and checks the result.
    pub fn build(config_args: &ConfigArgs, overrides: Vec<Override>, purpose: Purpose) -> Result<RunSettings, Error> {
        let (config, file) = match &config_args.config {
            Some(path) => {
                let (config, text) = Config::from_file(path)?;
                (config, Some((path.clone(), text)))
            }
            None => (Config::default(), None),
        };
        let config = config.with_overrides(&overrides)?;
        let origins = Origins { overrides, file };
        RunSettings::from_config(&config, &origins, purpose)
    }

    fn from_config(c: &Config, o: &Origins, purpose: Purpose) -> Result<RunSettings, Error> {
        let input = input(c, o)?;
        let window = window(c, o)?;
        let filter = filter(c, o)?;
        let (policy, outputs, check) = match purpose {
            Purpose::Snapshot => (Policy::default(), Outputs::none(), false),
            Purpose::Backtest => (validated_policy(c, o)?, Outputs::none(), false),
            _ => (validated_policy(c, o)?, outputs(c, o, &input)?, c.outputs.check),
        };
        let schedule = match (&c.schedule, purpose) {
            (Some(s), Purpose::Agent) => Some(s.parse::<Schedule>().map_err(|e| o.bad("schedule", s, e.reason))?),
            _ => None,
        };
        Ok(RunSettings {
            input,
            window,
            filter,
            policy,
            outputs,
            check,
            schedule,
            redacted: c.redacted(),
        })
    }
}

/// The policy, range-checked; an error names the key and the layer it came from.
fn validated_policy(c: &Config, o: &Origins) -> Result<Policy, Error> {
    if let Err(e) = c.policy.validate() {
        let key = format!("policy.{}", e.field);
        return Err(Error::Config(format!(
            "invalid {key} (from {}): {}",
            o.of(&key),
            e.problem
        )));
    }
    Ok(c.policy.clone())
}

/// Environment and flags, then `--set`.
fn run_overrides(args: &RunArgs, sources: &Sources) -> Result<Vec<Override>, Error> {
    let mut o = flags::input(&args.input, sources)?;
    o.extend(flags::policy(&args.policy, sources));
    o.extend(flags::output(&args.output, sources)?);
    o.extend(flags::set(&args.config)?);
    Ok(o)
}

fn input(c: &Config, o: &Origins) -> Result<Input, Error> {
    if let Some(path) = &c.snapshot {
        // A higher layer's snapshot wins over a Prometheus URL from a lower one (an agent
        // config file run against a snapshot); set in the same or a higher layer, the two
        // contradict each other.
        if c.prometheus.url.is_some() && rank(&o.of("prometheus.url")) >= rank(&o.of("snapshot")) {
            return Err(Error::Config(format!(
                "snapshot (from {}) and prometheus.url (from {}) contradict each other: give one",
                o.of("snapshot"),
                o.of("prometheus.url")
            )));
        }
        if !c.prometheus.selector.is_empty() && rank(&o.of("prometheus.selector")) >= rank(&o.of("snapshot")) {
            return Err(Error::Config(format!(
                "prometheus.selector (from {}) cannot apply to a snapshot (from {}): a snapshot holds one cluster already",
                o.of("prometheus.selector"),
                o.of("snapshot")
            )));
        }
        if c.snapshot_max_bytes == 0 {
            return Err(o.bad("snapshotMaxBytes", 0, "must be at least 1"));
        }
        return Ok(Input::Snapshot {
            path: path.clone(),
            max_bytes: c.snapshot_max_bytes,
        });
    }
    let Some(url) = &c.prometheus.url else {
        return Err(Error::Config(
            "no input: give --prometheus-url (with a kubeconfig or in-cluster access) or --snapshot FILE".into(),
        ));
    };
    let (prometheus, token_file) = prometheus(c, o, url)?;
    let kube = (!c.kube.no_kube_api).then(|| KubeTarget {
        kubeconfig: c.kube.kubeconfig.clone(),
        context: c.kube.context.clone(),
    });
    if c.kube.no_kube_api {
        for key in ["kube.kubeconfig", "kube.context"] {
            if o.explicit(key).is_some() {
                return Err(Error::Config(format!(
                    "{key} (from {}) cannot apply with kube.noKubeApi (from {}): give one",
                    o.of(key),
                    o.of("kube.noKubeApi")
                )));
            }
        }
    }
    let k = &c.kube;
    let duration = |key: &str, v: &str| parse_duration(v).map_err(|e| o.bad(key, v, e));
    if k.list_max_pages == 0 {
        return Err(o.bad("kube.listMaxPages", 0, "must be at least 1"));
    }
    let limits = ListLimits {
        request_timeout: duration("kube.requestTimeout", &k.request_timeout)?,
        max_pages: k.list_max_pages,
        deadline: duration("kube.listDeadline", &k.list_deadline)?,
        ..ListLimits::default()
    };
    Ok(Input::Live {
        prometheus: Box::new(prometheus),
        token_file,
        kube,
        limits,
    })
}

/// Layers from lowest to highest, by the origin's wording.
fn rank(origin: &str) -> u8 {
    if origin.starts_with("--set") {
        4
    } else if origin.starts_with("--") || origin.starts_with('-') {
        3
    } else if origin.starts_with("RIGHTSIZER_") {
        2
    } else if origin.starts_with("config file") {
        1
    } else {
        0
    }
}

/// An HTTP header name is a token (RFC 9110): no separators, no control characters.
fn header_name_ok(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

fn prometheus(c: &Config, o: &Origins, raw: &str) -> Result<(PromConfig, Option<PathBuf>), Error> {
    let p = &c.prometheus;
    let shown = file::redact_url(raw);
    let mut url = Url::parse(raw).map_err(|e| o.bad("prometheus.url", &shown, e))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(o.bad("prometheus.url", &shown, "use an http or https URL"));
    }
    // Credentials in the URL become basic auth, and the URL that reaches reports, logs and
    // errors carries none.
    let url_auth = take_credentials(&mut url);
    if url_auth.is_some() && (p.user.is_some() || p.token.is_some() || p.token_file.is_some()) {
        return Err(o.bad(
            "prometheus.url",
            &shown,
            "it carries credentials and prometheus.user/token/tokenFile is set too: give one",
        ));
    }
    let mut cfg = PromConfig::new(url);
    if p.token.is_some() && p.token_file.is_some() {
        return Err(Error::Config(format!(
            "prometheus.token (from {}) and prometheus.tokenFile (from {}) contradict each other: give one",
            o.of("prometheus.token"),
            o.of("prometheus.tokenFile")
        )));
    }
    if (p.token.is_some() || p.token_file.is_some()) && p.user.is_some() {
        return Err(Error::Config(format!(
            "prometheus.user (from {}) and a bearer token contradict each other: give one",
            o.of("prometheus.user")
        )));
    }
    if p.password.is_some() && p.user.is_none() {
        return Err(Error::Config(format!(
            "prometheus.password (from {}) needs prometheus.user",
            o.of("prometheus.password")
        )));
    }
    cfg.bearer_token = p.token.clone();
    if let Some(path) = &p.token_file {
        read_token(path).map_err(|e| o.bad("prometheus.tokenFile", path, e))?;
    }
    cfg.basic_auth = match (&p.user, url_auth) {
        (Some(user), _) => Some((user.clone(), p.password.clone().unwrap_or_default())),
        (None, auth) => auth,
    };
    for (name, value) in &p.headers {
        let key = format!("prometheus.headers.{name}");
        if !header_name_ok(name) {
            return Err(o.bad(&key, name, "not a valid HTTP header name"));
        }
        if value.chars().any(|c| c.is_control()) {
            return Err(Error::Config(format!(
                "invalid {key} (from {}): the value has a control character",
                o.of(&key)
            )));
        }
        cfg.headers.push((name.clone(), value.clone()));
    }
    // Checked here, before any query: a selector that is not valid PromQL never reaches the
    // store (which would answer 400 for one query and maybe ignore it for another).
    cfg.scope = Scope::parse_all(&p.selector).map_err(|e| o.bad("prometheus.selector", p.selector.join(","), e))?;
    cfg.timeout = parse_duration(&p.timeout).map_err(|e| o.bad("prometheus.timeout", &p.timeout, e))?;
    if let Some(n) = p.concurrency {
        if n == 0 {
            return Err(o.bad("prometheus.concurrency", n, "must be at least 1"));
        }
        cfg.concurrency = n;
    }
    if let Some(n) = p.retries {
        cfg.retries = n;
    }
    cfg.remote_read = !p.no_remote_read;
    cfg.request_deadline =
        parse_duration(&p.request_deadline).map_err(|e| o.bad("prometheus.requestDeadline", &p.request_deadline, e))?;
    cfg.run_deadline = match &p.run_deadline {
        Some(d) => Some(parse_duration(d).map_err(|e| o.bad("prometheus.runDeadline", d, e))?),
        None => None,
    };
    for (key, value, set) in [
        (
            "prometheus.maxAnswerBytes",
            p.max_answer_bytes,
            &mut cfg.max_answer_bytes,
        ),
        ("prometheus.maxSeries", p.max_series, &mut cfg.max_series),
    ] {
        if let Some(v) = value {
            if v == 0 {
                return Err(o.bad(key, v, "must be at least 1"));
            }
            *set = v;
        }
    }
    for (key, value, set) in [
        (
            "prometheus.maxStringBytes",
            p.max_string_bytes,
            &mut cfg.max_string_bytes,
        ),
        ("prometheus.maxLabels", p.max_labels, &mut cfg.max_labels),
        ("prometheus.maxWarnings", p.max_warnings, &mut cfg.max_warnings),
    ] {
        if let Some(v) = value {
            if v == 0 {
                return Err(o.bad(key, v, "must be at least 1"));
            }
            *set = v;
        }
    }
    if let Some(path) = &p.ca_file {
        if p.insecure_skip_tls_verify {
            return Err(Error::Config(format!(
                "prometheus.caFile (from {}) and prometheus.insecureSkipTlsVerify (from {}) contradict each other: give one",
                o.of("prometheus.caFile"),
                o.of("prometheus.insecureSkipTlsVerify")
            )));
        }
        if !path.is_file() {
            return Err(o.bad("prometheus.caFile", path, "not a readable file"));
        }
        cfg.ca_file = Some(path.clone());
    }
    cfg.insecure_skip_tls_verify = p.insecure_skip_tls_verify;
    Ok((cfg, p.token_file.clone()))
}

/// Removes the user and password from `url` and returns them, percent-decoded (RFC 3986
/// userinfo: a `+` stays a `+`), for basic auth.
fn take_credentials(url: &mut Url) -> Option<(String, String)> {
    if url.username().is_empty() && url.password().is_none() {
        return None;
    }
    let decode = |s: &str| percent_encoding::percent_decode_str(s).decode_utf8_lossy().into_owned();
    let credentials = (decode(url.username()), url.password().map(decode).unwrap_or_default());
    let _ = url.set_username("");
    let _ = url.set_password(None);
    Some(credentials)
}

fn window(c: &Config, o: &Origins) -> Result<WindowSpec, Error> {
    let length = parse_duration(&c.history)
        .map_err(|e| o.bad("history", &c.history, e))?
        .as_secs() as i64;
    let step = parse_duration(&c.step)
        .map_err(|e| o.bad("step", &c.step, e))?
        .as_secs() as i64;
    if step >= length {
        return Err(Error::Config(format!(
            "step {} (from {}) must be shorter than history {} (from {})",
            c.step,
            o.of("step"),
            c.history,
            o.of("history")
        )));
    }
    let end = match &c.end {
        Some(t) => Some(parse_time(t).map_err(|e| o.bad("end", t, e))?),
        None => None,
    };
    let explicit = ["history", "step", "end"]
        .into_iter()
        .filter_map(|k| o.explicit(k).map(|origin| (k, origin)))
        .collect();
    Ok(WindowSpec {
        length,
        step,
        end,
        explicit,
    })
}

/// A namespace name is an RFC 1123 label: lowercase letters, digits and `-`, at most 63.
fn namespace_ok(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 63
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !name.starts_with('-')
        && !name.ends_with('-')
}

const NAMESPACE_RULE: &str = "a namespace is lowercase letters, digits and '-', at most 63 characters";

fn filter(c: &Config, o: &Origins) -> Result<Filter, Error> {
    let k = &c.kube;
    let mut namespaces = Vec::new();
    for n in &k.namespaces {
        let n = n.trim();
        if !namespace_ok(n) {
            return Err(o.bad("kube.namespaces", n, NAMESPACE_RULE));
        }
        if !namespaces.iter().any(|x| x == n) {
            namespaces.push(n.to_string());
        }
    }
    let mut exclude_namespaces = Vec::new();
    for n in &k.exclude_namespaces {
        let n = n.trim();
        if !namespace_ok(n) {
            return Err(o.bad("kube.excludeNamespaces", n, NAMESPACE_RULE));
        }
        if namespaces.iter().any(|x| x == n) {
            return Err(Error::Config(format!(
                "namespace {n} is both in kube.namespaces (from {}) and kube.excludeNamespaces (from {})",
                o.of("kube.namespaces"),
                o.of("kube.excludeNamespaces")
            )));
        }
        exclude_namespaces.push(n.to_string());
    }
    let selector = match k.selector.as_deref().map(str::trim) {
        Some("") => return Err(o.bad("kube.selector", "", "empty: give a label selector like app=web")),
        Some(s) => Some(Selector::parse(s).map_err(|e| o.bad("kube.selector", s, e))?),
        None => None,
    };
    let mut kinds = Vec::new();
    for name in &k.kinds {
        let kind = WorkloadKind::from_kind_ignore_case(name.trim()).ok_or_else(|| {
            o.bad(
                "kube.kinds",
                name,
                "use Deployment, StatefulSet, DaemonSet, CronJob, Job or Pod",
            )
        })?;
        kinds.push(kind);
    }
    kinds.sort();
    kinds.dedup();
    Ok(Filter {
        namespaces,
        exclude_namespaces,
        include_system_namespaces: k.include_system_namespaces,
        selector,
        kinds,
    })
}

fn outputs(c: &Config, o: &Origins, input: &Input) -> Result<Outputs, Error> {
    use std::io::IsTerminal;
    let out = &c.outputs;
    // Writes through the API need the API; known now for a snapshot or kube.noKubeApi.
    let no_api = match input {
        Input::Snapshot { .. } => Some(("snapshot", "the input is a snapshot")),
        Input::Live { kube: None, .. } => Some(("kube.noKubeApi", "workloads come from kube-state-metrics")),
        Input::Live { .. } => None,
    };
    for (on, key) in [
        (out.annotate, "outputs.annotate"),
        (out.apply, "outputs.apply"),
        (out.config_map.is_some(), "outputs.configMap"),
    ] {
        if let (true, Some((cause, why))) = (on, no_api) {
            return Err(Error::Config(format!(
                "{key} (from {}) writes through the kubernetes api, and this run has none: {why} ({cause} from {})\nhint: run against the cluster with a kubeconfig or in-cluster access",
                o.of(key),
                o.of(cause)
            )));
        }
    }
    let patches = match &out.patches {
        Some(p) if p.dir.as_os_str().is_empty() => {
            return Err(Error::Config(format!(
                "outputs.patches (from {}) has no dir: give the directory (--patches-dir)",
                o.of("outputs.patches")
            )));
        }
        Some(p) => Some(PatchOutput {
            dir: p.dir.clone(),
            format: p.format,
        }),
        None => None,
    };
    if let Some(dir) = &out.manifests
        && !dir.is_dir()
    {
        return Err(o.bad("outputs.manifests", dir, "not a directory"));
    }
    let push = match &out.push {
        Some(p) if p.url.is_empty() => {
            return Err(Error::Config(format!(
                "outputs.push (from {}) has no url: give the Pushgateway URL (--push-metrics)",
                o.of("outputs.push")
            )));
        }
        Some(p) => {
            let grouping: Vec<(String, String)> = p.grouping.clone().into_iter().collect();
            let shown = file::redact_url(&p.url);
            let mut url = Url::parse(&p.url).map_err(|e| o.bad("outputs.push.url", &shown, e))?;
            let auth = take_credentials(&mut url);
            let target = PushTarget {
                url: url.to_string().trim_end_matches('/').to_string(),
                job: p.job.clone(),
                grouping,
                basic_auth: auth,
            };
            // Checked now, so a typo fails before the (long) run rather than after it.
            crate::emit::push::push_url(&target.url, &target.job, &target.grouping)
                .map_err(|e| o.bad("outputs.push", &shown, e))?;
            Some(target)
        }
        None => None,
    };
    let config_map = match &out.config_map {
        Some(cm) => {
            let namespace =
                own_namespace(cm.namespace.as_deref()).map_err(|e| o.bad("outputs.configMap.namespace", "", e))?;
            if !namespace_ok(&namespace) {
                return Err(o.bad("outputs.configMap.namespace", &namespace, NAMESPACE_RULE));
            }
            Some(ConfigMapTarget {
                namespace,
                name: cm.name.clone(),
            })
        }
        None => None,
    };
    let report = match &out.file {
        Some(path) => ReportTarget::File(path.clone()),
        None => ReportTarget::Stdout,
    };
    let to_terminal = report == ReportTarget::Stdout && std::io::stdout().is_terminal();
    Ok(Outputs {
        report,
        format: out.format,
        color: !out.no_color && color_wanted(to_terminal),
        markdown: out.markdown.clone(),
        patches,
        manifests: out.manifests.clone(),
        annotate: out.annotate,
        push,
        apply: out.apply,
        force: out.force,
        config_map,
        progress: !out.no_progress && std::io::stderr().is_terminal(),
        pull_request: pull_request::target(c, o)?,
    })
}

/// The agent's namespace: as configured, else `POD_NAMESPACE` (downward API), else the
/// ServiceAccount's.
fn own_namespace(configured: Option<&str>) -> Result<String, String> {
    const SA: &str = "/var/run/secrets/kubernetes.io/serviceaccount/namespace";
    configured
        .map(str::to_string)
        .or_else(|| std::env::var("POD_NAMESPACE").ok().filter(|s| !s.is_empty()))
        .or_else(|| std::fs::read_to_string(SA).ok().map(|s| s.trim().to_string()))
        .ok_or_else(|| "not set, and not running in a pod (no POD_NAMESPACE, no service account)".to_string())
}

/// Whether a stream is a terminal that wants colour: `NO_COLOR` (any non-empty value, see
/// no-color.org) turns it off, as does `TERM=dumb`.
pub fn color_wanted(is_terminal: bool) -> bool {
    is_terminal
        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
        && std::env::var_os("TERM").is_none_or(|t| t != "dumb")
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
        total = n.checked_mul(unit).and_then(|v| total.checked_add(v)).ok_or_else(err)?;
        number.clear();
    }
    // Ten years is far beyond any retention; larger values only overflow time arithmetic.
    if !number.is_empty() || total == 0 || total > 10 * 366 * 86_400 {
        return Err(err());
    }
    Ok(Duration::from_secs(total))
}

/// Parses unix seconds or an RFC 3339 timestamp (`2026-11-01T00:00:00Z`, any offset).
pub fn parse_time(input: &str) -> Result<i64, Error> {
    let s = input.trim();
    if let Ok(secs) = s.parse::<i64>() {
        return Ok(secs);
    }
    chrono::DateTime::parse_from_rfc3339(s)
        .map(|t| t.timestamp())
        .map_err(|e| {
            Error::Config(format!(
                "invalid time {input:?} ({e}): use unix seconds or RFC 3339 like 2026-11-01T00:00:00Z"
            ))
        })
}

#[cfg(test)]
mod tests;
