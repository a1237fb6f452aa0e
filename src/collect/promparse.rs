//! Streaming parser of Prometheus HTTP API answers (`/api/v1/query`, `/query_range` and
//! `/series`), the
//! part of the collect stage that turns bytes into samples. It walks the JSON envelope with
//! serde visitors and feeds every series' labels and every `(time, value)` point straight into
//! a [`SeriesSink`], so an answer is never held as a list of series with string values: the
//! memory of a parse is one series' labels plus the JSON reader's buffer, whatever the size of
//! the answer. It accepts what Prometheus, Thanos, Mimir and VictoriaMetrics write: extra
//! top-level fields (`stats`, `isPartial`), `warnings` and `infos`, `data` keys in any order,
//! native histogram points (ignored), and `NaN`/`±Inf` values (skipped and counted, as are
//! values that are not numbers: one bad point or series never fails the answer).
//!
//! A hostile or broken server can answer anything, so a parse is held to [`Caps`]: series per
//! answer, labels per series, and partial-data warnings kept (de-duplicated with a set, the
//! rest counted). Going over a cap ends the parse with [`ParseError::Over`], naming the cap
//! and the setting that raises it. String lengths and answer bytes are capped on the byte
//! stream before the parser (`prometheus::transport`), since serde buffers a whole string.

use std::collections::BTreeMap;
use std::fmt;
use std::io::Read;

use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};

pub use self::caps::{Caps, JsonStrings, Over, ParseError};
use self::caps::{LabelsSeed, WarningsSeed};

mod caps;

/// The labels of one series.
pub type Labels = BTreeMap<String, String>;

/// Receives the series of an answer as they are parsed. A series' labels always come before
/// its points (points written before the `metric` key are held back until it arrives).
pub trait SeriesSink {
    /// A new series starts.
    fn series(&mut self, labels: &Labels);
    /// One finite point of the current series: unix seconds and value.
    fn sample(&mut self, t: f64, v: f64);
    /// The current series has no more points (a sink that reduces whole series does it here).
    fn end_series(&mut self) {}
}

/// What a parse found besides the series.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Parsed {
    pub status: String,
    pub result_type: String,
    pub error_type: Option<String>,
    pub error: Option<String>,
    /// Partial-data warnings (e.g. a Thanos store or a Mimir querier that did not answer).
    pub warnings: Vec<String>,
    /// Informational notices (Prometheus 2.45+, e.g. "metric might not be a counter").
    pub infos: Vec<String>,
    pub series: u64,
    pub samples: u64,
    /// `NaN` and infinite points, skipped.
    pub non_finite: u64,
    /// Points whose value is not a number at all, skipped.
    pub bad_values: u64,
    /// Series without a `metric` object, skipped.
    pub bad_series: u64,
    /// Warnings beyond `Caps::max_warnings` (after de-duplication), not kept.
    pub warnings_dropped: u64,
    /// The caps of this parse.
    pub(super) caps: Caps,
    /// The cap the answer went over, if any (the parse then fails).
    pub(super) over: Option<Over>,
}

/// Parses an answer from a byte slice.
pub fn parse_slice(body: &[u8], sink: &mut impl SeriesSink) -> serde_json::Result<Parsed> {
    let mut de = serde_json::Deserializer::from_slice(body);
    let mut parsed = Parsed::default();
    parse_with(&mut de, sink, &mut parsed)?;
    de.end()?;
    Ok(parsed)
}

/// Parses an answer from a reader (the HTTP body as it arrives).
pub fn parse_reader(body: impl Read, sink: &mut impl SeriesSink) -> serde_json::Result<Parsed> {
    parse_reader_capped(body, sink, Caps::default()).map_err(|e| match e {
        ParseError::Json(e) => e,
        ParseError::Over(o) => de::Error::custom(o.what),
    })
}

/// Parses an answer from a reader, held to `caps`.
pub fn parse_reader_capped(body: impl Read, sink: &mut impl SeriesSink, caps: Caps) -> Result<Parsed, ParseError> {
    let mut de = serde_json::Deserializer::from_reader(body);
    let mut parsed = Parsed {
        caps,
        ..Parsed::default()
    };
    let result = parse_with(&mut de, sink, &mut parsed).and_then(|()| de.end());
    match (result, parsed.over.take()) {
        (Ok(()), _) => Ok(parsed),
        (Err(_), Some(over)) => Err(ParseError::Over(over)),
        (Err(e), None) => Err(ParseError::Json(e)),
    }
}

