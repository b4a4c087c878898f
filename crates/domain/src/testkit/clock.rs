//! A real clock that needs no async runtime, for suites and tests.

use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::ports::Clock;

/// The system time; `sleep` waits on a helper thread (fine for tests, where sleeps are
/// few; the binary uses its runtime's timer).
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

#[async_trait::async_trait]
impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }

    async fn sleep(&self, duration: Duration) {
        let (tx, rx) = async_channel::bounded::<()>(1);
        let spawned = std::thread::Builder::new()
            .name("intake-test-sleep".into())
            .spawn(move || {
                std::thread::sleep(duration);
                let _ = tx.send_blocking(());
            });
        if spawned.is_ok() {
            let _ = rx.recv().await;
        }
    }
}

/// The system time, with sleeps that never end: whoever waits on it is only woken by a
/// notification, so a test of a wake-up cannot pass by polling.
#[derive(Debug, Clone, Copy, Default)]
pub struct Sleepless;

#[async_trait::async_trait]
impl Clock for Sleepless {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }

    async fn sleep(&self, _: Duration) {
        futures_lite::future::pending::<()>().await;
    }
}
