-- cp-recon schema, version 6: a reconcile call that provably had no effect, and
-- payments the provider no longer knows.
--
-- `matches.state` gains `not_applied`: a call whose answer was lost, found by a later
-- run with the payment still `pending_bank` and the credit open. Its hold is released
-- (holds NULL), so the pair is decided again by the run's matching like any other and
-- called at most once more, with fresh re-reads of both sides. (Before, the run that
-- found it called again at once, before its sync, and the run's matching could then
-- call the same pair a second time.)
--
-- `payments.vanished_run`: the run that found a stored `pending_bank` payment unknown to
-- the provider (`payment_not_found`). Its `status` becomes `vanished` (not a provider
-- status: it says the provider stopped answering for it); it is reported once, in that
-- run, and no longer makes the sync incomplete. If the provider lists it again, its
-- status is the provider's again; `vanished_run` keeps the run that saw it go.
--
-- SQLite cannot change a CHECK in place, so `matches` is rebuilt as in version 2 (same
-- columns, same order) and its indexes re-created.

CREATE TABLE matches_v6 (
    id              INTEGER PRIMARY KEY,
    run_id          INTEGER NOT NULL REFERENCES runs(id),
    payment_id      TEXT NOT NULL,
    transaction_id  TEXT NOT NULL,
    iban            TEXT NOT NULL,
    amount          TEXT NOT NULL,
    currency        TEXT NOT NULL,
    concept         TEXT,
    rule            TEXT NOT NULL,
    state           TEXT NOT NULL
                    CHECK (state IN ('intent', 'reconciled', 'unknown', 'failed', 'moved_on',
                                     'skipped', 'dry_run', 'not_applied')),
    dry_run         INTEGER NOT NULL DEFAULT 0 CHECK (dry_run IN (0, 1)),
    provider_code   TEXT,
    provider_answer TEXT,
    payment_status  TEXT,
    created_at      TEXT NOT NULL,
    settled_at      TEXT,
    settled_run     INTEGER REFERENCES runs(id),
    holds           INTEGER
                    CHECK ((holds IS 1 AND state IN ('intent', 'reconciled', 'unknown'))
                        OR (holds IS NULL AND state NOT IN ('intent', 'reconciled', 'unknown')))
);

INSERT INTO matches_v6 SELECT * FROM matches;
DROP TABLE matches;
ALTER TABLE matches_v6 RENAME TO matches;

CREATE UNIQUE INDEX matches_one_per_transaction ON matches(transaction_id) WHERE holds = 1;
CREATE UNIQUE INDEX matches_one_per_payment ON matches(payment_id) WHERE holds = 1;
CREATE INDEX matches_run ON matches(run_id);

ALTER TABLE payments ADD COLUMN vanished_run INTEGER REFERENCES runs(id);

-- The calls in doubt (a handful at most, usually none): what each run settles first, and
-- the payments matching treats as open but never reconciles again until settled.
CREATE INDEX matches_in_doubt ON matches(payment_id, state) WHERE state IN ('intent', 'unknown');
