-- jobledger schema version 8: named queues, their limits, and rate limits.
--
-- `queue`: the named queue a job waits in (`enqueue(..., queue=)`; the job file keeps it
-- as "queue" in its "_jobledger" object), 'default' for every existing row. A Worker
-- serves the queues it is given. `rate_key`: the key its type's rate limit counts the
-- job's starts under (`enqueue(..., rate_key=)`; NULL: the payload's field the limit
-- names, else one key for the whole type).
ALTER TABLE jobledger_jobs ADD COLUMN queue text NOT NULL DEFAULT 'default';
ALTER TABLE jobledger_jobs ADD COLUMN rate_key text;

-- The stored limits, obeyed by every worker on every machine. kind 'queue': at most `n`
-- jobs of the queue `name` Running at once (`JobQueue.set_limit`). kind 'rate': at most
-- `n` starts of jobs of type `name` per rate key within `per` seconds
-- (`JobQueue.set_rate_limit`; `key_field`: the payload field a job without a rate_key
-- takes its key from).
CREATE TABLE jobledger_limits (
    kind      text             NOT NULL CHECK (kind IN ('queue', 'rate')),
    name      text             NOT NULL,
    n         integer          NOT NULL CHECK (n >= 0),
    per       double precision,
    key_field text,
    PRIMARY KEY (kind, name)
);

-- One row: the limits' version, moved on by every change of jobledger_limits (in its
-- transaction, which first takes this table's ACCESS EXCLUSIVE lock: it waits for the
-- claims under way, and the claims after it see the new version). A claim statement
-- claims nothing when its worker's version is not this one: it reads the limits again
-- first. So a worker with no limit to obey pays one lookup of this row per claim.
CREATE TABLE jobledger_limits_version (
    one     boolean PRIMARY KEY DEFAULT true CHECK (one),
    version bigint  NOT NULL
);
INSERT INTO jobledger_limits_version (one, version) VALUES (true, 0);

-- The starts of rate-limited jobs, for as long as their window lasts: one row per start
-- (`started`: the claim's time, ISO 8601 UTC by the queue's clock), deleted by the next
-- claim of the type once older than the window.
CREATE TABLE jobledger_rate_starts (
    type    text NOT NULL,
    key     text NOT NULL,
    started text NOT NULL
);
CREATE INDEX jobledger_rate_starts_key ON jobledger_rate_starts (type, key, started);
