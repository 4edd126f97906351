"""`run.lock`: the process writing a run says so, and a resume refuses a run still being written.

The lock holds the writer's pid and when that process started (from /proc), which tells it from a
later process that got the same pid; a lock of a dead or reaped process is stale and ignored. Kept
free of torch and lightning.
"""

from __future__ import annotations

import os
from pathlib import Path

from rnnlab.atomic import write_text_atomically
from rnnlab.errors import UserError

LOCK = "run.lock"


def process_start(pid: int) -> int | None:
    """When a process started (clock ticks since boot, from /proc), which tells it from a later process
    that got the same pid; None where /proc cannot say."""
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()[19])
    except (OSError, ValueError, IndexError):
        return None


def lock_text() -> str:
    """What `run.lock` holds: this process's pid and when it started."""
    started = process_start(os.getpid())
    return f"{os.getpid()}" + (f" {started}" if started is not None else "") + "\n"


def writer_of(run_dir: Path) -> int | None:
    """The pid of a live process that holds the run's lock, if any (a stale or unreadable lock is ignored)."""
    try:
        fields = (run_dir / LOCK).read_text().split()
        pid, started = int(fields[0]), int(fields[1]) if len(fields) > 1 else None
    except (OSError, ValueError, IndexError):
        return None
    if pid == os.getpid():
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        return pid  # alive, someone else's
    if started is not None and process_start(pid) not in (None, started):
        return None  # the pid now belongs to another process (or the lock was damaged)
    stat = Path(f"/proc/{pid}/stat")
    if stat.is_file() and stat.read_text().rsplit(")", 1)[-1].split()[0] == "Z":
        return None  # killed, not yet reaped by its parent
    return pid


def check_not_busy(run_dir: Path, what: str) -> None:
    pid = writer_of(run_dir)
    if pid is not None:
        raise UserError(
            f"{what}: process {pid} is still writing to {run_dir}; stop it first (or let it finish)"
        )


def hold_lock(run_dir: Path) -> Path | None:
    """`run.lock` with this process's pid while it writes the run (written whole, never half); a resume
    refuses a live one. None where the run has no folder."""
    if not run_dir.is_dir():
        return None
    lock = run_dir / LOCK
    write_text_atomically(lock, lock_text())
    return lock
