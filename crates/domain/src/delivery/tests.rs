use std::str::FromStr as _;

use mockall::predicate::always;
use serde_json::json;

use super::*;
use crate::ports::{
    MockClock, MockDeliveryQueue, MockSubscriptionStore, MockWebhookSender, UrlRefused,
};

fn at(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text)
        .unwrap()
        .with_timezone(&Utc)
}

fn event() -> Event {
    Event {
        id: "evt_1".into(),
        dataset: DatasetName::parse("customers").unwrap(),
        kind: EventKind::RecordCreated,
        payload: json!({"dataset": "customers", "key": "c1", "record": {"name": "Ada"}}),
        created_at: at("2026-12-03T10:00:00Z"),
        sequence: 42,
    }
}

fn delivery(attempt: u32) -> Delivery {
    Delivery {
        event: event(),
        subscription: "sub_1".into(),
        url: "https://receiver.example/hook".into(),
        secret: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".into(),
        attempt,
        token: "t".into(),
    }
}

fn ports(queue: MockDeliveryQueue, sender: MockWebhookSender) -> DeliveryPorts {
    let mut clock = MockClock::new();
    clock.expect_now().returning(|| at("2026-12-03T10:00:01Z"));
    DeliveryPorts {
        subscriptions: Arc::new(MockSubscriptionStore::new()),
        queue: Arc::new(queue),
        sender: Arc::new(sender),
        clock: Arc::new(clock),
    }
}

fn claimed(attempt: u32) -> Claimed {
    Claimed {
        delivery: delivery(attempt),
        outcome: Mutex::new(None),
        slot: Mutex::new(None),
    }
}

fn work_with(ports: DeliveryPorts, settings: DeliverySettings) -> DeliveryWork {
    DeliveryWork::new(&DeliveryService::new(ports, settings))
}

fn delivery_of(subscription: &str, event: &str) -> Delivery {
    let mut d = delivery(1);
    d.subscription = subscription.into();
    d.event.id = event.into();
    d
}

#[test]
fn the_body_is_type_timestamp_and_data_with_the_sequence() {
    let body: serde_json::Value = serde_json::from_slice(&body(&event())).unwrap();
    assert_eq!(
        body,
        json!({"type": "record.created", "timestamp": "2026-12-03T10:00:00.000Z",
               "data": {"dataset": "customers", "key": "c1", "record": {"name": "Ada"}, "sequence": 42}})
    );
}

