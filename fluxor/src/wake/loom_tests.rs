//! Models of the cross-reactor wake-up queue, checked with loom (`cargo xtask loom`).
//!
//! Sender threads hand the production [`Wakeups`] a task's waker while a model reactor runs
//! the reactor's side of the protocol: its main future answering the doorbell, its
//! [`Spinner`], and the park hook (`before_park`). The model reactor parks (its main future,
//! under `loom::future::block_on`, returns `Pending`) only when nothing is ready, and only a
//! ring of the doorbell polls it again, so a wake-up left in the queue while nobody rings
//! shows as a deadlock.
//!
//! Covered: `wake` (queue, fence, `watching`, the `rung` doorbell) against `answer`, against a
//! spinner that watches and rests, and against `before_park`; the doorbell hung by the first
//! `answer`, before or after the first wake-up. Not covered: crossbeam's queue itself (the
//! shim's stand-in is a locked `VecDeque`), the spinner's clock (its `spin` is zero here: any
//! poll without a wake-up may rest), tokio's scheduling around the park hook (modelled by the
//! loop below), and a wake on the reactor's own thread (the direct path after `enter`).

use std::future::{poll_fn, Future as _};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

use loom::future::block_on;
use loom::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use loom::thread;

use super::{Spinner, Wakeups};

/// A waker of a task on the model reactor (woken on the reactor's thread only): records its
/// wake-ups.
#[derive(Default)]
struct Flag {
    woken: AtomicUsize,
    ready: AtomicBool,
}

impl Wake for Flag {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.woken.fetch_add(1, SeqCst);
        self.ready.store(true, SeqCst);
    }
}

/// The model reactor.
#[derive(Default)]
struct Reactor {
    wakeups: Arc<Wakeups>,
    /// The tasks whose wake-ups go through `wakeups` (one waker for all).
    task: Arc<Flag>,
    spinner: Arc<Flag>,
}

impl Reactor {
    fn task_waker(&self) -> Waker {
        Waker::from(self.task.clone())
    }

    /// Runs the reactor until the task was woken `wakes` times. Its main future, driven by
    /// `block_on` (whose waker is the doorbell: only a ring or a spurious wake-up polls it
    /// again), answers the doorbell each time it is polled; then the reactor runs its spinner
    /// while that is woken, and calls the park hook when nothing else is ready. When that
    /// made nothing ready either, the main future returns `Pending` and the reactor parks.
    fn run(&self, wakes: usize, mut spinner: Option<Spinner>) {
        let w = &*self.wakeups;
        let spinner_waker = Waker::from(self.spinner.clone());
        self.spinner.ready.store(spinner.is_some(), SeqCst);
        let done = || self.task.woken.load(SeqCst) >= wakes;
        block_on(poll_fn(|cx| {
            w.answer(cx.waker());
            loop {
                if done() {
                    return Poll::Ready(());
                }
                if let Some(s) = spinner.as_mut() {
                    if self.spinner.ready.swap(false, SeqCst) {
                        let mut scx = Context::from_waker(&spinner_waker);
                        assert!(Pin::new(s).poll(&mut scx).is_pending());
                        continue;
                    }
                }
                w.before_park();
                if !done() && !self.spinner.ready.load(SeqCst) {
                    return Poll::Pending;
                }
            }
        }));
    }
}

/// Two other threads wake tasks of a reactor with no spinner, whose main future hangs the
/// doorbell on its first poll, possibly after a wake-up was queued: every wake-up is woken on
/// the reactor, none is left in the queue.
#[test]
fn a_wake_from_another_thread_is_never_lost() {
    loom::model(|| {
        let reactor = Reactor::default();
        let senders: Vec<_> = (0..2)
            .map(|_| {
                let w = reactor.wakeups.clone();
                let waker = reactor.task_waker();
                thread::spawn(move || w.wake(waker))
            })
            .collect();
        reactor.run(2, None);
        for s in senders {
            s.join().unwrap();
        }
        assert!(reactor.wakeups.queue.is_empty());
    });
}

/// A reactor whose spinner watches the queue and may rest at any poll, and whose park hook
/// wakes what is queued and restarts the spinner: each wake-up from the two other threads is
/// picked up by the spinner or the park hook, or it rings the doorbell.
#[test]
fn a_wake_reaches_a_reactor_whose_spinner_rests() {
    loom::model(|| {
        let reactor = Reactor::default();
        let senders: Vec<_> = (0..2)
            .map(|_| {
                let w = reactor.wakeups.clone();
                let waker = reactor.task_waker();
                thread::spawn(move || w.wake(waker))
            })
            .collect();
        let spinner = Spinner::new(reactor.wakeups.clone(), Duration::ZERO);
        reactor.run(2, Some(spinner));
        for s in senders {
            s.join().unwrap();
        }
        assert!(reactor.wakeups.queue.is_empty());
    });
}
