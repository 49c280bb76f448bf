-- cp-recon schema, version 8: which report listed each reconcile.
--
-- `matches.reported_run`: the run whose report (written to disk and queued for
-- delivery) listed this reconciled pair. A reconcile made by a run that never wrote its
-- report (killed, disk full, reports directory gone) keeps NULL, and the next report
-- lists it, whichever run made it. Reconciles made before this version were listed by
-- their own run's report, so they start as reported by the run that settled them.

ALTER TABLE matches ADD COLUMN reported_run INTEGER REFERENCES runs(id);

UPDATE matches SET reported_run = settled_run WHERE state = 'reconciled';

-- The reconciles still to report: few, and read once per run.
CREATE INDEX matches_unreported ON matches(id)
    WHERE state = 'reconciled' AND reported_run IS NULL;

-- A run's own reconciles, for its summary.
CREATE INDEX matches_settled_run ON matches(settled_run)
    WHERE state = 'reconciled';
