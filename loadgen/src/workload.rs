//! The operation mix: which kind of operation comes next.
//!
//! Owns [`OpKind`] and [`OpMix`]. Invariants: the mix's weights are finite, non-negative
//! and sum to a positive value; a kind of weight 0 is never drawn; over many draws each
//! kind's frequency converges to its weight's share (one `u64` draw per operation, compared
//! against precomputed cumulative thresholds).

use rand::Rng;
use serde::Serialize;

/// Number of operation kinds.
pub const KINDS: usize = 5;

/// One kind of operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OpKind {
    /// Single-key read.
    Get,
    /// Single-key write (YCSB "update" when the key exists).
    Put,
    /// Write with a time-to-live.
    PutTtl,
    /// Single-key delete.
    Delete,
    /// Multi-key read of `multi_get_keys` keys.
    GetMulti,
}

impl OpKind {
    /// Every kind, in report order.
    pub const ALL: [OpKind; KINDS] = [
        OpKind::Get,
        OpKind::Put,
        OpKind::PutTtl,
        OpKind::Delete,
        OpKind::GetMulti,
    ];

    /// Dense index for per-kind arrays.
    #[inline]
    pub fn index(self) -> usize {
        self as usize
    }

    /// Stable name (report, JSON, HDR log tags).
    pub fn name(self) -> &'static str {
        match self {
            OpKind::Get => "get",
            OpKind::Put => "put",
            OpKind::PutTtl => "put_ttl",
            OpKind::Delete => "delete",
            OpKind::GetMulti => "get_multi",
        }
    }
}

/// Relative weights of each kind (any positive scale).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Mix {
    /// Weight of gets.
    pub read: f64,
    /// Weight of puts.
    pub write: f64,
    /// Weight of deletes.
    pub delete: f64,
    /// Weight of puts with TTL.
    pub ttl_write: f64,
    /// Weight of multi-key gets.
    pub multi_get: f64,
}

impl Mix {
    /// The weights in [`OpKind::ALL`] order.
    pub fn weights(&self) -> [f64; KINDS] {
        [
            self.read,
            self.write,
            self.ttl_write,
            self.delete,
            self.multi_get,
        ]
    }

    /// Checks every weight is finite and non-negative and at least one is positive.
    pub fn validate(&self) -> Result<(), String> {
        let w = self.weights();
        for (kind, v) in OpKind::ALL.iter().zip(w) {
            if !v.is_finite() || v < 0.0 {
                return Err(format!(
                    "the {} ratio must be a finite number >= 0, got {v}",
                    kind.name()
                ));
            }
        }
        if w.iter().sum::<f64>() <= 0.0 {
            return Err("the operation ratios sum to 0: nothing to do".to_string());
        }
        Ok(())
    }

    /// The share (0..=1) of `kind`.
    pub fn share(&self, kind: OpKind) -> f64 {
        let w = self.weights();
        w[kind.index()] / w.iter().sum::<f64>()
    }
}

/// Draws operation kinds with the mix's frequencies.
#[derive(Debug, Clone)]
pub struct OpMix {
    /// Cumulative upper bounds in units of 2^-64; the last non-zero kind's bound is 2^64.
    thresholds: [u128; KINDS],
}

impl OpMix {
    /// Precomputes the thresholds. The mix must have passed [`Mix::validate`].
    pub fn new(mix: &Mix) -> Self {
        assert!(mix.validate().is_ok(), "mix validated by the caller");
        let w = mix.weights();
        let total: f64 = w.iter().sum();
        let scale = 2f64.powi(64);
        let mut thresholds = [0u128; KINDS];
        let mut cum = 0.0;
        let last_nonzero = w.iter().rposition(|&v| v > 0.0).expect("one weight > 0");
        for i in 0..KINDS {
            cum += w[i];
            thresholds[i] = if i >= last_nonzero {
                1u128 << 64
            } else {
                (cum / total * scale) as u128
            };
        }
        Self { thresholds }
    }

    /// The next operation kind.
    #[inline]
    pub fn pick<R: Rng + ?Sized>(&self, rng: &mut R) -> OpKind {
        let r = u128::from(rng.next_u64());
        for (i, &t) in self.thresholds.iter().enumerate() {
            if r < t {
                return OpKind::ALL[i];
            }
        }
        unreachable!("the last threshold is 2^64, above every u64 draw")
    }
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;
    use rand::rngs::SmallRng;

    use super::*;
    use crate::config::Preset;

    fn shares(mix: &Mix, draws: usize) -> [f64; KINDS] {
        let m = OpMix::new(mix);
        let mut rng = SmallRng::seed_from_u64(11);
        let mut c = [0usize; KINDS];
        for _ in 0..draws {
            c[m.pick(&mut rng).index()] += 1;
        }
        c.map(|x| x as f64 / draws as f64)
    }

    #[test]
    fn presets_hold_their_ratios() {
        let draws = 1_000_000;
        for (preset, read) in [
            (Preset::A, 0.5),
            (Preset::B, 0.95),
            (Preset::C, 1.0),
            (Preset::Write, 0.0),
        ] {
            let s = shares(&preset.mix(), draws);
            // sd of a share over 1e6 draws is at most 0.0005: 0.003 is 6 sd.
            assert!(
                (s[OpKind::Get.index()] - read).abs() < 0.003,
                "{preset:?}: {s:?}"
            );
            assert!(
                (s[OpKind::Put.index()] - (1.0 - read)).abs() < 0.003,
                "{preset:?}"
            );
            for k in [OpKind::PutTtl, OpKind::Delete, OpKind::GetMulti] {
                assert_eq!(s[k.index()], 0.0, "{preset:?} drew {k:?}");
            }
        }
    }

    #[test]
    fn custom_ratios_hold_for_every_kind() {
        let mix = Mix {
            read: 4.0,
            write: 3.0,
            delete: 1.0,
            ttl_write: 1.0,
            multi_get: 1.0,
        };
        let s = shares(&mix, 1_000_000);
        for k in OpKind::ALL {
            assert!((s[k.index()] - mix.share(k)).abs() < 0.003, "{k:?}: {s:?}");
        }
    }

    #[test]
    fn a_zero_weight_between_others_is_never_drawn() {
        let mix = Mix {
            read: 1.0,
            write: 0.0,
            delete: 0.0,
            ttl_write: 1.0,
            multi_get: 0.0,
        };
        let s = shares(&mix, 200_000);
        assert_eq!(s[OpKind::Put.index()], 0.0);
        assert_eq!(s[OpKind::Delete.index()], 0.0);
        assert_eq!(s[OpKind::GetMulti.index()], 0.0);
        assert!((s[OpKind::Get.index()] - 0.5).abs() < 0.01);
    }

    #[test]
    fn invalid_mixes_are_rejected_with_the_kind_named() {
        let mut mix = Preset::A.mix();
        mix.delete = -1.0;
        assert!(mix.validate().unwrap_err().contains("delete"));
        mix.delete = f64::NAN;
        assert!(mix.validate().is_err());
        let zero = Mix {
            read: 0.0,
            write: 0.0,
            delete: 0.0,
            ttl_write: 0.0,
            multi_get: 0.0,
        };
        assert!(zero.validate().unwrap_err().contains("sum to 0"));
    }
}
