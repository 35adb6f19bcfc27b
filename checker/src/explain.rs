//! Readable explanations of a non-linearizable key.
//!
//! Owns `Explanation` and `ExplainedOp`: plain strings and indices, detached from the
//! search's internals so a verdict can be printed, stored or compared after the search is
//! gone. Built from the deepest point of a failed search: the longest linearizable prefix,
//! the state after it, the pending op whose completion could not be passed, and why each
//! op that could have come next was refused.
//!
//! Invariant: `prefix` is a valid linearization of those ops (in that order); every op
//! named refers to its index in the full history (`#index`), the line number minus one of
//! a saved JSON-lines history.

use std::collections::HashSet;
use std::fmt;

use crate::history::{Blob, Time, fmt_ns};
use crate::limits::EXPLAIN_PREFIX_TAIL;
use crate::model::{KeyHistory, KeyOpKind, RegisterModel, RegisterState, Reject, ValueId};
use crate::search::{Failure, Model};

/// One operation, as shown in an explanation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExplainedOp {
    /// Index of the operation in the history (0-based line of the JSON-lines file).
    pub index: usize,
    /// e.g. `#17 client 3 [1.000ms, 2.000ms] get -> "v"`.
    pub text: String,
}

/// Why one key's operations have no linearization.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Explanation {
    pub key: Blob,
    /// One line: the heart of the problem.
    pub summary: String,
    /// The longest linearizable prefix found, in linearization order.
    pub prefix: Vec<ExplainedOp>,
    /// The register after `prefix`, in words.
    pub state_after_prefix: String,
    /// The op whose completion was reached before it could be placed.
    pub blocked: ExplainedOp,
    /// Each op that could have come next after `prefix`, with why it did not work.
    pub candidates: Vec<(ExplainedOp, String)>,
}

/// Words for ops, states and refusals of one key.
impl KeyHistory {
    fn show(&self, v: Option<ValueId>) -> String {
        match v {
            Some(id) => self.values[id as usize].to_string(),
            None => "nothing".to_owned(),
        }
    }

    /// A one-line description of op `i`, e.g. `#17 client 3 [1.000ms, 2.000ms] get -> "v"`.
    pub fn describe_op(&self, i: usize) -> String {
        let op = &self.ops[i];
        let what = match op.kind {
            KeyOpKind::Put {
                value,
                ttl_ns: None,
            } => format!("put {}", self.show(Some(value))),
            KeyOpKind::Put {
                value,
                ttl_ns: Some(ttl),
            } => format!(
                "put_with_ttl {} ttl {}",
                self.show(Some(value)),
                fmt_ns(ttl)
            ),
            KeyOpKind::Delete => "delete".to_owned(),
            KeyOpKind::Read { value } => format!("get -> {}", self.show(value)),
        };
        let complete = if op.unknown && op.complete == Time::MAX {
            "unknown outcome".to_owned()
        } else if op.unknown {
            // Bounded by `reduce.rs`: the reads of its value completed by then.
            format!("unknown outcome, read by {}", fmt_ns(op.complete))
        } else {
            fmt_ns(op.complete)
        };
        format!(
            "#{} client {} [{}, {}] {}",
            op.source,
            op.client,
            fmt_ns(op.invoke),
            complete,
            what
        )
    }

    /// Describes a model state in words.
    pub fn describe_state(&self, s: &RegisterState) -> String {
        match s.ttl {
            None => format!("holds {}", self.show(s.value)),
            Some(w) => format!(
                "holds {} written with ttl {} at an instant in [{}, {}]",
                self.show(s.value),
                fmt_ns(w.ttl_ns),
                fmt_ns(w.put_lo),
                fmt_ns(w.put_hi)
            ),
        }
    }

    /// Explains a refusal in words.
    pub fn describe_reject(&self, r: &Reject) -> String {
        match *r {
            Reject::TooLate { earliest } => format!(
                "it completed before {}, the earliest instant it could take effect here",
                fmt_ns(earliest)
            ),
            Reject::WrongValue { current, read } => format!(
                "it read {} but the key holds {}",
                self.show(read),
                self.show(current)
            ),
            Reject::NotYetExpired { value, ttl_ns } => format!(
                "it read nothing but {} (ttl {}) cannot have expired by its completion",
                self.show(Some(value)),
                fmt_ns(ttl_ns)
            ),
            Reject::AlreadyExpired { value, ttl_ns } => format!(
                "it read {} (ttl {}) but that value had expired by then",
                self.show(Some(value)),
                fmt_ns(ttl_ns)
            ),
            Reject::Owed { value, reads } => format!(
                "it would overwrite {} while {reads} read(s) of it have yet to happen",
                self.show(Some(value))
            ),
        }
    }
}

fn explained(key: &KeyHistory, i: usize) -> ExplainedOp {
    ExplainedOp {
        index: key.ops[i].source,
        text: key.describe_op(i),
    }
}

