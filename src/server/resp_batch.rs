//! How a pipelined batch of planned RESP commands is executed: which commands run
//! together (waves), and which blind writes are absorbed by a later write of the same key.
//!
//! Invariants:
//! - Waves run one after the other; the commands of a wave run concurrently. A command
//!   joins the current wave only if it touches no key that an earlier command of the wave
//!   touches, unless both only read it; commands without keys that read the store
//!   (DBSIZE, INFO) form a wave of their own. So every command sees the effects of the
//!   commands sent before it on its connection, as with Redis, while independent commands
//!   share Raft rounds.
//! - Absorption: a blind write (plain SET, or SET with an expiry, SETEX, PSETEX: it
//!   replaces the whole key) whose next access to that key in the batch is another blind
//!   write is not executed; it is answered with the reply of the last write of that run.
//!   This is linearizable: the commands of a pipeline are concurrent (none was answered
//!   before the next was sent), so the absorbed write may take effect immediately before
//!   the one that overwrites it, where nothing can observe it. Only writes within the
//!   node's size limits absorb others, so a write that is refused for its size never
//!   takes an acceptable write down with it; any other failure (timeout, no leader,
//!   busy) means neither was applied, or the outcome of both is unknown, which the shared
//!   reply says. DBSIZE and INFO end a run (they observe which keys exist).
//! - Every command appears exactly once: in a wave, or in `absorbed_by` pointing at a
//!   command in a wave.

use std::collections::HashMap;

use bytes::Bytes;
use shoal_resp::{Action, Protocol, Step, WriteOp};

/// A planned batch.
#[derive(Debug)]
pub(crate) struct Batch {
    /// The commands to execute, with their index in the batch, in waves.
    pub(crate) waves: Vec<Vec<(usize, Step)>>,
    /// Per command: the index of the command whose reply it takes (absorbed), or `None`.
    pub(crate) absorbed_by: Vec<Option<usize>>,
    /// Per command: the protocol its reply is encoded with.
    pub(crate) protocols: Vec<Protocol>,
}

impl Batch {
    /// Plans `steps` under the node's key and value limits.
    pub(crate) fn plan(steps: Vec<Step>, max_key_len: usize, max_value_len: usize) -> Batch {
        let absorbed_by = absorption(&steps, max_key_len, max_value_len);
        let protocols = steps.iter().map(|s| s.protocol).collect();
        let executed = steps
            .into_iter()
            .enumerate()
            .filter(|(i, _)| absorbed_by[*i].is_none());
        Batch {
            waves: waves(executed),
            absorbed_by,
            protocols,
        }
    }

    /// Commands in the batch.
    pub(crate) fn len(&self) -> usize {
        self.protocols.len()
    }
}

/// The key of a blind write that may absorb or be absorbed, if `op` is one.
fn blind_write(op: &WriteOp, max_key_len: usize, max_value_len: usize) -> Option<&Bytes> {
    match op {
        WriteOp::Put { key, value } | WriteOp::PutWithExpiry { key, value, .. }
            if key.len() <= max_key_len && value.len() <= max_value_len =>
        {
            Some(key)
        }
        _ => None,
    }
}

fn absorption(steps: &[Step], max_key_len: usize, max_value_len: usize) -> Vec<Option<usize>> {
    let mut absorbed_by: Vec<Option<usize>> = vec![None; steps.len()];
    // Scanning backwards: key -> (the next command touching it, whether a blind write).
    let mut next: HashMap<&Bytes, (usize, bool)> = HashMap::new();
    for (i, step) in steps.iter().enumerate().rev() {
        match &step.action {
            Action::DbSize | Action::Info(_) => next.clear(),
            Action::Read(r) => {
                for k in r.op.keys() {
                    next.insert(k, (i, false));
                }
            }
            Action::Write(w) => {
                let blind = blind_write(&w.op, max_key_len, max_value_len);
                if let Some(k) = blind {
                    if let Some(&(j, true)) = next.get(k) {
                        absorbed_by[i] = Some(absorbed_by[j].unwrap_or(j));
                    }
                }
                for k in w.op.keys() {
                    next.insert(k, (i, blind.is_some()));
                }
            }
            Action::Reply(_) | Action::Close(_) => {}
        }
    }
    absorbed_by
}

