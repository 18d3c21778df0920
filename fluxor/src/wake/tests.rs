//! Unit tests of the wake-up queue and the spinner.

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
fn a_wake_past_a_full_queue_goes_straight_to_its_task() {
    let w = Wakeups::default();
    let (bell, doorbell) = counter();
    w.answer(&doorbell);
    let (queued, waker) = counter();
    for _ in 0..WAKE_QUEUE {
        w.wake(waker.clone());
    }
    assert_eq!(
        queued.0.load(SeqCst),
        0,
        "a full queue's tasks wait for their reactor"
    );
    let (late, late_waker) = counter();
    w.wake(late_waker);
    assert_eq!(
        late.0.load(SeqCst),
        1,
        "the one past the bound is woken at once"
    );
    w.answer(&doorbell);
    assert_eq!(queued.0.load(SeqCst), WAKE_QUEUE, "nothing queued is lost");
    assert_eq!(bell.0.load(SeqCst), 1, "one ring for the batch");
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
    w.before_park();
    assert_eq!(
        task.0.load(SeqCst),
        1,
        "running out of work wakes what was queued"
    );
}

#[test]
fn the_spinner_wakes_queued_tasks_then_rests_and_is_restarted_when_work_runs_out() {
    let (w, bell, _doorbell, mut spinner) = reactor(Duration::from_millis(1));
    let (again, spinner_waker) = counter();
    let mut cx = TaskContext::from_waker(&spinner_waker);
    assert!(Pin::new(&mut spinner).poll(&mut cx).is_pending());
    assert!(
        w.watching.load(SeqCst),
        "a running spinner watches the queue"
    );
    assert_eq!(
        again.0.load(SeqCst),
        1,
        "and comes back after what is ready"
    );
    let (task, waker) = counter();
    w.wake(waker);
    assert_eq!(bell.0.load(SeqCst), 0, "no ring while the spinner runs");
    assert!(Pin::new(&mut spinner).poll(&mut cx).is_pending());
    assert_eq!(task.0.load(SeqCst), 1);
    // Nothing more arrives: it rests once `spin` has passed.
    spin_until_it_rests(&mut spinner, &mut cx, &again);
    assert!(!w.watching.load(SeqCst));
    // Out of work right after it rested: the reactor parks.
    let woken = again.0.load(SeqCst);
    w.before_park();
    assert_eq!(again.0.load(SeqCst), woken);
    // The next time it runs out of work, the spinner starts again.
    w.before_park();
    assert_eq!(again.0.load(SeqCst), woken + 1);
    assert!(w.watching.load(SeqCst));
}

#[test]
fn the_budget_is_whole_again_after_a_near_miss_and_halves_when_nothing_comes() {
    let spin = Duration::from_micros(64);
    let us = Duration::from_micros;
    assert_eq!(adapt(us(8), spin, Some(us(20))), spin);
    assert_eq!(adapt(us(48), spin, Some(us(60))), spin);
    assert_eq!(adapt(us(16), spin, None), us(8));
    assert_eq!(
        adapt(us(16), spin, Some(us(64))),
        us(8),
        "too late to catch"
    );
    assert_eq!(adapt(us(4), spin, None), us(4), "never below a sixteenth");
}

/// Polls `spinner` until it gives up.
fn spin_until_it_rests(spinner: &mut Spinner, cx: &mut TaskContext<'_>, again: &Count) {
    let rested = (0..100_000_000).any(|_| {
        let before = again.0.load(SeqCst);
        let _ = Pin::new(&mut *spinner).poll(cx);
        again.0.load(SeqCst) == before
    });
    assert!(
        rested,
        "the spinner rests after its budget without wake-ups"
    );
}

#[test]
fn the_spinner_spins_less_when_nothing_comes_and_more_when_it_would_have_caught_it() {
    // Long enough that a preempted test thread still rings "right away".
    let spin = Duration::from_millis(40);
    let (w, _bell, doorbell, mut spinner) = reactor(spin);
    let (again, spinner_waker) = counter();
    let mut cx = TaskContext::from_waker(&spinner_waker);
    spin_until_it_rests(&mut spinner, &mut cx, &again);
    assert_eq!(spinner.budget, spin, "it starts with the whole spin");
    // The reactor parks, wakes for something of its own and runs out of work again.
    w.before_park();
    w.before_park();
    spin_until_it_rests(&mut spinner, &mut cx, &again);
    assert_eq!(spinner.budget, spin / 2, "nothing came from another thread");
    // It parks; another thread rings for a wake-up right away.
    w.before_park();
    let (task, waker) = counter();
    w.wake(waker);
    w.answer(&doorbell);
    assert_eq!(task.0.load(SeqCst), 1);
    w.before_park();
    let _ = Pin::new(&mut spinner).poll(&mut cx);
    assert_eq!(spinner.budget, spin, "a longer spin would have caught it");
    // It gives up again; a ring comes only after twice the whole spin.
    spin_until_it_rests(&mut spinner, &mut cx, &again);
    w.before_park();
    std::thread::sleep(2 * spin);
    let (_, waker) = counter();
    w.wake(waker);
    w.answer(&doorbell);
    w.before_park();
    let _ = Pin::new(&mut spinner).poll(&mut cx);
    assert_eq!(spinner.budget, spin / 2, "no spin would have caught it");
}

