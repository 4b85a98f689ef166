-- jobledger schema version 7: unique jobs and periodic (cron) schedules.
--
-- `unique_key`: the key given to `enqueue(..., unique_key=)` (NULL: none; the job file
-- keeps it as "unique_key" in its "_jobledger" object). While a job with a key is Queued
-- or Running, no second job may hold it: `jobledger_jobs_unique_live` refuses the second
-- insert (an enqueue's INSERT ... ON CONFLICT DO NOTHING then returns the holder), however
-- many processes enqueue it at once, and a retry of a finished job whose key another
-- live job holds is refused. Rows without a key are in neither index.
ALTER TABLE jobledger_jobs ADD COLUMN unique_key text;
CREATE UNIQUE INDEX jobledger_jobs_unique_live ON jobledger_jobs (unique_key)
    WHERE unique_key IS NOT NULL AND status IN ('Queued', 'Running');
-- `enqueue(..., unique_for=)` also looks for a finished job with the key (its `finished`
-- within the window): an index over every keyed row, live or finished.
CREATE INDEX jobledger_jobs_unique_key ON jobledger_jobs (unique_key, finished)
    WHERE unique_key IS NOT NULL;

-- Periodic jobs: one row per schedule (`JobQueue.schedule`). `record` is the schedule's
-- document, the same object a queue folder's schedules.json holds under its name: the
-- cron expression, its time zone, the job it enqueues, the catch-up rule, since when it
-- counts (`since`) and the last occurrence enqueued (`last`). A worker firing a schedule
-- locks its row (SELECT ... FOR UPDATE), enqueues the due occurrences and writes `last`
-- in one transaction.
CREATE TABLE jobledger_schedules (
    name   text  PRIMARY KEY,
    record jsonb NOT NULL
);
