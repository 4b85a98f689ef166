"""Every SQL statement of the PostgreSQL backends, by name, in one place.

The code runs ``conn.execute(q.GET_JOB, ...)``: what a method sends is read here, and
what a statement is for is read where it is used. Placeholders are psycopg's ``%s``,
positional, in the order the caller passes its parameters.

Three kinds of names:

- a statement (``GET_JOB``): sent as it is;
- a statement made once, at import, from the job fields' table (:data:`COLUMNS`, in
  ``FIELDS``'s order): the column lists and ``jsonb_to_recordset`` types are never written
  out by hand, so a new field reaches every statement through its line in ``FIELDS``;
- a function (``update_jobs(columns)``): a statement whose text depends on its call (the
  columns a write changed, a lock timeout), made from its template here.

The schema itself is created by the migrations, ``sql/NNNN_*.sql`` (see ``_migrate.py``).
tests/backends/postgres/test_queries.py holds every name to being used by the code and PREPAREs
every statement on a server, so a misspelt column fails there, not in production.
"""

from __future__ import annotations

import functools

from ..._job_fields import FIELDS

__all__ = [
    "ADD_RATE_STARTS",
    "ADVISORY_LOCK",
    "ADVISORY_UNLOCK",
    "ANY_SESSION_GONE",
    "APPLIED_MIGRATIONS",
    "BUMP_LIMITS_VERSION",
    "CANCEL_CHANNEL",
    "CANCEL_REQUESTED",
    "CHANNEL",
    "CLAIMED_AT",
    "CLAIMED_BY",
    "CLAIM_CHOSEN",
    "CLEAR_JOBS",
    "CLEAR_WORKERS",
    "COLUMNS",
    "COPY_JOBS",
    "COUNT_BY_QUEUE",
    "COUNT_BY_STATUS",
    "COUNT_QUEUED",
    "COUNT_QUEUED_OF_TYPES",
    "CREATE_MIGRATIONS_TABLE",
    "CURRENT_SCHEMA",
    "DATABASE_IDENTITY",
    "DELETE_DEAD_WORKERS",
    "DELETE_LEASE",
    "DELETE_LIMIT",
    "DELETE_MY_LEASE",
    "DELETE_SCHEDULE",
    "DELETE_SESSIONLESS_WORKERS",
    "DELETE_TASKSET",
    "DELETE_WORKER",
    "ENQUEUE_ONE",
    "FINISHED_BARRIER",
    "FINISHED_BARRIER_DONE",
    "FINISHED_CHANNEL",
    "FINISHED_PER_MINUTE",
    "FORGET_RATE_STARTS",
    "GET_JOB",
    "GET_JOBS",
    "GET_JOB_OR_KEY_HOLDER",
    "HAS_MIGRATIONS_TABLE",
    "HISTORY_PAGE",
    "INSERT_NEW_JOBS",
    "INSERT_TASKSET",
    "JOBS_IN_SEQ_ORDER",
    "JOIN_SEARCH_PATH",
    "KEY_HOLDERS",
    "LEASES",
    "LIMITS",
    "LIMITS_VERSION",
    "LISTEN",
    "LISTENING_FOR_FINISHED",
    "LISTEN_CANCELS",
    "LISTEN_FINISHED",
    "LIVE_JOBS",
    "LIVE_PAGE",
    "LIVE_WORKERS",
    "LOCK_JOBS",
    "LOCK_LIMITED_CLAIMS",
    "LOCK_LIMITS_VERSION",
    "LOCK_MIGRATIONS",
    "LOCK_SCHEDULE",
    "LOCK_SCHEDULE_NAME",
    "LOCK_TASKSET",
    "LOCK_UNIQUE_KEYS",
    "LOCK_WORKERS",
    "MIGRATION_DONE",
    "MOVE_SEQ_PAST_JOBS",
    "NEXT_SEQ",
    "NEXT_SEQ_BLOCKS",
    "NEXT_SEQ_BLOCKS_WAKE",
    "NOTIFY",
    "NOTIFY_FINISHED",
    "NOTIFY_PAYLOAD",
    "PING",
    "PRUNE_JOBS",
    "PUT_LIMIT",
    "PUT_SCHEDULE",
    "QUEUED_BY_TYPE",
    "QUEUED_BY_TYPE_OF_QUEUES",
    "RATE_STARTS",
    "READ_TASKSET",
    "RECOVERABLE_JOBS",
    "RENEW_JOB_LEASES",
    "RENEW_WORKER",
    "RESET_LOCK_TIMEOUT",
    "RESTORE_SEARCH_PATH",
    "RUNNING_IN_QUEUES",
    "SCHEDULES",
    "SEQ_BLOCK",
    "SERVER_KEEPALIVES",
    "SESSIONLESS_WORKERS",
    "SESSION_SETTINGS",
    "SET_ASIDE",
    "SET_ASIDE_KEYS",
    "SIZE_OF_TASKSETS",
    "STALE_LEASES",
    "TAKE_LEASE",
    "TASKSET_HOLDER",
    "TASKSET_KEYS",
    "TASKSET_KEYS_OF_ACCOUNT",
    "TASKSET_RANGE",
    "TASKSET_RANGE_OF_ACCOUNT",
    "TASKSET_ROWS",
    "TRY_ADVISORY_LOCK",
    "UNSYNCED_COMMIT",
    "UPDATE_TASKSET",
    "WORKER_ALIVE",
    "WRITABLE",
    "claim_jobs",
    "claim_next",
    "pick_limited",
    "set_lock_timeout",
    "swap_job",
    "swap_job_and_claim",
    "swap_jobs",
    "swap_jobs_and_claim",
    "update_jobs",
]

# -- fragments (never sent alone) ----------------------------------------------------------

