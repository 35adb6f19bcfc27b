//! The client history of a run and its check: acknowledged writes are never lost and every
//! read is linearizable with respect to the order in which writes were committed.
//!
//! This is a self-contained register checker, isolated here so it can be swapped for the
//! `shoal-checker` crate (Wing–Gong/Lowe search) once that lands. It exploits what a Raft
//! history offers: the committed log gives the total order of writes (every write carries a
//! unique value or token, so it is found in the log), which turns the search into direct
//! checks:
//! - an acknowledged write appears in the committed log, at the index it was acknowledged
//!   with; a write that definitely failed does not appear;
//! - real-time order: a write that completed before another was invoked is committed
//!   before it;
//! - a read observes the key's value at some log position `p` with
//!   `lower <= p < upper`, where `lower` is the position of every write (on the key) that
//!   completed before the read was invoked, and of the write seen by every read that
//!   completed before it was invoked; `upper` is the position of the first write invoked
//!   after the read completed.

use std::collections::BTreeMap;

use bytes::Bytes;

use crate::command::Command;

/// What a client asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OpKind {
    /// A put or a delete (the command, with its unique value or token).
    Write(Command),
    /// A linearizable read of a key.
    Read(Bytes),
}

/// How an operation ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Acknowledged: a write at this log index, or a read that returned this value.
    Ok(OkValue),
    /// Definitely not performed.
    Fail,
    /// Maybe performed (timeout, leader change, node crash).
    Unknown,
}

/// The value of an acknowledged operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OkValue {
    /// A write committed at this index.
    Written(u64),
    /// A read that returned this value.
    Read(Option<Bytes>),
}

/// One operation of the history (times in virtual nanoseconds).
#[derive(Debug, Clone)]
pub struct Op {
    /// The client.
    pub client: u64,
    /// What was asked.
    pub kind: OpKind,
    /// Invocation time.
    pub invoke: u64,
    /// Completion time (`u64::MAX` if never completed).
    pub complete: u64,
    /// How it ended.
    pub outcome: Outcome,
}

fn key_of(c: &Command) -> &Bytes {
    match c {
        Command::Put { key, .. } | Command::Delete { key, .. } => key,
    }
}

/// Check `ops` against the committed sequence of writes `log` (index → command, every
/// committed normal entry). Returns the violations found.
pub fn check(ops: &[Op], log: &BTreeMap<u64, Command>) -> Vec<String> {
    let mut out = Vec::new();
    // Where every committed command sits (commands are unique by construction).
    let mut position: BTreeMap<&Command, u64> = BTreeMap::new();
    for (i, c) in log {
        if let Some(prev) = position.insert(c, *i) {
            out.push(format!("write {c:?} committed twice, at {prev} and {i}"));
        }
    }
    // 1. Acknowledged writes present at their index; failed writes absent.
    let mut writes: Vec<(&Op, u64)> = Vec::new();
    for op in ops {
        let OpKind::Write(c) = &op.kind else { continue };
        let pos = position.get(c).copied();
        match (&op.outcome, pos) {
            (Outcome::Ok(OkValue::Written(i)), Some(p)) if *i == p => {}
            (Outcome::Ok(OkValue::Written(i)), Some(p)) => out.push(format!(
                "write {c:?} acknowledged at index {i} but committed at {p}"
            )),
            (Outcome::Ok(_), None) => out.push(format!(
                "acknowledged write lost: {c:?} (client {}, completed at {} ns) is not in the committed log",
                op.client, op.complete
            )),
            (Outcome::Fail, Some(p)) => out.push(format!(
                "write {c:?} reported failed but committed at index {p}"
            )),
            _ => {}
        }
        if let Some(p) = pos {
            writes.push((op, p));
        }
    }
    // A write that was not acknowledged may have taken effect at any time after its
    // invocation, even after its client gave up: it completed "never".
    let done = |op: &Op| match op.outcome {
        Outcome::Ok(_) => op.complete,
        Outcome::Fail | Outcome::Unknown => u64::MAX,
    };
    // 2. Real-time order of writes.
    for (a, pa) in &writes {
        for (b, pb) in &writes {
            if done(a) < b.invoke && pa > pb {
                out.push(format!(
                    "real-time order: {:?} completed before {:?} was invoked but is committed after it ({pa} > {pb})",
                    a.kind, b.kind
                ));
            }
        }
    }
    // 3. Reads, per key.
    let mut per_key: BTreeMap<&Bytes, Vec<(u64, Option<Bytes>)>> = BTreeMap::new();
    for (i, c) in log {
        let v = match c {
            Command::Put { value, .. } => Some(value.clone()),
            Command::Delete { .. } => None,
        };
        per_key.entry(key_of(c)).or_default().push((*i, v));
    }
    let reads: Vec<&Op> = ops
        .iter()
        .filter(|o| matches!(o.kind, OpKind::Read(_)))
        .filter(|o| matches!(o.outcome, Outcome::Ok(OkValue::Read(_))))
        .collect();
    // Position of the write each read observed (the earliest position it is consistent
    // with), for the read-after-read bound.
    let mut observed: Vec<u64> = Vec::with_capacity(reads.len());
    for r in &reads {
        let (OpKind::Read(key), Outcome::Ok(OkValue::Read(value))) = (&r.kind, &r.outcome) else {
            continue;
        };
        let seq = per_key.get(key).map(Vec::as_slice).unwrap_or(&[]);
        let mut lower = 0u64;
        for (w, p) in &writes {
            if done(w) < r.invoke && key_of_write(w) == Some(key) {
                lower = lower.max(*p);
            }
        }
        for (r2, p) in reads.iter().zip(observed.iter()) {
            if r2.complete < r.invoke && matches!(&r2.kind, OpKind::Read(k) if k == key) {
                lower = lower.max(*p);
            }
        }
        let mut upper = u64::MAX;
        for (w, p) in &writes {
            if w.invoke > r.complete && key_of_write(w) == Some(key) {
                upper = upper.min(*p);
            }
        }
        // Segments [start, end) of positions where the key holds each value.
        let mut segments: Vec<(u64, u64, Option<Bytes>)> = Vec::new();
        let mut start = 0u64;
        let mut current: Option<Bytes> = None;
        for (i, v) in seq {
            segments.push((start, *i, current.clone()));
            start = *i;
            current = v.clone();
        }
        segments.push((start, u64::MAX, current));
        let fit = segments
            .iter()
            .filter(|(s, e, v)| v == value && s.max(&lower) < e.min(&upper))
            .map(|(s, _, _)| *s.max(&lower))
            .next();
        match fit {
            Some(p) => observed.push(p),
            None => {
                observed.push(lower);
                out.push(format!(
                    "non-linearizable read: client {} read {key:?} = {value:?} in [{}, {}] ns, \
                     but the key's committed value in log positions [{lower}, {upper}) never was that",
                    r.client, r.invoke, r.complete
                ));
            }
        }
    }
    out
}

