-- cp-recon schema, version 7: what people decided about the items the job reported.
--
-- One row per decision, never updated nor deleted (the triggers below refuse it):
--   approve  a person tied payment `item_id` to bank transaction `other_id`. The call
--            goes through the same intent journal as the job's own (`matches`), under a
--            run of its own (`runs.sync_mode = 'approve'`, `run_id` here); `outcome` and
--            `match_id` are written once, when the call is settled. A row whose outcome
--            is still NULL was interrupted mid-call, or its answer was lost and is still
--            in doubt: its match (same `run_id`) is settled by a later run's recovery,
--            like any other intent, and that run writes the outcome.
--   dismiss  the item stops being reported (a bank fee, a refunded duplicate, a test
--            payment); `note` says why and is required.
--   reopen   undoes the latest dismissal of the item: a later row, never an update.
--
-- kind: payment | transaction | offramp | bad_record (the `findings.kind` values, plus
-- an unparseable record, by its `bad_records.record_id`).
-- source: `cli`, or `apply <file>:<line>` for a row of a file handed back.
CREATE TABLE decisions (
    id          INTEGER PRIMARY KEY,
    at          TEXT NOT NULL,
    by          TEXT NOT NULL CHECK (length(trim(by)) > 0),
    action      TEXT NOT NULL CHECK (action IN ('approve', 'dismiss', 'reopen')),
    kind        TEXT NOT NULL
                CHECK (kind IN ('payment', 'transaction', 'offramp', 'bad_record')),
    item_id     TEXT NOT NULL,
    -- approve: the bank transaction tied to the payment `item_id`
    other_id    TEXT,
    note        TEXT,
    source      TEXT NOT NULL,
    run_id      INTEGER REFERENCES runs(id),
    match_id    INTEGER REFERENCES matches(id),
    outcome     TEXT,
    CHECK (action <> 'dismiss' OR length(trim(COALESCE(note, ''))) > 0),
    CHECK ((action = 'approve') = (other_id IS NOT NULL))
);
CREATE INDEX decisions_item ON decisions(kind, item_id);
CREATE INDEX decisions_other ON decisions(other_id) WHERE other_id IS NOT NULL;

CREATE TRIGGER decisions_never_deleted BEFORE DELETE ON decisions
BEGIN
    SELECT RAISE(ABORT, 'decisions are append-only');
END;

-- Only an approve's `outcome` and `match_id` may be written, once each, after the call.
CREATE TRIGGER decisions_never_rewritten BEFORE UPDATE ON decisions
WHEN NEW.id IS NOT OLD.id OR NEW.at IS NOT OLD.at OR NEW.by IS NOT OLD.by
    OR NEW.action IS NOT OLD.action OR NEW.kind IS NOT OLD.kind
    OR NEW.item_id IS NOT OLD.item_id OR NEW.other_id IS NOT OLD.other_id
    OR NEW.note IS NOT OLD.note OR NEW.source IS NOT OLD.source
    OR NEW.run_id IS NOT OLD.run_id
    OR (OLD.outcome IS NOT NULL AND NEW.outcome IS NOT OLD.outcome)
    OR (OLD.match_id IS NOT NULL AND NEW.match_id IS NOT OLD.match_id)
BEGIN
    SELECT RAISE(ABORT, 'decisions are append-only: only an approve''s outcome is written, once');
END;
