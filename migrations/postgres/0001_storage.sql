-- Storage on PostgreSQL (DESIGN §4, §6, §15): catalog, raw vault and queue, latest
-- state, history, identities, conflicts, outbox and callback timers. Leases live in
-- their own table so a worker can renew while its import's transaction holds the
-- import row (claimers skip that row: FOR UPDATE SKIP LOCKED). Documents that are only
-- stored and returned (records, history, event payloads) are `json`, which is checked
-- but not converted; `jsonb` is kept where queries look inside (dimensions).

CREATE TABLE datasets (
    name             text PRIMARY KEY,
    current_contract integer NOT NULL,
    revision         bigint NOT NULL DEFAULT 0,
    created_at       timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE contracts (
    dataset      text NOT NULL REFERENCES datasets (name),
    version      integer NOT NULL,
    body         jsonb NOT NULL,
    published_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (dataset, version)
);

CREATE TABLE imports (
    seq             bigserial UNIQUE,
    id              text PRIMARY KEY,
    dataset         text NOT NULL REFERENCES datasets (name),
    contract        integer NOT NULL,
    content_type    text NOT NULL,
    source          text NOT NULL,
    idempotency_key text,
    size            bigint NOT NULL,
    sha256          text NOT NULL,
    received_at     timestamptz NOT NULL DEFAULT now(),
    status          text NOT NULL CHECK (status IN ('received', 'processing', 'completed', 'failed')),
    report          jsonb,
    attempts        integer NOT NULL DEFAULT 0
);
CREATE UNIQUE INDEX imports_body ON imports (dataset, sha256);
CREATE UNIQUE INDEX imports_idempotency ON imports (dataset, idempotency_key)
    WHERE idempotency_key IS NOT NULL;
CREATE INDEX imports_waiting ON imports (seq) WHERE status IN ('received', 'processing');
CREATE INDEX imports_dataset ON imports (dataset, seq);

CREATE TABLE import_leases (
    import_id  text PRIMARY KEY REFERENCES imports (id),
    worker     text NOT NULL,
    token      text NOT NULL,
    expires_at timestamptz NOT NULL
);

-- The raw bytes, in order, written in the upload's own transaction.
CREATE TABLE vault_chunks (
    import_id text NOT NULL,
    n         integer NOT NULL,
    bytes     bytea NOT NULL,
    PRIMARY KEY (import_id, n)
);

CREATE TABLE records (
    dataset    text NOT NULL,
    key        text NOT NULL,
    record     json NOT NULL,
    dimensions jsonb NOT NULL,
    import_id  text NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (dataset, key)
);
CREATE INDEX records_dimensions ON records USING gin (dimensions jsonb_path_ops);

CREATE TABLE record_history (
    seq        bigserial PRIMARY KEY,
    dataset    text NOT NULL,
    key        text NOT NULL,
    kind       text NOT NULL,
    record     json NOT NULL,
    import_id  text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX record_history_key ON record_history (dataset, key, seq);

CREATE TABLE identities (
    dataset      text NOT NULL,
    identity_key text NOT NULL,
    fields       jsonb NOT NULL,
    PRIMARY KEY (dataset, identity_key)
);

CREATE TABLE conflicts (
    seq       bigserial PRIMARY KEY,
    dataset   text NOT NULL,
    import_id text NOT NULL,
    conflict  jsonb NOT NULL
);
CREATE INDEX conflicts_dataset ON conflicts (dataset, seq);

CREATE TABLE outbox (
    seq           bigserial PRIMARY KEY,
    id            text NOT NULL UNIQUE,
    dataset       text NOT NULL,
    kind          text NOT NULL,
    payload       json NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    attempts      integer NOT NULL DEFAULT 0,
    due_at        timestamptz NOT NULL DEFAULT now(),
    claimed_until timestamptz,
    delivered_at  timestamptz,
    is_dead       boolean NOT NULL DEFAULT false
);
CREATE INDEX outbox_due ON outbox (due_at) WHERE delivered_at IS NULL AND NOT is_dead;

CREATE TABLE callback_timers (
    dataset   text NOT NULL,
    key       text NOT NULL,
    version   bigint,
    import_id text NOT NULL,
    due_at    timestamptz NOT NULL,
    PRIMARY KEY (dataset, key)
);
CREATE INDEX callback_timers_due ON callback_timers (due_at);
