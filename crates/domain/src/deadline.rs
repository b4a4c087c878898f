//! The deadline of the work being done: a request's `Request-Timeout` (DESIGN §11),
//! carried with the future that does the work, so that every layer below can bound
//! what it starts (the PostgreSQL adapter sets the `statement_timeout` of its
//! transaction from it) without a parameter on every call.
//!
//! [`within`] wraps a future: while it is polled, [`current`] answers its deadline.
//! Like a task-local, it needs no runtime: the value is set around each poll, on the
//! thread doing the poll, and restored afterwards. Work spawned onto other tasks does
//! not inherit it.

use std::cell::Cell;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

thread_local! {
    static CURRENT: Cell<Option<Instant>> = const { Cell::new(None) };
}

/// The deadline of the future being polled on this thread, if it has one.
pub fn current() -> Option<Instant> {
    CURRENT.with(Cell::get)
}

/// `future`, with `deadline` as [`current`] while it runs. A deadline inside another
/// keeps the earlier of the two.
pub fn within<F: Future>(deadline: Instant, future: F) -> Within<F> {
    Within {
        deadline,
        future: Box::pin(future),
    }
}

/// The future [`within`] gives.
pub struct Within<F> {
    deadline: Instant,
    future: Pin<Box<F>>,
}

impl<F: Future> Future for Within<F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let outer = current();
        let deadline = outer.map_or(self.deadline, |o| o.min(self.deadline));
        CURRENT.with(|c| c.set(Some(deadline)));
        let polled = self.future.as_mut().poll(cx);
        CURRENT.with(|c| c.set(outer));
        polled
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use futures_lite::future;

    use super::*;

    #[test]
    fn the_deadline_is_seen_inside_and_only_inside() {
        let at = Instant::now() + Duration::from_secs(5);
        assert_eq!(current(), None);
        let seen = future::block_on(within(at, async {
            future::yield_now().await;
            current()
        }));
        assert_eq!(seen, Some(at));
        assert_eq!(current(), None, "restored after the poll");
    }

    #[test]
    fn an_inner_deadline_cannot_extend_the_outer_one() {
        let soon = Instant::now() + Duration::from_secs(1);
        let later = soon + Duration::from_secs(10);
        let seen = future::block_on(within(soon, within(later, async { current() })));
        assert_eq!(seen, Some(soon));
        let seen = future::block_on(within(later, within(soon, async { current() })));
        assert_eq!(seen, Some(soon));
    }
}