#: The job table's columns: the job fields' names, in their table's order.
COLUMNS = tuple(f.name for f in FIELDS)
#: The columns a write may change: all but the key.
WRITABLE = tuple(name for name in COLUMNS if name != "job_id")
_TYPES = {f.name: f.pg_type for f in FIELDS}
_COLS = ", ".join(COLUMNS)
_J_COLS = ", ".join(f"j.{name}" for name in COLUMNS)
_RECORDSET = ", ".join(f"{name} {_TYPES[name]}" for name in COLUMNS)
# The serving order: recovered jobs first, then by priority, then first come first served.
_ORDER = "recovered DESC, priority DESC, seq"
# A worker row (or a job's lease) that has not run out, by the server's clock.
_ALIVE = "lease_until > clock_timestamp()"
_OF_TYPES = " AND type = ANY(%s)"
_OF_QUEUES = " AND queue = ANY(%s)"
_LIVE = "('Queued', 'Running')"
_TASKSET = "account = %s AND type = %s AND date = %s"
# A lease row is true only while its session still holds the advisory lock it names.
_HELD = """EXISTS (
    SELECT 1 FROM pg_locks l
    WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1
      AND l.pid = h.backend_pid
      AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
      AND l.classid::bigint = (h.lock_key >> 32) & 4294967295
      AND l.objid::bigint = h.lock_key & 4294967295)"""
# A worker row (``w``) whose heartbeat session no longer holds its advisory lock: the
# server ended that session, so the worker's process died (or lost its connection). A row
# without a key (an older worker, or no lock yet) is left to its lease, and so is a key
# taken before the server last started: a restart ends every session, live workers' too
# (a crash must not hand their jobs to others), until their heartbeats lock again.
_SESSION_GONE = """w.lock_key IS NOT NULL AND w.lock_epoch = pg_postmaster_start_time()
  AND NOT EXISTS (
    SELECT 1 FROM pg_locks l
    WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1
      AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
      AND l.classid::bigint = (w.lock_key >> 32) & 4294967295
      AND l.objid::bigint = w.lock_key & 4294967295)"""

# -- connections (_db.py, _listen.py) ------------------------------------------------------

CURRENT_SCHEMA = "SELECT current_schema()"
#: This transaction commits without waiting for the WAL flush (``durability="flush"``).
UNSYNCED_COMMIT = "SET LOCAL synchronous_commit TO off"
#: The channel of the wake-ups; the payload is the queue's schema.
CHANNEL = "jobledger_jobs"
NOTIFY = "SELECT pg_notify(%s, current_schema())"
LISTEN = f"LISTEN {CHANNEL}"
#: The channel of cancel requests to Running jobs; the payload is the queue's schema too
#: (the workers then ask which of their jobs: CANCEL_REQUESTED).
CANCEL_CHANNEL = "jobledger_cancels"
LISTEN_CANCELS = f"LISTEN {CANCEL_CHANNEL}"
#: A notification with a given payload (a stopping listener's own wake-up).
NOTIFY_PAYLOAD = "SELECT pg_notify(%s, %s)"
#: The channel of finished jobs (Completed, Failed, Cancelled), for ``JobQueue.wait``:
#: apart from :data:`CHANNEL`, so that idle workers are not woken by completions.
FINISHED_CHANNEL = "jobledger_finished"
LISTEN_FINISHED = f"LISTEN {FINISHED_CHANNEL}"
# Two advisory locks of the schema (two-key space, apart from the migrations' class) tell
# finishing transactions whether anyone listens for finished jobs: a NOTIFY costs every
# commit that sends one a cluster-wide lock held through its WAL flush, so none is sent
# for nobody. See _listen.py for why no finish falls between the two.
_LISTENING = f"{0x6A6C6677}, hashtext(current_schema())"  # "jlfw": held by each listener
_BARRIER = f"{0x6A6C6662}, hashtext(current_schema())"  # "jlfb": finishers vs a new listener
#: A listener's mark, held (shared) by its session for as long as it listens.
LISTENING_FOR_FINISHED = f"SELECT pg_advisory_lock_shared({_LISTENING})"
#: Once the mark is held: wait for the finishing transactions that may have looked for it
#: before, then let go at once (:data:`FINISHED_BARRIER_DONE`).
FINISHED_BARRIER = f"SELECT pg_advisory_lock({_BARRIER})"
FINISHED_BARRIER_DONE = f"SELECT pg_advisory_unlock({_BARRIER})"
#: One notification for the jobs a transaction finished, sent only while a listener's mark
#: is held: the JSON array ``[schema, [job ids]]``, or ``[schema, null]`` (some jobs of
#: that schema: wait and read) where the ids would pass the 8,000 bytes a payload may
#: take. The CASE takes the barrier (shared, until the transaction ends) BEFORE it looks
#: for a mark. Parameters: the channel, the job ids.
# Whether anyone listens for finished jobs of this schema, taking the barrier first.
_FINISH_HEARD = f"""CASE WHEN pg_advisory_xact_lock_shared({_BARRIER}) IS NULL THEN false
    ELSE EXISTS (SELECT 1 FROM pg_locks l
        WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 2
          AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
          AND l.classid = {0x6A6C6677}::oid AND l.objid = hashtext(current_schema())::oid)
    END"""
# The payload of a finished-jobs notification made of ``p``, its full JSON text.
_FINISH_PAYLOAD = """CASE WHEN octet_length(p) < 8000 THEN p
    ELSE json_build_array(current_schema(), NULL)::text END"""
NOTIFY_FINISHED = f"""\
SELECT pg_notify(%s, {_FINISH_PAYLOAD})
FROM (SELECT json_build_array(current_schema(), to_json(%s::text[]))::text AS p) AS x
WHERE {_FINISH_HEARD}"""

# -- the caller's own transaction (_joined.py) -----------------------------------------------

#: Which database a connection reaches: its name, and when its server started (two
#: servers started at the very same microsecond with the same database name are not seen).
DATABASE_IDENTITY = "SELECT current_database(), pg_postmaster_start_time()"
#: In a savepoint of the caller's transaction: its search_path as it was (read first:
#: MATERIALIZED), then the given one for the rest of that transaction, until put back.
#: Parameter: the new search_path (quoted identifiers).
JOIN_SEARCH_PATH = """\
WITH before AS MATERIALIZED (SELECT current_setting('search_path') AS path)
SELECT path, set_config('search_path', %s, true) FROM before"""
#: The caller's search_path put back. Parameter: it, as JOIN_SEARCH_PATH read it.
RESTORE_SEARCH_PATH = "SELECT set_config('search_path', %s, true)"

