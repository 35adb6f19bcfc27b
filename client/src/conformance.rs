//! The `KvClient` conformance suite (feature `testing`): one set of checks, written once,
//! run against every implementation (RemoteKvClient on a mock, on one node, on a
//! cluster; LocalKvClient on an embedded node).
//!
//! Invariants: every check returns `Err(CheckFailure)` naming the check and what was
//! observed instead of panicking, so a caller can report it in its own test; every check
//! is bounded in time (each wait polls a condition with a deadline) and in work; every
//! key a check writes starts with `SuiteOptions::key_prefix`, so runs against a shared
//! store do not collide (the empty-key check is the one exception: it uses the empty key
//! and deletes it at the end).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use shoal_proto::LimitKind;
use shoal_proto::limits::{MAX_KEY_LEN, MAX_TTL_SECS, MAX_VALUE_LEN};
use tokio::time::Instant;

use crate::{KvClient, KvClientError};

/// Knobs of the suite.
#[derive(Debug, Clone)]
pub struct SuiteOptions {
    /// Prefix of every key the suite writes (make it unique per run).
    pub key_prefix: String,
    /// TTL used by the expiry check, in seconds (at least 1).
    pub ttl_secs: u64,
    /// How long past the TTL a key may stay visible before the check fails (covers
    /// clock granularity and the time the write took).
    pub ttl_grace: Duration,
    /// Interval between polls while waiting for a condition.
    pub poll_interval: Duration,
    /// Concurrent tasks of the concurrency check.
    pub concurrent_tasks: usize,
    /// Operations (put, get, delete rounds) per concurrent task.
    pub rounds_per_task: usize,
}

impl Default for SuiteOptions {
    fn default() -> Self {
        SuiteOptions {
            key_prefix: "conformance:".into(),
            ttl_secs: 1,
            ttl_grace: Duration::from_secs(10),
            poll_interval: Duration::from_millis(50),
            concurrent_tasks: 64,
            rounds_per_task: 10,
        }
    }
}

/// A failed check: which one, and what it saw.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("conformance check `{check}` failed: {message}")]
pub struct CheckFailure {
    /// The check's name.
    pub check: &'static str,
    /// What went wrong.
    pub message: String,
}

type CheckResult = Result<(), CheckFailure>;

fn fail(check: &'static str, message: impl Into<String>) -> CheckFailure {
    CheckFailure {
        check,
        message: message.into(),
    }
}

fn call<T>(
    check: &'static str,
    what: &str,
    r: Result<T, KvClientError>,
) -> Result<T, CheckFailure> {
    r.map_err(|e| fail(check, format!("{what}: unexpected error {e}")))
}

fn ensure(check: &'static str, cond: bool, message: impl FnOnce() -> String) -> CheckResult {
    if cond {
        Ok(())
    } else {
        Err(fail(check, message()))
    }
}

fn key(opts: &SuiteOptions, name: &str) -> Bytes {
    Bytes::from(format!("{}{name}", opts.key_prefix))
}

/// Runs every check in order; stops at the first failure.
pub async fn run_all<C: KvClient + 'static>(client: Arc<C>, opts: &SuiteOptions) -> CheckResult {
    check_put_get_overwrite(&*client, opts).await?;
    check_delete_idempotent(&*client, opts).await?;
    check_empty_key_and_value(&*client, opts).await?;
    check_get_multi_order(&*client, opts).await?;
    check_value_limits(&*client, opts).await?;
    check_key_limits(&*client, opts).await?;
    check_ttl_arguments(&*client, opts).await?;
    check_ttl_expiry(&*client, opts).await?;
    check_concurrent_tasks(client, opts).await?;
    Ok(())
}

