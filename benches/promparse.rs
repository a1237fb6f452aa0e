//! Throughput of the streaming Prometheus answer parser (`collect::promparse`): one CPU
//! chunk's range matrix as rightsizer asks for it (2,000 series grouped by namespace, pod and
//! container, 576 five-minute points = 2 days), parsed from a slice and through a reader.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use rightsizer::collect::promparse::{Labels, SeriesSink, parse_reader, parse_slice};

const SERIES: usize = 2_000;
const POINTS: usize = 576;

/// A `query_range` answer as Prometheus writes it.
fn matrix(series: usize, points: usize) -> Vec<u8> {
    let mut s = String::from(r#"{"status":"success","data":{"resultType":"matrix","result":["#);
    for i in 0..series {
        if i > 0 {
            s.push(',');
        }
        s.push_str(&format!(
            r#"{{"metric":{{"container":"app","namespace":"ns-{}","pod":"svc-{i}-7d9f8c6b5-x{i:04}"}},"values":["#,
            i % 8
        ));
        for j in 0..points {
            if j > 0 {
                s.push(',');
            }
            let v = 0.01 + ((i * 7919 + j * 104_729) % 10_007) as f64 / 10_007.0;
            s.push_str(&format!(r#"[{},"{v}"]"#, 1_793_000_000 + 300 * j as i64));
        }
        s.push_str("]}");
    }
    s.push_str("]}}");
    s.into_bytes()
}

/// Sums the points, so nothing is optimized away.
struct Sum(f64, u64);

impl SeriesSink for Sum {
    fn series(&mut self, labels: &Labels) {
        black_box(labels);
    }
    fn sample(&mut self, _: f64, v: f64) {
        self.0 += v;
        self.1 += 1;
    }
}

fn bench(c: &mut Criterion) {
    let body = matrix(SERIES, POINTS);
    let mut g = c.benchmark_group("promparse");
    g.throughput(Throughput::Bytes(body.len() as u64));
    g.sample_size(10);
    g.bench_function("slice", |b| {
        b.iter(|| {
            let mut sink = Sum(0.0, 0);
            parse_slice(black_box(&body), &mut sink).unwrap();
            black_box(sink.0)
        })
    });
    g.bench_function("reader", |b| {
        b.iter(|| {
            let mut sink = Sum(0.0, 0);
            parse_reader(std::io::BufReader::new(black_box(&body[..])), &mut sink).unwrap();
            black_box(sink.0)
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
