"""What a user at a terminal sees of a run (issue 22): a line in every silence, a prompt back
at once after "Done", no Prefect server where none is needed."""

import subprocess
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


def test_prefect_app_loads_with_the_collector_paused_then_freezes_and_resumes_it():
    """The embedded server's factory: Prefect's app, its modules frozen out of later
    collections and the collector on again (the boot command turned it off)."""
    code = ("import gc; gc.disable(); from pipelines.embedded_server import prefect_app; "
            "app = prefect_app(); print(type(app).__name__, gc.isenabled(), gc.get_freeze_count())")
    shown = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                           check=True, timeout=120).stdout.split()
    assert shown[:2] == ["FastAPI", "True"] and int(shown[2]) > 100_000
    assert embedded_server.SERVER.startswith("import gc; gc.disable();")


def test_the_early_server_comes_up_through_its_boot_and_answers(monkeypatch):
    import json
    import urllib.request

    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    server = embedded_server.EarlyServer()
    try:
        assert server.ready(180), "the embedded server did not come up"
        with urllib.request.urlopen(f"{server.url}/admin/version", timeout=10) as answer:
            assert json.loads(answer.read())  # Prefect's version, from the real app
    finally:
        server.stop()


def test_the_collector_is_on_again_after_its_pause_whichever_way_it_ends():
    import gc

    with embedded_server.collector_paused():
        assert not gc.isenabled()
    assert gc.isenabled()
    with pytest.raises(KeyError), embedded_server.collector_paused():
        raise KeyError("a run that failed while loading")
    assert gc.isenabled()
