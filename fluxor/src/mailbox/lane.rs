//! The owner's lane: messages pushed on the thread of the reactor that receives them.
//!
//! A sender running on the receiver's own reactor (a component telling another component of
//! its reactor, the common case of a same-reactor pipeline) needs no lock: nothing else on
//! that thread runs while it pushes, and no other thread touches the lane. Such a push puts
//! the message in the lane, a plain queue only the owner thread reads and writes, and wakes
//! the receiver directly when it waits (its waker is kept in the lane too).
//!
//! The bound still covers both queues. `Chan::taken` counts what the owner thread holds: the
//! receiver's batch, the lane, and slots reserved for the lane. A sender on the owner thread
//! reserves slots under the mailbox lock, several at once (a 32nd of the bound), where the
//! other threads' pushes count them, and its next pushes use them without the lock or any
//! shared write. Nothing goes past the bound; another thread's push may find up to that many
//! slots reserved and not used yet, and they are given back when the receiver's batch ends
//! while a sender waits for room.
//!
//! Order. A push goes into the lane only while the shared queue is empty, and the receiver
//! takes the lane before the shared queue. So when one push happened before another (the
//! second sender learned of the first message, say from its reply), the first message is
//! received first, whichever queues the two took: a shared message that came first was
//! already taken when the lane was used, and a lane message that came first is taken before
//! whatever the shared queue got after it.
//!
//! This is the one module of the crate with `unsafe` code. The lane is reached only through
//! an [`Owner`], which exists only on the thread where `Wakeups::is_current` holds for the
//! lane's reactor (one thread: the reactor's), cannot leave that thread, and reaches the
//! contents only for plain moves of messages and wakers; wakers are cloned, woken and dropped
//! outside, so no code of anyone else's runs while the contents are borrowed.

#![allow(unsafe_code)]

use std::collections::VecDeque;
use std::marker::PhantomData;
use std::sync::Arc;
use std::task::Waker;

use crate::loom::cell::UnsafeCell;
use crate::wake::Wakeups;

/// The lane of one mailbox.
pub(super) struct Lane<T> {
    /// The receiving reactor's wake-up queue; `None`: the mailbox has no lane.
    owner: Option<Arc<Wakeups>>,
    cell: UnsafeCell<Owned<T>>,
}

/// What the owner thread keeps in the lane.
struct Owned<T> {
    /// Messages pushed on the owner thread, in order.
    queue: VecDeque<T>,
    /// The receiver's waker, kept between waits (a waker is cloned only when it changes).
    waker: Option<Waker>,
    /// The receiver waits: the next push wakes it.
    idle: bool,
}

// SAFETY: the contents are reached only through an `Owner`, which exists only on the one
// thread that owns the lane, so two threads never reach them; a message moves between threads
// only with its mailbox, so `T: Send` is what is needed.
unsafe impl<T: Send> Sync for Lane<T> {}

impl<T> Lane<T> {
    /// A lane owned by the reactor of `owner` (no lane with `None`).
    pub(super) fn new(owner: Option<Arc<Wakeups>>) -> Self {
        Lane {
            owner,
            cell: UnsafeCell::new(Owned {
                queue: VecDeque::new(),
                waker: None,
                idle: false,
            }),
        }
    }

    /// The receiving reactor's wake-up queue.
    pub(super) fn wakeups(&self) -> Option<&Wakeups> {
        self.owner.as_deref()
    }

    /// The lane, if this thread owns it.
    #[inline]
    pub(super) fn owner(&self) -> Option<Owner<'_, T>> {
        self.owner
            .as_deref()
            .is_some_and(Wakeups::is_current)
            .then_some(Owner {
                lane: self,
                _here: PhantomData,
            })
    }
}

/// The lane, reached on its owner thread (which this handle cannot leave).
pub(super) struct Owner<'a, T> {
    lane: &'a Lane<T>,
    /// Neither `Send` nor `Sync`.
    _here: PhantomData<*const ()>,
}

impl<T> Owner<'_, T> {
    /// Runs `f`, which must run no code but this module's plain moves, on the contents.
    fn with<R>(&self, f: impl FnOnce(&mut Owned<T>) -> R) -> R {
        // SAFETY: this thread owns the lane (an `Owner` exists), so no other thread reaches
        // the contents; on this thread, every borrow ends within one of these calls, none of
        // which runs code that could make another (see the module docs).
        self.lane.cell.with_mut(|owned| f(unsafe { &mut *owned }))
    }

    /// Queues `value` and wakes the receiver if it waits. Inlined into the push, so the
    /// message is written into its slot from where it was made, not first copied through
    /// this call's frame.
    #[inline(always)]
    pub(super) fn push(&self, value: T) {
        let waker = self.with(|o| {
            if o.queue.capacity() == 0 {
                // As for the shared queue: one slot first, not a `VecDeque`'s default four.
                o.queue.reserve_exact(1);
            }
            o.queue.push_back(value);
            if std::mem::take(&mut o.idle) {
                o.waker.take()
            } else {
                None
            }
        });
        if let Some(w) = waker {
            w.wake_by_ref();
            // Kept for the next wait, unless the receiver registered another meanwhile.
            let spare = self.with(|o| match o.waker {
                None => o.waker.replace(w),
                Some(_) => Some(w),
            });
            drop(spare);
        }
    }

    /// Moves the lane's messages to the end of `local`; `false` if there were none.
    pub(super) fn take_into(&self, local: &mut VecDeque<T>) -> bool {
        self.with(|o| {
            if o.queue.is_empty() {
                return false;
            }
            if local.is_empty() {
                std::mem::swap(local, &mut o.queue);
            } else {
                local.extend(o.queue.drain(..));
            }
            true
        })
    }

    /// The receiver is about to wait again with the waker it registered last: the next push
    /// wakes it. `false` (and nothing changed) if `waker` is another one.
    pub(super) fn rearm(&self, waker: &Waker) -> bool {
        self.with(|o| {
            let known = o.waker.as_ref().is_some_and(|w| w.will_wake(waker));
            o.idle |= known;
            known
        })
    }

    /// The receiver is about to wait: the next push wakes `waker`.
    pub(super) fn register(&self, waker: &Waker) {
        if !self.rearm(waker) {
            let fresh = waker.clone();
            let old = self.with(|o| {
                o.idle = true;
                o.waker.replace(fresh)
            });
            drop(old);
        }
    }
}