# -- migrations (_migrate.py) --------------------------------------------------------------

HAS_MIGRATIONS_TABLE = "SELECT to_regclass('jobledger_migrations') IS NOT NULL"
APPLIED_MIGRATIONS = "SELECT version FROM jobledger_migrations"
#: A transaction-level advisory lock of the schema (two-key space: apart from the leases').
LOCK_MIGRATIONS = "SELECT pg_advisory_xact_lock(%s, hashtext(current_schema()))"
CREATE_MIGRATIONS_TABLE = """\
CREATE TABLE IF NOT EXISTS jobledger_migrations (
    version integer PRIMARY KEY,
    name text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now())"""
MIGRATION_DONE = "INSERT INTO jobledger_migrations (version, name) VALUES (%s, %s)"

# -- jobs: writing (jobs.py) ---------------------------------------------------------------

#: Jobs take their ``seq`` in blocks of this many values: a value of the sequence, times
#: this, is the first of a block that is all the caller's. A batch takes one value per
#: block of jobs, not one per job (1,000 nextval calls cost the server as much as the
#: COPY of a few hundred rows). Blocks never overlap and come in the sequence's order, so
#: seqs stay unique and in the order of the enqueues (a job enqueued after another's
#: enqueue returned is served after it); they are no longer consecutive, which nothing
#: needs. Values assigned before blocks (the sequence's own) are all below every block.
SEQ_BLOCK = 1024
_NEXT_BLOCK = f"nextval('jobledger_job_seq') * {SEQ_BLOCK}"
#: One seq (a block's first value; the rest of it goes unused).
NEXT_SEQ = f"SELECT {_NEXT_BLOCK}"
#: The first seq of each of %s new blocks.
NEXT_SEQ_BLOCKS = f"SELECT {_NEXT_BLOCK} FROM generate_series(1, %s)"
#: NEXT_SEQ_BLOCKS, and the wake-up sent (once: MATERIALIZED) by the same statement, for
#: a transaction that inserts every row or fails. Parameters: the channel, how many blocks.
NEXT_SEQ_BLOCKS_WAKE = f"""\
WITH woken AS MATERIALIZED (SELECT pg_notify(%s, current_schema()))
SELECT {_NEXT_BLOCK} FROM woken, generate_series(1, %s)"""
#: The ids inserted; a stored id is skipped. The parameter: a JSON array of the rows.
INSERT_NEW_JOBS = f"""\
INSERT INTO jobledger_jobs ({_COLS})
SELECT {_COLS} FROM jsonb_to_recordset(%s) AS x({_RECORDSET})
ON CONFLICT DO NOTHING RETURNING job_id"""
COPY_JOBS = f"COPY jobledger_jobs ({_COLS}) FROM STDIN"
_SEQ_NEXT = ", ".join(_NEXT_BLOCK if c == "seq" else c for c in COLUMNS)
#: A job with the id, else the live job holding the key (NULL: none), the id's first.
#: Parameters: the job id, the unique key, the job id.
_ID_OR_KEY = f"""\
(job_id = %s OR (unique_key = %s AND status IN {_LIVE}))
ORDER BY job_id = %s DESC LIMIT 1"""
#: One job, one statement (autocommit: the commit goes with it, one round trip): the row
#: inserted with the next ``seq`` and the wake-up sent, returned with True; or, its id
#: stored or its unique key held by a live job (the unique index refuses the insert), the
#: stored row (the id's first) with False and nothing written. No row: that row was
#: committed after this statement's snapshot (read it with GET_JOB_OR_KEY_HOLDER).
#: Parameters: a JSON array of the one row, the wake-up's channel, the job id, the unique
#: key (or NULL), the job id.
ENQUEUE_ONE = f"""\
WITH ins AS (
    INSERT INTO jobledger_jobs ({_COLS})
    SELECT {_SEQ_NEXT} FROM jsonb_to_recordset(%s) AS x({_RECORDSET})
    ON CONFLICT DO NOTHING RETURNING {_COLS}),
woken AS (SELECT pg_notify(%s, current_schema()) FROM ins)
SELECT true, ins.* FROM ins, woken
UNION ALL
(SELECT false, {_COLS} FROM jobledger_jobs
WHERE NOT EXISTS (SELECT 1 FROM ins) AND {_ID_OR_KEY})"""
#: ENQUEUE_ONE's stored row, read again. Parameters: the job id, the key, the job id.
GET_JOB_OR_KEY_HOLDER = f"SELECT {_COLS} FROM jobledger_jobs WHERE {_ID_OR_KEY}"
#: The jobs holding the given unique keys: the live ones, and the finished ones whose
#: ``finished`` is at or after the cutoff (NULL: none), each key's live one first, then its
#: latest. FOR SHARE waits for a transaction changing one (a completion) to end and reads
#: the row as it left it: a job that was live when this statement started and finished
#: since is judged by its ``finished``, not taken for live. Parameters: the keys, cutoff.
KEY_HOLDERS = f"""\
SELECT {_COLS} FROM jobledger_jobs
WHERE unique_key = ANY(%s) AND (status IN {_LIVE} OR finished >= %s)
ORDER BY unique_key, status IN {_LIVE} DESC, seq DESC FOR SHARE"""
#: Transaction-level advisory locks on the given unique keys (hashed, in the schema's
#: space; two-key form, class given), taken in hash order so that two batches never
#: deadlock. Parameters: the lock class, the keys.
LOCK_UNIQUE_KEYS = """\
SELECT count(pg_advisory_xact_lock(%s, h)) FROM (
    SELECT DISTINCT hashtext(current_schema() || ':' || k) AS h FROM unnest(%s::text[]) AS k
    ORDER BY h) AS keys"""
