//! Adapters from `tokio::sync` (mpsc, watch, oneshot, mutex) to the channel traits of
//! `openraft_rt`, for [`super::runtime::GlommioRuntime`].
//!
//! `tokio::sync` needs no tokio runtime: its primitives are driven by whichever executor
//! polls them, so they work unchanged on glommio. These are pure forwarding newtypes (the
//! orphan rule forbids implementing `openraft_rt`'s traits on tokio's types directly);
//! they hold no state and add no behaviour.

use std::future::Future;

use futures::TryFutureExt;
use openraft_rt::Mpsc;
use openraft_rt::MpscReceiver;
use openraft_rt::MpscSender;
use openraft_rt::MpscWeakSender;
use openraft_rt::OneshotSender;
use openraft_rt::OptionalSend;
use openraft_rt::OptionalSync;
use openraft_rt::SendError;
use openraft_rt::TryRecvError;
use openraft_rt::mutex;
use openraft_rt::oneshot;
use openraft_rt::watch;
use tokio::sync::mpsc as tokio_mpsc;
use tokio::sync::watch as tokio_watch;

/// Bounded mpsc channel: `tokio::sync::mpsc`.
#[derive(Debug)]
pub struct TokioSyncMpsc;

/// Sending half of [`TokioSyncMpsc`].
#[derive(Debug)]
pub struct MpscTx<T>(tokio_mpsc::Sender<T>);

/// Receiving half of [`TokioSyncMpsc`].
#[derive(Debug)]
pub struct MpscRx<T>(tokio_mpsc::Receiver<T>);

/// Weak sending half of [`TokioSyncMpsc`].
#[derive(Debug)]
pub struct MpscWeakTx<T>(tokio_mpsc::WeakSender<T>);

impl<T> Clone for MpscTx<T> {
    fn clone(&self) -> Self {
        MpscTx(self.0.clone())
    }
}

impl<T> Clone for MpscWeakTx<T> {
    fn clone(&self) -> Self {
        MpscWeakTx(self.0.clone())
    }
}

impl Mpsc for TokioSyncMpsc {
    type Sender<T: OptionalSend> = MpscTx<T>;
    type Receiver<T: OptionalSend> = MpscRx<T>;
    type WeakSender<T: OptionalSend> = MpscWeakTx<T>;

    fn channel<T: OptionalSend>(buffer: usize) -> (Self::Sender<T>, Self::Receiver<T>) {
        let (tx, rx) = tokio_mpsc::channel(buffer);
        (MpscTx(tx), MpscRx(rx))
    }
}

impl<T: OptionalSend> MpscSender<TokioSyncMpsc, T> for MpscTx<T> {
    fn send(&self, msg: T) -> impl Future<Output = Result<(), SendError<T>>> + OptionalSend {
        self.0.send(msg).map_err(|e| SendError(e.0))
    }

    fn downgrade(&self) -> MpscWeakTx<T> {
        MpscWeakTx(self.0.downgrade())
    }
}

impl<T: OptionalSend> MpscReceiver<T> for MpscRx<T> {
    fn recv(&mut self) -> impl Future<Output = Option<T>> + OptionalSend {
        self.0.recv()
    }

    fn try_recv(&mut self) -> Result<T, TryRecvError> {
        self.0.try_recv().map_err(|e| match e {
            tokio_mpsc::error::TryRecvError::Empty => TryRecvError::Empty,
            tokio_mpsc::error::TryRecvError::Disconnected => TryRecvError::Disconnected,
        })
    }
}

impl<T: OptionalSend> MpscWeakSender<TokioSyncMpsc, T> for MpscWeakTx<T> {
    fn upgrade(&self) -> Option<MpscTx<T>> {
        self.0.upgrade().map(MpscTx)
    }
}

/// Watch channel: `tokio::sync::watch`.
#[derive(Debug)]
pub struct TokioSyncWatch;

