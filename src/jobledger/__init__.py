"""jobledger: resumable, crash-safe task sets and job queues.

Task sets: named tasks per account per day that,
after a crash, reboot or Ctrl-C, skip what is done and resume what remains::

    import jobledger

    state = jobledger.JobState("sessions/job-state")
    with state.taskset("user@email.com", "daily-set", tasks=["check-in", "quiz-1"]) as ts:
        for task in ts.pending():
            with ts.task(task, reraise=False):
                do(task)

Job queues: jobs as JSON files in a folder (``jobs/<id>.json`` and ``queue.json``) or rows
in PostgreSQL, served in priority order, retried with backoff, and given back to the queue
when their worker dies::

    queue = jobledger.JobQueue("sessions/queue")  # or "postgresql://..."
    job_id = queue.enqueue({"type": "TextJob", "model": "mistralai/Mistral-7B-v0.1"})
    jobledger.Worker(queue, {"TextJob": train}).run(until_empty=True)
    result = queue.wait(job_id)  # or JobFailed, JobCancelled

Daily runs across accounts (the two together): each day at 07:00, one job per account
runs that account's task set, resumed by another worker if its worker dies::

    daily = jobledger.daily_run(state, queue, ["alice", "bob"], "daily-set", tasks, do)
    jobledger.Worker(queue, daily.handlers).run()

The same queue from asyncio (a web service's request path): ``jobledger.aio.AsyncJobQueue``.
"""

from ._attempt_changes import MAX_CHECKPOINT_BYTES
from ._daily import DailyRun, DailyTask, daily_run
from ._errors import (
    AlreadyRunning,
    ConfigError,
    InvalidNameError,
    InvalidPayload,
    JobCancelled,
    JobConflict,
    JobFailed,
    JobLedgerError,
    JobNotFound,
    JobTimeout,
    LeaseHolder,
    StorageError,
    WaitTimeout,
)
from ._inputs import MAX_JSON_DEPTH, MAX_RESULT_BYTES
from ._job_fields import JobStatus
from ._job_progress import JobProgress
from ._job_state import JobState
from ._job_types import job_type
from ._job_view import Job
from ._limits import Limits, RateLimit
from ._queue import JobQueue
from ._schedules import Schedule, StoredSchedule
from ._snooze import Snooze
from ._taskset import TaskRun, TaskSet
from ._taskset_record import Failure, Progress, RunLease, TaskSetKey, TaskSetRecord
from ._worker import Worker

__version__ = "0.1.0"

__all__ = [
    "MAX_CHECKPOINT_BYTES",
    "MAX_JSON_DEPTH",
    "MAX_RESULT_BYTES",
    "AlreadyRunning",
    "ConfigError",
    "DailyRun",
    "DailyTask",
    "Failure",
    "InvalidNameError",
    "InvalidPayload",
    "Job",
    "JobCancelled",
    "JobConflict",
    "JobFailed",
    "JobLedgerError",
    "JobNotFound",
    "JobProgress",
    "JobQueue",
    "JobState",
    "JobStatus",
    "JobTimeout",
    "LeaseHolder",
    "Limits",
    "Progress",
    "RateLimit",
    "RunLease",
    "Schedule",
    "Snooze",
    "StorageError",
    "StoredSchedule",
    "TaskRun",
    "TaskSet",
    "TaskSetKey",
    "TaskSetRecord",
    "WaitTimeout",
    "Worker",
    "__version__",
    "daily_run",
    "job_type",
]
