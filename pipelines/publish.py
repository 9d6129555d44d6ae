"""Publish a run's outputs all at once, touching only what capacitar made.

A run writes its tables, reports and top-level files (codebook, load scripts) into
staging places beside the outputs. :meth:`Publication.swap` moves them in with renames,
keeping the previous versions aside; :meth:`Publication.commit` drops those once the
run's state is written: ``state.json`` naming the run is the commit point. The swap
first writes a journal (``.publishing.json``); if the process dies before the commit,
:func:`recover` at the next run finishes the commit when the state names the journal's
run, and otherwise puts the previous versions back. Nothing a reader sees is then ever
half of one run and half of another.

Every folder capacitar makes in the outputs holds a marker file (``.capacitar``);
a ``tables/`` or ``reports/`` folder without one is somebody else's and is never
replaced or deleted. Outputs are owner-only: files 0600, folders 0700.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from pipelines.errors import CapacitarError
from pipelines.export import atomic_write

MARKER = ".capacitar"
JOURNAL = ".publishing.json"
STATE = "state.json"  # written by pipelines.incremental; its run_id is the commit point
FILE_MODE, FOLDER_MODE = 0o600, 0o700


class NotOurs(CapacitarError):
    """An output path that capacitar did not make: it is never replaced or deleted."""


def mark(folder: Path, run_id: str) -> None:
    """Record in ``folder`` that capacitar made it (and in which run)."""
    (folder / MARKER).write_text(json.dumps({"made_by": "capacitar", "run_id": run_id}),
                                 encoding="utf-8")


@contextmanager
def private_folder(beside: Path) -> Iterator[Path]:
    """A private (0700) folder, marked as capacitar's, beside ``beside``; removed on leaving.

    Named like a staging folder, so one left by a killed run is cleaned by
    :func:`clean_stale`.
    """
    beside.parent.mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix=f".{beside.name}.staging-", dir=beside.parent))
    mark(folder, folder.name.rsplit("-", 1)[-1])
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def made_by_capacitar(path: Path) -> bool:
    """A folder (not a link) holding capacitar's marker."""
    return path.is_dir() and not path.is_symlink() and (path / MARKER).is_file()


def claim(output_dir: Path) -> None:
    """Mark the output folder as capacitar's when it makes it (or finds it empty, or holding a
    ``state.json`` of a version before the marker: only capacitar writes that file there)."""
    if made_by_capacitar(output_dir):
        return
    output_dir.mkdir(parents=True, exist_ok=True)
    if not any(output_dir.iterdir()) or (output_dir / STATE).is_file():
        mark(output_dir, "")


def check_replaceable(target: Path) -> None:
    """Refuse to replace ``target`` unless capacitar made it.

    A folder must hold capacitar's marker; a file must be in a marked output
    folder. A folder from a version before the marker is recognised by the
    ``state.json`` beside it.
    """
    if not (target.exists() or target.is_symlink()) or made_by_capacitar(target):
        return
    ours = made_by_capacitar(target.parent) or (target.parent / STATE).is_file()
    if target.is_symlink() or not ours:
        raise NotOurs(
            f"{target} was not made by capacitar, so capacitar will not replace it: move it "
            f"elsewhere, or set `output:` in program.yaml to a folder of capacitar's own")


def aside(target: Path) -> Path:
    """Where the previous version of ``target`` waits while a new one is swapped in."""
    return target.with_name(f".{target.name}.previous")


