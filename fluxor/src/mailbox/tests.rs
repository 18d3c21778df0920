use super::queue::*;
use super::signals::*;
use std::sync::atomic::Ordering;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

#[test]
fn full_mailbox_refuses_without_consuming() {
    let (mb, mut rx) = Mailbox::<u32>::bounded(2);
    assert_eq!(mb.try_push(|| 1), Ok(()));
    assert_eq!(mb.try_push(|| 2), Ok(()));
    let mut called = false;
    assert_eq!(
        mb.try_push(|| {
            called = true;
            3
        }),
        Err(PushError::Full)
    );
    assert!(!called);
    assert_eq!(mb.len(), 2);
    assert_eq!(mb.stats().rejected.load(Ordering::Relaxed), 1);
    assert_eq!(rx.try_recv().ok(), Some(1));
    assert_eq!(mb.try_push(|| 4), Ok(()));
    rx.close();
    assert_eq!(mb.try_push(|| 5), Err(PushError::Closed));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_waiting_senders_all_get_through_in_their_order() {
    let (mb, mut rx) = Mailbox::<(u32, u32)>::bounded(2);
    let mut senders = Vec::new();
    for s in 0..4u32 {
        let mb = mb.clone();
        senders.push(tokio::spawn(async move {
            for i in 0..500u32 {
                mb.push_wait(|| (s, i)).await.unwrap();
            }
        }));
    }
    let mut next = [0u32; 4];
    for _ in 0..2000 {
        let (s, i) = tokio::time::timeout(std::time::Duration::from_secs(10), rx.recv())
            .await
            .expect("no sender is left waiting")
            .unwrap();
        assert_eq!(i, next[s as usize], "per-sender order");
        next[s as usize] += 1;
        assert!(mb.len() <= 2, "the bound holds");
    }
    for s in senders {
        s.await.unwrap();
    }
    assert!(rx.try_recv().is_err());
    assert_eq!(mb.stats().rejected.load(Ordering::Relaxed), 0);
}

#[test]
fn an_idle_mailbox_holds_no_slots() {
    let (mb, mut rx) = Mailbox::<[u8; 64]>::bounded(1024);
    assert_eq!(mb.chan.lock().queue.capacity(), 0);
    for _ in 0..1000 {
        mb.try_push(|| [0; 64]).unwrap();
    }
    while rx.try_recv().is_ok() {}
    assert_eq!(
        mb.chan.lock().queue.capacity(),
        0,
        "large storage is given back"
    );
    assert_eq!(rx.local.capacity(), 0);
    rx.close();
    assert_eq!(mb.try_push(|| [0; 64]), Err(PushError::Closed));
}

#[test]
fn a_first_message_takes_one_slot() {
    let (mb, mut rx) = Mailbox::<[u8; 64]>::bounded(1024);
    mb.try_push(|| [1; 64]).unwrap();
    assert_eq!(mb.chan.lock().queue.capacity(), 1);
    mb.try_push(|| [2; 64]).unwrap();
    assert!(mb.chan.lock().queue.capacity() >= 2);
    assert_eq!(rx.try_recv().map(|m| m[0]), Ok(1));
    assert_eq!(rx.try_recv().map(|m| m[0]), Ok(2));
}

#[tokio::test]
async fn signals_come_before_queued_messages() {
    let (mb, mut rx) = Mailbox::<u32>::bounded(8);
    let signals = mb.signals();
    mb.try_push(|| 1).unwrap();
    mb.try_push(|| 2).unwrap();
    assert!(matches!(rx.next().await, Next::Message(1)));
    signals
        .control(Control::Group {
            delay: std::time::Duration::from_millis(5),
        })
        .map_err(|_| "refused")
        .unwrap();
    let deadline = Instant::now() + std::time::Duration::from_secs(1);
    signals.stop(StopRequest::by(deadline));
    signals.stop(StopRequest::now());
    // The stop request first (the first one counts), then the control signal, then the
    // message that was already taken into the receiver's buffer.
    // The deadline travels as time left, so it comes back within real time's drift of the
    // first request's, far from the second's (now).
    let Next::Stop(request) = rx.next().await else {
        panic!("the stop request comes first")
    };
    let d = request.deadline();
    let drift = d.max(deadline) - d.min(deadline);
    assert!(
        drift < std::time::Duration::from_millis(500),
        "the first request's deadline, within real time's drift: {drift:?} off"
    );
    assert!(matches!(
        rx.next().await,
        Next::Control(Control::Group { .. })
    ));
    assert!(matches!(rx.next().await, Next::Message(2)));
    assert_eq!(signals.queued(), 0);
    for _ in 0..CONTROL_CAPACITY {
        assert!(signals
            .control(Control::Group {
                delay: std::time::Duration::ZERO
            })
            .is_ok());
    }
    assert!(
        signals
            .control(Control::Group {
                delay: std::time::Duration::ZERO
            })
            .is_err(),
        "the control queue is bounded"
    );
    rx.close();
    while let Ok(Next::Control(_)) =
        tokio::time::timeout(std::time::Duration::from_millis(10), rx.next()).await
    {}
    assert!(
        signals
            .control(Control::Group {
                delay: std::time::Duration::ZERO
            })
            .is_err(),
        "a stopped instance takes no signals"
    );
    assert!(
        matches!(rx.next().await, Next::Stop(_)),
        "closed and empty reads as a stop"
    );
}

#[tokio::test]
async fn a_stop_request_wakes_a_waiting_receiver() {
    let (mb, mut rx) = Mailbox::<u32>::bounded(8);
    let signals = mb.signals();
    let waiter = tokio::spawn(async move { matches!(rx.next().await, Next::Stop(_)) });
    tokio::task::yield_now().await;
    signals.stop(StopRequest::now());
    assert!(waiter.await.unwrap());
}

#[test]
fn the_cancellation_token_is_made_on_demand_and_honours_an_earlier_cancel() {
    let root = CancellationToken::new();
    let (mb, rx) = Mailbox::<u32>::bounded(8);
    assert!(mb.chan.extras.get().is_none(), "no token until asked for");
    let token = mb.cancellation(&root).clone();
    assert!(!token.is_cancelled());
    rx.cancel_work();
    assert!(token.is_cancelled());

    let (mb, rx) = Mailbox::<u32>::bounded(8);
    rx.cancel_work();
    assert!(
        mb.cancellation(&root).is_cancelled(),
        "made after the cancel"
    );

    let (mb, _rx) = Mailbox::<u32>::bounded(8);
    let token = mb.cancellation(&root).clone();
    root.cancel();
    assert!(token.is_cancelled(), "a child of the runtime's token");
}

#[tokio::test(start_paused = true)]
async fn push_until_waits_for_room_or_deadline() {
    let (mb, mut rx) = Mailbox::<u32>::bounded(1);
    mb.try_push(|| 1).unwrap();
    let deadline = Instant::now() + std::time::Duration::from_millis(50);
    assert_eq!(
        mb.push_waiting(Some(deadline), || 2).await,
        Err(PushError::Full)
    );
    let waiter = {
        let mb = mb.clone();
        tokio::spawn(async move {
            mb.push_waiting(
                Some(Instant::now() + std::time::Duration::from_secs(1)),
                || 3,
            )
            .await
        })
    };
    tokio::task::yield_now().await;
    assert_eq!(rx.recv().await, Some(1));
    assert_eq!(waiter.await.unwrap(), Ok(()));
    assert_eq!(rx.recv().await, Some(3));
}

#[tokio::test(start_paused = true)]
async fn a_stop_deadline_is_kept_as_time_left_across_clocks() {
    // Made on one clock, read on another that has jumped ahead (a paused test clock that
    // auto-advanced): the time left is what carries over, not the instant.
    let request = StopRequest::by(Instant::now() + std::time::Duration::from_secs(10));
    tokio::time::advance(std::time::Duration::from_secs(60)).await;
    let left = request.deadline() - Instant::now();
    assert!(
        left > std::time::Duration::from_secs(9) && left <= std::time::Duration::from_secs(10),
        "{left:?} left of 10 s"
    );
    assert_eq!(StopRequest::now().deadline(), Instant::now());
}

/// Senders on the receiver's own thread go through the lane, one on another thread through
/// the shared queue: both keep their order, all get through, and the two queues together
/// never hold more than the bound.
#[test]
fn the_lane_and_the_shared_queue_share_one_bound() {
    const EACH: u32 = 3000;
    let wakeups = std::sync::Arc::new(crate::wake::Wakeups::default());
    let (mb, mut rx) = Mailbox::<(u32, u32)>::bounded_on(4, Some(wakeups.clone()));
    let far = std::thread::spawn({
        let mb = mb.clone();
        move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .build()
                .unwrap();
            rt.block_on(async {
                for i in 0..EACH {
                    mb.push_wait(|| (1, i)).await.unwrap();
                }
            });
        }
    });
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    rt.block_on(async {
        crate::wake::enter(wakeups);
        let near = tokio::spawn({
            let mb = mb.clone();
            async move {
                for i in 0..EACH {
                    mb.push_wait(|| (0, i)).await.unwrap();
                }
            }
        });
        let mut next = [0u32; 2];
        while next != [EACH, EACH] {
            assert!(mb.len() <= 4, "the bound holds across both queues");
            match rx.try_recv() {
                Ok((s, i)) => {
                    assert_eq!(i, next[s as usize], "per-sender order");
                    next[s as usize] += 1;
                }
                Err(_) => tokio::task::yield_now().await,
            }
        }
        near.await.unwrap();
    });
    far.join().unwrap();
    assert_eq!(mb.stats().rejected.load(Ordering::Relaxed), 0);
}

