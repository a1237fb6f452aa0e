//! The settings model: layering, typed values, errors that name key and layer.

use super::*;

fn recommend(args: &[&str]) -> Result<RunSettings, Error> {
    let mut argv = vec!["rightsizer", "recommend"];
    argv.extend(args);
    RunSettings::from_argv(argv)
}

fn live(args: &[&str]) -> Result<RunSettings, Error> {
    let mut argv = vec!["--prometheus-url", "http://prom:9090"];
    argv.extend(args);
    recommend(&argv)
}

fn err(r: Result<RunSettings, Error>) -> String {
    r.expect_err("accepted").to_string()
}

fn config_file(text: &str) -> tempfile::NamedTempFile {
    let f = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(f.path(), text).unwrap();
    f
}

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
        assert_eq!(parse_duration(&format_duration(secs as i64)).unwrap().as_secs(), secs);
    }
    for s in ["", "14", "d", "5x", "0s", "-1d", "99999999999999999999d", "100000w"] {
        assert!(parse_duration(s).is_err(), "{s}");
    }
}

#[test]
fn times() {
    assert_eq!(parse_time("1700000000").unwrap(), 1_700_000_000);
    assert_eq!(parse_time("1970-01-01T00:00:00Z").unwrap(), 0);
    assert_eq!(parse_time("2026-11-01T00:00:00Z").unwrap(), 1_793_491_200);
    assert_eq!(parse_time("2000-02-29T12:30:15Z").unwrap(), 951_827_415);
    assert_eq!(parse_time("2026-11-01T02:00:00+02:00").unwrap(), 1_793_491_200);
    assert!(parse_time("yesterday").is_err());
}

