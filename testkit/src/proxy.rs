//! A fault-injecting TCP proxy for tests: pass, delay, hold or cut a link on command.
//!
//! A [`Proxy`] listens on one or more loopback ports, each forwarding to its own upstream
//! (a node listens on a block of ports, one per shard, so one proxy covers them all), and
//! applies one fault setting to every connection it carries, per direction:
//! - [`Fault::Pass`]: bytes flow;
//! - [`Fault::Delay`]: every chunk is held for the given time before it is forwarded, in
//!   order (a slow link);
//! - [`Fault::Hold`]: nothing is forwarded; bytes wait in the proxy and kernel buffers and
//!   flow again, unharmed, when the fault is lifted (a partition that TCP rides out);
//! - [`Fault::Cut`]: every connection is reset and new ones are refused until lifted
//!   (a partition long enough that connections fail);
//! - [`Fault::Jitter`]: every chunk is held for a random time in a range; chunks of one
//!   connection stay in order (TCP), but messages on different connections (Raft's
//!   per-group links, a client's connections) overtake each other: reordering;
//! - [`Fault::Lossy`]: each chunk, with the given probability (per mille), is lost together
//!   with its connection (reset): on a byte stream a lost packet that TCP cannot repair
//!   shows as a failed connection, and the messages in it are gone.
//!
//! The proxy runs on its own thread and tokio runtime, so synchronous and async tests
//! alike drive it. Dropping it stops the thread and closes every connection.
//!
//! Invariant: a fault change reaches every pump at its next read or while it waits, so a
//! `Hold` or `Cut` takes effect without waiting for traffic; bytes of one connection are
//! never reordered or altered (a connection is reset rather than carry a gap).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// Size of one forwarded chunk.
const CHUNK: usize = 64 * 1024;

/// What happens to bytes in one direction of a link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    Pass,
    Delay(Duration),
    Hold,
    Cut,
    /// Hold each chunk for a uniformly random time in `[min, max]`.
    Jitter {
        min: Duration,
        max: Duration,
    },
    /// Reset the connection instead of forwarding a chunk, with probability `per_mille`/1000.
    Lossy {
        per_mille: u16,
    },
}

/// The fault of each direction: towards the upstream (requests), towards the client
/// (responses).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Faults {
    pub to_upstream: Fault,
    pub to_client: Fault,
}

impl Faults {
    pub const PASS: Faults = Faults {
        to_upstream: Fault::Pass,
        to_client: Fault::Pass,
    };

    fn is_cut(&self) -> bool {
        self.to_upstream == Fault::Cut || self.to_client == Fault::Cut
    }
}

#[derive(Debug, Clone, Copy)]
enum Direction {
    ToUpstream,
    ToClient,
}

impl Direction {
    fn of(self, f: &Faults) -> Fault {
        match self {
            Direction::ToUpstream => f.to_upstream,
            Direction::ToClient => f.to_client,
        }
    }
}

