-- cp-recon schema, version 11: report folders that belong to their run alone, recorded
-- before they are written.
--
-- `runs.token`: six random hex digits drawn when the run starts. A run's report folder
-- is named after the run's start, its id and this token (`2026-12-06T053912Z-run42-7f3a9c`):
-- a database put back from a backup, or another installation's, hands out run ids that
-- were used before, and a folder named after the id alone was taken for an earlier write
-- of the same run's report and replaced. Runs recorded before this version have none.

ALTER TABLE runs ADD COLUMN token TEXT;

-- `reports.written_at`: when the report's folder was complete on disk; NULL while it is
-- being written. A report is recorded before its folder is written: the row, the
-- reconciles it lists (`matches.reported_run`) and the urgent items its mail names
-- (`alerts`), in one transaction; then the folder is written; then `written_at` is set.
-- A run killed in between leaves `written_at` NULL, and the next run settles it before
-- anything else: a folder on disk (it appears whole, in one rename) is the report, and
-- `written_at` is set; no folder, and the row and its alerts are deleted and its
-- reconciles are unreported again, for the next report to list. Reports recorded before
-- this version were on disk when they were recorded.

ALTER TABLE reports ADD COLUMN written_at TEXT;

UPDATE reports SET written_at = created_at;
