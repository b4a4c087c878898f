//! The runtime against a scripted kind of work and a virtual clock: no wall-clock
//! sleeps, no async runtime beyond `block_on`.

use std::sync::Mutex;

use super::*;
use crate::ingest::shutdown_channel;
use crate::ports::PauseStore as _;

/// Time that moves only when a worker sleeps: a sleep jumps to its end at once.
struct VirtualClock(Mutex<DateTime<Utc>>);

impl VirtualClock {
    fn new() -> Arc<Self> {
        Arc::new(Self(Mutex::new(
            DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z")
                .unwrap()
                .with_timezone(&Utc),
        )))
    }
}

#[async_trait::async_trait]
impl Clock for VirtualClock {
    fn now(&self) -> DateTime<Utc> {
        *self.0.lock().unwrap()
    }

    async fn sleep(&self, duration: Duration) {
        *self.0.lock().unwrap() += chrono::Duration::from_std(duration).unwrap();
        future::yield_now().await;
    }
}

/// A clock whose sleeps never end: only a notification or shutdown wakes a worker.
struct StoppedClock;

#[async_trait::async_trait]
impl Clock for StoppedClock {
    fn now(&self) -> DateTime<Utc> {
        DateTime::UNIX_EPOCH
    }

    async fn sleep(&self, _: Duration) {
        future::pending::<()>().await;
    }
}

#[derive(Debug, Clone, PartialEq)]
struct Item {
    id: u32,
    attempt: u32,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Script {
    Succeed,
    Fail { retry_after: Option<Duration> },
    Hang,
}

/// One queue of items, each due at a time, with every call recorded.
struct Scripted {
    script: Script,
    /// Whether a claim that finds nothing says when the next item is due.
    tells_due: bool,
    due: Mutex<Vec<(u32, u32, DateTime<Utc>)>>,
    log: Mutex<Vec<String>>,
    /// Most items one claim takes.
    batch: std::sync::atomic::AtomicUsize,
}

impl Scripted {
    fn new(script: Script) -> Arc<Self> {
        Self::telling(script, true)
    }

    fn telling(script: Script, tells_due: bool) -> Arc<Self> {
        Arc::new(Self {
            script,
            tells_due,
            due: Mutex::new(Vec::new()),
            log: Mutex::new(Vec::new()),
            batch: std::sync::atomic::AtomicUsize::new(1),
        })
    }

    fn push(&self, id: u32, at: DateTime<Utc>) {
        self.due.lock().unwrap().push((id, 0, at));
    }

    fn log(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }

    fn note(&self, line: String) {
        self.log.lock().unwrap().push(line);
    }
}

#[async_trait::async_trait]
impl LeasedWork for Scripted {
    type Item = Item;

    fn kind(&self) -> WorkKind {
        WorkKind::Deliveries
    }

    fn describe(&self, item: &Item) -> String {
        format!("item {}", item.id)
    }

    fn attempt(&self, item: &Item) -> u32 {
        item.attempt
    }

    async fn claim(&self, _: &str, now: DateTime<Utc>) -> anyhow::Result<Claim<Item>> {
        let mut due = self.due.lock().unwrap();
        due.sort_by_key(|(_, _, at)| *at);
        let batch = self.batch.load(std::sync::atomic::Ordering::SeqCst);
        let ready = due
            .iter()
            .take(batch)
            .take_while(|(_, _, at)| *at <= now)
            .count();
        if ready == 0 {
            return Ok(Claim::Nothing {
                next_due: due.first().filter(|_| self.tells_due).map(|(_, _, at)| *at),
            });
        }
        let items = due
            .drain(..ready)
            .map(|(id, attempts, _)| Item {
                id,
                attempt: attempts + 1,
            })
            .collect();
        Ok(Claim::Items(items))
    }

    async fn work(&self, item: &Item) -> Result<(), WorkError> {
        self.note(format!("work {} #{}", item.id, item.attempt));
        match self.script {
            Script::Succeed => Ok(()),
            Script::Fail { retry_after } => Err(WorkError::Failed {
                error: anyhow::anyhow!("receiver said 503"),
                retry_after,
            }),
            Script::Hang => future::pending().await,
        }
    }

    async fn fail(
        &self,
        item: &Item,
        retry_at: Option<DateTime<Utc>>,
        reason: &str,
    ) -> anyhow::Result<()> {
        match retry_at {
            Some(at) => {
                let at = at.format("%H:%M:%S");
                self.note(format!("retry {} at {at}", item.id));
                self.due
                    .lock()
                    .unwrap()
                    .push((item.id, item.attempt, retry_at.unwrap()));
            }
            None => self.note(format!("give up {}: {reason}", item.id)),
        }
        Ok(())
    }