fn parse_with<'de, D: de::Deserializer<'de>, S: SeriesSink>(
    de: D,
    sink: &mut S,
    parsed: &mut Parsed,
) -> Result<(), D::Error> {
    de.deserialize_map(Envelope { sink, parsed })
}

struct Envelope<'a, S> {
    sink: &'a mut S,
    parsed: &'a mut Parsed,
}

impl<'de, S: SeriesSink> Visitor<'de> for Envelope<'_, S> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a prometheus api answer object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(key) = map.next_key::<Key>()? {
            match key.0.as_str() {
                "status" => self.parsed.status = map.next_value()?,
                "errorType" => self.parsed.error_type = map.next_value()?,
                "error" => self.parsed.error = map.next_value()?,
                "warnings" => map.next_value_seed(WarningsSeed {
                    parsed: &mut *self.parsed,
                })?,
                "infos" => self.parsed.infos = map.next_value::<Option<Vec<String>>>()?.unwrap_or_default(),
                "data" => map.next_value_seed(DataSeed {
                    sink: &mut *self.sink,
                    parsed: &mut *self.parsed,
                })?,
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(())
    }
}

/// A map key, kept as an owned string: keys are few (per series, not per point).
struct Key(String);

impl<'de> de::Deserialize<'de> for Key {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_str(KeyVisitor)
    }
}

struct KeyVisitor;

impl Visitor<'_> for KeyVisitor {
    type Value = Key;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a key")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Key, E> {
        Ok(Key(v.to_string()))
    }
}

struct DataSeed<'a, S> {
    sink: &'a mut S,
    parsed: &'a mut Parsed,
}

impl<'de, S: SeriesSink> DeserializeSeed<'de> for DataSeed<'_, S> {
    type Value = ();

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_option(self)
    }
}

impl<'de, S: SeriesSink> Visitor<'de> for DataSeed<'_, S> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a data object with resultType and result")
    }

    fn visit_none<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_some<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }

    /// `/api/v1/series` answers a list of label sets: each is a series without points, and
    /// the result type is `series`.
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        self.parsed.result_type = "series".into();
        loop {
            self.parsed.count_series()?;
            let Some(labels) = seq.next_element_seed(LabelsSeed {
                parsed: &mut *self.parsed,
            })?
            else {
                break;
            };
            match labels {
                Some(labels) => {
                    self.sink.series(&labels);
                    self.sink.end_series();
                    self.parsed.series += 1;
                }
                None => self.parsed.bad_series += 1,
            }
        }
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(key) = map.next_key::<Key>()? {
            match key.0.as_str() {
                "resultType" => self.parsed.result_type = map.next_value()?,
                "result" => map.next_value_seed(ResultSeed {
                    sink: &mut *self.sink,
                    parsed: &mut *self.parsed,
                })?,
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(())
    }
}

struct ResultSeed<'a, S> {
    sink: &'a mut S,
    parsed: &'a mut Parsed,
}

impl<'de, S: SeriesSink> DeserializeSeed<'de> for ResultSeed<'_, S> {
    type Value = ();

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de, S: SeriesSink> Visitor<'de> for ResultSeed<'_, S> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a list of series")
    }

    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        // A scalar or string result is `[t, "v"]`, not a list of objects: its elements are
        // ignored here and the caller rejects the result type.
        let scalar = matches!(self.parsed.result_type.as_str(), "scalar" | "string");
        if scalar {
            while seq.next_element::<IgnoredAny>()?.is_some() {}
            return Ok(());
        }
        let mut buffered = Vec::new();
        while seq
            .next_element_seed(SeriesSeed {
                sink: &mut *self.sink,
                parsed: &mut *self.parsed,
                buffered: &mut buffered,
            })?
            .is_some()
        {}
        Ok(())
    }
}

struct SeriesSeed<'a, S> {
    sink: &'a mut S,
    parsed: &'a mut Parsed,
    buffered: &'a mut Vec<(f64, f64)>,
}

