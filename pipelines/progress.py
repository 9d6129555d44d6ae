"""What a command shows while it works: progress bars and a heartbeat, in a terminal only.

Under CI, in a pipe or with ``CAPACITAR_NO_PROGRESS`` nothing is added (a cron log
gets the run's own lines only).

>>> with progress("Counting", 3) as advance:
...     for _ in range(3):
...         advance()
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager


def progress_wanted() -> bool:
    """True in an interactive terminal; False under CI, in a pipe or with CAPACITAR_NO_PROGRESS."""
    if os.environ.get("CI") or os.environ.get("CAPACITAR_NO_PROGRESS"):
        return False
    return sys.stderr.isatty()


@contextmanager
def progress(description: str, total: int) -> Iterator[Callable[[], None]]:
    """A ``rich`` progress bar of ``total`` steps; yields the function that advances it."""
    if not progress_wanted() or total <= 1:
        yield lambda: None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    with Progress("[progress.description]{task.description}", BarColumn(),
                  MofNCompleteColumn(), TimeElapsedColumn(), transient=True) as bar:
        job = bar.add_task(description, total=total)
        yield lambda: bar.advance(job)


class Watched:
    """A text stream that notes when it was last written to (everything else is the stream's)."""

    def __init__(self, stream, written: Callable[[], None]):
        self._stream = stream
        self._written = written

    def write(self, text: str) -> int:
        if text:
            self._written()
        return self._stream.write(text)

    def __getattr__(self, name: str):
        return getattr(self._stream, name)


class Heartbeat:
    """A line naming the current step whenever the terminal has shown nothing for ``every`` s.

    Everything written to ``sys.stdout``/``sys.stderr`` (the command's lines, Prefect's
    log, progress bars) counts as shown; a silent step (imports, a long analysis) gets
    ``  ... <step> (N s)`` on stderr.

    >>> beat = Heartbeat(every=0.1)
    >>> beat.step("counting")  # not started: nothing happens
    """

    def __init__(self, every: float = 1.5):
        self.every = every
        self.name = ""
        self.since = self.last = time.monotonic()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._streams: tuple = ()

    def step(self, name: str) -> None:
        """Name what is being done now (shown only if it stays silent)."""
        self.name, self.since = name, time.monotonic()

    def written(self) -> None:
        self.last = time.monotonic()

    def start(self) -> None:
        if self._thread is not None or not progress_wanted():
            return
        self._streams = (sys.stdout, sys.stderr)
        sys.stdout, sys.stderr = Watched(sys.stdout, self.written), Watched(sys.stderr, self.written)
        self._stop.clear()
        self._thread = threading.Thread(target=self._beat, name="capacitar-heartbeat", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._thread is None:
            return
        self._stop.set()
        self._thread.join()
        self._thread = None
        sys.stdout, sys.stderr = self._streams

    def _beat(self) -> None:
        while not self._stop.wait(0.1):
            now = time.monotonic()
            if self.name and now - self.last >= self.every:
                sys.stderr.write(f"  ... {self.name} ({now - self.since:.0f} s)\n")
                sys.stderr.flush()


heartbeat = Heartbeat()


def step(name: str) -> None:
    """Name the step a command is in, for :data:`heartbeat` (nothing when it is not running)."""
    heartbeat.step(name)