#: After an import: the sequence past every stored ``seq`` (never moved back): the next
#: block starts above them.
MOVE_SEQ_PAST_JOBS = f"""\
SELECT setval('jobledger_job_seq', max(seq) / {SEQ_BLOCK}) FROM jobledger_jobs
HAVING max(seq) / {SEQ_BLOCK} >= (SELECT last_value FROM jobledger_job_seq)"""
#: The settings of a job backend's own connection, set once as it connects (parameters:
#: the names, their values): ``enable_sort`` off, so that a claim reads the serving order
#: from its index, and ``jit`` off with it; under ``durability="flush"``,
#: ``synchronous_commit`` off (see ``jobs._session_settings``).
SESSION_SETTINGS = """\
SELECT set_config(name, value, false) FROM unnest(%s::text[], %s::text[]) AS s(name, value)"""
# A claim's pick of due Queued jobs, in serving order (``gate``: one more condition).
# MATERIALIZED: the planner cannot fold the CTE into the UPDATE and evaluate the LIMIT
# more than once.
_PICKED = """\
picked AS MATERIALIZED (
    SELECT job_id FROM jobledger_jobs
    WHERE status = 'Queued' AND (run_after IS NULL OR run_after <= %s){types}{gate}
    ORDER BY {order} LIMIT {limit} FOR UPDATE SKIP LOCKED)"""
# The picked jobs made Running under the worker. Parameters: worker, now, lease seconds.
_CLAIM_PICKED = f"""\
UPDATE jobledger_jobs j SET status = 'Running', attempts = j.attempts + 1,
    worker = %s, started = %s, run_after = NULL,
    lease_until = clock_timestamp() + make_interval(secs => %s)
FROM picked WHERE j.job_id = picked.job_id
RETURNING {_J_COLS}"""
# Whether a worker's session ended: its Running jobs are to be recovered before a claim.
# Asked as ``_SESSION_GONE`` asks it, but by trying to take the worker's key, shared and
# for this statement only: a live worker's heartbeat holds it exclusively, so the try
# fails while its session lives. One lookup of the key, where reading ``pg_locks`` copies
# the server's whole lock table under every one of its partition locks, on every claim of
# every worker (0.06-0.08 ms a claim, a tenth of a claim + complete).
_GONE = """\
gone AS MATERIALIZED (
    SELECT EXISTS (SELECT 1 FROM jobledger_workers w
        WHERE w.lock_key IS NOT NULL AND w.lock_epoch = pg_postmaster_start_time()
          AND pg_try_advisory_xact_lock_shared(w.lock_key)) AS gone,
        (SELECT version FROM jobledger_limits_version) AS limits)"""
# A statement's claim takes nothing while a worker's session has ended: its caller then
# recovers that worker's jobs and claims in a transaction, serving them first. Nor while
# the stored limits are not those its caller knows (the parameter: their version): it
# reads them again, and claims under them. One lookup of a one-row table: what a worker
# with no limit to obey pays for limits.
_UNLESS_GONE = "\n      AND NOT (SELECT gone FROM gone) AND (SELECT limits FROM gone) = %s"


def _picked(types: str, gate: str = "", limit: str = "%s") -> str:
    return _PICKED.format(types=types, gate=gate, order=_ORDER, limit=limit)


@functools.lru_cache(maxsize=8)
def claim_jobs(of_types: bool, of_queues: bool) -> str:
    """A claim in a transaction (after a recovery): the picked jobs made Running.
    Parameters: now, [the types], [the queues], limit, worker, now, lease seconds."""
    return f"WITH {_picked(_filters(of_types, of_queues))}\n{_CLAIM_PICKED}"


def _filters(of_types: bool, of_queues: bool) -> str:
    return (_OF_TYPES if of_types else "") + (_OF_QUEUES if of_queues else "")


def _claim_next(types: str, limit: int, before: str = "", swapped: str = "") -> str:
    """A claim of ``limit`` jobs as one statement (after the CTEs ``before``), whose rows
    say whether a worker's session has ended, then (``swapped``) the ids of the jobs
    written, then each claimed job's columns. The limit is written in the statement, not
    passed: with it, the server's generic plan of the prepared statement reads the serving
    index and each row by its key, as a custom plan does, and is kept, never planned again
    (0.2 against 0.5 ms a claim); with a parameter it would expect a tenth of the table
    and hash all of it, so every run was planned anew."""
    return f"""\
WITH {before}{_GONE},
{_picked(types, _UNLESS_GONE, str(int(limit)))},
claimed AS (
{_CLAIM_PICKED})
SELECT gone.gone, gone.limits,{swapped} claimed.* FROM gone LEFT JOIN claimed ON true"""


@functools.lru_cache(maxsize=128)
def claim_next(of_types: bool, limit: int, of_queues: bool = False) -> str:
    """A claim of up to ``limit`` jobs as ONE statement (autocommit: one round trip):
    :func:`claim_jobs`, unless a worker's session has ended or the limits' version is
    not the one given. At least one row: whether a session has ended (then nothing was
    claimed), the limits' version, and the columns of a claimed job (NULLs when none
    was). Parameters: now, [the types], [the queues], the limits' version known, worker,
    now, lease seconds."""
    return _claim_next(_filters(of_types, of_queues), limit)


