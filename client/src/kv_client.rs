//! The `KvClient` trait: the one interface applications use, whatever the transport.
//!
//! Invariants: the method set and signatures are exactly those of the team contract
//! (`kvclient-contract.txt`): `#[async_trait]`, `impl AsRef<[u8]> + Send` arguments,
//! `Bytes` results, `Send + Sync` implementors and `Send` futures. Anything beyond the
//! contract (explicit read consistency, ping, topology) lives on the concrete clients,
//! never here, so every implementation stays interchangeable.

use async_trait::async_trait;
use bytes::Bytes;

use crate::error::KvClientError;

/// Unified key-value store interface.
///
/// This trait abstracts over the client implementations, so applications write generic
/// code that works both with [`RemoteKvClient`](crate::RemoteKvClient) (TCP, binary
/// protocol) and with the embedded node's `LocalKvClient` (a cross-thread channel to the
/// owning shard, no serialization).
///
/// # Consistency guarantees
/// - [`put`](Self::put), [`put_with_ttl`](Self::put_with_ttl): linearizable writes,
///   acknowledged only once durable (fdatasync) on a quorum of the key's Raft group and
///   applied.
/// - [`get`](Self::get), [`get_multi`](Self::get_multi): linearizable reads (the group
///   leader confirms its leadership with a quorum before reading).
/// - [`delete`](Self::delete): linearizable, durable, idempotent.
///
/// # Thread safety
/// Implementations are `Send + Sync` and safe for concurrent use; every returned future
/// is `Send`, so calls run on any tokio runtime (multi-thread or current-thread) and
/// inside `tokio::spawn`.
///
/// # Limits
/// Keys are at most [`MAX_KEY_LEN`](shoal_proto::limits::MAX_KEY_LEN) bytes, values at
/// most [`MAX_VALUE_LEN`](shoal_proto::limits::MAX_VALUE_LEN); both may be empty. Larger
/// ones fail with [`KvClientError::TooLarge`] naming the limit, before anything is sent.
///
/// # Example
/// ```no_run
/// use bytes::Bytes;
/// use shoal_client::{KvClient, KvClientError, RemoteKvClient, RemoteOptions};
///
/// // Generic over the transport: works with RemoteKvClient and LocalKvClient alike.
/// async fn remember_user(client: &impl KvClient) -> Result<Option<Bytes>, KvClientError> {
///     client.put(b"user:1001", b"Alice").await?;
///     client.get(b"user:1001").await
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), KvClientError> {
/// let client = RemoteKvClient::connect(["127.0.0.1:7400"], RemoteOptions::default()).await?;
/// assert_eq!(remember_user(&client).await?, Some(Bytes::from_static(b"Alice")));
/// # Ok(())
/// # }
/// ```
#[async_trait]
pub trait KvClient: Send + Sync {
    /// Stores a key-value pair with strong consistency.
    ///
    /// The write is replicated to a quorum of nodes (and fdatasync'd there) before
    /// returning, ensuring durability and linearizability. Overwrites any previous value
    /// and clears any previous TTL of the key.
    ///
    /// # Arguments
    /// - `key`: the key to store (arbitrary bytes, possibly empty).
    /// - `value`: the value to store (arbitrary bytes, possibly empty).
    ///
    /// # Errors
    /// - [`KvClientError::ChannelClosed`] if the node is shutting down.
    /// - [`KvClientError::Timeout`] if the operation exceeds the timeout.
    /// - [`KvClientError::ServerError`] for server-side errors.
    /// - [`KvClientError::TooLarge`] if the key or value exceeds its limit (nothing sent).
    /// - other variants of [`KvClientError`] as documented there.
    ///
    /// # Example
    /// ```no_run
    /// # use shoal_client::{KvClient, KvClientError};
    /// # async fn demo(client: &impl KvClient) -> Result<(), KvClientError> {
    /// client.put(b"user:1001", b"Alice").await?;
    /// # Ok(())
    /// # }
    /// ```
    async fn put(
        &self,
        key: impl AsRef<[u8]> + Send,
        value: impl AsRef<[u8]> + Send,
    ) -> Result<(), KvClientError>;

    /// Stores a key-value pair with a time-to-live.
    ///
    /// The key expires `ttl_secs` seconds after the group leader proposes the write
    /// (the leader turns the TTL into an absolute expiry time that every replica
    /// applies; it survives restarts and leader changes). From its expiry on, the key
    /// is invisible to reads. `ttl_secs` must be in `1..=MAX_TTL_SECS`
    /// ([`shoal_proto::limits::MAX_TTL_SECS`], 100 years); 0 or larger values fail with
    /// [`KvClientError::InvalidArgument`] before anything is sent.
    ///
    /// # Errors
    /// Same as [`put`](Self::put), plus `InvalidArgument` for an out-of-range TTL.
    ///
    /// # Example
    /// ```no_run
    /// # use shoal_client::{KvClient, KvClientError};
    /// # async fn demo(client: &impl KvClient) -> Result<(), KvClientError> {
    /// // Session expires after 1 hour
    /// client.put_with_ttl(b"session:abc", b"user_data", 3600).await?;
    /// # Ok(())
    /// # }
    /// ```
    async fn put_with_ttl(
        &self,
        key: impl AsRef<[u8]> + Send,
        value: impl AsRef<[u8]> + Send,
        ttl_secs: u64,
    ) -> Result<(), KvClientError>;

    /// Retrieves the value associated with a key.
    ///
    /// Uses linearizable reads by default: the returned value reflects every write
    /// acknowledged before the call started.
    ///
    /// # Returns
    /// - `Ok(Some(value))` if the key exists.
    /// - `Ok(None)` if the key does not exist or has expired.
    /// - `Err(_)` if the operation failed.
    ///
    /// # Errors
    /// - [`KvClientError::ChannelClosed`] if the node is shutting down.
    /// - [`KvClientError::Timeout`] if the operation exceeds the timeout.
    /// - [`KvClientError::ServerError`] for server-side errors.
    ///
    /// # Example
    /// ```no_run
    /// # use shoal_client::{KvClient, KvClientError};
    /// # async fn demo(client: &impl KvClient) -> Result<(), KvClientError> {
    /// match client.get(b"user:1001").await? {
    ///     Some(value) => println!("User: {:?}", value),
    ///     None => println!("User not found"),
    /// }
    /// # Ok(())
    /// # }
    /// ```
    async fn get(&self, key: impl AsRef<[u8]> + Send) -> Result<Option<Bytes>, KvClientError>;

    /// Retrieves multiple keys in a single call.
    ///
    /// More efficient than many individual [`get`](Self::get) calls: keys are grouped
    /// by shard and each group is fetched in one request, all groups in parallel. Each
    /// key's read is linearizable; the batch as a whole is not a snapshot across shards.
    ///
    /// # Returns
    /// A vector of results in the same order as the input keys (duplicates allowed,
    /// each answered in its position); `None` for keys that don't exist or expired.
    /// An empty slice returns an empty vector without any request.
    ///
    /// # Errors
    /// Same as [`get`](Self::get). If any part fails, the whole call fails.
    ///
    /// # Example
    /// ```no_run
    /// # use bytes::Bytes;
    /// # use shoal_client::{KvClient, KvClientError};
    /// # async fn demo(client: &impl KvClient) -> Result<(), KvClientError> {
    /// let keys = vec![
    ///     Bytes::from("user:1001"),
    ///     Bytes::from("user:1002"),
    /// ];
    /// let results = client.get_multi(&keys).await?;
    /// assert_eq!(results.len(), keys.len());
    /// # Ok(())
    /// # }
    /// ```
    async fn get_multi(&self, keys: &[Bytes]) -> Result<Vec<Option<Bytes>>, KvClientError>;

    /// Deletes a key-value pair with strong consistency.
    ///
    /// The deletion is replicated to a quorum (durably) before returning. Returns
    /// successfully even if the key does not exist (idempotent).
    ///
    /// # Errors
    /// - [`KvClientError::ChannelClosed`] if the node is shutting down.
    /// - [`KvClientError::Timeout`] if the operation exceeds the timeout.
    /// - [`KvClientError::ServerError`] for server-side errors.
    ///
    /// # Example
    /// ```no_run
    /// # use shoal_client::{KvClient, KvClientError};
    /// # async fn demo(client: &impl KvClient) -> Result<(), KvClientError> {
    /// client.delete(b"temp:session_123").await?;
    /// # Ok(())
    /// # }
    /// ```
    async fn delete(&self, key: impl AsRef<[u8]> + Send) -> Result<(), KvClientError>;
}
