//! Subscriptions and their deliveries. A delivery's lease is columns of its row, and a
//! claim moves its next attempt to the lease's end (so due deliveries are one index
//! range, and one whose claimer died comes due on its own); SQLite
//! runs one writer at a time, so each claim (one `BEGIN IMMEDIATE` transaction taking
//! each subscription's oldest due deliveries) is atomic across threads and processes.

use std::time::Duration;

use chrono::{DateTime, Utc};
use intake_domain::DatasetName;
use intake_domain::delivery::Audience;
use intake_domain::ports::{
    Attempt, ClaimLimits, Delivered, Delivery, DeliveryClaim, DeliveryCounts, DeliveryError,
    DeliveryInfo, DeliveryListing, DeliveryQueue, DeliveryStatus, Event, EventKind,
    NewSubscription, Replay, Subscription, SubscriptionChange, SubscriptionStatus,
    SubscriptionStore,
};
use sqlx::sqlite::SqliteRow;
use sqlx::{Row as _, SqliteConnection};

use crate::queue::expiry;
use crate::{SqliteStore, lock_timed_out, new_id, now, parse_ts, ts, unexpected};

const SUBSCRIPTION: &str = "id, dataset, url, events, secret, status, created_at";

fn subscription(row: &SqliteRow) -> anyhow::Result<Subscription> {
    let events: Option<String> = row.try_get("events")?;
    let status: String = row.try_get("status")?;
    Ok(Subscription {
        id: row.try_get("id")?,
        dataset: DatasetName::parse(row.try_get::<String, _>("dataset")?)?,
        url: row.try_get("url")?,
        events: events.map(|e| serde_json::from_str(&e)).transpose()?,
        secret: row.try_get("secret")?,
        status: SubscriptionStatus::parse(&status)
            .ok_or_else(|| anyhow::anyhow!("unknown subscription status {status:?}"))?,
        created_at: parse_ts(&row.try_get::<String, _>("created_at")?)?,
    })
}

/// The subscriptions of `dataset`, as an import's transaction sees them.
pub(crate) async fn audience(
    conn: &mut SqliteConnection,
    dataset: &DatasetName,
) -> Result<Audience, sqlx::Error> {
    let rows: Vec<(String, Option<String>)> =
        sqlx::query_as("SELECT id, events FROM subscriptions WHERE dataset = ? ORDER BY id")
            .bind(dataset.as_str())
            .fetch_all(conn)
            .await?;
    let subscribers = rows
        .into_iter()
        .map(|(id, events)| {
            let kinds: Option<Vec<EventKind>> = events.and_then(|e| serde_json::from_str(&e).ok());
            (id, kinds)
        })
        .collect();
    Ok(Audience::new(subscribers))
}

#[async_trait::async_trait]
impl SubscriptionStore for SqliteStore {
    async fn create(&self, new: &NewSubscription) -> Result<Subscription, DeliveryError> {
        let events = new
            .events
            .as_ref()
            .map(serde_json::to_string)
            .transpose()
            .map_err(anyhow::Error::new)?;
        let row = sqlx::query(&format!(
            "INSERT INTO subscriptions (id, dataset, url, events, secret, created_at) \
             SELECT ?, name, ?, ?, ?, ? FROM datasets WHERE name = ? AND deleted_at IS NULL RETURNING {SUBSCRIPTION}"
        ))
        .bind(format!("sub_{}", new_id()))
        .bind(&new.url)
        .bind(events)
        .bind(&new.secret)
        .bind(ts(now()))
        .bind(new.dataset.as_str())
        .fetch_optional(&self.writes)
        .await
        .map_err(unexpected("creating a subscription"))?;
        Ok(subscription(&row.ok_or(DeliveryError::UnknownDataset)?)?)
    }

    async fn list(&self, dataset: &DatasetName) -> Result<Vec<Subscription>, DeliveryError> {
        let rows = sqlx::query(&format!(
            "SELECT {SUBSCRIPTION} FROM subscriptions WHERE dataset = ? ORDER BY created_at, id"
        ))
        .bind(dataset.as_str())
        .fetch_all(&self.pool)
        .await
        .map_err(unexpected("listing subscriptions"))?;
        Ok(rows
            .iter()
            .map(subscription)
            .collect::<anyhow::Result<_>>()?)
    }

