//! Small sampling helpers and the derivation of independent random sub-streams.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// SplitMix64 finaliser: a cheap, well-mixing bijection on u64.
pub fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// An independent generator for one part of the county (`stream`) and one index
/// within it (e.g. a household), so that every part can be reproduced on its own.
pub fn substream(seed: u64, stream: u64, index: u64) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(mix(mix(seed ^ mix(stream)) ^ index))
}

/// A table for drawing values by integer weight (cumulative, binary search).
#[derive(Debug, Clone)]
pub struct Weighted<T> {
    values: Vec<T>,
    cumulative: Vec<u32>,
}

impl<T: Copy> Weighted<T> {
    pub fn new(items: impl IntoIterator<Item = (T, u32)>) -> Self {
        let mut values = vec![];
        let mut cumulative = vec![];
        let mut acc = 0u32;
        for (v, w) in items {
            if w == 0 {
                continue;
            }
            acc += w;
            values.push(v);
            cumulative.push(acc);
        }
        assert!(acc > 0, "a weighted table needs a positive weight");
        Weighted { values, cumulative }
    }

    pub fn pick(&self, rng: &mut impl Rng) -> T {
        let total = *self.cumulative.last().expect("non-empty");
        let r = rng.random_range(0..total);
        let i = self.cumulative.partition_point(|&c| c <= r);
        self.values[i]
    }
}

/// Draws from a small inline weighted list without building a table.
pub fn pick<T: Copy>(rng: &mut impl Rng, weighted: &[(T, u32)]) -> T {
    let total: u32 = weighted.iter().map(|w| w.1).sum();
    let mut r = rng.random_range(0..total.max(1));
    for &(v, w) in weighted {
        if r < w {
            return v;
        }
        r -= w;
    }
    weighted[0].0
}

/// Poisson-distributed count (Knuth's method; fine for the small means used here).
pub fn poisson(rng: &mut impl Rng, lambda: f64) -> u32 {
    if lambda <= 0.0 {
        return 0;
    }
    let l = (-lambda).exp();
    let (mut k, mut p) = (0, 1.0);
    loop {
        p *= rng.random::<f64>();
        if p <= l || k >= 200 {
            return k;
        }
        k += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weighted_draws_follow_weights() {
        let t = Weighted::new([('a', 1), ('b', 0), ('c', 3)]);
        let mut rng = substream(1, 2, 3);
        let mut n = [0u32; 3];
        for _ in 0..40_000 {
            match t.pick(&mut rng) {
                'a' => n[0] += 1,
                'b' => n[1] += 1,
                _ => n[2] += 1,
            }
        }
        assert_eq!(n[1], 0);
        let share = n[0] as f64 / 40_000.0;
        assert!((0.23..0.27).contains(&share), "{share}");
    }

    #[test]
    fn substreams_are_reproducible_and_distinct() {
        let a: u64 = substream(7, 1, 42).random();
        let b: u64 = substream(7, 1, 42).random();
        let c: u64 = substream(7, 1, 43).random();
        let d: u64 = substream(8, 1, 42).random();
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_ne!(a, d);
    }

    #[test]
    fn poisson_mean() {
        let mut rng = substream(3, 0, 0);
        let n = 20_000;
        let sum: u32 = (0..n).map(|_| poisson(&mut rng, 3.5)).sum();
        let mean = sum as f64 / n as f64;
        assert!((3.4..3.6).contains(&mean), "{mean}");
    }
}