/// put, get, overwrite, get of a missing key.
pub async fn check_put_get_overwrite<C: KvClient>(c: &C, opts: &SuiteOptions) -> CheckResult {
    const N: &str = "put_get_overwrite";
    let k = key(opts, "pg");
    call(N, "put", c.put(&k, b"one").await)?;
    let v = call(N, "get", c.get(&k).await)?;
    ensure(N, v.as_deref() == Some(&b"one"[..]), || {
        format!("get after put: {v:?}")
    })?;
    call(N, "overwrite", c.put(&k, b"two").await)?;
    let v = call(N, "get", c.get(&k).await)?;
    ensure(N, v.as_deref() == Some(&b"two"[..]), || {
        format!("get after overwrite: {v:?}")
    })?;
    let missing = call(N, "get missing", c.get(key(opts, "pg:missing")).await)?;
    ensure(N, missing.is_none(), || {
        format!("missing key returned {missing:?}")
    })?;
    call(N, "cleanup", c.delete(&k).await)
}

/// delete of an absent key succeeds; delete removes; a second delete succeeds.
pub async fn check_delete_idempotent<C: KvClient>(c: &C, opts: &SuiteOptions) -> CheckResult {
    const N: &str = "delete_idempotent";
    let k = key(opts, "del");
    call(N, "delete absent", c.delete(&k).await)?;
    call(N, "put", c.put(&k, b"v").await)?;
    call(N, "delete", c.delete(&k).await)?;
    let v = call(N, "get after delete", c.get(&k).await)?;
    ensure(N, v.is_none(), || {
        format!("deleted key still readable: {v:?}")
    })?;
    call(N, "delete again", c.delete(&k).await)?;
    // A put after a delete brings the key back.
    call(N, "put again", c.put(&k, b"w").await)?;
    let v = call(N, "get", c.get(&k).await)?;
    ensure(N, v.as_deref() == Some(&b"w"[..]), || {
        format!("re-put key: {v:?}")
    })?;
    call(N, "cleanup", c.delete(&k).await)
}

/// The empty key and the empty value are ordinary.
pub async fn check_empty_key_and_value<C: KvClient>(c: &C, opts: &SuiteOptions) -> CheckResult {
    const N: &str = "empty_key_and_value";
    call(N, "put empty key", c.put(b"", b"empty-key").await)?;
    let v = call(N, "get empty key", c.get(b"").await)?;
    ensure(N, v.as_deref() == Some(&b"empty-key"[..]), || {
        format!("empty key: {v:?}")
    })?;
    call(N, "delete empty key", c.delete(b"").await)?;
    let v = call(N, "get deleted empty key", c.get(b"").await)?;
    ensure(N, v.is_none(), || format!("deleted empty key: {v:?}"))?;
    let k = key(opts, "empty-value");
    call(N, "put empty value", c.put(&k, b"").await)?;
    let v = call(N, "get empty value", c.get(&k).await)?;
    ensure(N, v.as_deref() == Some(&b""[..]), || {
        format!("empty value must read back as Some(empty), got {v:?}")
    })?;
    call(N, "cleanup", c.delete(&k).await)
}

/// get_multi: input order, missing keys as `None`, duplicates answered per position,
/// many keys (spread over every shard), and an empty list.
pub async fn check_get_multi_order<C: KvClient>(c: &C, opts: &SuiteOptions) -> CheckResult {
    const N: &str = "get_multi_order";
    let empty = call(N, "get_multi of nothing", c.get_multi(&[]).await)?;
    ensure(N, empty.is_empty(), || {
        format!("empty input gave {empty:?}")
    })?;
    let present: Vec<Bytes> = (0..200).map(|i| key(opts, &format!("gm:{i}"))).collect();
    for (i, k) in present.iter().enumerate() {
        call(N, "put", c.put(k, format!("v{i}")).await)?;
    }
    // Interleave present, missing and duplicate keys.
    let mut query = Vec::new();
    let mut expected = Vec::new();
    for (i, k) in present.iter().enumerate().rev() {
        query.push(k.clone());
        expected.push(Some(Bytes::from(format!("v{i}"))));
        if i % 3 == 0 {
            query.push(key(opts, &format!("gm:missing:{i}")));
            expected.push(None);
        }
        if i % 5 == 0 {
            query.push(present[0].clone());
            expected.push(Some(Bytes::from("v0")));
        }
    }
    let got = call(N, "get_multi", c.get_multi(&query).await)?;
    ensure(N, got.len() == query.len(), || {
        format!("{} answers for {} keys", got.len(), query.len())
    })?;
    for (i, (g, e)) in got.iter().zip(&expected).enumerate() {
        ensure(N, g == e, || {
            format!(
                "position {i} (key {:?}): got {g:?}, expected {e:?}",
                query[i]
            )
        })?;
    }
    for k in &present {
        call(N, "cleanup", c.delete(k).await)?;
    }
    Ok(())
}

