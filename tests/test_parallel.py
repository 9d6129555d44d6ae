"""pipelines.parallel.Beside: work in a forked child, its result or its error back."""

import os
import signal

import numpy as np
import pandas as pd
import pytest

from pipelines import parallel
from pipelines.errors import CapacitarError
from pipelines.parallel import Beside

pytestmark = pytest.mark.skipif(not parallel.can_fork(), reason="fork-based only on Linux")


def child_pid(_frame: pd.DataFrame) -> int:
    return os.getpid()


def column_sums(frame: pd.DataFrame) -> pd.Series:
    return frame.sum()


def refuse(_frame):
    raise CapacitarError("cohort c9 has no waves")


def die(_frame):
    os.kill(os.getpid(), signal.SIGKILL)


def test_the_work_runs_in_another_process_on_the_callers_data():
    frame = pd.DataFrame(np.arange(12.0).reshape(4, 3), columns=list("abc"))
    assert Beside(child_pid, frame).result() != os.getpid()
    pd.testing.assert_series_equal(Beside(column_sums, frame).result(), frame.sum())


def test_the_childs_error_is_raised_with_its_type_and_traceback():
    with pytest.raises(CapacitarError, match="cohort c9") as raised:
        Beside(refuse, None).result()
    assert any("in the background process" in note and "refuse" in note
               for note in raised.value.__notes__)


def test_a_child_that_dies_is_an_error_not_a_hang():
    with pytest.raises(RuntimeError, match="exit code -9"):
        Beside(die, None).result()


def test_cancel_stops_the_child():
    job = Beside(__import__("time").sleep, 60)
    process = job._proc
    job.cancel()
    assert not process.is_alive()


def test_without_fork_the_work_runs_in_process_when_asked(monkeypatch):
    monkeypatch.setenv("CAPACITAR_WORKERS", "1")
    assert not parallel.can_fork()
    assert Beside(child_pid, None).result() == os.getpid()



def test_workers_come_from_the_setting_else_the_usable_cpus(monkeypatch):
    monkeypatch.delenv("CAPACITAR_WORKERS", raising=False)
    assert parallel.workers() == len(os.sched_getaffinity(0))
    monkeypatch.setenv("CAPACITAR_WORKERS", "3")
    assert parallel.workers() == 3
    for wrong in ("0", "two", "-1"):
        monkeypatch.setenv("CAPACITAR_WORKERS", wrong)
        with pytest.raises(CapacitarError, match="CAPACITAR_WORKERS"):
            parallel.workers()


def pid_and_square(x: int) -> tuple[int, int]:
    __import__("time").sleep(0.02)  # long enough for every process to take some items
    return os.getpid(), x * x


def test_shared_work_is_spread_over_the_processes_and_returned_in_order(monkeypatch):
    monkeypatch.setenv("CAPACITAR_WORKERS", "3")
    items = list(range(40))
    with parallel.Shared(pid_and_square, items, processes=2) as shared:
        shared.help()
        done = shared.results()
    assert [square for _, square in done] == [x * x for x in items]
    assert len({pid for pid, _ in done}) >= 2  # the children took some


def test_shared_work_without_fork_runs_here(monkeypatch):
    monkeypatch.setenv("CAPACITAR_WORKERS", "1")
    shared = parallel.Shared(pid_and_square, [1, 2], processes=0)
    assert shared.results() == [(os.getpid(), 1), (os.getpid(), 4)]


def test_an_error_in_the_callers_share_stops_the_children():
    def slow(_):
        __import__("time").sleep(60)

    with pytest.raises(ZeroDivisionError):
        with parallel.Shared(slow, [1, 2, 3], processes=2) as shared:
            children = [c._proc for c in shared._children]
            1 / 0
    assert not any(p.is_alive() for p in children)


def test_a_shared_item_that_fails_raises_with_the_childs_traceback():
    with pytest.raises(CapacitarError, match="cohort c9") as raised:
        parallel.Shared(refuse, [1], processes=1).results()
    assert any("refuse" in note for note in raised.value.__notes__)


def test_a_call_on_a_thread_gives_its_value_or_its_error():
    assert parallel.OnThread(sum, [1, 2]).result() == 3
    with pytest.raises(CapacitarError, match="cohort c9"):
        parallel.OnThread(refuse, None).result()


def test_a_fork_keeps_what_the_process_froze_and_unfreezes_only_its_own():
    """A run freezes its loaded modules (pipelines.embedded_server.modules_loaded): a fork
    leaves them frozen; without that, the fork unfreezes what it froze for itself."""
    import gc

    assert gc.get_freeze_count() == 0
    assert Beside(sum, [1, 2]).result() == 3
    assert gc.get_freeze_count() == 0
    gc.freeze()
    frozen = gc.get_freeze_count()
    try:
        assert Beside(sum, [1, 2]).result() == 3
        assert gc.get_freeze_count() >= frozen
    finally:
        gc.unfreeze()
