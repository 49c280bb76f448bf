-- cp-recon schema, version 11: report folders that belong to their run alone.
--
-- `runs.token`: six random hex digits drawn when the run starts. A run's report folder
-- is named after the run's start, its id and this token (`2026-12-06T053912Z-run42-7f3a9c`):
-- a database put back from a backup, or another installation's, hands out run ids that
-- were used before, and a folder named after the id alone was taken for an earlier write
-- of the same run's report and replaced. Runs recorded before this version have none.

ALTER TABLE runs ADD COLUMN token TEXT;
