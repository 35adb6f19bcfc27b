//! The runtime seam of the state machine and its snapshot store: what they need from an
//! executor beyond openraft's [`AsyncRuntime`] (which already gives them `sleep` and the
//! runtime's `Instant`).
//!
//! Production implements it for [`GlommioRuntime`]; the deterministic simulation
//! (`shoal-sim`) implements it for its own runtime, so the same state machine, snapshot
//! builder and snapshot store run there on virtual time.
//!
//! Invariant: the state machine reads time only through `AsyncRuntime::Instant` (to bound
//! how long it runs between two yields) and the wall clock only through the clock it is
//! given; it never calls glommio, `std::time::Instant::now` or `std::thread` itself.

use std::future::Future;

use openraft_rt::AsyncRuntime;

use super::runtime::GlommioRuntime;

/// What the state machine needs from its executor.
pub trait SmRuntime: AsyncRuntime {
    /// Lets the other tasks of the executor run, then continues.
    fn yield_now() -> impl Future<Output = ()>;

    /// Disposes of a large value (a replaced state of millions of entries) without
    /// stalling the executor. Default: drop it on a short-lived thread, or here if no
    /// thread can be started.
    fn drop_elsewhere<T: Send + 'static>(value: T) {
        // On failure `spawn` drops the closure, and `value` with it, here.
        let spawned = std::thread::Builder::new()
            .name("shoal-state-drop".into())
            .spawn(move || drop(value));
        if let Err(e) = spawned {
            tracing::warn!("dropped the replaced state on the shard: {e}");
        }
    }
}

impl SmRuntime for GlommioRuntime {
    async fn yield_now() {
        glommio::executor().yield_now().await;
    }
}
