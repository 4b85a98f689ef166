-- jobledger schema version 4: a worker's liveness from its session.
--
-- A worker's heartbeat session holds a session-level advisory lock on `lock_key` (derived
-- from the schema and the worker's id), which the server drops when that session ends: a
-- worker whose process died is known dead as soon as its connection closes, before its
-- lease runs out. NULL (a worker of an older version, or one that could not take its
-- lock yet) leaves the lease alone to tell.
ALTER TABLE jobledger_workers ADD COLUMN lock_key bigint;
