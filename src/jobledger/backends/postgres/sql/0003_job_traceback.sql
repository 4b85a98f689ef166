-- jobledger schema version 3: a failed attempt's Python traceback, kept with its job.
--
-- The full traceback of the last attempt whose handler raised (`Job.traceback`; the files
-- backend keeps it as "traceback" in a job file's "_jobledger" object). NULL when there is
-- none: the job never failed, completed or was retried since, or failed without an
-- exception (a result JSON cannot hold, a dead worker).
ALTER TABLE jobledger_jobs ADD COLUMN traceback text;