#: What a claim statement of unknown outcome may have claimed: the jobs Running under the
#: worker since the claim's ``now`` (waits for a transaction still finishing).
#: Parameters: worker, now.
CLAIMED_AT = f"""\
SELECT {_COLS} FROM jobledger_jobs
WHERE status = 'Running' AND worker = %s AND started = %s FOR SHARE"""
#: What a claim of unknown outcome left Running under the worker (waits for its end).
CLAIMED_BY = """\
SELECT job_id, attempts, started FROM jobledger_jobs
WHERE job_id = ANY(%s) AND status = 'Running' AND worker = %s FOR SHARE"""
#: The rows a transition changes, locked in job id order (two batches never deadlock).
LOCK_JOBS = f"""\
SELECT {_COLS} FROM jobledger_jobs
WHERE job_id = ANY(%s) ORDER BY job_id FOR UPDATE"""
#: The Running jobs whose own lease ran out, or whose worker is known to be gone (it
#: stopped and deleted its row, its row's lease ran out first, or its session ended).
RECOVERABLE_JOBS = f"""\
SELECT {_COLS} FROM jobledger_jobs j WHERE status = 'Running'
    AND (j.lease_until IS NULL OR j.lease_until <= clock_timestamp()
        OR NOT EXISTS (SELECT 1 FROM jobledger_workers w
            WHERE w.worker = j.worker AND w.{_ALIVE})
        OR EXISTS (SELECT 1 FROM jobledger_workers w
            WHERE w.worker = j.worker AND {_SESSION_GONE}))
ORDER BY {_ORDER} FOR UPDATE OF j SKIP LOCKED"""
DELETE_DEAD_WORKERS = f"DELETE FROM jobledger_workers WHERE NOT {_ALIVE}"
#: The workers whose session ended.
SESSIONLESS_WORKERS = f"SELECT w.worker FROM jobledger_workers w WHERE {_SESSION_GONE}"
#: Those of the given workers whose session (still) ended. Parameter: the worker ids.
DELETE_SESSIONLESS_WORKERS = f"""\
DELETE FROM jobledger_workers w WHERE w.worker = ANY(%s) AND {_SESSION_GONE}"""
# Finished, as the partial index jobledger_jobs_finished (0001_initial.sql) says it word
# for word: the planner uses that index only for a condition it can prove implies its own.
_FINISHED = "status IN ('Completed', 'Failed', 'Cancelled')"
#: One batch of prune: at most a batch size of finished jobs that finished before the
#: cutoff (those without a finished time first: an import may hold some, and every cutoff
#: but "" prunes them), then oldest first from a lower bound on: the last ``finished`` of
#: the batch before, so that each batch starts past the index entries of the rows its
#: predecessors deleted instead of walking them again. The rows are found through the
#: finished index (never a scan of the live rows or of the whole table) and locked; a row
#: another transaction holds (a retry's) is skipped: no wait, and no deadlock with a
#: transition's lock order. They are deleted by their ctid, which cannot change while
#: this transaction holds their lock (one TID scan: a third of the cost of looking each
#: up by its key). Returns how many rows were picked, the last ``finished`` among them
#: (where the next batch starts) and how many were deleted. Parameters: the cutoff, the
#: batch size, the lower bound (inclusive: jobs finished at the same instant may remain),
#: the cutoff, the batch size.
PRUNE_JOBS = f"""\
WITH undated AS MATERIALIZED (
    SELECT ctid FROM jobledger_jobs
    WHERE {_FINISHED} AND finished IS NULL AND %s > ''
    LIMIT %s FOR UPDATE SKIP LOCKED),
dated AS MATERIALIZED (
    SELECT ctid, finished FROM jobledger_jobs
    WHERE {_FINISHED} AND finished >= %s AND finished < %s
    ORDER BY finished LIMIT %s - (SELECT count(*) FROM undated) FOR UPDATE SKIP LOCKED),
gone AS (
    DELETE FROM jobledger_jobs j
    WHERE j.ctid = ANY(ARRAY(SELECT ctid FROM undated UNION ALL SELECT ctid FROM dated))
        AND j.{_FINISHED}
    RETURNING 1)
SELECT (SELECT count(*) FROM undated) + (SELECT count(*) FROM dated),
    (SELECT max(finished) FROM dated), (SELECT count(*) FROM gone)"""
#: Refuses new worker registrations until the transaction ends.
LOCK_WORKERS = "LOCK TABLE jobledger_workers IN EXCLUSIVE MODE"
CLEAR_JOBS = "DELETE FROM jobledger_jobs"
CLEAR_WORKERS = "DELETE FROM jobledger_workers"


@functools.lru_cache(maxsize=64)
def update_jobs(columns: tuple[str, ...]) -> str:
    """The UPDATE writing ``columns`` (of :data:`WRITABLE`) of the rows in its parameter,
    a JSON array of objects keyed by column, ``job_id`` included: only the columns a write
    changed, so that PostgreSQL keeps the others (a payload) as they are."""
    sets = ", ".join(f"{c} = x.{c}" for c in columns)
    types = ", ".join(f"{c} {_TYPES[c]}" for c in ("job_id", *columns))
    return f"""\
UPDATE jobledger_jobs j SET {sets}
FROM jsonb_to_recordset(%s) AS x({types}) WHERE j.job_id = x.job_id"""


# The claim a swap's row must still be: compared as one row value, which no index serves,
# so the row is found by its key alone. With ``status = 'Running'`` the planner, its
# statistics taken while the jobs were still Queued, read every Running job to find one
# (4.7 ms with 26,000 Running).
# A job whose cancel was asked is not the claim any more: its failure or requeue ends it
# Cancelled, which the locking path (the fallback) decides from the stored row.
_STILL_CLAIMED = """(j.status, j.worker, j.attempts, j.started)
          IS NOT DISTINCT FROM ('Running', {worker}, {attempts}, {started})
          AND j.cancel_requested_at IS NULL"""
# Sends one wake-up if a job written is now Queued. Parameter: the channel.
_WOKEN = f"""\
woken AS (SELECT pg_notify(%s, current_schema()) FROM swapped WHERE status = 'Queued' LIMIT 1),
noted AS (
    SELECT pg_notify('{FINISHED_CHANNEL}', {_FINISH_PAYLOAD})
    FROM (SELECT json_build_array(current_schema(),
            to_json(array_agg(job_id ORDER BY job_id)))::text AS p
        FROM swapped WHERE status IN ('Completed', 'Failed', 'Cancelled')
        HAVING count(*) > 0) AS x
    WHERE {_FINISH_HEARD})"""
# Whether a wake-up was sent; evaluating it also sends the finished jobs' notification
# (``noted``, which a CTE only does when read: the WHEN is always evaluated).
_WOKEN_SENT = "CASE WHEN (SELECT count(*) FROM noted) >= 0 THEN EXISTS (SELECT 1 FROM woken) END"


