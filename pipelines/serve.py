"""Scheduled runs: serve the ``capacitar-evaluate`` flow as a Prefect deployment.

Schedules need a Prefect server (the embedded API that ``capacitar run`` uses lives only as
long as one run). ``serve_program`` uses the server in ``PREFECT_API_URL`` (environment or the
active Prefect profile) when there is one; otherwise it starts ``prefect server start`` on
127.0.0.1 and a free port for as long as it serves, and stops it on exit or Ctrl-C.

Prefect is imported inside the functions only, so the CLI stays quick to start.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import warnings
from collections import deque
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from pipelines.embedded_server import offline_defaults
from pipelines.errors import CapacitarError
from pipelines.parallel import dying_with_parent

HEALTH_TIMEOUT = 120.0
"""Seconds to wait for a local server's /api/health (the first start migrates its database)."""

STOP_TIMEOUT = 15.0
"""Seconds a local server gets to stop after SIGTERM before it is killed."""

CRON_HELP = ("five fields: minute hour day-of-month month day-of-week, "
             "e.g. '0 6 * * 1' (Mondays 06:00)")


@dataclass
class Schedule:
    """What the user asked for: exactly one of a cron expression or an interval in seconds."""

    cron: str | None = None
    interval: int | None = None
    timezone: str | None = None

    def describe(self) -> str:
        if self.cron:
            return f"cron '{self.cron}' ({self.timezone or 'UTC'})"
        return f"every {self.interval} s"


def local_timezone() -> str | None:
    """The machine's IANA time zone name (cron times are local, as in crontab), else None (UTC)."""
    try:
        import tzlocal

        name = tzlocal.get_localzone_name()
    except Exception:  # not installed, or no zone configured
        return None
    import zoneinfo

    return name if name in zoneinfo.available_timezones() else None


def check_schedule(cron: str | None, interval: int | None) -> Schedule:
    """Exactly one of --cron / --interval, and a valid one; else one clear message."""
    if cron is not None and interval is not None:
        raise CapacitarError("give either --cron or --interval, not both")
    if cron is None and interval is None:
        raise CapacitarError("say when to run: --cron \"0 6 * * 1\" (Mondays 06:00) or "
                             "--interval SECONDS")
    if interval is not None:
        if interval < 1:
            raise CapacitarError(f"--interval must be a positive number of seconds, not {interval}")
        return Schedule(interval=interval)
    cron = cron.strip()
    from prefect.client.schemas.schedules import CronSchedule

    try:
        CronSchedule(cron=cron)
    except ValueError:
        raise CapacitarError(
            f"--cron {cron!r} is not a valid cron expression; use {CRON_HELP}") from None
    return Schedule(cron=cron, timezone=local_timezone())


def check_program(program: Path) -> Path:
    """Load program.yaml, its instruments and the key now, not at the first scheduled run."""
    from pipelines import stages
    from pipelines.ingest.pseudonym import load_key

    program = Path(program).expanduser()
    if not program.is_dir():
        raise CapacitarError(f"program folder {program} does not exist "
                             f"(create one with `capacitar init {program}`)")
    ctx = stages.load_context(program)
    pseudo = ctx.config.pseudonymisation
    load_key(ctx.config.path(pseudo.key_file), pseudo.create_if_missing)
    return program.resolve()


def deployment_name(program: Path, name: str | None) -> str:
    """--name, else the program folder's name (characters Prefect URLs dislike replaced)."""
    if name is not None:
        name = name.strip()
        if not name or "/" in name or "%" in name:
            raise CapacitarError(f"--name {name!r}: give a non-empty name without '/' or '%'")
        return name
    return re.sub(r"[^A-Za-z0-9._-]+", "-", program.name).strip("-") or "program"


def configured_api_url() -> str | None:
    """PREFECT_API_URL from the environment or the active Prefect profile, if any."""
    from prefect.settings import get_current_settings

    return get_current_settings().api.url or None


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def tail(path: Path, lines: int = 30) -> str:
    try:
        with path.open(encoding="utf-8", errors="replace") as handle:
            return "".join(deque(handle, maxlen=lines))
    except OSError:
        return ""