#[test]
fn discovery_flags_become_a_filter() {
    let s = live(&[
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
    .unwrap();
    let f = &s.filter;
    assert_eq!(f.namespaces, ["shop", "data"]);
    assert_eq!(f.exclude_namespaces, ["tmp"]);
    assert_eq!(f.selector.as_ref().map(|s| s.to_string()).as_deref(), Some("app=web"));
    assert_eq!(f.kinds, [WorkloadKind::Deployment, WorkloadKind::StatefulSet]);
    assert!(f.include_system_namespaces);
    let Input::Live { kube, prometheus, .. } = &s.input else {
        panic!("live input expected")
    };
    assert_eq!(kube, &Some(KubeTarget::default()));
    assert!(prometheus.remote_read, "remote read is tried by default");
    let s = live(&[
        "--no-kube-api",
        "--prometheus-concurrency",
        "8",
        "--prometheus-retries",
        "0",
        "--prometheus-no-remote-read",
    ])
    .unwrap();
    let Input::Live { kube, prometheus, .. } = &s.input else {
        panic!("live input expected")
    };
    assert_eq!(kube, &None);
    assert_eq!((prometheus.concurrency, prometheus.retries), (8, 0));
    assert!(!prometheus.remote_read);
}

#[test]
fn bad_values_name_key_value_and_layer() {
    for (args, expect) in [
        (
            &["-n", "Shop"][..],
            r#"invalid kube.namespaces "Shop" (from --namespace)"#,
        ),
        (&["-n", "Bad_NS!"][..], r#"invalid kube.namespaces "Bad_NS!""#),
        (
            &["-n", "shop", "--exclude-namespace", "shop"],
            "both in kube.namespaces (from --namespace) and kube.excludeNamespaces (from --exclude-namespace)",
        ),
        (&["-l", " "], "invalid kube.selector"),
        (&["-l", "app in prod"], "parenthesised set"),
        (&["--prometheus-concurrency", "0"], "at least 1"),
        (&["--prometheus-ca-file", "/nonexistent.pem"], "not a readable file"),
        (&["--kind", "ReplicaSet"], "invalid value 'ReplicaSet'"),
        (&["--no-kube-api", "--context", "prod"], "cannot be used with"),
        (&["--history", "2x"], r#"invalid history "2x" (from --history)"#),
        (&["--step", "1d", "--history", "1d"], "must be shorter than history"),
        (&["--end", "yesterday"], r#"invalid end "yesterday""#),
        (&["--cpu-percentile", "95"], "policy.defaults.cpuPercentile"),
        (&["--memory-buffer", "-0.9"], "policy.defaults.memoryBuffer"),
        (
            &["--patch-format", "json6902"],
            "outputs.patches (from --patch-format) has no dir",
        ),
        (
            &["--set", "policy.defaults.nope=1"],
            "policy.defaults.nope = 1 (from --set policy.defaults.nope=1)",
        ),
        (&["--prometheus-header", "Bad Name=x"], "not a valid HTTP header name"),
        (
            &["--prometheus-selector", "cluster=prod"],
            r#"invalid prometheus.selector "cluster=prod" (from --prometheus-selector): cluster=: expected a quoted string"#,
        ),
        (
            &[
                "--prometheus-selector",
                r#"cluster="a""#,
                "--prometheus-selector",
                r#"env=~"(x""#,
            ],
            "missing closing )",
        ),
        (
            &["--prometheus-selector", r#"__name__="up""#],
            "__name__ cannot be matched",
        ),
        (&["--push-grouping", "x"], "invalid --push-grouping"),
    ] {
        let e = err(live(args));
        assert!(e.contains(expect), "{args:?}: {e}");
    }
}

#[test]
fn layers_apply_in_one_order() {
    let file = config_file(
        "prometheus:\n  url: http://from-file:9090\nhistory: 7d\nstep: 1m\nkube:\n  namespaces: [shop]\npolicy:\n  defaults:\n    cpuPercentile: 0.9\n    memoryBuffer: 0.2\noutputs:\n  format: json\n",
    );
    let path = file.path().to_str().unwrap();
    // The file over the defaults.
    let s = recommend(&["--config", path]).unwrap();
    assert_eq!((s.window.length, s.window.step), (7 * 86_400, 60));
    assert_eq!(s.filter.namespaces, ["shop"]);
    assert_eq!(s.policy.defaults.cpu_percentile, 0.9);
    assert_eq!(s.outputs.format, crate::emit::Format::Json);
    // Flags over the file, --set over the flags.
    let s = recommend(&[
        "--config",
        path,
        "--history",
        "3d",
        "--cpu-percentile",
        "0.8",
        "--set",
        "policy.defaults.cpuPercentile=0.85",
        "-f",
        "csv",
    ])
    .unwrap();
    assert_eq!(s.window.length, 3 * 86_400);
    assert_eq!(s.window.step, 60, "the file's step stays");
    assert_eq!(s.policy.defaults.cpu_percentile, 0.85);
    assert_eq!(s.policy.defaults.memory_buffer, 0.2);
    assert_eq!(s.outputs.format, crate::emit::Format::Csv);
    // A bad file value names the file and its line.
    let bad = config_file("prometheus:\n  url: http://prom:9090\nkube:\n  namespaces:\n    - Bad_NS\n");
    let e = err(recommend(&["--config", bad.path().to_str().unwrap()]));
    assert!(
        e.contains("invalid kube.namespaces \"Bad_NS\" (from config file"),
        "{e}"
    );
    assert!(e.contains("line 4"), "{e}");
}

#[test]
fn an_oversized_or_endless_config_file_is_refused() {
    let e = err(recommend(&["--config", "/dev/zero"]));
    assert!(e.contains("larger than 1024 KiB"), "{e}");
}

#[test]
fn credentials_in_urls_become_basic_auth_and_leave_the_url() {
    let s = recommend(&["--prometheus-url", "https://alice:s3cr%40t+x@prom.example:9090/api"]).unwrap();
    let prom = s.input.prometheus().unwrap().unwrap();
    assert_eq!(prom.url.as_str(), "https://prom.example:9090/api");
    assert_eq!(
        prom.basic_auth,
        Some(("alice".into(), "s3cr@t+x".into())),
        "a + stays a +"
    );
    assert!(!s.redacted.contains("s3cr"), "{}", s.redacted);
    let s = live(&["--push-metrics", "http://bob:hunter2@gw:9091"]).unwrap();
    let push = s.outputs.push.unwrap();
    assert_eq!(push.url, "http://gw:9091");
    assert_eq!(push.basic_auth, Some(("bob".into(), "hunter2".into())));
    assert!(!s.redacted.contains("hunter2"), "{}", s.redacted);
    let e = err(recommend(&[
        "--prometheus-url",
        "http://a:pw-secret@prom",
        "--prometheus-user",
        "b",
    ]));
    assert!(e.contains("carries credentials") && !e.contains("pw-secret"), "{e}");
}

#[test]
fn writes_through_the_api_need_the_api() {
    for flag in ["--annotate", "--apply", "--configmap=report"] {
        let e = err(live(&["--no-kube-api", flag, "--configmap-namespace", "x"]));
        assert!(e.contains("writes through the kubernetes api"), "{flag}: {e}");
    }
}

#[test]
fn the_policy_is_validated_at_start_for_every_subcommand() {
    let file = config_file("prometheus:\n  url: http://prom:9090\npolicy:\n  defaults:\n    memoryBuffer: -0.9\n");
    let path = file.path().to_str().unwrap();
    for sub in ["recommend", "agent", "backtest"] {
        let e = err(RunSettings::from_argv(["rightsizer", sub, "--config", path]));
        assert!(
            e.contains("policy.defaults.memoryBuffer") && e.contains("(from config file"),
            "{sub}: {e}"
        );
        let e = err(RunSettings::from_argv([
            "rightsizer",
            sub,
            "--prometheus-url",
            "http://prom:9090",
            "--set",
            "policy.defaults.cpuPercentile=95",
        ]));
        assert!(
            e.contains("policy.defaults.cpuPercentile") && e.contains("(from --set"),
            "{sub}: {e}"
        );
    }
}

#[test]
fn prometheus_selector_from_flags_and_config_file() {
    let scope = |s: RunSettings| s.input.prometheus().unwrap().unwrap().scope.to_string();
    let s = live(&[
        "--prometheus-selector",
        r#"cluster="a""#,
        "--prometheus-selector",
        r#"env=~"prod|stage",team!='x'"#,
    ])
    .unwrap();
    assert_eq!(scope(s), r#"cluster="a",env=~"prod|stage",team!="x""#);
    assert_eq!(scope(live(&[]).unwrap()), "", "no selector by default");
    let one = config_file("prometheus:\n  url: http://prom:9090\n  selector: 'cluster=\"b\"'\n");
    let path = one.path().to_str().unwrap();
    assert_eq!(scope(recommend(&["--config", path]).unwrap()), r#"cluster="b""#);
    // A flag replaces the file's value.
    let s = recommend(&["--config", path, "--prometheus-selector", r#"cluster="c""#]).unwrap();
    assert_eq!(scope(s), r#"cluster="c""#);
    let many =
        config_file("prometheus:\n  url: http://prom:9090\n  selector:\n    - 'cluster=\"b\"'\n    - 'env=\"x\"'\n");
    let s = recommend(&["--config", many.path().to_str().unwrap()]).unwrap();
    assert_eq!(scope(s), r#"cluster="b",env="x""#);
    let bad = config_file("prometheus:\n  url: http://prom:9090\n  selector: 'cluster=~\"[a\"'\n");
    let e = err(recommend(&["--config", bad.path().to_str().unwrap()]));
    assert!(
        e.contains("invalid prometheus.selector") && e.contains("missing closing ]"),
        "{e}"
    );
    // A snapshot holds one cluster: a selector cannot apply to it.
    let e = err(recommend(&[
        "--snapshot",
        "cluster.json",
        "--prometheus-selector",
        r#"cluster="a""#,
    ]));
    assert!(e.contains("cannot apply to a snapshot"), "{e}");
}

/// Every YAML config example in the README parses as it is
/// (unknown keys are errors, so a renamed key cannot linger in the docs).
#[test]
fn the_config_examples_in_the_readme_and_deploy_parse() {
    let readme = include_str!("../../README.md");
    let mut blocks = 0;
    for block in readme.split("```yaml\n").skip(1) {
        let body = &block[..block.find("```").expect("closed block")];
        // Only the config documents (kubectl/kustomize YAML has apiVersion).
        if body.contains("apiVersion:") || !(body.contains("prometheus:") || body.contains("outputs:")) {
            continue;
        }
        crate::settings::Config::from_yaml(body).unwrap_or_else(|e| panic!("README example: {e}\n{body}"));
        blocks += 1;
    }
    assert!(blocks >= 1, "no config example found in the README");
}
