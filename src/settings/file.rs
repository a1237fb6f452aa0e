//! The configuration document: every key a run reads, as the YAML config file spells it
//! (camelCase; `--config FILE`, never searched for). The same document is what the other layers
//! write into (environment variables, flags and `--set` become `(dotted.path, value)`
//! overrides, see `settings::flags`), so every key can be set in every layer. Unknown keys are
//! errors that name the key's path and its line; the recommend [`Policy`] sits under `policy:`.
//! [`Config::redacted`] is what a run logs: tokens, passwords and header values replaced.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::Error;
use crate::emit::Format;
use crate::emit::patches::PatchFormat;
use crate::emit::pull_request::{Mode, Provider};
use crate::recommend::Policy;

/// A config file larger than this is refused unread (a mistyped path such as `/dev/zero`
/// would otherwise be read without end); real configs are a few KiB.
pub const MAX_CONFIG_BYTES: u64 = 1024 * 1024;

/// The whole document. Keys are camelCase, as in the policy and in Kubernetes objects.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct Config {
    /// Read workloads and usage from this snapshot file instead of the cluster.
    pub snapshot: Option<PathBuf>,
    /// Largest snapshot read, decompressed (1 GiB: a gzip bomb stops there).
    pub snapshot_max_bytes: u64,
    pub prometheus: PrometheusConfig,
    pub kube: KubeConfig,
    /// History window (`14d`: two weekly cycles, DESIGN.md "Default strategy").
    pub history: String,
    /// Resolution of the CPU distribution (`5m`: KRR's and the VPA's sampling step).
    pub step: String,
    /// End of the window, unix seconds or RFC 3339; none = the time of each run.
    pub end: Option<String>,
    /// Kubernetes cron schedule for `agent`'s long-lived mode; none = one run (CronJob).
    pub schedule: Option<String>,
    pub outputs: Outputs,
    pub policy: Policy,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            snapshot: None,
            snapshot_max_bytes: crate::collect::snapshot::MAX_SNAPSHOT_BYTES,
            prometheus: PrometheusConfig::default(),
            kube: KubeConfig::default(),
            history: DEFAULT_HISTORY.into(),
            step: DEFAULT_STEP.into(),
            end: None,
            schedule: None,
            outputs: Outputs::default(),
            policy: Policy::default(),
        }
    }
}

/// Two weekly cycles (KRR's default window is 14 days too).
pub const DEFAULT_HISTORY: &str = "14d";
/// KRR's and the VPA's sampling step.
pub const DEFAULT_STEP: &str = "5m";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct PrometheusConfig {
    pub url: Option<String>,
    /// Bearer token (secret: prefer `tokenFile`, a mounted Secret).
    pub token: Option<String>,
    pub token_file: Option<PathBuf>,
    pub user: Option<String>,
    /// Basic-auth password (secret).
    pub password: Option<String>,
    /// Extra headers, e.g. `X-Scope-OrgID: team-a`.
    pub headers: BTreeMap<String, String>,
    /// PromQL label matchers every query carries (one cluster of a central store): one
    /// string (`cluster="prod-eu",env=~"prod|stage"`) or a list of them.
    #[serde(deserialize_with = "one_or_many", skip_serializing_if = "Vec::is_empty")]
    pub selector: Vec<String>,
    /// 120 s: a 14-day percentile over a large cluster takes tens of seconds server-side.
    pub timeout: String,
    pub ca_file: Option<PathBuf>,
    pub insecure_skip_tls_verify: bool,
    pub concurrency: Option<usize>,
    pub retries: Option<u32>,
    /// PromQL only, no remote read (see `--prometheus-no-remote-read`).
    pub no_remote_read: bool,
    /// One request with its retries (10 minutes: a few slow attempts of a long window).
    pub request_deadline: String,
    /// Every request of a run (1 hour: far above the measured runs, far below a stuck job).
    pub run_deadline: Option<String>,
    /// Caps on one answer (see `collect::prometheus`): bytes, one string, series, labels of
    /// one series, distinct warnings kept.
    pub max_answer_bytes: Option<u64>,
    pub max_string_bytes: Option<usize>,
    pub max_series: Option<u64>,
    pub max_labels: Option<usize>,
    pub max_warnings: Option<usize>,
}

