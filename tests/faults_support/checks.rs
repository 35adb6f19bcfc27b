//! The end-of-run checks on a recorded history besides linearizability (which is
//! `shoal_checker::check`): no acknowledged write missing from the final reads, and no
//! TTL'd value read after its expiry.
//!
//! Both are deliberately simple, conservative rules that cannot flag a correct store:
//! a write counts as lost only if the final value comes from no write that may take
//! effect after it; a read counts as "after expiry" only if it was invoked more than
//! `ttl + slack` after the TTL put *completed* (the latest instant the store may have
//! fixed the expiry, plus clock skew and rounding).

use std::collections::BTreeMap;

use shoal_checker::{Blob, History, Op, Outcome};

/// The key, the value (`None` for a delete) and whether it has a TTL, of a write op.
fn write_of(op: &Op) -> Option<(&Blob, Option<&Blob>, bool)> {
    match op {
        Op::Put { key, value } => Some((key, Some(value), false)),
        Op::PutWithTtl { key, value, .. } => Some((key, Some(value), true)),
        Op::Delete { key } => Some((key, None, false)),
        _ => None,
    }
}

/// Acknowledged writes the final reads (by `final_client`) lost: for an acknowledged
/// write `w` of a key (invoked before the first final read), the final value must be `w`'s
/// or that of a write that may take effect after `w` (any write not definitely failed and
/// not acknowledged before `w` began: unknown outcomes included, since an unknown write
/// may still land), or absent if one of those is a delete or has a TTL. Anything else (an
/// older value) means `w` was lost. Also returns how many acknowledged writes were checked.
pub fn lost_writes(h: &History, final_client: u64) -> (Vec<String>, usize) {
    let mut finals: BTreeMap<&Blob, Option<&Blob>> = BTreeMap::new();
    let mut first_final = u64::MAX;
    for op in h.ops.iter().filter(|o| o.client == final_client) {
        first_final = first_final.min(op.invoke_ns);
        if let (Op::Get { key }, Outcome::Read(v)) = (&op.op, &op.outcome) {
            finals.insert(key, v.as_ref());
        }
    }
    let mut lost = Vec::new();
    let mut checked = 0;
    for w in &h.ops {
        let Some((key, value, ttl)) = write_of(&w.op) else {
            continue;
        };
        if w.outcome != Outcome::Ok || w.invoke_ns >= first_final {
            continue;
        }
        let Some(got) = finals.get(key) else {
            continue;
        };
        let may_follow = |o: &shoal_checker::Operation| {
            o.invoke_ns < first_final
                && o.outcome != Outcome::Failed
                && !(o.outcome == Outcome::Ok && o.complete_ns < w.invoke_ns)
        };
        let explained = h.ops.iter().any(|o| {
            if !may_follow(o) {
                return false;
            }
            match write_of(&o.op) {
                Some((k, v, t)) if k == key => v == *got || (t && got.is_none()),
                _ => false,
            }
        });
        checked += 1;
        if !explained {
            lost.push(format!(
                "{} {key}={value:?}{} acknowledged, final read {got:?}",
                w.op.name(),
                if ttl { " (ttl)" } else { "" }
            ));
        }
    }
    (lost, checked)
}

/// Reads that returned a TTL'd value and were invoked more than `slack_ns` after its
/// expiry (counted from the put's completion), and the number of (read, acknowledged TTL
/// put of the same key) pairs with the read after that point: how much the check covered.
pub fn reads_after_expiry(h: &History, slack_ns: u64) -> (Vec<String>, usize) {
    let mut expiry: BTreeMap<(&Blob, &Blob), u64> = BTreeMap::new();
    let mut by_key: BTreeMap<&Blob, Vec<u64>> = BTreeMap::new();
    for o in &h.ops {
        if let (Op::PutWithTtl { key, value, ttl_ns }, Outcome::Ok) = (&o.op, &o.outcome) {
            let e = o.complete_ns + ttl_ns + slack_ns;
            expiry.insert((key, value), e);
            by_key.entry(key).or_default().push(e);
        }
    }
    let mut bad = Vec::new();
    let mut covered = 0;
    let mut check = |key: &Blob, v: &Option<Blob>, at: u64| {
        covered += by_key
            .get(key)
            .map_or(0, |es| es.iter().filter(|e| **e < at).count());
        if let Some(v) = v {
            if let Some(e) = expiry.get(&(key, v)) {
                if at > *e {
                    bad.push(format!(
                        "{key}={v} read {} ms after expiry",
                        (at - e) / 1_000_000
                    ));
                }
            }
        }
    };
    for o in &h.ops {
        match (&o.op, &o.outcome) {
            (Op::Get { key }, Outcome::Read(v)) => check(key, v, o.invoke_ns),
            (Op::GetMulti { keys }, Outcome::ReadMulti(vs)) => {
                for (k, v) in keys.iter().zip(vs) {
                    check(k, v, o.invoke_ns);
                }
            }
            _ => {}
        }
    }
    (bad, covered)
}
