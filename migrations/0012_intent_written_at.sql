-- cp-recon schema, version 12: when the database wrote each intent, by its own clock.
--
-- `matches.written_at`: the database's clock when the row was inserted (RFC 3339 UTC
-- text). On PostgreSQL the server's clock is the one clock every host shares: recovery
-- leaves another session's intent in doubt until it is older, by that clock, than the
-- longest its call can still be on its way (`reconcile::recovery`), so that a host
-- that started while another's call was still in flight never calls the same pair.
-- NULL for matches written before this version.

ALTER TABLE matches ADD COLUMN written_at TEXT;