def _swapped(columns: tuple[str, ...], one: bool) -> str:
    """The CTEs of a swap: ``swapped`` writes ``columns`` of the jobs whose stored row is
    still the claim each expects, Running, and ``woken`` wakes the idle workers.

    ``one``: one job, its values as parameters: ``columns``' values, the job id, then the
    claim (worker, attempts, started). Otherwise a JSON array of objects (``job_id``,
    ``columns``, ``was_worker``, ``was_attempts``, ``was_started``), then their ids again,
    in job id order as the caller sorts the array: the rows are found, and locked, through
    the key in that order (as LOCK_JOBS: two batches do not deadlock). The array costs
    the server about 0.15 ms more than parameters (measured on one job)."""
    if one:
        sets = ", ".join(f"{c} = %s::{_TYPES[c]}" for c in columns)
        claim = {c: f"%s::{_TYPES[c]}" for c in ("worker", "attempts", "started")}
        return f"""\
swapped AS (
    UPDATE jobledger_jobs j SET {sets}
    WHERE j.job_id = %s AND {_STILL_CLAIMED.format(**claim)}
    RETURNING j.job_id, j.status),
{_WOKEN}"""
    sets = ", ".join(f"{c} = x.{c}" for c in columns)
    types = ", ".join(
        [f"{c} {_TYPES[c]}" for c in ("job_id", *columns)]
        + [f"was_{c} {_TYPES[c]}" for c in ("worker", "attempts", "started")]
    )
    claim = {c: f"x.was_{c}" for c in ("worker", "attempts", "started")}
    return f"""\
swapped AS (
    UPDATE jobledger_jobs j SET {sets}
    FROM jsonb_to_recordset(%s) AS x({types})
    WHERE j.job_id = ANY(%s) AND j.job_id = x.job_id AND {_STILL_CLAIMED.format(**claim)}
    RETURNING j.job_id, j.status),
{_WOKEN}"""


def _swap(columns: tuple[str, ...], one: bool) -> str:
    return f"""\
WITH {_swapped(columns, one)}
SELECT s.job_id, {_WOKEN_SENT} FROM swapped s"""


@functools.lru_cache(maxsize=64)
def swap_job(columns: tuple[str, ...]) -> str:
    """Write ``columns`` (of :data:`WRITABLE`) of one job if its stored row is still the
    claim it expects: ONE statement (autocommit: one round trip). Rows: the id if written,
    and whether a wake-up was sent. Parameters: the values of ``columns``, the job id, the
    claim's worker, attempts and started, the wake-up's channel."""
    return _swap(columns, one=True)


@functools.lru_cache(maxsize=64)
def swap_jobs(columns: tuple[str, ...]) -> str:
    """:func:`swap_job` of many jobs (see ``_swapped``). Parameters: the JSON array, the
    job ids, the wake-up's channel."""
    return _swap(columns, one=False)


def _swap_and_claim(
    columns: tuple[str, ...], one: bool, of_types: bool, limit: int, of_queues: bool
) -> str:
    swapped = f" (SELECT array_agg(job_id) FROM swapped), {_WOKEN_SENT},"
    before = f"{_swapped(columns, one)},\n"
    return _claim_next(_filters(of_types, of_queues), limit, before, swapped)


@functools.lru_cache(maxsize=128)
def swap_job_and_claim(
    columns: tuple[str, ...], of_types: bool, limit: int, of_queues: bool = False
) -> str:
    """:func:`swap_job` and :func:`claim_next` as ONE statement: the completion a worker
    records with its next claim (group commit). At least one row: whether a worker's
    session has ended (then nothing was claimed), the limits' version, the ids written,
    whether a wake-up was sent, then the columns of a claimed job (NULLs when none was).
    Parameters: swap_job's, then the claim's."""
    return _swap_and_claim(columns, True, of_types, limit, of_queues)


@functools.lru_cache(maxsize=128)
def swap_jobs_and_claim(
    columns: tuple[str, ...], of_types: bool, limit: int, of_queues: bool = False
) -> str:
    """:func:`swap_job_and_claim` of many jobs: :func:`swap_jobs`'s parameters, then the
    claim's."""
    return _swap_and_claim(columns, False, of_types, limit, of_queues)


# -- jobs: reading (jobs.py) ---------------------------------------------------------------

GET_JOB = f"SELECT {_COLS} FROM jobledger_jobs WHERE job_id = %s"
GET_JOBS = f"SELECT {_COLS} FROM jobledger_jobs WHERE job_id = ANY(%s)"
#: The jobs of the given statuses, Running first, each in serving order.
LIVE_JOBS = f"""\
SELECT {_COLS} FROM jobledger_jobs WHERE status = ANY(%s)
ORDER BY status = 'Running' DESC, {_ORDER}"""
JOBS_IN_SEQ_ORDER = f"SELECT {_COLS} FROM jobledger_jobs ORDER BY seq"
#: Those of the given jobs Running with a cancel request (a worker's poll, its running jobs).
CANCEL_REQUESTED = """\
SELECT job_id FROM jobledger_jobs
WHERE job_id = ANY(%s) AND status = 'Running' AND cancel_requested_at IS NOT NULL"""
COUNT_BY_STATUS = "SELECT status, count(*) FROM jobledger_jobs GROUP BY status"
COUNT_QUEUED = "SELECT count(*) FROM jobledger_jobs WHERE status = 'Queued'"
COUNT_QUEUED_OF_TYPES = COUNT_QUEUED + _OF_TYPES
#: Per type: due at now, due later, the next due time. Parameters: now, three times.
QUEUED_BY_TYPE = """\
SELECT type, count(*) FILTER (WHERE run_after IS NULL OR run_after <= %s),
    count(*) FILTER (WHERE run_after > %s),
    min(run_after) FILTER (WHERE run_after > %s)
FROM jobledger_jobs WHERE status = 'Queued' GROUP BY type"""
#: QUEUED_BY_TYPE of the given queues. Parameters: now, three times, the queues.
QUEUED_BY_TYPE_OF_QUEUES = QUEUED_BY_TYPE.replace(
    "WHERE status = 'Queued'", "WHERE status = 'Queued' AND queue = ANY(%s)"
)
#: Jobs per queue and status (as COUNT_BY_STATUS, one scan).
COUNT_BY_QUEUE = "SELECT queue, status, count(*) FROM jobledger_jobs GROUP BY queue, status"

# -- limits (_limited.py) ------------------------------------------------------------------

