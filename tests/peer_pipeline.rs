//! Pipelined replication over the peer transport (`PeerClient::stream_append` against a
//! `PeerServer`), with a test-double handler whose answers the test releases one by one,
//! over TCP on 127.0.0.1, in one executor:
//! - several appends reach the receiver before the first is answered, never more than the
//!   sender's pipeline depth, and the answers come back in request order with the right
//!   log ids;
//! - a conflict in the middle ends the stream with that conflict; the connection, which
//!   still had answers due, is dropped, and the next session reconnects and works;
//! - a batch too large for one frame is sent as its prefix and ends the stream with a
//!   partial success, with nothing sent after it.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test binary: a failed unwrap fails the test

mod raft_support;

use std::cell::RefCell;
use std::collections::VecDeque;
use std::rc::Rc;
use std::time::Duration;
use std::time::Instant;

use bytes::Bytes;
use futures::StreamExt;
use futures::channel::mpsc;
use futures::stream::LocalBoxStream;
use openraft::AsyncRuntime;
use openraft::RaftNetworkV2;
use openraft::network::RPCOption;
use openraft::raft::AppendEntriesRequest;
use openraft::raft::AppendEntriesResponse;
use openraft::raft::SnapshotResponse;
use openraft::raft::StreamAppendError;
use openraft::raft::VoteRequest;
use openraft::raft::VoteResponse;
use shoal::peer::LocalPeer;
use shoal::peer::PeerConfig;
use shoal::peer::PeerHandler;
use shoal::peer::PeerNetwork;
use shoal::peer::PeerServer;
use shoal::raft::GlommioRuntime;
use shoal::raft::TypeConfig;
use shoal::raft::types::Entry;
use shoal::raft::types::EntryPayload;
use shoal::raft::types::LogId;
use shoal::raft::types::Request;
use shoal::raft::types::ShoalNode;
use shoal::raft::types::Snapshot;
use shoal::raft::types::Vote;
use shoal_proto::peer::PeerError;

const WAIT: Duration = Duration::from_secs(10);
const DEPTH: usize = 4;

type Answer = Result<AppendEntriesResponse<TypeConfig>, PeerError>;

/// Records every append the moment it arrives (its last index) and answers only what the
/// test releases, in order.
#[derive(Default)]
struct Double {
    arrived: RefCell<Vec<u64>>,
    /// Senders of the answer streams, one per connection's append stream, newest last.
    answers: RefCell<Vec<mpsc::UnboundedSender<Answer>>>,
}

#[derive(Clone, Default)]
struct Handler(Rc<Double>);

impl PeerHandler for Handler {
    async fn append_entries(&self, _rpc: AppendEntriesRequest<TypeConfig>) -> Answer {
        unreachable!("every append goes through append_stream")
    }

    fn append_stream(
        self: Rc<Self>,
        input: LocalBoxStream<'static, AppendEntriesRequest<TypeConfig>>,
    ) -> LocalBoxStream<'static, Answer> {
        let (tx, rx) = mpsc::unbounded();
        self.0.answers.borrow_mut().push(tx);
        let double = self.0.clone();
        glommio::spawn_local(input.for_each(move |rpc| {
            let last = rpc.entries.last().map_or(0, |e| e.log_id.index);
            double.arrived.borrow_mut().push(last);
            async {}
        }))
        .detach();
        Box::pin(rx)
    }

    async fn vote(
        &self,
        rpc: VoteRequest<TypeConfig>,
    ) -> Result<VoteResponse<TypeConfig>, PeerError> {
        Ok(VoteResponse::new(rpc.vote, None, true))
    }

    async fn pre_vote(
        &self,
        rpc: VoteRequest<TypeConfig>,
    ) -> Result<VoteResponse<TypeConfig>, PeerError> {
        Ok(VoteResponse::new(rpc.vote, None, true))
    }

    async fn install_full_snapshot(
        &self,
        vote: Vote,
        _snapshot: Snapshot<Bytes>,
    ) -> Result<SnapshotResponse<TypeConfig>, PeerError> {
        Ok(SnapshotResponse { vote })
    }
}

impl Double {
    fn release(&self, answer: AppendEntriesResponse<TypeConfig>) {
        let answers = self.answers.borrow();
        answers
            .last()
            .expect("an append stream exists")
            .unbounded_send(Ok(answer))
            .unwrap();
    }
}

fn config(node_id: u64) -> PeerConfig {
    PeerConfig {
        append_pipeline_depth: DEPTH,
        ..PeerConfig::new(
            LocalPeer {
                cluster_id: 7,
                node_id,
                shard_count: 1,
            },
            0,
        )
    }
}