impl<'de, S: SeriesSink> DeserializeSeed<'de> for SeriesSeed<'_, S> {
    type Value = ();

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de, S: SeriesSink> Visitor<'de> for SeriesSeed<'_, S> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a series object with metric and value(s)")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut labelled = false;
        self.buffered.clear();
        while let Some(key) = map.next_key::<Key>()? {
            match key.0.as_str() {
                "metric" => {
                    self.parsed.count_series()?;
                    let labels: Labels = map
                        .next_value_seed(LabelsSeed {
                            parsed: &mut *self.parsed,
                        })?
                        .unwrap_or_default();
                    self.sink.series(&labels);
                    self.parsed.series += 1;
                    labelled = true;
                    for (t, v) in self.buffered.drain(..) {
                        self.sink.sample(t, v);
                    }
                }
                "values" => map.next_value_seed(PointsSeed {
                    out: Out {
                        sink: &mut *self.sink,
                        parsed: &mut *self.parsed,
                        buffered: &mut *self.buffered,
                        labelled,
                    },
                })?,
                "value" => {
                    let mut out = Out {
                        sink: &mut *self.sink,
                        parsed: &mut *self.parsed,
                        buffered: &mut *self.buffered,
                        labelled,
                    };
                    map.next_value_seed(PointSeed { out: &mut out })?;
                }
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        if labelled {
            self.sink.end_series();
        } else {
            self.parsed.bad_series += 1;
            self.buffered.clear();
        }
        Ok(())
    }
}

/// Where a parsed point goes: the sink, or the buffer until the labels arrive.
struct Out<'a, S> {
    sink: &'a mut S,
    parsed: &'a mut Parsed,
    buffered: &'a mut Vec<(f64, f64)>,
    labelled: bool,
}

impl<S: SeriesSink> Out<'_, S> {
    fn point(&mut self, t: f64, v: Option<f64>) {
        match v {
            None => self.parsed.bad_values += 1,
            Some(v) if !v.is_finite() => self.parsed.non_finite += 1,
            Some(v) => {
                self.parsed.samples += 1;
                if self.labelled {
                    self.sink.sample(t, v);
                } else {
                    self.buffered.push((t, v));
                }
            }
        }
    }
}

struct PointsSeed<'a, S> {
    out: Out<'a, S>,
}

impl<'de, S: SeriesSink> DeserializeSeed<'de> for PointsSeed<'_, S> {
    type Value = ();

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de, S: SeriesSink> Visitor<'de> for PointsSeed<'_, S> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a list of [time, \"value\"] points")
    }

    fn visit_seq<A: SeqAccess<'de>>(mut self, mut seq: A) -> Result<(), A::Error> {
        while seq.next_element_seed(PointSeed { out: &mut self.out })?.is_some() {}
        Ok(())
    }
}

struct PointSeed<'a, 'b, S> {
    out: &'a mut Out<'b, S>,
}

impl<'de, S: SeriesSink> DeserializeSeed<'de> for PointSeed<'_, '_, S> {
    type Value = ();

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de, S: SeriesSink> Visitor<'de> for PointSeed<'_, '_, S> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a [time, \"value\"] point")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let t: f64 = seq
            .next_element()?
            .ok_or_else(|| de::Error::custom("a point without a timestamp"))?;
        let v = seq
            .next_element_seed(ValueSeed)?
            .ok_or_else(|| de::Error::custom("a point without a value"))?;
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        self.out.point(t, v);
        Ok(())
    }
}

/// A sample value: a string (`"0.5"`, `"NaN"`, `"+Inf"`), or a bare number from lenient
/// servers. `None` when it is not a number at all.
struct ValueSeed;

impl<'de> DeserializeSeed<'de> for ValueSeed {
    type Value = Option<f64>;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Option<f64>, D::Error> {
        d.deserialize_any(self)
    }
}

impl Visitor<'_> for ValueSeed {
    type Value = Option<f64>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a sample value")
    }

    fn visit_str<E: de::Error>(self, s: &str) -> Result<Option<f64>, E> {
        Ok(parse_value(s))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Option<f64>, E> {
        Ok(Some(v))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Option<f64>, E> {
        Ok(Some(v as f64))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Option<f64>, E> {
        Ok(Some(v as f64))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Option<f64>, E> {
        Ok(None)
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Option<f64>, E> {
        Ok(None)
    }
}

/// Prometheus writes sample values as strings, `NaN` and `+Inf` included.
pub fn parse_value(s: &str) -> Option<f64> {
    match s {
        "NaN" => Some(f64::NAN),
        "+Inf" | "Inf" => Some(f64::INFINITY),
        "-Inf" => Some(f64::NEG_INFINITY),
        _ => s.parse().ok(),
    }
}

#[cfg(test)]
mod tests;
