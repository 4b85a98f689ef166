-- jobledger schema version 5: a job's own timeout.
--
-- `timeout`: seconds (positive) an attempt of the job may run before the Worker stops it
-- (`enqueue(..., timeout=...)`; the job file keeps it as "timeout" in its "_jobledger"
-- object). NULL when the job gives none: its type's timeout (`@job_type(..., timeout=)`)
-- applies, else the Worker's. NULL by default: existing rows read as before.
ALTER TABLE jobledger_jobs ADD COLUMN timeout double precision;
