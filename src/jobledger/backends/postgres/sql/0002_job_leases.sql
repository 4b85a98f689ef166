-- jobledger schema version 2: a lease on every Running job.
--
-- A claim sets `lease_until` (server time); the worker's heartbeat pushes it forward for
-- the jobs still Running under that worker, and only those (the UPDATE is fenced by the
-- worker's id and the status, so a worker presumed dead revives nothing it lost). A
-- Running job whose lease ran out is recovered by any live worker. NULL (jobs Running
-- before this version, or imported as Running) counts as run out.
ALTER TABLE jobledger_jobs ADD COLUMN lease_until timestamptz;

-- What recovery looks for.
CREATE INDEX jobledger_jobs_lease ON jobledger_jobs (lease_until) WHERE status = 'Running';
