use super::*;

/// Keeps everything: the test view of a parse.
#[derive(Default)]
struct Collect(Vec<(Labels, Vec<(f64, f64)>)>);

impl SeriesSink for Collect {
    fn series(&mut self, labels: &Labels) {
        self.0.push((labels.clone(), Vec::new()));
    }

    fn sample(&mut self, t: f64, v: f64) {
        self.0.last_mut().expect("labels first").1.push((t, v));
    }
}

fn parse(body: &str) -> (Parsed, Collect) {
    let mut c = Collect::default();
    let p = parse_slice(body.as_bytes(), &mut c).expect("parses");
    let mut c2 = Collect::default();
    let p2 = parse_reader(body.as_bytes(), &mut c2).expect("parses from a reader");
    assert_eq!(p, p2);
    assert_eq!(c.0, c2.0);
    (p, c)
}

#[test]
fn parses_prometheus_value_strings() {
    assert_eq!(parse_value("1.5"), Some(1.5));
    assert!(parse_value("NaN").unwrap().is_nan());
    assert_eq!(parse_value("+Inf"), Some(f64::INFINITY));
    assert_eq!(parse_value("-Inf"), Some(f64::NEG_INFINITY));
    assert_eq!(parse_value("1e3"), Some(1000.0));
    assert_eq!(parse_value("x"), None);
}

#[test]
fn parses_a_matrix_with_extra_fields_warnings_and_infos() {
    let body = r#"{"status":"success","isPartial":false,"data":{"resultType":"matrix","result":[
        {"metric":{"namespace":"shop","pod":"web-1","container":"app"},"values":[[100,"0.5"],[400,"NaN"],[700,"+Inf"],[1000,"0.25"]]},
        {"metric":{},"values":[[100,"1"]],"histograms":[[100,{"count":"1"}]]}
      ],"stats":{"seriesFetched":"2"}},"warnings":["store a unavailable"],"infos":["PromQL info: metric might not be a counter"],
      "stats":{"timings":{"evalTotalTime":0.1}}}"#;
    let (p, c) = parse(body);
    assert_eq!(p.status, "success");
    assert_eq!(p.result_type, "matrix");
    assert_eq!(p.warnings, vec!["store a unavailable"]);
    assert_eq!(p.infos.len(), 1);
    assert_eq!((p.series, p.samples, p.non_finite, p.bad_values), (2, 3, 2, 0));
    assert_eq!(c.0[0].0["pod"], "web-1");
    assert_eq!(c.0[0].1, vec![(100.0, 0.5), (1000.0, 0.25)]);
    assert!(c.0[1].0.is_empty());
}

#[test]
fn parses_a_series_answer_as_series_without_points() {
    let body = r#"{"status":"success","data":[{"__name__":"kube_pod_owner","pod":"a"},null,{"__name__":"kube_job_owner"}],
        "warnings":["partial"]}"#;
    let (p, c) = parse(body);
    assert_eq!(p.result_type, "series");
    assert_eq!((p.series, p.samples, p.bad_series), (2, 0, 1));
    assert_eq!(c.0[0].0["pod"], "a");
    assert!(c.0.iter().all(|(_, points)| points.is_empty()));
    assert_eq!(p.warnings, vec!["partial"]);
}

#[test]
fn parses_a_vector_in_any_key_order() {
    // Values before the labels, data keys reversed, bare numbers (lenient servers).
    let body = r#"{"data":{"result":[{"value":[1.5,"2"],"metric":{"a":"b"}},{"metric":{"a":"c"},"value":[1.5,3]},
        {"metric":{"a":"d"},"value":[1.5,"oops"]},{"value":[1,"1"]}],"resultType":"vector"},"status":"success"}"#;
    let (p, c) = parse(body);
    assert_eq!(p.result_type, "vector");
    assert_eq!(c.0.len(), 3);
    assert_eq!(c.0[0].1, vec![(1.5, 2.0)]);
    assert_eq!(c.0[1].1, vec![(1.5, 3.0)]);
    assert!(c.0[2].1.is_empty());
    assert_eq!((p.bad_values, p.bad_series), (1, 1));
}

