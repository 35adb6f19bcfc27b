//! The end-of-run checks on a recorded history: linearizability per key
//! (`shoal_checker::check`, driven by [`check_history`] with the clock uncertainty of the
//! run), no acknowledged write missing from the final reads, and no TTL'd value read
//! after its expiry. One place for both suites (`faults_cluster`, `faults_history`).
//!
//! Clock uncertainty (`eps`, checker README): the leader fixes a TTL'd key's expiry when it
//! proposes the entry; the checker places it at the put's linearization instant. The two
//! differ by at most the time from proposal to apply, which for an entry caught by a fault
//! is the fault itself (a node frozen, or down until its restart re-applies the log), plus
//! the clock-offset difference between nodes. So `eps` = longest fault window + longest
//! acknowledged write + largest offset difference + 10 ms. Violations farther than that
//! from an expiry are always caught (a TTL reset by a restart or a failover shows as a
//! value read seconds after expiry).
//!
//! Both are deliberately simple, conservative rules that cannot flag a correct store:
//! a write counts as lost only if the final value comes from no write that may take
//! effect after it; a read counts as "after expiry" only if it was invoked more than
//! `ttl + slack` after the TTL put *completed* (the latest instant the store may have
//! fixed the expiry, plus clock skew and rounding).

use std::collections::BTreeMap;
use std::time::Duration;

use shoal_checker::{Blob, CheckOptions, History, Op, Outcome, Verdict, check};

/// Wall clock vs harness clock and the millisecond rounding of expiries.
pub const TTL_SLACK_NS: u64 = 5_000_000;

/// What the end-of-run checks found, and how much they covered.
#[derive(Debug, Default)]
pub struct Checked {
    pub ops: usize,
    pub ok: usize,
    pub failed: usize,
    pub unknown: usize,
    pub eps_ms: u64,
    pub verdict: Option<Verdict>,
    pub lost: Vec<String>,
    /// Acknowledged writes the lost-write check compared with a final read.
    pub lost_checked: usize,
    pub ttl_violations: Vec<String>,
    /// (read, acknowledged TTL put of the same key) pairs where the read began after the
    /// put's latest possible expiry: how much the explicit TTL check covered.
    pub ttl_reads_checked: usize,
}

impl Checked {
    /// Whether a safety check failed (not linearizable, a lost write, a read after expiry).
    pub fn violated(&self) -> bool {
        matches!(self.verdict, Some(Verdict::NotLinearizable { .. }))
            || !self.lost.is_empty()
            || !self.ttl_violations.is_empty()
    }

    /// Panics with the first failed safety check (an undecided verdict fails too).
    pub fn assert_clean(&self) {
        assert_eq!(
            self.verdict,
            Some(Verdict::Linearizable),
            "{}",
            self.verdict
                .as_ref()
                .map_or("-".into(), ToString::to_string)
        );
        assert!(
            self.lost.is_empty(),
            "lost acknowledged writes: {:?}",
            self.lost
        );
        assert!(
            self.ttl_violations.is_empty(),
            "TTL'd values read after expiry: {:?}",
            self.ttl_violations
        );
    }

    /// One line of figures.
    pub fn summary(&self) -> String {
        format!(
            "{} ops ({} ok, {} failed, {} unknown); eps {} ms; verdict: {}; lost acknowledged \
             writes: {} of {} checked; reads after expiry: {} ({} read/expired-TTL pairs \
             checked)",
            self.ops,
            self.ok,
            self.failed,
            self.unknown,
            self.eps_ms,
            self.verdict
                .as_ref()
                .map_or("-".to_string(), |v| v.to_string().replace('\n', " ")),
            self.lost.len(),
            self.lost_checked,
            self.ttl_violations.len(),
            self.ttl_reads_checked
        )
    }
}

/// Runs every check on `history` (written to `$SHOAL_HISTORY_OUT` first, if set):
/// `longest_fault` and `skew_ns` (largest clock-offset difference between nodes) enter
/// `eps` as the module documentation says; `final_client` made the final reads.
pub fn check_history(
    history: &History,
    longest_fault: Duration,
    skew_ns: u64,
    final_client: u64,
) -> Checked {
    if let Ok(path) = std::env::var("SHOAL_HISTORY_OUT") {
        let written = std::fs::File::create(&path)
            .map_err(|e| e.to_string())
            .and_then(|f| history.write_jsonl(f).map_err(|e| e.to_string()));
        match written {
            Ok(()) => eprintln!("history written to {path}"),
            Err(e) => eprintln!("history not written to {path}: {e}"),
        }
    }
    let mut c = Checked {
        ops: history.ops.len(),
        ..Checked::default()
    };
    for op in &history.ops {
        match op.outcome {
            Outcome::Failed => c.failed += 1,
            Outcome::Unknown => c.unknown += 1,
            _ => c.ok += 1,
        }
    }
    let longest_write = history
        .ops
        .iter()
        .filter(|o| o.outcome == Outcome::Ok)
        .map(|o| o.complete_ns - o.invoke_ns)
        .max()
        .unwrap_or(0);
    let eps = longest_fault.as_nanos() as u64 + longest_write + skew_ns + 10_000_000;
    c.eps_ms = eps / 1_000_000;
    let report = check(
        history,
        &CheckOptions {
            clock_uncertainty_ns: eps,
            time_budget: Some(Duration::from_secs(60)),
            ..CheckOptions::default()
        },
    )
    .expect("the recorded history is well formed");
    c.verdict = Some(report.verdict);
    (c.lost, c.lost_checked) = lost_writes(history, final_client);
    (c.ttl_violations, c.ttl_reads_checked) = reads_after_expiry(history, TTL_SLACK_NS + skew_ns);
    c
}

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

