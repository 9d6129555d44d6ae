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



