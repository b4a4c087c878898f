//! Answers in flight (issue 17): when an import commits, every cached answer of the
//! dataset is stale at once, and each request that asks before the new answer is
//! cached would compute it again: under load, dozens of identical aggregates at a
//! time, each slower for the others. A request that finds its answer missing while
//! another request is computing it waits for that one and sends the same bytes.
//!
//! The first request leads: it computes, hands the bytes over and leaves. The others
//! wait until it leaves; should it fail or be dropped (its client went away) without
//! an answer, each computes its own, as if nobody had been in flight.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use crate::ports::CacheKey;

/// Cheap to clone; clones share the flights.
#[derive(Clone, Default)]
pub(crate) struct Flights(Arc<Mutex<HashMap<CacheKey, Arc<Flight>>>>);

/// One answer being computed.
pub(crate) struct Flight {
    answer: Mutex<Option<Vec<u8>>>,
    /// Closed when the leader leaves: nothing is ever sent.
    left: async_channel::Receiver<()>,
}

/// The request computing an answer; others wait until it is dropped.
pub(crate) struct Leader {
    flights: Flights,
    key: CacheKey,
    flight: Arc<Flight>,
    _leaving: async_channel::Sender<()>,
}

/// Whether a request computes the answer or waits for another's.
pub(crate) enum Turn {
    Lead(Leader),
    Wait(Arc<Flight>),
}

impl Flights {
    fn lock(&self) -> MutexGuard<'_, HashMap<CacheKey, Arc<Flight>>> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Leads the flight of `key`, or joins the one in the air.
    pub(crate) fn board(&self, key: &CacheKey) -> Turn {
        let mut flights = self.lock();
        if let Some(flight) = flights.get(key) {
            return Turn::Wait(flight.clone());
        }
        let (leaving, left) = async_channel::bounded(1);
        let flight = Arc::new(Flight {
            answer: Mutex::new(None),
            left,
        });
        flights.insert(key.clone(), flight.clone());
        Turn::Lead(Leader {
            flights: self.clone(),
            key: key.clone(),
            flight,
            _leaving: leaving,
        })
    }
}

impl Flight {
    /// The leader's answer once it has left; `None` if it left without one.
    pub(crate) async fn landed(&self) -> Option<Vec<u8>> {
        // Nothing is sent: this returns when the leader's sender is dropped.
        let _ = self.left.recv().await;
        self.answer
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

impl Leader {
    /// Hands the answer to the requests waiting (they get it when this is dropped).
    pub(crate) fn answer(&self, bytes: &[u8]) {
        *self
            .flight
            .answer
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(bytes.to_vec());
    }
}

impl Drop for Leader {
    fn drop(&mut self) {
        let mut flights = self.flights.lock();
        if flights
            .get(&self.key)
            .is_some_and(|f| Arc::ptr_eq(f, &self.flight))
        {
            flights.remove(&self.key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{DatasetName, Revision};

    fn key(revision: u64) -> CacheKey {
        CacheKey {
            dataset: DatasetName::parse("exams").unwrap(),
            revision: Revision::new(revision),
            query: "aggregate".into(),
        }
    }

    #[test]
    fn followers_get_the_leaders_answer_and_a_new_flight_starts_after_it() {
        let flights = Flights::default();
        let Turn::Lead(leader) = flights.board(&key(1)) else {
            panic!("the first request leads");
        };
        let Turn::Wait(flight) = flights.board(&key(1)) else {
            panic!("the second waits");
        };
        assert!(
            matches!(flights.board(&key(2)), Turn::Lead(_)),
            "another revision is another flight"
        );
        leader.answer(b"42");
        drop(leader);
        assert_eq!(
            futures_lite::future::block_on(flight.landed()),
            Some(b"42".to_vec())
        );
        assert!(matches!(flights.board(&key(1)), Turn::Lead(_)));
    }

    #[test]
    fn a_leader_dropped_without_an_answer_leaves_followers_to_compute() {
        let flights = Flights::default();
        let Turn::Lead(leader) = flights.board(&key(1)) else {
            panic!("the first request leads");
        };
        let Turn::Wait(flight) = flights.board(&key(1)) else {
            panic!("the second waits");
        };
        drop(leader);
        assert_eq!(futures_lite::future::block_on(flight.landed()), None);
    }
}
