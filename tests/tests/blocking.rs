//! The worker pool: blocking work off the reactors, bounded queue, cancellation, ordering.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

use fluxor::prelude::*;
use fluxor::{BlockingError, ShutdownIssue};
use fluxor_tests::{eventually, Probe, Whoami};

fn runtime(workers: usize, queue: usize) -> Fluxor {
    Fluxor::builder()
        .reactors(1)
        .worker_threads(workers)
        .worker_queue(queue)
        .build()
        .unwrap()
}

#[derive(Message)]
#[message(reply = Result<u64, BlockingError>)]
struct Hash(u64);

#[derive(Message)]
#[message(reply = Result<Vec<u32>, BlockingError>)]
struct RunMany {
    ordered: bool,
    n: u32,
}

#[derive(Default)]
#[component]
struct Hasher {
    max_parallel: Arc<AtomicUsize>,
}

#[component]
impl Hasher {
    #[handler("hash")]
    async fn hash(&mut self, Hash(x): Hash, ctx: &mut Context<Self>) -> Result<u64, BlockingError> {
        ctx.execute_blocking(move || {
            // Blocking on purpose: this is a worker thread, not the reactor.
            std::thread::sleep(Duration::from_millis(200));
            x.wrapping_mul(0x9E37_79B9_7F4A_7C15)
        })
        .await
    }