#[test]
fn parses_errors_empty_results_and_scalars() {
    let (p, c) = parse(r#"{"status":"error","errorType":"bad_data","error":"parse error at char 3"}"#);
    assert_eq!(p.status, "error");
    assert_eq!(p.error_type.as_deref(), Some("bad_data"));
    assert!(c.0.is_empty());
    let (p, c) = parse(r#"{"status":"success","data":{"resultType":"matrix","result":[]}}"#);
    assert_eq!((p.series, c.0.len()), (0, 0));
    let (p, c) = parse(r#"{"status":"success","data":{"resultType":"vector","result":null},"warnings":null}"#);
    assert_eq!((p.series, c.0.len()), (0, 0));
    let (p, _) = parse(r#"{"status":"success","data":{"resultType":"scalar","result":[1,"2"]}}"#);
    assert_eq!((p.result_type.as_str(), p.series), ("scalar", 0));
}

#[test]
fn refuses_malformed_json() {
    for body in [
        "",
        "<html>502 Bad Gateway</html>",
        r#"{"status":"success","data":{"resultType":"matrix","result":[{"metric":{},"values":[[1,"2"]"#,
        r#"{"status":"success","data":{"resultType":"matrix","result":[{"metric":{},"values":[["x","2"]]}]}}"#,
        r#"{"status":"success"} trailing"#,
    ] {
        let mut c = Collect::default();
        assert!(parse_slice(body.as_bytes(), &mut c).is_err(), "{body:?}");
        assert!(parse_reader(body.as_bytes(), &mut c).is_err(), "{body:?}");
    }
}

/// A matrix answer like a cluster-wide CPU range query: `series` series of `points` points.
pub fn synthetic_matrix(series: usize, points: usize) -> Vec<u8> {
    use std::fmt::Write;
    let mut s = String::from(r#"{"status":"success","data":{"resultType":"matrix","result":["#);
    for i in 0..series {
        if i > 0 {
            s.push(',');
        }
        write!(
            s,
            r#"{{"metric":{{"container":"app","namespace":"ns-{}","pod":"svc-{i}-7d9f8c6b5-x2k4q"}},"values":["#,
            i % 8
        )
        .unwrap();
        for k in 0..points {
            if k > 0 {
                s.push(',');
            }
            write!(
                s,
                r#"[{},"{}"]"#,
                1_793_000_000 + 300 * k,
                0.0123456789 * ((i * 7 + k) % 97) as f64
            )
            .unwrap();
        }
        s.push_str("]}");
    }
    s.push_str("]}}");
    s.into_bytes()
}

/// Parse throughput (run with `cargo test --release --lib promparse -- --ignored --nocapture`).
#[test]
#[ignore = "a measurement, not a check"]
fn parse_throughput() {
    struct Sum(f64, u64);
    impl SeriesSink for Sum {
        fn series(&mut self, _: &Labels) {}
        fn sample(&mut self, _: f64, v: f64) {
            self.0 += v;
            self.1 += 1;
        }
    }
    let body = synthetic_matrix(2_000, 576);
    for (name, reader) in [("slice", false), ("reader", true)] {
        let start = std::time::Instant::now();
        let mut sink = Sum(0.0, 0);
        let rounds = 3;
        for _ in 0..rounds {
            if reader {
                parse_reader(std::io::BufReader::new(&body[..]), &mut sink).unwrap();
            } else {
                parse_slice(&body, &mut sink).unwrap();
            }
        }
        let secs = start.elapsed().as_secs_f64();
        let mb = (body.len() * rounds) as f64 / 1e6;
        eprintln!(
            "{name}: {:.0} MB/s, {:.1} M points/s ({} MB body)",
            mb / secs,
            sink.1 as f64 / secs / 1e6,
            body.len() / 1_000_000
        );
    }
}

#[test]
fn string_guard_follows_strings_across_chunks_and_escapes() {
    let mut g = JsonStrings::new(5);
    assert!(g.scan(br#"{"abcde": "ab"#));
    assert!(g.scan(br#"\"c"}"#), "an escaped quote does not end the string");
    assert!(g.scan(br#"["12345"]"#));
    let mut g = JsonStrings::new(5);
    assert!(g.scan(br#"{"a": "123"#));
    assert!(!g.scan(b"456"), "the string goes on across chunks");
    let mut g = JsonStrings::new(5);
    assert!(!g.scan(br#"["1234\"5"]"#), "escapes count");
}

#[test]
fn caps_end_the_parse_and_name_the_setting() {
    let body = r#"{"status":"success","data":{"resultType":"vector","result":[
        {"metric":{"pod":"a"},"value":[1,"1"]},{"metric":{"pod":"b"},"value":[1,"1"]},
        {"metric":{"pod":"c","x":"1","y":"2"},"value":[1,"1"]}]}}"#;
    let caps = Caps {
        max_series: 2,
        ..Caps::default()
    };
    let mut c = Collect::default();
    match parse_reader_capped(body.as_bytes(), &mut c, caps) {
        Err(ParseError::Over(o)) => assert_eq!(o.setting, "--prometheus-max-series"),
        other => panic!("{other:?}"),
    }
    let caps = Caps {
        max_labels: 2,
        ..Caps::default()
    };
    match parse_reader_capped(body.as_bytes(), &mut Collect::default(), caps) {
        Err(ParseError::Over(o)) => assert_eq!(o.setting, "--prometheus-max-labels"),
        other => panic!("{other:?}"),
    }
    assert!(parse_reader_capped(body.as_bytes(), &mut Collect::default(), Caps::default()).is_ok());
}

#[test]
fn warnings_are_kept_once_and_capped() {
    let many: Vec<String> = (0..20_000).map(|i| format!("\"w{}\"", i % 5_000)).collect();
    let body = format!(
        r#"{{"status":"success","warnings":[{}],"data":{{"resultType":"vector","result":[]}}}}"#,
        many.join(",")
    );
    let caps = Caps {
        max_warnings: 100,
        ..Caps::default()
    };
    let p = parse_reader_capped(body.as_bytes(), &mut Collect::default(), caps).unwrap();
    assert_eq!(p.warnings.len(), 100);
    assert_eq!(p.warnings[..2], ["w0", "w1"]);
    assert!(p.warnings_dropped > 0);
}
