"""Scheduled runs: `capacitar serve` starts a local Prefect server and runs the flow on schedule.

The slow test runs the real command in a subprocess, on its own PREFECT_HOME and its own
server, and talks to that server by its URL (never through the session's test harness).
Everything it started is stopped even when it fails, and it checks nothing is left running.
"""

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
TOTAL_TIMEOUT = 360  # seconds, from `capacitar serve` to two completed runs with artifacts
STARTED = re.compile(r"Started a local Prefect server at (http://127\.0\.0\.1:\d+/api) "
                     r"in ([\d.]+) s \(pid (\d+)\)")


def capacitar(*args, env=None):
    return subprocess.run([sys.executable, "-m", "pipelines.cli", *args], capture_output=True,
                          text=True, env=env, timeout=120, cwd=REPO)


def one_line(text: str) -> str:
    """The message with the console's line wrapping undone."""
    return " ".join(text.split())


def clean_env(prefect_home: Path) -> dict:
    """The user's environment minus any Prefect setting (the harness's included), plus ours."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update(DO_NOT_TRACK="1", PREFECT_SERVER_ANALYTICS_ENABLED="false",
               CAPACITAR_CHROMIUM="/nonexistent", PREFECT_HOME=str(prefect_home),
               PYTHONUNBUFFERED="1", COLUMNS="300")  # wide: rich does not wrap messages
    return env


@pytest.mark.parametrize("args, message", [
    (["--cron", "0 6 * * 1", "--interval", "60"], "either --cron or --interval, not both"),
    ([], "say when to run"),
    (["--cron", "every monday"], "not a valid cron expression"),
    (["--interval", "0"], "positive number of seconds"),
])
def test_schedule_mistakes_are_one_message(tmp_path, args, message):
    result = capacitar("serve", str(tmp_path), *args, env=clean_env(tmp_path / "home"))
    assert result.returncode == 2, result.stderr
    assert message in one_line(result.stderr)
    assert "Traceback" not in result.stderr + result.stdout


def test_missing_program_is_one_message(tmp_path):
    result = capacitar("serve", str(tmp_path / "nope"), "--cron", "0 6 * * 1",
                       env=clean_env(tmp_path / "home"))
    assert result.returncode == 2
    assert "does not exist" in one_line(result.stderr) and "Traceback" not in result.stderr
    bare = capacitar("serve", str(tmp_path), "--interval", "60", env=clean_env(tmp_path / "home"))
    assert bare.returncode == 2 and "program.yaml" in one_line(bare.stderr)
    assert "Traceback" not in bare.stderr


def processes_using(prefect_home: Path) -> list[str]:
    """Live processes whose environment has PREFECT_HOME=prefect_home (server, runner, runs)."""
    wanted = f"PREFECT_HOME={prefect_home}".encode()
    found = []
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            if wanted in (proc / "environ").read_bytes().split(b"\0"):
                cmd = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
                found.append(f"{proc.name} {cmd.strip()}")
        except OSError:
            continue
    return found


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def stop_everything(proc: subprocess.Popen, server_pid: int | None, home: Path) -> list[str]:
    """SIGTERM to `capacitar serve` (it pauses the schedule and stops its server), then kill
    whatever is left: its process group, the server's group, anything on our PREFECT_HOME."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            pass
    for group in (proc.pid, server_pid):
        if group is None:
            continue
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(group, sig)
            except (ProcessLookupError, PermissionError):
                break
            deadline = time.monotonic() + 10
            while alive(group) and time.monotonic() < deadline:
                time.sleep(0.2)
    if proc.poll() is None:
        proc.kill()
        proc.wait(10)
    deadline = time.monotonic() + 15
    left = processes_using(home)
    while left and time.monotonic() < deadline:
        time.sleep(0.5)
        left = processes_using(home)
    for line in left:  # still report them, but do not leave them behind
        try:
            os.kill(int(line.split()[0]), signal.SIGKILL)
        except ProcessLookupError:
            pass
    return left