    #[handler("many")]
    async fn many(
        &mut self,
        msg: RunMany,
        ctx: &mut Context<Self>,
    ) -> Result<Vec<u32>, BlockingError> {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let running = Arc::new(AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for i in 0..msg.n {
            let (seen, running, max) = (seen.clone(), running.clone(), self.max_parallel.clone());
            let work = move || {
                let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                max.fetch_max(now, Ordering::SeqCst);
                // Later tasks are quicker, so without ordering they would overtake.
                std::thread::sleep(Duration::from_millis(u64::from(msg.n - i)));
                seen.lock().unwrap().push(i);
                running.fetch_sub(1, Ordering::SeqCst);
            };
            tasks.push(if msg.ordered {
                ctx.execute_blocking_ordered(work)
            } else {
                ctx.execute_blocking(work)
            });
        }
        for t in tasks {
            t.await?;
        }
        let seen = seen.lock().unwrap().clone();
        Ok(seen)
    }
}

#[tokio::test]
async fn blocking_work_runs_off_the_reactor() {
    let rt = runtime(2, 16);
    rt.deploy(Hasher::default, DeployOptions::new())
        .await
        .unwrap();
    rt.deploy(Probe::default, DeployOptions::new())
        .await
        .unwrap();
    let bus = rt.bus().clone();
    let hashing = tokio::spawn(async move { bus.request(Hasher::HASH, Hash(3)).await });
    // The hash is running on a worker.
    busy_worker(&rt).await;
    // The only reactor serves another component while the hash runs on a worker.
    let who = rt
        .bus()
        .request_with(
            "t.whoami",
            Whoami,
            RequestOptions::new().timeout(Duration::from_millis(100)),
        )
        .await;
    assert_eq!(who, Ok(0));
    assert!(!hashing.is_finished());
    let h = hashing.await.unwrap().unwrap().unwrap();
    assert_eq!(h, 3u64.wrapping_mul(0x9E37_79B9_7F4A_7C15));
    assert_eq!(rt.workers().stats().completed, 1);
    rt.shutdown(Duration::from_secs(5)).await.unwrap();
}

/// Waits until a worker runs a task.
async fn busy_worker(rt: &Fluxor) {
    eventually("a busy worker", Duration::from_secs(5), || {
        rt.workers().stats().busy == 1
    })
    .await;
}

/// Holds the pool's only worker until released.
fn occupy(rt: &Fluxor) -> (mpsc::Sender<()>, fluxor::BlockingTask<()>) {
    let (release, wait) = mpsc::channel::<()>();
    let task = rt
        .workers()
        .try_submit(move |_| {
            let _ = wait.recv();
        })
        .unwrap();
    (release, task)
}

#[tokio::test]
async fn a_full_queue_rejects_at_once_or_waits_with_a_deadline() {
    let rt = runtime(1, 2);
    let (release, blocker) = occupy(&rt);
    busy_worker(&rt).await;
    let a = rt.workers().execute(|| 1);
    let b = rt.workers().execute(|| 2);
    let stats = rt.workers().stats();
    assert_eq!((stats.busy, stats.queued), (1, 2));
    // Full: rejected at once, counted.
    assert_eq!(
        rt.workers().execute(|| 3).await,
        Err(BlockingError::Rejected)
    );
    assert!(matches!(
        rt.workers().try_submit(|_| 4),
        Err(BlockingError::Rejected)
    ));
    let late = rt
        .workers()
        .submit_timeout(|_| 5, Duration::from_millis(20))
        .await;
    assert!(matches!(late, Err(BlockingError::Rejected)));
    assert_eq!(rt.workers().stats().rejected, 3);
    // Waiting for room succeeds once the worker moves on.
    let waiting = {
        let pool = rt.workers().clone();
        tokio::spawn(async move { pool.submit_timeout(|_| 6, Duration::from_secs(5)).await })
    };
    release.send(()).unwrap();
    blocker.await.unwrap();
    assert_eq!((a.await, b.await), (Ok(1), Ok(2)));
    assert_eq!(waiting.await.unwrap().unwrap().await, Ok(6));
    rt.shutdown(Duration::from_secs(5)).await.unwrap();
}

#[tokio::test]
async fn a_task_dropped_before_it_starts_never_runs() {
    let rt = runtime(1, 4);
    let (release, blocker) = occupy(&rt);
    busy_worker(&rt).await;
    let ran = Arc::new(AtomicBool::new(false));
    let task = {
        let ran = ran.clone();
        rt.workers()
            .execute(move || ran.store(true, Ordering::SeqCst))
    };
    drop(task);
    release.send(()).unwrap();
    blocker.await.unwrap();
    eventually(
        "the dropped task to be cancelled",
        Duration::from_secs(5),
        || rt.workers().stats().cancelled == 1,
    )
    .await;
    assert!(!ran.load(Ordering::SeqCst));
    rt.shutdown(Duration::from_secs(5)).await.unwrap();
}

#[tokio::test]
async fn a_panicking_task_is_an_error_and_the_worker_survives() {
    let rt = runtime(1, 4);
    let err = rt
        .workers()
        .execute(|| -> u8 { panic!("disk on fire") })
        .await
        .unwrap_err();
    assert!(
        matches!(&err, BlockingError::Panicked(m) if m.contains("disk on fire")),
        "{err}"
    );
    assert_eq!(rt.workers().execute(|| 7).await, Ok(7));
    assert_eq!(rt.workers().stats().panicked, 1);
    rt.shutdown(Duration::from_secs(5)).await.unwrap();
}

#[tokio::test]
async fn ordered_tasks_keep_submission_order_and_unordered_run_in_parallel() {
    let rt = runtime(4, 64);
    let max = Arc::new(AtomicUsize::new(0));
    let factory = {
        let max = max.clone();
        move || Hasher {
            max_parallel: max.clone(),
        }
    };
    rt.deploy(factory, DeployOptions::new()).await.unwrap();
    let seen = rt
        .bus()
        .request(
            Hasher::MANY,
            RunMany {
                ordered: true,
                n: 20,
            },
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(seen, (0..20).collect::<Vec<_>>());
    assert_eq!(max.load(Ordering::SeqCst), 1, "ordered tasks never overlap");

    let seen = rt
        .bus()
        .request(
            Hasher::MANY,
            RunMany {
                ordered: false,
                n: 20,
            },
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(seen.len(), 20);
    assert!(max.load(Ordering::SeqCst) > 1, "unordered tasks overlap");
    rt.shutdown(Duration::from_secs(5)).await.unwrap();
}

#[tokio::test]
async fn shutdown_cancels_queued_tasks_and_waits_for_running_ones() {
    let rt = runtime(1, 8);
    let running = rt.workers().execute(|| {
        std::thread::sleep(Duration::from_millis(150));
        "finished"
    });
    busy_worker(&rt).await;
    let queued: Vec<_> = (0..3).map(|i| rt.workers().execute(move || i)).collect();
    rt.shutdown(Duration::from_secs(5)).await.unwrap();
    assert_eq!(running.await, Ok("finished"));
    for q in queued {
        assert_eq!(q.await, Err(BlockingError::Cancelled));
    }
    assert_eq!(rt.workers().stats().cancelled, 3);
    // After shutdown nothing runs.
    assert_eq!(
        rt.workers().execute(|| 1).await,
        Err(BlockingError::Cancelled)
    );
}

#[tokio::test]
async fn shutdown_reports_workers_still_busy_at_the_deadline() {
    let rt = runtime(1, 8);
    let (release, _blocker) = occupy(&rt);
    busy_worker(&rt).await;
    let err = rt.shutdown(Duration::from_millis(50)).await.unwrap_err();
    assert!(
        err.errors
            .iter()
            .any(|e| matches!(e, ShutdownIssue::WorkersBusy(1))),
        "{err}"
    );
    release.send(()).unwrap();
}
