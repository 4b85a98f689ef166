"""What the benchmarks share: a work folder on a real disk, and saying which disk it is."""

from __future__ import annotations

import cProfile
import datetime as dt
import io
import json
import os
import platform
import pstats
import sys
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import jobledger
from jobledger.backends.files._fs_probe import mount_of


def filesystem_of(path: str) -> str:
    """The file system type holding ``path`` ('?' where it cannot be told)."""
    return mount_of(path)[1] or "?"


def work_folder(base: str | None, prefix: str) -> tuple[str, str]:
    """A new temp folder under ``base`` (default: the current directory, not /tmp, which
    is often a tmpfs where fsync costs nothing), and its file system type. Warns when the
    folder is in memory."""
    base = base or os.getcwd()
    os.makedirs(base, exist_ok=True)
    work = tempfile.mkdtemp(prefix=prefix, dir=base)
    fstype = filesystem_of(work)
    print(f"folder: {work} ({fstype})")
    if fstype in ("tmpfs", "ramfs"):
        print("WARNING: this folder is in memory; fsync costs nothing here. Use --dir.")
    return work, fstype


def write_results(path: str | Path, result: dict[str, Any]) -> None:
    """Write a benchmark's results as JSON (the folder is made if needed)."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(f"results written to {out}")


def run_info(work: str, fstype: str) -> dict[str, Any]:
    """What every result file starts with: when, on what, in which folder."""
    return {
        "when": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "jobledger": jobledger.__version__,
        "folder": work,
        "filesystem": fstype,
    }


def profile(fn: Callable[[], object], top: int = 25) -> str:
    """The cProfile table (by own time) of ``fn()``: the ``--profile`` output of the
    benchmarks."""
    prof = cProfile.Profile()
    prof.enable()
    fn()
    prof.disable()
    out = io.StringIO()
    stats = pstats.Stats(prof, stream=out).strip_dirs().sort_stats("tottime")
    stats.print_stats(top)
    return out.getvalue()


def kill_all(procs: Iterable[Any]) -> None:
    """SIGKILL and reap every started process still alive (a benchmark's cleanup)."""
    for p in procs:
        if p.pid is not None and p.is_alive():
            p.kill()
            p.join()