def remove(path: Path) -> None:
    """Delete a file or folder that capacitar made (no error if it is already gone)."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


class Publication:
    """The outputs of one run, staged, then swapped in together and committed.

    Examples
    --------
    >>> out = Path(tempfile.mkdtemp())
    >>> pub = Publication(out, "run1")
    >>> staging = pub.folder("tables")
    >>> _ = (staging / "a.csv").write_text("x")
    >>> pub.swap(); pub.commit()
    >>> sorted(p.name for p in (out / "tables").iterdir())
    ['.capacitar', 'a.csv']
    """

    def __init__(self, output_dir: Path, run_id: str):
        self.output_dir, self.run_id = output_dir, run_id
        self.moves: list[tuple[Path, Path]] = []  # (staged, target)
        self.swapped = self.committed = False
        claim(output_dir)

    def folder(self, name: str) -> Path:
        """A new staging folder for ``output_dir / name`` (checked replaceable now)."""
        target = self.output_dir / name
        check_replaceable(target)
        staging = Path(tempfile.mkdtemp(prefix=f".{name}.staging-", dir=self.output_dir))
        mark(staging, self.run_id)
        self.moves.append((staging, target))
        return staging

    def file(self, name: str, write: Callable[[Path], None]) -> Path:
        """Stage ``output_dir / name`` now with ``write(path)``; it is swapped in with the rest."""
        check_replaceable(self.output_dir / name)
        staged = self.output_dir / f".{name}.staging-{self.run_id}"
        write(staged)
        self.moves.append((staged, self.output_dir / name))
        return self.output_dir / name

    def swap(self) -> None:
        """Move every staged output in, the previous versions aside (journaled first)."""
        if self.swapped:
            return
        for _, target in self.moves:
            check_replaceable(target)
        write_journal(self.output_dir, self.run_id, self.moves)
        for staged, target in self.moves:
            if not staged.exists():  # moved in by an attempt cut short (a retry goes on)
                continue
            previous = aside(target)
            if target.exists() or target.is_symlink():
                remove(previous)
                os.rename(target, previous)
            os.rename(staged, target)
        self.swapped = True

    def commit(self) -> None:
        """The run is recorded (state written): drop the previous versions and the journal."""
        finish(self.output_dir, [t for _, t in self.moves], roll_back=False)
        self.committed = True

    def abandon(self) -> None:
        """The run failed: remove what it staged and undo a swap not committed."""
        if self.committed:
            return
        if self.swapped:
            finish(self.output_dir, [t for _, t in self.moves], roll_back=True,
                   staged=[s for s, _ in self.moves])
        else:
            for staged, _ in self.moves:
                remove(staged)
        self.moves = []


def write_journal(output_dir: Path, run_id: str, moves: list[tuple[Path, Path]]) -> None:
    """Write the list of swaps before any happens (what :func:`recover` undoes or finishes)."""
    entries = [[s.name, t.name] for s, t in moves]
    text = json.dumps({"run_id": run_id, "moves": entries})
    atomic_write(output_dir / JOURNAL, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def finish(output_dir: Path, targets: list[Path], roll_back: bool,
           staged: list[Path] | None = None) -> None:
    """Commit (drop the previous versions) or roll back (bring them back) a swap.

    Each step works from whatever point a killed swap reached: a staged path
    still there was not moved in; a target whose staged path is gone is new.
    """
    staged = staged or [None] * len(targets)
    for target, staging in zip(reversed(targets), reversed(staged)):
        previous = aside(target)
        if roll_back:
            if staging is not None and staging.exists():
                remove(staging)
            elif target.exists() and (made_by_capacitar(target) or target.is_file()):
                remove(target)
            if previous.exists():
                os.rename(previous, target)
        else:
            remove(previous)
    (output_dir / JOURNAL).unlink(missing_ok=True)


def recover(output_dir: Path) -> str | None:
    """Finish or undo a publication cut short (at the start of the next run, under the lock).

    Returns "committed" or "rolled back" when there was one, else None.
    """
    journal = output_dir / JOURNAL
    try:
        entry = json.loads(journal.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        journal.unlink(missing_ok=True)
        return recover_unjournaled(output_dir)
    try:
        state_run = json.loads((output_dir / STATE).read_text(encoding="utf-8")).get("run_id")
    except (OSError, ValueError, AttributeError):
        state_run = None
    staged = [output_dir / s for s, _ in entry["moves"]]
    targets = [output_dir / t for _, t in entry["moves"]]
    committed = state_run == entry["run_id"]
    finish(output_dir, targets, roll_back=not committed, staged=staged)
    return "committed" if committed else "rolled back"


def recover_unjournaled(output_dir: Path) -> None:
    """A swap of a version before the journal: bring back a previous folder left alone."""
    if output_dir.is_dir():
        for previous in output_dir.glob(".*.previous"):
            target = previous.with_name(previous.name[1:-len(".previous")])
            if previous.is_dir() and not target.exists():
                os.rename(previous, target)


STALE = re.compile(r"\..+\.(staging-[A-Za-z0-9_]+|previous|[a-z0-9_]{8}\.tmp)")


def clean_stale(output_dir: Path) -> list[str]:
    """Remove staging folders, set-aside versions and temporary files of runs that died.

    Only capacitar's own leftovers go: names of its patterns, folders holding its
    marker (or empty). Call under the program lock, after :func:`recover`.
    """
    removed = []
    if not output_dir.is_dir():
        return removed
    for path in output_dir.iterdir():
        if not STALE.fullmatch(path.name) or path.is_symlink():
            continue
        if path.is_dir() and not (made_by_capacitar(path) or not any(path.iterdir())):
            continue
        remove(path)
        removed.append(path.name)
    return removed


def tighten(output_dir: Path) -> None:
    """Make every output owner-only (files 0600, folders 0700), e.g. ones an older version left.

    Links are left alone (they could point outside the outputs).
    """
    if os.name != "posix" or not output_dir.is_dir():
        return
    for folder, dirs, files in os.walk(output_dir):
        for name, mode in [(folder, FOLDER_MODE)] + [(os.path.join(folder, f), FILE_MODE)
                                                     for f in files]:
            info = os.lstat(name)
            if info.st_mode & 0o077 and not os.path.islink(name):
                os.chmod(name, mode)


_umask = {"depth": 0, "previous": 0o022}
_umask_lock = threading.Lock()


@contextmanager
def owner_only() -> Iterator[None]:
    """Create files 0600 and folders 0700 inside the block (umask 077), whatever writes them.

    The umask is the process's: blocks may nest or overlap in threads (two runs
    in one process); the last one out restores the umask the first one found.
    """
    with _umask_lock:
        if _umask["depth"] == 0:
            _umask["previous"] = os.umask(0o077)
        _umask["depth"] += 1
    try:
        yield
    finally:
        with _umask_lock:
            _umask["depth"] -= 1
            if _umask["depth"] == 0:
                os.umask(_umask["previous"])


def write_folder(target: Path, fill: Callable[[Path], list[Path]], run_id: str) -> list[Path]:
    """Fill a staging folder for ``target`` with ``fill(staging)``, then publish it at once.

    For outputs published apart from a run (``capacitar report``).
    """
    publication = Publication(target.parent, run_id)
    staging = publication.folder(target.name)
    try:
        written = fill(staging)
        publication.swap()
        publication.commit()
    except BaseException:
        publication.abandon()
        raise
    return [target / p.relative_to(staging) for p in written]
