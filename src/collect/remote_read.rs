//! Prometheus remote read (`POST /api/v1/read`) with streamed XOR chunks, the cheapest way to
//! get raw samples out of Prometheus: the server sends the TSDB's compressed chunks as they
//! are stored, without evaluating PromQL or formatting a float. Codec only (no I/O): the
//! request (protobuf, snappy-framed), the response frames (`uvarint length`, `CRC-32C`,
//! `prometheus.ChunkedReadResponse`) and the XOR chunk encoding (Gorilla: delta-of-delta
//! timestamps, XOR-ed float bits; `tsdb/chunkenc/xor.go`). Protobuf is decoded by hand: the
//! handful of fields of `prompb/remote.proto` and `types.proto` we read, every other field
//! skipped by its wire type.

use std::io::{self, Read};

use super::promparse::Labels;

/// Content type of a streamed response.
pub const STREAMED_CONTENT_TYPE: &str = "application/x-streamed-protobuf; proto=prometheus.ChunkedReadResponse";

/// A label matcher of a remote-read query.
#[derive(Debug, Clone, PartialEq)]
pub enum Matcher {
    Eq(String, String),
    Neq(String, String),
    Re(String, String),
    /// `!~`
    Nre(String, String),
}

/// Receives the series of a remote-read answer: labels, then the samples in time order
/// (milliseconds, value), possibly in several calls. Stale markers are left out.
pub trait RawSink {
    fn series(&mut self, labels: &Labels);
    fn samples(&mut self, samples: &[(i64, f64)]);
    /// The current series is complete.
    fn end_series(&mut self) {}
}

/// What a decode found.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct RawStats {
    pub series: u64,
    pub chunks: u64,
    pub samples: u64,
    /// Chunks in another encoding (native histograms), skipped.
    pub skipped_chunks: u64,
}

// --- request ---------------------------------------------------------------------------

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn put_tag(out: &mut Vec<u8>, field: u32, wire: u8) {
    put_varint(out, (u64::from(field) << 3) | u64::from(wire));
}

fn put_bytes(out: &mut Vec<u8>, field: u32, bytes: &[u8]) {
    put_tag(out, field, 2);
    put_varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

/// `prometheus.ReadRequest` with one query over `[start_ms, end_ms]`, accepting only streamed
/// XOR chunks.
pub fn encode_request(matchers: &[Matcher], start_ms: i64, end_ms: i64) -> Vec<u8> {
    let mut query = Vec::new();
    put_tag(&mut query, 1, 0);
    put_varint(&mut query, start_ms as u64);
    put_tag(&mut query, 2, 0);
    put_varint(&mut query, end_ms as u64);
    for m in matchers {
        let (kind, name, value) = match m {
            Matcher::Eq(n, v) => (0, n, v),
            Matcher::Neq(n, v) => (1, n, v),
            Matcher::Re(n, v) => (2, n, v),
            Matcher::Nre(n, v) => (3, n, v),
        };
        let mut lm = Vec::new();
        if kind != 0 {
            put_tag(&mut lm, 1, 0);
            put_varint(&mut lm, kind);
        }
        put_bytes(&mut lm, 2, name.as_bytes());
        put_bytes(&mut lm, 3, value.as_bytes());
        put_bytes(&mut query, 3, &lm);
    }
    let mut req = Vec::new();
    put_bytes(&mut req, 1, &query);
    // accepted_response_types: [STREAMED_XOR_CHUNKS] (packed repeated enum).
    put_bytes(&mut req, 2, &[1]);
    req
}

/// Snappy block format holding `data` as literals only: valid snappy that every decoder
/// reads, without a compressor (a request is a few hundred bytes).
pub fn snappy_literal(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() + 16);
    put_varint(&mut out, data.len() as u64);
    for chunk in data.chunks(1 << 16) {
        let n = chunk.len() - 1;
        if n < 60 {
            out.push((n as u8) << 2);
        } else if n < 1 << 8 {
            out.push(60 << 2);
            out.push(n as u8);
        } else {
            out.push(61 << 2);
            out.extend_from_slice(&(n as u16).to_le_bytes());
        }
        out.extend_from_slice(chunk);
    }
    out
}

// --- response frames -------------------------------------------------------------------

/// CRC-32C (Castagnoli), as the frames carry it.
fn crc32c(data: &[u8]) -> u32 {
    static TABLE: std::sync::OnceLock<[u32; 256]> = std::sync::OnceLock::new();
    let table = TABLE.get_or_init(|| {
        let mut t = [0u32; 256];
        for (i, e) in t.iter_mut().enumerate() {
            let mut c = i as u32;
            for _ in 0..8 {
                c = if c & 1 != 0 { 0x82F6_3B78 ^ (c >> 1) } else { c >> 1 };
            }
            *e = c;
        }
        t
    });
    let mut crc = !0u32;
    for &b in data {
        crc = table[((crc ^ u32::from(b)) & 0xff) as usize] ^ (crc >> 8);
    }
    !crc
}

fn bad(what: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.into())
}

