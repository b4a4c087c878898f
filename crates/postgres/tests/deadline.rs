//! A request's deadline reaches PostgreSQL: inside [`intake_domain::deadline::within`],
//! reads run in a transaction whose `statement_timeout` is the time left, so the server
//! stops a statement the request no longer waits for; outside, nothing is bounded.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

#[path = "support/schema.rs"]
mod support;

use std::time::{Duration, Instant};

use intake_domain::deadline::within;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_past_the_deadline_is_stopped_by_the_server() {
    let t = support::fresh().await;
    let started = Instant::now();
    let deadline = started + Duration::from_millis(300);
    let slow = sqlx::query("SELECT pg_sleep(5)");
    let error = within(deadline, t.store.fetch_all_bounded(slow))
        .await
        .expect_err("cancelled");
    let code = error
        .as_database_error()
        .and_then(|d| d.code())
        .map(|c| c.into_owned());
    assert_eq!(code.as_deref(), Some("57014"), "query_canceled: {error}");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "stopped near its deadline, not after 5 s: {:?}",
        started.elapsed()
    );

    // The setting was the transaction's: the pool's next read has no timeout.
    let rows = t
        .store
        .fetch_all_bounded(sqlx::query(
            "SELECT current_setting('statement_timeout') AS s",
        ))
        .await
        .unwrap();
    let setting: String = sqlx::Row::get(&rows[0], "s");
    assert_eq!(setting, "0");
    // And inside a deadline, the transaction carries the time left.
    let soon = Instant::now() + Duration::from_secs(20);
    let rows = within(
        soon,
        t.store.fetch_all_bounded(sqlx::query(
            "SELECT current_setting('statement_timeout') AS s",
        )),
    )
    .await
    .unwrap();
    let setting: String = sqlx::Row::get(&rows[0], "s");
    let millis: u64 = setting.trim_end_matches("ms").parse().unwrap();
    assert!((15_000..=20_000).contains(&millis), "about 20 s: {setting}");
    t.drop_schema().await;
}
