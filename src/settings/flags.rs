//! The environment and the flags as overrides of the configuration document: every flag a
//! user gave (or its `RIGHTSIZER_*` variable) becomes `(dotted.path, value)`, named after where
//! it came from, so an error can say "from --namespace" or "from RIGHTSIZER_NAMESPACES".
//! Flags that were not given write nothing: the config file's value stays.

use clap::parser::ValueSource;
use clap::{ArgMatches, Command};
use serde_json::Value;

use super::file::{Override, parse_set, scalar};
use crate::Error;
use crate::cli::{ConfigArgs, InputArgs, KindArg, OutputArgs, PolicyArgs};

/// Where each flag's value came from, from clap's matches of the subcommand.
pub struct Sources<'a> {
    matches: Option<&'a ArgMatches>,
    command: Option<&'a Command>,
}

impl<'a> Sources<'a> {
    pub fn new(matches: &'a ArgMatches, command: &'a Command) -> Self {
        Sources {
            matches: Some(matches),
            command: Some(command),
        }
    }

    /// No matches at hand (library callers): every value is named after its flag id.
    pub fn unknown() -> Self {
        Sources {
            matches: None,
            command: None,
        }
    }

    /// `--flag` or `RIGHTSIZER_VAR`: where the value of the flag with clap id `id` came from.
    pub fn origin(&self, id: &str) -> String {
        let arg = self
            .command
            .and_then(|c| c.get_arguments().find(|a| a.get_id().as_str() == id));
        let env = self.matches.and_then(|m| m.value_source(id)) == Some(ValueSource::EnvVariable);
        match arg {
            Some(a) if env => a
                .get_env()
                .map_or_else(|| id.to_string(), |e| e.to_string_lossy().into_owned()),
            Some(a) => a.get_long().map_or_else(|| id.to_string(), |l| format!("--{l}")),
            None => format!("--{}", id.replace('_', "-")),
        }
    }
}

struct Collect<'s, 'a> {
    sources: &'s Sources<'a>,
    out: Vec<Override>,
}

impl Collect<'_, '_> {
    fn put(&mut self, id: &str, path: &str, value: Option<Value>) {
        if let Some(value) = value {
            self.out.push(Override {
                path: path.to_string(),
                value,
                from: self.sources.origin(id),
            });
        }
    }
}

fn s(v: &Option<String>) -> Option<Value> {
    v.clone().map(Value::from)
}

fn p(v: &Option<std::path::PathBuf>) -> Option<Value> {
    v.as_ref().map(|p| Value::from(p.display().to_string()))
}

fn b(v: Option<bool>) -> Option<Value> {
    v.map(Value::from)
}

fn list(v: &[String]) -> Option<Value> {
    (!v.is_empty()).then(|| Value::from(v.to_vec()))
}

/// A policy value as the user typed it: numbers stay numbers, `95%` and `50m` stay strings
/// for the policy's own parser.
fn policy_value(v: &Option<String>) -> Option<Value> {
    v.as_deref().map(scalar)
}

fn kind_name(k: KindArg) -> &'static str {
    match k {
        KindArg::Deployment => "Deployment",
        KindArg::StatefulSet => "StatefulSet",
        KindArg::DaemonSet => "DaemonSet",
        KindArg::CronJob => "CronJob",
        KindArg::Job => "Job",
        KindArg::Pod => "Pod",
    }
}

