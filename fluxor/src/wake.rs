//! Waking tasks on a reactor from other threads without a system call per wake-up.
//!
//! A tokio task woken from another thread is queued on its runtime, whose thread is then
//! unparked through the I/O driver: an `eventfd` write by the waking thread and an `epoll` turn
//! on the woken one, even when the woken reactor was about to look for work anyway. Fluxor's
//! own cross-thread wake-ups (a mailbox push, a reply) go through the target reactor's
//! [`Wakeups`] instead: the waker is queued there and the reactor wakes it on its own thread,
//! where waking a task is a push onto its run queue.
//!
//! * A reactor that runs out of work spins a short while before parking
//!   (`Builder::spin_before_park`), watching its queue: a wake-up queued meanwhile costs its
//!   sender no system call (waking a parked thread costs tens of microseconds on some machines,
//!   a virtual CPU that halted must be rescheduled).
//! * Otherwise the sender rings the reactor's doorbell (its main future's waker), once until the
//!   reactor answers: a busy reactor takes a whole batch of wake-ups for one ring.
//!
//! The two sides follow the store, fence, load pattern: the sender queues, then reads whether
//! the reactor watches; the reactor stops watching, then empties the queue. One of them always
//! sees the other, so no wake-up is left in the queue while its reactor sleeps.

use std::cell::RefCell;
use std::sync::atomic::{fence, AtomicBool, Ordering::SeqCst};
use std::sync::{Arc, OnceLock};
use std::task::Waker;
use std::time::{Duration, Instant};

use crossbeam_queue::SegQueue;

/// One reactor's queue of wake-ups handed to it by other threads.
#[derive(Debug, Default)]
pub(crate) struct Wakeups {
    queue: SegQueue<Waker>,
    /// The reactor is spinning, watching `queue`: senders need not ring.
    watching: AtomicBool,
    /// The doorbell was rung and the reactor has not answered yet.
    rung: AtomicBool,
    /// Wakes the reactor's main future, which empties the queue when polled.
    doorbell: OnceLock<Waker>,
}

impl Wakeups {
    /// Wakes `waker`, a task of this reactor: directly on the reactor's own thread, through
    /// the queue from any other.
    pub(crate) fn wake(&self, waker: Waker) {
        if self.is_current() {
            waker.wake();
            return;
        }
        self.queue.push(waker);
        fence(SeqCst);
        if !self.watching.load(SeqCst) && !self.rung.swap(true, SeqCst) {
            // No doorbell yet means the reactor has not polled its main future: its first poll
            // hangs the doorbell, clears `rung` and then empties the queue.
            if let Some(doorbell) = self.doorbell.get() {
                doorbell.wake_by_ref();
            }
        }
    }

    /// Called by the reactor before it parks: spins up to `spin` while its queue is empty, then
    /// wakes what it holds (which keeps the reactor from parking).
    pub(crate) fn before_park(&self, spin: Duration) {
        if !spin.is_zero() && self.queue.is_empty() {
            self.watching.store(true, SeqCst);
            let until = Instant::now() + spin;
            'spin: loop {
                for _ in 0..64 {
                    if !self.queue.is_empty() {
                        break 'spin;
                    }
                    std::hint::spin_loop();
                }
                if Instant::now() >= until {
                    break;
                }
            }
            self.watching.store(false, SeqCst);
            fence(SeqCst);
        }
        self.wake_queued();
    }

    /// Called by the reactor's main future each time it is polled: answers the doorbell (and
    /// hangs it, the first time) and wakes what the queue holds.
    pub(crate) fn answer(&self, doorbell: &Waker) {
        if self.doorbell.get().is_none() {
            let _ = self.doorbell.set(doorbell.clone());
        }
        self.rung.store(false, SeqCst);
        fence(SeqCst);
        self.wake_queued();
    }

    fn wake_queued(&self) {
        while let Some(waker) = self.queue.pop() {
            waker.wake();
        }
    }

    fn is_current(&self) -> bool {
        CURRENT.with(|c| {
            c.borrow()
                .as_ref()
                .is_some_and(|w| std::ptr::eq(&**w, self))
        })
    }
}

thread_local! {
    /// The wake-up queue of the reactor running on this thread, if any.
    static CURRENT: RefCell<Option<Arc<Wakeups>>> = const { RefCell::new(None) };
}

/// Marks this thread as the reactor owning `wakeups`.
pub(crate) fn enter(wakeups: Arc<Wakeups>) {
    CURRENT.with(|c| *c.borrow_mut() = Some(wakeups));
}

/// The wake-up queue of the reactor running on this thread.
pub(crate) fn current() -> Option<Arc<Wakeups>> {
    CURRENT.with(|c| c.borrow().clone())
}

/// Wakes `waker` through `wakeups` when its task lives on a reactor, directly otherwise.
pub(crate) fn wake_on(wakeups: Option<&Wakeups>, waker: Waker) {
    match wakeups {
        Some(w) => w.wake(waker),
        None => waker.wake(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;
    use std::task::Wake;

    struct Count(AtomicUsize);
    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, SeqCst);
        }
    }

    fn counter() -> (Arc<Count>, Waker) {
        let c = Arc::new(Count(AtomicUsize::new(0)));
        (c.clone(), Waker::from(c))
    }

    #[test]
    fn a_wake_from_another_thread_rings_once_until_answered() {
        let w = Wakeups::default();
        let (bell, doorbell) = counter();
        w.answer(&doorbell);
        let (task, waker) = counter();
        w.wake(waker.clone());
        w.wake(waker.clone());
        assert_eq!(bell.0.load(SeqCst), 1, "one ring for a batch");
        assert_eq!(task.0.load(SeqCst), 0, "the task waits for its reactor");
        w.answer(&doorbell);
        assert_eq!(task.0.load(SeqCst), 2, "answering wakes what was queued");
        w.wake(waker);
        assert_eq!(
            bell.0.load(SeqCst),
            2,
            "after an answer the next wake rings again"
        );
    }

    #[test]
    fn a_watching_reactor_is_not_rung() {
        let w = Wakeups::default();
        let (bell, doorbell) = counter();
        w.answer(&doorbell);
        let (task, waker) = counter();
        w.watching.store(true, SeqCst);
        w.wake(waker);
        assert_eq!(bell.0.load(SeqCst), 0);
        w.watching.store(false, SeqCst);
        w.before_park(Duration::ZERO);
        assert_eq!(task.0.load(SeqCst), 1, "parking wakes what was queued");
    }

    #[test]
    fn a_spinning_reactor_picks_up_a_wake_from_another_thread() {
        let w = Arc::new(Wakeups::default());
        let (task, waker) = counter();
        let spinner = {
            let w = w.clone();
            std::thread::spawn(move || w.before_park(Duration::from_secs(30)))
        };
        while !w.watching.load(SeqCst) {
            std::thread::yield_now();
        }
        w.wake(waker);
        spinner.join().unwrap();
        assert_eq!(task.0.load(SeqCst), 1);
    }

    #[test]
    fn on_its_own_thread_a_wake_is_direct() {
        let w = Arc::new(Wakeups::default());
        let (task, waker) = counter();
        std::thread::spawn({
            let w = w.clone();
            move || {
                enter(w.clone());
                w.wake(waker);
            }
        })
        .join()
        .unwrap();
        assert_eq!(task.0.load(SeqCst), 1);
        assert!(w.queue.is_empty());
    }
}