fn read_uvarint(r: &mut impl Read) -> io::Result<Option<u64>> {
    let mut v = 0u64;
    for i in 0..10 {
        let mut b = [0u8];
        if r.read(&mut b)? == 0 {
            return if i == 0 {
                Ok(None)
            } else {
                Err(bad("a frame length is cut off"))
            };
        }
        v |= u64::from(b[0] & 0x7f) << (7 * i);
        if b[0] < 0x80 {
            return Ok(Some(v));
        }
    }
    Err(bad("a frame length is not a varint"))
}

/// Largest frame accepted (Prometheus writes at most `--storage.remote.read-max-bytes-in-frame`,
/// 1 MiB by default; a series larger than that still comes in one frame).
const MAX_FRAME: u64 = 256 << 20;

/// Reads a streamed answer, frame by frame, into `sink`. Consecutive frames may carry the
/// same series (one too large for a frame is split): they continue it.
pub fn read_stream(mut r: impl Read, sink: &mut impl RawSink) -> io::Result<RawStats> {
    let mut stats = RawStats::default();
    let mut frame = Vec::new();
    let mut current: Option<Labels> = None;
    let mut samples = Vec::new();
    while let Some(len) = read_uvarint(&mut r)? {
        if len > MAX_FRAME {
            return Err(bad(format!("a frame of {len} bytes")));
        }
        let mut crc = [0u8; 4];
        r.read_exact(&mut crc)?;
        // The length is the sender's word: the buffer grows with the bytes that actually
        // arrive, so a 100-byte answer that claims a 256 MiB frame never allocates 256 MiB.
        frame.clear();
        let got = (&mut r).take(len).read_to_end(&mut frame)?;
        if (got as u64) < len {
            return Err(bad(format!("a frame of {len} bytes is cut off after {got} bytes")));
        }
        if crc32c(&frame) != u32::from_be_bytes(crc) {
            return Err(bad("a frame's CRC-32C does not match"));
        }
        let mut msg = Msg::new(&frame);
        while let Some((field, value)) = msg.next()? {
            // ChunkedReadResponse.chunked_series = 1 (query_index = 2 is ignored: one query).
            if field != 1 {
                continue;
            }
            let Value::Bytes(series) = value else {
                return Err(bad("chunked_series is not a message"));
            };
            let (labels, chunks) = decode_series(series)?;
            if current.as_ref() != Some(&labels) {
                if current.is_some() {
                    sink.end_series();
                }
                sink.series(&labels);
                stats.series += 1;
                current = Some(labels);
            }
            for chunk in chunks {
                let Value::Bytes(chunk) = chunk else { continue };
                stats.chunks += 1;
                samples.clear();
                if !decode_chunk(chunk, &mut samples)? {
                    stats.skipped_chunks += 1;
                    continue;
                }
                stats.samples += samples.len() as u64;
                sink.samples(&samples);
            }
        }
    }
    if current.is_some() {
        sink.end_series();
    }
    Ok(stats)
}

/// `ChunkedSeries`: labels (1) and the raw `Chunk` messages (2).
fn decode_series(buf: &[u8]) -> io::Result<(Labels, Vec<Value<'_>>)> {
    let mut labels = Labels::new();
    let mut chunks = Vec::new();
    let mut msg = Msg::new(buf);
    while let Some((field, value)) = msg.next()? {
        match (field, value) {
            (1, Value::Bytes(label)) => {
                let (mut name, mut val) = (String::new(), String::new());
                let mut l = Msg::new(label);
                while let Some((f, v)) = l.next()? {
                    if let Value::Bytes(b) = v {
                        let text = String::from_utf8_lossy(b).into_owned();
                        match f {
                            1 => name = text,
                            2 => val = text,
                            _ => {}
                        }
                    }
                }
                labels.insert(name, val);
            }
            (2, v @ Value::Bytes(_)) => chunks.push(v),
            _ => {}
        }
    }
    Ok((labels, chunks))
}

/// Decodes one `Chunk` message; false when it is not an XOR chunk.
fn decode_chunk(buf: &[u8], out: &mut Vec<(i64, f64)>) -> io::Result<bool> {
    let mut kind = 0;
    let mut data: &[u8] = &[];
    let mut msg = Msg::new(buf);
    while let Some((field, value)) = msg.next()? {
        match (field, value) {
            (3, Value::Varint(k)) => kind = k,
            (4, Value::Bytes(b)) => data = b,
            _ => {}
        }
    }
    if kind != 1 {
        return Ok(false);
    }
    decode_xor(data, out)?;
    Ok(true)
}

/// A protobuf field value, by wire type.
#[derive(Debug, Clone, Copy)]
enum Value<'a> {
    Varint(u64),
    Bytes(&'a [u8]),
    Fixed,
}