#[cfg(test)]
mod tests {
    //! The rules on hand-made histories: each must flag what it exists for (a check that
    //! cannot fail proves nothing) and accept what a correct store may do.
    use shoal_checker::Operation;

    use super::*;

    const FINAL: u64 = 99;
    const S: u64 = 1_000_000_000;

    fn op(client: u64, at: (u64, u64), op: Op, outcome: Outcome) -> Operation {
        Operation::new(client, at.0, at.1, op, outcome)
    }

    fn read(v: Option<&str>) -> Outcome {
        Outcome::Read(v.map(Blob::from))
    }

    /// Puts `a` then `b` (both acknowledged, b invoked after a completed), then the final
    /// read of the key returns `last`.
    fn two_puts(last: Option<&str>, extra: Vec<Operation>) -> History {
        let mut h = History::new();
        h.push(op(1, (0, 10), Op::put("k", "a"), Outcome::Ok));
        h.push(op(2, (20, 30), Op::put("k", "b"), Outcome::Ok));
        for o in extra {
            h.push(o);
        }
        h.push(op(FINAL, (100, 110), Op::get("k"), read(last)));
        h
    }

    #[test]
    fn a_dropped_acknowledged_write_is_reported() {
        // The store went back to `a`: `b` was acknowledged and lost.
        let (lost, checked) = lost_writes(&two_puts(Some("a"), vec![]), FINAL);
        assert_eq!(checked, 2);
        assert_eq!(lost.len(), 1, "{lost:?}");
        assert!(lost[0].contains("=Some(\"b\") acknowledged"), "{lost:?}");
        // The key vanished without a delete or a TTL: both are lost.
        let (lost, _) = lost_writes(&two_puts(None, vec![]), FINAL);
        assert_eq!(lost.len(), 2, "{lost:?}");
    }

    #[test]
    fn what_may_follow_explains_the_final_value() {
        assert!(
            lost_writes(&two_puts(Some("b"), vec![]), FINAL)
                .0
                .is_empty()
        );
        // An unknown write may land at any time after its invocation.
        let late = op(3, (25, 60), Op::put("k", "c"), Outcome::Unknown);
        assert!(
            lost_writes(&two_puts(Some("c"), vec![late]), FINAL)
                .0
                .is_empty()
        );
        // A failed one never lands.
        let failed = op(3, (25, 60), Op::put("k", "c"), Outcome::Failed);
        assert_eq!(
            lost_writes(&two_puts(Some("c"), vec![failed]), FINAL)
                .0
                .len(),
            2
        );
        // A concurrent delete or TTL put explains an absent key.
        let del = op(3, (25, 60), Op::delete("k"), Outcome::Ok);
        assert!(lost_writes(&two_puts(None, vec![del]), FINAL).0.is_empty());
        let ttl = op(3, (25, 60), Op::put_with_ttl("k", "t", S), Outcome::Ok);
        assert!(lost_writes(&two_puts(None, vec![ttl]), FINAL).0.is_empty());
    }

    #[test]
    fn a_ttl_value_read_after_its_expiry_is_reported() {
        let mut h = History::new();
        h.push(op(1, (0, 10), Op::put_with_ttl("k", "t", S), Outcome::Ok));
        h.push(op(2, (S / 2, S / 2 + 1), Op::get("k"), read(Some("t"))));
        let (bad, covered) = reads_after_expiry(&h, TTL_SLACK_NS);
        assert!(bad.is_empty(), "{bad:?}");
        assert_eq!(covered, 0);
        h.push(op(2, (2 * S, 2 * S + 1), Op::get("k"), read(Some("t"))));
        h.push(op(3, (2 * S, 2 * S + 1), Op::get("k"), read(None)));
        let (bad, covered) = reads_after_expiry(&h, TTL_SLACK_NS);
        assert_eq!(bad.len(), 1, "{bad:?}");
        assert_eq!(covered, 2);
    }

    #[test]
    fn check_history_reports_a_lost_write_as_a_violation() {
        let h = two_puts(Some("a"), vec![]);
        let c = check_history(&h, Duration::ZERO, 0, FINAL);
        assert!(c.violated(), "{}", c.summary());
        let c = check_history(&two_puts(Some("b"), vec![]), Duration::ZERO, 0, FINAL);
        assert!(!c.violated(), "{}", c.summary());
        c.assert_clean();
    }
}
