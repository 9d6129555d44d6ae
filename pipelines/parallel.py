"""Work beside the caller: the one place capacitar starts processes and threads.

Ingest, the analysis and the export share out work through this module; the
stages say what can run apart, this module decides where it runs:

- :func:`workers`: how many processes may compute at once (``CAPACITAR_WORKERS``,
  else the CPUs this process may use);
- :class:`Beside`: one call in a forked child while the caller goes on (on Linux
  a child sees the caller's tables without copying them and sends back only its
  result); where fork is not available or not safe (Windows, macOS) or with
  ``CAPACITAR_WORKERS=1`` the call runs in-process when its result is asked for:
  same result, no parallelism;
- :class:`Shared`: one function over a list of items, each process (the caller's
  too, if it helps) taking the next item as it becomes free, results in item order;
- :class:`OnThread`: one call on a thread, only for work that releases the GIL
  (DuckDB reading Parquet files);
- :func:`dying_with_parent`: a command (a server, a browser) that ends with this process.

A child's error is raised in the caller with the child's traceback, a child
that dies is an error naming its exit code, and children never outlive the
run: on Linux each asks the kernel for a signal when its parent dies
(``PR_SET_PDEATHSIG``), so even a run killed with ``kill -9`` leaves none behind.
Dask (``--dask-address``) is the way to outgrow one machine.
"""

from __future__ import annotations

import gc
import logging
import multiprocessing
import os
import signal
import sys
import threading
import traceback
from collections.abc import Callable
from typing import Any

from threadpoolctl import threadpool_limits

from pipelines.errors import CapacitarError

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


WORKERS_ENV = "CAPACITAR_WORKERS"


def usable_cpus() -> int:
    """The CPUs this process may run on (its affinity where the system has one)."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


def workers() -> int:
    """How many processes may compute at once: ``$CAPACITAR_WORKERS``, else :func:`usable_cpus`.

    >>> workers() >= 1
    True
    """
    text = os.environ.get(WORKERS_ENV, "").strip()
    if not text:
        return usable_cpus()
    try:
        count = int(text)
    except ValueError:
        count = 0
    if count < 1:
        raise CapacitarError(f"{WORKERS_ENV}={text!r}: give a whole number of processes, 1 or "
                             "more (1 keeps every computation in one process)")
    return count


def can_fork() -> bool:
    """Whether :class:`Beside` runs work in a child process here."""
    return (sys.platform.startswith("linux") and workers() > 1
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
        # so their memory pages stay shared instead of being copied. A process that froze
        # its modules (pipelines.embedded_server.modules_loaded) keeps them frozen.
        frozen_before = gc.get_freeze_count()
        gc.freeze()
        try:
            self._proc = context.Process(target=_child, args=(send, fn, args, os.getpid()),
                                         daemon=True)
            self._proc.start()
        finally:
            if not frozen_before:
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
    # API log worker): the child logs nothing. One BLAS thread: the processes share the cores.
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


class Shared:
    """``fn(item)`` for every item, shared out among forked processes as each becomes free.

    ``processes`` children start at once; the caller may take items too
    (:meth:`help`) or go on with other work. Each process takes the next item
    not yet taken, so uneven items even out without any estimate of their
    cost: put the biggest first. Without fork (see :class:`Beside`) everything
    runs in this process. Used as a context manager, an error in the caller's
    own work stops the children (else they would wait forever to hand over
    their results).

    Examples
    --------
    >>> with Shared(abs, [-3, 1, -2], processes=1) as shared:
    ...     shared.help()
    ...     shared.results()
    [3, 1, 2]
    """

    def __init__(self, fn: Callable[[Any], Any], items: list, processes: int):
        self.fn, self.items = fn, list(items)
        self._next = multiprocessing.Value("q", 0)  # the next item to take, shared by all
        self._mine: dict[int, Any] = {}
        self._children = [Beside(self._take_all) for _ in range(max(1, processes))]

    def _take(self) -> int:
        with self._next.get_lock():
            taken = self._next.value
            self._next.value += 1
        return taken

    def _take_all(self) -> dict[int, Any]:
        done = {}
        while (i := self._take()) < len(self.items):
            done[i] = self.fn(self.items[i])
        return done

    def help(self) -> None:
        """Take items in this process too, until none is left."""
        self._mine.update(self._take_all())

    def results(self) -> list:
        """``fn(item)`` per item, in the items' order."""
        done = dict(self._mine)
        for child in self._children:
            done.update(child.result())
        return [done[i] for i in range(len(self.items))]

    def cancel(self) -> None:
        """Stop every child still running."""
        for child in self._children:
            child.cancel()

    def __enter__(self) -> Shared:
        return self

    def __exit__(self, kind, error, trace) -> None:
        if error is not None:
            self.cancel()


class OnThread:
    """``fn(*args)`` on a thread beside the caller: only for work that releases the GIL.

    Examples
    --------
    >>> OnThread(sum, [1, 2]).result()
    3
    """

    def __init__(self, fn: Callable[..., Any], *args: Any, name: str = "beside"):
        self._value: Any = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, args=(fn, args), name=name,
                                        daemon=True)
        self._thread.start()

    def _run(self, fn: Callable[..., Any], args: tuple) -> None:
        try:
            self._value = fn(*args)
        except BaseException as exc:  # noqa: BLE001 - raised in the caller by result()
            self._error = exc

    def result(self) -> Any:
        """Wait for the call; its value, or its error raised here."""
        self._thread.join()
        if self._error is not None:
            raise self._error
        return self._value

    def wait(self) -> None:
        """Let the call end, whatever its outcome (the caller is already failing)."""
        self._thread.join()
