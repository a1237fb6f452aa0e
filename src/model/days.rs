//! A small map from UTC day (its start, unix seconds) to a value, ordered by day: what a
//! `BTreeMap<i64, V>` gave per container, in a sorted `Vec`. A container has a handful of
//! days (2 to 14, filled in time order), where a B-tree allocates a node of 11 slots for the
//! first one: about 800 bytes per container for the CPU day sketches, in the merged usage and
//! again in every CPU chunk in flight (issue 16). Serialized as the same JSON map.

use std::collections::BTreeMap;
use std::ops::RangeFrom;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

#[derive(Debug, Clone, PartialEq)]
pub struct Days<V>(Vec<(i64, V)>);

impl<V> Default for Days<V> {
    fn default() -> Self {
        Days(Vec::new())
    }
}

impl<V> Days<V> {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// `(day, value)` in day order.
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = (&i64, &V)> + ExactSizeIterator {
        self.0.iter().map(|(d, v)| (d, v))
    }

    pub fn keys(&self) -> impl DoubleEndedIterator<Item = &i64> + ExactSizeIterator {
        self.0.iter().map(|(d, _)| d)
    }

    pub fn values(&self) -> impl DoubleEndedIterator<Item = &V> + ExactSizeIterator {
        self.0.iter().map(|(_, v)| v)
    }

    /// The days from `since` on, in day order.
    pub fn range(&self, since: RangeFrom<i64>) -> impl DoubleEndedIterator<Item = (&i64, &V)> + ExactSizeIterator {
        let from = self.0.partition_point(|(d, _)| *d < since.start);
        self.0[from..].iter().map(|(d, v)| (d, v))
    }

    pub fn get(&self, day: i64) -> Option<&V> {
        self.0
            .binary_search_by_key(&day, |(d, _)| *d)
            .ok()
            .map(|i| &self.0[i].1)
    }

    /// The value of `day`, inserted as `V::default()` where there is none.
    pub fn entry_or_default(&mut self, day: i64) -> &mut V
    where
        V: Default,
    {
        self.entry_or_insert_with(day, V::default)
    }

    /// The value of `day`, inserted as `make()` where there is none. Days mostly come in time
    /// order, so the last one is checked first.
    pub fn entry_or_insert_with(&mut self, day: i64, make: impl FnOnce() -> V) -> &mut V {
        let i = match self.0.last() {
            Some((last, _)) if *last == day => self.0.len() - 1,
            Some((last, _)) if *last > day => match self.0.binary_search_by_key(&day, |(d, _)| *d) {
                Ok(i) => i,
                Err(i) => {
                    self.0.insert(i, (day, make()));
                    i
                }
            },
            _ => {
                self.0.push((day, make()));
                self.0.len() - 1
            }
        };
        &mut self.0[i].1
    }
}

impl<V> Days<V> {
    /// Takes `other`'s days: a day only `other` has is moved in, a day both have is combined
    /// by `merge(mine, theirs)`. The days are laid out once, at their final count.
    pub fn merge_with(&mut self, other: Days<V>, mut merge: impl FnMut(&mut V, V)) {
        if other.is_empty() {
            return;
        }
        if self.is_empty() {
            *self = other;
            self.0.shrink_to_fit();
            return;
        }
        let mine = std::mem::take(&mut self.0);
        let theirs = other.0;
        let mut out = Vec::with_capacity(mine.len() + theirs.len());
        let mut theirs = theirs.into_iter().peekable();
        for (day, mut v) in mine {
            while let Some((d, _)) = theirs.peek()
                && *d < day
            {
                out.extend(theirs.next());
            }
            if let Some((d, _)) = theirs.peek()
                && *d == day
            {
                let (_, t) = theirs.next().expect("peeked");
                merge(&mut v, t);
            }
            out.push((day, v));
        }
        out.extend(theirs);
        out.shrink_to_fit();
        self.0 = out;
    }
}

impl<V> std::ops::Index<&i64> for Days<V> {
    type Output = V;