    async fn get(&self, dataset: &DatasetName, id: &str) -> Result<Subscription, DeliveryError> {
        let row = sqlx::query(&format!(
            "SELECT {SUBSCRIPTION} FROM subscriptions WHERE dataset = ? AND id = ?"
        ))
        .bind(dataset.as_str())
        .bind(id)
        .fetch_optional(&self.pool)
        .await
        .map_err(unexpected("reading a subscription"))?;
        Ok(subscription(&row.ok_or(DeliveryError::NotFound)?)?)
    }

    async fn delete(&self, dataset: &DatasetName, id: &str) -> Result<(), DeliveryError> {
        let mut tx = self
            .writes
            .begin()
            .await
            .map_err(unexpected("deleting a subscription"))?;
        let deleted = sqlx::query("DELETE FROM subscriptions WHERE dataset = ? AND id = ?")
            .bind(dataset.as_str())
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(unexpected("deleting a subscription"))?;
        if deleted.rows_affected() == 0 {
            return Err(DeliveryError::NotFound);
        }
        sqlx::query("DELETE FROM deliveries WHERE subscription_id = ?")
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(unexpected("deleting a subscription's deliveries"))?;
        tx.commit()
            .await
            .map_err(unexpected("deleting a subscription"))?;
        Ok(())
    }

    async fn counts(&self, id: &str) -> Result<DeliveryCounts, DeliveryError> {
        let row = sqlx::query(
            "SELECT \
               COUNT(*) FILTER (WHERE status = 'pending') AS pending, \
               COUNT(*) FILTER (WHERE status = 'delivered') AS delivered, \
               COUNT(*) FILTER (WHERE status = 'dead') AS dead, \
               MAX(last_attempt_at) FILTER (WHERE status = 'delivered') AS last_success_at, \
               MAX(failed_at) AS last_failure_at, \
               (SELECT failed_status FROM deliveries f WHERE f.subscription_id = ?1 \
                  AND f.failed_at IS NOT NULL ORDER BY f.failed_at DESC LIMIT 1) AS last_failure_status \
             FROM deliveries WHERE subscription_id = ?1",
        )
        .bind(id)
        .fetch_one(&self.pool)
        .await
        .map_err(unexpected("counting deliveries"))?;
        let at = |name: &str| -> anyhow::Result<Option<DateTime<Utc>>> {
            row.try_get::<Option<String>, _>(name)?
                .map(|t| parse_ts(&t))
                .transpose()
        };
        let count = |name: &str| -> anyhow::Result<u64> {
            Ok(u64::try_from(row.try_get::<i64, _>(name)?).unwrap_or(0))
        };
        Ok(DeliveryCounts {
            pending: count("pending")?,
            delivered: count("delivered")?,
            dead: count("dead")?,
            last_success_at: at("last_success_at")?,
            last_failure_at: at("last_failure_at")?,
            last_failure_status: row
                .try_get::<Option<i64>, _>("last_failure_status")
                .map_err(anyhow::Error::new)?
                .and_then(|s| u16::try_from(s).ok()),
        })
    }
    async fn update(
        &self,
        dataset: &DatasetName,
        id: &str,
        change: &SubscriptionChange,
    ) -> Result<Subscription, DeliveryError> {
        let events = match &change.events {
            Some(Some(kinds)) => Some(serde_json::to_string(kinds).map_err(anyhow::Error::new)?),
            _ => None,
        };
        let row = sqlx::query(&format!(
            "UPDATE subscriptions SET url = COALESCE(?1, url), \
               events = CASE WHEN ?2 THEN ?3 ELSE events END, \
               status = COALESCE(?4, status), secret = COALESCE(?5, secret), \
               failing_since = CASE WHEN ?4 = 'active' THEN NULL ELSE failing_since END \
             WHERE dataset = ?6 AND id = ?7 RETURNING {SUBSCRIPTION}"
        ))
        .bind(change.url.as_deref())
        .bind(change.events.is_some())
        .bind(events)
        .bind(change.status.map(SubscriptionStatus::as_str))
        .bind(change.secret.as_deref())
        .bind(dataset.as_str())
        .bind(id)
        .fetch_optional(&self.writes)
        .await
        .map_err(unexpected("changing a subscription"))?;
        Ok(subscription(&row.ok_or(DeliveryError::NotFound)?)?)
    }

