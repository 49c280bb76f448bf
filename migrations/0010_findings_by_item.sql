-- cp-recon schema, version 10: an item's findings across runs, for its first-seen date.
--
-- Each report says when the job first reported each open item and whether it is new
-- since the previous report; that is the earliest run whose findings name the item.

CREATE INDEX findings_by_item ON findings(kind, item_id, run_id);
