-- cp-recon schema, version 2: a match's hold on its payment and bank transaction gets a
-- column of its own.
--
-- `holds` is 1 while the match is, or may be, applied (state intent, reconciled or
-- unknown) and NULL otherwise; a CHECK keeps it so (written with IS: a CHECK that
-- evaluates to NULL passes). The two exactly-once UNIQUE indexes now filter on `holds`
-- instead of `state`. The rule they enforce is the same; the difference is cost: SQLite
-- rewrites a partial index's entries whenever a column of its WHERE clause is updated,
-- so with `state` in it every intent that became reconciled deleted and re-inserted two
-- index entries. `holds` does not change then.
--
-- SQLite cannot add a column with such a CHECK to a table with rows, so the table is
-- rebuilt (same columns, same order, `holds` last) and its indexes re-created.

CREATE TABLE matches_v2 (
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
    settled_run     INTEGER REFERENCES runs(id),
    -- 1 while the match holds its payment and transaction (intent, reconciled, unknown)
    holds           INTEGER
                    CHECK ((holds IS 1 AND state IN ('intent', 'reconciled', 'unknown'))
                        OR (holds IS NULL AND state NOT IN ('intent', 'reconciled', 'unknown')))
);

INSERT INTO matches_v2 (id, run_id, payment_id, transaction_id, iban, amount, currency,
        concept, rule, state, dry_run, provider_code, provider_answer, payment_status,
        created_at, settled_at, settled_run, holds)
    SELECT id, run_id, payment_id, transaction_id, iban, amount, currency, concept, rule,
        state, dry_run, provider_code, provider_answer, payment_status, created_at,
        settled_at, settled_run,
        CASE WHEN state IN ('intent', 'reconciled', 'unknown') THEN 1 END
    FROM matches;

DROP TABLE matches;
ALTER TABLE matches_v2 RENAME TO matches;

-- Exactly once, enforced by SQLite: a bank transaction is tied to at most one payment and
-- a payment to at most one bank transaction, counting every row that is or may be applied.
CREATE UNIQUE INDEX matches_one_per_transaction ON matches(transaction_id) WHERE holds = 1;
CREATE UNIQUE INDEX matches_one_per_payment ON matches(payment_id) WHERE holds = 1;
CREATE INDEX matches_run ON matches(run_id);