    async fn disable_failing(
        &self,
        since: DateTime<Utc>,
    ) -> Result<Vec<Subscription>, DeliveryError> {
        let rows = sqlx::query(&format!(
            "UPDATE subscriptions SET status = 'disabled' \
             WHERE status = 'active' AND failing_since < ? RETURNING {SUBSCRIPTION}"
        ))
        .bind(ts(since))
        .fetch_all(&self.writes)
        .await
        .map_err(unexpected("disabling failing subscriptions"))?;
        Ok(rows
            .iter()
            .map(subscription)
            .collect::<anyhow::Result<_>>()?)
    }
}

/// A JSON array of arrays of strings, for `json_each`.
fn json_rows<const N: usize>(rows: impl Iterator<Item = [String; N]>) -> String {
    serde_json::Value::Array(
        rows.map(|row| serde_json::Value::Array(row.into_iter().map(Into::into).collect()))
            .collect(),
    )
    .to_string()
}

#[async_trait::async_trait]
impl DeliveryQueue for SqliteStore {
    async fn claim(
        &self,
        _worker: &str,
        at: DateTime<Utc>,
        lease: Duration,
        limits: &ClaimLimits,
    ) -> Result<DeliveryClaim, DeliveryError> {
        let token = new_id();
        let mut tx = match self.writes.begin_with("BEGIN IMMEDIATE").await {
            // An import holds the single write lock: nothing can be claimed now.
            Err(e) if lock_timed_out(&e) => return Ok(DeliveryClaim::Idle(None)),
            other => other.map_err(unexpected("claiming deliveries"))?,
        };
        // Subscriptions in a random order, so a batch full of the first ones never
        // starves the others.
        let active: Vec<String> = sqlx::query_scalar(
            "SELECT id FROM subscriptions WHERE status = 'active' ORDER BY random()",
        )
        .fetch_all(&mut *tx)
        .await
        .map_err(unexpected("claiming deliveries"))?;
        let with_room: Vec<(String, u32)> = active
            .into_iter()
            .map(|id| {
                let room = limits.room_of(&id);
                (id, room)
            })
            .filter(|(_, room)| *room > 0)
            .collect();
        let mut claimed: Vec<(String, String, i64)> = Vec::new();
        for (id, room) in &with_room {
            let left = limits
                .most
                .saturating_sub(u32::try_from(claimed.len()).unwrap_or(u32::MAX));
            if left == 0 {
                break;
            }
            let rows: Vec<(String, String, i64)> = sqlx::query_as(
                "UPDATE deliveries SET attempts = attempts + 1, lease_token = ?1, \
                   lease_expires_at = ?2, next_attempt_at = ?2 \
                 WHERE (subscription_id, event_id) IN ( \
                   SELECT subscription_id, event_id FROM deliveries \
                   WHERE subscription_id = ?3 AND status = 'pending' AND next_attempt_at <= ?4 \
                   ORDER BY next_attempt_at LIMIT ?5) \
                 RETURNING subscription_id, event_id, attempts",
            )
            .bind(&token)
            .bind(ts(expiry(at, lease)))
            .bind(id)
            .bind(ts(at))
            .bind(i64::from((*room).min(left)))
            .fetch_all(&mut *tx)
            .await
            .map_err(unexpected("claiming deliveries"))?;
            claimed.extend(rows);
        }
        tx.commit()
            .await
            .map_err(unexpected("claiming deliveries"))?;
        if claimed.is_empty() {
            let subscriptions = json_rows(with_room.into_iter().map(|(id, _)| [id]));
            let next: Option<String> = sqlx::query_scalar(
                "SELECT MIN((SELECT d.next_attempt_at FROM deliveries d \
                   WHERE d.subscription_id = json_extract(j.value, '$[0]') AND d.status = 'pending' \
                   ORDER BY d.next_attempt_at LIMIT 1)) FROM json_each(?) j",
            )
            .bind(subscriptions)
            .fetch_one(&self.pool)
            .await
            .map_err(unexpected("finding the next delivery"))?;
            return Ok(DeliveryClaim::Idle(next.map(|t| parse_ts(&t)).transpose()?));
        }
        let keys = json_rows(
            claimed
                .iter()
                .map(|(sub, event, attempts)| [sub.clone(), event.clone(), attempts.to_string()]),
        );
        let rows = sqlx::query(
            "SELECT json_extract(j.value, '$[0]') AS subscription_id, \
               CAST(json_extract(j.value, '$[2]') AS INTEGER) AS attempts, o.id, o.seq, o.dataset, \
               o.kind, o.payload, o.created_at, s.url, s.secret \
             FROM json_each(?) j JOIN outbox o ON o.id = json_extract(j.value, '$[1]') \
             JOIN subscriptions s ON s.id = json_extract(j.value, '$[0]') \
             ORDER BY j.key",
        )
        .bind(keys)
        .fetch_all(&self.pool)
        .await
        .map_err(unexpected("reading claimed deliveries"))?;
        let deliveries = rows
            .iter()
            .map(|row| {
                let subscription: String = row.try_get("subscription_id")?;
                let attempts: i64 = row.try_get("attempts")?;
                delivery(row, subscription, attempts, token.clone())
            })
            .collect::<anyhow::Result<_>>()?;
        Ok(DeliveryClaim::Claimed(deliveries))
    }

