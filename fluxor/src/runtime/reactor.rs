//! Reactors: OS threads, each running a single-threaded tokio runtime that also runs the
//! reactor's `!Send` tasks (a [`tokio::runtime::LocalRuntime`]).

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::task::{Context as TaskContext, Poll, Waker};
use std::thread::JoinHandle;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use crate::error::BuildError;
use crate::wake::{Spinner, Wakeups};

/// Work for a reactor, run on its thread inside its runtime (so it may `spawn_local`).
pub(crate) type Job = Box<dyn FnOnce() + Send>;

/// How many pending jobs (instance spawns) a reactor accepts before `deploy` waits.
const JOB_QUEUE: usize = 256;

/// Runs the jobs other threads send to a reactor, as one of its tasks. A sender wakes it
/// through the reactor's wake-up queue (see [`Bell`]), so a job for a spinning reactor costs
/// no system call. When every sender has gone, the reactor stops; when a job panics, the
/// reactor fails, as it would with the panic on its own thread.
async fn run_jobs(mut rx: mpsc::Receiver<Job>, wakeups: Arc<Wakeups>, exit: JobsExit) {
    let mut exit = exit;
    let mut bell: Option<Waker> = None;
    std::future::poll_fn(|cx| {
        let bell = match &bell {
            Some(bell) => bell,
            None => bell.insert(Waker::from(Arc::new(Bell {
                wakeups: wakeups.clone(),
                task: cx.waker().clone(),
            }))),
        };
        let mut cx = TaskContext::from_waker(bell);
        loop {
            match rx.poll_recv(&mut cx) {
                Poll::Ready(Some(job)) => job(),
                Poll::Ready(None) => return Poll::Ready(()),
                Poll::Pending => return Poll::Pending,
            }
        }
    })
    .await;
    exit.clean = true;
}

/// Stops the reactor when its job task ends, and marks it failed unless the task ended
/// cleanly (a job panicked: tokio drops the task's future after catching the panic).
struct JobsExit {
    stop: CancellationToken,
    failed: Arc<std::sync::atomic::AtomicBool>,
    clean: bool,
}

impl Drop for JobsExit {
    fn drop(&mut self) {
        if !self.clean {
            self.failed
                .store(true, std::sync::atomic::Ordering::Release);
        }
        self.stop.cancel();
    }
}

/// Wakes the job task of a reactor through its wake-up queue (directly on its own thread).
struct Bell {
    wakeups: Arc<Wakeups>,
    /// The job task's waker (any clone of it wakes the task).
    task: Waker,
}

impl std::task::Wake for Bell {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.wakeups.wake(self.task.clone());
    }
}

pub(crate) struct Reactor {
    pub(crate) index: usize,
    /// The reactor's tokio runtime.
    pub(crate) handle: tokio::runtime::Handle,
    jobs: mpsc::Sender<Job>,
    stop: CancellationToken,
    thread: Mutex<Option<JoinHandle<()>>>,
    exited: Mutex<Option<oneshot::Receiver<()>>>,
}

impl Reactor {
    pub(crate) fn spawn(
        index: usize,
        name: &str,
        paused: bool,
        wakeups: Arc<Wakeups>,
        spin: Duration,
    ) -> Result<Self, BuildError> {
        let (jobs, rx) = mpsc::channel::<Job>(JOB_QUEUE);
        let stop = CancellationToken::new();
        let (exited_tx, exited) = oneshot::channel();
        // A local runtime belongs to the thread that builds it: the reactor thread builds its
        // own and sends back its handle (or why it could not).
        let (started_tx, started) = std::sync::mpsc::sync_channel(1);
        let token = stop.clone();
        let thread = std::thread::Builder::new()
            .name(format!("{name}-{index}"))
            .spawn(move || {
                let mut builder = tokio::runtime::Builder::new_current_thread();
                builder.enable_all();
                // tokio has no park hook in a model-checking build (which runs no runtime).
                #[cfg(not(loom))]
                let parked = wakeups.clone();
                #[cfg(not(loom))]
                builder.on_thread_park(move || parked.before_park());
                #[cfg(feature = "test-util")]
                builder.start_paused(paused);
                let rt = match builder.build_local(tokio::runtime::LocalOptions::default()) {
                    Ok(rt) => rt,
                    Err(e) => {
                        let _ = started_tx.send(Err(e));
                        return;
                    }
                };
                if started_tx.send(Ok(rt.handle().clone())).is_err() {
                    return;
                }
                crate::wake::enter(wakeups.clone());
                rt.block_on(async move {
                    // A paused clock moves only when its reactor parks with no task woken
                    // since the last park: a spinner, which wakes itself, would hold it still.
                    if !spin.is_zero() && !paused {
                        tokio::task::spawn_local(Spinner::new(wakeups.clone(), spin));
                    }
                    let failed = Arc::new(std::sync::atomic::AtomicBool::new(false));
                    let exit = JobsExit {
                        stop: token.clone(),
                        failed: failed.clone(),
                        clean: false,
                    };
                    tokio::task::spawn_local(run_jobs(rx, wakeups.clone(), exit));
                    let cancelled = token.cancelled();
                    let mut cancelled = std::pin::pin!(cancelled);
                    std::future::poll_fn(|cx| {
                        wakeups.answer(cx.waker());
                        cancelled.as_mut().poll(cx)
                    })
                    .await;
                    if failed.load(std::sync::atomic::Ordering::Acquire) {
                        // A job panicked (its message is out already): the reactor's thread
                        // fails, so joining it reports the panic.
                        std::panic::resume_unwind(Box::new(format!(
                            "a job panicked on reactor {index}"
                        )));
                    }
                });
                // Dropping the runtime drops every component still on this reactor.
                drop(rt);
                let _ = exited_tx.send(());
            })
            .map_err(|source| BuildError::Reactor { index, source })?;
        let handle = match started.recv() {
            Ok(Ok(handle)) => handle,
            Ok(Err(source)) => return Err(BuildError::Reactor { index, source }),
            Err(_) => {
                return Err(BuildError::Reactor {
                    index,
                    source: std::io::Error::other("the reactor thread exited while starting"),
                })
            }
        };
        Ok(Reactor {
            index,
            handle,
            jobs,
            stop,
            thread: Mutex::new(Some(thread)),
            exited: Mutex::new(Some(exited)),
        })
    }

    /// Queues `job` on this reactor; `false` if the reactor has stopped.
    pub(crate) async fn run(&self, job: Job) -> bool {
        self.jobs.send(job).await.is_ok()
    }

    /// The reactor's thread has ended (it was stopped, or it panicked).
    pub(crate) fn is_finished(&self) -> bool {
        self.thread
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .is_none_or(JoinHandle::is_finished)
    }

    /// Asks the reactor thread to exit; it drops whatever components remain on it.
    pub(crate) fn signal_stop(&self) {
        self.stop.cancel();
    }

    /// Waits for the thread to exit until `deadline`. `Ok(true)` if it exited cleanly,
    /// `Ok(false)` if it panicked, `Err(())` if it is still running.
    pub(crate) async fn join_until(&self, deadline: tokio::time::Instant) -> Result<bool, ()> {
        let exited = self.exited.lock().unwrap_or_else(|e| e.into_inner()).take();
        let Some(exited) = exited else {
            return Ok(true);
        };
        if tokio::time::timeout_at(deadline, exited).await.is_err() {
            return Err(());
        }
        let thread = self.thread.lock().unwrap_or_else(|e| e.into_inner()).take();
        // The thread has signalled its last step, so joining returns at once.
        Ok(thread.is_none_or(|t| t.join().is_ok()))
    }
}

impl Drop for Reactor {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}
