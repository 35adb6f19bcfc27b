//! The openraft type configuration of a simulated group: Shoal's `Request`, `Response`,
//! `NodeId` and `ShoalNode` (so the code under test sees the same entries as a real
//! shard), with [`SimRuntime`] as the runtime.
//!
//! Invariant: only the runtime differs from `shoal::raft::TypeConfig`.

use crate::runtime::SimRuntime;

shoal::declare_shoal_raft_types!(
    /// A Shoal group's type configuration on the simulated runtime.
    pub SimConfig, SimRuntime
);

/// Log id of a simulated group.
pub type LogId = openraft::type_config::alias::LogIdOf<SimConfig>;
/// Vote of a simulated group.
pub type Vote = openraft::type_config::alias::VoteOf<SimConfig>;
/// Log entry of a simulated group.
pub type Entry = openraft::type_config::alias::EntryOf<SimConfig>;
/// Payload of an [`Entry`].
pub type EntryPayload = openraft::type_config::alias::EntryPayloadOf<SimConfig>;
/// Membership with the log id that introduced it.
pub type StoredMembership = openraft::type_config::alias::StoredMembershipOf<SimConfig>;
/// Snapshot metadata.
pub type SnapshotMeta = openraft::type_config::alias::SnapshotMetaOf<SimConfig>;
/// A snapshot whose data is `SD`.
pub type Snapshot<SD> = openraft::type_config::alias::SnapshotOf<SimConfig, SD>;
/// A simulated node's Raft handle, with state machine `SM`.
pub type SimRaft<SM> = openraft::Raft<SimConfig, SM>;

/// A stable digest of an entry's payload (FNV-1a over its bytes / debug form), used by the
/// invariants to compare entries across nodes without keeping copies.
pub fn payload_digest(payload: &EntryPayload) -> u64 {
    fn fnv(seed: u64, bytes: &[u8]) -> u64 {
        let mut h = seed;
        for b in bytes {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        h
    }
    const BASIS: u64 = 0xcbf2_9ce4_8422_2325;
    match payload {
        EntryPayload::Blank => fnv(BASIS, b"blank"),
        EntryPayload::Normal(req) => fnv(fnv(BASIS, b"normal"), &req.command),
        // Membership's Debug form is built from ordered maps and sets: stable.
        EntryPayload::Membership(m) => fnv(fnv(BASIS, b"membership"), format!("{m:?}").as_bytes()),
    }
}
