//! A loom-aware stand-in for `tokio::sync::Notify`, with the part of its contract the mailbox
//! uses:
//!
//! * `notify_one` wakes the oldest waiter not yet notified, or leaves a permit for the next
//!   `notified()` future to look when there is none;
//! * `notify_waiters` completes every `notified()` future made before it (polled or not) and
//!   leaves no permit;
//! * `enable` makes a future a waiter without a waker (and takes a waiting permit);
//! * a future dropped after `notify_one` chose it passes the notification on.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use ::loom::sync::Mutex;

#[derive(Debug, Default)]
pub(crate) struct Notify {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    permit: bool,
    /// Bumped by each `notify_waiters`.
    round: usize,
    next_id: usize,
    waiters: Vec<Waiter>,
}

#[derive(Debug)]
struct Waiter {
    id: usize,
    waker: Option<Waker>,
    /// Chosen by a `notify_one`.
    notified: bool,
}

impl State {
    fn notify_one(&mut self) -> Option<Waker> {
        match self.waiters.iter_mut().find(|w| !w.notified) {
            Some(w) => {
                w.notified = true;
                w.waker.take()
            }
            None => {
                self.permit = true;
                None
            }
        }
    }

    fn remove(&mut self, id: usize) -> Option<Waiter> {
        let at = self.waiters.iter().position(|w| w.id == id)?;
        Some(self.waiters.remove(at))
    }
}

impl Notify {
    pub(crate) fn new() -> Self {
        Self::default()
    }

    pub(crate) fn notified(&self) -> Notified<'_> {
        let round = self.state.lock().unwrap().round;
        Notified {
            notify: self,
            round,
            id: None,
            done: false,
        }
    }

    pub(crate) fn notify_one(&self) {
        let waker = self.state.lock().unwrap().notify_one();
        if let Some(w) = waker {
            w.wake();
        }
    }

    pub(crate) fn notify_waiters(&self) {
        let waiters = {
            let mut st = self.state.lock().unwrap();
            st.round += 1;
            std::mem::take(&mut st.waiters)
        };
        for w in waiters {
            if let Some(waker) = w.waker {
                waker.wake();
            }
        }
    }
}

#[derive(Debug)]
pub(crate) struct Notified<'a> {
    notify: &'a Notify,
    round: usize,
    id: Option<usize>,
    done: bool,
}

impl Notified<'_> {
    pub(crate) fn enable(self: Pin<&mut Self>) {
        let _ = self.get_mut().look(None);
    }

    fn look(&mut self, waker: Option<&Waker>) -> Poll<()> {
        if self.done {
            return Poll::Ready(());
        }
        let mut st = self.notify.state.lock().unwrap();
        if st.round != self.round {
            if let Some(id) = self.id {
                st.remove(id);
            }
            self.done = true;
            return Poll::Ready(());
        }
        match self.id {
            None if st.permit => {
                st.permit = false;
                self.done = true;
                Poll::Ready(())
            }
            None => {
                let id = st.next_id;
                st.next_id += 1;
                st.waiters.push(Waiter {
                    id,
                    waker: waker.cloned(),
                    notified: false,
                });
                self.id = Some(id);
                Poll::Pending
            }
            Some(id) => {
                let at = st.waiters.iter().position(|w| w.id == id);
                let w = &mut st.waiters[at.expect("a waiter stays listed until notified")];
                if w.notified {
                    st.remove(id);
                    self.done = true;
                    return Poll::Ready(());
                }
                if let Some(waker) = waker {
                    w.waker = Some(waker.clone());
                }
                Poll::Pending
            }
        }
    }
}

impl Future for Notified<'_> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        self.get_mut().look(Some(cx.waker()))
    }
}

impl Drop for Notified<'_> {
    fn drop(&mut self) {
        let (Some(id), false) = (self.id, self.done) else {
            return;
        };
        let waker = {
            let mut st = self.notify.state.lock().unwrap();
            match st.remove(id) {
                // Chosen by `notify_one` but never told: pass it on.
                Some(w) if w.notified => st.notify_one(),
                _ => None,
            }
        };
        if let Some(w) = waker {
            w.wake();
        }
    }
}
