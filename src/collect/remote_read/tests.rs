use super::*;

/// A port of Prometheus' `xorAppender` (`tsdb/chunkenc/xor.go`), to round-trip the decoder
/// through every timestamp bucket and both value-window cases. The decoder's check against
/// chunks written by a real Prometheus is the integration test `history::remote_read_*`.
#[derive(Default)]
struct BitWriter {
    bytes: Vec<u8>,
    used: u32,
}

impl BitWriter {
    fn bit(&mut self, b: bool) {
        if self.used.is_multiple_of(8) {
            self.bytes.push(0);
        }
        if b {
            *self.bytes.last_mut().unwrap() |= 0x80 >> (self.used % 8);
        }
        self.used += 1;
    }

    fn bits(&mut self, v: u64, n: u32) {
        for i in (0..n).rev() {
            self.bit(v >> i & 1 == 1);
        }
    }

    fn byte(&mut self, b: u8) {
        self.bits(u64::from(b), 8);
    }
}

fn encode_xor(samples: &[(i64, f64)]) -> Vec<u8> {
    let mut w = BitWriter::default();
    let (mut t, mut v, mut delta) = (0i64, 0f64, 0u64);
    let (mut leading, mut trailing) = (0xffu32, 0u32);
    let write_v = |w: &mut BitWriter, new: f64, old: f64, leading: &mut u32, trailing: &mut u32| {
        let d = new.to_bits() ^ old.to_bits();
        if d == 0 {
            w.bit(false);
            return;
        }
        w.bit(true);
        let lead = d.leading_zeros().min(31);
        let trail = d.trailing_zeros();
        if *leading != 0xff && lead >= *leading && trail >= *trailing {
            w.bit(false);
            w.bits(d >> *trailing, 64 - *leading - *trailing);
            return;
        }
        *leading = lead;
        *trailing = trail;
        w.bit(true);
        w.bits(u64::from(lead), 5);
        let sig = 64 - lead - trail;
        w.bits(u64::from(sig % 64), 6);
        w.bits(d >> trail, sig);
    };
    for (i, &(ts, val)) in samples.iter().enumerate() {
        match i {
            0 => {
                let mut z = ((ts << 1) ^ (ts >> 63)) as u64;
                while z >= 0x80 {
                    w.byte(z as u8 | 0x80);
                    z >>= 7;
                }
                w.byte(z as u8);
                w.bits(val.to_bits(), 64);
            }
            1 => {
                delta = (ts - t) as u64;
                let mut z = delta;
                while z >= 0x80 {
                    w.byte(z as u8 | 0x80);
                    z >>= 7;
                }
                w.byte(z as u8);
                write_v(&mut w, val, v, &mut leading, &mut trailing);
            }
            _ => {
                let d = (ts - t) as u64;
                let dod = d.wrapping_sub(delta) as i64;
                let fits = |n: u32| -((1i64 << (n - 1)) - 1) <= dod && dod <= 1i64 << (n - 1);
                if dod == 0 {
                    w.bit(false);
                } else if fits(14) {
                    w.bits(0b10, 2);
                    w.bits(dod as u64 & ((1 << 14) - 1), 14);
                } else if fits(17) {
                    w.bits(0b110, 3);
                    w.bits(dod as u64 & ((1 << 17) - 1), 17);
                } else if fits(20) {
                    w.bits(0b1110, 4);
                    w.bits(dod as u64 & ((1 << 20) - 1), 20);
                } else {
                    w.bits(0b1111, 4);
                    w.bits(dod as u64, 64);
                }
                delta = d;
                write_v(&mut w, val, v, &mut leading, &mut trailing);
            }
        }
        t = ts;
        v = val;
    }
    let mut out = (samples.len() as u16).to_be_bytes().to_vec();
    out.extend_from_slice(&w.bytes);
    out
}

#[test]
fn xor_chunks_round_trip_through_every_bucket() {
    let mut samples = Vec::new();
    let mut t = 1_793_000_000_000i64;
    let mut v = 12.5f64;
    // Regular 60 s scrapes with jitter, then gaps of every bucket size, negative and
    // positive dods, repeated values, a counter reset, tiny and huge values, a stale marker.
    for (i, dt) in [
        60_000, 60_000, 60_013, 59_990, 60_000, 75_000, 130_000, 60_000, 600_000, 60_000, 90_000_000, 60_000,
    ]
    .into_iter()
    .enumerate()
    {
        t += dt;
        v = match i {
            3 => v,
            6 => 0.25,
            8 => 1e-9,
            9 => 3.0e12,
            _ => v + 0.125 * i as f64,
        };
        samples.push((t, v));
    }
    let mut with_stale = samples.clone();
    with_stale.push((t + 60_000, f64::from_bits(STALE_NAN)));
    let mut out = Vec::new();
    decode_xor(&encode_xor(&with_stale), &mut out).unwrap();
    assert_eq!(out, samples, "the stale marker is left out");
    out.clear();
    assert!(decode_xor(&encode_xor(&samples)[..10], &mut out).is_err(), "cut off");
}

fn frame(payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    put_varint(&mut out, payload.len() as u64);
    out.extend_from_slice(&crc32c(payload).to_be_bytes());
    out.extend_from_slice(payload);
    out
}

