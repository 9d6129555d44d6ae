"""What a user at a terminal sees of a run (issue 22): a line in every silence, a prompt back
at once after "Done", no Prefect server where none is needed."""

import sys
import time

import pytest

from pipelines import embedded_server, progress
from tests.test_runs import program  # noqa: F401 - fixture


def test_the_heartbeat_names_a_silent_step_and_only_then(monkeypatch, capsys):
    monkeypatch.setattr(progress, "progress_wanted", lambda: True)
    beat = progress.Heartbeat(every=0.2)
    beat.start()
    try:
        beat.step("thinking hard")
        deadline = time.monotonic() + 10
        while "thinking hard" not in capsys.readouterr().err and time.monotonic() < deadline:
            time.sleep(0.05)
        assert time.monotonic() < deadline, "no heartbeat line in a silence"
        beat.step("")  # no step named: silence stays silent
        capsys.readouterr()
        time.sleep(0.5)
        assert capsys.readouterr().err == ""
    finally:
        beat.stop()


def test_no_heartbeat_in_a_pipe_or_under_ci(monkeypatch):
    monkeypatch.setenv("CI", "1")
    beat = progress.Heartbeat(every=0.05)
    streams = (sys.stdout, sys.stderr)
    beat.start()
    assert (sys.stdout, sys.stderr) == streams  # nothing wrapped, no thread
    beat.stop()


def test_the_server_stops_only_after_prefect_sent_its_last_logs(monkeypatch):
    order = []

    class Process:
        def terminate(self):
            order.append("terminate")

        def wait(self, timeout=None):
            return 0

    monkeypatch.setattr(embedded_server, "drain_prefect", lambda: order.append("drain"))
    server = embedded_server.EarlyServer.__new__(embedded_server.EarlyServer)
    server.process = Process()
    server.stop()
    server.stop()  # once only
    assert order == ["drain", "terminate"]


def test_validate_starts_no_prefect_server(program, monkeypatch, capsys):  # noqa: F811
    from pipelines.cli import main

    monkeypatch.setattr("pipelines.embedded_server.start_early",
                        lambda: pytest.fail("validate started Prefect's server"))
    with pytest.raises(SystemExit) as stop:
        main(["validate", str(program)])
    assert stop.value.code == 0 and "Data Docs" in capsys.readouterr().out
