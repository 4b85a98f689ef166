-- jobledger schema version 4: a worker's liveness from its session.
--
-- A worker's heartbeat session holds a session-level advisory lock on `lock_key` (derived
-- from the schema and the worker's id), which the server drops when that session ends: a
-- worker whose process died is known dead as soon as its connection closes, before its
-- lease runs out. NULL (a worker of an older version, or one that could not take its
-- lock yet) leaves the lease alone to tell.
--
-- `lock_epoch` is the server's start time when the lock was taken: a server restart drops
-- every session's lock, the live workers' too, so a key taken before the restart says
-- nothing until its heartbeat takes the lock again; until then the lease alone tells.
ALTER TABLE jobledger_workers ADD COLUMN lock_key bigint;
ALTER TABLE jobledger_workers ADD COLUMN lock_epoch timestamptz;
