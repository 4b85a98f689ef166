-- jobledger schema version 6: what a running attempt records: a cancel asked of its
-- worker, its last progress report, its last checkpoint.
--
-- `cancel_requested_at`: when `JobQueue.cancel` asked the worker of a Running job to stop
-- it (NULL: never asked); the job stays Running until that worker ends the attempt, and
-- is Cancelled then (or when its worker is found dead). Each request also sends
-- `NOTIFY jobledger_cancels` (payload: the schema) when its transaction commits.
-- `progress_*`: the last report of `job.progress(done, total, note)` and its time,
-- written at most about once a second per job, without waiting for the WAL flush.
-- `checkpoint_json`: the last checkpoint a handler stored (`job.checkpoint(data)`), as
-- JSON text: text, not jsonb, which would read back 1e16 as an integer and -0.0 as 0.
-- Every column is NULL by default: existing rows read as before.
ALTER TABLE jobledger_jobs ADD COLUMN cancel_requested_at text;
ALTER TABLE jobledger_jobs ADD COLUMN progress_done double precision;
ALTER TABLE jobledger_jobs ADD COLUMN progress_total double precision;
ALTER TABLE jobledger_jobs ADD COLUMN progress_note text;
ALTER TABLE jobledger_jobs ADD COLUMN progress_at text;
ALTER TABLE jobledger_jobs ADD COLUMN checkpoint_json text;
ALTER TABLE jobledger_jobs ADD COLUMN checkpoint_at text;
