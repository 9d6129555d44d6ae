"""Progress bars for long local work: shown in a terminal, silent under CI or in a pipe.

>>> with progress("Counting", 3) as advance:
...     for _ in range(3):
...         advance()
"""

from __future__ import annotations

import os
import sys
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
