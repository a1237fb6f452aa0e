//! Deterministic randomness for the history generator: a stateless hash of (seed, stream,
//! counter) built on splitmix64, so any sample can be recomputed on its own, in any order,
//! and the output is identical across runs and platforms (no `rand`, no floating-point
//! transcendental functions in the hashing itself).

/// The splitmix64 finaliser: a bijective 64-bit mixer with good avalanche.
pub fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Hash of two words.
pub fn hash2(a: u64, b: u64) -> u64 {
    mix(mix(a) ^ b.rotate_left(17))
}

/// Hash of three words.
pub fn hash3(a: u64, b: u64, c: u64) -> u64 {
    mix(hash2(a, b) ^ c.rotate_left(41))
}

/// Stable hash of a string (FNV-1a folded through `mix`), for deriving ids from names.
pub fn hash_str(s: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in s.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01B3);
    }
    mix(h)
}

/// Uniform in [0, 1) from the top 53 bits.
pub fn unit(h: u64) -> f64 {
    (h >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
}

/// Approximately standard normal (Irwin-Hall of three uniforms from one hash, rescaled to
/// unit variance), bounded to +-3: bounded noise keeps generated usage non-pathological.
pub fn normal(h: u64) -> f64 {
    const M: u64 = (1 << 21) - 1;
    let a = (h & M) as f64;
    let b = ((h >> 21) & M) as f64;
    let c = ((h >> 42) & M) as f64;
    let s = (a + b + c) / M as f64; // mean 1.5, variance 3/12
    (s - 1.5) * 2.0
}

/// A small sequential generator for building specs (not used for samples).
#[derive(Debug, Clone)]
pub struct SplitMix(pub u64);

impl SplitMix {
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        mix(self.0)
    }

    pub fn unit(&mut self) -> f64 {
        unit(self.next_u64())
    }

    /// Uniform in [lo, hi).
    pub fn range(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.unit()
    }

    /// Uniform integer in [0, n).
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 { 0 } else { self.next_u64() % n }
    }
}

/// The alphabet Kubernetes uses for generated name suffixes (no vowels, no look-alikes).
const SAFE: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

/// A Kubernetes-style random suffix of `len` characters (`x2k4p`, `7d4f8b9c6`).
pub fn suffix(h: u64, len: usize) -> String {
    let mut h = h;
    (0..len)
        .map(|i| {
            if i % 12 == 11 {
                h = mix(h);
            }
            let c = SAFE[(h % SAFE.len() as u64) as usize] as char;
            h /= SAFE.len() as u64;
            c
        })
        .collect()
}

/// An RFC 4122-shaped (version 4) UUID string from a hash.
pub fn uuid(h: u64) -> String {
    let a = mix(h);
    let b = mix(h ^ 0x5555_5555_5555_5555);
    format!(
        "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
        a >> 32,
        (a >> 16) & 0xffff,
        a & 0xfff,
        0x8000 | ((b >> 48) & 0x3fff),
        b & 0xffff_ffff_ffff
    )
}

/// A container id. containerd's are 64 hex digits; we keep 16 so that the `id` and `name`
/// labels of every cAdvisor line stay short (the history is written once per sample).
pub fn container_id(h: u64) -> String {
    format!("{:016x}", mix(h))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stable_values() {
        // Pinned so any change to the hashing (which would change every fixture) is noticed.
        assert_eq!(mix(0), 0xE220_A839_7B1D_CDAF);
        assert_eq!(suffix(42, 5).len(), 5);
        assert_eq!(uuid(7).len(), 36);
        assert_eq!(container_id(7).len(), 16);
    }

    #[test]
    fn noise_is_bounded_and_centred() {
        let n = 20_000u64;
        let (mut sum, mut sq) = (0.0, 0.0);
        for i in 0..n {
            let x = normal(hash2(1, i));
            assert!(x.abs() <= 3.0);
            sum += x;
            sq += x * x;
        }
        let mean = sum / n as f64;
        let var = sq / n as f64 - mean * mean;
        assert!(mean.abs() < 0.05, "mean {mean}");
        assert!((var - 1.0).abs() < 0.1, "var {var}");
        let u = (0..1000).map(|i| unit(mix(i))).fold(0.0f64, f64::max);
        assert!(u < 1.0);
    }
}
