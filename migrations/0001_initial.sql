-- cp-recon schema, version 1.
--
-- Conventions: timestamps are ISO-8601 UTC text (`2026-06-26T10:30:00.000000Z`), so they
-- sort as text and read well in any SQLite client. Amounts are decimal text in currency
-- units (`150.50`), never floats: compare them with the text or in a decimal library, and
-- do not SUM() them in SQLite (it would use floating point). Every record keeps the raw
-- JSON the provider sent, and the runs that first and last saw it.

-- One row per run of the job.
CREATE TABLE runs (
    id              INTEGER PRIMARY KEY,
    started_at      TEXT NOT NULL,
    finished_at     TEXT,
    -- running | completed | incomplete | failed
    outcome         TEXT NOT NULL DEFAULT 'running'
                    CHECK (outcome IN ('running', 'completed', 'incomplete', 'failed')),
    -- full | incremental
    sync_mode       TEXT NOT NULL DEFAULT 'full',
    dry_run         INTEGER NOT NULL DEFAULT 0 CHECK (dry_run IN (0, 1)),
    -- 1 only when every page of every list was read in this run.
    sync_complete   INTEGER NOT NULL DEFAULT 0 CHECK (sync_complete IN (0, 1)),
    payments_read      INTEGER NOT NULL DEFAULT 0,
    offramps_read      INTEGER NOT NULL DEFAULT 0,
    accounts_read      INTEGER NOT NULL DEFAULT 0,
    transactions_read  INTEGER NOT NULL DEFAULT 0,
    bad_records        INTEGER NOT NULL DEFAULT 0,
    reconcile_calls    INTEGER NOT NULL DEFAULT 0,
    reconciled         INTEGER NOT NULL DEFAULT 0,
    api_requests       INTEGER NOT NULL DEFAULT 0,
    api_errors         INTEGER NOT NULL DEFAULT 0,
    -- JSON: {"decisions": {name: n}, "reasons": {name: n}, "reconciled_totals": {"EUR": "150.50"}}
    summary_json    TEXT,
    error           TEXT,
    pid             INTEGER,
    version         TEXT NOT NULL
);

-- How each list was read in each run.
CREATE TABLE run_lists (
    run_id      INTEGER NOT NULL REFERENCES runs(id),
    -- payments | pending_payments | rampoffs | accounts | transactions:<IBAN>
    list        TEXT NOT NULL,
    complete    INTEGER NOT NULL CHECK (complete IN (0, 1)),
    pages       INTEGER NOT NULL,
    items       INTEGER NOT NULL,
    duplicates  INTEGER NOT NULL DEFAULT 0,
    -- the `from` filter of an incremental read, NULL for a full read
    read_from   TEXT,
    error       TEXT,
    PRIMARY KEY (run_id, list)
);

-- Per list: the newest item timestamp of the last complete read (incremental runs start
-- an overlap window before it).
CREATE TABLE watermarks (
    list        TEXT PRIMARY KEY,
    high_water  TEXT NOT NULL,
    run_id      INTEGER NOT NULL REFERENCES runs(id),
    updated_at  TEXT NOT NULL
);

CREATE TABLE payments (
    id              TEXT PRIMARY KEY,
    external_id     TEXT,
    user_id         TEXT,
    status          TEXT NOT NULL,
    -- fiat_amount converted from the provider's cents to units
    amount          TEXT NOT NULL,
    currency        TEXT NOT NULL,
    payment_type    TEXT,
    concept         TEXT,
    created_at      TEXT NOT NULL,
    updated_at      TEXT,
    raw_json        TEXT NOT NULL,
    first_seen_at   TEXT NOT NULL,
    last_seen_at    TEXT NOT NULL,
    first_seen_run  INTEGER NOT NULL REFERENCES runs(id),
    last_seen_run   INTEGER NOT NULL REFERENCES runs(id)
);
CREATE INDEX payments_status ON payments(status);

CREATE TABLE offramps (
    id              TEXT PRIMARY KEY,
    user_id         TEXT,
    status          TEXT NOT NULL,
    amount          TEXT NOT NULL,
    currency        TEXT NOT NULL,
    iban            TEXT,
    created_at      TEXT NOT NULL,
    updated_at      TEXT,
    raw_json        TEXT NOT NULL,
    first_seen_at   TEXT NOT NULL,
    last_seen_at    TEXT NOT NULL,
    first_seen_run  INTEGER NOT NULL REFERENCES runs(id),
    last_seen_run   INTEGER NOT NULL REFERENCES runs(id)
);

CREATE TABLE bank_accounts (
    iban            TEXT PRIMARY KEY,
    bic             TEXT,
    holder_name     TEXT,
    currency        TEXT,
    balance         TEXT,
    raw_json        TEXT NOT NULL,
    first_seen_at   TEXT NOT NULL,
    last_seen_at    TEXT NOT NULL,
    first_seen_run  INTEGER NOT NULL REFERENCES runs(id),
    last_seen_run   INTEGER NOT NULL REFERENCES runs(id)
);

