//! Argument checks shared by every `KvClient` implementation, so the remote and the
//! local client refuse exactly the same inputs with exactly the same errors, before any
//! work is done.
//!
//! Invariants: the limits come only from `shoal_proto::limits`; a key or value at its
//! limit passes and one byte more fails with `TooLarge` naming the limit; a TTL passes
//! iff it is in `1..=MAX_TTL_SECS` and converts to milliseconds without overflow.

use shoal_proto::LimitKind;
use shoal_proto::limits::{MAX_KEY_LEN, MAX_TTL_SECS, MAX_VALUE_LEN};

use crate::error::KvClientError;

/// `Ok` when `key` is at most `MAX_KEY_LEN` bytes (empty is fine).
pub fn check_key(key: &[u8]) -> Result<(), KvClientError> {
    if key.len() > MAX_KEY_LEN {
        return Err(KvClientError::too_large(
            LimitKind::Key,
            MAX_KEY_LEN,
            key.len(),
        ));
    }
    Ok(())
}

/// `Ok` when `value` is at most `MAX_VALUE_LEN` bytes (empty is fine).
pub fn check_value(value: &[u8]) -> Result<(), KvClientError> {
    if value.len() > MAX_VALUE_LEN {
        return Err(KvClientError::too_large(
            LimitKind::Value,
            MAX_VALUE_LEN,
            value.len(),
        ));
    }
    Ok(())
}

/// The contract's `ttl_secs`, checked (`1..=MAX_TTL_SECS`, else `InvalidArgument`) and
/// converted to the milliseconds the protocol and the state machine use.
pub fn ttl_ms(ttl_secs: u64) -> Result<u64, KvClientError> {
    if ttl_secs == 0 || ttl_secs > MAX_TTL_SECS {
        return Err(KvClientError::InvalidArgument {
            reason: format!("ttl_secs must be in 1..={MAX_TTL_SECS}, got {ttl_secs}"),
        });
    }
    // MAX_TTL_SECS * 1000 is MAX_TTL_MS, which fits in u64.
    Ok(ttl_secs * 1000)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_are_inclusive() {
        assert!(check_key(&[]).is_ok());
        assert!(check_key(&vec![0; MAX_KEY_LEN]).is_ok());
        assert!(check_key(&vec![0; MAX_KEY_LEN + 1]).is_err());
        assert!(check_value(&vec![0; MAX_VALUE_LEN]).is_ok());
        assert_eq!(
            check_value(&vec![0; MAX_VALUE_LEN + 1]),
            Err(KvClientError::TooLarge {
                limit: LimitKind::Value,
                max: MAX_VALUE_LEN as u64,
                actual: MAX_VALUE_LEN as u64 + 1
            })
        );
        assert_eq!(ttl_ms(1), Ok(1000));
        assert_eq!(ttl_ms(MAX_TTL_SECS), Ok(shoal_proto::limits::MAX_TTL_MS));
        assert!(matches!(
            ttl_ms(0),
            Err(KvClientError::InvalidArgument { .. })
        ));
        assert!(matches!(
            ttl_ms(MAX_TTL_SECS + 1),
            Err(KvClientError::InvalidArgument { .. })
        ));
    }
}
