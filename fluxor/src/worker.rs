//! The worker pool: a fixed set of OS threads for blocking work, fed by a bounded queue.
//!
//! Reactors must never block. Work that does — hashing a password, a synchronous file or
//! database call — goes to the pool with [`Context::execute_blocking`](crate::Context::execute_blocking)
//! (or [`WorkerPool::try_submit`] and [`WorkerPool::submit_timeout`]); the caller awaits a
//! [`BlockingTask`] for the result while its reactor serves other components.
//!
//! The queue is bounded by a semaphore: a full queue rejects at once
//! ([`BlockingError::Rejected`]) or, with `submit_timeout`, waits for room up to a deadline.
//! A queue permit is held by each queued task and released when a worker picks it up.

use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::task::{Context as TaskContext, Poll};
use std::thread::JoinHandle;
use std::time::Duration;

use serde::Serialize;
use tokio::sync::{oneshot, OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;

use crate::util::panic_message;

/// Why a blocking task produced no result.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BlockingError {
    /// The worker queue is full (or stayed full until the deadline).
    #[error(
        "the worker queue is full; retry later, use `submit_timeout`, or raise `worker_queue`"
    )]
    Rejected,
    /// The task was cancelled before it started: its caller went away, its component stopped,
    /// or the runtime shut down.
    #[error("the blocking task was cancelled before it started")]
    Cancelled,
    /// The task panicked; the worker thread survived.
    #[error("the blocking task {0}")]
    Panicked(String),
}

enum Job {
    Run(Box<dyn FnOnce() + Send>),
    Exit,
}

#[derive(Debug, Default)]
struct Stats {
    busy: AtomicUsize,
    queued: AtomicUsize,
    completed: AtomicU64,
    rejected: AtomicU64,
    cancelled: AtomicU64,
    panicked: AtomicU64,
}

/// A snapshot of the pool's counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct WorkerStats {
    /// Worker threads.
    pub threads: usize,
    /// Queue bound.
    pub capacity: usize,
    /// Tasks running now.
    pub busy: usize,
    /// Tasks waiting for a worker.
    pub queued: usize,
    /// Tasks that ran to completion (including those that panicked).
    pub completed: u64,
    /// Submissions refused because the queue was full.
    pub rejected: u64,
    /// Tasks dropped before they started.
    pub cancelled: u64,
    /// Tasks that panicked.
    pub panicked: u64,
}

/// Handle to the runtime's worker pool. Cheap to clone.
#[derive(Clone)]
pub struct WorkerPool {
    inner: Arc<PoolInner>,
}

struct PoolInner {
    tx: mpsc::Sender<Job>,
    room: Arc<Semaphore>,
    capacity: usize,
    threads: Mutex<Vec<JoinHandle<()>>>,
    thread_count: usize,
    live: Arc<AtomicUsize>,
    exited: Arc<tokio::sync::Notify>,
    cancel: CancellationToken,
    stats: Arc<Stats>,
}

impl fmt::Debug for WorkerPool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WorkerPool")
            .field("stats", &self.stats())
            .finish()
    }
}