    async fn delivered(&self, done: &[Delivered]) -> Result<Vec<bool>, DeliveryError> {
        let rows = json_rows(done.iter().map(|d| {
            [
                d.subscription.clone(),
                d.event.clone(),
                d.token.clone(),
                d.status.to_string(),
            ]
        }));
        let mut tx = self
            .writes
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(unexpected("recording deliveries"))?;
        let recorded: Vec<(String, String)> = sqlx::query_as(
            "UPDATE deliveries SET status = 'delivered', lease_token = NULL, \
               lease_expires_at = NULL, last_attempt_at = ?2, last_status = CAST(u.status AS INTEGER), \
               last_error = '' \
             FROM (SELECT json_extract(value, '$[0]') AS sub, json_extract(value, '$[1]') AS event, \
                     json_extract(value, '$[2]') AS token, json_extract(value, '$[3]') AS status \
                   FROM json_each(?1)) AS u \
             WHERE deliveries.subscription_id = u.sub AND deliveries.event_id = u.event \
               AND deliveries.lease_token = u.token AND deliveries.status = 'pending' \
             RETURNING subscription_id, event_id",
        )
        .bind(&rows)
        .bind(ts(now()))
        .fetch_all(&mut *tx)
        .await
        .map_err(unexpected("recording deliveries"))?;
        let subscriptions = json_rows(recorded.iter().map(|(sub, _)| [sub.clone()]));
        sqlx::query(
            "UPDATE subscriptions SET failing_since = NULL WHERE failing_since IS NOT NULL \
             AND id IN (SELECT json_extract(value, '$[0]') FROM json_each(?))",
        )
        .bind(subscriptions)
        .execute(&mut *tx)
        .await
        .map_err(unexpected("recording deliveries"))?;
        tx.commit()
            .await
            .map_err(unexpected("recording deliveries"))?;
        let recorded: std::collections::HashSet<(String, String)> = recorded.into_iter().collect();
        Ok(done
            .iter()
            .map(|d| recorded.contains(&(d.subscription.clone(), d.event.clone())))
            .collect())
    }

