"""A rival worker for the lease tests: ``python -m tests._lease_rival LOCATION [LEASE]``.

It opens the queue at LOCATION (a folder or a PostgreSQL URL; ``LEASE`` seconds of
worker lease on PostgreSQL) as a worker of its own and, until its stdin closes, recovers
dead workers' jobs and claims, round after round. Each round prints ``round N`` with the
seconds it has been trying; a job it recovers or claims prints ``recovered ID`` or
``claimed ID`` (and is completed, so that a double run would show). At the end it prints
``done N`` (the rounds made) and exits 0.
"""

from __future__ import annotations

import sys
import threading
import time

from jobledger import JobQueue


def main(argv: list[str]) -> int:
    location = argv[0]
    lease = float(argv[1]) if len(argv) > 1 else None
    stop = threading.Event()

    def watch_stdin() -> None:
        sys.stdin.read()  # until the test closes it
        stop.set()

    threading.Thread(target=watch_stdin, daemon=True).start()
    rounds = 0
    with JobQueue(location, durability="flush", recover_every=0, worker_lease=lease) as q:
        print(f"ready {q.worker_id}", flush=True)
        started = time.monotonic()
        while not stop.is_set():
            for job in q.recover():
                print(f"recovered {job.job_id}", flush=True)
            job = q.claim()
            if job is not None:
                print(f"claimed {job.job_id}", flush=True)
                q.complete(job.job_id, "run by the rival")
            rounds += 1
            print(f"round {rounds} {time.monotonic() - started:.3f}", flush=True)
            stop.wait(0.02)  # a busy rival, not a spinning one
    print(f"done {rounds}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
