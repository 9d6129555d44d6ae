"""Prefect's settings for offline machines, and its embedded server started early.

Without a Prefect API (``PREFECT_API_URL``) a flow run starts Prefect's
embedded API server, a ``uvicorn`` subprocess, and waits for it: 7-9 s on a
2-core machine, because the run's own imports (pandas, Prefect, Great
Expectations, ~4 s) and Prefect's import of its server module (~2 s) compete
with it. :func:`start_early` launches the same server process before anything
heavy is imported, so it comes up on the other core while the run imports;
:meth:`EarlyServer.api` then points Prefect at it for the run. If an API is
configured after all (a Prefect profile), or the process does not come up, it
is stopped and Prefect does what it always does.

Both processes load many modules before they do anything: millions of objects,
none of them garbage. Python's collector would walk them all several times
meanwhile (0.6 s of the run's start, 1 s of the server's), so it is paused
while they load (:func:`collector_paused`) and what they loaded is then frozen
out of later collections (:func:`modules_loaded`).
"""

from __future__ import annotations

import atexit
import gc
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager

from pipelines.parallel import dying_with_parent


def offline_defaults() -> None:
    """Environment defaults every capacitar process sets before Prefect reads its settings."""
    # Offline machines: no telemetry (it errors and can lock the SQLite database).
    os.environ.setdefault("DO_NOT_TRACK", "1")
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    # The first start of the embedded server migrates its SQLite database: slow on a cold machine.
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "180")


# `python -m uvicorn ARGS`, with the collector paused until the app is made (prefect_app).
SERVER = ("import gc; gc.disable(); import sys, uvicorn.main; sys.argv[0] = 'uvicorn'; "
          "uvicorn.main.main()")


@contextmanager
def collector_paused() -> Iterator[None]:
    """No garbage collection in this block until :func:`modules_loaded` is called in it
    (enter it before heavy imports); on again when the block ends, whichever way."""
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def modules_loaded() -> None:
    """The modules are loaded: what they made is left out of later collections, which
    resume (objects freed later are still freed by reference counting)."""
    gc.freeze()
    gc.enable()


def prefect_app():
    """Prefect's API app as ``prefect.server.api.server:create_app`` makes it for its
    embedded server (the factory of :class:`EarlyServer`'s process), its modules loaded
    with the collector paused."""
    from prefect.server.api.server import create_app

    app = create_app()
    modules_loaded()
    return app


class EarlyServer:
    """Prefect's embedded API server process, launched as Prefect launches it, but earlier."""

    def __init__(self):
        self.process: subprocess.Popen | None = None
        self.url = ""
        if os.environ.get("PREFECT_API_URL"):
            return
        with socket.socket() as probe:  # a free port, as Prefect finds one
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        self.url = f"http://127.0.0.1:{port}/api"
        # The command and environment of prefect.server.api.server.SubprocessASGIServer.
        # It dies with this process, even a `kill -9` of it (pipelines.parallel).
        self.process = subprocess.Popen(dying_with_parent(
            [sys.executable, "-c", SERVER, "--factory", "pipelines.embedded_server:prefect_app",
             "--host", "127.0.0.1", "--port", str(port), "--log-level", "error",
             "--lifespan", "on"]),
            env={**os.environ, "PREFECT_UI_ENABLED": "0", "PREFECT__SERVER_EPHEMERAL": "1",
                 "PREFECT__SERVER_FINAL": "1"})
        # Registered before Prefect is imported, so it runs after Prefect's own exit
        # handlers have sent their last logs and events to this server.
        atexit.register(self.stop)

    def ready(self, timeout: float) -> bool:
        """Wait until the server answers its health check; False if it exits or times out."""
        deadline = time.monotonic() + timeout
        while self.process is not None and self.process.poll() is None:
            try:
                with urllib.request.urlopen(f"{self.url}/health", timeout=2) as answer:
                    if answer.status == 200:
                        return True
            except OSError:
                pass
            if time.monotonic() > deadline:
                return False
            time.sleep(0.05)
        return False

    @contextmanager
    def api(self) -> Iterator[None]:
        """Prefect's settings pointing at this server, without flow-run heartbeats (unless an
        API is configured or the server failed: then Prefect's own settings)."""
        from prefect.settings import (
            PREFECT_API_URL,
            PREFECT_FLOWS_HEARTBEAT_FREQUENCY,
            PREFECT_SERVER_EPHEMERAL_ENABLED,
            PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS,
            temporary_settings,
        )

        usable = (self.process is not None and not PREFECT_API_URL.value()
                  and PREFECT_SERVER_EPHEMERAL_ENABLED.value()
                  and self.ready(PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS.value()))
        if not usable:  # Prefect starts (or finds) its own API
            self.stop()
            yield
            return
        # No flow-run heartbeats: they let a lasting server mark a run that died as crashed,
        # and this server ends with the run. Stopping their thread also waited out its
        # current one-second sleep before the run could finish.
        with temporary_settings(updates={PREFECT_API_URL: self.url,
                                         PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}):
            yield

    def stop(self) -> None:
        """Terminate the server process (at exit, or when it is not used)."""
        if self.process is None:
            return
        drain_prefect()
        self.process.terminate()
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.process = None


def drain_prefect() -> None:
    """Send Prefect's queued logs and events now, while the server that takes them runs.

    Otherwise ``logging``'s own exit handler, which runs after the server has
    stopped, would wait its 5 s timeout for logs no server takes.
    """
    if "prefect.logging.handlers" in sys.modules:
        from prefect.logging.handlers import APILogWorker

        APILogWorker.drain_all(timeout=5)
    if "prefect.events.worker" in sys.modules:
        from prefect.events.worker import EventsWorker

        EventsWorker.drain_all(timeout=5)


def start_early() -> EarlyServer:
    """Launch the embedded server now (call before importing Prefect or pandas).

    Examples
    --------
    >>> os.environ["PREFECT_API_URL"] = "http://127.0.0.1:4200/api"
    >>> start_early().process is None  # an API is configured: nothing launched
    True
    >>> del os.environ["PREFECT_API_URL"]
    """
    offline_defaults()
    return EarlyServer()