impl WorkerPool {
    pub(crate) fn new(threads: usize, capacity: usize, name: &str) -> std::io::Result<Self> {
        let (tx, rx) = mpsc::channel::<Job>();
        let rx = Arc::new(Mutex::new(rx));
        let live = Arc::new(AtomicUsize::new(threads));
        let exited = Arc::new(tokio::sync::Notify::new());
        let mut handles = Vec::with_capacity(threads);
        for i in 0..threads {
            let rx = rx.clone();
            let live = live.clone();
            let exited = exited.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("{name}-worker-{i}"))
                .spawn(move || {
                    loop {
                        // The lock is held only while waiting for the next job.
                        let job = rx.lock().unwrap_or_else(|e| e.into_inner()).recv();
                        match job {
                            Ok(Job::Run(job)) => job(),
                            Ok(Job::Exit) | Err(_) => break,
                        }
                    }
                    live.fetch_sub(1, Ordering::AcqRel);
                    exited.notify_waiters();
                });
            match spawned {
                Ok(h) => handles.push(h),
                Err(e) => {
                    for _ in 0..handles.len() {
                        let _ = tx.send(Job::Exit);
                    }
                    return Err(e);
                }
            }
        }
        Ok(WorkerPool {
            inner: Arc::new(PoolInner {
                tx,
                room: Arc::new(Semaphore::new(capacity)),
                capacity,
                threads: Mutex::new(handles),
                thread_count: threads,
                live,
                exited,
                cancel: CancellationToken::new(),
                stats: Arc::default(),
            }),
        })
    }

    /// Queues `f` if there is room, without waiting. `f` receives a cancellation token that is
    /// cancelled when the runtime shuts down.
    ///
    /// # Errors
    /// [`BlockingError::Rejected`] when the queue is full; [`BlockingError::Cancelled`] after
    /// shutdown.
    pub fn try_submit<T, F>(&self, f: F) -> Result<BlockingTask<T>, BlockingError>
    where
        T: Send + 'static,
        F: FnOnce(&CancellationToken) -> T + Send + 'static,
    {
        self.try_submit_with(self.inner.cancel.clone(), None, f)
    }

    /// Queues `f`, waiting up to `timeout` for room in the queue.
    ///
    /// # Errors
    /// [`BlockingError::Rejected`] when no room appeared in time; [`BlockingError::Cancelled`]
    /// after shutdown.
    pub async fn submit_timeout<T, F>(
        &self,
        f: F,
        timeout: Duration,
    ) -> Result<BlockingTask<T>, BlockingError>
    where
        T: Send + 'static,
        F: FnOnce(&CancellationToken) -> T + Send + 'static,
    {
        let permit =
            match tokio::time::timeout(timeout, self.inner.room.clone().acquire_owned()).await {
                Ok(Ok(p)) => p,
                Ok(Err(_closed)) => return Err(BlockingError::Cancelled),
                Err(_elapsed) => {
                    self.inner.stats.rejected.fetch_add(1, Ordering::Relaxed);
                    return Err(BlockingError::Rejected);
                }
            };
        Ok(self.enqueue(permit, self.inner.cancel.clone(), None, f))
    }

    /// Runs `f` on a worker and resolves to its result; when the queue is full the returned
    /// task resolves at once to [`BlockingError::Rejected`].
    pub fn execute<T, F>(&self, f: F) -> BlockingTask<T>
    where
        T: Send + 'static,
        F: FnOnce() -> T + Send + 'static,
    {
        self.try_submit(move |_| f())
            .unwrap_or_else(BlockingTask::failed)
    }

    /// Queues `f`, waiting for room as long as it takes (used for work already accepted, such
    /// as a worker component's next message).
    pub(crate) async fn submit_wait<T, F>(&self, f: F) -> Result<BlockingTask<T>, BlockingError>
    where
        T: Send + 'static,
        F: FnOnce(&CancellationToken) -> T + Send + 'static,
    {
        let permit = self
            .inner
            .room
            .clone()
            .acquire_owned()
            .await
            .map_err(|_closed| BlockingError::Cancelled)?;
        Ok(self.enqueue(permit, self.inner.cancel.clone(), None, f))
    }

    /// The pool's counters.
    pub fn stats(&self) -> WorkerStats {
        let s = &self.inner.stats;
        WorkerStats {
            threads: self.inner.thread_count,
            capacity: self.inner.capacity,
            busy: s.busy.load(Ordering::Relaxed),
            queued: s.queued.load(Ordering::Relaxed),
            completed: s.completed.load(Ordering::Relaxed),
            rejected: s.rejected.load(Ordering::Relaxed),
            cancelled: s.cancelled.load(Ordering::Relaxed),
            panicked: s.panicked.load(Ordering::Relaxed),
        }
    }

    pub(crate) fn try_submit_with<T, F>(
        &self,
        token: CancellationToken,
        lane: Option<&Lane>,
        f: F,
    ) -> Result<BlockingTask<T>, BlockingError>
    where
        T: Send + 'static,
        F: FnOnce(&CancellationToken) -> T + Send + 'static,
    {
        if self.inner.cancel.is_cancelled() {
            return Err(BlockingError::Cancelled);
        }
        match self.inner.room.clone().try_acquire_owned() {
            Ok(permit) => Ok(self.enqueue(permit, token, lane, f)),
            Err(_) => {
                self.inner.stats.rejected.fetch_add(1, Ordering::Relaxed);
                Err(BlockingError::Rejected)
            }
        }
    }

    fn enqueue<T, F>(
        &self,
        permit: OwnedSemaphorePermit,
        token: CancellationToken,
        lane: Option<&Lane>,
        f: F,
    ) -> BlockingTask<T>
    where
        T: Send + 'static,
        F: FnOnce(&CancellationToken) -> T + Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        let stats = self.inner.stats.clone();
        let pool_cancel = self.inner.cancel.clone();
        stats.queued.fetch_add(1, Ordering::Relaxed);
        let job: Box<dyn FnOnce() + Send> = Box::new(move || {
            drop(permit);
            stats.queued.fetch_sub(1, Ordering::Relaxed);
            if pool_cancel.is_cancelled() || token.is_cancelled() || tx.is_closed() {
                stats.cancelled.fetch_add(1, Ordering::Relaxed);
                let _ = tx.send(Err(BlockingError::Cancelled));
                return;
            }
            stats.busy.fetch_add(1, Ordering::Relaxed);
            let result = std::panic::catch_unwind(AssertUnwindSafe(|| f(&token)));
            stats.busy.fetch_sub(1, Ordering::Relaxed);
            stats.completed.fetch_add(1, Ordering::Relaxed);
            let _ = tx.send(result.map_err(|p| {
                stats.panicked.fetch_add(1, Ordering::Relaxed);
                BlockingError::Panicked(panic_message(&*p))
            }));
        });
        match lane {
            None => self.send(Job::Run(job)),
            Some(lane) => lane.push(self, job),
        }
        BlockingTask { state: Ok(rx) }
    }

    fn send(&self, job: Job) {
        if let Err(mpsc::SendError(Job::Run(job))) = self.inner.tx.send(job) {
            // Every worker has exited (after shutdown). With the pool cancelled, the job only
            // takes its cancellation path, so running it here does no blocking work.
            self.inner.cancel.cancel();
            job();
        }
    }

    /// Cancels queued tasks and waits until `deadline` for running ones to finish. Returns how
    /// many worker threads were still busy at the deadline.
    pub(crate) async fn shutdown(&self, deadline: tokio::time::Instant) -> usize {
        self.inner.cancel.cancel();
        self.inner.room.close();
        for _ in 0..self.inner.thread_count {
            let _ = self.inner.tx.send(Job::Exit);
        }
        // Idle threads exit as soon as they see the exit job: give them a moment even when
        // the deadline has passed already (a stop that used it all), so that only threads
        // still running a task are reported.
        let until = deadline.max(tokio::time::Instant::now() + EXIT_GRACE);
        loop {
            let notified = self.inner.exited.notified();
            if self.inner.live.load(Ordering::Acquire) == 0 {
                break;
            }
            if tokio::time::timeout_at(until, notified).await.is_err() {
                return self.inner.stats.busy.load(Ordering::Acquire);
            }
        }
        let handles =
            std::mem::take(&mut *self.inner.threads.lock().unwrap_or_else(|e| e.into_inner()));
        for h in handles {
            let _ = h.join();
        }
        0
    }
}