    /// The value of a day; panics when there is none, as a map's index does.
    fn index(&self, day: &i64) -> &V {
        self.get(*day).expect("no value for this day")
    }
}

impl<'a, V> IntoIterator for &'a Days<V> {
    type Item = (&'a i64, &'a V);
    type IntoIter = std::iter::Map<std::slice::Iter<'a, (i64, V)>, fn(&'a (i64, V)) -> (&'a i64, &'a V)>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.iter().map(|(d, v)| (d, v))
    }
}

impl<V> FromIterator<(i64, V)> for Days<V> {
    /// Sorted by day; a day given twice keeps its last value (as collecting into a map).
    fn from_iter<I: IntoIterator<Item = (i64, V)>>(iter: I) -> Self {
        let map: BTreeMap<i64, V> = iter.into_iter().collect();
        Days(map.into_iter().collect())
    }
}

impl<V: Serialize> Serialize for Days<V> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(self.iter())
    }
}

impl<'de, V: DeserializeOwned> Deserialize<'de> for Days<V> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let map = BTreeMap::<i64, V>::deserialize(d)?;
        Ok(Days(map.into_iter().collect()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_stay_sorted_whatever_the_order_they_come_in() {
        let mut days = Days::<u32>::new();
        for (day, n) in [(200, 1), (200, 2), (300, 4), (100, 8), (250, 16), (100, 32)] {
            *days.entry_or_default(day) += n;
        }
        let map: BTreeMap<i64, u32> = [(100, 40), (200, 3), (250, 16), (300, 4)].into();
        assert_eq!(days.iter().collect::<Vec<_>>(), map.iter().collect::<Vec<_>>());
        assert_eq!(
            days.range(200..).collect::<Vec<_>>(),
            map.range(200..).collect::<Vec<_>>()
        );
        assert_eq!(days.range(201..).count(), 2);
        assert_eq!(days.range(400..).count(), 0);
        assert_eq!((days.get(250), days.get(260), days.len()), (Some(&16), None, 4));
        assert_eq!(days.keys().copied().collect::<Vec<_>>(), [100, 200, 250, 300]);
        assert_eq!(days.values().sum::<u32>(), 63);
        assert_eq!((days[&100], (&days).into_iter().count()), (40, 4));
    }

    #[test]
    fn merging_moves_new_days_in_and_combines_shared_ones() {
        type Pairs = &'static [(i64, u32)];
        let days = |pairs: Pairs| pairs.iter().copied().collect::<Days<u32>>();
        let cases: [(Pairs, Pairs); 5] = [
            (&[], &[(5, 1)]),
            (&[(5, 1)], &[]),
            (&[(1, 1), (3, 2), (5, 4)], &[(0, 8), (3, 16), (4, 32), (9, 64)]),
            (&[(7, 1)], &[(1, 2), (2, 4)]),
            (&[(1, 1), (2, 2)], &[(1, 4), (2, 8)]),
        ];
        for (a, b) in cases {
            let mut want = days(a);
            for (&d, &n) in &days(b) {
                *want.entry_or_default(d) += n;
            }
            let mut got = days(a);
            got.merge_with(days(b), |mine, theirs| *mine += theirs);
            assert_eq!(got, want, "{a:?} + {b:?}");
            assert_eq!(got.0.capacity(), got.len(), "{a:?} + {b:?}: laid out exactly");
        }
    }

    #[test]
    fn serializes_as_the_map_it_replaces() {
        let map: BTreeMap<i64, f64> = [(86_400, 1.5), (0, 0.25)].into();
        let days: Days<f64> = map.clone().into_iter().collect();
        let json = serde_json::to_string(&days).unwrap();
        assert_eq!(json, serde_json::to_string(&map).unwrap());
        assert_eq!(serde_json::from_str::<Days<f64>>(&json).unwrap(), days);
        assert!(serde_json::from_str::<Days<f64>>(r#"{"x": 1}"#).is_err());
    }
}
