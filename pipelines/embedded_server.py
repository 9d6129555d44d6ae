"""Prefect's settings for offline machines, and its embedded server started early.

Without ``PREFECT_API_URL`` a flow run starts Prefect's embedded (ephemeral)
API server, a subprocess that takes 5-9 s to come up while the run waits.
:func:`start_early` starts it on a thread before the run imports pandas, Great
Expectations and the stages (~3 s), so the two overlap; the flow then finds it
running.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable


def offline_defaults() -> None:
    """Environment defaults every capacitar process sets before Prefect reads its settings."""
    # Offline machines: no telemetry (it errors and can lock the SQLite database).
    os.environ.setdefault("DO_NOT_TRACK", "1")
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    # The first start of the embedded server migrates its SQLite database: slow on a cold machine.
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "180")


def start_early() -> Callable[[], None]:
    """Start the embedded server on a thread if a run will need it; returns ``wait()``.

    Nothing starts when an API is configured (``PREFECT_API_URL``, from the
    environment or a Prefect profile) or ephemeral mode is off. ``wait()``
    joins the thread; if the start failed, the flow's own start reports why.

    Examples
    --------
    >>> import os
    >>> os.environ["PREFECT_API_URL"] = "http://127.0.0.1:4200/api"
    >>> start_early()()  # an API is configured: nothing to start, nothing to wait for
    >>> del os.environ["PREFECT_API_URL"]
    """
    offline_defaults()
    from prefect.settings import PREFECT_API_URL, PREFECT_SERVER_EPHEMERAL_ENABLED

    if PREFECT_API_URL.value() or not PREFECT_SERVER_EPHEMERAL_ENABLED.value():
        return lambda: None

    def start() -> None:
        from prefect.server.api.server import SubprocessASGIServer

        try:
            SubprocessASGIServer().start()
        except Exception:  # noqa: BLE001 - the flow starts it again and reports the error
            pass

    thread = threading.Thread(target=start, name="prefect-embedded-server", daemon=True)
    thread.start()
    return thread.join