fn waves(steps: impl Iterator<Item = (usize, Step)>) -> Vec<Vec<(usize, Step)>> {
    let mut waves: Vec<Vec<(usize, Step)>> = Vec::new();
    let mut touched: HashMap<Bytes, bool> = HashMap::new(); // key -> written
    let mut sealed = false; // the current wave is a DBSIZE/INFO: nothing joins it
    for (i, step) in steps {
        let (keys, writes, barrier): (&[Bytes], bool, bool) = match &step.action {
            Action::Read(r) => (r.op.keys(), false, false),
            Action::Write(w) => (w.op.keys(), true, false),
            Action::DbSize | Action::Info(_) => (&[], false, true),
            Action::Reply(_) | Action::Close(_) => (&[], false, false),
        };
        let conflict = barrier
            || sealed
            || keys
                .iter()
                .any(|k| touched.get(k).is_some_and(|&written| written || writes));
        if conflict || waves.is_empty() {
            waves.push(Vec::new());
            touched.clear();
        }
        for k in keys {
            let written = touched.entry(k.clone()).or_insert(false);
            *written |= writes;
        }
        sealed = barrier;
        if let Some(wave) = waves.last_mut() {
            wave.push((i, step));
        }
    }
    waves
}

#[cfg(test)]
mod tests {
    use shoal_resp::Session;

    use super::*;

    fn plan(args: &[&[&str]]) -> Vec<Step> {
        let mut session = Session::new(1);
        args.iter()
            .map(|a| {
                let a = a
                    .iter()
                    .map(|x| Bytes::copy_from_slice(x.as_bytes()))
                    .collect();
                session.plan_args(a, 1_000)
            })
            .collect()
    }

    fn shape(waves: &[Vec<(usize, Step)>]) -> Vec<Vec<usize>> {
        waves
            .iter()
            .map(|w| w.iter().map(|(i, _)| *i).collect())
            .collect()
    }

    #[test]
    fn waves_keep_each_key_in_order_and_run_independent_commands_together() {
        let batch = plan(&[
            &["SET", "a", "1"],
            &["SET", "b", "1"],
            &["GET", "c"],
            &["GET", "a"], // reads a written above: next wave
            &["GET", "a"], // read after read: same wave
            &["GET", "b"],
            &["PING"],
            &["DEL", "x", "a"], // writes a, read in this wave: next wave
            &["DBSIZE"],        // a wave of its own
            &["GET", "z"],      // nothing joins the DBSIZE wave
        ]);
        let b = Batch::plan(batch, 100, 100);
        assert!(b.absorbed_by.iter().all(Option::is_none));
        assert_eq!(
            shape(&b.waves),
            vec![vec![0, 1, 2], vec![3, 4, 5, 6], vec![7], vec![8], vec![9]]
        );
        assert!(waves(std::iter::empty()).is_empty());
    }

    #[test]
    fn blind_writes_of_a_key_are_absorbed_by_the_last_of_their_run() {
        let batch = plan(&[
            &["SET", "k", "1"],            // 0: absorbed by 2
            &["SET", "k", "2", "EX", "9"], // 1: absorbed by 2
            &["SET", "k", "3"],            // 2: executed
            &["GET", "k"],                 // 3: reads 3, so 2 is not absorbed
            &["SET", "k", "4"],            // 4: absorbed by 5
            &["SETEX", "k", "9", "5"],     // 5: executed (DBSIZE follows)
            &["DBSIZE"],                   // 6
            &["SET", "k", "6"],            // 7: not absorbed: a conditional write follows
            &["SET", "k", "7", "NX"],      // 8
            &["SET", "j", "1"],            // 9: not absorbed: j is too large next
            &["SET", "j", "0123456789"],   // 10: over the value limit of 8
            &["SET", "i", "1"],            // 11: absorbed by 12
            &["SET", "i", "2"],            // 12: executed
        ]);
        let b = Batch::plan(batch, 100, 8);
        let absorbed: Vec<(usize, usize)> = b
            .absorbed_by
            .iter()
            .enumerate()
            .filter_map(|(i, by)| by.map(|j| (i, j)))
            .collect();
        assert_eq!(absorbed, vec![(0, 2), (1, 2), (4, 5), (11, 12)]);
        assert_eq!(
            shape(&b.waves),
            vec![
                vec![2],
                vec![3],
                vec![5],
                vec![6],
                vec![7],
                vec![8, 9],
                vec![10, 12]
            ]
        );
        assert_eq!(b.len(), 13);
    }
}
