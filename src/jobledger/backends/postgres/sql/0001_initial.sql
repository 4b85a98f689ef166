-- jobledger schema version 1. Applied by jobledger.backends.postgres._migrate, once per
-- schema, in one transaction. Statuses are text with a CHECK (not an enum: adding a value
-- to a CHECK is one ALTER TABLE, and text reads the same in every client).

-- Task sets: one row per (account, type, date). `record` is the document's JSON; the
-- other columns repeat parts of it for queries.
CREATE TABLE jobledger_tasksets (
    account     text    NOT NULL,
    type        text    NOT NULL,
    date        date    NOT NULL,
    record      jsonb   NOT NULL,
    completed   integer NOT NULL DEFAULT 0,
    remaining   integer NOT NULL DEFAULT 0,
    last_update text,
    PRIMARY KEY (account, type, date)
);

-- Who holds a task set's run lease. The lease itself is a session-level advisory lock
-- (key `lock_key`) held by the session `backend_pid`: a row is true only while that
-- session holds that lock (see pg_locks), so a dead holder's row is merely stale.
CREATE TABLE jobledger_leases (
    account     text    NOT NULL,
    type        text    NOT NULL,
    date        date    NOT NULL,
    lock_key    bigint  NOT NULL,
    backend_pid integer NOT NULL,
    pid         integer,
    host        text,
    since       text,
    PRIMARY KEY (account, type, date)
);

-- Records that could not be read, set aside instead of being lost or deleted.
CREATE TABLE jobledger_set_aside (
    id         bigserial   PRIMARY KEY,
    kind       text        NOT NULL,
    key        text        NOT NULL,
    data       jsonb,
    reason     text        NOT NULL,
    set_aside  timestamptz NOT NULL DEFAULT now()
);

-- Jobs. Times are the ISO 8601 strings the queue's clock produced (the files backend's
-- exact strings, so records round-trip identically); they compare correctly as text.
CREATE SEQUENCE jobledger_job_seq;

CREATE TABLE jobledger_jobs (
    job_id        text    PRIMARY KEY,
    type          text    NOT NULL,
    status        text    NOT NULL
        CONSTRAINT jobledger_jobs_status_check
        CHECK (status IN ('Queued', 'Running', 'Completed', 'Failed', 'Cancelled')),
    error_message text,
    payload       jsonb   NOT NULL DEFAULT '{}',
    priority      bigint  NOT NULL DEFAULT 0,
    attempts      integer NOT NULL DEFAULT 0,
    max_attempts  integer NOT NULL DEFAULT 3,
    seq           bigint  NOT NULL,
    created       text,
    started       text,
    finished      text,
    worker        text,   -- no foreign key: a worker's row goes when it stops or dies
    run_after     text,
    result        jsonb,
    recovered     boolean NOT NULL DEFAULT false,
    extra_meta    jsonb   NOT NULL DEFAULT '{}'
);

-- The serving order of the claim, over Queued jobs only.
CREATE INDEX jobledger_jobs_serving ON jobledger_jobs (recovered DESC, priority DESC, seq)
    WHERE status = 'Queued';
CREATE INDEX jobledger_jobs_running ON jobledger_jobs (worker) WHERE status = 'Running';
CREATE INDEX jobledger_jobs_finished ON jobledger_jobs (finished)
    WHERE status IN ('Completed', 'Failed', 'Cancelled');
CREATE INDEX jobledger_jobs_status ON jobledger_jobs (status);

-- Live workers: a worker is alive while `lease_until` (server time) is in the future; its
-- heartbeat pushes it forward.
CREATE TABLE jobledger_workers (
    worker      text        PRIMARY KEY,
    pid         integer,
    host        text,
    since       text,
    lease_until timestamptz NOT NULL
);
