-- Reprocess jobs (ADR 34): an import held for a job is processed by that job alone,
-- without events or callback timers; finishing it clears the mark.
ALTER TABLE imports ADD COLUMN held_for text;
CREATE INDEX imports_held ON imports (held_for, seq) WHERE held_for IS NOT NULL;
