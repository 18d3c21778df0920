//! The bounded mailbox of a component instance.
//!
//! A mailbox is a bounded multi-producer, single-consumer queue whose storage grows on demand:
//! an idle mailbox holds no slots, a busy one grows up to its bound (and gives large storage
//! back once drained). Senders never block a reactor: [`Mailbox::try_push`] fails at once when
//! the mailbox is full, and async senders may wait for room up to a deadline with
//! [`Mailbox::push_waiting`]. The message is only built once there is room, so a refused message
//! is never consumed.
//!
//! The core is a `VecDeque` behind one mutex, held only to push one item or to take the whole
//! queue (never across an `.await` or user code), with the receiver's waker stored under the
//! same lock: a push that finds a registered waker takes it and wakes the receiver after
//! unlocking, and a receiver that finds the queue empty registers its waker before unlocking,
//! so no wake-up can fall between the check and the registration. The receiver takes the whole
//! queue at once into a local buffer; messages taken but not handled still count against the
//! bound (a counter only the receiver's thread writes; a sender may see a slot as taken a
//! moment longer than it is). A sender about to wait counts itself before its last look, and the receiver
//! checks that count after each slot it frees, each side sequentially consistent between its
//! write and its read (the sender: a SeqCst increment and fence; the receiver: a SeqCst store,
//! which loom's models check in the equivalent fence form), so one of them always sees the
//! other: no waiting sender misses the room. Senders waiting for room wait on a `Notify`: while
//! any wait, the first slot freed in a batch signals one of them, then every 16th, and the
//! batch's end signals one; `close` signals all.
//!
//! A sender on the receiver's own reactor thread skips the lock: its message goes into the
//! lane (`lane.rs`), a queue only that thread reaches, which the receiver takes before the
//! shared queue. Its slots are reserved under the lock a 32nd of the bound at a time and
//! counted with the receiver's, so the bound covers the lane and the shared queue together.
//! A receiver about to wait again on its own thread, with the waker it registered last and
//! which no push or signal has taken since (`armed`), waits without the lock: the next push or
//! signal takes that waker and wakes it.
//!
//! Not everything happens under the lock: the waiting-sender handshake above (`waiting` against
//! `taken`), the receiver's wait without the lock (`armed`), and two hints the receiver reads without locking (`shared_len`, whether anything
//! is queued; `signalled`, whether a stop or control signal waits) are lock-free protocols.
//! The models in `loom_tests.rs` check the queue core with loom: pushes against batch takes,
//! waiting senders against freed slots, close, the lane against the shared queue for the
//! last slot, and a wait without the lock against another thread's pushes (not the signals,
//! nor deadlines); the tests
//! in `tests.rs` cover full, closed, waiting senders, signals and order on real threads.
//!
//! The mailbox also carries its instance's signals ([`Signals`]): a stop request and a short,
//! bounded queue of control signals, both seen by the receiver before its next message, and the
//! instance's cancellation token, made on first use (in one box with the waiting senders'
//! `Notify`, which the first sender about to wait makes). An instance thus needs no channel
//! besides its mailbox, which keeps an idle one small.

mod lane;
#[cfg(all(test, loom))]
mod loom_tests;
mod queue;
mod receiver;
mod signals;
mod stats;
#[cfg(test)]
mod tests;

pub(crate) use queue::{Mailbox, Next, PushError};
pub(crate) use receiver::Receiver;
pub(crate) use signals::{mailbox_of, Control, Signals, StopRequest};
pub(crate) use stats::InstanceStats;
