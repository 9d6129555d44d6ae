"""Pull sources from survey servers (REDCap, ODK Central, KoboToolbox) into inbox snapshots.

A source with a ``pull:`` section in ``program.yaml`` is fetched before each run: its
records or submissions land in the inbox as a snapshot file (``snapshots.py``), which the
source's adapter then reads like a hand export, so fingerprints, incremental runs, row
accounting and quarantine work unchanged. The token comes from an environment variable or
a Prefect ``Secret`` block and never reaches a file, a log or a message.

>>> from pipelines.pull import pull_source
>>> pull_source(ctx.config, source, ctx.instruments)  # doctest: +SKIP
PullResult(source='bienestar', status='new', file='bienestar_20260301T060000Z.csv', rows=312)
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from pipelines.pull.http import BadResponse, PullError, ServerDown, TokenRefused
from pipelines.pull.snapshots import DATA, current_snapshot, land

__all__ = ["BadResponse", "PullError", "PullResult", "ServerDown", "TokenRefused",
           "failed", "pull_source", "pulled_sources"]

KIND_NAMES = {"redcap": "REDCap", "odk": "ODK Central", "kobo": "KoboToolbox"}


@dataclass
class PullResult:
    """What one pull did: ``new`` snapshot, ``unchanged``, ``empty`` server, or ``failed``."""

    source: str
    status: str
    file: str | None = None
    rows: int | None = None
    problem: str | None = None

    def line(self) -> str:
        """One line for a person: what came in, or what went wrong."""
        if self.status == "new":
            return f"{self.source}: new snapshot {self.file} ({self.rows} rows)"
        if self.status == "unchanged":
            return f"{self.source}: unchanged ({self.file or 'no snapshot'})"
        if self.status == "empty":
            return f"{self.source}: the server has no submissions yet; nothing written"
        return str(self.problem)


def pulled_sources(config) -> list:
    """The sources of ``config`` that have a ``pull:`` section."""
    return [s for s in config.sources if s.pull is not None]


def pull_source(config, source, instruments: dict) -> PullResult:
    """Fetch ``source`` from its server and land a snapshot in the inbox if anything changed.

    Raises :class:`TokenRefused`, :class:`ServerDown` (worth retrying) or
    :class:`BadResponse`; their messages never hold the token.
    """
    secret = read_secret(source.pull)
    try:
        files, rows = fetcher(source.pull.kind)(source.pull, secret)
        if not files:
            return PullResult(source.name, "empty", rows=0)
        landed = land(config.inbox_dir, source.name, files,
                      lambda path: check_snapshot(path, source, instruments))
    except PullError as exc:
        raise type(exc)(str(exc).replace(secret, "***")) from None
    if landed is None:
        current = current_snapshot(config.inbox_dir, source.name)
        return PullResult(source.name, "unchanged", current[DATA].name, rows)
    return PullResult(source.name, "new", landed.name, rows)


def fetcher(kind: str):
    """The ``fetch(pull, secret) -> (files, rows)`` of a server kind."""
    from pipelines.pull import kobo, odk, redcap

    return {"redcap": redcap.fetch, "odk": odk.fetch, "kobo": kobo.fetch}[kind]


def read_secret(pull) -> str:
    """The token (or ODK Central password) from the environment or a Prefect Secret block."""
    if pull.token_env:
        value = os.environ.get(pull.token_env, "").strip()
        if not value:
            raise TokenRefused(f"the environment variable {pull.token_env}, which should hold "
                               "the token, is not set")
        return value
    from prefect.blocks.system import Secret

    try:
        value = Secret.load(pull.token_block).get()
    except ValueError:
        raise TokenRefused(f"there is no Prefect Secret block named {pull.token_block!r}; "
                           "create it in the Prefect UI (Blocks) or with "
                           f"Secret(value=...).save({pull.token_block!r})") from None
    return str(value).strip()


def check_snapshot(path: Path, source, instruments: dict) -> None:
    """Refuse a snapshot its adapter cannot read or that lacks a column program.yaml maps."""
    from pipelines.errors import SourceError
    from pipelines.ingest.adapters import read_export
    from pipelines.ingest.core import configured_columns

    try:
        export = read_export(path, source, path.parent)
    except SourceError as exc:
        raise BadResponse(f"the snapshot cannot be read ({exc})") from None
    missing = [c for c in configured_columns(source, instruments)
               if c not in source.pii and export.column(c) is None]
    if missing:
        raise BadResponse(f"the server's field list changed: {', '.join(missing[:5])}"
                          f"{' and more' if len(missing) > 5 else ''} not in the answer; if the "
                          "form was changed on purpose, update program.yaml")


def failed(config, source, error: BaseException) -> PullResult:
    """The result of a pull that gave no snapshot, with the problem the run reports."""
    pull = source.pull
    current = current_snapshot(config.inbox_dir, source.name)
    fallback = (f"this run uses its last snapshot {current[DATA].name}" if current
                else "there is no earlier snapshot of it")
    if isinstance(error, ServerDown):
        reason = f"{error} ({pull.retries + 1} attempts)"
    elif isinstance(error, PullError):
        reason = str(error)
    elif isinstance(error, OSError):  # writing the snapshot (a full disk, permissions)
        reason = f"could not write to the inbox ({error.strerror or type(error).__name__})"
    else:  # a bug: its text could hold anything, so only its kind is shown
        reason = f"unexpected {type(error).__name__}"
    return PullResult(source.name, "failed", current[DATA].name if current else None,
                      problem=f"pull of source {source.name} ({KIND_NAMES[pull.kind]} at "
                              f"{pull.url}) failed: {reason}; nothing written, {fallback}")
