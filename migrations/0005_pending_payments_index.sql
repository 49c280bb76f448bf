-- cp-recon schema, version 5: pending payments read from a covering index.
--
-- Matching reads every `pending_bank` payment, and the sync asks for their ids. Both
-- went through `payments_status`, an index of the status alone, and then fetched each
-- row from the table: a page read per payment, scattered over the whole history, raw
-- JSON and all. `payments_pending` holds exactly the pending payments with every column
-- matching reads, keyed by `created_at` (lists arrive in time order, so a sync's new
-- entries sit on a few neighbouring pages, as in version 4). A payment leaves it when
-- its status changes.
--
-- `payments_status` had no other reader, and every payment stored paid for it; it is
-- dropped. A query by another status now reads the table, which is fine for the
-- occasional question by hand.
--
-- The WHERE clause must stay identical to the ones in `Store::matching_data` and
-- `Store::pending_payment_ids`: SQLite uses a partial index only for a query whose WHERE
-- implies the index's.

DROP INDEX payments_status;
CREATE INDEX payments_pending ON payments
    (created_at, id, external_id, user_id, status, amount, currency, payment_type, concept,
     updated_at)
    WHERE status = 'pending_bank';
