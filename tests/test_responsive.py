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


def test_runs_on_the_embedded_server_send_no_heartbeats(monkeypatch):
    """Flow-run heartbeats serve a lasting server; the embedded one ends with the run (and
    stopping the heartbeat thread held the run's end up to a second). A configured API keeps
    Prefect's own setting."""
    from prefect.settings import PREFECT_API_URL, get_current_settings, temporary_settings

    class Running:
        def poll(self):
            return None

    server = embedded_server.EarlyServer.__new__(embedded_server.EarlyServer)
    server.process, server.url = Running(), "http://127.0.0.1:9/api"
    monkeypatch.setattr(server, "ready", lambda timeout: True)
    default = get_current_settings().flows.heartbeat_frequency
    assert default is not None
    with temporary_settings(restore_defaults={PREFECT_API_URL}):  # no API configured
        with server.api():
            settings = get_current_settings()
            assert settings.api.url == server.url and settings.flows.heartbeat_frequency is None
    assert get_current_settings().flows.heartbeat_frequency == default
    configured = embedded_server.EarlyServer.__new__(embedded_server.EarlyServer)
    configured.process, configured.url = None, ""
    with configured.api():
        assert get_current_settings().flows.heartbeat_frequency == default