impl Explanation {
    /// A read returned a value that no operation on the key ever wrote.
    pub(crate) fn never_written(key: &KeyHistory, read: usize) -> Explanation {
        let op = explained(key, read);
        Explanation {
            key: key.key.clone(),
            summary: format!("{} read a value never written to this key", op.text),
            prefix: Vec::new(),
            state_after_prefix: "(no search needed)".to_owned(),
            blocked: op.clone(),
            candidates: vec![(op, "no put of this key wrote that value".to_owned())],
        }
    }

    /// Explains the deepest point of a failed search.
    pub(crate) fn from_failure(
        model: &RegisterModel<'_>,
        f: &Failure<RegisterState>,
    ) -> Explanation {
        let key = model.key;
        let placed: HashSet<usize> = f.prefix.iter().copied().collect();
        let candidates: Vec<(ExplainedOp, String)> = f
            .candidates
            .iter()
            .map(|&c| (explained(key, c), why_not(model, f, &placed, c)))
            .collect();
        let blocked = explained(key, f.blocked);
        let summary = match candidates.iter().find(|(op, _)| op.index == blocked.index) {
            Some((_, why)) if f.candidates.len() == 1 => format!("{}: {why}", blocked.text),
            _ => format!(
                "after {} linearized ops, none of the {} operations that could come next \
                 leads to a linearization in which {} takes effect in time",
                f.prefix.len(),
                f.candidates.len(),
                blocked.text
            ),
        };
        Explanation {
            key: key.key.clone(),
            summary,
            prefix: f.prefix.iter().map(|&i| explained(key, i)).collect(),
            state_after_prefix: key.describe_state(&f.state),
            blocked,
            candidates,
        }
    }
}

/// Why candidate `c` could not come next after the failure's prefix.
fn why_not(
    model: &RegisterModel<'_>,
    f: &Failure<RegisterState>,
    placed: &HashSet<usize>,
    c: usize,
) -> String {
    let key = model.key;
    match model.step(&f.state, c) {
        Err(Reject::Owed { value, .. }) => {
            // Name the reads that still had to see the value.
            let pending: Vec<String> = (0..key.ops.len())
                .filter(|i| !placed.contains(i))
                .filter(|&i| key.ops[i].kind == KeyOpKind::Read { value: Some(value) })
                .map(|i| key.describe_op(i))
                .collect();
            format!(
                "it would overwrite {} before it was read by {}",
                key.values[value as usize],
                pending.join(" and by ")
            )
        }
        Err(reject) => key.describe_reject(&reject),
        Ok(next) => {
            let earliest = model.earliest(&next);
            let first_pending = (0..key.ops.len())
                .filter(|&i| i != c && !placed.contains(&i))
                .min_by_key(|&i| key.ops[i].complete);
            match first_pending {
                Some(p) if key.ops[p].complete < earliest && key.ops[p].complete != Time::MAX => {
                    format!(
                        "it could only take effect after {} completed",
                        explained(key, p).text
                    )
                }
                _ => "allowed here, but no order of the remaining operations works after it"
                    .to_owned(),
            }
        }
    }
}

impl fmt::Display for Explanation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "key {} is not linearizable: {}", self.key, self.summary)?;
        let n = self.prefix.len();
        if n == 0 {
            writeln!(f, "  longest linearizable prefix: (none)")?;
        } else {
            let shown = n.min(EXPLAIN_PREFIX_TAIL);
            writeln!(
                f,
                "  longest linearizable prefix: {n} ops{}",
                if shown < n {
                    format!(", the last {shown} shown")
                } else {
                    String::new()
                }
            )?;
            for op in &self.prefix[n - shown..] {
                writeln!(f, "    {}", op.text)?;
            }
        }
        writeln!(f, "  after it the key {}", self.state_after_prefix)?;
        writeln!(f, "  could not place: {}", self.blocked.text)?;
        writeln!(
            f,
            "  operations that could have come next, and why each fails:"
        )?;
        for (op, why) in &self.candidates {
            writeln!(f, "    {}: {why}", op.text)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::KeyOp;

    #[test]
    fn ops_and_refusals_read_well() {
        let mut k = KeyHistory::new(Blob::from("k"));
        let v1 = k.intern(&Blob::from("v1"));
        k.ops.push(KeyOp {
            source: 17,
            client: 3,
            invoke: 1_000_000,
            complete: Time::MAX,
            unknown: true,
            kind: KeyOpKind::Put {
                value: v1,
                ttl_ns: Some(2_000_000_000),
            },
        });
        assert_eq!(
            k.describe_op(0),
            "#17 client 3 [1.000ms, unknown outcome] put_with_ttl \"v1\" ttl 2.000s"
        );
        let why = k.describe_reject(&Reject::WrongValue {
            current: Some(v1),
            read: None,
        });
        assert_eq!(why, "it read nothing but the key holds \"v1\"");
    }
}
