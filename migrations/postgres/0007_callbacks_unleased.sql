-- Callback timers are fired in the transaction that claims them, under its row locks
-- (ADR 20): the lease columns are not needed.
ALTER TABLE callbacks DROP COLUMN lease_token, DROP COLUMN lease_expires_at;