/// The largest value is accepted and read back; one byte more is `TooLarge(Value)`.
pub async fn check_value_limits<C: KvClient>(c: &C, opts: &SuiteOptions) -> CheckResult {
    const N: &str = "value_limits";
    let k = key(opts, "big-value");
    let big: Vec<u8> = (0..MAX_VALUE_LEN).map(|i| (i % 251) as u8).collect();
    call(N, "put largest value", c.put(&k, &big).await)?;
    let v = call(N, "get largest value", c.get(&k).await)?;
    ensure(N, v.as_deref() == Some(&big[..]), || {
        format!("largest value read back as {:?} bytes", v.map(|v| v.len()))
    })?;
    let too_big = vec![0u8; MAX_VALUE_LEN + 1];
    match c.put(&k, &too_big).await {
        Err(KvClientError::TooLarge {
            limit: LimitKind::Value,
            max,
            actual,
        }) if max == MAX_VALUE_LEN as u64 && actual == too_big.len() as u64 => {}
        other => return Err(fail(N, format!("value one byte too large: {other:?}"))),
    }
    match c.put_with_ttl(&k, &too_big, 60).await {
        Err(KvClientError::TooLarge {
            limit: LimitKind::Value,
            ..
        }) => {}
        other => return Err(fail(N, format!("ttl put one byte too large: {other:?}"))),
    }
    // The refused writes changed nothing.
    let v = call(N, "get after refused put", c.get(&k).await)?;
    ensure(N, v.as_deref() == Some(&big[..]), || {
        "refused put changed the value".into()
    })?;
    call(N, "cleanup", c.delete(&k).await)
}

/// The largest key works; one byte more is `TooLarge(Key)` for every method.
pub async fn check_key_limits<C: KvClient>(c: &C, opts: &SuiteOptions) -> CheckResult {
    const N: &str = "key_limits";
    let mut k = key(opts, "big-key:").to_vec();
    k.resize(MAX_KEY_LEN, b'k');
    call(N, "put largest key", c.put(&k, b"v").await)?;
    let v = call(N, "get largest key", c.get(&k).await)?;
    ensure(N, v.as_deref() == Some(&b"v"[..]), || {
        format!("largest key: {v:?}")
    })?;
    call(N, "delete largest key", c.delete(&k).await)?;
    let mut too_long = k.clone();
    too_long.push(b'k');
    let is_key_limit = |r: &Result<_, KvClientError>| match r {
        Err(KvClientError::TooLarge {
            limit: LimitKind::Key,
            max,
            ..
        }) => *max == MAX_KEY_LEN as u64,
        _ => false,
    };
    let r = c.put(&too_long, b"v").await;
    ensure(N, is_key_limit(&r), || format!("put: {r:?}"))?;
    let r = c.get(&too_long).await;
    ensure(
        N,
        is_key_limit(&r.as_ref().map(|_| ()).map_err(Clone::clone)),
        || format!("get: {r:?}"),
    )?;
    let r = c.delete(&too_long).await;
    ensure(N, is_key_limit(&r), || format!("delete: {r:?}"))?;
    let r = c.get_multi(&[Bytes::from(too_long)]).await;
    ensure(
        N,
        is_key_limit(&r.as_ref().map(|_| ()).map_err(Clone::clone)),
        || format!("get_multi: {r:?}"),
    )
}

