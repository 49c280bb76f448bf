-- cp-recon schema on PostgreSQL, version 11: report folders that belong to their run
-- alone, recorded before they are written. The same columns as SQLite's
-- `migrations/0011_report_folders.sql`, which says what each means.

ALTER TABLE runs ADD COLUMN token TEXT COLLATE "C";

ALTER TABLE reports ADD COLUMN written_at TEXT COLLATE "C";

UPDATE reports SET written_at = created_at;
