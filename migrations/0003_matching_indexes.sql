-- cp-recon schema, version 3: the matching input read from narrow indexes.
--
-- Every run matches the open part of the history: pending payments (index
-- `payments_status`), every debit and every credit not yet tied, and every finished
-- off-ramp. Those rows were found by scanning `bank_transactions` and `offramps`, raw
-- JSON and all, which made a run's cost grow with the whole history. These partial
-- indexes hold exactly those rows, with every column matching reads (a covering index:
-- SQLite answers from the index alone). A credit leaves `bank_transactions_open` when
-- its tie is written.
--
-- The WHERE clauses must stay identical to the ones in `Store::matching_data`: SQLite
-- uses a partial index only for a query whose WHERE implies the index's.

CREATE INDEX bank_transactions_open ON bank_transactions
    (id, iban, direction, amount, currency, concept, counterparty_name, counterparty_iban,
     booked_at, value_date, reconciled_payment_id)
    WHERE direction = 'debit' OR reconciled_payment_id IS NULL;

CREATE INDEX offramps_finished ON offramps
    (id, user_id, status, amount, currency, iban, created_at, updated_at)
    WHERE status = 'finished';
