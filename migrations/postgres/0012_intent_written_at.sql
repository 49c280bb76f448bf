-- cp-recon schema on PostgreSQL, version 12: when the server wrote each intent. The same
-- column as SQLite's `migrations/0012_intent_written_at.sql`, which says what it means.

ALTER TABLE matches ADD COLUMN written_at TEXT COLLATE "C";