/// A reactor's wake-up queue with its doorbell hung (and what counts its rings), and a
/// spinner of `spin` for it.
fn reactor(spin: Duration) -> (Arc<Wakeups>, Arc<Count>, Waker, Spinner) {
    let w = Arc::new(Wakeups::default());
    let (bell, doorbell) = counter();
    w.answer(&doorbell);
    let spinner = Spinner::new(w.clone(), spin);
    (w, bell, doorbell, spinner)
}

/// A reactor's spinner whose budget is at its shortest.
fn short_spinner(spin: Duration) -> (Arc<Wakeups>, Spinner) {
    let (w, _, _, mut spinner) = reactor(spin);
    spinner.budget = spin / SHORTEST;
    (w, spinner)
}

#[test]
fn an_awaited_reply_keeps_the_spinner_going_for_the_whole_spin_once() {
    let spin = Duration::from_millis(2);
    let (w, mut spinner) = short_spinner(spin);
    assert_eq!(spinner.limit(), spin / SHORTEST);
    let awaited = AwaitedReply::new();
    assert_eq!(spinner.limit(), spin, "a reply is on its way");
    drop(awaited);
    assert_eq!(spinner.limit(), spin / SHORTEST, "the reply is in");

    let (again, spinner_waker) = counter();
    let mut cx = TaskContext::from_waker(&spinner_waker);
    let awaited = AwaitedReply::new();
    let started = Instant::now();
    spin_until_it_rests(&mut spinner, &mut cx, &again);
    assert!(
        started.elapsed() >= spin,
        "it spun the whole spin for the reply"
    );
    assert_eq!(
        spinner.limit(),
        spinner.budget,
        "a reply keeps it going once: after it gave up, the budget applies"
    );
    // The reply comes late: its wait belonged to the round that ended.
    drop(awaited);
    let next = AwaitedReply::new();
    assert_eq!(spinner.limit(), spin, "a reply asked for since counts");
    drop(next);
    assert_eq!(spinner.limit(), spinner.budget);
    // It starts again with nothing rung since: the missed reply halves the budget for
    // replies.
    w.before_park();
    w.before_park();
    assert!(Pin::new(&mut spinner).poll(&mut cx).is_pending());
    let later = AwaitedReply::new();
    assert_eq!(
        spinner.limit(),
        spin / 2,
        "the last reply did not come within the spin"
    );
    drop(later);
}

#[test]
fn the_budget_for_replies_is_whole_again_when_a_wake_up_comes_while_one_is_awaited() {
    let spin = Duration::from_millis(2);
    let (w, mut spinner) = short_spinner(spin);
    spinner.for_replies = spin / SHORTEST;
    let awaited = AwaitedReply::new();
    assert_eq!(spinner.limit(), spin / SHORTEST);
    let (again, spinner_waker) = counter();
    let mut cx = TaskContext::from_waker(&spinner_waker);
    assert!(Pin::new(&mut spinner).poll(&mut cx).is_pending());
    // Another thread's wake-up (the reply, say) comes while it spins.
    let (task, waker) = counter();
    std::thread::scope(|s| {
        s.spawn(|| w.wake(waker));
    });
    assert!(Pin::new(&mut spinner).poll(&mut cx).is_pending());
    assert_eq!(task.0.load(SeqCst), 1);
    assert_eq!(spinner.limit(), spin, "replies come within the spin");
    drop(awaited);
    assert_eq!(again.0.load(SeqCst), 2);
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

thread_local! {
    /// How many times a test's spinner yielded its thread.
    static RELAXED: std::cell::Cell<u32> = const { std::cell::Cell::new(0) };
}

fn count_relax() {
    RELAXED.with(|r| r.set(r.get() + 1));
}

fn relaxed() -> u32 {
    RELAXED.with(std::cell::Cell::get)
}

#[test]
fn an_idle_spinner_yields_its_thread_at_every_poll_until_it_catches_a_wake_up() {
    let (w, _bell, _doorbell, mut spinner) = reactor(Duration::from_secs(60));
    spinner.relax = count_relax;
    let (_, spinner_waker) = counter();
    let mut cx = TaskContext::from_waker(&spinner_waker);
    let mut poll = |spinner: &mut Spinner| {
        assert!(Pin::new(spinner).poll(&mut cx).is_pending());
    };
    for _ in 1..YIELD_AFTER {
        poll(&mut spinner);
    }
    assert_eq!(relaxed(), 0, "a short wait for a hand-off keeps the thread");
    poll(&mut spinner);
    poll(&mut spinner);
    assert_eq!(relaxed(), 2, "then every poll lets another thread run");
    let (task, waker) = counter();
    w.wake(waker);
    poll(&mut spinner);
    assert_eq!(task.0.load(SeqCst), 1, "the wake-up is caught");
    assert_eq!(relaxed(), 2, "a poll that catches one does not yield");
    for _ in 1..YIELD_AFTER {
        poll(&mut spinner);
    }
    assert_eq!(relaxed(), 2, "the count starts again from the wake-up");
    poll(&mut spinner);
    assert_eq!(relaxed(), 3);
}