fn log_id(index: u64) -> LogId {
    LogId {
        leader_id: Vote::new_committed(1, 1).leader_id,
        index,
    }
}

/// An append of entries `first..=last` after `first - 1`, each `len` bytes.
fn append(first: u64, last: u64, len: usize) -> AppendEntriesRequest<TypeConfig> {
    AppendEntriesRequest {
        vote: Vote::new_committed(1, 1),
        prev_log_id: (first > 1).then(|| log_id(first - 1)),
        entries: (first..=last)
            .map(|index| Entry {
                log_id: log_id(index),
                payload: EntryPayload::Normal(Request {
                    command: Bytes::from(vec![7u8; len]),
                }),
            })
            .collect(),
        leader_commit: None,
    }
}

async fn until(what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < WAIT, "timed out waiting for {what}");
        GlommioRuntime::sleep(Duration::from_millis(2)).await;
    }
}

async fn start_server(double: &Rc<Double>) -> (ShoalNode, tokio::sync::oneshot::Sender<()>) {
    let server = PeerServer::bind(
        "127.0.0.1:0".parse().unwrap(),
        config(2),
        Handler(double.clone()),
    )
    .unwrap();
    let node = ShoalNode {
        client_addr: String::new(),
        peer_addr: server.local_addr().to_string(),
    };
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    glommio::spawn_local(server.run(async move {
        let _ = stop_rx.await;
    }))
    .detach();
    (node, stop_tx)
}

#[test]
fn appends_are_pipelined_up_to_the_depth_and_answered_in_order() {
    raft_support::executor().run(async {
        let double = Rc::new(Double::default());
        let (node, _stop) = start_server(&double).await;
        let network = PeerNetwork::new(config(1));
        let mut client = network.client(2, &node, "replication");
        let (input_tx, input_rx) = mpsc::unbounded();
        // Six appends of one entry each, all available at once.
        for i in 1..=6u64 {
            input_tx.unbounded_send(append(i, i, 100)).unwrap();
        }
        drop(input_tx);
        let option = RPCOption::new(WAIT);
        let mut out = client.stream_append(input_rx, option).await.unwrap();

        // Poll the output (which drives the sending) until DEPTH appends arrived, none
        // answered yet: they are on the wire together.
        let mut first = Box::pin(out.next());
        let deadline = Instant::now() + WAIT;
        loop {
            assert!(Instant::now() < deadline, "appends did not arrive together");
            let tick = GlommioRuntime::sleep(Duration::from_millis(2));
            match futures::future::select(first.as_mut(), Box::pin(tick)).await {
                futures::future::Either::Left((item, _)) => {
                    panic!("an answer before any was released: {item:?}")
                }
                futures::future::Either::Right(_) => {}
            }
            if double.arrived.borrow().len() >= DEPTH {
                break;
            }
        }
        assert_eq!(
            *double.arrived.borrow(),
            vec![1, 2, 3, 4],
            "the first DEPTH, in order"
        );

        double.release(AppendEntriesResponse::Success);
        let item = first.await.unwrap().unwrap();
        assert_eq!(item.unwrap(), Some(log_id(1)));
        let mut got = VecDeque::new();
        for _ in 2..=6 {
            double.release(AppendEntriesResponse::Success);
        }
        while let Some(item) = out.next().await {
            got.push_back(item.unwrap().unwrap());
        }
        assert_eq!(
            Vec::from(got),
            (2..=6).map(|i| Some(log_id(i))).collect::<Vec<_>>()
        );
        assert_eq!(*double.arrived.borrow(), vec![1, 2, 3, 4, 5, 6]);
        drop(out);
        assert!(
            client.is_connected(),
            "a finished stream keeps its connection"
        );
    });
}