/// TTL of 0 and above `MAX_TTL_SECS` are `InvalidArgument`; `MAX_TTL_SECS` itself works.
pub async fn check_ttl_arguments<C: KvClient>(c: &C, opts: &SuiteOptions) -> CheckResult {
    const N: &str = "ttl_arguments";
    let k = key(opts, "ttl-args");
    for bad in [0, MAX_TTL_SECS + 1, u64::MAX] {
        let r = c.put_with_ttl(&k, b"v", bad).await;
        ensure(
            N,
            matches!(r, Err(KvClientError::InvalidArgument { .. })),
            || format!("ttl {bad}: {r:?}"),
        )?;
    }
    let v = call(N, "get", c.get(&k).await)?;
    ensure(N, v.is_none(), || "a refused ttl put wrote the key".into())?;
    call(
        N,
        "put max ttl",
        c.put_with_ttl(&k, b"v", MAX_TTL_SECS).await,
    )?;
    let v = call(N, "get", c.get(&k).await)?;
    ensure(N, v.as_deref() == Some(&b"v"[..]), || {
        format!("max ttl: {v:?}")
    })?;
    call(N, "cleanup", c.delete(&k).await)
}

/// A key written with a short TTL is readable, then vanishes within TTL + grace; a plain
/// put over a TTL key clears its TTL.
pub async fn check_ttl_expiry<C: KvClient>(c: &C, opts: &SuiteOptions) -> CheckResult {
    const N: &str = "ttl_expiry";
    let ttl = opts.ttl_secs.max(1);
    let k = key(opts, "ttl");
    let keep = key(opts, "ttl-cleared");
    let start = Instant::now();
    call(N, "put_with_ttl", c.put_with_ttl(&k, b"short", ttl).await)?;
    call(N, "put_with_ttl", c.put_with_ttl(&keep, b"x", ttl).await)?;
    call(N, "put clears ttl", c.put(&keep, b"kept").await)?;
    let v = call(N, "get before expiry", c.get(&k).await)?;
    if start.elapsed() < Duration::from_secs(ttl) {
        ensure(N, v.as_deref() == Some(&b"short"[..]), || {
            format!("before expiry: {v:?}")
        })?;
    }
    let deadline = start + Duration::from_secs(ttl) + opts.ttl_grace;
    loop {
        let v = call(N, "get while waiting", c.get(&k).await)?;
        if v.is_none() {
            break;
        }
        if Instant::now() >= deadline {
            return Err(fail(
                N,
                format!("key still visible {:?} after a {ttl}s ttl", start.elapsed()),
            ));
        }
        tokio::time::sleep(opts.poll_interval).await;
    }
    ensure(
        N,
        start.elapsed() + Duration::from_millis(5) >= Duration::from_secs(ttl),
        || {
            format!(
                "key expired after {:?}, before its {ttl}s ttl",
                start.elapsed()
            )
        },
    )?;
    let multi = call(
        N,
        "get_multi after expiry",
        c.get_multi(&[k.clone(), keep.clone()]).await,
    )?;
    ensure(N, multi == vec![None, Some(Bytes::from("kept"))], || {
        format!("get_multi after expiry: {multi:?}")
    })?;
    call(N, "cleanup", c.delete(&keep).await)
}

