//! Subscriptions and their deliveries. Claims take the oldest due delivery with
//! `FOR UPDATE SKIP LOCKED`, so any number of workers in any number of instances never
//! get the same one; a delivery's lease is columns of its row. A claim moves the
//! delivery's next attempt to its lease's end, so the scan of due deliveries never
//! walks over those in flight, and one whose claimer died comes due on its own.

use std::time::Duration;

use chrono::{DateTime, Utc};
use intake_domain::DatasetName;
use intake_domain::delivery::Audience;
use intake_domain::ports::{
    Attempt, Delivery, DeliveryClaim, DeliveryCounts, DeliveryError, DeliveryInfo, DeliveryListing,
    DeliveryQueue, DeliveryStatus, Event, EventKind, NewSubscription, Replay, Subscription,
    SubscriptionChange, SubscriptionStatus, SubscriptionStore,
};
use sqlx::postgres::PgRow;
use sqlx::{PgConnection, Row as _};

use crate::{PgStore, new_id, seconds, unexpected};

const SUBSCRIPTION: &str = "id, dataset, url, events, secret, status, created_at";

fn subscription(row: &PgRow) -> anyhow::Result<Subscription> {
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
        created_at: row.try_get("created_at")?,
    })
}

/// The subscriptions of `dataset`, as an import's transaction sees them.
pub(crate) async fn audience(
    conn: &mut PgConnection,
    dataset: &DatasetName,
) -> Result<Audience, sqlx::Error> {
    let rows: Vec<(String, Option<String>)> =
        sqlx::query_as("SELECT id, events FROM subscriptions WHERE dataset = $1 ORDER BY id")
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
impl SubscriptionStore for PgStore {
    async fn create(&self, new: &NewSubscription) -> Result<Subscription, DeliveryError> {
        let events = new
            .events
            .as_ref()
            .map(serde_json::to_string)
            .transpose()
            .map_err(anyhow::Error::new)?;
        let row = sqlx::query(&format!(
            "INSERT INTO subscriptions (id, dataset, url, events, secret) \
             SELECT $1, name, $2, $3, $4 FROM datasets WHERE name = $5 RETURNING {SUBSCRIPTION}"
        ))
        .bind(format!("sub_{}", new_id()))
        .bind(&new.url)
        .bind(events)
        .bind(&new.secret)
        .bind(new.dataset.as_str())
        .fetch_optional(&self.pool)
        .await
        .map_err(unexpected("creating a subscription"))?;
        Ok(subscription(&row.ok_or(DeliveryError::UnknownDataset)?)?)
    }

    async fn list(&self, dataset: &DatasetName) -> Result<Vec<Subscription>, DeliveryError> {
        let rows = sqlx::query(&format!(
            "SELECT {SUBSCRIPTION} FROM subscriptions WHERE dataset = $1 ORDER BY created_at, id"
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
            "SELECT {SUBSCRIPTION} FROM subscriptions WHERE dataset = $1 AND id = $2"
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
            .pool
            .begin()
            .await
            .map_err(unexpected("deleting a subscription"))?;
        let deleted = sqlx::query("DELETE FROM subscriptions WHERE dataset = $1 AND id = $2")
            .bind(dataset.as_str())
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(unexpected("deleting a subscription"))?;
        if deleted.rows_affected() == 0 {
            return Err(DeliveryError::NotFound);
        }
        sqlx::query("DELETE FROM deliveries WHERE subscription_id = $1")
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
               (SELECT failed_status FROM deliveries f WHERE f.subscription_id = $1 \
                  AND f.failed_at IS NOT NULL ORDER BY f.failed_at DESC LIMIT 1) AS last_failure_status \
             FROM deliveries WHERE subscription_id = $1",
        )
        .bind(id)
        .fetch_one(&self.pool)
        .await
        .map_err(unexpected("counting deliveries"))?;
        let count = |name: &str| -> anyhow::Result<u64> {
            Ok(u64::try_from(row.try_get::<i64, _>(name)?).unwrap_or(0))
        };
        Ok(DeliveryCounts {
            pending: count("pending")?,
            delivered: count("delivered")?,
            dead: count("dead")?,
            last_success_at: row.try_get("last_success_at").map_err(anyhow::Error::new)?,
            last_failure_at: row.try_get("last_failure_at").map_err(anyhow::Error::new)?,
            last_failure_status: row
                .try_get::<Option<i32>, _>("last_failure_status")
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
            "UPDATE subscriptions SET url = COALESCE($1, url), \
               events = CASE WHEN $2 THEN $3 ELSE events END, \
               status = COALESCE($4, status), secret = COALESCE($5, secret) \
             WHERE dataset = $6 AND id = $7 RETURNING {SUBSCRIPTION}"
        ))
        .bind(change.url.as_deref())
        .bind(change.events.is_some())
        .bind(events)
        .bind(change.status.map(SubscriptionStatus::as_str))
        .bind(change.secret.as_deref())
        .bind(dataset.as_str())
        .bind(id)
        .fetch_optional(&self.pool)
        .await
        .map_err(unexpected("changing a subscription"))?;
        Ok(subscription(&row.ok_or(DeliveryError::NotFound)?)?)
    }
}

#[async_trait::async_trait]
impl DeliveryQueue for PgStore {
    async fn claim(
        &self,
        _worker: &str,
        at: DateTime<Utc>,
        lease: Duration,
    ) -> Result<DeliveryClaim, DeliveryError> {
        let token = new_id();
        let row = sqlx::query(
            "WITH next AS ( \
               SELECT d.subscription_id, d.event_id FROM deliveries d \
               WHERE d.status = 'pending' AND NOT EXISTS (SELECT 1 FROM subscriptions s \
                 WHERE s.id = d.subscription_id AND s.status <> 'active') \
                 AND d.next_attempt_at <= $1 \
               ORDER BY d.next_attempt_at LIMIT 1 FOR UPDATE OF d SKIP LOCKED), \
             claimed AS ( \
               UPDATE deliveries d SET attempts = d.attempts + 1, lease_token = $2, \
                 lease_expires_at = $1 + make_interval(secs => $3), \
                 next_attempt_at = $1 + make_interval(secs => $3) \
               FROM next WHERE d.subscription_id = next.subscription_id AND d.event_id = next.event_id \
               RETURNING d.subscription_id, d.event_id, d.attempts) \
             SELECT c.subscription_id, c.attempts, o.id, o.seq, o.dataset, o.kind, o.payload::text AS payload, \
               o.created_at, s.url, s.secret \
             FROM claimed c JOIN outbox o ON o.id = c.event_id JOIN subscriptions s ON s.id = c.subscription_id",
        )
        .bind(at)
        .bind(&token)
        .bind(seconds(lease))
        .fetch_optional(&self.relaxed)
        .await
        .map_err(unexpected("claiming a delivery"))?;
        let Some(row) = row else {
            let next: Option<DateTime<Utc>> = sqlx::query_scalar(
                "SELECT MIN(d.next_attempt_at) FROM deliveries d WHERE d.status = 'pending' \
                 AND NOT EXISTS (SELECT 1 FROM subscriptions s \
                   WHERE s.id = d.subscription_id AND s.status <> 'active')",
            )
            .fetch_one(&self.pool)
            .await
            .map_err(unexpected("finding the next delivery"))?;
            return Ok(DeliveryClaim::Idle(next));
        };
        Ok(DeliveryClaim::Claimed(
            delivery(&row, token).map_err(DeliveryError::Unexpected)?,
        ))
    }

    async fn delivered(&self, delivery: &Delivery, attempt: &Attempt) -> Result<(), DeliveryError> {
        record(self, delivery, attempt, Some("delivered"), None).await
    }

    async fn failed(
        &self,
        delivery: &Delivery,
        attempt: &Attempt,
        retry_at: Option<DateTime<Utc>>,
    ) -> Result<(), DeliveryError> {
        match retry_at {
            Some(at) => record(self, delivery, attempt, None, Some(at)).await,
            None => record(self, delivery, attempt, Some("dead"), None).await,
        }
    }

    async fn release(&self, delivery: &Delivery) -> Result<(), DeliveryError> {
        let released = sqlx::query(
            "UPDATE deliveries SET lease_token = NULL, lease_expires_at = NULL, \
               next_attempt_at = 'epoch', \
               attempts = GREATEST(attempts - 1, 0) \
             WHERE subscription_id = $1 AND event_id = $2 AND lease_token = $3 AND status = 'pending'",
        )
        .bind(&delivery.subscription)
        .bind(&delivery.event.id)
        .bind(&delivery.token)
        .execute(&self.relaxed)
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
             WHERE d.subscription_id = $1 AND ($2::text IS NULL OR d.status = $2) \
               AND ($3::bigint IS NULL OR o.seq < $3) \
             ORDER BY o.seq DESC LIMIT $4",
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
            "UPDATE deliveries SET status = 'pending', attempts = 0, next_attempt_at = $1, \
               lease_token = NULL, lease_expires_at = NULL \
             WHERE subscription_id = $2 \
               AND (lease_token IS NULL OR lease_expires_at < $1 OR status <> 'pending') \
               AND CASE $3::text \
                 WHEN 'event' THEN event_id = $4 \
                 WHEN 'dead' THEN status = 'dead' \
                 ELSE event_id IN (SELECT id FROM outbox WHERE created_at >= $5) END",
        )
        .bind(at)
        .bind(subscription)
        .bind(which)
        .bind(event)
        .bind(since)
        .execute(&self.pool)
        .await
        .map_err(unexpected("replaying deliveries"))?;
        Ok(replayed.rows_affected())
    }
}

/// Records an attempt under the claim's token: a new status (`delivered`, `dead`) or
/// the next attempt's time.
async fn record(
    store: &PgStore,
    delivery: &Delivery,
    attempt: &Attempt,
    status: Option<&str>,
    retry_at: Option<DateTime<Utc>>,
) -> Result<(), DeliveryError> {
    let recorded = sqlx::query(
        "UPDATE deliveries SET status = COALESCE($1, status), \
           next_attempt_at = COALESCE($2, next_attempt_at), lease_token = NULL, \
           lease_expires_at = NULL, last_attempt_at = now(), last_status = $3, last_error = $4, \
           failed_at = CASE WHEN $8 THEN now() ELSE failed_at END, \
           failed_status = CASE WHEN $8 THEN $3 ELSE failed_status END \
         WHERE subscription_id = $5 AND event_id = $6 AND lease_token = $7 AND status = 'pending'",
    )
    .bind(status)
    .bind(retry_at)
    .bind(attempt.status.map(i32::from))
    .bind(&attempt.error)
    .bind(&delivery.subscription)
    .bind(&delivery.event.id)
    .bind(&delivery.token)
    .bind(status != Some("delivered"))
    .execute(&store.relaxed)
    .await
    .map_err(unexpected("recording a delivery attempt"))?;
    match recorded.rows_affected() {
        0 => Err(DeliveryError::ClaimLost),
        _ => Ok(()),
    }
}

fn delivery(row: &PgRow, token: String) -> anyhow::Result<Delivery> {
    let kind: String = row.try_get("kind")?;
    let payload: String = row.try_get("payload")?;
    let attempt: i32 = row.try_get("attempts")?;
    Ok(Delivery {
        event: Event {
            id: row.try_get("id")?,
            dataset: DatasetName::parse(row.try_get::<String, _>("dataset")?)?,
            kind: serde_json::from_value(serde_json::Value::String(kind))?,
            payload: serde_json::from_str(&payload)?,
            created_at: row.try_get("created_at")?,
            sequence: row.try_get("seq")?,
        },
        subscription: row.try_get("subscription_id")?,
        url: row.try_get("url")?,
        secret: row.try_get("secret")?,
        attempt: u32::try_from(attempt).unwrap_or(u32::MAX),
        token,
    })
}

fn delivery_info(row: &PgRow) -> anyhow::Result<DeliveryInfo> {
    let kind: String = row.try_get("kind")?;
    let status: String = row.try_get("status")?;
    Ok(DeliveryInfo {
        event: row.try_get("event_id")?,
        kind: serde_json::from_value(serde_json::Value::String(kind))?,
        sequence: row.try_get("seq")?,
        created_at: row.try_get("created_at")?,
        status: DeliveryStatus::parse(&status)
            .ok_or_else(|| anyhow::anyhow!("unknown delivery status {status:?}"))?,
        attempts: u32::try_from(row.try_get::<i32, _>("attempts")?).unwrap_or(0),
        last_status: row
            .try_get::<Option<i32>, _>("last_status")?
            .and_then(|s| u16::try_from(s).ok()),
        last_error: row.try_get("last_error")?,
        last_attempt_at: row.try_get("last_attempt_at")?,
        next_attempt_at: Some(row.try_get("next_attempt_at")?).filter(|_| status == "pending"),
    })
}