/// A running proxy; see the module documentation.
#[derive(Debug)]
pub struct Proxy {
    listen: Vec<SocketAddr>,
    faults: watch::Sender<Faults>,
    live: Arc<AtomicUsize>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Proxy {
    /// Starts a proxy with one route per `(listen, upstream)` pair. Use port 0 in `listen`
    /// for any free port; [`Proxy::addrs`] tells which was taken.
    pub fn start(routes: &[(SocketAddr, SocketAddr)]) -> std::io::Result<Proxy> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let listeners = runtime.block_on(async {
            let mut out = Vec::with_capacity(routes.len());
            for (listen, upstream) in routes {
                out.push((TcpListener::bind(listen).await?, *upstream));
            }
            Ok::<_, std::io::Error>(out)
        })?;
        let listen = listeners
            .iter()
            .map(|(l, _)| l.local_addr())
            .collect::<Result<_, _>>()?;
        let (faults, faults_rx) = watch::channel(Faults::PASS);
        let live = Arc::new(AtomicUsize::new(0));
        let (stop, stop_rx) = tokio::sync::oneshot::channel();
        let live2 = live.clone();
        let thread = std::thread::Builder::new()
            .name("test-proxy".into())
            .spawn(move || {
                runtime.block_on(async move {
                    for (listener, upstream) in listeners {
                        tokio::spawn(accept_loop(
                            listener,
                            upstream,
                            faults_rx.clone(),
                            live2.clone(),
                        ));
                    }
                    let _ = stop_rx.await;
                });
                // Dropping the runtime cancels every task and closes every socket.
            })?;
        Ok(Proxy {
            listen,
            faults,
            live,
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    /// The addresses the proxy listens on, in route order.
    pub fn addrs(&self) -> &[SocketAddr] {
        &self.listen
    }

    /// Sets the same fault on both directions.
    pub fn set(&self, fault: Fault) {
        self.set_faults(Faults {
            to_upstream: fault,
            to_client: fault,
        });
    }

    /// Sets each direction's fault.
    pub fn set_faults(&self, faults: Faults) {
        self.faults.send_replace(faults);
    }

    /// Lifts every fault.
    pub fn heal(&self) {
        self.set(Fault::Pass);
    }

    pub fn faults(&self) -> Faults {
        *self.faults.borrow()
    }

    /// Connections currently carried.
    pub fn live_connections(&self) -> usize {
        self.live.load(Ordering::Relaxed)
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

async fn accept_loop(
    listener: TcpListener,
    upstream: SocketAddr,
    faults: watch::Receiver<Faults>,
    live: Arc<AtomicUsize>,
) {
    loop {
        let Ok((client, _)) = listener.accept().await else {
            continue;
        };
        if faults.borrow().is_cut() {
            reset(client);
            continue;
        }
        let faults = faults.clone();
        let live = live.clone();
        tokio::spawn(async move {
            let Ok(server) = TcpStream::connect(upstream).await else {
                reset(client);
                return;
            };
            live.fetch_add(1, Ordering::Relaxed);
            let _ = client.set_nodelay(true);
            let _ = server.set_nodelay(true);
            // Reset, not FIN, when a Cut closes them: peers see the failure at once.
            let _ = client.set_zero_linger();
            let _ = server.set_zero_linger();
            let (cr, cw) = client.into_split();
            let (sr, sw) = server.into_split();
            let up = pump(cr, sw, faults.clone(), Direction::ToUpstream);
            let down = pump(sr, cw, faults, Direction::ToClient);
            // When either direction ends (EOF, error or Cut), the link is over.
            tokio::select! {
                _ = up => {}
                _ = down => {}
            }
            live.fetch_sub(1, Ordering::Relaxed);
        });
    }
}

fn reset(stream: TcpStream) {
    let _ = stream.set_zero_linger();
    drop(stream);
}

/// Forwards one direction until EOF, an error, or a Cut.
async fn pump(
    mut from: OwnedReadHalf,
    mut to: OwnedWriteHalf,
    mut faults: watch::Receiver<Faults>,
    dir: Direction,
) {
    let mut buf = vec![0u8; CHUNK];
    let mut rng = SplitMix::seeded();
    loop {
        if !wait_while_held(&mut faults, dir).await {
            return;
        }
        let n = tokio::select! {
            read = from.read(&mut buf) => match read {
                Ok(0) | Err(_) => {
                    let _ = to.shutdown().await;
                    return;
                }
                Ok(n) => n,
            },
            changed = faults.changed() => {
                if changed.is_err() {
                    return;
                }
                continue;
            }
        };
        // The chunk is in hand: apply the fault in force now (it may have changed).
        loop {
            let fault = dir.of(&faults.borrow_and_update());
            match fault {
                Fault::Cut => return,
                Fault::Pass => break,
                Fault::Delay(d) => {
                    tokio::time::sleep(d).await;
                    break;
                }
                Fault::Jitter { min, max } => {
                    let span = max.saturating_sub(min).as_micros() as u64;
                    let extra = if span == 0 {
                        0
                    } else {
                        rng.next() % (span + 1)
                    };
                    tokio::time::sleep(min + Duration::from_micros(extra)).await;
                    break;
                }
                Fault::Lossy { per_mille } => {
                    if rng.next() % 1000 < u64::from(per_mille) {
                        return;
                    }
                    break;
                }
                Fault::Hold => {}
            }
            if !wait_while_held(&mut faults, dir).await {
                return;
            }
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

/// Waits until this direction is not held. False when the link must end (Cut, or the
/// proxy is gone).
async fn wait_while_held(faults: &mut watch::Receiver<Faults>, dir: Direction) -> bool {
    loop {
        let current = *faults.borrow_and_update();
        if current.is_cut() {
            return false;
        }
        if dir.of(&current) != Fault::Hold {
            return true;
        }
        if faults.changed().await.is_err() {
            return false;
        }
    }
}

/// A small non-cryptographic generator for the proxy's random faults (splitmix64), seeded
/// per pump from the clock and a counter so that pumps draw different streams.
struct SplitMix(u64);

impl SplitMix {
    fn seeded() -> SplitMix {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let n = NEXT.fetch_add(1, Ordering::Relaxed) as u64;
        SplitMix(u64::from(nanos) ^ n.wrapping_mul(0x9e37_79b9_7f4a_7c15))
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}