    async fn release(&self, item: &Item) -> Result<(), WorkError> {
        self.note(format!("release {}", item.id));
        Ok(())
    }
}

fn settings(max_attempts: u32) -> WorkSettings {
    WorkSettings {
        max_attempts,
        backoff: Backoff::Schedule(vec![Duration::from_secs(5), Duration::from_secs(300)]),
        jitter: JitterPercent(0),
        idle_poll: Duration::from_secs(3600),
    }
}

/// Runs one worker until `done` says so (checked after every step), then stops it.
fn run_until(
    runtime: &Runtime<Scripted>,
    shutdown_after: impl Fn(&[String]) -> bool,
    work: &Scripted,
) {
    let (trigger, shutdown) = shutdown_channel();
    let worker = runtime.run("w", shutdown);
    let watcher = async {
        for _ in 0..10_000 {
            if shutdown_after(&work.log()) {
                trigger.trigger();
                return;
            }
            future::yield_now().await;
        }
        panic!("never got there: {:?}", work.log());
    };
    future::block_on(future::zip(worker, watcher));
}

#[test]
fn failed_items_are_retried_on_the_schedule_then_given_up() {
    let clock = VirtualClock::new();
    let work = Scripted::new(Script::Fail { retry_after: None });
    work.push(1, clock.now());
    let runtime = Runtime::new(work.clone(), clock.clone(), Wakeups::default(), settings(3));
    run_until(
        &runtime,
        |log| log.iter().any(|l| l.starts_with("give up")),
        &work,
    );
    assert_eq!(
        work.log(),
        [
            "work 1 #1",
            "retry 1 at 00:00:05",
            "work 1 #2",
            // Woken when the first retry came due (not an idle poll, an hour, later).
            "retry 1 at 00:05:05",
            "work 1 #3",
            "give up 1: failed 3 times; the last error: receiver said 503",
        ]
    );
}

#[test]
fn a_worker_wakes_for_its_own_retry_when_the_store_cannot_say_when() {
    let clock = VirtualClock::new();
    let work = Scripted::telling(Script::Fail { retry_after: None }, false);
    work.push(1, clock.now());
    let runtime = Runtime::new(work.clone(), clock.clone(), Wakeups::default(), settings(3));
    run_until(&runtime, |log| log.len() >= 4, &work);
    assert_eq!(
        work.log()[..4],
        [
            "work 1 #1",
            "retry 1 at 00:00:05",
            "work 1 #2",
            // The second attempt ran when the retry came due (00:00:05), not an idle
            // poll (an hour) later.
            "retry 1 at 00:05:05"
        ]
    );
}

#[test]
fn a_retry_after_longer_than_the_back_off_is_honoured() {
    let clock = VirtualClock::new();
    let retry_after = Some(Duration::from_secs(120));
    let work = Scripted::new(Script::Fail { retry_after });
    work.push(1, clock.now());
    let runtime = Runtime::new(work.clone(), clock.clone(), Wakeups::default(), settings(3));
    run_until(&runtime, |log| log.len() >= 4, &work);
    assert_eq!(
        work.log()[..4],
        [
            "work 1 #1",
            "retry 1 at 00:02:00",
            "work 1 #2",
            "retry 1 at 00:07:00"
        ]
    );
}

#[test]
fn a_notification_wakes_an_idle_worker_at_once() {
    let work = Scripted::new(Script::Succeed);
    let wakeups = Wakeups::default();
    let runtime = Runtime::new(
        work.clone(),
        Arc::new(StoppedClock),
        wakeups.clone(),
        settings(3),
    );
    let (trigger, shutdown) = shutdown_channel();
    let worker = runtime.run("w", shutdown);
    let producer = async {
        // The worker has claimed nothing and sleeps on a clock that never wakes it.
        for _ in 0..10 {
            future::yield_now().await;
        }
        assert!(work.log().is_empty());
        work.push(7, DateTime::UNIX_EPOCH);
        wakeups.notify(WorkKind::Deliveries);
        for _ in 0..10 {
            future::yield_now().await;
        }
        assert_eq!(work.log(), ["work 7 #1"]);
        // A notification of another kind wakes nobody here.
        work.push(8, DateTime::UNIX_EPOCH);
        wakeups.notify(WorkKind::Imports);
        for _ in 0..10 {
            future::yield_now().await;
        }
        assert_eq!(work.log(), ["work 7 #1"]);
        trigger.trigger();
    };
    future::block_on(future::zip(worker, producer));
}

#[test]
fn one_notification_wakes_every_idle_worker_a_burst_needs() {
    // Items that take long: only a second worker can start the second one.
    let work = Scripted::new(Script::Hang);
    let wakeups = Wakeups::default();
    let runtime = Runtime::new(
        work.clone(),
        Arc::new(StoppedClock),
        wakeups.clone(),
        settings(3),
    );
    let (trigger, shutdown) = shutdown_channel();
    let workers = future::zip(
        runtime.run("a", shutdown.clone()),
        runtime.run("b", shutdown),
    );
    let producer = async {
        for _ in 0..10 {
            future::yield_now().await;
        }
        work.push(1, DateTime::UNIX_EPOCH);
        work.push(2, DateTime::UNIX_EPOCH);
        wakeups.notify(WorkKind::Deliveries);
        for _ in 0..50 {
            future::yield_now().await;
        }
        let mut log = work.log();
        log.sort();
        assert_eq!(log, ["work 1 #1", "work 2 #1"]);
        trigger.trigger();
    };
    future::block_on(future::zip(workers, producer));
    assert_eq!(work.log().len(), 4, "both released: {:?}", work.log());
}

#[test]
fn shutdown_releases_the_item_in_progress() {
    let clock = VirtualClock::new();
    let work = Scripted::new(Script::Hang);
    work.push(3, clock.now());
    let runtime = Runtime::new(work.clone(), clock, Wakeups::default(), settings(3));
    run_until(&runtime, |log| log.iter().any(|l| l == "work 3 #1"), &work);
    assert_eq!(work.log(), ["work 3 #1", "release 3"]);
}

#[test]
fn back_offs_follow_their_schedule_and_jitter_stays_in_bounds() {
    let exponential = Backoff::Exponential {
        base: Duration::from_secs(1),
        max: Duration::from_secs(10),
    };
    let waits: Vec<u64> = (1..=6).map(|n| exponential.after(n).as_secs()).collect();
    assert_eq!(waits, [1, 2, 4, 8, 10, 10]);
    let schedule = Backoff::Schedule(vec![Duration::ZERO, Duration::from_secs(5)]);
    assert_eq!(schedule.after(1), Duration::ZERO);
    assert_eq!(schedule.after(9), Duration::from_secs(5));

    let mut s = settings(9);
    s.jitter = JitterPercent(20);
    let runtime = Runtime::new(
        Scripted::new(Script::Succeed),
        VirtualClock::new(),
        Wakeups::default(),
        s,
    );
    let waits: Vec<Duration> = (0..50)
        .map(|i| runtime.wait_after(1, &format!("item {i}"), None))
        .collect();
    let (low, high) = (Duration::from_secs(5), Duration::from_secs(6));
    assert!(waits.iter().all(|w| (low..=high).contains(w)), "{waits:?}");
    assert!(waits.iter().any(|w| *w != waits[0]), "no spread: {waits:?}");
}

#[test]
fn a_batch_is_worked_together_and_each_failure_retried_on_its_own() {
    let clock = VirtualClock::new();
    let work = Scripted::new(Script::Fail { retry_after: None });
    work.batch.store(3, std::sync::atomic::Ordering::SeqCst);
    for id in 1..=3 {
        work.push(id, clock.now());
    }
    let runtime = Runtime::new(work.clone(), clock.clone(), Wakeups::default(), settings(2));
    run_until(
        &runtime,
        |log| log.iter().filter(|l| l.starts_with("give up")).count() == 3,
        &work,
    );
    assert_eq!(
        work.log(),
        [
            "work 1 #1",
            "work 2 #1",
            "work 3 #1",
            "retry 1 at 00:00:05",
            "retry 2 at 00:00:05",
            "retry 3 at 00:00:05",
            // Due together again, claimed together again.
            "work 1 #2",
            "work 2 #2",
            "work 3 #2",
            "give up 1: failed 2 times; the last error: receiver said 503",
            "give up 2: failed 2 times; the last error: receiver said 503",
            "give up 3: failed 2 times; the last error: receiver said 503",
        ]
    );
}

#[test]
fn shutdown_releases_every_item_of_a_batch() {
    let clock = VirtualClock::new();
    let work = Scripted::new(Script::Hang);
    work.batch.store(2, std::sync::atomic::Ordering::SeqCst);
    work.push(1, clock.now());
    work.push(2, clock.now());
    let runtime = Runtime::new(work.clone(), clock, Wakeups::default(), settings(3));
    run_until(&runtime, |log| log.iter().any(|l| l == "work 1 #1"), &work);
    // The default `work_all` works one item after the other: the second never started,
    // and both go back.
    assert_eq!(work.log(), ["work 1 #1", "release 1", "release 2"]);
}

#[test]
fn an_import_watch_hears_its_own_import_finish_and_is_forgotten_when_dropped() {
    let wakeups = Wakeups::default();
    let (mine, other) = (
        ImportId::parse("imp-1").unwrap(),
        ImportId::parse("imp-2").unwrap(),
    );
    let watch = wakeups.watch_import(&mine);
    let second = wakeups.clone().watch_import(&mine);
    wakeups.import_finished(&other);
    assert!(
        future::block_on(future::poll_once(watch.finished())).is_none(),
        "another import's finish is not this one's"
    );
    wakeups.import_finished(&mine);
    assert!(future::block_on(future::poll_once(watch.finished())).is_some());
    assert!(
        future::block_on(future::poll_once(second.finished())).is_some(),
        "every watch of the import hears it"
    );
    wakeups.imports_may_have_finished();
    assert!(future::block_on(future::poll_once(watch.finished())).is_some());
    drop((watch, second));
    assert!(
        wakeups.lock().by_import.is_empty(),
        "dropped watches are forgotten"
    );
}

/// Pauses kept in memory, as a database would keep them for every instance.
#[derive(Default)]
struct Pauses(Mutex<Vec<(WorkKind, DateTime<Utc>)>>);

#[async_trait::async_trait]
impl crate::ports::PauseStore for Pauses {
    async fn paused(&self) -> anyhow::Result<Vec<(WorkKind, DateTime<Utc>)>> {
        Ok(self.0.lock().unwrap().clone())
    }

