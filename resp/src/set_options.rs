//! Options of `SET` (and `SETEX`/`PSETEX`) and of `EXPIRE`/`PEXPIRE`, with Redis 7's
//! combination rules and error texts.
//!
//! Invariants of a parsed value: a `SetExpiry::Relative`/`Absolute` holds a strictly
//! positive millisecond count that did not overflow when converted from seconds, and
//! relative ones are within Shoal's `MAX_TTL_SECS`; `ExpireCondition` never holds NX
//! together with XX, GT or LT, nor GT together with LT. Nothing here reads a clock:
//! turning relative times into absolute ones happens in `action::plan` with `now_ms`.

use bytes::Bytes;
use shoal_proto::limits::MAX_TTL_SECS;

use crate::errors::ErrorReply;
use crate::num::parse_i64;

/// Longest relative TTL, in milliseconds (Shoal's `MAX_TTL_SECS`).
pub const MAX_TTL_MS: i64 = (MAX_TTL_SECS as i64) * 1000;

/// When a `SET` writes only if the key is absent or present.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SetCondition {
    /// Write in any case.
    Always,
    /// NX: write only if the key does not exist.
    IfAbsent,
    /// XX: write only if the key exists.
    IfPresent,
}

/// What a `SET` does to the key's time to live.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SetExpiry {
    /// No expiry option: the key ends up without a TTL (any old TTL is discarded).
    None,
    /// KEEPTTL: keep the key's current TTL (none if the key is new).
    Keep,
    /// EX/PX (and SETEX/PSETEX): expire this many milliseconds after the proposal time.
    Relative(i64),
    /// EXAT/PXAT: expire at this Unix time in milliseconds.
    Absolute(i64),
}

/// Which command spelled the SET, for the `invalid expire time in '<name>'` message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SetName {
    /// `SET`
    Set,
    /// `SETEX`
    SetEx,
    /// `PSETEX`
    PSetEx,
}

impl SetName {
    /// Lowercase command name as Redis reports it.
    pub fn as_str(self) -> &'static str {
        match self {
            SetName::Set => "set",
            SetName::SetEx => "setex",
            SetName::PSetEx => "psetex",
        }
    }
}

/// Options of one SET, validated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SetOptions {
    /// NX / XX.
    pub condition: SetCondition,
    /// GET: reply with the old value.
    pub get: bool,
    /// EX / PX / EXAT / PXAT / KEEPTTL.
    pub expiry: SetExpiry,
    /// The command that asked.
    pub name: SetName,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Unit {
    Seconds,
    Millis,
}

/// Redis's `getExpireMillisecondsOrReply` without the clock: integer, positive, no
/// overflow when scaled to milliseconds; plus Shoal's TTL ceiling for relative times.
fn expire_millis(raw: &[u8], unit: Unit, relative: bool, name: SetName) -> Result<i64, ErrorReply> {
    let value = parse_i64(raw).ok_or_else(ErrorReply::not_integer)?;
    let invalid = || ErrorReply::invalid_expire_time(name.as_str());
    if value <= 0 || (unit == Unit::Seconds && value > i64::MAX / 1000) {
        return Err(invalid());
    }
    let ms = if unit == Unit::Seconds {
        value * 1000
    } else {
        value
    };
    if relative && ms > MAX_TTL_MS {
        return Err(invalid());
    }
    Ok(ms)
}

