use serde_json::json;

use super::*;
use crate::ports::{MockCallbackTimers, MockClock};

fn at(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text)
        .unwrap()
        .with_timezone(&Utc)
}

fn due(id: i64) -> DueCallback {
    DueCallback {
        id,
        dataset: crate::DatasetName::parse("accounts").unwrap(),
        key: format!("acc-{id}"),
        version: Some(3),
        import: "imp_1".into(),
        due_at: at("2026-12-03T10:00:00Z"),
    }
}

/// Every fire an observer hears of: dataset, lateness and whether late.
#[derive(Default)]
struct Heard(std::sync::Mutex<Vec<(String, Duration, bool)>>);

impl CallbackObserver for Heard {
    fn fired(&self, dataset: &DatasetName, lateness: Duration, late: bool) {
        self.0
            .lock()
            .unwrap()
            .push((dataset.to_string(), lateness, late));
    }
}

/// Callback work over `timers`, whose clock says the commit was at 10:00:00.250.
fn work(timers: MockCallbackTimers, heard: Arc<Heard>) -> CallbackWork {
    let mut clock = MockClock::new();
    clock
        .expect_now()
        .returning(|| at("2026-12-03T10:00:00.250Z"));
    CallbackWork::new(
        Arc::new(timers),
        Arc::new(clock),
        CallbackSettings::default(),
    )
    .observed_by(heard)
}

#[test]
fn a_claim_fires_a_batch_and_each_timer_is_late_by_its_commit() {
    let mut timers = MockCallbackTimers::new();
    timers
        .expect_fire_due()
        .withf(|now, limit| *now == at("2026-12-03T10:00:00.100Z") && *limit == 1000)
        .times(1)
        .returning(|_, _| {
            let mut early = due(2);
            early.due_at = at("2026-12-03T10:00:00.200Z");
            Ok(CallbackFiring::Fired(vec![due(1), early]))
        });
    let heard = Arc::new(Heard::default());
    let work = work(timers, heard.clone());
    let Claim::Items(fired) =
        futures_lite::future::block_on(work.claim("w", at("2026-12-03T10:00:00.100Z")))
            .expect("claim")
    else {
        panic!("nothing fired")
    };
    assert_eq!(fired.len(), 2);
    let outcomes = futures_lite::future::block_on(work.work_all(&fired));
    assert!(outcomes.iter().all(Result::is_ok), "{outcomes:?}");
    assert_eq!(
        *heard.0.lock().unwrap(),
        [
            ("accounts".into(), Duration::from_millis(250), true),
            ("accounts".into(), Duration::from_millis(50), false)
        ],
        "lateness runs to the commit; late past 100 ms"
    );
    assert!(
        matches!(
            futures_lite::future::block_on(work.release(&fired[0])),
            Err(WorkError::LeaseLost)
        ),
        "a fired timer cannot be given back"
    );
}

#[test]
fn a_store_failure_fails_the_claim_and_an_idle_one_says_when_next() {
    let mut timers = MockCallbackTimers::new();
    let mut answers = vec![
        Ok(CallbackFiring::Idle(Some(at("2026-12-03T10:01:00Z")))),
        Err(DeliveryError::Unexpected(anyhow::anyhow!(
            "connection reset"
        ))),
    ];
    timers
        .expect_fire_due()
        .times(2)
        .returning(move |_, _| answers.pop().expect("two answers"));
    let work = work(timers, Arc::default());
    let now = at("2026-12-03T10:00:00Z");
    let failed = futures_lite::future::block_on(work.claim("w", now));
    assert!(
        failed
            .as_ref()
            .is_err_and(|e| e.to_string().contains("connection reset")),
        "the runtime logs it and tries again after idle_poll"
    );
    assert!(matches!(
        futures_lite::future::block_on(work.claim("w", now)),
        Ok(Claim::Nothing { next_due: Some(t) }) if t == at("2026-12-03T10:01:00Z")
    ));
}

#[test]
fn the_event_carries_the_record_at_the_version_and_the_times() {
    let record = json!({"key": ["acc-1"], "version": 3, "attributes": {"tokens": 7}});
    let payload = callback_event(
        &due(1),
        Some(record.clone()),
        at("2026-12-03T10:00:00.250Z"),
    );
    assert_eq!(
        payload,
        json!({"dataset": "accounts", "import": "imp_1", "key": "acc-1", "version": 3,
               "due_at": "2026-12-03T10:00:00.000Z", "fired_at": "2026-12-03T10:00:00.250Z",
               "record": record})
    );
}