CREATE TABLE bank_transactions (
    id                      TEXT PRIMARY KEY,
    iban                    TEXT NOT NULL,
    direction               TEXT NOT NULL CHECK (direction IN ('credit', 'debit')),
    amount                  TEXT NOT NULL,
    currency                TEXT NOT NULL,
    -- the free remittance text, as typed by the sender
    concept                 TEXT NOT NULL,
    counterparty_name       TEXT,
    counterparty_iban       TEXT,
    booked_at               TEXT NOT NULL,
    value_date              TEXT,
    reconciled_payment_id   TEXT,
    raw_json                TEXT NOT NULL,
    first_seen_at           TEXT NOT NULL,
    last_seen_at            TEXT NOT NULL,
    first_seen_run          INTEGER NOT NULL REFERENCES runs(id),
    last_seen_run           INTEGER NOT NULL REFERENCES runs(id)
);

-- Items the job could not parse: never dropped, always visible.
CREATE TABLE bad_records (
    id          INTEGER PRIMARY KEY,
    run_id      INTEGER NOT NULL REFERENCES runs(id),
    endpoint    TEXT NOT NULL,
    record_id   TEXT,
    error       TEXT NOT NULL,
    raw_json    TEXT NOT NULL
);

-- Every reconcile decision and what became of it. The exactly-once ledger.
--
-- state:
--   intent      written (and committed) right before the reconcile call
--   reconciled  the provider applied it (or the payment was found moved on after a lost answer
--               and the transaction now names it)
--   unknown     the answer was lost and the payment was still pending_bank: the next run
--               re-reads it before anything else
--   failed      the provider refused it (provider_code says why); nothing is tied
--   moved_on    the payment left pending_bank without this call (someone else reconciled it)
--   skipped     never called: the run stopped calling (authentication rejected, deadline)
--               after the intent was committed
--   dry_run     decided in a dry run; nothing was called
CREATE TABLE matches (
    id              INTEGER PRIMARY KEY,
    run_id          INTEGER NOT NULL REFERENCES runs(id),
    payment_id      TEXT NOT NULL,
    transaction_id  TEXT NOT NULL,
    iban            TEXT NOT NULL,
    amount          TEXT NOT NULL,
    currency        TEXT NOT NULL,
    concept         TEXT,
    -- which rule decided it: `confident` (reconciliation rules §3)
    rule            TEXT NOT NULL,
    state           TEXT NOT NULL
                    CHECK (state IN ('intent', 'reconciled', 'unknown', 'failed', 'moved_on', 'skipped', 'dry_run')),
    dry_run         INTEGER NOT NULL DEFAULT 0 CHECK (dry_run IN (0, 1)),
    provider_code   TEXT,
    provider_answer TEXT,
    -- the payment status read before the call / after a lost answer
    payment_status  TEXT,
    created_at      TEXT NOT NULL,
    settled_at      TEXT,
    settled_run     INTEGER REFERENCES runs(id)
);
-- Exactly once, enforced by SQLite: a bank transaction is tied to at most one payment and
-- a payment to at most one bank transaction, counting every row that is or may be applied.
CREATE UNIQUE INDEX matches_one_per_transaction ON matches(transaction_id)
    WHERE state IN ('intent', 'reconciled', 'unknown');
CREATE UNIQUE INDEX matches_one_per_payment ON matches(payment_id)
    WHERE state IN ('intent', 'reconciled', 'unknown');
CREATE INDEX matches_run ON matches(run_id);

-- What each run reported to a person, one row per item, with its reason.
CREATE TABLE findings (
    run_id      INTEGER NOT NULL REFERENCES runs(id),
    -- payment | transaction | offramp
    kind        TEXT NOT NULL,
    item_id     TEXT NOT NULL,
    reason      TEXT NOT NULL,
    -- space-separated ids of the other side
    candidates  TEXT NOT NULL DEFAULT '',
    difference  TEXT,
    detail      TEXT,
    PRIMARY KEY (run_id, kind, item_id)
);

-- The report outbox: a report is written to disk first, then e-mailed; unsent ones are
-- retried by later runs until delivered, and never sent twice after a success.
CREATE TABLE reports (
    run_id      INTEGER PRIMARY KEY REFERENCES runs(id),
    dir         TEXT NOT NULL,
    -- pending | sent | not_needed | disabled
    state       TEXT NOT NULL CHECK (state IN ('pending', 'sent', 'not_needed', 'disabled')),
    subject     TEXT,
    attempts    INTEGER NOT NULL DEFAULT 0,
    last_error  TEXT,
    created_at  TEXT NOT NULL,
    sent_at     TEXT
);
