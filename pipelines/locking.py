"""One run at a time per program folder.

Two runs of one program (a scheduled run and a hand-started one, say) would
interleave their writes to the same outputs. Each run takes an exclusive
lock on ``PROGRAM/.capacitar.lock`` (an OS file lock: released by the kernel
if the process dies, so a crashed run never leaves the folder locked). A
second run waits up to ``timeout`` seconds for the first, then stops with a
message naming who holds the folder. The lock is re-entrant within one thread:
``capacitar run`` takes it before Prefect starts and the flow it runs goes on
under it (no other run can slip in between).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from filelock import FileLock, Timeout

from pipelines.errors import CapacitarError

LOCK_NAME = ".capacitar.lock"
_held = threading.local()  # program folders this thread holds: root -> depth


class ProgramBusy(CapacitarError):
    """Another run holds the program folder."""


def holder(root: Path) -> str:
    """Who holds the lock, as recorded beside it ("pid 123 on host since ...")."""
    try:
        info = json.loads((root / f"{LOCK_NAME}.json").read_text(encoding="utf-8"))
        return f"run {info['run_id']}, pid {info['pid']} on {info['host']} since {info['since']}"
    except (OSError, ValueError, KeyError):
        return "another capacitar run"


@contextmanager
def program_lock(root: Path, run_id: str, timeout: float = 600,
                 on_wait: Callable[[str], None] | None = None) -> Iterator[None]:
    """Hold the program folder's lock for the duration of the ``with`` block.

    Parameters
    ----------
    root : program folder
    run_id : recorded beside the lock so a waiting run can say whom it waits for
    timeout : seconds to wait for a run in progress (0: do not wait)
    on_wait : called once with a message when the folder is busy

    Examples
    --------
    >>> import tempfile
    >>> from concurrent.futures import ThreadPoolExecutor
    >>> root = Path(tempfile.mkdtemp())
    >>> def elsewhere():
    ...     try:
    ...         with program_lock(root, "b", timeout=0):
    ...             return "free"
    ...     except ProgramBusy:
    ...         return "busy"
    >>> with program_lock(root, "a"), program_lock(root, "a"):  # re-entrant in one thread
    ...     with ThreadPoolExecutor() as pool:
    ...         pool.submit(elsewhere).result()
    'busy'
    >>> elsewhere()
    'free'
    """
    held = _held.__dict__.setdefault("roots", {})
    key = str(Path(root).resolve())
    if held.get(key):
        held[key] += 1
        try:
            yield
        finally:
            held[key] -= 1
        return
    lock = FileLock(root / LOCK_NAME, mode=0o600)
    try:
        lock.acquire(timeout=0)
    except Timeout:
        message = f"{root} is being evaluated by {holder(root)}"
        if timeout <= 0:
            raise ProgramBusy(f"{message}; try again when it has finished") from None
        if on_wait:
            on_wait(f"{message}; waiting up to {timeout:.0f} s")
        try:
            lock.acquire(timeout=timeout)
        except Timeout:
            raise ProgramBusy(f"{message}; gave up after waiting {timeout:.0f} s") from None
    info = root / f"{LOCK_NAME}.json"  # a dead run's is replaced here, removed on release
    try:
        held[key] = 1
        info.write_text(json.dumps({
            "run_id": run_id, "pid": os.getpid(), "host": socket.gethostname(),
            "since": dt.datetime.now(dt.UTC).isoformat(timespec="seconds")}), encoding="utf-8")
        yield
    finally:
        held.pop(key, None)
        info.unlink(missing_ok=True)
        lock.release()
