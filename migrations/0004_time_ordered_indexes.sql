-- cp-recon schema, version 4: the covering indexes of version 3 keyed by time.
--
-- Version 3 keyed `bank_transactions_open` and `offramps_finished` by id. Ids are
-- random, so the rows a sync writes in one transaction landed on nearly every page of
-- those indexes, and each commit wrote most of them to the WAL again: about a third of
-- the WAL a first sync wrote. Lists arrive in time order (`booked_at`, `created_at`),
-- so keyed by time first, a commit's new entries sit on a few neighbouring pages.
-- The columns, and the WHERE clauses (which must stay identical to the ones in
-- `Store::matching_data`), are unchanged.

DROP INDEX bank_transactions_open;
CREATE INDEX bank_transactions_open ON bank_transactions
    (booked_at, id, iban, direction, amount, currency, concept, counterparty_name,
     counterparty_iban, value_date, reconciled_payment_id)
    WHERE direction = 'debit' OR reconciled_payment_id IS NULL;

DROP INDEX offramps_finished;
CREATE INDEX offramps_finished ON offramps
    (created_at, id, user_id, status, amount, currency, iban, updated_at)
    WHERE status = 'finished';
