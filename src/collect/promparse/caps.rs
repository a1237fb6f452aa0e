//! The bounds of a parse ([`Caps`]) and the pieces that hold an answer to them: the label
//! set and warning visitors, and the string-length guard on the raw bytes ([`JsonStrings`]),
//! which runs before serde because serde buffers a whole string before its visitor sees it.

use std::collections::HashSet;
use std::fmt;

use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};

use super::{Labels, Parsed};

/// The bounds a parse is held to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Caps {
    /// Series in one answer.
    pub max_series: u64,
    /// Labels of one series.
    pub max_labels: usize,
    /// Distinct partial-data warnings kept from one answer (the rest are counted).
    pub max_warnings: usize,
}

impl Default for Caps {
    /// No cap on series and labels (tests, benchmarks); 100 warnings, as the client keeps.
    fn default() -> Self {
        Caps {
            max_series: u64::MAX,
            max_labels: usize::MAX,
            max_warnings: 100,
        }
    }
}

/// A cap that an answer went over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Over {
    /// What was too large: `more than 1000 series`.
    pub what: String,
    /// The setting that raises the cap.
    pub setting: &'static str,
}

/// Why a parse failed.
#[derive(Debug)]
pub enum ParseError {
    /// Not a Prometheus API answer (or a torn one).
    Json(serde_json::Error),
    /// Over one of the [`Caps`].
    Over(Over),
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self {
            ParseError::Json(e) => e.fmt(f),
            ParseError::Over(o) => write!(f, "{} (cap; raise {})", o.what, o.setting),
        }
    }
}

impl Parsed {
    /// Fails the parse because of a cap: remembered here, the error only unwinds serde.
    pub(super) fn over<E: de::Error>(&mut self, what: String, setting: &'static str) -> E {
        let e = E::custom(&what);
        self.over = Some(Over { what, setting });
        e
    }
}

impl Parsed {
    /// Checks that one more series stays within the cap.
    pub(super) fn count_series<E: de::Error>(&mut self) -> Result<(), E> {
        let seen = self.series + self.bad_series;
        if seen >= self.caps.max_series {
            let what = format!("more than {} series in one answer", self.caps.max_series);
            return Err(self.over(what, "--prometheus-max-series"));
        }
        Ok(())
    }
}

/// A label set (or null), held to `Caps::max_labels`.
pub(super) struct LabelsSeed<'a> {
    pub(super) parsed: &'a mut Parsed,
}

impl<'de> DeserializeSeed<'de> for LabelsSeed<'_> {
    type Value = Option<Labels>;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Option<Labels>, D::Error> {
        d.deserialize_option(self)
    }
}

impl<'de> Visitor<'de> for LabelsSeed<'_> {
    type Value = Option<Labels>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a label set")
    }

    fn visit_none<E: de::Error>(self) -> Result<Option<Labels>, E> {
        Ok(None)
    }

    fn visit_unit<E: de::Error>(self) -> Result<Option<Labels>, E> {
        Ok(None)
    }

    fn visit_some<D: de::Deserializer<'de>>(self, d: D) -> Result<Option<Labels>, D::Error> {
        d.deserialize_map(self)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Option<Labels>, A::Error> {
        let mut labels = Labels::new();
        while let Some((k, v)) = map.next_entry::<String, String>()? {
            labels.insert(k, v);
            if labels.len() > self.parsed.caps.max_labels {
                let what = format!("a series with more than {} labels", self.parsed.caps.max_labels);
                return Err(self.parsed.over(what, "--prometheus-max-labels"));
            }
        }
        Ok(Some(labels))
    }
}

/// Partial-data warnings: each kept once (a set, not a scan of the list), at most
/// `Caps::max_warnings` of them, the rest counted.
pub(super) struct WarningsSeed<'a> {
    pub(super) parsed: &'a mut Parsed,
}

impl<'de> DeserializeSeed<'de> for WarningsSeed<'_> {
    type Value = ();

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_option(self)
    }
}

impl<'de> Visitor<'de> for WarningsSeed<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a list of warnings")
    }

    fn visit_none<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_some<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_seq(self)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let mut seen: HashSet<String> = self.parsed.warnings.iter().cloned().collect();
        while let Some(w) = seq.next_element::<String>()? {
            if seen.contains(&w) {
                continue;
            }
            if seen.len() >= self.parsed.caps.max_warnings {
                self.parsed.warnings_dropped += 1;
                continue;
            }
            seen.insert(w.clone());
            self.parsed.warnings.push(w);
        }
        Ok(())
    }
}

/// Follows the JSON strings of a byte stream as it arrives and says when one is longer than
/// `max` bytes: serde buffers a whole string before its visitor sees it, so without this a
/// 1 GB label value would be held (several times over) before anything could refuse it.
/// Used on Prometheus answers and on snapshots.
pub struct JsonStrings {
    max: usize,
    in_string: bool,
    escaped: bool,
    run: usize,
}

impl JsonStrings {
    pub fn new(max: usize) -> Self {
        JsonStrings {
            max,
            in_string: false,
            escaped: false,
            run: 0,
        }
    }

    /// Reads the next bytes of the body; false once a string is over the cap.
    pub fn scan(&mut self, mut bytes: &[u8]) -> bool {
        while !bytes.is_empty() {
            if !self.in_string {
                let Some(i) = bytes.iter().position(|&b| b == b'"') else {
                    return true;
                };
                self.in_string = true;
                self.run = 0;
                bytes = &bytes[i + 1..];
                continue;
            }
            if self.escaped {
                self.escaped = false;
                self.run += 1;
                bytes = &bytes[1..];
                continue;
            }
            match bytes.iter().position(|&b| b == b'"' || b == b'\\') {
                Some(i) => {
                    self.run += i;
                    if bytes[i] == b'"' {
                        self.in_string = false;
                    } else {
                        self.escaped = true;
                        self.run += 1;
                    }
                    bytes = &bytes[i + 1..];
                }
                None => {
                    self.run += bytes.len();
                    bytes = &[];
                }
            }
            if self.run > self.max {
                return false;
            }
        }
        true
    }
}