    async fn failed(
        &self,
        delivery: &Delivery,
        attempt: &Attempt,
        retry_at: Option<DateTime<Utc>>,
    ) -> Result<(), DeliveryError> {
        let at = ts(now());
        let mut tx = self
            .writes
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(unexpected("recording a failed delivery"))?;
        let recorded = sqlx::query(
            "UPDATE deliveries SET status = CASE WHEN ?1 IS NULL THEN 'dead' ELSE status END, \
               next_attempt_at = COALESCE(?1, next_attempt_at), lease_token = NULL, \
               lease_expires_at = NULL, last_attempt_at = ?2, last_status = ?3, last_error = ?4, \
               failed_at = ?2, failed_status = ?3 \
             WHERE subscription_id = ?5 AND event_id = ?6 AND lease_token = ?7 AND status = 'pending'",
        )
        .bind(retry_at.map(ts))
        .bind(&at)
        .bind(attempt.status.map(i64::from))
        .bind(&attempt.error)
        .bind(&delivery.subscription)
        .bind(&delivery.event.id)
        .bind(&delivery.token)
        .execute(&mut *tx)
        .await
        .map_err(unexpected("recording a failed delivery"))?;
        if recorded.rows_affected() == 0 {
            return Err(DeliveryError::ClaimLost);
        }
        sqlx::query(
            "UPDATE subscriptions SET failing_since = ? WHERE id = ? AND failing_since IS NULL",
        )
        .bind(&at)
        .bind(&delivery.subscription)
        .execute(&mut *tx)
        .await
        .map_err(unexpected("recording a failed delivery"))?;
        tx.commit()
            .await
            .map_err(unexpected("recording a failed delivery"))?;
        Ok(())
    }

    async fn release(&self, delivery: &Delivery) -> Result<(), DeliveryError> {
        let released = sqlx::query(
            "UPDATE deliveries SET lease_token = NULL, lease_expires_at = NULL, \
               next_attempt_at = '1970-01-01T00:00:00.000000Z', \
               attempts = MAX(attempts - 1, 0) \
             WHERE subscription_id = ? AND event_id = ? AND lease_token = ? AND status = 'pending'",
        )
        .bind(&delivery.subscription)
        .bind(&delivery.event.id)
        .bind(&delivery.token)
        .execute(&self.writes)
        .await
        .map_err(unexpected("releasing a delivery"))?;
        match released.rows_affected() {
            0 => Err(DeliveryError::ClaimLost),
            _ => Ok(()),
        }
    }
    async fn list(
        &self,
        subscription: &str,
        listing: &DeliveryListing,
    ) -> Result<Vec<DeliveryInfo>, DeliveryError> {
        let rows = sqlx::query(
            "SELECT d.event_id, o.kind, o.seq, o.created_at, d.status, d.attempts, d.last_status, \
               d.last_error, d.last_attempt_at, d.next_attempt_at \
             FROM deliveries d JOIN outbox o ON o.id = d.event_id \
             WHERE d.subscription_id = ?1 AND (?2 IS NULL OR d.status = ?2) \
               AND (?3 IS NULL OR o.seq < ?3) \
             ORDER BY o.seq DESC LIMIT ?4",
        )
        .bind(subscription)
        .bind(listing.status.map(DeliveryStatus::as_str))
        .bind(listing.before)
        .bind(i64::from(listing.limit))
        .fetch_all(&self.pool)
        .await
        .map_err(unexpected("listing deliveries"))?;
        Ok(rows
            .iter()
            .map(delivery_info)
            .collect::<anyhow::Result<_>>()?)
    }

    async fn replay(
        &self,
        subscription: &str,
        replay: &Replay,
        at: DateTime<Utc>,
    ) -> Result<u64, DeliveryError> {
        let (which, event, since) = match replay {
            Replay::Event(id) => ("event", Some(id.as_str()), None),
            Replay::Dead => ("dead", None, None),
            Replay::Since(since) => ("since", None, Some(*since)),
        };
        let replayed = sqlx::query(
            "UPDATE deliveries SET status = 'pending', attempts = 0, next_attempt_at = ?1, \
               lease_token = NULL, lease_expires_at = NULL \
             WHERE subscription_id = ?2 \
               AND (lease_token IS NULL OR lease_expires_at < ?1 OR status <> 'pending') \
               AND CASE ?3 \
                 WHEN 'event' THEN event_id = ?4 \
                 WHEN 'dead' THEN status = 'dead' \
                 ELSE event_id IN (SELECT id FROM outbox WHERE created_at >= ?5) END",
        )
        .bind(ts(at))
        .bind(subscription)
        .bind(which)
        .bind(event)
        .bind(since.map(ts))
        .execute(&self.writes)
        .await
        .map_err(unexpected("replaying deliveries"))?;
        Ok(replayed.rows_affected())
    }

