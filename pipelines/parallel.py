"""One computation beside the caller's, in a forked process (the second of two cores).

The program-wide figures of a national run (pooled bootstrap over ~27,000
people per wave) take ~10 s of CPU that does not depend on the per-cohort
analysis. On Linux a forked child sees the caller's tables without copying
them (copy-on-write pages), computes, and sends back only its small result
through a pipe. Where fork is not available or not safe (Windows, macOS) or
``CAPACITAR_WORKERS=1``, the work runs in-process when its result is asked for:
same result, no parallelism.

Children never outlive the run: on Linux each asks the kernel for a signal when
its parent dies (``PR_SET_PDEATHSIG``), so a run killed with ``kill -9`` leaves
no forked analysis, SPSS/Stata writer or embedded Prefect server behind.
"""

from __future__ import annotations

import gc
import logging
import multiprocessing
import os
import signal
import sys
import traceback
from collections.abc import Callable
from typing import Any

from threadpoolctl import threadpool_limits

PR_SET_PDEATHSIG = 1


def _prctl():
    """libc's prctl, looked up once (before any fork: a child calls it and nothing else)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        import ctypes

        return ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None


_PRCTL = _prctl()


def die_with_parent(sig: int = signal.SIGKILL, parent: int | None = None) -> None:
    """In a child process: get ``sig`` when the parent dies (Linux; elsewhere nothing).

    ``parent`` is the parent's pid as the parent saw it: if it died before this
    call, the child is already orphaned and exits at once.
    """
    if _PRCTL is None:
        return
    _PRCTL(PR_SET_PDEATHSIG, int(sig), 0, 0, 0)
    if parent is not None and os.getppid() != parent:
        os._exit(1)


# PARENT SIGNAL COMMAND...: ask for SIGNAL when the parent dies (exit if it already has), then
# become COMMAND. Plain Python without site packages: it starts in milliseconds.
TRAMPOLINE = ("import ctypes, os, sys; ctypes.CDLL(None).prctl(1, int(sys.argv[2]), 0, 0, 0); "
              "os.getppid() == int(sys.argv[1]) or os._exit(1); "
              "os.execv(sys.argv[3], sys.argv[3:])")


def dying_with_parent(command: list[str], sig: int = signal.SIGTERM) -> list[str]:
    """``command`` run so that it gets ``sig`` when this process dies (Linux; else as it is).

    The command starts through a small trampoline that asks the kernel for the
    signal and then becomes the command (``exec``): safe from any thread, unlike
    a ``preexec_fn``. ``command[0]`` must be a path (``sys.executable``, say).

    >>> dying_with_parent(["/bin/true"])[-1]
    '/bin/true'
    """
    if _PRCTL is None:
        return command
    return [sys.executable, "-I", "-S", "-c", TRAMPOLINE, str(os.getpid()), str(int(sig)),
            *command]


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
            self._proc = context.Process(target=_child, args=(send, fn, args, os.getpid()),
                                         daemon=True)
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


def _child(send, fn: Callable[..., Any], args: tuple, parent: int) -> None:
    die_with_parent(signal.SIGKILL, parent)
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