impl Default for PrometheusConfig {
    fn default() -> Self {
        PrometheusConfig {
            url: None,
            token: None,
            token_file: None,
            user: None,
            password: None,
            headers: BTreeMap::new(),
            selector: Vec::new(),
            timeout: "120s".into(),
            ca_file: None,
            insecure_skip_tls_verify: false,
            concurrency: None,
            retries: None,
            no_remote_read: false,
            request_deadline: "10m".into(),
            run_deadline: Some("1h".into()),
            max_answer_bytes: None,
            max_string_bytes: None,
            max_series: None,
            max_labels: None,
            max_warnings: None,
        }
    }
}

/// One string or a list of strings.
fn one_or_many<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged, expecting = "a string or a list of strings")]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    Ok(match OneOrMany::deserialize(d)? {
        OneOrMany::One(s) => vec![s],
        OneOrMany::Many(v) => v,
    })
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct KubeConfig {
    /// Kubeconfig path; none = `KUBECONFIG`, `~/.kube/config`, then in-cluster.
    pub kubeconfig: Option<PathBuf>,
    pub context: Option<String>,
    pub namespaces: Vec<String>,
    pub exclude_namespaces: Vec<String>,
    pub include_system_namespaces: bool,
    pub selector: Option<String>,
    /// `Deployment`, `StatefulSet`, `DaemonSet`, `CronJob`, `Job`, `Pod`; empty = all.
    pub kinds: Vec<String>,
    pub no_kube_api: bool,
    /// One page of a list (60 s: the API server's own request timeout).
    pub request_timeout: String,
    /// Pages of one list (10,000 pages of 500: five million objects of one kind).
    pub list_max_pages: u32,
    /// One list with every page and retry (10 minutes).
    pub list_deadline: String,
}

impl Default for KubeConfig {
    fn default() -> Self {
        KubeConfig {
            kubeconfig: None,
            context: None,
            namespaces: Vec::new(),
            exclude_namespaces: Vec::new(),
            include_system_namespaces: false,
            selector: None,
            kinds: Vec::new(),
            no_kube_api: false,
            request_timeout: "60s".into(),
            list_max_pages: 10_000,
            list_deadline: "10m".into(),
        }
    }
}

/// What a run produces besides its log. Only the report on stdout by default: nothing in the
/// cluster changes unless asked.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct Outputs {
    /// Report format: `table`, `json`, `yaml`, `csv` or `markdown`.
    pub format: Format,
    /// Write the report to this file instead of stdout.
    pub file: Option<PathBuf>,
    /// No colour in the table and the log.
    pub no_color: bool,
    /// No progress line on stderr.
    pub no_progress: bool,
    /// A Markdown summary for a pull-request body.
    pub markdown: Option<PathBuf>,
    pub patches: Option<PatchesOutput>,
    /// Edit the `resources:` blocks of the manifests under this directory in place.
    pub manifests: Option<PathBuf>,
    /// Write `rightsizer.dev/*` annotations on each workload (needs deploy/annotate).
    pub annotate: bool,
    /// Patch the recommendation into the cluster (needs deploy/apply).
    pub apply: bool,
    /// Include VPA-managed and GitOps-owned workloads in the writes.
    pub force: bool,
    /// Exit with 3 when a change is recommended.
    pub check: bool,
    pub config_map: Option<ConfigMapOutput>,
    pub push: Option<PushOutput>,
    /// Open and maintain a pull request (GitHub) or merge request (GitLab).
    pub pull_request: Option<PullRequestOutput>,
}