/// Sending half of [`TokioSyncWatch`].
#[derive(Debug)]
pub struct WatchTx<T>(tokio_watch::Sender<T>);

/// Receiving half of [`TokioSyncWatch`].
#[derive(Debug)]
pub struct WatchRx<T>(tokio_watch::Receiver<T>);

impl<T> Clone for WatchTx<T> {
    fn clone(&self) -> Self {
        WatchTx(self.0.clone())
    }
}

impl<T> Clone for WatchRx<T> {
    fn clone(&self) -> Self {
        WatchRx(self.0.clone())
    }
}

impl watch::Watch for TokioSyncWatch {
    type Sender<T: OptionalSend + OptionalSync> = WatchTx<T>;
    type Receiver<T: OptionalSend + OptionalSync> = WatchRx<T>;
    type Ref<'a, T: OptionalSend + 'a> = tokio_watch::Ref<'a, T>;

    fn channel<T: OptionalSend + OptionalSync>(init: T) -> (Self::Sender<T>, Self::Receiver<T>) {
        let (tx, rx) = tokio_watch::channel(init);
        (WatchTx(tx), WatchRx(rx))
    }
}

impl<T: OptionalSend + OptionalSync> watch::WatchSender<TokioSyncWatch, T> for WatchTx<T> {
    fn send(&self, value: T) -> Result<(), watch::SendError<T>> {
        self.0.send(value).map_err(|e| watch::SendError(e.0))
    }

    fn send_if_modified<F>(&self, modify: F) -> bool
    where
        F: FnOnce(&mut T) -> bool,
    {
        self.0.send_if_modified(modify)
    }

    fn borrow_watched(&self) -> tokio_watch::Ref<'_, T> {
        self.0.borrow()
    }

    fn subscribe(&self) -> WatchRx<T> {
        WatchRx(self.0.subscribe())
    }
}

impl<T: OptionalSend + OptionalSync> watch::WatchReceiver<TokioSyncWatch, T> for WatchRx<T> {
    async fn changed(&mut self) -> Result<(), watch::RecvError> {
        self.0.changed().await.map_err(|_| watch::RecvError(()))
    }

    fn borrow_watched(&self) -> tokio_watch::Ref<'_, T> {
        self.0.borrow()
    }

    fn borrow_and_update(&mut self) -> tokio_watch::Ref<'_, T> {
        self.0.borrow_and_update()
    }
}

/// Oneshot channel: `tokio::sync::oneshot`.
#[derive(Debug)]
pub struct TokioSyncOneshot;

/// Sending half of [`TokioSyncOneshot`].
#[derive(Debug)]
pub struct OneshotTx<T>(tokio::sync::oneshot::Sender<T>);

impl oneshot::Oneshot for TokioSyncOneshot {
    type Sender<T: OptionalSend> = OneshotTx<T>;
    type Receiver<T: OptionalSend> = tokio::sync::oneshot::Receiver<T>;
    type ReceiverError = tokio::sync::oneshot::error::RecvError;

    fn channel<T: OptionalSend>() -> (Self::Sender<T>, Self::Receiver<T>) {
        let (tx, rx) = tokio::sync::oneshot::channel();
        (OneshotTx(tx), rx)
    }
}

impl<T: OptionalSend> OneshotSender<T> for OneshotTx<T> {
    fn send(self, value: T) -> Result<(), T> {
        self.0.send(value)
    }
}

/// Async mutex: `tokio::sync::Mutex`.
#[derive(Debug)]
pub struct TokioSyncMutex<T>(tokio::sync::Mutex<T>);

impl<T: OptionalSend + 'static> mutex::Mutex<T> for TokioSyncMutex<T> {
    type Guard<'a> = tokio::sync::MutexGuard<'a, T>;

    fn new(value: T) -> Self {
        TokioSyncMutex(tokio::sync::Mutex::new(value))
    }

    fn lock(&self) -> impl Future<Output = Self::Guard<'_>> + OptionalSend {
        self.0.lock()
    }
}
