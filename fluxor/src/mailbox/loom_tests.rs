//! Models of the mailbox's queue core, checked with loom (`cargo xtask loom`).
//!
//! They drive the production `Mailbox` and `Receiver` with loom's threads and
//! `loom::future::block_on`, whose waker only a real wake-up releases: a lost wake-up shows as
//! a deadlock. Covered: a push against a batch take and the receiver's waker registration;
//! a sender waiting for room (`push_wait`) against the receiver freeing a slot (the `waiting`
//! / `taken` hand-shake); `close` against waiting senders and pushes. Not covered: deadlines
//! (`push_waiting` with a deadline once full: tokio timers), the stop and control signals, the
//! cancellation token, and storage given back above `KEEP_SLOTS`. Senders wait on the shim's
//! stand-in for tokio's `Notify`, which keeps its contract but not its code.

use loom::future::block_on;
use loom::sync::Arc;
use loom::thread;

use super::{Mailbox, Next, PushError};

fn message(next: Next<u32>) -> Option<u32> {
    match next {
        Next::Message(v) => Some(v),
        Next::Stop(_) => None,
        Next::Control(_) => panic!("no control signal is sent"),
    }
}

/// Two senders push while the receiver waits and takes what is queued in batches: both
/// messages arrive, each push's wake-up reaching the receiver.
#[test]
fn pushes_reach_a_waiting_receiver() {
    loom::model(|| {
        let (tx, mut rx) = Mailbox::<u32>::bounded(2);
        let senders: Vec<_> = (1..=2)
            .map(|v| {
                let tx = tx.clone();
                thread::spawn(move || assert_eq!(tx.try_push(|| v), Ok(())))
            })
            .collect();
        drop(tx);
        let mut got: Vec<u32> = (0..2)
            .map(|_| message(block_on(rx.next())).expect("a message"))
            .collect();
        got.sort_unstable();
        assert_eq!(got, [1, 2]);
        for s in senders {
            s.join().unwrap();
        }
    });
}

/// A full mailbox: a sender waits for room while the receiver takes the queued message. The
/// freed slot always reaches the sender (else it would wait forever), and the message follows.
#[test]
fn a_waiting_sender_gets_the_freed_slot() {
    loom::model(|| {
        let (tx, mut rx) = Mailbox::<u32>::bounded(1);
        tx.try_push(|| 1).unwrap();
        let sender = thread::spawn(move || block_on(tx.push_wait(|| 2)));
        assert_eq!(message(block_on(rx.next())), Some(1));
        assert_eq!(message(block_on(rx.next())), Some(2));
        assert_eq!(sender.join().unwrap(), Ok(()));
    });
}

/// A full mailbox of two: a sender waits while the receiver works through a batch of two. The
/// first slot is freed with a plain store and may go unseen by the sender; the batch's end
/// (a sequentially consistent hand-shake) must then let it in.
#[test]
fn a_sender_missed_within_a_batch_gets_in_at_its_end() {
    loom::model(|| {
        let (tx, mut rx) = Mailbox::<u32>::bounded(2);
        tx.try_push(|| 1).unwrap();
        tx.try_push(|| 2).unwrap();
        let sender = thread::spawn(move || block_on(tx.push_wait(|| 3)));
        let got: Vec<u32> = (0..3)
            .map(|_| message(block_on(rx.next())).expect("a message"))
            .collect();
        assert_eq!(got, [1, 2, 3]);
        assert_eq!(sender.join().unwrap(), Ok(()));
    });
}

/// Two senders wait on a full mailbox of one slot: each slot the receiver frees lets one in,
/// and neither is left waiting.
#[test]
fn each_freed_slot_lets_one_waiting_sender_in() {
    loom::model(|| {
        let (tx, mut rx) = Mailbox::<u32>::bounded(1);
        tx.try_push(|| 1).unwrap();
        let senders: Vec<_> = (2..=3)
            .map(|v| {
                let tx = tx.clone();
                thread::spawn(move || block_on(tx.push_wait(|| v)))
            })
            .collect();
        drop(tx);
        let mut got: Vec<u32> = (0..3)
            .map(|_| message(block_on(rx.next())).expect("a message"))
            .collect();
        got.sort_unstable();
        assert_eq!(got, [1, 2, 3]);
        for s in senders {
            assert_eq!(s.join().unwrap(), Ok(()));
        }
    });
}