#[test]
fn a_conflict_ends_the_stream_and_the_next_session_reconnects() {
    raft_support::executor().run(async {
        let double = Rc::new(Double::default());
        let (node, _stop) = start_server(&double).await;
        let network = PeerNetwork::new(config(1));
        let mut client = network.client(2, &node, "replication");
        let option = RPCOption::new(WAIT);
        {
            let (input_tx, input_rx) = mpsc::unbounded();
            for i in 1..=4u64 {
                input_tx.unbounded_send(append(i, i, 100)).unwrap();
            }
            let mut out = client
                .stream_append(input_rx, option.clone())
                .await
                .unwrap();
            let mut first = Box::pin(out.next());
            until("four appends on the wire", || {
                let _ = futures::FutureExt::now_or_never(first.as_mut());
                double.arrived.borrow().len() == 4
            })
            .await;
            double.release(AppendEntriesResponse::Success);
            double.release(AppendEntriesResponse::Conflict);
            assert_eq!(first.await.unwrap().unwrap().unwrap(), Some(log_id(1)));
            match out.next().await.unwrap().unwrap() {
                Err(StreamAppendError::Conflict(prev)) => assert_eq!(prev, log_id(1)),
                other => panic!("expected a conflict at the second append, got {other:?}"),
            }
            assert!(
                out.next().await.is_none(),
                "the stream ends at the conflict"
            );
            drop(input_tx);
        }
        assert!(
            !client.is_connected(),
            "answers were still due: the connection must not be reused"
        );

        // A new session: a fresh connection and a fresh append stream on the server.
        let (input_tx, input_rx) = mpsc::unbounded();
        input_tx.unbounded_send(append(2, 3, 100)).unwrap();
        drop(input_tx);
        let mut out = client.stream_append(input_rx, option).await.unwrap();
        let mut next = Box::pin(out.next());
        until("the retried append", || {
            let _ = futures::FutureExt::now_or_never(next.as_mut());
            double.arrived.borrow().last() == Some(&3)
        })
        .await;
        assert_eq!(
            double.answers.borrow().len(),
            2,
            "one append stream per connection"
        );
        double.release(AppendEntriesResponse::Success);
        assert_eq!(next.await.unwrap().unwrap().unwrap(), Some(log_id(3)));
    });
}

#[test]
fn an_oversized_batch_is_sent_as_a_prefix_and_ends_the_stream() {
    raft_support::executor().run(async {
        let double = Rc::new(Double::default());
        let (node, _stop) = start_server(&double).await;
        let network = PeerNetwork::new(config(1));
        let mut client = network.client(2, &node, "replication");
        let (input_tx, input_rx) = mpsc::unbounded();
        // 40 entries of 1 MiB do not fit in one 32 MiB frame; a small append follows.
        input_tx.unbounded_send(append(1, 40, 1024 * 1024)).unwrap();
        input_tx.unbounded_send(append(41, 41, 10)).unwrap();
        let mut out = client
            .stream_append(input_rx, RPCOption::new(WAIT))
            .await
            .unwrap();
        let mut first = Box::pin(out.next());
        until("the prefix", || {
            let _ = futures::FutureExt::now_or_never(first.as_mut());
            !double.arrived.borrow().is_empty()
        })
        .await;
        let sent_last = double.arrived.borrow()[0];
        assert!((1..40).contains(&sent_last), "a prefix: {sent_last}");
        double.release(AppendEntriesResponse::Success);
        assert_eq!(
            first.await.unwrap().unwrap().unwrap(),
            Some(log_id(sent_last))
        );
        assert!(out.next().await.is_none(), "nothing after a partial batch");
        assert_eq!(
            double.arrived.borrow().len(),
            1,
            "the next append was not sent"
        );
        drop(input_tx);
    });
}

/// A commit-only append (no entries) after entry `prev`, announcing commit `prev`.
fn commit_only(prev: u64) -> AppendEntriesRequest<TypeConfig> {
    AppendEntriesRequest {
        vote: Vote::new_committed(1, 1),
        prev_log_id: Some(log_id(prev)),
        entries: Vec::new(),
        leader_commit: Some(log_id(prev)),
    }
}

/// Collects the output until it ends (bounded by `WAIT`).
async fn drain(
    out: &mut (
             impl futures::Stream<
        Item = Result<
            Result<Option<LogId>, StreamAppendError<TypeConfig>>,
            openraft::errors::RPCError<TypeConfig>,
        >,
    > + Unpin
         ),
) -> Vec<Result<Option<LogId>, StreamAppendError<TypeConfig>>> {
    let mut got = Vec::new();
    let deadline = Instant::now() + WAIT;
    while let Some(item) = out.next().await {
        assert!(Instant::now() < deadline, "the stream did not end");
        got.push(item.unwrap());
    }
    got
}

/// A replication session from node 1 to a fresh server double, its input fed with
/// `requests` (the input stays open while the returned sender lives).
struct Session {
    double: Rc<Double>,
    _stop: tokio::sync::oneshot::Sender<()>,
    client: shoal::peer::PeerClient,
    input: Option<mpsc::UnboundedReceiver<AppendEntriesRequest<TypeConfig>>>,
}

