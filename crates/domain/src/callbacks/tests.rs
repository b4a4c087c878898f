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
        token: "t".into(),
    }
}

fn work(timers: MockCallbackTimers) -> CallbackWork {
    let mut clock = MockClock::new();
    clock
        .expect_now()
        .returning(|| at("2026-12-03T10:00:00.250Z"));
    CallbackWork::new(
        Arc::new(timers),
        Arc::new(clock),
        CallbackSettings::default(),
    )
}

#[test]
fn a_batch_fires_in_one_call_and_a_cancelled_timer_is_no_failure() {
    let mut timers = MockCallbackTimers::new();
    timers
        .expect_fire()
        .withf(|d, now| d.len() == 2 && *now == at("2026-12-03T10:00:00.250Z"))
        .times(1)
        .returning(|_, _| Ok(vec![true, false]));
    let outcomes = futures_lite::future::block_on(work(timers).work_all(&[due(1), due(2)]));
    assert!(outcomes.iter().all(Result::is_ok), "{outcomes:?}");
}

#[test]
fn a_store_failure_fails_every_timer_of_the_batch_for_a_retry() {
    let mut timers = MockCallbackTimers::new();
    timers.expect_fire().returning(|_, _| {
        Err(DeliveryError::Unexpected(anyhow::anyhow!(
            "connection reset"
        )))
    });
    let outcomes = futures_lite::future::block_on(work(timers).work_all(&[due(1), due(2)]));
    assert!(
        outcomes
            .iter()
            .all(|o| matches!(o, Err(WorkError::Failed { .. }))),
        "{outcomes:?}"
    );
    assert_eq!(
        CallbackSettings::default().work().max_attempts,
        u32::MAX,
        "never given up"
    );
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