def tail(path: Path, n: int = 60) -> str:
    return "\n".join(path.read_text(encoding="utf-8", errors="replace").splitlines()[-n:])


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="needs Linux /proc")
def test_serve_runs_the_flow_on_schedule(tmp_path):
    from prefect.client.orchestration import SyncPrefectClient
    from prefect.client.schemas.filters import (
        ArtifactFilter, ArtifactFilterFlowRunId, ArtifactFilterKey, FlowRunFilter,
        FlowRunFilterDeploymentId,
    )
    from prefect.client.schemas.objects import StateType
    from prefect.exceptions import ObjectNotFound

    from pipelines.demo import write_demo

    program = write_demo(tmp_path / "demo")
    home = tmp_path / "prefect-home"
    out = tmp_path / "serve.out"
    started = time.monotonic()
    with out.open("w") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "pipelines.cli", "serve", str(program), "--interval", "15"],
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=clean_env(home),
            cwd=REPO, start_new_session=True)
    server_pid = None
    timings = {}

    def failure(why: str) -> str:
        return (f"{why} after {time.monotonic() - started:.0f} s; "
                f"`capacitar serve` output ends with:\n{tail(out)}")

    try:
        match = None
        while match is None:
            assert proc.poll() is None, failure(f"`capacitar serve` exited ({proc.returncode})")
            assert time.monotonic() - started < 150, failure("no local server announced")
            match = STARTED.search(out.read_text(encoding="utf-8", errors="replace"))
            time.sleep(0.5)
        api_url, server_pid = match[1], int(match[3])
        timings["server start to health (s, printed)"] = float(match[2])
        timings["server healthy (s since command)"] = round(time.monotonic() - started, 1)

        with SyncPrefectClient(api_url) as client:
            deployment = None
            completed, artifacts = [], []
            while True:
                assert proc.poll() is None, failure(f"`capacitar serve` exited ({proc.returncode})")
                assert time.monotonic() - started < TOTAL_TIMEOUT, failure(
                    f"wanted 2 completed runs with artifacts, have {len(completed)} runs and "
                    f"{len(artifacts)} artifacts")
                if deployment is None:
                    try:
                        deployment = client.read_deployment_by_name("capacitar-evaluate/demo")
                        timings["deployment created (s)"] = round(time.monotonic() - started, 1)
                    except ObjectNotFound:
                        time.sleep(1)
                        continue
                    assert deployment.parameters == {"program_dir": str(program)}
                runs = client.read_flow_runs(flow_run_filter=FlowRunFilter(
                    deployment_id=FlowRunFilterDeploymentId(any_=[deployment.id])))
                bad = [r for r in runs if r.state_type in (StateType.FAILED, StateType.CRASHED)]
                assert not bad, failure(f"run {bad[0].name} ended {bad[0].state_name}")
                completed = [r for r in runs if r.state_type == StateType.COMPLETED]
                for n in (1, 2):
                    if len(completed) >= n:
                        timings.setdefault(f"run {n} completed (s)",
                                           round(time.monotonic() - started, 1))
                if len(completed) >= 2:
                    artifacts = client.read_artifacts(artifact_filter=ArtifactFilter(
                        key=ArtifactFilterKey(any_=["capacitar-run-summary"]),
                        flow_run_id=ArtifactFilterFlowRunId(any_=[r.id for r in completed])))
                    if {a.flow_run_id for a in artifacts} >= {r.id for r in completed}:
                        break
                time.sleep(2)
        assert all("# capacitar run" in a.data for a in artifacts)
        assert (program / "outputs" / "reports").is_dir()
    finally:
        left = stop_everything(proc, server_pid, home)
    timings["total (s)"] = round(time.monotonic() - started, 1)
    print("serve timings:", timings)
    assert not left, f"left running after the test (now killed): {left}"
    assert server_pid is None or not alive(server_pid)
    text = out.read_text(encoding="utf-8", errors="replace")
    assert "Local Prefect server stopped." in text, tail(out)