#[test]
fn secrets_are_whsec_and_base64_of_enough_bytes() {
    assert!(is_secret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"));
    assert!(!is_secret("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"), "no prefix");
    assert!(!is_secret("whsec_c2hvcnQ="), "too short");
    assert!(
        !is_secret("whsec_not base64 at all, with spaces!!"),
        "not base64"
    );
}

#[test]
fn only_public_addresses_pass_the_outbound_guard() {
    for private in [
        "127.0.0.1",
        "10.1.2.3",
        "172.16.0.1",
        "192.168.1.1",
        "169.254.169.254",
        "0.0.0.0",
        "100.64.0.1",
        "224.0.0.1",
        "255.255.255.255",
        "::1",
        "fe80::1",
        "fd00::1",
        "::",
        "::ffff:127.0.0.1",
        "ff02::1",
    ] {
        assert!(!is_public(IpAddr::from_str(private).unwrap()), "{private}");
    }
    for public in [
        "93.184.216.34",
        "1.1.1.1",
        "2606:4700:4700::1111",
        "::ffff:8.8.8.8",
    ] {
        assert!(is_public(IpAddr::from_str(public).unwrap()), "{public}");
    }
}

#[test]
fn retry_after_is_seconds_or_an_http_date() {
    let now = at("2026-12-03T10:00:00Z");
    assert_eq!(
        parse_retry_after("120", now),
        Some(Duration::from_secs(120))
    );
    assert_eq!(
        parse_retry_after("Thu, 03 Dec 2026 10:01:00 GMT", now),
        Some(Duration::from_secs(60))
    );
    assert_eq!(parse_retry_after("soon", now), None);
}

#[test]
fn the_schedule_makes_the_attempts_and_their_waits() {
    let settings = DeliverySettings::default().work();
    assert_eq!(settings.max_attempts, 8);
    assert_eq!(settings.backoff.after(1), Duration::from_secs(5));
    assert_eq!(settings.backoff.after(2), Duration::from_secs(300));
    assert_eq!(settings.backoff.after(7), Duration::from_secs(36_000));
}

#[test]
fn a_2xx_is_recorded_as_delivered_with_a_signed_stable_id() {
    let mut sender = MockWebhookSender::new();
    sender
        .expect_send()
        .withf(|w| {
            w.id == "evt_1" && w.url == "https://receiver.example/hook" && !w.body.is_empty()
        })
        .returning(|_| DeliveryResult::Delivered { status: 204 });
    let mut queue = MockDeliveryQueue::new();
    queue
        .expect_delivered()
        .withf(|done| done == [Delivered::of(&delivery(1), 204)])
        .times(1)
        .returning(|_| Ok(vec![true]));
    queue.expect_failed().never();
    let work = work_with(ports(queue, sender), DeliverySettings::default());
    futures_lite::future::block_on(work.work(&claimed(1))).unwrap();
}

#[test]
fn a_failure_is_recorded_with_its_status_and_retried() {
    let mut sender = MockWebhookSender::new();
    sender.expect_send().returning(|_| DeliveryResult::Retry {
        status: Some(503),
        retry_after: Some(Duration::from_secs(30)),
        reason: "503 Service Unavailable".into(),
    });
    let mut queue = MockDeliveryQueue::new();
    queue.expect_delivered().never();
    queue
        .expect_failed()
        .withf(|_, a, retry| a.status == Some(503) && *retry == Some(at("2026-12-03T10:00:31Z")))
        .times(1)
        .returning(|_, _, _| Ok(()));
    let work = work_with(ports(queue, sender), DeliverySettings::default());
    let item = claimed(1);
    let failed = futures_lite::future::block_on(work.work(&item));
    let Err(WorkError::Failed { retry_after, .. }) = failed else {
        panic!("{failed:?}")
    };
    assert_eq!(retry_after, Some(Duration::from_secs(30)));
    let retry = Some(at("2026-12-03T10:00:31Z"));
    futures_lite::future::block_on(work.fail(&item, retry, "ignored")).unwrap();
}

#[test]
fn a_retry_past_the_max_age_makes_the_delivery_dead() {
    let mut queue = MockDeliveryQueue::new();
    queue
        .expect_failed()
        .with(always(), always(), mockall::predicate::eq(None))
        .times(1)
        .returning(|_, _, _| Ok(()));
    let work = work_with(
        ports(queue, MockWebhookSender::new()),
        DeliverySettings {
            max_age: Duration::from_secs(3600),
            ..DeliverySettings::default()
        },
    );
    // The event was written at 10:00; a retry at 11:00:01 is past its hour.
    let retry = Some(at("2026-12-03T11:00:01Z"));
    futures_lite::future::block_on(work.fail(&claimed(3), retry, "timed out")).unwrap();
}

#[test]
fn a_refused_url_creates_nothing() {
    let mut sender = MockWebhookSender::new();
    sender
        .expect_check_url()
        .returning(|_| Err(UrlRefused("127.0.0.1 is a loopback address".into())));
    let mut subscriptions = MockSubscriptionStore::new();
    subscriptions.expect_create().never();
    let service = DeliveryService::new(
        DeliveryPorts {
            subscriptions: Arc::new(subscriptions),
            ..ports(MockDeliveryQueue::new(), sender)
        },
        DeliverySettings::default(),
    );
    let ds = DatasetName::parse("customers").unwrap();
    let refused =
        futures_lite::future::block_on(service.subscribe(&ds, "http://127.0.0.1/", None, None));
    assert!(
        matches!(&refused, Err(SubscribeError::UrlRefused(why)) if why.contains("loopback")),
        "{refused:?}"
    );
}

#[test]
fn a_malformed_secret_is_refused_and_a_missing_one_generated() {
    let mut sender = MockWebhookSender::new();
    sender.expect_check_url().returning(|_| Ok(()));
    sender
        .expect_new_secret()
        .times(1)
        .returning(|| "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".into());
    let mut subscriptions = MockSubscriptionStore::new();
    subscriptions
        .expect_create()
        .withf(|new| {
            new.secret.starts_with("whsec_") && new.events == Some(vec![EventKind::RecordCreated])
        })
        .times(1)
        .returning(|new| {
            Ok(Subscription {
                id: "sub_1".into(),
                dataset: new.dataset.clone(),
                url: new.url.clone(),
                events: new.events.clone(),
                secret: new.secret.clone(),
                status: crate::ports::SubscriptionStatus::Active,
                created_at: at("2026-12-03T10:00:00Z"),
            })
        });
    let service = DeliveryService::new(
        DeliveryPorts {
            subscriptions: Arc::new(subscriptions),
            ..ports(MockDeliveryQueue::new(), sender)
        },
        DeliverySettings::default(),
    );
    let ds = DatasetName::parse("customers").unwrap();
    let url = "https://receiver.example/hook";
    let bad =
        futures_lite::future::block_on(service.subscribe(&ds, url, None, Some("hunter2".into())));
    assert!(matches!(bad, Err(SubscribeError::InvalidSecret)), "{bad:?}");
    let kinds = Some(vec![EventKind::RecordCreated, EventKind::RecordCreated]);
    let made = futures_lite::future::block_on(service.subscribe(&ds, url, kinds, None)).unwrap();
    // The secret never shows in its Debug form.
    assert!(!format!("{made:?}").contains("whsec_"));
}

#[test]
fn a_batch_is_sent_at_once_and_its_successes_recorded_together() {
    let mut sender = MockWebhookSender::new();
    sender
        .expect_send()
        .times(3)
        .returning(|w| match w.id.as_str() {
            "evt_b" => DeliveryResult::Retry {
                status: Some(503),
                retry_after: None,
                reason: "503 Service Unavailable".into(),
            },
            _ => DeliveryResult::Delivered { status: 200 },
        });
    let mut queue = MockDeliveryQueue::new();
    // One call for both successes; the second one's claim had lapsed.
    queue
        .expect_delivered()
        .withf(|done| {
            done.iter().map(|d| d.event.as_str()).collect::<Vec<_>>() == ["evt_a", "evt_c"]
        })
        .times(1)
        .returning(|_| Ok(vec![true, false]));
    let work = work_with(ports(queue, sender), DeliverySettings::default());
    let items: Vec<Claimed> = ["evt_a", "evt_b", "evt_c"]
        .into_iter()
        .map(|e| Claimed {
            delivery: delivery_of("sub_1", e),
            outcome: Mutex::new(None),
            slot: Mutex::new(None),
        })
        .collect();
    let outcomes = futures_lite::future::block_on(work.work_all(&items));
    assert!(matches!(outcomes[0], Ok(())), "{outcomes:?}");
    assert!(
        matches!(outcomes[1], Err(WorkError::Failed { .. })),
        "{outcomes:?}"
    );
    assert!(
        matches!(outcomes[2], Err(WorkError::LeaseLost)),
        "{outcomes:?}"
    );
    let failed = items[1].outcome.lock().unwrap().clone().unwrap();
    assert_eq!(failed.status, Some(503));
}

#[test]
fn a_subscription_gets_no_more_requests_in_flight_than_its_concurrency() {
    let mut queue = MockDeliveryQueue::new();
    let mut seen = mockall::Sequence::new();
    // The first claim may take 2 of sub_1; it takes both.
    queue
        .expect_claim()
        .withf(|_, _, _, limits| limits.per_subscription == 2 && limits.room.is_empty())
        .times(1)
        .in_sequence(&mut seen)
        .returning(|_, _, _, _| {
            Ok(DeliveryClaim::Claimed(vec![
                delivery_of("sub_1", "evt_a"),
                delivery_of("sub_1", "evt_b"),
            ]))
        });
    // While they are in flight, sub_1 has no room left.
    queue
        .expect_claim()
        .withf(|_, _, _, limits| limits.room == [("sub_1".to_owned(), 0)])
        .times(1)
        .in_sequence(&mut seen)
        .returning(|_, _, _, _| Ok(DeliveryClaim::Idle(None)));
    // Once one was answered, it has room for one.
    queue
        .expect_claim()
        .withf(|_, _, _, limits| limits.room == [("sub_1".to_owned(), 1)])
        .times(1)
        .in_sequence(&mut seen)
        .returning(|_, _, _, _| Ok(DeliveryClaim::Idle(None)));
    let mut sender = MockWebhookSender::new();
    sender
        .expect_send()
        .returning(|_| DeliveryResult::Delivered { status: 200 });
    let work = work_with(
        ports(queue, sender),
        DeliverySettings {
            concurrency: 2,
            ..DeliverySettings::default()
        },
    );
    let now = at("2026-12-03T10:00:01Z");
    futures_lite::future::block_on(async {
        let Claim::Items(items) = work.claim("w", now).await.unwrap() else {
            panic!("claimed nothing")
        };
        assert_eq!(items.len(), 2);
        assert!(matches!(
            work.claim("w", now).await.unwrap(),
            Claim::Nothing { .. }
        ));
        work.send(&items[0]).await;
        assert!(matches!(
            work.claim("w", now).await.unwrap(),
            Claim::Nothing { .. }
        ));
    });
}

#[test]
fn housekeeping_prunes_in_batches_and_disables_failing_subscriptions() {
    let now = at("2026-12-03T10:00:01Z");
    let mut queue = MockDeliveryQueue::new();
    let mut pruned = vec![u64::from(PRUNE_BATCH), 7].into_iter();
    queue
        .expect_prune()
        .withf(move |before, _| *before == now - chrono::Duration::days(7))
        .times(2)
        .returning(move |_, _| Ok(pruned.next().unwrap()));
    let mut subscriptions = MockSubscriptionStore::new();
    subscriptions
        .expect_disable_failing()
        .withf(move |since| *since == now - chrono::Duration::days(5))
        .times(1)
        .returning(|_| Ok(Vec::new()));
    let service = DeliveryService::new(
        DeliveryPorts {
            subscriptions: Arc::new(subscriptions),
            ..ports(queue, MockWebhookSender::new())
        },
        DeliverySettings::default(),
    );
    let (pruned, disabled) = futures_lite::future::block_on(service.keep_house()).unwrap();
    assert_eq!(pruned, u64::from(PRUNE_BATCH) + 7);
    assert!(disabled.is_empty());
}
