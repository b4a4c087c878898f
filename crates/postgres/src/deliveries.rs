//! Subscriptions and their deliveries. A claim takes, for each active subscription
//! with room, its oldest due deliveries with `FOR UPDATE SKIP LOCKED`, so any number of
//! workers in any number of instances never get the same one; a delivery's lease is
//! columns of its row. A claim moves the delivery's next attempt to its lease's end, so
//! the scan of due deliveries never walks over those in flight, and one whose claimer
//! died comes due on its own.

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
             SELECT $1, name, $2, $3, $4 FROM datasets WHERE name = $5 AND deleted_at IS NULL RETURNING {SUBSCRIPTION}"
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
               status = COALESCE($4, status), secret = COALESCE($5, secret), \
               failing_since = CASE WHEN $4 = 'active' THEN NULL ELSE failing_since END \
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

    async fn disable_failing(
        &self,
        since: DateTime<Utc>,
    ) -> Result<Vec<Subscription>, DeliveryError> {
        let rows = sqlx::query(&format!(
            "UPDATE subscriptions SET status = 'disabled' \
             WHERE status = 'active' AND failing_since < $1 RETURNING {SUBSCRIPTION}"
        ))
        .bind(since)
        .fetch_all(&self.pool)
        .await
        .map_err(unexpected("disabling failing subscriptions"))?;
        Ok(rows
            .iter()
            .map(subscription)
            .collect::<anyhow::Result<_>>()?)
    }
}

/// The active subscriptions with room, as a claim sees them: `$1` and `$2` are the
/// ids and room of those with less than `$3`, the room of the others.
const WITH_ROOM: &str = "WITH room AS (SELECT * FROM unnest($1::text[], $2::int[]) AS r(id, room)), \
     subs AS (SELECT s.id, COALESCE(r.room, $3) AS room FROM subscriptions s \
       LEFT JOIN room r ON r.id = s.id \
       WHERE s.status = 'active' AND COALESCE(r.room, $3) > 0)";

#[async_trait::async_trait]
impl DeliveryQueue for PgStore {
    async fn claim(
        &self,
        _worker: &str,
        at: DateTime<Utc>,
        lease: Duration,
        limits: &ClaimLimits,
    ) -> Result<DeliveryClaim, DeliveryError> {
        let token = new_id();
        let (ids, room): (Vec<&str>, Vec<i32>) = limits
            .room
            .iter()
            .map(|(id, room)| (id.as_str(), i32::try_from(*room).unwrap_or(i32::MAX)))
            .unzip();
        let per_subscription = i32::try_from(limits.per_subscription).unwrap_or(i32::MAX);
        // Subscriptions in a random order, so a batch full of the first ones never
        // starves the others.
        let rows = sqlx::query(&format!(
            "{WITH_ROOM}, \
             next AS ( \
               SELECT d.subscription_id, d.event_id \
               FROM (SELECT * FROM subs ORDER BY random()) subs, LATERAL ( \
                 SELECT d.subscription_id, d.event_id FROM deliveries d \
                 WHERE d.subscription_id = subs.id AND d.status = 'pending' AND d.next_attempt_at <= $4 \
                 ORDER BY d.next_attempt_at LIMIT subs.room FOR UPDATE SKIP LOCKED) d \
               LIMIT $5), \
             claimed AS ( \
               UPDATE deliveries d SET attempts = d.attempts + 1, lease_token = $6, \
                 lease_expires_at = $4 + make_interval(secs => $7), \
                 next_attempt_at = $4 + make_interval(secs => $7) \
               FROM next WHERE d.subscription_id = next.subscription_id AND d.event_id = next.event_id \
               RETURNING d.subscription_id, d.event_id, d.attempts) \
             SELECT c.subscription_id, c.attempts, o.id, o.seq, o.dataset, o.kind, o.payload::text AS payload, \
               o.created_at, s.url, s.secret \
             FROM claimed c JOIN outbox o ON o.id = c.event_id JOIN subscriptions s ON s.id = c.subscription_id \
             ORDER BY c.subscription_id, o.seq"
        ))
        .bind(&ids)
        .bind(&room)
        .bind(per_subscription)
        .bind(at)
        .bind(i64::from(limits.most))
        .bind(&token)
        .bind(seconds(lease))
        .fetch_all(&self.relaxed)
        .await
        .map_err(unexpected("claiming deliveries"))?;
        if rows.is_empty() {
            let next: Option<DateTime<Utc>> = sqlx::query_scalar(&format!(
                "{WITH_ROOM} SELECT MIN(n.next_attempt_at) FROM subs, LATERAL ( \
                   SELECT d.next_attempt_at FROM deliveries d \
                   WHERE d.subscription_id = subs.id AND d.status = 'pending' \
                   ORDER BY d.next_attempt_at LIMIT 1) n"
            ))
            .bind(&ids)
            .bind(&room)
            .bind(per_subscription)
            .fetch_one(&self.pool)
            .await
            .map_err(unexpected("finding the next delivery"))?;
            return Ok(DeliveryClaim::Idle(next));
        }
        let claimed = rows
            .iter()
            .map(|row| delivery(row, token.clone()))
            .collect::<anyhow::Result<_>>()?;
        Ok(DeliveryClaim::Claimed(claimed))
    }

