//! Shoal's client library: the [`KvClient`] trait, its error type [`KvClientError`], and
//! [`RemoteKvClient`], a pipelined TCP client that routes every request straight to the
//! leader of its key's Raft group, on the owning shard's port.
//!
//! This crate owns the application-facing API. It depends only on the protocol codec
//! (`shoal-proto`) and tokio, never on the node crate, so applications that only talk
//! over TCP do not build glommio or openraft. The node implements `LocalKvClient` for an
//! embedded node with this same trait and error type.
//!
//! Module map: [`kv_client`] (the trait), [`error`] (the error and its retry semantics),
//! [`args`] (the argument checks every implementation applies before doing anything),
//! [`remote`] (the TCP client: options, pipelined connections, topology, retry policy),
//! `conformance` (feature `testing`: a reusable test suite for any `KvClient`).

pub mod args;
pub mod error;
pub mod kv_client;
pub mod remote;

#[cfg(feature = "testing")]
pub mod conformance;

pub use error::{KvClientError, LeaderHint};
pub use kv_client::KvClient;
pub use remote::{AddressRewrite, RemoteKvClient, RemoteOptions, RetryPolicy};
/// Which limit a [`KvClientError::TooLarge`] names.
pub use shoal_proto::LimitKind;
/// How fresh a read must be (`get_with` / `get_multi_with`); the default is linearizable.
pub use shoal_proto::ReadConsistency;
/// The protocol's limits (key, value, batch, TTL...), re-exported for callers.
pub use shoal_proto::limits;

/// Compiles the README's examples as doctests, so they cannot drift from the API.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