/// How long an idle worker thread gets to exit at shutdown, past the deadline if need be.
const EXIT_GRACE: Duration = Duration::from_millis(100);

impl Drop for PoolInner {
    fn drop(&mut self) {
        self.cancel.cancel();
        for _ in 0..self.thread_count {
            let _ = self.tx.send(Job::Exit);
        }
    }
}

/// A per-component lane: tasks submitted through it run one after another in submission order.
/// Its queue is made on first use, so an instance that never submits through it pays nothing.
#[derive(Default)]
pub(crate) struct Lane {
    state: std::sync::OnceLock<Arc<Mutex<LaneState>>>,
}

#[derive(Default)]
struct LaneState {
    jobs: VecDeque<Box<dyn FnOnce() + Send>>,
    running: bool,
}

impl Lane {
    fn push(&self, pool: &WorkerPool, job: Box<dyn FnOnce() + Send>) {
        let state = self.state.get_or_init(Arc::default);
        let start = {
            let mut s = state.lock().unwrap_or_else(|e| e.into_inner());
            s.jobs.push_back(job);
            !std::mem::replace(&mut s.running, true)
        };
        if start {
            let state = state.clone();
            pool.send(Job::Run(Box::new(move || loop {
                let next = {
                    let mut s = state.lock().unwrap_or_else(|e| e.into_inner());
                    let next = s.jobs.pop_front();
                    if next.is_none() {
                        s.running = false;
                    }
                    next
                };
                match next {
                    Some(job) => job(),
                    None => break,
                }
            })));
        }
    }
}

/// The result of a blocking task, to `.await`.
///
/// Dropping it before the task starts cancels the task: it never runs.
#[must_use = "a blocking task is cancelled if dropped before it starts"]
pub struct BlockingTask<T> {
    state: Result<oneshot::Receiver<Result<T, BlockingError>>, Option<BlockingError>>,
}

impl<T> fmt::Debug for BlockingTask<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BlockingTask")
            .field("failed", &self.state.is_err())
            .finish()
    }
}

impl<T> BlockingTask<T> {
    pub(crate) fn failed(e: BlockingError) -> Self {
        BlockingTask {
            state: Err(Some(e)),
        }
    }
}

impl<T> Future for BlockingTask<T> {
    type Output = Result<T, BlockingError>;

    fn poll(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Self::Output> {
        match &mut self.get_mut().state {
            Ok(rx) => Pin::new(rx)
                .poll(cx)
                .map(|r| r.unwrap_or(Err(BlockingError::Cancelled))),
            Err(e) => Poll::Ready(Err(e.take().unwrap_or(BlockingError::Cancelled))),
        }
    }
}
