//! The simulation's key-value state machine and its command codec: the stand-in for
//! Shoal's real state machine until its openraft adapter lands.
//!
//! Invariants:
//! - Applying is deterministic: the same entries in the same order give the same map.
//! - Every applied entry is reported to the invariant [`Checker`] (state machine safety,
//!   monotonic apply); every entry with a responder is answered.
//! - The state is in memory and lost at a crash; the current snapshot is durable (stored on
//!   the node's [`NodeDisk`] when built or installed), so a restart restores it and
//!   openraft re-applies the log from there up to the saved committed id.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::io;
use std::rc::Rc;

use bytes::Bytes;
use futures::Stream;
use futures::StreamExt;
use openraft::OptionalSend;
use openraft::RaftSnapshotBuilder;
use openraft::storage::EntryResponder;
use openraft::storage::RaftStateMachine;
use shoal::raft::types::Request;
use shoal::raft::types::Response;

use super::disk::NodeDisk;
use crate::invariants::Checker;
use crate::types::EntryPayload;
use crate::types::LogId;
use crate::types::SimConfig;
use crate::types::Snapshot;
use crate::types::SnapshotMeta;
use crate::types::StoredMembership;
use crate::types::payload_digest;

/// A client command carried by a log entry.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Command {
    /// Set `key` to `value`.
    Put {
        /// The key.
        key: Bytes,
        /// The value (unique per write in the workload).
        value: Bytes,
    },
    /// Remove `key`.
    Delete {
        /// The key.
        key: Bytes,
        /// Unique per delete in the workload (ignored by the state machine), so the history
        /// checker can find each delete in the log.
        token: Bytes,
    },
}

impl Command {
    /// Encode as a `Request`: tag byte, key length (u16 LE), key, value (or token).
    pub fn encode(&self) -> Request {
        let (tag, key, value): (u8, &Bytes, &[u8]) = match self {
            Command::Put { key, value } => (1, key, value),
            Command::Delete { key, token } => (2, key, token),
        };
        let klen = u16::try_from(key.len()).unwrap_or(u16::MAX);
        let mut out = Vec::with_capacity(3 + key.len() + value.len());
        out.push(tag);
        out.extend_from_slice(&klen.to_le_bytes());
        out.extend_from_slice(&key[..usize::from(klen)]);
        out.extend_from_slice(value);
        Request {
            command: Bytes::from(out),
        }
    }

    /// Decode a `Request`; `None` if malformed.
    pub fn decode(req: &Request) -> Option<Command> {
        let b = &req.command;
        let tag = *b.first()?;
        let klen = usize::from(u16::from_le_bytes([*b.get(1)?, *b.get(2)?]));
        let key = b.get(3..3 + klen)?;
        let rest = b.get(3 + klen..)?;
        match tag {
            1 => Some(Command::Put {
                key: Bytes::copy_from_slice(key),
                value: Bytes::copy_from_slice(rest),
            }),
            2 => Some(Command::Delete {
                key: Bytes::copy_from_slice(key),
                token: Bytes::copy_from_slice(rest),
            }),
            _ => None,
        }
    }
}

/// The applied state (also the snapshot data).
#[derive(Debug, Clone, Default)]
pub struct KvState {
    /// Last applied log id.
    pub last_applied: Option<LogId>,
    /// Last applied membership.
    pub membership: StoredMembership,
    /// The map.
    pub kv: BTreeMap<Bytes, Bytes>,
}

/// The state machine of one node incarnation.
#[derive(Debug, Clone)]
pub struct SimStateMachine {
    node: u64,
    state: Rc<RefCell<KvState>>,
    disk: Rc<RefCell<NodeDisk<KvState>>>,
    checker: Checker,
}

impl SimStateMachine {
    /// A fresh (empty) state machine; openraft restores the durable snapshot at startup.
    pub fn open(node: u64, disk: Rc<RefCell<NodeDisk<KvState>>>, checker: Checker) -> Self {
        checker.on_sm_restart(node);
        SimStateMachine {
            node,
            state: Rc::new(RefCell::new(KvState::default())),
            disk,
            checker,
        }
    }

    /// Read handle on the applied state (same thread).
    pub fn state(&self) -> Rc<RefCell<KvState>> {
        self.state.clone()
    }
}

impl RaftSnapshotBuilder<SimConfig> for SimStateMachine {
    type SnapshotData = KvState;

    async fn build_snapshot(&mut self) -> Result<Snapshot<KvState>, io::Error> {
        let data = self.state.borrow().clone();
        let snapshot = Snapshot {
            meta: SnapshotMeta {
                last_log_id: data.last_applied,
                last_membership: data.membership.clone(),
            },
            snapshot: data,
        };
        self.disk.borrow_mut().snapshot = Some(snapshot.clone());
        Ok(snapshot)
    }
}

impl RaftStateMachine<SimConfig> for SimStateMachine {
    type SnapshotData = KvState;
    type SnapshotBuilder = SimStateMachine;

    async fn applied_state(&mut self) -> Result<(Option<LogId>, StoredMembership), io::Error> {
        let state = self.state.borrow();
        Ok((state.last_applied, state.membership.clone()))
    }

    async fn apply<Strm>(&mut self, mut entries: Strm) -> Result<(), io::Error>
    where
        Strm: Stream<Item = Result<EntryResponder<SimConfig>, io::Error>> + Unpin + OptionalSend,
    {
        while let Some(item) = entries.next().await {
            let (entry, responder) = item?;
            let command = match &entry.payload {
                EntryPayload::Normal(req) => Some(req.command.clone()),
                _ => None,
            };
            self.checker.on_apply(
                self.node,
                entry.log_id,
                payload_digest(&entry.payload),
                command,
            );
            let reply = {
                let mut state = self.state.borrow_mut();
                state.last_applied = Some(entry.log_id);
                match &entry.payload {
                    EntryPayload::Blank => Response::default(),
                    EntryPayload::Normal(req) => {
                        match Command::decode(req) {
                            Some(Command::Put { key, value }) => {
                                state.kv.insert(key, value);
                            }
                            Some(Command::Delete { key, .. }) => {
                                state.kv.remove(&key);
                            }
                            None => return Err(io::Error::other("undecodable command")),
                        }
                        Response::default()
                    }
                    EntryPayload::Membership(m) => {
                        state.membership = StoredMembership::new(Some(entry.log_id), m.clone());
                        Response::default()
                    }
                }
            };
            if let Some(r) = responder {
                r.send(reply);
            }
        }
        Ok(())
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta,
        snapshot: KvState,
    ) -> Result<(), io::Error> {
        assert_eq!(
            meta.last_log_id, snapshot.last_applied,
            "snapshot meta and data disagree"
        );
        self.checker
            .on_snapshot_installed(self.node, meta.last_log_id);
        *self.state.borrow_mut() = snapshot.clone();
        self.disk.borrow_mut().snapshot = Some(Snapshot {
            meta: meta.clone(),
            snapshot,
        });
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot<KvState>>, io::Error> {
        Ok(self.disk.borrow().snapshot.clone())
    }
}