/// A message sent after another (the second sender knew of the first) is received after it,
/// whichever of the lane and the shared queue each took.
#[test]
fn the_lane_keeps_the_order_of_messages_sent_one_after_another() {
    let wakeups = std::sync::Arc::new(crate::wake::Wakeups::default());
    let (mb, mut rx) = Mailbox::<u32>::bounded_on(8, Some(wakeups.clone()));
    crate::wake::enter(wakeups);
    let far = |v: u32| {
        let mb = mb.clone();
        std::thread::spawn(move || mb.try_push(|| v).unwrap())
            .join()
            .unwrap();
    };
    // Here (the lane), then from another thread (the shared queue).
    mb.try_push(|| 1).unwrap();
    far(2);
    // From another thread, then here: the shared queue is not empty, so it is joined.
    far(3);
    mb.try_push(|| 4).unwrap();
    let got: Vec<u32> = std::iter::from_fn(|| rx.try_recv().ok()).collect();
    assert_eq!(got, [1, 2, 3, 4]);
    assert_eq!(mb.len(), 0);
}

/// A sender on the receiver's thread reserves slots in advance (two of a bound of 64). Others
/// find at most those taken when they are not used; a sender that waits for room gets them
/// back when the receiver's batch ends.
#[test]
fn slots_reserved_for_the_lane_come_back_to_a_waiting_sender() {
    let wakeups = std::sync::Arc::new(crate::wake::Wakeups::default());
    let (mb, mut rx) = Mailbox::<u32>::bounded_on(64, Some(wakeups.clone()));
    crate::wake::enter(wakeups);
    mb.try_push(|| 0).unwrap();
    assert_eq!(mb.len(), 1, "reserved slots are not counted as queued");
    assert_eq!(rx.try_recv().ok(), Some(0));
    let far = mb.clone();
    let pushed =
        std::thread::spawn(move || (1..=64).filter(|&i| far.try_push(|| i).is_ok()).count())
            .join()
            .unwrap();
    assert_eq!(pushed, 63, "one slot is still reserved");
    let far = mb.clone();
    let waiter = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        rt.block_on(far.push_wait(|| 100))
    });
    while mb.chan.waiting.load(Ordering::SeqCst) == 0 {
        std::thread::yield_now();
    }
    let mut got = Vec::new();
    while got.len() < 64 {
        match rx.try_recv() {
            Ok(v) => got.push(v),
            Err(_) => std::thread::yield_now(),
        }
    }
    assert_eq!(waiter.join().unwrap(), Ok(()));
    assert_eq!(got.last(), Some(&100));
}
