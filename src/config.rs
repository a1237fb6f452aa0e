//! The agent's configuration: a YAML file given by path (`--config`, the CronJob mounts it from
//! a ConfigMap; never searched for), then flags and `RIGHTSIZER_*` environment variables on
//! top. Every key of the file can be overridden: the common ones by a dedicated flag, any of
//! them by `--set path.to.key=value` (`RIGHTSIZER_SET`, `;`-separated). Unknown keys are
//! errors that name the key's path and its line; the recommend [`Policy`] sits under
//! `policy:`. [`Config::redacted`] is what the agent logs: tokens and passwords replaced.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::Error;
use crate::recommend::Policy;

/// The whole file. Keys are camelCase, as in the policy and in Kubernetes objects.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct Config {
    pub prometheus: PrometheusConfig,
    pub kube: KubeConfig,
    /// History window (`14d`: two weekly cycles, DESIGN.md "Default strategy").
    pub history: String,
    /// Resolution of the CPU distribution (`5m`: KRR's and the VPA's sampling step).
    pub step: String,
    /// Kubernetes cron schedule for the long-lived mode; none = one run (CronJob).
    pub schedule: Option<String>,
    pub outputs: Outputs,
    pub policy: Policy,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            prometheus: PrometheusConfig::default(),
            kube: KubeConfig::default(),
            history: "14d".into(),
            step: "5m".into(),
            schedule: None,
            outputs: Outputs::default(),
            policy: Policy::default(),
        }
    }
}

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
    /// 120 s: a 14-day percentile over a large cluster takes tens of seconds server-side.
    pub timeout: String,
    pub ca_file: Option<PathBuf>,
    pub insecure_skip_tls_verify: bool,
    pub concurrency: Option<usize>,
    pub retries: Option<u32>,
    /// PromQL only, no remote read (see `--prometheus-no-remote-read`).
    pub no_remote_read: bool,
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
            timeout: "120s".into(),
            ca_file: None,
            insecure_skip_tls_verify: false,
            concurrency: None,
            retries: None,
            no_remote_read: false,
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct KubeConfig {
    /// Kubeconfig path; none = in-cluster (the ServiceAccount) or `~/.kube/config`.
    pub kubeconfig: Option<PathBuf>,
    pub context: Option<String>,
    pub namespaces: Vec<String>,
    pub exclude_namespaces: Vec<String>,
    pub include_system_namespaces: bool,
    pub selector: Option<String>,
    /// `Deployment`, `StatefulSet`, `DaemonSet`, `CronJob`, `Job`, `Pod`; empty = all.
    pub kinds: Vec<String>,
    pub no_kube_api: bool,
}

/// What a run produces besides its log. All off by default except what the deploy/ ConfigMap
/// turns on: nothing in the cluster changes unless asked.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct Outputs {
    /// Write `rightsizer.dev/*` annotations on each workload (needs deploy/annotate).
    pub annotate: bool,
    pub patches: Option<PatchesOutput>,
    pub config_map: Option<ConfigMapOutput>,
    pub push: Option<PushOutput>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct PatchesOutput {
    /// Directory the patch set replaces as a whole on every run (a mounted volume).
    pub dir: PathBuf,
    /// `strategic` (default) or `json6902`.
    pub format: Option<String>,
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

impl Config {
    /// Reads the file; unknown keys and wrong types name their path and line.
    pub fn from_file(path: &Path) -> Result<Config, Error> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::Config(format!("cannot read config file {}: {e}", path.display())))?;
        Config::from_yaml(&text).map_err(|e| Error::Config(format!("config file {}: {e}", path.display())))
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

    /// Applies overrides, `(dotted.camelCase.path, value)`, in order: the flags, then `--set`.
    pub fn with_overrides(self, overrides: &[(String, Value)]) -> Result<Config, Error> {
        if overrides.is_empty() {
            return Ok(self);
        }
        let mut doc = serde_json::to_value(&self).map_err(|e| Error::Config(e.to_string()))?;
        for (path, value) in overrides {
            set_path(&mut doc, path, value.clone());
            // Check each override on its own, so the error names the one at fault.
            serde_json::from_value::<Config>(doc.clone())
                .map_err(|e| Error::Config(format!("invalid override {path}={value}: {e}")))?;
        }
        serde_json::from_value(doc).map_err(|e| Error::Config(e.to_string()))
    }

    /// The configuration as one line of JSON with secrets replaced: the Prometheus token and
    /// password, header values whose name suggests a credential, passwords in URLs.
    pub fn redacted(&self) -> String {
        let mut doc = serde_json::to_value(self).unwrap_or(Value::Null);
        for key in ["token", "password"] {
            if doc["prometheus"][key].is_string() {
                doc["prometheus"][key] = REDACTED.into();
            }
        }
        if let Some(headers) = doc["prometheus"]["headers"].as_object_mut() {
            for (name, value) in headers.iter_mut() {
                let n = name.to_ascii_lowercase();
                if ["auth", "token", "key", "secret", "password", "cookie"]
                    .iter()
                    .any(|s| n.contains(s))
                {
                    *value = REDACTED.into();
                }
            }
        }
        for pointer in ["/prometheus/url", "/outputs/push/url"] {
            let Some(url) = doc.pointer_mut(pointer) else { continue };
            if let Some(mut parsed) = url.as_str().and_then(|u| url::Url::parse(u).ok())
                && parsed.password().is_some()
            {
                let _ = parsed.set_password(Some(REDACTED));
                *url = parsed.to_string().into();
            }
        }
        doc.to_string()
    }
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
pub fn parse_set(item: &str) -> Result<(String, Value), Error> {
    let (path, raw) = item
        .split_once('=')
        .ok_or_else(|| Error::Config(format!("invalid --set {item:?}: use path.to.key=value")))?;
    let path = path.trim();
    if path.is_empty() || path.split('.').any(str::is_empty) {
        return Err(Error::Config(format!("invalid --set {item:?}: empty key in the path")));
    }
    let value = match raw.trim() {
        "" => Value::String(String::new()),
        "null" | "~" => Value::Null,
        s => serde_saphyr::from_str::<Value>(s).unwrap_or_else(|_| Value::String(s.into())),
    };
    Ok((path.to_string(), value))
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
        let line = c.redacted();
        assert!(line.contains(r#""push":null"#), "{line}");
        for secret in ["s3cret-token", "hunter2", "pw-in-url", "Bearer abc"] {
            assert!(!line.contains(secret), "{secret} leaked: {line}");
        }
        assert!(line.contains("team-a"), "{line}");
    }
}