/// Parses SET's options (`args` are the arguments after `SET key value`), following
/// Redis 7's `parseExtendedStringArgumentsOrReply`: NX with XX, KEEPTTL with any expiry,
/// two different expiry kinds, or an expiry without its value are `ERR syntax error`;
/// repeating the same option is allowed (the last value wins).
pub fn parse_set_options(args: &[Bytes]) -> Result<SetOptions, ErrorReply> {
    #[derive(Clone, Copy, PartialEq, Eq)]
    enum Kind {
        Ex,
        Px,
        ExAt,
        PxAt,
    }
    let mut condition = SetCondition::Always;
    let mut get = false;
    let mut keep_ttl = false;
    let mut expiry: Option<(Kind, &Bytes)> = None;
    let mut j = 0;
    while j < args.len() {
        let opt = &args[j][..];
        let next = args.get(j + 1);
        let is = |name: &str| opt.eq_ignore_ascii_case(name.as_bytes());
        let other_expiry = |kind: Kind| matches!(expiry, Some((k, _)) if k != kind);
        if is("nx") && condition != SetCondition::IfPresent {
            condition = SetCondition::IfAbsent;
        } else if is("xx") && condition != SetCondition::IfAbsent {
            condition = SetCondition::IfPresent;
        } else if is("get") {
            get = true;
        } else if is("keepttl") && expiry.is_none() {
            keep_ttl = true;
        } else if let (Some(kind), Some(value)) = (
            [
                ("ex", Kind::Ex),
                ("px", Kind::Px),
                ("exat", Kind::ExAt),
                ("pxat", Kind::PxAt),
            ]
            .into_iter()
            .find(|(name, _)| is(name))
            .map(|(_, kind)| kind),
            next,
        ) {
            if keep_ttl || other_expiry(kind) {
                return Err(ErrorReply::syntax());
            }
            expiry = Some((kind, value));
            j += 1;
        } else {
            return Err(ErrorReply::syntax());
        }
        j += 1;
    }
    let expiry = match expiry {
        None if keep_ttl => SetExpiry::Keep,
        None => SetExpiry::None,
        Some((kind, raw)) => {
            let (unit, relative) = match kind {
                Kind::Ex => (Unit::Seconds, true),
                Kind::Px => (Unit::Millis, true),
                Kind::ExAt => (Unit::Seconds, false),
                Kind::PxAt => (Unit::Millis, false),
            };
            let ms = expire_millis(raw, unit, relative, SetName::Set)?;
            if relative {
                SetExpiry::Relative(ms)
            } else {
                SetExpiry::Absolute(ms)
            }
        }
    };
    Ok(SetOptions {
        condition,
        get,
        expiry,
        name: SetName::Set,
    })
}

/// Options of `SETEX key seconds value` / `PSETEX key ms value`.
pub fn parse_setex(raw_ttl: &[u8], name: SetName) -> Result<SetOptions, ErrorReply> {
    let unit = if name == SetName::PSetEx {
        Unit::Millis
    } else {
        Unit::Seconds
    };
    let ms = expire_millis(raw_ttl, unit, true, name)?;
    Ok(SetOptions {
        condition: SetCondition::Always,
        get: false,
        expiry: SetExpiry::Relative(ms),
        name,
    })
}

/// Conditions of `EXPIRE`/`PEXPIRE` (Redis 7). XX may combine with GT or LT.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ExpireCondition {
    /// NX: only if the key has no TTL.
    pub nx: bool,
    /// XX: only if the key has a TTL.
    pub xx: bool,
    /// GT: only if the new expiry is later than the current one (a key without TTL
    /// counts as never expiring, so GT never applies to it).
    pub gt: bool,
    /// LT: only if the new expiry is earlier than the current one (a key without TTL
    /// counts as never expiring, so LT always applies to it).
    pub lt: bool,
}

/// Parses the options after `EXPIRE key seconds` (Redis's
/// `parseExtendedExpireArgumentsOrReply`).
pub fn parse_expire_options(args: &[Bytes]) -> Result<ExpireCondition, ErrorReply> {
    let mut c = ExpireCondition::default();
    for opt in args {
        if opt.eq_ignore_ascii_case(b"nx") {
            c.nx = true;
        } else if opt.eq_ignore_ascii_case(b"xx") {
            c.xx = true;
        } else if opt.eq_ignore_ascii_case(b"gt") {
            c.gt = true;
        } else if opt.eq_ignore_ascii_case(b"lt") {
            c.lt = true;
        } else {
            return Err(ErrorReply::with_arg("Unsupported option ", opt, ""));
        }
    }
    if c.nx && (c.xx || c.gt || c.lt) {
        return Err(ErrorReply::new(
            "NX and XX, GT or LT options at the same time are not compatible",
        ));
    }
    if c.gt && c.lt {
        return Err(ErrorReply::new(
            "GT and LT options at the same time are not compatible",
        ));
    }
    Ok(c)
}

/// `EXPIRE`'s amount as milliseconds: any integer (negative means "in the past"), with
/// Redis's overflow check on the seconds-to-milliseconds scaling and Shoal's TTL ceiling.
pub fn parse_expire_amount(raw: &[u8], millis: bool) -> Result<i64, ErrorReply> {
    let name = if millis { "pexpire" } else { "expire" };
    let value = parse_i64(raw).ok_or_else(ErrorReply::not_integer)?;
    let ms = if millis {
        value
    } else {
        value
            .checked_mul(1000)
            .ok_or_else(|| ErrorReply::invalid_expire_time(name))?
    };
    if ms > MAX_TTL_MS {
        return Err(ErrorReply::invalid_expire_time(name));
    }
    Ok(ms)
}
