-- Deliveries claimed in batches, a subscription's room at a time (ADR 19): due
-- deliveries are found per subscription, so one subscription's backlog is never walked
-- to reach another's. Subscriptions remember since when every attempt has failed
-- (`delivery_disable_after`). The old outbox's own due index is unused since 0002 and
-- cost every event an index entry.

DROP INDEX deliveries_due;
CREATE INDEX deliveries_due ON deliveries (subscription_id, next_attempt_at) WHERE status = 'pending';
ALTER TABLE subscriptions ADD COLUMN failing_since TEXT;
DROP INDEX outbox_due;
