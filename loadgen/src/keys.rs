//! Which key each operation touches: the key table and the key distributions.
//!
//! Owns [`KeyTable`] (every key of the key space, built once, sliced per operation without
//! allocating) and [`KeyChooser`] (uniform, zipfian, scrambled zipfian).
//!
//! Invariants:
//! - Keys are fixed-size: `k` + zero-padded decimal index, padded with `_` to `key_size`;
//!   index `i` always maps to the same bytes, so preloading and the run agree.
//! - Every chooser returns an index in `0..n`.
//! - Zipfian is YCSB's generator (Gray et al., "Quickly generating billion-record synthetic
//!   databases"): rank `r` (0-based) has probability `1 / ((r+1)^theta * zeta(n, theta))`;
//!   ranks 0 and 1 are exact, higher ranks follow the continuous approximation.
//! - Scrambled zipfian applies a bijection of `0..n` to the zipfian rank, so the skew is
//!   exactly the zipfian one but hot keys are spread over the key space (YCSB hashes
//!   instead, which merges some ranks; a bijection keeps the distribution exact).

use bytes::Bytes;
use rand::Rng;

/// All keys of the key space in one buffer.
#[derive(Debug, Clone)]
pub struct KeyTable {
    buf: Bytes,
    key_size: usize,
    count: u64,
}

/// Smallest key size that can hold `count` distinct keys in this format.
pub fn min_key_size(count: u64) -> usize {
    let digits = count.saturating_sub(1).max(1).ilog10() as usize + 1;
    1 + digits
}

impl KeyTable {
    /// Builds the table. The caller validated `key_size >= min_key_size(count)` and the
    /// table's size against the limit.
    pub fn new(count: u64, key_size: usize) -> Self {
        assert!(count >= 1);
        assert!(key_size >= min_key_size(count), "key size too small");
        let digits = min_key_size(count) - 1;
        let total = usize::try_from(count).expect("validated key count fits usize") * key_size;
        let mut buf = Vec::with_capacity(total);
        for i in 0..count {
            let start = buf.len();
            buf.push(b'k');
            // Write the zero-padded decimal without a per-key allocation.
            let mut n = i;
            let digit_start = buf.len();
            buf.resize(digit_start + digits, b'0');
            for pos in (digit_start..digit_start + digits).rev() {
                buf[pos] = b'0' + (n % 10) as u8;
                n /= 10;
            }
            buf.resize(start + key_size, b'_');
        }
        debug_assert_eq!(buf.len(), total);
        Self {
            buf: Bytes::from(buf),
            key_size,
            count,
        }
    }

    /// Number of keys.
    pub fn len(&self) -> u64 {
        self.count
    }

    /// Whether the table is empty (never: construction asserts at least one key).
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Key `i` as a borrowed slice.
    #[inline]
    pub fn key(&self, i: u64) -> &[u8] {
        let start = i as usize * self.key_size;
        &self.buf[start..start + self.key_size]
    }

    /// Key `i` as a shared `Bytes` (a reference-count increment, no copy).
    #[inline]
    pub fn key_bytes(&self, i: u64) -> Bytes {
        let start = i as usize * self.key_size;
        self.buf.slice(start..start + self.key_size)
    }
}

/// YCSB's zipfian generator over ranks `0..n`.
#[derive(Debug, Clone)]
pub struct Zipfian {
    n: u64,
    theta: f64,
    alpha: f64,
    zetan: f64,
    eta: f64,
    half_pow_theta: f64,
}

/// Number of terms of zeta summed exactly before the Euler-Maclaurin tail takes over.
const ZETA_EXACT_TERMS: u64 = 1_000_000;

/// `sum_{i=1..n} 1/i^theta`: exact up to a million terms, Euler-Maclaurin beyond (relative
/// error far below 1e-9 there), so a billion keys cost milliseconds, not seconds.
pub fn zeta(n: u64, theta: f64) -> f64 {
    let exact = n.min(ZETA_EXACT_TERMS);
    let mut sum = 0.0;
    for i in 1..=exact {
        sum += 1.0 / (i as f64).powf(theta);
    }
    if n > exact {
        let f = |x: f64| x.powf(-theta);
        let df = |x: f64| -theta * x.powf(-theta - 1.0);
        let (a, b) = (exact as f64, n as f64);
        let integral = (b.powf(1.0 - theta) - a.powf(1.0 - theta)) / (1.0 - theta);
        // sum_{a+1..b} f = integral_a^b f + (f(b) - f(a))/2 + (f'(b) - f'(a))/12 + ...
        sum += integral + (f(b) - f(a)) / 2.0 + (df(b) - df(a)) / 12.0;
    }
    sum
}