    /// Events are walked in `seq` order up to the first one young enough to keep, so
    /// a round with nothing to prune reads a row or two.
    async fn prune(&self, before: DateTime<Utc>, limit: u32) -> Result<u64, DeliveryError> {
        let mut tx = self
            .writes
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(unexpected("pruning delivered events"))?;
        let old: Vec<(i64, String, String)> = sqlx::query_as(
            "SELECT o.seq, o.id, o.dataset FROM outbox o \
             WHERE o.seq < COALESCE((SELECT y.seq FROM outbox y WHERE y.created_at >= ?1 \
                 ORDER BY y.seq LIMIT 1), 9223372036854775807) \
               AND NOT EXISTS (SELECT 1 FROM subscriptions s JOIN deliveries d \
                 ON d.subscription_id = s.id AND d.event_id = o.id \
                 WHERE s.dataset = o.dataset AND d.status <> 'delivered') \
             ORDER BY o.seq LIMIT ?2",
        )
        .bind(ts(before))
        .bind(i64::from(limit))
        .fetch_all(&mut *tx)
        .await
        .map_err(unexpected("pruning delivered events"))?;
        let events = json_rows(
            old.iter()
                .map(|(seq, id, dataset)| [seq.to_string(), id.clone(), dataset.clone()]),
        );
        sqlx::query(
            "DELETE FROM deliveries WHERE (subscription_id, event_id) IN ( \
               SELECT s.id, json_extract(j.value, '$[1]') FROM json_each(?1) j \
               JOIN subscriptions s ON s.dataset = json_extract(j.value, '$[2]'))",
        )
        .bind(&events)
        .execute(&mut *tx)
        .await
        .map_err(unexpected("pruning delivered events"))?;
        let pruned = sqlx::query(
            "DELETE FROM outbox WHERE seq IN ( \
               SELECT CAST(json_extract(value, '$[0]') AS INTEGER) FROM json_each(?1))",
        )
        .bind(&events)
        .execute(&mut *tx)
        .await
        .map_err(unexpected("pruning delivered events"))?;
        tx.commit()
            .await
            .map_err(unexpected("pruning delivered events"))?;
        Ok(pruned.rows_affected())
    }
}

fn delivery(
    row: &SqliteRow,
    subscription: String,
    attempt: i64,
    token: String,
) -> anyhow::Result<Delivery> {
    let kind: String = row.try_get("kind")?;
    let payload: String = row.try_get("payload")?;
    Ok(Delivery {
        event: Event {
            id: row.try_get("id")?,
            dataset: DatasetName::parse(row.try_get::<String, _>("dataset")?)?,
            kind: serde_json::from_value(serde_json::Value::String(kind))?,
            payload: serde_json::from_str(&payload)?,
            created_at: parse_ts(&row.try_get::<String, _>("created_at")?)?,
            sequence: row.try_get("seq")?,
        },
        subscription,
        url: row.try_get("url")?,
        secret: row.try_get("secret")?,
        attempt: u32::try_from(attempt).unwrap_or(u32::MAX),
        token,
    })
}

fn delivery_info(row: &SqliteRow) -> anyhow::Result<DeliveryInfo> {
    let kind: String = row.try_get("kind")?;
    let status: String = row.try_get("status")?;
    let at = |name: &str| -> anyhow::Result<Option<DateTime<Utc>>> {
        row.try_get::<Option<String>, _>(name)?
            .map(|t| parse_ts(&t))
            .transpose()
    };
    Ok(DeliveryInfo {
        event: row.try_get("event_id")?,
        kind: serde_json::from_value(serde_json::Value::String(kind))?,
        sequence: row.try_get("seq")?,
        created_at: parse_ts(&row.try_get::<String, _>("created_at")?)?,
        status: DeliveryStatus::parse(&status)
            .ok_or_else(|| anyhow::anyhow!("unknown delivery status {status:?}"))?,
        attempts: u32::try_from(row.try_get::<i64, _>("attempts")?).unwrap_or(0),
        last_status: row
            .try_get::<Option<i64>, _>("last_status")?
            .and_then(|s| u16::try_from(s).ok()),
        last_error: row.try_get("last_error")?,
        last_attempt_at: at("last_attempt_at")?,
        next_attempt_at: at("next_attempt_at")?.filter(|_| status == "pending"),
    })
}