fn series_msg(labels: &[(&str, &str)], chunks: &[Vec<u8>]) -> Vec<u8> {
    let mut s = Vec::new();
    for (n, v) in labels {
        let mut l = Vec::new();
        put_bytes(&mut l, 1, n.as_bytes());
        put_bytes(&mut l, 2, v.as_bytes());
        put_bytes(&mut s, 1, &l);
    }
    for data in chunks {
        let mut c = Vec::new();
        put_tag(&mut c, 1, 0);
        put_varint(&mut c, 5);
        put_tag(&mut c, 3, 0);
        put_varint(&mut c, 1);
        put_bytes(&mut c, 4, data);
        put_bytes(&mut s, 2, &c);
    }
    let mut resp = Vec::new();
    put_bytes(&mut resp, 1, &s);
    put_tag(&mut resp, 2, 0);
    put_varint(&mut resp, 0);
    resp
}

/// One series as the sink saw it: labels, samples, whether it was ended.
type Seen = (Labels, Vec<(i64, f64)>, bool);

#[derive(Default)]
struct Keep(Vec<Seen>);

impl RawSink for Keep {
    fn series(&mut self, labels: &Labels) {
        self.0.push((labels.clone(), Vec::new(), false));
    }

    fn samples(&mut self, samples: &[(i64, f64)]) {
        self.0.last_mut().unwrap().1.extend_from_slice(samples);
    }

    fn end_series(&mut self) {
        self.0.last_mut().unwrap().2 = true;
    }
}

#[test]
fn frames_carry_series_split_across_them_and_are_checked() {
    let a = [("__name__", "x"), ("pod", "a")];
    let b = [("__name__", "x"), ("pod", "b")];
    let c1 = encode_xor(&[(1000, 1.0), (2000, 2.0)]);
    let c2 = encode_xor(&[(3000, 3.0)]);
    let mut body = frame(&series_msg(&a, std::slice::from_ref(&c1)));
    body.extend(frame(&series_msg(&a, std::slice::from_ref(&c2))));
    body.extend(frame(&series_msg(&b, std::slice::from_ref(&c1))));
    let mut keep = Keep::default();
    let stats = read_stream(&body[..], &mut keep).unwrap();
    assert_eq!((stats.series, stats.chunks, stats.samples), (2, 3, 5));
    assert_eq!(keep.0.len(), 2);
    assert_eq!(keep.0[0].1, [(1000, 1.0), (2000, 2.0), (3000, 3.0)]);
    assert!(keep.0.iter().all(|s| s.2), "every series ended");
    assert_eq!(keep.0[1].0["pod"], "b");

    let mut broken = body.clone();
    let last = broken.len() - 1;
    broken[last] ^= 1;
    assert!(
        read_stream(&broken[..], &mut Keep::default())
            .unwrap_err()
            .to_string()
            .contains("CRC")
    );
    assert!(
        read_stream(&body[..body.len() - 3], &mut Keep::default()).is_err(),
        "cut off"
    );
}

#[test]
fn requests_are_protobuf_in_literal_snappy() {
    let req = encode_request(
        &[
            Matcher::Eq("__name__".into(), "up".into()),
            Matcher::Neq("container".into(), "".into()),
        ],
        1000,
        2000,
    );
    // ReadRequest{queries=1: Query{1: 1000, 2: 2000, 3: matcher, 3: matcher}, 2: [1]}
    let mut msg = Msg::new(&req);
    let (f, Value::Bytes(query)) = msg.next().unwrap().unwrap() else {
        panic!()
    };
    assert_eq!(f, 1);
    let fields: Vec<u64> = {
        let mut q = Msg::new(query);
        std::iter::from_fn(|| q.next().unwrap().map(|(f, _)| f)).collect()
    };
    assert_eq!(fields, [1, 2, 3, 3]);
    let (f, Value::Bytes(types)) = msg.next().unwrap().unwrap() else {
        panic!()
    };
    assert_eq!((f, types), (2, &[1u8][..]));

    let big: Vec<u8> = (0..70_000u32).map(|i| (i % 251) as u8).collect();
    for data in [&req[..], &big[..], &[][..]] {
        let framed = snappy_literal(data);
        assert_eq!(unsnappy(&framed), data);
    }
}

/// A snappy block decoder for literals only (what `snappy_literal` writes).
fn unsnappy(mut b: &[u8]) -> Vec<u8> {
    let mut m = Msg::new(b);
    let len = m.varint().unwrap() as usize;
    b = &b[m.pos..];
    let mut out = Vec::new();
    while !b.is_empty() {
        let tag = b[0] >> 2;
        let (n, skip) = match tag {
            60 => (b[1] as usize + 1, 2),
            61 => (u16::from_le_bytes([b[1], b[2]]) as usize + 1, 3),
            t => (t as usize + 1, 1),
        };
        out.extend_from_slice(&b[skip..skip + n]);
        b = &b[skip + n..];
    }
    assert_eq!(out.len(), len);
    out
}

#[test]
fn crc32c_matches_the_standard_check_value() {
    assert_eq!(crc32c(b"123456789"), 0xE306_9283);
}
