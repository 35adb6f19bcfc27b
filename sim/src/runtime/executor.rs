//! The single-threaded, deterministic task executor of a simulation.
//!
//! Owns every spawned task, the ready queue and the wake-up queue.
//!
//! Invariants:
//! - Exactly one thread ever touches an executor. Wakers are `Send` (the `Waker` contract),
//!   but waking one from any other thread panics: a real thread inside a simulated run
//!   would make scheduling depend on the OS.
//! - The ready queue is FIFO by poll (the tasks one poll woke join it in task-id order,
//!   whatever order they were woken in), or (when `shuffle` is on) a choice drawn from the
//!   scheduler's seeded RNG stream; either way the same seed polls tasks in the same order.
//! - A task carries a *tag* (the simulated node it belongs to, 0 = harness and network),
//!   inherited by every task it spawns. [`Executor::kill_tag`] drops every task of a tag
//!   without polling it again: that is how a node crashes.
//! - A dropped `JoinHandle` never cancels its task (openraft expects tokio's detached
//!   semantics); a killed task resolves its handle to [`SimJoinError::Cancelled`].
//! - A panic inside a task is caught at the task boundary, reported through the handle
//!   and recorded in [`Executor::panics`] so the harness can fail the seed.

use std::cell::Cell;
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::collections::BTreeSet;
use std::collections::VecDeque;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::Mutex;
use std::task::Context;
use std::task::Poll;
use std::task::Wake;
use std::task::Waker;
use std::thread::ThreadId;

use futures::FutureExt;

/// Id of a task; `MAIN` is the future given to `block_on`.
pub type TaskId = u64;
/// The id of the `block_on` future.
pub const MAIN: TaskId = 0;
/// Which simulated node a task belongs to; 0 is the harness and the network.
pub type Tag = u64;

/// Why awaiting a spawned task produced no value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SimJoinError {
    /// The task panicked; the message is the panic payload when it was a string.
    #[error("task panicked: {0}")]
    Panicked(String),
    /// The task was killed (its node crashed) before it completed.
    #[error("task was cancelled (its node crashed) before it completed")]
    Cancelled,
}

struct WakeQueue {
    owner: ThreadId,
    woken: Mutex<Vec<TaskId>>,
}

struct TaskWaker {
    id: TaskId,
    queue: Arc<WakeQueue>,
}

impl Wake for TaskWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        assert_eq!(
            std::thread::current().id(),
            self.queue.owner,
            "a simulated task was woken from another thread: real threads break determinism"
        );
        match self.queue.woken.lock() {
            Ok(mut woken) => woken.push(self.id),
            Err(poisoned) => poisoned.into_inner().push(self.id),
        }
    }
}

struct Task {
    tag: Tag,
    /// `None` while the task is being polled.
    future: Option<Pin<Box<dyn Future<Output = ()>>>>,
    waker: Waker,
}

/// The executor: tasks, ready queue, wake queue. Lives in the thread-local simulation
/// context; every method takes `&self` (interior mutability, never borrowed across a poll).
pub struct Executor {
    queue: Arc<WakeQueue>,
    tasks: RefCell<BTreeMap<TaskId, Task>>,
    ready: RefCell<VecDeque<TaskId>>,
    queued: RefCell<BTreeSet<TaskId>>,
    next_id: Cell<TaskId>,
    current_tag: Cell<Tag>,
    main_waker: Waker,
    panics: RefCell<Vec<String>>,
    polls: Cell<u64>,
}

impl std::fmt::Debug for Executor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Executor")
            .field("tasks", &self.tasks.borrow().len())
            .field("ready", &self.ready.borrow().len())
            .field("polls", &self.polls.get())
            .finish()
    }
}

impl Executor {
    /// An executor owned by the calling thread.
    pub fn new() -> Self {
        let queue = Arc::new(WakeQueue {
            owner: std::thread::current().id(),
            woken: Mutex::new(Vec::new()),
        });
        let main_waker = Waker::from(Arc::new(TaskWaker {
            id: MAIN,
            queue: queue.clone(),
        }));
        Executor {
            queue,
            tasks: RefCell::new(BTreeMap::new()),
            ready: RefCell::new(VecDeque::from([MAIN])),
            queued: RefCell::new(BTreeSet::from([MAIN])),
            next_id: Cell::new(MAIN + 1),
            current_tag: Cell::new(0),
            main_waker,
            panics: RefCell::new(Vec::new()),
            polls: Cell::new(0),
        }
    }