class LocalServer:
    """``prefect server start`` on 127.0.0.1 and a free port, in its own session.

    It uses the user's PREFECT_HOME (database and UI); its output goes to
    ``$PREFECT_HOME/capacitar-server.log``. ``stop()`` terminates it, then kills it.
    """

    def __init__(self, host: str = "127.0.0.1", port: int | None = None):
        from prefect.settings import get_current_settings

        self.host = host
        self.port = port or free_port(host)
        home = Path(get_current_settings().home).expanduser()
        home.mkdir(parents=True, exist_ok=True)
        self.log_path = home / "capacitar-server.log"
        self.process: subprocess.Popen | None = None
        self.seconds_to_health: float | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def api_url(self) -> str:
        return f"{self.url}/api"

    def start(self, timeout: float = HEALTH_TIMEOUT) -> None:
        env = {**os.environ, "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
        env.setdefault("DO_NOT_TRACK", "1")
        env.pop("PREFECT_API_URL", None)
        command = [sys.executable, "-m", "prefect", "server", "start",
                   "--host", self.host, "--port", str(self.port)]
        started = time.monotonic()
        with self.log_path.open("w", encoding="utf-8") as log:
            # Own session: Ctrl-C reaches `capacitar serve` only, which pauses the schedule
            # through this server before stopping it.
            # It gets SIGTERM if `capacitar serve` dies without cleaning up (SIGKILL).
            self.process = subprocess.Popen(
                dying_with_parent(command), stdin=subprocess.DEVNULL, stdout=log,
                stderr=subprocess.STDOUT, env=env, start_new_session=True)
        while time.monotonic() - started < timeout:
            if self.process.poll() is not None:
                raise CapacitarError(
                    f"the local Prefect server stopped at start (exit {self.process.returncode}); "
                    f"its log {self.log_path} ends with:\n{tail(self.log_path)}")
            if self.healthy():
                self.seconds_to_health = time.monotonic() - started
                return
            time.sleep(0.5)
        self.stop()
        raise CapacitarError(
            f"the local Prefect server did not answer {self.api_url}/health within "
            f"{timeout:.0f} s; its log {self.log_path} ends with:\n{tail(self.log_path)}")

    def healthy(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.api_url}/health", timeout=2) as response:
                return response.status == 200
        except OSError:
            return False

    def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(process.pid, sig)  # its own group: uvicorn and anything it started
            except (ProcessLookupError, PermissionError):
                process.send_signal(sig)
            try:
                process.wait(timeout)
                return
            except subprocess.TimeoutExpired:
                continue


def check_server(api_url: str) -> None:
    """A configured server must answer before we create a deployment on it."""
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        problem = client.api_healthcheck()
    if problem is not None:
        raise CapacitarError(
            f"the Prefect server at PREFECT_API_URL={api_url} does not answer ({problem}); "
            "start it (`prefect server start`) or unset PREFECT_API_URL to let capacitar start "
            "a local one")


def _raise_exit(signum, frame):  # SIGTERM before Prefect's runner installs its own handler
    raise SystemExit(128 + signum)


def serve_program(program: Path, cron: str | None = None, interval: int | None = None,
                  name: str | None = None, echo=print) -> None:
    """Validate, find or start a server, then serve the flow on the schedule until stopped.

    Runs of one program never overlap (the runner runs one at a time): a run that comes due
    while the previous one is still going waits for it.
    """
    schedule = check_schedule(cron, interval)
    root = check_program(program)
    deployment = deployment_name(root, name)

    offline_defaults()
    from prefect.settings import PREFECT_API_URL, temporary_settings

    # Prefect 3.8.8's runner SIGTERM handler calls an async stop() without awaiting it.
    warnings.filterwarnings("ignore", message="coroutine 'Runner.astop' was never awaited")

    previous_sigterm = signal.getsignal(signal.SIGTERM)
    if previous_sigterm in (signal.SIG_DFL, None):
        signal.signal(signal.SIGTERM, _raise_exit)
    server = None
    try:
        api_url = configured_api_url()
        if api_url:
            check_server(api_url)
            echo(f"Using the Prefect server at PREFECT_API_URL={api_url}")
        else:
            server = LocalServer()
            echo(f"PREFECT_API_URL is not set: starting a local Prefect server "
                 f"(log: {server.log_path}) ...")
            server.start()
            api_url = server.api_url
            os.environ["PREFECT_API_URL"] = api_url  # flow-run processes inherit it
            echo(f"Started a local Prefect server at {api_url} in "
                 f"{server.seconds_to_health:.1f} s (pid {server.process.pid}).\n"
                 f"  UI: {server.url}\n  It stops when this command stops (Ctrl-C).")
        echo(f"Serving {root} as deployment 'capacitar-evaluate/{deployment}', "
             f"{schedule.describe()}")

        from pipelines.flows import evaluate_program

        with temporary_settings(updates={PREFECT_API_URL: api_url}):
            evaluate_program.serve(
                name=deployment,
                cron=schedule.cron if schedule.cron and not schedule.timezone else None,
                schedule=_cron_with_zone(schedule),
                interval=timedelta(seconds=schedule.interval) if schedule.interval else None,
                parameters={"program_dir": str(root)},
                description=f"capacitar evaluation of {root}",
                tags=["capacitar"],
                limit=1,
            )
    except KeyboardInterrupt:
        pass
    finally:
        stop_flow_runs(echo)
        if server is not None:
            echo("Stopping the local Prefect server ...")
            server.stop()
            echo("Local Prefect server stopped.")
        if signal.getsignal(signal.SIGTERM) is _raise_exit:
            signal.signal(signal.SIGTERM, previous_sigterm)


def stop_flow_runs(echo, timeout: float = 30.0) -> None:
    """End flow runs still going (the runner's processes) while the server can record it."""
    import multiprocessing

    children = multiprocessing.active_children()
    if not children:
        return
    echo(f"Stopping {len(children)} flow run(s) still going ...")
    for child in children:
        child.terminate()
    for child in children:
        child.join(timeout)
        if child.is_alive():
            child.kill()
            child.join(5)


def _cron_with_zone(schedule: Schedule):
    """A cron schedule in the machine's time zone (cron= alone would mean UTC)."""
    if not (schedule.cron and schedule.timezone):
        return None
    from prefect.schedules import Cron

    return Cron(schedule.cron, timezone=schedule.timezone)
