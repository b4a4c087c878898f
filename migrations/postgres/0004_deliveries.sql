-- Deliveries (DESIGN §8): subscriptions of a dataset, and one delivery per (event,
-- subscription) so one receiver's outage never delays another's. Events stay in
-- `outbox`, written only when a subscription wants them; its old delivery columns
-- are unused.

CREATE TABLE subscriptions (
    id         text PRIMARY KEY,
    dataset    text NOT NULL REFERENCES datasets (name),
    url        text NOT NULL,
    events     text,               -- a JSON array of kinds; NULL: every kind
    secret     text NOT NULL,
    status     text NOT NULL DEFAULT 'active',
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX subscriptions_dataset ON subscriptions (dataset, created_at);

CREATE TABLE deliveries (
    subscription_id  text NOT NULL,
    event_id         text NOT NULL,
    status           text NOT NULL DEFAULT 'pending', -- pending | delivered | dead
    attempts         integer NOT NULL DEFAULT 0,
    next_attempt_at  timestamptz NOT NULL DEFAULT now(),
    lease_token      text,
    lease_expires_at timestamptz,
    last_attempt_at  timestamptz,
    last_status      integer,
    last_error       text,
    failed_at        timestamptz,         -- the last failed attempt, kept after a success
    failed_status    integer,
    PRIMARY KEY (subscription_id, event_id)
);
CREATE INDEX deliveries_due ON deliveries (next_attempt_at) WHERE status = 'pending';
CREATE INDEX deliveries_by_status ON deliveries (subscription_id, status, last_attempt_at);

-- New deliveries wake the delivery workers of every instance (see 0003).
CREATE TRIGGER deliveries_wake_workers
    AFTER INSERT ON deliveries
    FOR EACH STATEMENT
    EXECUTE FUNCTION intake_notify_work('deliveries');