    /// The waker of the `block_on` future.
    pub fn main_waker(&self) -> &Waker {
        &self.main_waker
    }

    /// Tag of the task being polled (0 outside tasks).
    pub fn current_tag(&self) -> Tag {
        self.current_tag.get()
    }

    /// Panic messages of every task that panicked so far.
    pub fn panics(&self) -> Vec<String> {
        self.panics.borrow().clone()
    }

    /// Number of polls so far (tasks and main).
    pub fn polls(&self) -> u64 {
        self.polls.get()
    }

    /// Number of live tasks.
    pub fn task_count(&self) -> usize {
        self.tasks.borrow().len()
    }

    /// Spawn `future` with the tag of the current task.
    pub fn spawn<F>(&self, future: F) -> (TaskId, SimJoinHandle<F::Output>)
    where
        F: Future + 'static,
        F::Output: 'static,
    {
        self.spawn_tagged(self.current_tag.get(), future)
    }

    /// Spawn `future` as a task of node `tag`.
    pub fn spawn_tagged<F>(&self, tag: Tag, future: F) -> (TaskId, SimJoinHandle<F::Output>)
    where
        F: Future + 'static,
        F::Output: 'static,
    {
        let id = self.next_id.get();
        self.next_id.set(id + 1);
        let state = Rc::new(RefCell::new(JoinState {
            done: false,
            result: None,
            waker: None,
        }));
        let cell = TaskCell {
            future: Box::pin(AssertUnwindSafe(future).catch_unwind()),
            state: state.clone(),
            panics: PanicSink,
        };
        let waker = Waker::from(Arc::new(TaskWaker {
            id,
            queue: self.queue.clone(),
        }));
        self.tasks.borrow_mut().insert(
            id,
            Task {
                tag,
                future: Some(Box::pin(cell)),
                waker,
            },
        );
        self.enqueue(id);
        (id, SimJoinHandle { state })
    }

    /// Make the `block_on` future ready (at the start of a `block_on`).
    pub fn enqueue_main(&self) {
        self.enqueue(MAIN);
    }

    fn enqueue(&self, id: TaskId) {
        if self.queued.borrow_mut().insert(id) {
            self.ready.borrow_mut().push_back(id);
        }
    }

    /// Move the task ids woken since the last drain (one poll's worth) to the back of the
    /// ready queue, in task-id order, without duplicates.
    ///
    /// Sorted, not in wake order, because the order in which one poll wakes several tasks
    /// is not always ours to fix: `tokio::sync::watch` spreads its waiters over 8 `Notify`
    /// slots chosen by tokio's randomly seeded thread-local RNG whenever tokio's `rt` or
    /// `macros` feature is on (as it is in a workspace-wide build), and wakes them slot by
    /// slot. Task ids are assigned in spawn order, which the seed fixes.
    pub fn drain_woken(&self) {
        let mut woken = match self.queue.woken.lock() {
            Ok(mut w) => std::mem::take(&mut *w),
            Err(poisoned) => std::mem::take(&mut *poisoned.into_inner()),
        };
        woken.sort_unstable();
        for id in woken {
            self.enqueue(id);
        }
    }

    /// Whether any task (or main) is ready to be polled.
    pub fn has_ready(&self) -> bool {
        !self.ready.borrow().is_empty()
    }

    /// Take the next ready task: the front of the queue, or the `choice`-th one.
    pub fn pop_ready(&self, choice: Option<u64>) -> Option<TaskId> {
        let mut ready = self.ready.borrow_mut();
        let id = match choice {
            Some(c) if !ready.is_empty() => {
                let len = u64::try_from(ready.len()).unwrap_or(u64::MAX);
                let at = usize::try_from(c % len).unwrap_or(0);
                ready.remove(at)
            }
            _ => ready.pop_front(),
        }?;
        self.queued.borrow_mut().remove(&id);
        Some(id)
    }

    /// Number of ready tasks.
    pub fn ready_len(&self) -> usize {
        self.ready.borrow().len()
    }