#: The limits' version (see sql/0008_queues_and_limits.sql).
LIMITS_VERSION = "SELECT version FROM jobledger_limits_version"
LIMITS = "SELECT kind, name, n, per, key_field FROM jobledger_limits ORDER BY kind, name"
#: Taken by a change of the limits: waits for the claims under way, which read the
#: version, and holds back those after it until it commits.
LOCK_LIMITS_VERSION = "LOCK TABLE jobledger_limits_version IN ACCESS EXCLUSIVE MODE"
BUMP_LIMITS_VERSION = "UPDATE jobledger_limits_version SET version = version + 1"
#: Parameters: kind, name, n, per, key_field.
PUT_LIMIT = """\
INSERT INTO jobledger_limits (kind, name, n, per, key_field) VALUES (%s, %s, %s, %s, %s)
ON CONFLICT (kind, name) DO UPDATE
    SET n = EXCLUDED.n, per = EXCLUDED.per, key_field = EXCLUDED.key_field"""
#: Parameters: kind, name.
DELETE_LIMIT = "DELETE FROM jobledger_limits WHERE kind = %s AND name = %s"
# The two-key advisory lock space of claims under limits ("jllc"), apart from the others.
_LIMITED = f"{0x6A6C6C63}, hashtext(current_schema())"
#: Held by a claim under limits until it commits: such claims, which count the Running
#: jobs and recent starts they must stay under, take their turns.
LOCK_LIMITED_CLAIMS = f"SELECT pg_advisory_xact_lock({_LIMITED})"
#: Whether a worker's session has ended (as a claim statement asks it).
ANY_SESSION_GONE = """\
SELECT EXISTS (SELECT 1 FROM jobledger_workers w
    WHERE w.lock_key IS NOT NULL AND w.lock_epoch = pg_postmaster_start_time()
      AND pg_try_advisory_xact_lock_shared(w.lock_key))"""
#: The Running jobs of the given queues, per queue.
RUNNING_IN_QUEUES = """\
SELECT queue, count(*) FROM jobledger_jobs
WHERE status = 'Running' AND queue = ANY(%s) GROUP BY queue"""
#: The starts of the given types after a time. Parameters: the types, the time.
RATE_STARTS = """\
SELECT type, key, started FROM jobledger_rate_starts WHERE type = ANY(%s) AND started > %s"""
#: Forget a type's starts at or before a time. Parameters: the type, the time.
FORGET_RATE_STARTS = "DELETE FROM jobledger_rate_starts WHERE type = %s AND started <= %s"
#: Parameters: the types, the keys, the times (arrays of one length).
ADD_RATE_STARTS = """\
INSERT INTO jobledger_rate_starts (type, key, started)
SELECT * FROM unnest(%s::text[], %s::text[], %s::text[])"""
#: The chosen jobs made Running. Parameters: worker, now, lease seconds, the job ids.
CLAIM_CHOSEN = f"""\
UPDATE jobledger_jobs j SET status = 'Running', attempts = j.attempts + 1,
    worker = %s, started = %s, run_after = NULL,
    lease_until = clock_timestamp() + make_interval(secs => %s)
WHERE j.job_id = ANY(%s) AND j.status = 'Queued'
RETURNING {_J_COLS}"""
# A rate-limited type's jobs whose key's window is full. Parameters: the type, the key
# field (NULL: none), the full keys.
_NOT_FULL_KEY = """
  AND NOT (type = %s AND coalesce(rate_key, payload->>%s::text, '') = ANY(%s))"""


@functools.lru_cache(maxsize=64)
def pick_limited(of_types: bool, of_queues: bool, rate_types: int) -> str:
    """The due Queued jobs a claim under limits looks at, in serving order, locked:
    none of a full queue, none of a full rate key of ``rate_types`` types, none refused
    already. Parameters: now, [the types], [the queues], the full queues, the refused
    job ids, per rate type (the type, its key field, its full keys), the limit."""
    keys = _NOT_FULL_KEY * rate_types
    return f"""\
SELECT {_COLS} FROM jobledger_jobs
WHERE status = 'Queued' AND (run_after IS NULL OR run_after <= %s){_filters(of_types, of_queues)}
  AND queue <> ALL(%s) AND job_id <> ALL(%s){keys}
ORDER BY {_ORDER} LIMIT %s FOR UPDATE SKIP LOCKED"""


# -- jobs: bounded reads for pages (_history.py) -------------------------------------------

#: One status's live jobs in serving order, a page of them. Parameters: status, limit, offset.
LIVE_PAGE = f"""\
SELECT {_COLS} FROM jobledger_jobs WHERE status = %s
ORDER BY {_ORDER} LIMIT %s OFFSET %s"""
#: A page of history, latest finish first (the partial index on finished serves it).
#: Parameters: statuses, type twice, queue twice, since twice, until twice, the cursor's
#: finished three times and its job id, limit. A None parameter leaves its test out.
HISTORY_PAGE = f"""\
SELECT {_COLS} FROM jobledger_jobs
WHERE {_FINISHED} AND finished IS NOT NULL AND status = ANY(%s)
  AND (%s::text IS NULL OR type = %s)
  AND (%s::text IS NULL OR queue = %s)
  AND (%s::text IS NULL OR finished >= %s)
  AND (%s::text IS NULL OR finished < %s)
  AND (%s::text IS NULL OR finished < %s OR (finished = %s AND job_id < %s))
ORDER BY finished DESC, job_id DESC LIMIT %s"""
#: Finishes per minute (the ISO time's first 16 characters) and status since a time.
FINISHED_PER_MINUTE = f"""\
SELECT left(finished, 16), status, count(*) FROM jobledger_jobs
WHERE {_FINISHED} AND finished >= %s GROUP BY 1, 2"""

# -- schedules (jobs.py) -------------------------------------------------------------------

SCHEDULES = "SELECT name, record FROM jobledger_schedules ORDER BY name"
LOCK_SCHEDULE = "SELECT record FROM jobledger_schedules WHERE name = %s FOR UPDATE"
#: Parameters: name, record.
PUT_SCHEDULE = """\
INSERT INTO jobledger_schedules (name, record) VALUES (%s, %s)
ON CONFLICT (name) DO UPDATE SET record = excluded.record"""
DELETE_SCHEDULE = "DELETE FROM jobledger_schedules WHERE name = %s"
#: A new schedule's name, locked until the transaction ends even while it has no row
#: (two-key advisory lock: class, hashed name), so that two first stores of one name
#: wait for each other. Parameters: the lock class, the name.
LOCK_SCHEDULE_NAME = "SELECT pg_advisory_xact_lock(%s, hashtext(current_schema() || ':' || %s))"