/// `outputs.pullRequest` (README "Pull requests").
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct PullRequestOutput {
    /// `github` or `gitlab`.
    pub provider: Option<Provider>,
    /// Default `https://api.github.com` or `https://gitlab.com`; GitHub Enterprise
    /// `https://HOST/api/v3`, self-managed GitLab its base URL.
    pub api_url: Option<String>,
    /// `org/repo` (GitLab: `group/subgroup/project`).
    pub repository: String,
    /// Default: the repository's default branch.
    pub base_branch: Option<String>,
    /// Directory of the manifests (or of the patch set) in the repository; default the root.
    pub path: String,
    /// `edit` (default) or `patches`.
    pub mode: Mode,
    /// Workload patch format in mode `patches`.
    pub patch_format: Option<PatchFormat>,
    /// Default `rightsizer/<kube.context, or the push grouping's cluster>`.
    pub branch: Option<String>,
    pub title: Option<String>,
    pub labels: Vec<String>,
    pub reviewers: Vec<String>,
    pub assignees: Vec<String>,
    pub draft: bool,
    /// File holding the token (a mounted Secret).
    pub token_file: Option<PathBuf>,
    /// Refused with an error that says to use `tokenFile`: a token never sits in the config.
    pub token: Option<String>,
    /// Longest total wait for rate limits in one run (5 minutes).
    pub max_wait: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct PatchesOutput {
    /// Directory of the patch set (a mounted volume in the cluster).
    pub dir: PathBuf,
    /// `strategic` (default) or `json6902`.
    pub format: PatchFormat,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct ConfigMapOutput {
    pub name: String,
    /// Default: the agent's own namespace (`POD_NAMESPACE`, else the ServiceAccount's).
    pub namespace: Option<String>,
}

impl Default for ConfigMapOutput {
    fn default() -> Self {
        ConfigMapOutput {
            name: "rightsizer-report".into(),
            namespace: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct PushOutput {
    /// Pushgateway base URL.
    pub url: String,
    pub job: String,
    /// Grouping labels after `job`, e.g. `cluster: prod`.
    pub grouping: BTreeMap<String, String>,
}

impl Default for PushOutput {
    fn default() -> Self {
        PushOutput {
            url: String::new(),
            job: "rightsizer".into(),
            grouping: BTreeMap::new(),
        }
    }
}

const REDACTED: &str = "<redacted>";

/// Headers whose values are safe to log (tenancy, content negotiation); every other header
/// value is redacted, whatever its name (a deny-list of names misses `Private-Tokn`).
const SAFE_HEADERS: [&str; 5] = [
    "x-scope-orgid",
    "accept",
    "user-agent",
    "content-type",
    "x-prometheus-remote-read-version",
];

/// One override of a key: where it came from names it in errors (`--namespace`,
/// `RIGHTSIZER_NAMESPACES`, `--set`).
#[derive(Debug, Clone, PartialEq)]
pub struct Override {
    pub path: String,
    pub value: Value,
    pub from: String,
}

impl Config {
    /// Reads the file (at most [`MAX_CONFIG_BYTES`]); unknown keys and wrong types name their
    /// path and line. Returns the text too, to find the line of a key later.
    pub fn from_file(path: &Path) -> Result<(Config, String), Error> {
        use std::io::Read;
        let cannot = |e: std::io::Error| Error::Config(format!("cannot read config file {}: {e}", path.display()));
        let file = std::fs::File::open(path).map_err(cannot)?;
        let mut bytes = Vec::new();
        file.take(MAX_CONFIG_BYTES + 1)
            .read_to_end(&mut bytes)
            .map_err(cannot)?;
        if bytes.len() as u64 > MAX_CONFIG_BYTES {
            return Err(Error::Config(format!(
                "config file {} is larger than {} KiB: not a rightsizer config",
                path.display(),
                MAX_CONFIG_BYTES / 1024
            )));
        }
        let text = String::from_utf8(bytes)
            .map_err(|_| Error::Config(format!("config file {} is not UTF-8 text", path.display())))?;
        let config =
            Config::from_yaml(&text).map_err(|e| Error::Config(format!("config file {}: {e}", path.display())))?;
        Ok((config, text))
    }

    /// Parses YAML text (an empty document is the defaults).
    pub fn from_yaml(text: &str) -> Result<Config, String> {
        if text
            .lines()
            .all(|l| l.trim().is_empty() || l.trim_start().starts_with('#'))
        {
            return Ok(Config::default());
        }
        serde_saphyr::from_str::<Config>(text).map_err(|e| {
            let message = e.to_string();
            let message = message.lines().next().unwrap_or_default().to_string();
            match e.location() {
                Some(loc) => {
                    let (line, column) = (loc.line() as usize, loc.column() as usize);
                    match key_path(text, line) {
                        Some(path) => format!("at {path} (line {line}, column {column}): {message}"),
                        None => format!("line {line}, column {column}: {message}"),
                    }
                }
                None => message,
            }
        })
    }

    /// Applies overrides in order (environment and flags, then `--set`). An override that
    /// does not fit names its key, its value and where it came from.
    pub fn with_overrides(self, overrides: &[Override]) -> Result<Config, Error> {
        if overrides.is_empty() {
            return Ok(self);
        }
        let mut doc = serde_json::to_value(&self).map_err(|e| Error::Config(e.to_string()))?;
        for o in overrides {
            set_path(&mut doc, &o.path, o.value.clone());
            // Check each override on its own, so the error names the one at fault.
            serde_json::from_value::<Config>(doc.clone())
                .map_err(|e| Error::Config(format!("invalid {} = {} (from {}): {e}", o.path, o.value, o.from)))?;
        }
        serde_json::from_value(doc).map_err(|e| Error::Config(e.to_string()))
    }

    /// The configuration as one line of JSON with secrets replaced: the Prometheus token and
    /// password, every header value not known to be safe, credentials in URLs.
    pub fn redacted(&self) -> String {
        let mut doc = serde_json::to_value(self).unwrap_or(Value::Null);
        for key in ["token", "password"] {
            if doc["prometheus"][key].is_string() {
                doc["prometheus"][key] = REDACTED.into();
            }
        }
        if doc["outputs"]["pullRequest"]["token"].is_string() {
            doc["outputs"]["pullRequest"]["token"] = REDACTED.into();
        }
        if let Some(headers) = doc["prometheus"]["headers"].as_object_mut() {
            for (name, value) in headers.iter_mut() {
                if !SAFE_HEADERS.contains(&name.to_ascii_lowercase().as_str()) {
                    *value = REDACTED.into();
                }
            }
        }
        for pointer in ["/prometheus/url", "/outputs/push/url"] {
            let Some(url) = doc.pointer_mut(pointer) else { continue };
            if let Some(u) = url.as_str() {
                *url = redact_url(u).into();
            }
        }
        doc.to_string()
    }
}

/// A URL with its user and password replaced (`https://<redacted>@prom/`); text that does not
/// parse as a URL but has a `user@` part is redacted the same way.
pub fn redact_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) => {
            if !parsed.username().is_empty() || parsed.password().is_some() {
                let _ = parsed.set_password(None);
                let _ = parsed.set_username(REDACTED);
            }
            parsed.to_string()
        }
        Err(_) => match (url.find("://"), url.rfind('@')) {
            (Some(scheme), Some(at)) if at > scheme => format!("{}{REDACTED}{}", &url[..scheme + 3], &url[at..]),
            _ => url.to_string(),
        },
    }
}

/// The 1-based line of the key at dotted `path` in block-style YAML, when it is there.
pub fn line_of(text: &str, path: &str) -> Option<usize> {
    (1..=text.lines().count()).find(|&line| key_path(text, line).as_deref() == Some(path))
}

/// Sets `path` in a JSON document, creating objects on the way (a `null` becomes one).
fn set_path(doc: &mut Value, path: &str, value: Value) {
    let mut at = doc;
    for part in path.split('.') {
        if !at.is_object() {
            *at = Value::Object(Default::default());
        }
        at = at
            .as_object_mut()
            .expect("made an object above")
            .entry(part)
            .or_insert(Value::Null);
    }
    *at = value;
}

/// Parses `--set` values as YAML scalars or flow collections: `0.9`, `true`, `[a, b]`, `web`.
pub fn parse_set(item: &str) -> Result<Override, Error> {
    let (path, raw) = item
        .split_once('=')
        .ok_or_else(|| Error::Config(format!("invalid --set {item:?}: use path.to.key=value")))?;
    let path = path.trim();
    if path.is_empty() || path.split('.').any(str::is_empty) {
        return Err(Error::Config(format!("invalid --set {item:?}: empty key in the path")));
    }
    Ok(Override {
        path: path.to_string(),
        value: scalar(raw),
        from: format!("--set {item}"),
    })
}

/// A value as `--set` and the flags give it: a YAML scalar or flow collection (`0.9`, `true`,
/// `[a, b]`, `web`), or the string itself.
pub fn scalar(raw: &str) -> Value {
    match raw.trim() {
        "" => Value::String(String::new()),
        "null" | "~" => Value::Null,
        s => serde_saphyr::from_str::<Value>(s).unwrap_or_else(|_| Value::String(s.into())),
    }
}

/// The dotted path of the mapping key on 1-based `line` of block-style YAML, from the
/// indentation of the keys above it (serde-saphyr errors carry a location, not a path).
fn key_path(text: &str, line: usize) -> Option<String> {
    let mut stack: Vec<(usize, String)> = Vec::new();
    for (i, l) in text.lines().enumerate().take(line) {
        let content = l.trim_start();
        if content.is_empty() || content.starts_with('#') {
            continue;
        }
        let indent = l.len() - content.len();
        let content = content.trim_start_matches("- ");
        let Some((key, _)) = content.split_once(':') else {
            continue;
        };
        let key = key.trim().trim_matches(|c| c == '"' || c == '\'');
        if key.is_empty() || key.contains(' ') {
            continue;
        }
        while stack.last().is_some_and(|(d, _)| *d >= indent) {
            stack.pop();
        }
        stack.push((indent, key.to_string()));
        if i + 1 == line {
            return Some(stack.iter().map(|(_, k)| k.as_str()).collect::<Vec<_>>().join("."));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_keys_name_their_path() {
        let text = "prometheus:\n  url: http://prom:9090\npolicy:\n  defaults:\n    cpuPercentile: 0.9\n    cpuPercentil: 0.9\n";
        let err = Config::from_yaml(text).unwrap_err();
        assert!(err.contains("at policy.defaults.cpuPercentil (line 6"), "{err}");
        let err = Config::from_yaml("outputs:\n  push:\n    urll: x\n").unwrap_err();
        assert!(err.contains("at outputs.push.urll"), "{err}");
    }

    #[test]
    fn the_file_parses_with_quantities_and_defaults() {
        let c = Config::from_yaml(
            "history: 7d\npolicy:\n  defaults:\n    minCpu: 20m\n    maxMemory: 2Gi\noutputs:\n  push:\n    url: http://gw:9091\n",
        )
        .unwrap();
        assert_eq!(c.history, "7d");
        assert_eq!(c.step, "5m");
        assert_eq!(c.policy.defaults.min_cpu, 0.02);
        assert_eq!(c.outputs.push.as_ref().unwrap().job, "rightsizer");
        assert_eq!(Config::from_yaml("# nothing\n").unwrap(), Config::default());
    }

    #[test]
    fn overrides_reach_every_key_and_round_trip() {
        let c = Config::default()
            .with_overrides(&[
                parse_set("policy.defaults.cpuPercentile=0.9").unwrap(),
                parse_set("outputs.push.url=http://gw:9091").unwrap(),
                parse_set("kube.namespaces=[shop, data]").unwrap(),
                parse_set("outputs.annotate=true").unwrap(),
            ])
            .unwrap();
        assert_eq!(c.policy.defaults.cpu_percentile, 0.9);
        assert_eq!(c.outputs.push.unwrap().url, "http://gw:9091");
        assert_eq!(c.kube.namespaces, ["shop", "data"]);
        assert!(c.outputs.annotate);
        let err = Config::default()
            .with_overrides(&[parse_set("policy.defaults.nope=1").unwrap()])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("policy.defaults.nope") && err.contains("unknown field"),
            "{err}"
        );
    }

    #[test]
    fn secrets_are_redacted() {
        let mut c = Config::default();
        c.prometheus.token = Some("s3cret-token".into());
        c.prometheus.password = Some("hunter2".into());
        c.prometheus.url = Some("https://u:pw-in-url@prom".into());
        c.prometheus.headers.insert("Authorization".into(), "Bearer abc".into());
        c.prometheus.headers.insert("X-Scope-OrgID".into(), "team-a".into());
        c.outputs.pull_request = Some(PullRequestOutput {
            token: Some("ghp_inline".into()),
            ..PullRequestOutput::default()
        });
        let line = c.redacted();
        assert!(line.contains(r#""push":null"#), "{line}");
        for secret in ["s3cret-token", "hunter2", "pw-in-url", "Bearer abc", "ghp_inline"] {
            assert!(!line.contains(secret), "{secret} leaked: {line}");
        }
        assert!(line.contains("team-a"), "{line}");
    }
}