    /// Poll task `id` once (a killed or finished task is skipped). Returns whether it ran.
    pub fn poll_task(&self, id: TaskId) -> bool {
        let taken = {
            let mut tasks = self.tasks.borrow_mut();
            tasks
                .get_mut(&id)
                .and_then(|t| t.future.take().map(|f| (f, t.waker.clone(), t.tag)))
        };
        let Some((mut future, waker, tag)) = taken else {
            return false;
        };
        self.polls.set(self.polls.get() + 1);
        let outer_tag = self.current_tag.replace(tag);
        let mut cx = Context::from_waker(&waker);
        let poll = future.as_mut().poll(&mut cx);
        self.current_tag.set(outer_tag);
        let finished = {
            let mut tasks = self.tasks.borrow_mut();
            match (poll, tasks.get_mut(&id)) {
                (Poll::Pending, Some(task)) => {
                    task.future = Some(future);
                    None
                }
                (_, Some(_)) => {
                    tasks.remove(&id);
                    Some(future)
                }
                // Killed during its own poll: drop it below.
                (_, None) => Some(future),
            }
        };
        // Dropped outside the borrow: a future's Drop may spawn or wake.
        drop(finished);
        true
    }

    /// Count one poll of the main future.
    pub fn count_main_poll(&self) {
        self.polls.set(self.polls.get() + 1);
    }

    /// Drop every task of node `tag` (a crash). Returns how many tasks were killed.
    pub fn kill_tag(&self, tag: Tag) -> usize {
        assert_ne!(tag, 0, "the harness tag cannot be killed");
        let killed: Vec<Task> = {
            let mut tasks = self.tasks.borrow_mut();
            let ids: Vec<TaskId> = tasks
                .iter()
                .filter(|(_, t)| t.tag == tag)
                .map(|(id, _)| *id)
                .collect();
            ids.iter().filter_map(|id| tasks.remove(id)).collect()
        };
        let n = killed.len();
        // Dropping a task's future may wake others or spawn: no borrow is held here.
        drop(killed);
        n
    }

    /// Drop every task (end of a run), so no future outlives the simulation context.
    pub fn kill_all(&self) {
        loop {
            let all: Vec<Task> = {
                let mut tasks = self.tasks.borrow_mut();
                std::mem::take(&mut *tasks).into_values().collect()
            };
            if all.is_empty() {
                break;
            }
            drop(all);
        }
    }
}

impl Default for Executor {
    fn default() -> Self {
        Self::new()
    }
}

struct JoinState<T> {
    done: bool,
    result: Option<Result<T, SimJoinError>>,
    waker: Option<Waker>,
}

impl<T> JoinState<T> {
    fn complete(&mut self, result: Result<T, SimJoinError>) {
        if !self.done {
            self.done = true;
            self.result = Some(result);
            if let Some(w) = self.waker.take() {
                w.wake();
            }
        }
    }
}

/// Records a task panic in the simulation context (no state: it looks the context up).
struct PanicSink;

impl PanicSink {
    fn record(&self, msg: &str) {
        super::context::try_with(|sim| sim.executor.panics.borrow_mut().push(msg.to_string()));
    }
}

struct TaskCell<T> {
    future: Pin<Box<dyn Future<Output = std::thread::Result<T>>>>,
    state: Rc<RefCell<JoinState<T>>>,
    panics: PanicSink,
}

impl<T> Future for TaskCell<T> {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        match self.future.as_mut().poll(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Ok(value)) => {
                self.state.borrow_mut().complete(Ok(value));
                Poll::Ready(())
            }
            Poll::Ready(Err(payload)) => {
                let msg = panic_message(&*payload);
                self.panics.record(&msg);
                self.state
                    .borrow_mut()
                    .complete(Err(SimJoinError::Panicked(msg)));
                Poll::Ready(())
            }
        }
    }
}

impl<T> Drop for TaskCell<T> {
    fn drop(&mut self) {
        // Not completed = killed: tell whoever awaits the handle.
        if let Ok(mut state) = self.state.try_borrow_mut() {
            state.complete(Err(SimJoinError::Cancelled));
        }
    }
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&'static str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "non-string panic payload".to_string()
    }
}

/// Handle to a spawned task; resolves to its output or to why there is none. Dropping it
/// leaves the task running.
pub struct SimJoinHandle<T> {
    state: Rc<RefCell<JoinState<T>>>,
}

impl<T> std::fmt::Debug for SimJoinHandle<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimJoinHandle")
            .field("done", &self.state.borrow().done)
            .finish()
    }
}

impl<T> Future for SimJoinHandle<T> {
    type Output = Result<T, SimJoinError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut state = self.state.borrow_mut();
        match state.result.take() {
            Some(r) => Poll::Ready(r),
            None => {
                state.waker = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    }
}
