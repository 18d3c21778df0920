//! Reactors: OS threads, each running a single-threaded tokio runtime with a `LocalSet`.

use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use crate::error::BuildError;
use crate::wake::WakeFlag;

/// Work for a reactor, run on its thread inside its `LocalSet` (so it may `spawn_local`).
pub(crate) type Job = Box<dyn FnOnce() + Send>;

/// How many pending jobs (instance spawns) a reactor accepts before `deploy` waits.
const JOB_QUEUE: usize = 256;

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
        flag: Arc<WakeFlag>,
        spin: Duration,
    ) -> Result<Self, BuildError> {
        let mut builder = tokio::runtime::Builder::new_current_thread();
        builder.enable_all();
        let parked = flag.clone();
        builder.on_thread_park(move || parked.spin(spin));
        #[cfg(feature = "test-util")]
        builder.start_paused(paused);
        #[cfg(not(feature = "test-util"))]
        let _ = paused;
        let rt = builder
            .build()
            .map_err(|source| BuildError::Reactor { index, source })?;
        let handle = rt.handle().clone();
        let (jobs, mut rx) = mpsc::channel::<Job>(JOB_QUEUE);
        let stop = CancellationToken::new();
        let (exited_tx, exited) = oneshot::channel();
        let token = stop.clone();
        let thread = std::thread::Builder::new()
            .name(format!("{name}-{index}"))
            .spawn(move || {
                crate::wake::enter(flag);
                let local = tokio::task::LocalSet::new();
                local.block_on(&rt, async move {
                    loop {
                        tokio::select! {
                            biased;
                            () = token.cancelled() => break,
                            job = rx.recv() => match job {
                                Some(job) => job(),
                                None => break,
                            },
                        }
                    }
                });
                // Dropping the set drops every component still on this reactor.
                drop(local);
                drop(rt);
                let _ = exited_tx.send(());
            })
            .map_err(|source| BuildError::Reactor { index, source })?;
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
