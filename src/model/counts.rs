//! The bucket counters of a `Sketch`: a dense array whose width follows the largest count
//! (one byte each until a counter passes 255, two until one passes 65,535, then four), sized
//! exactly to the buckets spanned. The values are those of a `Vec<u32>` (saturating at
//! `u32::MAX` as before), and so is the serialized form: a list of numbers, so snapshots and
//! golden files do not change.

use serde::{Deserialize, Deserializer, Serialize, Serializer};

#[derive(Debug, Clone)]
pub(super) enum Counts {
    U8(Vec<u8>),
    U16(Vec<u16>),
    U32(Vec<u32>),
}

impl Default for Counts {
    fn default() -> Self {
        Counts::U8(Vec::new())
    }
}

/// Extends `v` to `len` zeros at the back, allocating exactly (a sketch rarely grows, and
/// doubling would leave up to half its counters unused for the rest of the run).
fn grow_back<T: Copy + Default>(v: &mut Vec<T>, len: usize) {
    if len > v.len() {
        v.reserve_exact(len - v.len());
        v.resize(len, T::default());
    }
}

/// Puts `k` zeros in front of `v`, allocating exactly.
fn grow_front<T: Copy + Default>(v: &mut Vec<T>, k: usize) {
    let mut out = Vec::with_capacity(v.len() + k);
    out.resize(k, T::default());
    out.extend_from_slice(v);
    *v = out;
}

/// Puts `front` zeros in front of `v` and extends it with zeros to `len`, allocating exactly
/// once when it grows.
fn grow<T: Copy + Default>(v: &mut Vec<T>, front: usize, len: usize) {
    if front == 0 {
        grow_back(v, len);
    } else {
        let len = len.max(v.len() + front);
        let mut out = Vec::with_capacity(len);
        out.resize(front, T::default());
        out.extend_from_slice(v);
        out.resize(len, T::default());
        *v = out;
    }
}

impl Counts {
    pub(super) fn len(&self) -> usize {
        match self {
            Counts::U8(v) => v.len(),
            Counts::U16(v) => v.len(),
            Counts::U32(v) => v.len(),
        }
    }

    pub(super) fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub(super) fn get(&self, i: usize) -> u32 {
        match self {
            Counts::U8(v) => u32::from(v[i]),
            Counts::U16(v) => u32::from(v[i]),
            Counts::U32(v) => v[i],
        }
    }

    pub(super) fn iter(&self) -> impl Iterator<Item = u32> + '_ {
        (0..self.len()).map(|i| self.get(i))
    }

    /// Adds `n` to counter `i` (saturating at `u32::MAX`), widening every counter first when
    /// the sum does not fit the current width.
    pub(super) fn add(&mut self, i: usize, n: u32) {
        let sum = self.get(i).saturating_add(n);
        match self {
            Counts::U8(v) if sum <= u32::from(u8::MAX) => v[i] = sum as u8,
            Counts::U16(v) if sum <= u32::from(u16::MAX) => v[i] = sum as u16,
            Counts::U32(v) => v[i] = sum,
            _ => {
                self.widen(sum);
                self.add(i, n);
            }
        }
    }

    /// Re-stores the counters at the narrowest width that holds `max`.
    fn widen(&mut self, max: u32) {
        let values: Vec<u32> = self.iter().collect();
        *self = Counts::from_values(values, max);
    }

    /// Counters holding `values`, at the narrowest width that holds them and `at_least`.
    fn from_values(values: Vec<u32>, at_least: u32) -> Counts {
        let max = values.iter().copied().max().unwrap_or(0).max(at_least);
        if max <= u32::from(u8::MAX) {
            Counts::U8(values.into_iter().map(|c| c as u8).collect())
        } else if max <= u32::from(u16::MAX) {
            Counts::U16(values.into_iter().map(|c| c as u16).collect())
        } else {
            let mut v = values;
            v.shrink_to_fit();
            Counts::U32(v)
        }
    }

    /// Extends the counters to `len` with zeros at the back.
    pub(super) fn grow_back(&mut self, len: usize) {
        match self {
            Counts::U8(v) => grow_back(v, len),
            Counts::U16(v) => grow_back(v, len),
            Counts::U32(v) => grow_back(v, len),
        }
    }

    /// Puts `front` zero counters in front, then extends the counters to `len` with zeros at
    /// the back.
    pub(super) fn grow(&mut self, front: usize, len: usize) {
        match self {
            Counts::U8(v) => grow(v, front, len),
            Counts::U16(v) => grow(v, front, len),
            Counts::U32(v) => grow(v, front, len),
        }
    }

    /// The first and last counters that are not zero, if any.
    pub(super) fn nonzero_span(&self) -> Option<(usize, usize)> {
        let first = self.iter().position(|c| c > 0)?;
        let last = (first..self.len()).rev().find(|&i| self.get(i) > 0)?;
        Some((first, last))
    }

    /// Puts `k` zero counters in front.
    pub(super) fn grow_front(&mut self, k: usize) {
        match self {
            Counts::U8(v) => grow_front(v, k),
            Counts::U16(v) => grow_front(v, k),
            Counts::U32(v) => grow_front(v, k),
        }
    }

    /// Bytes held on the heap.
    pub(super) fn heap_bytes(&self) -> usize {
        match self {
            Counts::U8(v) => v.capacity(),
            Counts::U16(v) => v.capacity() * 2,
            Counts::U32(v) => v.capacity() * 4,
        }
    }
}