/// Closing a full mailbox releases a sender waiting for room, with `Closed`.
#[test]
fn close_releases_a_waiting_sender() {
    loom::model(|| {
        let (tx, mut rx) = Mailbox::<u32>::bounded(1);
        tx.try_push(|| 1).unwrap();
        let sender = thread::spawn(move || block_on(tx.push_wait(|| 2)));
        rx.close();
        assert_eq!(sender.join().unwrap(), Err(PushError::Closed));
        assert_eq!(message(block_on(rx.next())), Some(1));
        assert_eq!(message(block_on(rx.next())), None);
    });
}

/// A push racing `close`: either it is refused, or its message is received before the
/// closed mailbox reads as a stop. Nothing is lost and nothing comes after the stop.
#[test]
fn a_push_racing_close_is_refused_or_received() {
    loom::model(|| {
        let (tx, mut rx) = Mailbox::<u32>::bounded(1);
        let pushed = Arc::new(loom::sync::atomic::AtomicBool::new(false));
        let sender = thread::spawn({
            let pushed = pushed.clone();
            move || match tx.try_push(|| 7) {
                Ok(()) => pushed.store(true, loom::sync::atomic::Ordering::SeqCst),
                Err(e) => assert_eq!(e, PushError::Closed),
            }
        });
        rx.close();
        let mut got = Vec::new();
        while let Some(v) = message(block_on(rx.next())) {
            got.push(v);
        }
        sender.join().unwrap();
        let expected: &[u32] = if pushed.load(loom::sync::atomic::Ordering::SeqCst) {
            &[7]
        } else {
            &[]
        };
        assert_eq!(got, expected);
    });
}

/// A mailbox whose owner (the lane's thread) is the calling loom thread.
fn owned_here(capacity: usize) -> (Mailbox<u32>, super::Receiver<u32>) {
    let wakeups = std::sync::Arc::new(crate::wake::Wakeups::default());
    crate::wake::enter(wakeups.clone());
    Mailbox::bounded_on(capacity, Some(wakeups))
}

/// Takes what is queued, waiting (by yielding) until `n` messages came.
fn take(rx: &mut super::Receiver<u32>, n: usize) -> Vec<u32> {
    let mut got = Vec::new();
    while got.len() < n {
        match rx.try_recv() {
            Ok(v) => got.push(v),
            Err(_) => thread::yield_now(),
        }
    }
    got
}

/// One slot left: the owner thread pushes into its lane while another thread pushes into the
/// shared queue. They never both get in, and whatever got in is received.
#[test]
fn the_lane_and_the_shared_queue_never_both_take_the_last_slot() {
    loom::model(|| {
        let (tx, mut rx) = owned_here(1);
        let other = thread::spawn({
            let tx = tx.clone();
            move || tx.try_push(|| 2).is_ok()
        });
        let here = tx.try_push(|| 1).is_ok();
        let there = other.join().unwrap();
        assert!(!(here && there), "the bound of one was passed");
        let mut expected = Vec::new();
        if here {
            expected.push(1);
        }
        if there {
            expected.push(2);
        }
        let mut got = take(&mut rx, expected.len());
        got.sort_unstable();
        assert_eq!(got, expected);
        assert!(rx.try_recv().is_err());
    });
}

/// Another thread's sender waits for room while the owner thread pushes into its lane, in a
/// mailbox of `capacity`: it always gets in, and nothing is left counted.
fn a_sender_waiting_beside_the_lane(capacity: usize) {
    loom::model(move || {
        let (tx, mut rx) = owned_here(capacity);
        let other = thread::spawn({
            let tx = tx.clone();
            move || block_on(tx.push_wait(|| 2))
        });
        let here = tx.try_push(|| 1).is_ok();
        let mut got = take(&mut rx, if here { 2 } else { 1 });
        assert_eq!(other.join().unwrap(), Ok(()));
        got.sort_unstable();
        assert_eq!(got, if here { vec![1, 2] } else { vec![2] });
        assert_eq!(tx.len(), 0);
    });
}