# -- workers (jobs.py, _heartbeat.py) ------------------------------------------------------

WORKER_ALIVE = f"SELECT EXISTS (SELECT 1 FROM jobledger_workers WHERE worker = %s AND {_ALIVE})"
LIVE_WORKERS = f"SELECT worker FROM jobledger_workers WHERE {_ALIVE} ORDER BY worker"
#: The worker's row, its lease pushed forward; true when the row had to be created.
#: Parameters: worker, pid, host, since, lease seconds, the session lock's key (or NULL).
RENEW_WORKER = """\
INSERT INTO jobledger_workers (worker, pid, host, since, lease_until, lock_key, lock_epoch)
VALUES (%s, %s, %s, %s, clock_timestamp() + make_interval(secs => %s), %s,
    pg_postmaster_start_time())
ON CONFLICT (worker) DO UPDATE SET lease_until = excluded.lease_until,
    lock_key = excluded.lock_key, lock_epoch = excluded.lock_epoch
RETURNING (xmax = 0)"""
#: The server's TCP keepalives of this session (idle, interval seconds, count): the server
#: ends the session of a vanished peer within the worker's lease. Ignored on a Unix socket.
SERVER_KEEPALIVES = """\
SELECT set_config('tcp_keepalives_idle', %s, false),
    set_config('tcp_keepalives_interval', %s, false),
    set_config('tcp_keepalives_count', %s, false)"""
#: The leases of the jobs still Running under the worker and not run out; rows another
#: transaction holds are skipped, not waited for. Parameters: lease seconds, worker.
RENEW_JOB_LEASES = """\
UPDATE jobledger_jobs SET lease_until = clock_timestamp() + make_interval(secs => %s)
WHERE job_id IN (
    SELECT job_id FROM jobledger_jobs
    WHERE worker = %s AND status = 'Running' AND lease_until > clock_timestamp()
    FOR UPDATE SKIP LOCKED)"""
DELETE_WORKER = "DELETE FROM jobledger_workers WHERE worker = %s"

# -- task sets (tasksets.py) ---------------------------------------------------------------

READ_TASKSET = f"SELECT record FROM jobledger_tasksets WHERE {_TASKSET}"
LOCK_TASKSET = f"SELECT record FROM jobledger_tasksets WHERE {_TASKSET} FOR UPDATE"
#: Parameters: record, completed, remaining, last_update, then the key.
UPDATE_TASKSET = f"""\
UPDATE jobledger_tasksets
SET record = %s, completed = %s, remaining = %s, last_update = %s
WHERE {_TASKSET}"""
#: Returns a row only if it created one (another writer may have been first).
INSERT_TASKSET = """\
INSERT INTO jobledger_tasksets
    (account, type, date, record, completed, remaining, last_update)
VALUES (%s, %s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING RETURNING 1"""
DELETE_TASKSET = f"DELETE FROM jobledger_tasksets WHERE {_TASKSET}"
SET_ASIDE = "INSERT INTO jobledger_set_aside (kind, key, data, reason) VALUES (%s, %s, %s, %s)"
TASKSET_KEYS = "SELECT account, type, date FROM jobledger_tasksets"
TASKSET_KEYS_OF_ACCOUNT = TASKSET_KEYS + " WHERE account = %s"
TASKSET_ROWS = "SELECT account, type, date, record FROM jobledger_tasksets"
#: The records dated from one day to another (inclusive): a window of days read at once,
#: each record as its JSON text (the text a reader compares with what it parsed before).
TASKSET_RANGE = """\
SELECT account, type, date, record::text FROM jobledger_tasksets
WHERE date BETWEEN %s AND %s"""
TASKSET_RANGE_OF_ACCOUNT = TASKSET_RANGE + " AND account = %s"
SIZE_OF_TASKSETS = """\
SELECT coalesce(sum(pg_column_size(t.*)), 0), count(*) FROM jobledger_tasksets t"""
SET_ASIDE_KEYS = "SELECT key FROM jobledger_set_aside ORDER BY id"

# -- run leases (tasksets.py) --------------------------------------------------------------

#: Whether the lease's session is still there (a round trip on it).
PING = "SELECT 1"
TRY_ADVISORY_LOCK = "SELECT pg_try_advisory_lock(%s)"
ADVISORY_LOCK = "SELECT pg_advisory_lock(%s)"
ADVISORY_UNLOCK = "SELECT pg_advisory_unlock(%s)"
RESET_LOCK_TIMEOUT = "RESET lock_timeout"
#: The holder's row, written by the session that holds the lock.
TAKE_LEASE = """\
INSERT INTO jobledger_leases (account, type, date, lock_key, backend_pid, pid, host, since)
VALUES (%s, %s, %s, %s, pg_backend_pid(), %s, %s, %s)
ON CONFLICT (account, type, date) DO UPDATE SET lock_key = excluded.lock_key,
    backend_pid = excluded.backend_pid, pid = excluded.pid, host = excluded.host,
    since = excluded.since"""
DELETE_MY_LEASE = (
    f"DELETE FROM jobledger_leases WHERE {_TASKSET} AND backend_pid = pg_backend_pid()"
)
DELETE_LEASE = f"DELETE FROM jobledger_leases WHERE {_TASKSET}"
#: The live holder of a set's lease: its row, checked against pg_locks.
TASKSET_HOLDER = f"""\
SELECT h.pid, h.host, h.since FROM jobledger_leases h
WHERE h.account = %s AND h.type = %s AND h.date = %s AND {_HELD}"""
#: Every lease row, and whether its session still holds the lock (false: its holder died).
LEASES = (
    f"SELECT h.account, h.type, h.date, h.pid, h.host, h.since, {_HELD} FROM jobledger_leases h"
)
#: The lease rows whose session no longer holds the lock.
STALE_LEASES = f"SELECT h.account, h.type, h.date FROM jobledger_leases h WHERE NOT {_HELD}"


def set_lock_timeout(ms: int) -> str:
    """The SET bounding the wait of ``pg_advisory_lock`` (a heavyweight lock), in
    milliseconds (SET takes no parameter)."""
    return f"SET lock_timeout = {int(ms)}"