/// Iterates the fields of one protobuf message.
struct Msg<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Msg<'a> {
    fn new(buf: &'a [u8]) -> Self {
        Msg { buf, pos: 0 }
    }

    fn varint(&mut self) -> io::Result<u64> {
        let mut v = 0u64;
        for i in 0..10 {
            let b = *self.buf.get(self.pos).ok_or_else(|| bad("a message is cut off"))?;
            self.pos += 1;
            v |= u64::from(b & 0x7f) << (7 * i);
            if b < 0x80 {
                return Ok(v);
            }
        }
        Err(bad("a varint is too long"))
    }

    fn take(&mut self, n: usize) -> io::Result<&'a [u8]> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.buf.len());
        let end = end.ok_or_else(|| bad("a field is cut off"))?;
        let out = &self.buf[self.pos..end];
        self.pos = end;
        Ok(out)
    }

    fn next(&mut self) -> io::Result<Option<(u64, Value<'a>)>> {
        if self.pos >= self.buf.len() {
            return Ok(None);
        }
        let tag = self.varint()?;
        let value = match tag & 7 {
            0 => Value::Varint(self.varint()?),
            1 => {
                self.take(8)?;
                Value::Fixed
            }
            2 => {
                let n = self.varint()? as usize;
                Value::Bytes(self.take(n)?)
            }
            5 => {
                self.take(4)?;
                Value::Fixed
            }
            w => return Err(bad(format!("protobuf wire type {w}"))),
        };
        Ok(Some((tag >> 3, value)))
    }
}

// --- XOR chunks ------------------------------------------------------------------------

/// Prometheus' stale marker: a NaN with this exact bit pattern.
const STALE_NAN: u64 = 0x7ff0_0000_0000_0002;

/// A big-endian bit reader over a 64-bit window: a refill moves whole bytes in, a read takes
/// the top bits (one shift and mask per field, not a loop per bit).
struct Bits<'a> {
    buf: &'a [u8],
    /// Next byte to move into `acc`.
    next: usize,
    /// Unread bits, left-aligned.
    acc: u64,
    /// How many bits of `acc` are unread.
    have: u32,
}

impl<'a> Bits<'a> {
    fn new(buf: &'a [u8]) -> Self {
        Bits {
            buf,
            next: 0,
            acc: 0,
            have: 0,
        }
    }

    fn refill(&mut self) {
        while self.have <= 56 && self.next < self.buf.len() {
            self.acc |= u64::from(self.buf[self.next]) << (56 - self.have);
            self.have += 8;
            self.next += 1;
        }
    }

    fn bit(&mut self) -> io::Result<bool> {
        Ok(self.bits(1)? == 1)
    }

    fn bits(&mut self, n: u32) -> io::Result<u64> {
        if n == 0 {
            return Ok(0);
        }
        if n > 56 {
            let high = self.bits(n - 32)?;
            return Ok((high << 32) | self.bits(32)?);
        }
        if self.have < n {
            self.refill();
            if self.have < n {
                return Err(bad("an XOR chunk is cut off"));
            }
        }
        let v = self.acc >> (64 - n);
        self.acc <<= n;
        self.have -= n;
        Ok(v)
    }

    fn uvarint(&mut self) -> io::Result<u64> {
        let mut v = 0u64;
        for i in 0..10 {
            let b = self.bits(8)?;
            v |= (b & 0x7f) << (7 * i);
            if b < 0x80 {
                return Ok(v);
            }
        }
        Err(bad("a varint in an XOR chunk is too long"))
    }
}

/// Decodes an XOR chunk's samples (milliseconds, value) into `out`, leaving stale markers out.
pub fn decode_xor(data: &[u8], out: &mut Vec<(i64, f64)>) -> io::Result<()> {
    if data.len() < 2 {
        return Err(bad("an XOR chunk without a header"));
    }
    let n = u16::from_be_bytes([data[0], data[1]]) as usize;
    let mut r = Bits::new(&data[2..]);
    let (mut t, mut v, mut delta) = (0i64, 0u64, 0i64);
    let (mut leading, mut trailing) = (0u32, 0u32);
    for i in 0..n {
        match i {
            0 => {
                let z = r.uvarint()?;
                t = ((z >> 1) as i64) ^ -((z & 1) as i64);
                v = r.bits(64)?;
            }
            _ => {
                if i == 1 {
                    delta = r.uvarint()? as i64;
                } else {
                    let mut prefix = 0;
                    while prefix < 4 && r.bit()? {
                        prefix += 1;
                    }
                    let size = [0, 14, 17, 20, 64][prefix];
                    let dod = match size {
                        0 => 0,
                        64 => r.bits(64)? as i64,
                        sz => {
                            let mut bits = r.bits(sz)?;
                            if bits > 1 << (sz - 1) {
                                bits = bits.wrapping_sub(1 << sz);
                            }
                            bits as i64
                        }
                    };
                    delta += dod;
                }
                t += delta;
                if r.bit()? {
                    let (lead, sig) = if r.bit()? {
                        let lead = r.bits(5)? as u32;
                        let sig = match r.bits(6)? as u32 {
                            0 => 64,
                            s => s,
                        };
                        (lead, sig)
                    } else {
                        (leading, 64 - leading - trailing)
                    };
                    let bits = r.bits(sig)?;
                    v ^= bits << (64 - lead - sig);
                    leading = lead;
                    trailing = 64 - lead - sig;
                }
            }
        }
        if v != STALE_NAN {
            out.push((t, f64::from_bits(v)));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