    async fn set_paused(
        &self,
        kind: WorkKind,
        paused: bool,
        at: DateTime<Utc>,
    ) -> anyhow::Result<bool> {
        let mut kinds = self.0.lock().unwrap();
        let was = kinds.iter().any(|(k, _)| *k == kind);
        match (was, paused) {
            (false, true) => kinds.push((kind, at)),
            (true, false) => kinds.retain(|(k, _)| *k != kind),
            _ => return Ok(false),
        }
        Ok(true)
    }
}

#[test]
fn a_paused_kind_claims_nothing_keeps_its_work_and_resumes_at_once() {
    let work = Scripted::new(Script::Hang);
    let wakeups = Wakeups::default();
    let clock: Arc<dyn Clock> = Arc::new(StoppedClock);
    let runtime = Runtime::new(work.clone(), clock.clone(), wakeups.clone(), settings(3));
    let store = Arc::new(Pauses::default());
    let control = WorkerControl::new(store.clone(), wakeups.clone(), clock);
    let (trigger, shutdown) = shutdown_channel();
    let worker = runtime.run("w", shutdown);
    let operator = async {
        let settle = || async {
            for _ in 0..20 {
                future::yield_now().await;
            }
        };
        settle().await;
        let paused = control
            .set_paused(WorkKind::Deliveries, true)
            .await
            .unwrap();
        assert_eq!(paused.paused_since, Some(DateTime::UNIX_EPOCH));
        assert_eq!(paused.workers.len(), 1, "{paused:?}");
        work.push(1, DateTime::UNIX_EPOCH);
        wakeups.notify(WorkKind::Deliveries);
        settle().await;
        assert!(
            work.log().is_empty(),
            "paused, yet claimed: {:?}",
            work.log()
        );
        assert_eq!(work.due.lock().unwrap().len(), 1, "the item stays queued");
        // Another kind is not paused.
        assert!(!wakeups.board().is_paused(WorkKind::Imports));

        // Resumed in the store by another instance: this one reads it and wakes.
        store
            .set_paused(WorkKind::Deliveries, false, DateTime::UNIX_EPOCH)
            .await
            .unwrap();
        control.read().await.unwrap();
        settle().await;
        assert_eq!(work.log(), ["work 1 #1"]);
        let kinds = control.kinds();
        let deliveries = kinds
            .iter()
            .find(|k| k.kind == WorkKind::Deliveries)
            .unwrap();
        assert_eq!(deliveries.paused_since, None);
        assert_eq!(
            deliveries.workers[0].holding,
            Some(("item 1".to_owned(), DateTime::UNIX_EPOCH)),
            "the board shows what the worker holds"
        );
        trigger.trigger();
    };
    future::block_on(future::zip(worker, operator));
    assert!(
        control.kinds().iter().all(|k| k.workers.is_empty()),
        "a stopped worker leaves the board"
    );
}