/// One slot: the slot freed by receiving reaches the waiting sender.
#[test]
fn a_sender_waiting_beside_the_lane_gets_in() {
    a_sender_waiting_beside_the_lane(1);
}

/// Two slots: the owner's push reserves both (model builds reserve all that is free) and
/// uses one; the sender gets in once the receiver frees slots and gives the spare one back.
#[test]
fn a_sender_waiting_beside_reserved_slots_gets_in() {
    a_sender_waiting_beside_the_lane(2);
}

/// The receiver waits on the owner thread while another thread pushes twice, the second time
/// only once the first was received; between its waits the owner pushes into its lane, which
/// wakes it without taking the waker registered for other threads. The receiver waits again
/// without the lock only while that waker is still registered: the first push took it, so the
/// wait after it registers again and the second push is not lost. The pusher plays the
/// reactor too, waking what its wake-ups queued.
#[test]
fn a_receiver_waiting_without_the_lock_is_woken_by_the_next_push() {
    use loom::sync::atomic::{AtomicBool, Ordering::SeqCst};
    loom::model(|| {
        let wakeups = std::sync::Arc::new(crate::wake::Wakeups::default());
        crate::wake::enter(wakeups.clone());
        let (tx, mut rx) = Mailbox::<u32>::bounded_on(3, Some(wakeups.clone()));
        let seen = Arc::new(AtomicBool::new(false));
        let noop = futures_noop_waker();
        let pusher = thread::spawn({
            let (tx, seen) = (tx.clone(), seen.clone());
            move || {
                // The owner's lane push may have reserved every free slot (model builds
                // reserve all): wait for them to come back.
                block_on(tx.push_wait(|| 2)).unwrap();
                wakeups.answer(&noop);
                while !seen.load(SeqCst) {
                    thread::yield_now();
                }
                block_on(tx.push_wait(|| 3)).unwrap();
                wakeups.answer(&noop);
            }
        });
        // One task throughout, so its waker stays the same, as a reactor's task's does.
        let mut got = block_on_one_waker(async {
            let mut got = Vec::new();
            let first = {
                let mut next = Box::pin(rx.next());
                std::future::poll_fn(|cx| {
                    std::task::Poll::Ready(std::future::Future::poll(next.as_mut(), cx))
                })
                .await
            };
            if let std::task::Poll::Ready(next) = first {
                got.push(message(next).expect("a message"));
            }
            tx.try_push(|| 1).unwrap();
            while got.len() < 3 {
                if got.contains(&2) {
                    seen.store(true, SeqCst);
                }
                got.push(message(rx.next().await).expect("a message"));
            }
            got
        });
        pusher.join().unwrap();
        got.sort_unstable();
        assert_eq!(got, [1, 2, 3]);
    });
}

/// Runs `fut` to completion on this loom thread with one waker throughout (loom's own
/// `block_on` makes a new one for every poll), parking between polls.
fn block_on_one_waker<F: std::future::Future>(fut: F) -> F::Output {
    struct Unpark(loom::thread::Thread);
    impl std::task::Wake for Unpark {
        fn wake(self: std::sync::Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = std::task::Waker::from(std::sync::Arc::new(Unpark(thread::current())));
    let mut cx = std::task::Context::from_waker(&waker);
    let mut fut = std::pin::pin!(fut);
    loop {
        if let std::task::Poll::Ready(out) = fut.as_mut().poll(&mut cx) {
            return out;
        }
        thread::park();
    }
}

/// A waker that does nothing: the doorbell the pusher answers with.
fn futures_noop_waker() -> std::task::Waker {
    struct Noop;
    impl std::task::Wake for Noop {
        fn wake(self: std::sync::Arc<Self>) {}
    }
    std::task::Waker::from(std::sync::Arc::new(Noop))
}
