-- Callback timers are fired in the transaction that claims them (ADR 20): the lease
-- columns are not needed.
ALTER TABLE callbacks DROP COLUMN lease_token;
ALTER TABLE callbacks DROP COLUMN lease_expires_at;