    async fn delivered(&self, done: &[Delivered]) -> Result<Vec<bool>, DeliveryError> {
        let column = |f: fn(&Delivered) -> &str| done.iter().map(f).collect::<Vec<_>>();
        let statuses: Vec<i32> = done.iter().map(|d| i32::from(d.status)).collect();
        // A claim's token is set on pending deliveries only, so the token says the
        // status too; naming `status = 'pending'` would steer the planner, when its
        // statistics predate a burst of deliveries, to the partial due index (every
        // pending row of the subscription per recorded delivery) instead of the key.
        let recorded: Vec<(String, String)> = sqlx::query_as(
            "WITH done AS ( \
               UPDATE deliveries d SET status = 'delivered', lease_token = NULL, \
                 lease_expires_at = NULL, last_attempt_at = now(), last_status = u.status, \
                 last_error = '' \
               FROM unnest($1::text[], $2::text[], $3::text[], $4::int[]) AS u(sub, event, token, status) \
               WHERE d.subscription_id = u.sub AND d.event_id = u.event AND d.lease_token = u.token \
               RETURNING d.subscription_id, d.event_id), \
             recovered AS ( \
               UPDATE subscriptions s SET failing_since = NULL \
               WHERE s.failing_since IS NOT NULL AND s.id IN (SELECT subscription_id FROM done)) \
             SELECT subscription_id, event_id FROM done",
        )
        .bind(column(|d| &d.subscription))
        .bind(column(|d| &d.event))
        .bind(column(|d| &d.token))
        .bind(statuses)
        .fetch_all(&self.relaxed)
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
        let recorded: i64 = sqlx::query_scalar(
            "WITH failed AS ( \
               UPDATE deliveries SET status = CASE WHEN $1::timestamptz IS NULL THEN 'dead' ELSE status END, \
                 next_attempt_at = COALESCE($1, next_attempt_at), lease_token = NULL, \
                 lease_expires_at = NULL, last_attempt_at = now(), last_status = $2, \
                 last_error = $3, failed_at = now(), failed_status = $2 \
               WHERE subscription_id = $4 AND event_id = $5 AND lease_token = $6 AND status = 'pending' \
               RETURNING subscription_id), \
             failing AS ( \
               UPDATE subscriptions s SET failing_since = now() \
               WHERE s.failing_since IS NULL AND s.id IN (SELECT subscription_id FROM failed)) \
             SELECT COUNT(*) FROM failed",
        )
        .bind(retry_at)
        .bind(attempt.status.map(i32::from))
        .bind(&attempt.error)
        .bind(&delivery.subscription)
        .bind(&delivery.event.id)
        .bind(&delivery.token)
        .fetch_one(&self.relaxed)
        .await
        .map_err(unexpected("recording a failed delivery"))?;
        match recorded {
            0 => Err(DeliveryError::ClaimLost),
            _ => Ok(()),
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

    /// Events are walked in `seq` order up to the first one young enough to keep, so
    /// a round with nothing to prune reads a row or two.
    async fn prune(&self, before: DateTime<Utc>, limit: u32) -> Result<u64, DeliveryError> {
        let pruned = sqlx::query(
            "WITH old AS ( \
               SELECT o.seq, o.id, o.dataset FROM outbox o \
               WHERE o.seq < COALESCE((SELECT y.seq FROM outbox y WHERE y.created_at >= $1 \
                   ORDER BY y.seq LIMIT 1), 9223372036854775807) \
                 AND NOT EXISTS (SELECT 1 FROM subscriptions s JOIN deliveries d \
                   ON d.subscription_id = s.id AND d.event_id = o.id \
                   WHERE s.dataset = o.dataset AND d.status <> 'delivered') \
               ORDER BY o.seq LIMIT $2), \
             gone AS ( \
               DELETE FROM deliveries d USING old, subscriptions s \
               WHERE s.dataset = old.dataset AND d.subscription_id = s.id AND d.event_id = old.id) \
             DELETE FROM outbox o USING old WHERE o.seq = old.seq",
        )
        .bind(before)
        .bind(i64::from(limit))
        .execute(&self.pool)
        .await
        .map_err(unexpected("pruning delivered events"))?;
        Ok(pruned.rows_affected())
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