fn key_of_write(op: &Op) -> Option<&Bytes> {
    match &op.kind {
        OpKind::Write(c) => Some(key_of(c)),
        OpKind::Read(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(k: &str, v: &str) -> Command {
        Command::Put {
            key: Bytes::from(k.to_string()),
            value: Bytes::from(v.to_string()),
        }
    }

    fn w(c: Command, invoke: u64, complete: u64, outcome: Outcome) -> Op {
        Op {
            client: 0,
            kind: OpKind::Write(c),
            invoke,
            complete,
            outcome,
        }
    }

    fn r(k: &str, v: Option<&str>, invoke: u64, complete: u64) -> Op {
        Op {
            client: 1,
            kind: OpKind::Read(Bytes::from(k.to_string())),
            invoke,
            complete,
            outcome: Outcome::Ok(OkValue::Read(v.map(|v| Bytes::from(v.to_string())))),
        }
    }

    fn ok(i: u64) -> Outcome {
        Outcome::Ok(OkValue::Written(i))
    }

    fn log(entries: &[(u64, Command)]) -> BTreeMap<u64, Command> {
        entries.iter().cloned().collect()
    }

    #[test]
    fn a_linearizable_history_passes() {
        let l = log(&[(1, put("a", "1")), (2, put("a", "2"))]);
        let ops = vec![
            r("a", None, 0, 5),
            w(put("a", "1"), 1, 10, ok(1)),
            r("a", Some("1"), 11, 12),
            // Concurrent with the second write: old or new value.
            r("a", Some("1"), 13, 30),
            w(put("a", "2"), 14, 20, ok(2)),
            r("a", Some("2"), 21, 22),
        ];
        assert_eq!(check(&ops, &l), Vec::<String>::new());
    }

    #[test]
    fn a_stale_read_is_reported() {
        let l = log(&[(1, put("a", "1")), (2, put("a", "2"))]);
        let ops = vec![
            w(put("a", "1"), 1, 10, ok(1)),
            w(put("a", "2"), 11, 20, ok(2)),
            r("a", Some("1"), 21, 22),
        ];
        let v = check(&ops, &l);
        assert!(
            v.iter().any(|e| e.contains("non-linearizable read")),
            "{v:?}"
        );
    }

    #[test]
    fn a_read_going_back_after_another_read_is_reported() {
        let l = log(&[(1, put("a", "1")), (2, put("a", "2"))]);
        let ops = vec![
            w(put("a", "1"), 1, 10, ok(1)),
            w(put("a", "2"), 11, 50, Outcome::Unknown),
            r("a", Some("2"), 12, 13),
            r("a", Some("1"), 14, 15),
        ];
        let v = check(&ops, &l);
        assert!(
            v.iter().any(|e| e.contains("non-linearizable read")),
            "{v:?}"
        );
    }

    #[test]
    fn a_lost_acknowledged_write_is_reported() {
        let l = log(&[(1, put("a", "1"))]);
        let ops = vec![
            w(put("a", "1"), 1, 10, ok(1)),
            w(put("a", "2"), 11, 20, ok(2)),
        ];
        let v = check(&ops, &l);
        assert!(
            v.iter().any(|e| e.contains("acknowledged write lost")),
            "{v:?}"
        );
    }

    #[test]
    fn an_unknown_write_may_take_effect_after_its_client_gave_up() {
        // The first write timed out at 10 but committed after the second one.
        let l = log(&[(1, put("a", "2")), (2, put("a", "1"))]);
        let ops = vec![
            w(put("a", "1"), 1, 10, Outcome::Unknown),
            w(put("a", "2"), 11, 20, ok(1)),
            r("a", Some("1"), 30, 31),
        ];
        assert_eq!(check(&ops, &l), Vec::<String>::new());
    }

    #[test]
    fn a_failed_write_that_committed_is_reported() {
        let l = log(&[(1, put("a", "1"))]);
        let ops = vec![w(put("a", "1"), 1, 10, Outcome::Fail)];
        let v = check(&ops, &l);
        assert!(v.iter().any(|e| e.contains("reported failed")), "{v:?}");
    }
}
