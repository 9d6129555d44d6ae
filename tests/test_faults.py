"""Runs killed at the worst moments (issue 18): nothing half-published, nothing left running.

Each test kills a real process with SIGKILL (no clean-up code runs) and checks
what the next run finds.
"""

import contextlib
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import psutil
import pytest

from pipelines import stages
from tests.test_runs import add_cohort_c3, program, runs, snapshot  # noqa: F401 - fixture

REPO = Path(__file__).resolve().parent.parent


def gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
def test_the_embedded_server_and_the_children_die_with_a_killed_run(tmp_path):
    script = textwrap.dedent("""
        import subprocess, sys, time
        from pipelines.embedded_server import start_early
        server = start_early()  # Prefect's embedded server, as `capacitar run` starts it
        from pipelines.parallel import Beside, dying_with_parent
        beside = Beside(time.sleep, 300)  # a forked analysis
        worker = subprocess.Popen(dying_with_parent(  # as the SPSS/Stata writers start
            [sys.executable, "-c", "import time; time.sleep(300)"]))
        print(server.process.pid, beside._proc.pid, worker.pid, flush=True)
        time.sleep(300)
    """)
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    parent = subprocess.Popen([sys.executable, "-c", script], cwd=REPO, env=env,
                              stdout=subprocess.PIPE, text=True)
    children = [int(pid) for pid in parent.stdout.readline().split()]
    assert len(children) == 3 and not any(gone(pid) for pid in children)
    parent.send_signal(signal.SIGKILL)
    parent.wait()
    assert survivors(children) == []


def survivors(children: list[int], seconds: float = 20) -> list[int]:
    """Of ``children``, those still running ``seconds`` after their parent was killed."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and not all(gone(pid) for pid in children):
        time.sleep(0.2)
    left = [pid for pid in children if not gone(pid)]
    for pid in left:  # do not leave them running if the test fails
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    return left


KILL_AT = {  # where the run is killed -> the function replaced by a SIGKILL to itself
    "before the swap": "stages.report_folder",
    "after the swap, before the state": "run_records.save_run_state",
}


@pytest.mark.parametrize("moment", list(KILL_AT))
def test_a_killed_run_is_undone_by_the_next_and_never_recorded_complete(program,  # noqa: F811
                                                                       prefect_harness, moment):
    from prefect.settings import PREFECT_API_URL

    from pipelines.flows import evaluate_program

    evaluate_program(str(program))
    outputs = program / "outputs"
    published = {name: snapshot(outputs / name) for name in ("tables", "reports")}
    codebook = (outputs / "codebook.md").read_bytes()
    add_cohort_c3(program)
    script = textwrap.dedent(f"""
        import os, signal, sys
        from pipelines import run_records, stages
        def killed(*args, **kwargs):
            os.kill(os.getpid(), signal.SIGKILL)
        {KILL_AT[moment]} = killed
        from pipelines.flows import evaluate_program
        evaluate_program(sys.argv[1])
    """)
    env = {**os.environ, "PREFECT_API_URL": PREFECT_API_URL.value()}
    killed = subprocess.run([sys.executable, "-c", script, str(program)], cwd=REPO, env=env,
                            capture_output=True, text=True, timeout=300)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    assert (program / ".capacitar.lock.json").exists()  # the dead run's
    leftovers = [p.name for p in outputs.iterdir() if p.name.startswith(".")]
    assert any("staging" in name or "previous" in name for name in leftovers), leftovers
    assert runs(program)["status"].tolist() == ["complete"]  # the killed run is not "complete"

    ctx = stages.load_context(program)
    stages.prepare_outputs(ctx)  # what the next run does first, under the lock
    assert {name: snapshot(outputs / name) for name in published} == published
    assert (outputs / "codebook.md").read_bytes() == codebook
    assert sorted(p.name for p in outputs.iterdir() if p.name.startswith(".")) == [".capacitar"]

    after = evaluate_program(str(program))
    assert after["status"] == "complete" and after["cohorts_recomputed"] == ["c3"]
    assert runs(program)["status"].tolist() == ["complete", "complete"]
    assert not (program / ".capacitar.lock.json").exists()