impl Zipfian {
    /// A generator over `n >= 1` ranks with `0 < theta < 1`.
    pub fn new(n: u64, theta: f64) -> Self {
        assert!(n >= 1);
        assert!(theta > 0.0 && theta < 1.0, "theta must be in (0, 1)");
        let zetan = zeta(n, theta);
        let zeta2 = zeta(2.min(n), theta);
        let eta = if n >= 2 {
            (1.0 - (2.0 / n as f64).powf(1.0 - theta)) / (1.0 - zeta2 / zetan)
        } else {
            0.0
        };
        Self {
            n,
            theta,
            alpha: 1.0 / (1.0 - theta),
            zetan,
            eta,
            half_pow_theta: 0.5f64.powf(theta),
        }
    }

    /// Probability of rank `r` under the exact zipfian law.
    pub fn probability(&self, r: u64) -> f64 {
        1.0 / ((r + 1) as f64).powf(self.theta) / self.zetan
    }

    /// Draws a rank in `0..n` (0 is the hottest).
    #[inline]
    pub fn sample<R: Rng + ?Sized>(&self, rng: &mut R) -> u64 {
        let u: f64 = rng.random();
        let uz = u * self.zetan;
        if uz < 1.0 {
            return 0;
        }
        if self.n >= 2 && uz < 1.0 + self.half_pow_theta {
            return 1;
        }
        let r = (self.n as f64 * (self.eta * u - self.eta + 1.0).powf(self.alpha)) as u64;
        r.min(self.n - 1)
    }
}

/// A bijection of `0..n` that scatters neighbouring inputs (hot zipfian ranks) over the
/// whole range: an invertible mix on the next power of two, cycle-walked back into `0..n`.
#[derive(Debug, Clone)]
pub struct Scatter {
    n: u64,
    bits: u32,
    mask: u64,
    seed: u64,
}

impl Scatter {
    /// A permutation of `0..n` chosen by `seed`.
    pub fn new(n: u64, seed: u64) -> Self {
        assert!(n >= 1);
        let bits = if n <= 1 {
            0
        } else {
            64 - (n - 1).leading_zeros()
        };
        let mask = if bits == 64 {
            u64::MAX
        } else {
            (1u64 << bits) - 1
        };
        Self {
            n,
            bits,
            mask,
            seed: seed & mask,
        }
    }

    /// One round of the mix: xor, odd multiply, xor-shift: each step is a bijection of
    /// `bits`-bit integers, so the composition is too.
    #[inline]
    fn mix(&self, mut x: u64) -> u64 {
        let shift = self.bits.div_ceil(2).max(1);
        x ^= self.seed;
        x = x.wrapping_mul(0x9e37_79b9_7f4a_7c15) & self.mask;
        x ^= x >> shift;
        x = x.wrapping_mul(0xbf58_476d_1ce4_e5b9) & self.mask;
        x ^= x >> shift;
        x
    }

    /// The image of `i` (`i < n`).
    #[inline]
    pub fn apply(&self, i: u64) -> u64 {
        debug_assert!(i < self.n);
        if self.bits == 0 {
            return 0;
        }
        // Cycle walking: the mix permutes 0..2^bits; following the cycle from `i` until it
        // re-enters 0..n yields a permutation of 0..n. 2^bits < 2n, so this ends quickly.
        let mut x = self.mix(i);
        while x >= self.n {
            x = self.mix(x);
        }
        x
    }
}

/// How keys are drawn.
#[derive(Debug, Clone)]
pub enum KeyChooser {
    /// Every key equally likely.
    Uniform {
        /// Key count.
        n: u64,
    },
    /// Zipfian by index: key 0 is the hottest, hot keys are neighbours.
    Zipfian(Zipfian),
    /// Zipfian with ranks scattered over the key space.
    Scrambled(Zipfian, Scatter),
}

impl KeyChooser {
    /// Draws a key index in `0..n`.
    #[inline]
    pub fn next<R: Rng + ?Sized>(&self, rng: &mut R) -> u64 {
        match self {
            KeyChooser::Uniform { n } => rng.random_range(0..*n),
            KeyChooser::Zipfian(z) => z.sample(rng),
            KeyChooser::Scrambled(z, s) => s.apply(z.sample(rng)),
        }
    }
}