/// The input flags as overrides.
pub fn input(args: &InputArgs, sources: &Sources) -> Result<Vec<Override>, Error> {
    let mut c = Collect {
        sources,
        out: Vec::new(),
    };
    let (pr, k) = (&args.prometheus, &args.kube);
    c.put("snapshot", "snapshot", p(&args.snapshot));
    c.put("prometheus_url", "prometheus.url", s(&pr.prometheus_url));
    c.put("prometheus_token", "prometheus.token", s(&pr.prometheus_token));
    c.put(
        "prometheus_token_file",
        "prometheus.tokenFile",
        p(&pr.prometheus_token_file),
    );
    c.put("prometheus_user", "prometheus.user", s(&pr.prometheus_user));
    c.put("prometheus_password", "prometheus.password", s(&pr.prometheus_password));
    c.put("prometheus_timeout", "prometheus.timeout", s(&pr.prometheus_timeout));
    c.put("prometheus_ca_file", "prometheus.caFile", p(&pr.prometheus_ca_file));
    c.put(
        "prometheus_insecure_skip_tls_verify",
        "prometheus.insecureSkipTlsVerify",
        b(pr.prometheus_insecure_skip_tls_verify),
    );
    c.put(
        "prometheus_concurrency",
        "prometheus.concurrency",
        pr.prometheus_concurrency.map(Value::from),
    );
    c.put(
        "prometheus_retries",
        "prometheus.retries",
        pr.prometheus_retries.map(Value::from),
    );
    c.put(
        "prometheus_no_remote_read",
        "prometheus.noRemoteRead",
        b(pr.prometheus_no_remote_read),
    );
    c.put(
        "prometheus_request_deadline",
        "prometheus.requestDeadline",
        s(&pr.prometheus_request_deadline),
    );
    c.put(
        "prometheus_run_deadline",
        "prometheus.runDeadline",
        s(&pr.prometheus_run_deadline),
    );
    c.put(
        "prometheus_max_answer_bytes",
        "prometheus.maxAnswerBytes",
        pr.prometheus_max_answer_bytes.map(Value::from),
    );
    c.put(
        "prometheus_max_string_bytes",
        "prometheus.maxStringBytes",
        pr.prometheus_max_string_bytes.map(Value::from),
    );
    c.put(
        "prometheus_max_series",
        "prometheus.maxSeries",
        pr.prometheus_max_series.map(Value::from),
    );
    c.put(
        "prometheus_max_labels",
        "prometheus.maxLabels",
        pr.prometheus_max_labels.map(Value::from),
    );
    c.put(
        "prometheus_max_warnings",
        "prometheus.maxWarnings",
        pr.prometheus_max_warnings.map(Value::from),
    );
    c.put(
        "prometheus_selector",
        "prometheus.selector",
        list(&pr.prometheus_selector),
    );
    for h in &pr.prometheus_headers {
        let (name, value) = h
            .split_once('=')
            .ok_or_else(|| Error::Config(format!("invalid --prometheus-header {h:?}: use Name=value")))?;
        c.put(
            "prometheus_headers",
            &format!("prometheus.headers.{}", name.trim()),
            Some(value.trim().into()),
        );
    }
    c.put("kubeconfig", "kube.kubeconfig", p(&k.kubeconfig));
    c.put("context", "kube.context", s(&k.context));
    c.put("namespaces", "kube.namespaces", list(&k.namespaces));
    c.put(
        "exclude_namespaces",
        "kube.excludeNamespaces",
        list(&k.exclude_namespaces),
    );
    c.put(
        "include_system_namespaces",
        "kube.includeSystemNamespaces",
        b(k.include_system_namespaces),
    );
    c.put("selector", "kube.selector", s(&k.selector));
    let kinds: Vec<String> = k.kinds.iter().map(|k| kind_name(*k).to_string()).collect();
    c.put("kinds", "kube.kinds", list(&kinds));
    c.put("no_kube_api", "kube.noKubeApi", b(k.no_kube_api));
    c.put(
        "kube_request_timeout",
        "kube.requestTimeout",
        s(&k.kube_request_timeout),
    );
    c.put(
        "kube_list_max_pages",
        "kube.listMaxPages",
        k.kube_list_max_pages.map(Value::from),
    );
    c.put("kube_list_deadline", "kube.listDeadline", s(&k.kube_list_deadline));
    c.put(
        "snapshot_max_bytes",
        "snapshotMaxBytes",
        args.snapshot_max_bytes.map(Value::from),
    );
    c.put("history", "history", s(&args.history));
    c.put("step", "step", s(&args.step));
    c.put("end", "end", s(&args.end));
    Ok(c.out)
}

/// The policy flags as overrides of `policy.defaults`.
pub fn policy(args: &PolicyArgs, sources: &Sources) -> Vec<Override> {
    let mut c = Collect {
        sources,
        out: Vec::new(),
    };
    for (id, key, v) in [
        ("cpu_percentile", "cpuPercentile", &args.cpu_percentile),
        ("cpu_buffer", "cpuBuffer", &args.cpu_buffer),
        ("memory_buffer", "memoryBuffer", &args.memory_buffer),
        ("memory_mode", "memoryMode", &args.memory_mode),
        ("cpu_limit", "cpuLimit", &args.cpu_limit),
        ("min_cpu", "minCpu", &args.min_cpu),
        ("max_cpu", "maxCpu", &args.max_cpu),
        ("min_memory", "minMemory", &args.min_memory),
        ("max_memory", "maxMemory", &args.max_memory),
    ] {
        let value = match key {
            // Modes and quantities are strings to their parsers, whatever they look like.
            "memoryMode" | "cpuLimit" | "minCpu" | "maxCpu" | "minMemory" | "maxMemory" => s(v),
            _ => policy_value(v),
        };
        c.put(id, &format!("policy.defaults.{key}"), value);
    }
    c.out
}

