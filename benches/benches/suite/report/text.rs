//! The fixed text of `RESULTS.md`: the paragraph under the title and the notes after the tables.

/// Which configuration each system ran in, and what each ratio divides by.
pub(super) const CONFIGURATIONS: &str = "\
How each system ran (each driver is a task inside its runtime, for Fluxor a component; timing \
stops when the last message is handled):

* **fluxor**: one runtime with 2 reactors (mailboxes 1024). *Same reactor* rows: driver and \
  target on reactor 0; *across threads*: driver on reactor 1, target on reactor 0. W4: the two \
  sides of a pair share a reactor, pairs alternate between the reactors. W7 plain row: the \
  root's children spread over both reactors, each subtree pinned to its reactor; *same \
  reactor*: the whole tree on reactor 0; *default placement*: every deployment made with \
  `DeployOptions::new()` (instances spread over the reactors in turn). W9: the deploying \
  component on reactor 0, its deployments pinned to its reactor or made with \
  `DeployOptions::new()`.
* **kameo** 0.22, **ractor** 0.16, **xtra** 0.6: a multi-threaded tokio runtime with 2 \
  workers, bounded mailboxes of 1024 (ractor's are unbounded). On W9 xtra starts its actors \
  one by one there, its default placement.
* **actix** 0.13: a `System` whose thread runs the driver, plus two arbiters (threads) for the \
  actors (W1–W5; W2, W4 and W5 alternate between them). W6 and W7 start actors with \
  `Actor::start`, which runs them on the starting thread: there actix ran on one thread.
* **actix (1 thread)**: a bare `actix_rt::System::new().block_on(…)` with no other arbiter; \
  the driver is the future it runs and every actor is started with `Actor::start` on the \
  system's arbiter, all on one thread. Figures only on *same reactor* rows.
* **tokio mpsc (floor)**: a task per actor reading a bounded `tokio::sync::mpsc` channel \
  (1024), asks carrying a `oneshot` for the reply, on a multi-threaded runtime with 2 workers.
* **tokio current_thread (floor)**: the same tasks and channels on a `current_thread` runtime \
  (driver, producers and consumer on one thread). Figures only on *same reactor* rows.
* **crossbeam (floor)**: OS threads and bounded `crossbeam-channel` channels (1024).

*vs best peer* divides Fluxor's figure by the best peer figure and *vs floor* by the floor's. \
On a *same reactor* row the peer is the single-thread configuration, actix (1 thread), and the \
floor tokio current_thread, both from that row. On any other row the peers are kameo, ractor, \
xtra and actix and the floor is tokio mpsc (for W7 *default placement*, their figures on the \
plain W7 row, where they place by default). Above 1 is better for rates, below 1 is better for \
times and memory. The machine is shared and noisy: compare ratios within one run, not absolute figures \
across runs.
";

pub(super) const NOTES: &str = r#"

## Notes

* **Placement.** kameo, ractor, xtra and the tokio floor share one 2-worker tokio runtime, whose
  scheduler often keeps a requester and its actor on one worker (its LIFO slot): their *across
  threads* rows are frequently same-thread hand-offs. Fluxor's across-reactor rows always cross
  threads. actix runs its actors on two arbiters (threads) beside its system thread; idle
  arbiters park, which shows in its cross-thread asks. The crossbeam floor is OS threads and
  blocking channels (tell, ask and ping-pong only).
* **Mailboxes.** ractor's are unbounded (its senders never wait); actix tells use `try_send` and
  wait on `send` only when the mailbox is full.
* **W6** runs each system in a fresh child process (`--spawn-probe`), so resident memory is not
  blurred by memory earlier workloads freed. For Fluxor, *start* is one `deploy` of N instances
  (each created on its reactor, started, its start reported); for the peers, N spawns.
* **W9** runs in a fresh child process too (`--deploy-probe <system> <same|default|shared> <n>`). For
  Fluxor, a component on reactor 0 calls `Context::deploy` for one instance of a tiny
  component and awaits it before the next; after all are deployed (*deploy* time, then idle
  memory), each gets one message, then they are undeployed one by one, each `undeploy`
  awaited (*undeploy all*). For actix (1 thread) and xtra it is their W6: actors started one
  by one (`Actor::start`, `spawn_tokio`), one message each, every address dropped and every
  stop awaited; the floor's is tasks and channels. xtra's bytes per actor are the memory goal.
  The *one topic all bind* rows (`shared`, Fluxor only) add a handler on `w9.all` to each
  deployment, so every deploy and undeploy changes one topic's list of up to 100k consumers.
  The *undeployed together* row (Fluxor; the same-thread peers' figures are their W9 again)
  starts every `undeploy` and then awaits them all (`join_all`), as the peers' rows drop
  every address and then await all the stops.
* **W7**: each Fluxor node deploys its ten children with `Context::deploy` (a deployment with
  its supervisor, start hand-shake and undeploy) where the peers spawn bare actors. The root
  spreads its children over both reactors; below it, a node deploys its children on its own
  reactor (`DeployOptions::reactor(ctx.reactor())`), so each subtree stays on one thread, as a
  task the peers' runtimes spawn stays on its worker until another steals it.
  Each tree grows in a fresh process (as W6 and W9 do), and its *peak memory* row is how much
  the process's peak resident memory (`VmHWM`) grew from before the runtime was built: the
  memory goal is xtra's figure.
* **Cross-reactor wake-ups.** A message or reply for another reactor queues its waker there
  instead of waking it through tokio's driver. A reactor that runs out of work keeps a spinner
  task going for up to 50 µs (`Builder::spin_before_park`) that empties that queue between its
  other tasks, so a hand-off to it costs no system call and no driver turn; otherwise the
  reactor is rung once per batch. In a W3 run this took the `write` calls from 230k to 0.7k
  and the `epoll_wait` calls from 233k to 42k (`perf stat -e syscalls:sys_enter_write,...`).
* **Request timeouts.** A request made on a reactor joins that reactor's list of young
  requests instead of registering a tokio timer; a sweep every 10 ms arms those still
  waiting, and only they get a timer for their deadline (timer work in a W3 profile: ~5% of
  the samples before, ~1% after).
* **Where Fluxor is behind, and why** (`perf record` of `--only W7 --systems fluxor`,
  `--only W3 --systems fluxor` and `--spawn-probe fluxor 1000000`):
  - *Asks across reactors* (W3): a hop between two spinning reactors still moves the
    message, the waker and the task's state between the cores' caches; the peers' "across"
    asks mostly stay on one worker, a same-thread hand-off. On a 2-vCPU virtual machine these
    rows are bimodal, with any build: most runs read 490–710 ns p50, some 1.85–2.1 µs with
    about twice the CPU per ask (both threads busy the whole time, no more context switches
    than in a fast run: `perf stat -e context-switches` of six runs of `--only W3 --systems
    fluxor`), as if the two spinning vCPUs did not run at full speed side by side. Round-robin
    over 100 instances (W2) and tell across threads drop in the same runs.
  - *Skynet* (W7): the tree is built breadth first (a reactor runs its queue first in, first
    out), so the whole tree is alive at its peak (see the *peak memory* rows; single-thread actix,
    which runs its queue in order too, holds its whole tree as well, and the tokio floor needs
    3.4× more memory on one thread than on two workers, where a spawned task mostly runs next;
    Fluxor's tree with default placement peaks at about half, not investigated). Per
    node that is the instance's task (384 bytes; a component of up to 64 bytes fits, as the
    skynet node does since its context and receiving side shrank: 512 bytes before), its
    mailbox (~280 bytes), the one-message slot it keeps (128 bytes) and a tenth of its
    deployment. glibc grows a thread's arena page by page (`mprotect`, 12% of the
    samples) and page faults take another 13%.
  - *Single-instance deployments* (W9; `valgrind --tool=callgrind` of `--deploy-probe
    <system> same 20000`): a deploy, its message and its undeploy take ~11.2k instructions
    and seven allocations (two of them the boxes a handler puts around its deploy and its
    undeploy, 176 and 152 bytes, so that its component's handler futures stay small) against
    ~6.5k for single-thread actix's start, message and stop (1.7×); in time the gap is
    wider, partly the reactor's arena growing page by page (see the README's note on the
    allocator: with glibc's top pad raised, Fluxor's deploys took a third less time and
    actix's the same). What a deployment has that an actor has not: its entry in the runtime's
    table (a pointer and its place in deploy order; how `actor_ref`, `undeploy` and the inspector find it), its shared
    state (supervision state, start and stop reports, the initial config in place, what the
    table lists of it: 360 bytes), the blocked-reactor checker's label, and an
    undeploy that waits for the instance to drain and run `stop` (a task switch there and
    back; when the instance runs on the caller's reactor, a timer for the deadline only if it
    has not stopped after one turn of that reactor) where actix's row drops every address at once and
    then awaits all the stops. Undeploying together is slower (the *undeployed together*
    row): 100k undeploy futures alive at once, each in its box, and `join_all`'s own
    bookkeeping. The instance's tokio task costs both the same (`spawn_local`,
    ~1.3k instructions). An instance whose start finishes at once (no `#[on_start]`, or a
    plain-method one) starts while it is made, so the deploy is done within its first poll;
    one whose stop finishes at once, asked to stop with nothing left to drain, stops within
    its last turn; and an undeploy reads the clock once. The runtime numbers its deployments in
    sequence and the table hashes an id by that number, so deployments made one after another
    take buckets one after another: with a
    seeded hash (and entries of 104 bytes) every insert, lookup and removal missed the cache
    and the TLB, and hashbrown's removal alone was 17–18% of the teardown's `perf` samples;
    alternating probe runs took the teardown on the caller's reactor from 0.13–0.17 to
    0.08–0.09 s.
  - *Idle memory* (W6): the instance's tokio task is 384 bytes (tokio aligns task cells to
    128 bytes; the future is the component, its `Context` and the mailbox's receiving side,
    ~210 bytes for a small component, 280 for one of 64 bytes, which a unit test checks;
    8 bytes more take it to a 512-byte cell) and the mailbox's shared state ~280 bytes;
    the rest is the allocator's rounding and the runtime's per-instance mailbox pointer and
    reactor index. glibc places 128-byte aligned blocks with gaps around them.
  - *Ping-pong and tell* (W1, W4): plain handlers run in place (no future per message, the
    path from mailbox to handler inlined), and a sender on the receiver's reactor pushes into
    the mailbox's lane without the lock, using slots reserved a 32nd of the bound at a time.
    What is left per message is the envelope (ids and metadata) moved from sender to handler,
    the instance's counters and the blocked-reactor checker's stamps, and, when the receiver
    has to wait, a task wake-up (a ping-pong pays that for every message; the receiver waits
    again without the lock while no other thread's push took its waker). actix's handlers are
    called in place too. On a host where single-thread actix and the `current_thread` floor
    ran twice as fast as on the day before (W1 20M against 8.8M msgs/s) Fluxor's one-reactor
    rows moved little (9.8M), which `perf` put on copies of the envelope through the stack,
    each read back wider than it was written (a store-forwarding stall): the send now makes the
    envelope's metadata where the envelope is stored, the lane's push is inlined, and the
    receiver takes the message after its bookkeeping, which took 1 → 1 on one reactor from
    9.5–9.8M to 12.9–13.2M msgs/s (alternating runs of `--only W1,W4 --systems fluxor`).
    Then (`valgrind --tool=callgrind` of 2M tells on one reactor, 793 → 474 instructions per
    message): plain handlers run back to back in place up to a batch, without going back
    through the loop's signal check and a budget await for each message; the per-message
    bookkeeping is inlined with its rare branches out of line; and the generated handlers
    make their span and answer from the context's record of the message instead of a
    `Responder` copied through the stack. A run of in-place messages takes one unit of the
    task's coop budget per four messages (a unit costs ~29 instructions). 1 → 1 on one
    reactor now reads 20.8–22.3M msgs/s, 1.02–1.09× single-thread actix. What is left of a
    ping-pong is the task wake-up per message.
  - *Tell across reactors* (W1): the lane's first form cost these rows ~35% (4.1–4.5M against
    6.3–7.3M msgs/s in alternating runs of `--only W1` with the two builds): every push from
    another thread made a sequentially consistent hand-shake with the lane's count. Slots
    reserved under the lock took that out and inlining the in-place path helped; in the same
    kind of runs 1 → 1 is now at 5.0–6.3M, still below the build before the lane. `perf stat`
    shows ~25% more doorbell `write`s: the faster receiver runs out of work more often. Not
    explained further.
  - Idle reactors spin up to 50 µs before parking (`Builder::spin_before_park`); on 2 cores the
    spinning competes with other threads, e.g. the driver of W6. The spin shrinks, down to a
    sixteenth, while wake-ups from other threads come later than the whole spin, so the W3 rows
    with asks at least 1 ms apart burn about half the CPU per ask a fixed spin did (alternating
    runs of `--only W3 --systems fluxor`: 37–50 against 87–93 µs on one reactor, 83–95 against
    182–223 µs across reactors); what is left across reactors is mostly both threads parking
    and being woken for every ask. A reactor that waits for a reply it asked for spins up to
    the whole spin (once per request, less for replies that keep coming later than that),
    so the requester's side does not park before a quick answer: the paced rows across
    reactors from 90k to 63–65k ns of CPU per ask and from 23–25 to 20 µs p50 (alternating
    runs of `--only W3 --systems fluxor`). A spinner that has caught nothing for four turns
    (a few microseconds) yields its thread at every turn: on this 2-vCPU machine the system often
    runs a reactor woken by a request on the requester's CPU rather than wake the halted one,
    and an unyielding spin kept it waiting (a program asking 1 ms apart across two reactors
    with a 1 ms spin measured 5–6 µs to the handler and 70 µs back). Eight alternating pairs
    of runs: the paced rows across reactors from 14–26k to 11–18k ns p50 (one run 31k) and
    from 61–89k to 48–62k ns of CPU per ask. The host's own wake-up of a parked thread is
    6–7 µs p50 (a condition variable signalled 1 ms apart), and an ask that finds both
    reactors parked pays two.
"#;
