//! A small seeded generator (SplitMix64): the same seed gives the same inputs in the same order.

/// Deterministic pseudo-random numbers for the mutators.
pub struct Rng(u64);

impl Rng {
    /// A generator started from `seed`.
    pub fn new(seed: u64) -> Self {
        Rng(seed ^ 0x9e37_79b9_7f4a_7c15)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (0 when `n` is 0).
    pub fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next_u64() % n as u64) as usize
        }
    }

    /// True with probability `k / n`.
    pub fn chance(&mut self, k: usize, n: usize) -> bool {
        self.below(n) < k
    }

    /// A random element of `items` (which must not be empty).
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }

    /// A length biased to small values: mostly below 8, sometimes up to `max`.
    pub fn small_len(&mut self, max: usize) -> usize {
        let cap = if self.chance(3, 4) { 8 } else { max.max(1) };
        1 + self.below(cap.min(max.max(1)))
    }
}
