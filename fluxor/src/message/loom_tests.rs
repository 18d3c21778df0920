//! Models of a request's reply slot, checked with loom (`cargo xtask loom`).
//!
//! The production `ReplyTo` (on a handler's thread) and `Reply` (the requester, polled under
//! `loom::future::block_on`, whose waker only a real wake-up releases) race: a reply or a drop
//! without one against the requester's first look and its waker registration, and a requester
//! that gives up (drops its `Reply`) against the reply. Not covered: the timer a long wait
//! arms (`armed`, `Within`: tokio timers), the wake-up through a reactor's queue (the models
//! run off any reactor, so the reply wakes the requester directly; `wake::loom_tests` models
//! that queue), and the message and envelope types around the slot.

use std::future::Future as _;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Wake, Waker};

use loom::future::block_on;
use loom::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use loom::thread;

use super::ReplyTo;

/// A reply sent from another thread reaches a requester that may be looking, registered or
/// not yet polled: it resolves to the reply, exactly once.
#[test]
fn a_reply_reaches_its_requester() {
    loom::model(|| {
        let (to, reply) = ReplyTo::<u32>::channel();
        let handler = thread::spawn(move || to.send(Ok(7)));
        match block_on(reply) {
            Some(Ok(v)) => assert_eq!(v, 7),
            other => panic!("expected the reply, got {other:?}"),
        }
        handler.join().unwrap();
    });
}

/// A handler that drops its `ReplyTo` without replying releases the waiting requester, with
/// no reply.
#[test]
fn a_dropped_reply_to_releases_its_requester() {
    loom::model(|| {
        let (to, reply) = ReplyTo::<u32>::channel();
        let handler = thread::spawn(move || drop(to));
        assert!(block_on(reply).is_none());
        handler.join().unwrap();
    });
}

/// A reply whose drop is counted.
#[derive(Debug)]
struct Counted(Arc<AtomicUsize>);

impl Drop for Counted {
    fn drop(&mut self) {
        self.0.fetch_add(1, SeqCst);
    }
}

struct Noop;

impl Wake for Noop {
    fn wake(self: Arc<Self>) {}
}

/// A requester that gives up after one look, racing the reply: whatever the order, the
/// handler's send neither fails nor blocks, and the reply is dropped exactly once.
#[test]
fn a_requester_giving_up_races_the_reply() {
    loom::model(|| {
        let drops = Arc::new(AtomicUsize::new(0));
        let (to, mut reply) = ReplyTo::<Counted>::channel();
        let handler = thread::spawn({
            let drops = drops.clone();
            move || to.send(Ok(Counted(drops)))
        });
        let waker = Waker::from(Arc::new(Noop));
        let mut cx = Context::from_waker(&waker);
        let _ = Pin::new(&mut reply).poll(&mut cx);
        drop(reply);
        handler.join().unwrap();
        assert_eq!(drops.load(SeqCst), 1);
    });
}