/// `concurrent_tasks` tasks (64 by default), each writing, reading and deleting its own
/// keys at the same time through one shared client.
pub async fn check_concurrent_tasks<C: KvClient + 'static>(
    c: Arc<C>,
    opts: &SuiteOptions,
) -> CheckResult {
    const N: &str = "concurrent_tasks";
    let mut tasks = tokio::task::JoinSet::new();
    for t in 0..opts.concurrent_tasks {
        let c = c.clone();
        let prefix = format!("{}conc:{t}:", opts.key_prefix);
        let rounds = opts.rounds_per_task;
        tasks.spawn(async move {
            for r in 0..rounds {
                let k = format!("{prefix}{r}");
                let v = format!("task {t} round {r}");
                call(N, "put", c.put(&k, &v).await)?;
                let got = call(N, "get", c.get(&k).await)?;
                ensure(N, got.as_deref() == Some(v.as_bytes()), || {
                    format!("task {t} read {got:?} for {k}")
                })?;
            }
            let keys: Vec<Bytes> = (0..rounds)
                .map(|r| Bytes::from(format!("{prefix}{r}")))
                .collect();
            let all = call(N, "get_multi", c.get_multi(&keys).await)?;
            for (r, v) in all.iter().enumerate() {
                let want = format!("task {t} round {r}");
                ensure(N, v.as_deref() == Some(want.as_bytes()), || {
                    format!("task {t} get_multi[{r}] = {v:?}")
                })?;
            }
            for k in &keys {
                call(N, "delete", c.delete(k).await)?;
            }
            Ok::<(), CheckFailure>(())
        });
    }
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok(r) => r?,
            Err(e) => return Err(fail(N, format!("task panicked or was cancelled: {e}"))),
        }
    }
    Ok(())
}

/// After `shutdown` completes, every method fails with an error accepted by
/// `expected` (for an embedded node: `ChannelClosed`) within `within`, never hangs.
pub async fn check_shutdown<C, F, Fut>(
    c: &C,
    shutdown: F,
    expected: impl Fn(&KvClientError) -> bool,
    within: Duration,
) -> CheckResult
where
    C: KvClient,
    F: FnOnce() -> Fut,
    Fut: Future<Output = ()>,
{
    const N: &str = "shutdown";
    shutdown().await;
    let check = |what: &str, r: Option<Result<(), KvClientError>>| match r {
        None => Err(fail(N, format!("{what} still pending after {within:?}"))),
        Some(Ok(())) => Err(fail(N, format!("{what} succeeded after shutdown"))),
        Some(Err(e)) if expected(&e) => Ok(()),
        Some(Err(e)) => Err(fail(N, format!("{what}: unexpected error {e}"))),
    };
    use tokio::time::timeout;
    check("put", timeout(within, c.put(b"k", b"v")).await.ok())?;
    let r = timeout(within, c.get(b"k")).await.ok();
    check("get", r.map(|r| r.map(|_| ())))?;
    let r = timeout(within, c.get_multi(&[Bytes::from("k")])).await.ok();
    check("get_multi", r.map(|r| r.map(|_| ())))?;
    check("delete", timeout(within, c.delete(b"k")).await.ok())
}

/// Availability through a disruption (a leader killed, a node restarted...): writes
/// and reads `total` keys one after the other, runs `disrupt` after `disrupt_after` of
/// them, and requires every operation to succeed (the client must hide the failover
/// within its request timeout) and every key to read back at the end.
pub async fn check_continuity_through<C, F, Fut>(
    c: &C,
    opts: &SuiteOptions,
    total: usize,
    disrupt_after: usize,
    disrupt: F,
) -> CheckResult
where
    C: KvClient,
    F: FnOnce() -> Fut,
    Fut: Future<Output = ()>,
{
    const N: &str = "continuity";
    let mut disrupt = Some(disrupt);
    let mut keys = Vec::with_capacity(total);
    for i in 0..total {
        if i == disrupt_after {
            if let Some(d) = disrupt.take() {
                d().await;
            }
        }
        let k = key(opts, &format!("cont:{i}"));
        let phase = if disrupt.is_none() { "after" } else { "before" };
        call(
            N,
            &format!("put {i} ({phase} disruption)"),
            c.put(&k, &k).await,
        )?;
        let v = call(N, &format!("get {i} ({phase} disruption)"), c.get(&k).await)?;
        ensure(N, v.as_ref() == Some(&k), || {
            format!("key {i} read back as {v:?}")
        })?;
        keys.push(k);
    }
    let all = call(N, "final get_multi", c.get_multi(&keys).await)?;
    for (i, (k, v)) in keys.iter().zip(&all).enumerate() {
        ensure(N, v.as_ref() == Some(k), || format!("key {i} lost: {v:?}"))?;
    }
    for k in &keys {
        call(N, "cleanup", c.delete(k).await)?;
    }
    Ok(())
}
