"""Pulled snapshots in the inbox: their names, the current one, and landing a new one.

A pull of source ``bienestar`` writes ``bienestar_20260301T060000Z.csv`` (the records or
submissions: what the source's adapter reads), and for REDCap also
``bienestar_20260301T060000Z.dictionary.csv`` (the data dictionary) and
``bienestar_20260301T060000Z.project.json`` (events, form-event mapping, repeating
instruments), the time being UTC. A snapshot is written only when its content differs from
the current one. It is staged in ``inbox/.pulling/<source>/`` and checked there, then the
files it replaces move to ``inbox/superseded/`` (the audit trail) and the new files are
renamed into the inbox: the inbox holds one snapshot per pulled source, and ingest reads
exactly that one (a source's pattern never reaches into a subfolder). The data file is
renamed in last, so a pull interrupted midway never leaves two data files, nor a partial one.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import shutil
from collections.abc import Callable
from pathlib import Path

STAMP = "%Y%m%dT%H%M%SZ"
STAMP_GLOB = "????????T??????Z"
DATA, DICTIONARY, PROJECT = ".csv", ".dictionary.csv", ".project.json"
SUFFIXES = (DICTIONARY, PROJECT, DATA)  # the order they land in: the data file last
SUPERSEDED = "superseded"
STAGING = ".pulling"


def snapshot_globs(name: str, kind: str | None) -> dict[str, str]:
    """The ``pattern`` (and for REDCap ``dictionary``) that read a pulled source's snapshots.

    >>> snapshot_globs("bienestar", "redcap")["dictionary"]
    'bienestar_????????T??????Z.dictionary.csv'
    """
    globs = {"pattern": f"{name}_{STAMP_GLOB}{DATA}"}
    if kind == "redcap":
        globs["dictionary"] = f"{name}_{STAMP_GLOB}{DICTIONARY}"
    return globs


def snapshot_files_globs(name: str, kind: str | None) -> list[str]:
    """Every file name a pull of the source writes into the inbox (read or kept beside).

    >>> snapshot_files_globs("bienestar", "redcap")[-1]
    'bienestar_????????T??????Z.project.json'
    """
    globs = list(snapshot_globs(name, kind).values())
    return globs + ([f"{name}_{STAMP_GLOB}{PROJECT}"] if kind == "redcap" else [])


def snapshot_sets(folder: Path, name: str) -> dict[str, dict[str, Path]]:
    """Time stamp -> {suffix: path} of the source's snapshot files in ``folder``, oldest first."""
    pattern = re.compile(re.escape(name) + r"_(\d{8}T\d{6}Z)("
                         + "|".join(re.escape(s) for s in SUFFIXES) + r")$")
    found: dict[str, dict[str, Path]] = {}
    if folder.is_dir():
        for path in folder.iterdir():
            match = pattern.match(path.name)
            if match and path.is_file():
                found.setdefault(match.group(1), {})[match.group(2)] = path
    return dict(sorted(found.items()))


def current_snapshot(inbox: Path, name: str) -> dict[str, Path] | None:
    """The newest snapshot in the inbox that has its data file (the one ingest reads)."""
    complete = [files for files in snapshot_sets(inbox, name).values() if DATA in files]
    return complete[-1] if complete else None


def tidy(inbox: Path, name: str) -> dict[str, Path] | None:
    """Leave only the current snapshot of ``name`` in the inbox; return it.

    What an interrupted pull may have left is cleared: its staging folder, and
    older or incomplete snapshot files (moved to ``superseded/``).
    """
    shutil.rmtree(inbox / STAGING / name, ignore_errors=True)
    current = current_snapshot(inbox, name)
    keep = set(current.values()) if current else set()
    for files in snapshot_sets(inbox, name).values():
        supersede([p for p in files.values() if p not in keep], inbox)
    return current


def supersede(paths: list[Path], inbox: Path) -> None:
    """Move snapshot files to ``inbox/superseded/`` (kept as the audit trail), data file first."""
    if not paths:
        return
    folder = inbox / SUPERSEDED
    folder.mkdir(mode=0o700, exist_ok=True)
    for path in sorted(paths, key=lambda p: not p.name.endswith(f"Z{DATA}")):
        os.replace(path, folder / path.name)


def new_stamp(inbox: Path, name: str, now: dt.datetime | None = None) -> str:
    """UTC time stamp for a new snapshot, later than any the source already has."""
    now = now or dt.datetime.now(dt.UTC)
    taken = [*snapshot_sets(inbox, name), *snapshot_sets(inbox / SUPERSEDED, name)]
    if taken:
        after = dt.datetime.strptime(max(taken), STAMP).replace(tzinfo=dt.UTC)
        now = max(now, after + dt.timedelta(seconds=1))
    return now.strftime(STAMP)


def unchanged(current: dict[str, Path] | None, files: dict[str, bytes]) -> bool:
    """True when ``files`` (suffix -> content) are exactly the current snapshot's."""
    return (current is not None and set(current) == set(files)
            and all(current[s].read_bytes() == content for s, content in files.items()))


def land(inbox: Path, name: str, files: dict[str, bytes],
         check: Callable[[Path], None]) -> Path | None:
    """Write a new snapshot of ``name`` unless its content is the current one's.

    The files are staged in ``inbox/.pulling/<name>/`` and ``check(data_file)``
    runs there (it raises to refuse the snapshot: nothing lands). Returns the
    new data file, or None when nothing changed.
    """
    current = tidy(inbox, name)
    if unchanged(current, files):
        return None
    stamp = new_stamp(inbox, name)
    (inbox / STAGING).mkdir(mode=0o700, exist_ok=True)
    staging = inbox / STAGING / name  # one pull of a source at a time: the program's lock
    staging.mkdir(mode=0o700)
    try:
        staged = {}
        for suffix in SUFFIXES:
            if suffix in files:
                staged[suffix] = staging / f"{name}_{stamp}{suffix}"
                write_private(staged[suffix], files[suffix])
        check(staged[DATA])
        supersede(list((current or {}).values()), inbox)
        for suffix, path in staged.items():
            os.replace(path, inbox / path.name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return inbox / staged[DATA].name


def write_private(path: Path, content: bytes) -> None:
    """Write ``content`` readable by the owner only (snapshots hold personal data), to disk."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(content)
        handle.flush()
        os.fsync(handle.fileno())
