-- cp-recon schema, version 9: which mail each report was, and the urgent items mailed.
--
-- `reports.mail`: `full` (a digest, or a run under `send = "always"` or
-- `"when_unmatched"`), `urgent` (only what is urgent and new), or NULL (no mail). The
-- time of the last `full` report is when the last digest went out.
--
-- `alerts`: each urgent item (`kind`, `item_id`, `reason`) named by a mail, with the run
-- whose report named it; an item is mailed as urgent once. `kind = 'outage'` records that
-- a mail said runs were failing, `item_id` being the first failing run.

ALTER TABLE reports ADD COLUMN mail TEXT CHECK (mail IN ('full', 'urgent'));

CREATE TABLE alerts (
    kind     TEXT NOT NULL,
    item_id  TEXT NOT NULL,
    reason   TEXT NOT NULL,
    run_id   INTEGER NOT NULL REFERENCES runs(id),
    PRIMARY KEY (kind, item_id, reason)
);