/// Equal when the counts are, whatever their width.
impl PartialEq for Counts {
    fn eq(&self, other: &Counts) -> bool {
        self.len() == other.len() && self.iter().eq(other.iter())
    }
}

impl Serialize for Counts {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.iter())
    }
}

impl<'de> Deserialize<'de> for Counts {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Counts, D::Error> {
        Ok(Counts::from_values(Vec::<u32>::deserialize(d)?, 0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn widens_only_when_a_count_needs_it_and_keeps_every_value() {
        let mut c = Counts::default();
        c.grow_back(3);
        c.add(0, 255);
        c.add(2, 7);
        assert!(matches!(c, Counts::U8(_)));
        assert_eq!(c.heap_bytes(), 3);
        c.add(0, 1);
        assert!(matches!(c, Counts::U16(_)));
        assert_eq!(c.iter().collect::<Vec<_>>(), [256, 0, 7]);
        c.add(1, 70_000);
        assert!(matches!(c, Counts::U32(_)));
        assert_eq!(c.iter().collect::<Vec<_>>(), [256, 70_000, 7]);
        // Saturates at u32::MAX, as the `Vec<u32>` counters did.
        c.add(1, u32::MAX);
        assert_eq!(c.get(1), u32::MAX);
    }

    #[test]
    fn grows_at_either_end_exactly() {
        let mut c = Counts::default();
        c.grow_back(1);
        c.add(0, 9);
        c.grow_front(2);
        c.grow_back(5);
        assert_eq!(c.iter().collect::<Vec<_>>(), [0, 0, 9, 0, 0]);
        assert_eq!(c.heap_bytes(), 5);
    }

    #[test]
    fn serializes_as_the_u32_list_it_replaces_and_round_trips() {
        let mut c = Counts::default();
        c.grow_back(3);
        c.add(1, 300);
        c.add(2, 4);
        let text = serde_json::to_string(&c).unwrap();
        assert_eq!(text, serde_json::to_string(&vec![0u32, 300, 4]).unwrap());
        let back: Counts = serde_json::from_str(&text).unwrap();
        assert_eq!(back, c);
        // Read back at the narrowest width that holds the values.
        assert!(matches!(back, Counts::U16(_)));
        let small: Counts = serde_json::from_str("[1,2]").unwrap();
        assert!(matches!(small, Counts::U8(_)));
        assert_eq!(Counts::U32(vec![1, 2]), small);
    }
}