type AnswerStream<'s> = LocalBoxStream<
    's,
    Result<
        Result<Option<LogId>, StreamAppendError<TypeConfig>>,
        openraft::errors::RPCError<TypeConfig>,
    >,
>;

impl Session {
    async fn new(
        requests: Vec<AppendEntriesRequest<TypeConfig>>,
    ) -> (
        Session,
        mpsc::UnboundedSender<AppendEntriesRequest<TypeConfig>>,
    ) {
        let double = Rc::new(Double::default());
        let (node, stop) = start_server(&double).await;
        let client = PeerNetwork::new(config(1)).client(2, &node, "replication");
        let (input_tx, input_rx) = mpsc::unbounded();
        for r in requests {
            input_tx.unbounded_send(r).unwrap();
        }
        let session = Session {
            double,
            _stop: stop,
            client,
            input: Some(input_rx),
        };
        (session, input_tx)
    }

    /// Opens the stream; returns once the first request (sent with the session) arrived,
    /// so the server's stream exists.
    async fn open(&mut self) -> AnswerStream<'_> {
        let input = self.input.take().expect("opened once");
        let out = self
            .client
            .stream_append(input, RPCOption::new(WAIT))
            .await
            .unwrap();
        let double = Rc::clone(&self.double);
        until("the first append", || !double.arrived.borrow().is_empty()).await;
        out
    }
}

#[test]
fn a_commit_only_append_rides_on_the_next_request_and_is_answered_first() {
    raft_support::executor().run(async {
        let requests = vec![
            append(1, 1, 100),
            commit_only(1),
            commit_only(1),
            append(2, 2, 100),
        ];
        let (mut session, input_tx) = Session::new(requests).await;
        drop(input_tx);
        let double = Rc::clone(&session.double);
        let mut out = session.open().await;
        double.release(AppendEntriesResponse::Success);
        double.release(AppendEntriesResponse::Success);
        let got = drain(&mut out).await;
        // Two requests on the wire; four answers, in request order.
        // The server records arrivals in a task of its own, which may lag its answers;
        // a commit-only append sent on its own would show as a 0 between 1 and 2.
        until("both requests recorded", || {
            double.arrived.borrow().len() >= 2
        })
        .await;
        assert_eq!(*double.arrived.borrow(), vec![1, 2]);
        let want: Vec<_> = [1, 1, 1, 2].iter().map(|&i| Ok(Some(log_id(i)))).collect();
        assert_eq!(got, want);
    });
}

#[test]
fn a_lone_commit_only_append_goes_out_after_the_linger() {
    raft_support::executor().run(async {
        let (mut session, input_tx) = Session::new(vec![append(1, 1, 100), commit_only(1)]).await;
        let double = Rc::clone(&session.double);
        let mut out = session.open().await;
        double.release(AppendEntriesResponse::Success);
        double.release(AppendEntriesResponse::Success);
        // The input stays open: only the linger sends the commit-only append.
        let first = out.next().await.unwrap().unwrap();
        assert_eq!(first, Ok(Some(log_id(1))));
        let second = out.next().await.unwrap().unwrap();
        assert_eq!(second, Ok(Some(log_id(1))));
        until("both requests recorded", || {
            double.arrived.borrow().len() >= 2
        })
        .await;
        assert_eq!(*double.arrived.borrow(), vec![1, 0], "sent on its own");
        drop(input_tx);
        assert!(drain(&mut out).await.is_empty());
    });
}

#[test]
fn a_conflict_on_the_carrier_is_the_held_requests_conflict_and_ends_the_stream() {
    raft_support::executor().run(async {
        let requests = vec![append(1, 1, 100), commit_only(1), append(2, 2, 100)];
        let (mut session, input_tx) = Session::new(requests).await;
        drop(input_tx);
        let double = Rc::clone(&session.double);
        let mut out = session.open().await;
        double.release(AppendEntriesResponse::Success);
        double.release(AppendEntriesResponse::Conflict);
        let got = drain(&mut out).await;
        assert_eq!(
            got,
            vec![
                Ok(Some(log_id(1))),
                Err(StreamAppendError::Conflict(log_id(1)))
            ]
        );
        // The server records arrivals in a task of its own, which may lag its answers;
        // a commit-only append sent on its own would show as a 0 between 1 and 2.
        until("both requests recorded", || {
            double.arrived.borrow().len() >= 2
        })
        .await;
        assert_eq!(*double.arrived.borrow(), vec![1, 2]);
    });
}