/// The output flags as overrides.
pub fn output(args: &OutputArgs, sources: &Sources) -> Result<Vec<Override>, Error> {
    let mut c = Collect {
        sources,
        out: Vec::new(),
    };
    c.put("format", "outputs.format", named(&args.format));
    c.put("output", "outputs.file", p(&args.output));
    c.put("no_color", "outputs.noColor", b(args.no_color));
    c.put("no_progress", "outputs.noProgress", b(args.no_progress));
    c.put("markdown", "outputs.markdown", p(&args.markdown));
    c.put("patches_dir", "outputs.patches.dir", p(&args.patches_dir));
    c.put("patch_format", "outputs.patches.format", named(&args.patch_format));
    c.put("manifests", "outputs.manifests", p(&args.manifests));
    c.put("annotate", "outputs.annotate", b(args.annotate));
    c.put("apply", "outputs.apply", b(args.apply));
    c.put("force", "outputs.force", b(args.force));
    c.put("check", "outputs.check", b(args.check));
    c.put("configmap", "outputs.configMap.name", s(&args.configmap));
    c.put(
        "configmap_namespace",
        "outputs.configMap.namespace",
        s(&args.configmap_namespace),
    );
    c.put("push_metrics", "outputs.push.url", s(&args.push_metrics));
    c.put("push_job", "outputs.push.job", s(&args.push_job));
    for g in &args.push_grouping {
        let (name, value) = g.split_once('=').ok_or_else(|| {
            Error::Config(format!(
                "invalid --push-grouping {g:?}: use name=value, e.g. cluster=prod"
            ))
        })?;
        c.put(
            "push_grouping",
            &format!("outputs.push.grouping.{}", name.trim()),
            Some(value.trim().into()),
        );
    }
    if let Some(text) = &args.pull_request {
        let short = crate::emit::pull_request::spec::parse_short(text)
            .map_err(|e| Error::Config(format!("invalid {} {text:?}: {e}", sources.origin("pull_request"))))?;
        let key = |k: &str| format!("outputs.pullRequest.{k}");
        c.put("pull_request", &key("provider"), Some(short.provider.into()));
        c.put("pull_request", &key("repository"), Some(short.repository.into()));
        c.put("pull_request", &key("baseBranch"), short.base_branch.map(Value::from));
        c.put("pull_request", &key("path"), short.path.map(Value::from));
    }
    c.put(
        "pull_request_token_file",
        "outputs.pullRequest.tokenFile",
        p(&args.pull_request_token_file),
    );
    c.put(
        "pull_request_mode",
        "outputs.pullRequest.mode",
        named(&args.pull_request_mode),
    );
    c.put(
        "pull_request_api_url",
        "outputs.pullRequest.apiUrl",
        s(&args.pull_request_api_url),
    );
    c.put(
        "pull_request_branch",
        "outputs.pullRequest.branch",
        s(&args.pull_request_branch),
    );
    c.put(
        "pull_request_title",
        "outputs.pullRequest.title",
        s(&args.pull_request_title),
    );
    c.put(
        "pull_request_labels",
        "outputs.pullRequest.labels",
        list(&args.pull_request_labels),
    );
    c.put(
        "pull_request_reviewers",
        "outputs.pullRequest.reviewers",
        list(&args.pull_request_reviewers),
    );
    c.put(
        "pull_request_assignees",
        "outputs.pullRequest.assignees",
        list(&args.pull_request_assignees),
    );
    c.put(
        "pull_request_draft",
        "outputs.pullRequest.draft",
        b(args.pull_request_draft),
    );
    Ok(c.out)
}

/// `--set` items, last.
pub fn set(args: &ConfigArgs) -> Result<Vec<Override>, Error> {
    args.set.iter().map(|item| parse_set(item)).collect()
}

/// A value enum as the config file spells it (`json6902`, `markdown`): its serde name.
fn named<T: serde::Serialize>(v: &Option<T>) -> Option<Value> {
    v.as_ref().map(|v| serde_json::to_value(v).unwrap_or(Value::Null))
}
