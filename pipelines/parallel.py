"""One computation beside the caller's, in a forked process (the second of two cores).

The program-wide figures of a national run (pooled bootstrap over ~27,000
people per wave) take ~10 s of CPU that does not depend on the per-cohort
analysis. On Linux a forked child sees the caller's tables without copying
them (copy-on-write pages), computes, and sends back only its small result
through a pipe. Where fork is not available or not safe (Windows, macOS) or
``CAPACITAR_WORKERS=1``, the work runs in-process when its result is asked for:
same result, no parallelism.
"""

from __future__ import annotations

import gc
import logging
import multiprocessing
import os
import sys
import traceback
from collections.abc import Callable
from typing import Any

from threadpoolctl import threadpool_limits


def can_fork() -> bool:
    """Whether :class:`Beside` runs work in a child process here."""
    return (sys.platform.startswith("linux") and os.environ.get("CAPACITAR_WORKERS") != "1"
            and "fork" in multiprocessing.get_all_start_methods())


class Beside:
    """``fn(*args)`` computing in a forked child while the caller goes on.

    Call it from the thread that does the caller's numeric work, before that
    work starts (a fork copies only the calling thread). :meth:`result` returns
    the value, or raises the child's error; :meth:`cancel` stops the child.

    Examples
    --------
    >>> job = Beside(sum, [1, 2, 3])
    >>> job.result()
    6
    """

    def __init__(self, fn: Callable[..., Any], *args: Any):
        self._fn, self._args, self._proc, self._pipe = fn, args, None, None
        if not can_fork():
            return
        context = multiprocessing.get_context("fork")
        self._pipe, send = context.Pipe(duplex=False)
        # Objects frozen before the fork are left alone by the child's collector,
        # so their memory pages stay shared instead of being copied.
        gc.freeze()
        try:
            self._proc = context.Process(target=_child, args=(send, fn, args), daemon=True)
            self._proc.start()
        finally:
            gc.unfreeze()
            send.close()

    def result(self) -> Any:
        """The child's return value (computed here when there is no child)."""
        if self._proc is None:
            return self._fn(*self._args)
        try:
            status, payload, text = self._pipe.recv()
        except EOFError:
            self._proc.join()
            raise RuntimeError(f"the background computation {self._fn.__name__} stopped "
                               f"without a result (exit code {self._proc.exitcode})") from None
        finally:
            self._pipe.close()
        self._proc.join()
        self._proc = None
        if status == "error":
            error = payload if isinstance(payload, BaseException) else RuntimeError(payload)
            error.add_note(f"in the background process:\n{text}")
            raise error
        return payload

    def cancel(self) -> None:
        """Stop the child if it is still running (the run failed elsewhere)."""
        if self._proc is not None:
            self._proc.kill()
            self._proc.join()
            self._pipe.close()
            self._proc = None


def _child(send, fn: Callable[..., Any], args: tuple) -> None:
    # The parent's log handlers may rely on threads a fork does not copy (Prefect's
    # API log worker): the child logs nothing. One BLAS thread: the parent has the other core.
    logging.disable(logging.CRITICAL)
    try:
        with threadpool_limits(limits=1):
            value = fn(*args)
        send.send(("ok", value, ""))
    except BaseException as exc:  # noqa: BLE001 - every failure goes back to the parent
        text = "".join(traceback.format_exception(exc))
        try:
            send.send(("error", exc, text))
        except Exception:  # noqa: BLE001 - an exception that cannot be pickled
            send.send(("error", repr(exc), text))
    finally:
        send.close()
