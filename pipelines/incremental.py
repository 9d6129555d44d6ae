"""What changed since the last good run: input fingerprints, per-cohort fingerprints, run state.

A run first lists the inbox and hashes every file (SHA-256 of its bytes). With
the program file, the instrument definitions and the code version, that gives
the run's *fingerprint*: equal to the last successful run's, there is no new
data and nothing is recomputed. Otherwise, after validation, each cohort's
valid responses get their own fingerprint: only cohorts whose fingerprint
moved are re-analysed; the others keep their stored rows, and program-wide
(pooled) figures are always refreshed.

The state of the last successful run lives in ``outputs/state.json``; it is
the commit point of a run's publication (``pipelines/publish.py``), so a run
that fails midway leaves the previous state and the next run redoes the work.
The state names the pseudonymisation key by a keyed hash (never the key): a
run with another key stops unless the change is declared. Pure functions and
files only (no Prefect).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from pipelines.errors import CapacitarError
from pipelines.export import write_json
from pipelines.ingest.core import sha256_of
from pipelines.pull.snapshots import snapshot_files_globs

STATE_FILE = "state.json"
# Bump when the analysis changes in a way the code version would not show (dev installs).
ANALYSIS_VERSION = "3"


@dataclass
class Plan:
    """The inputs a run would read and whether anything changed since the last good run."""

    fingerprint: str
    inputs: list[dict]
    previous: dict | None = None
    nothing_new: bool = False
    changed_files: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # inbox files no source reads
    key_id: str = ""


class KeyChanged(CapacitarError):
    """The pseudonymisation key is not the last run's (every pseudonym would change)."""


def inbox_files(config) -> list[dict]:
    """Every file a source pattern matches: source, file name and SHA-256."""
    found = []
    for source in config.sources:
        for path in config.source_paths(source.pattern):
            if path.is_file():
                found.append({"source": source.name, "source_file": path.name,
                              "sha256": sha256_of(path)})
    return found


# Files the operating system or an office suite leaves beside documents, not exports.
NOT_EXPORTS = ("Thumbs.db", "desktop.ini")


def inbox_problems(config) -> list[str]:
    """Files in the inbox that no source reads, and matches that lead outside the inbox.

    Only files directly in the inbox count as unmatched (a subfolder is the
    user's own, e.g. an archive); hidden files and office lock files are ignored.
    """
    inbox, problems, matched = config.inbox_dir, [], set()
    patterns = [s.pattern for s in config.sources] + [s.dictionary for s in config.sources
                                                      if s.dictionary]
    patterns += [glob for s in config.sources if s.pull
                 for glob in snapshot_files_globs(s.name, s.pull.kind) if glob not in patterns]
    for pattern in patterns:
        inside, outside = config.inbox_matches(pattern)
        matched.update(inside + outside)
        problems += [f"{p.relative_to(inbox)}: matches {pattern!r} but leads outside the inbox "
                     f"(to {p.resolve()}); not read" for p in outside]
    if inbox.is_dir():
        for path in sorted(inbox.iterdir()):
            name = path.name
            if (path in matched or name.startswith((".", "~$")) or name in NOT_EXPORTS
                    or not path.is_file()):
                continue
            problems.append(f"{name}: in the inbox but no source pattern matches it "
                            f"({', '.join(repr(p) for p in patterns)}); add a source for it "
                            "in program.yaml or move it out of the inbox")
    return problems


def instruments_digest(instruments: dict) -> str:
    """SHA-256 of the instrument definitions as loaded (keys, bands, forms...)."""
    digest = hashlib.sha256()
    for inst_id in sorted(instruments):
        digest.update(instruments[inst_id].model_dump_json().encode())
    return digest.hexdigest()


def run_fingerprint(inputs: list[dict], program_file: Path, instruments: dict,
                    code_version: str, key_id: str = "") -> str:
    """SHA-256 over the inputs' hashes, program.yaml, the instruments, the code version and the
    key's identity."""
    digest = hashlib.sha256(f"key={key_id}\n".encode())
    for entry in sorted(inputs, key=lambda e: (e["source"], e["source_file"])):
        digest.update(f"{entry['source']}/{entry['source_file']}={entry['sha256']}\n".encode())
    digest.update(program_file.read_bytes())
    digest.update(instruments_digest(instruments).encode())
    digest.update(f"{code_version}/{ANALYSIS_VERSION}".encode())
    return digest.hexdigest()


def load_state(output_dir: Path) -> dict | None:
    """The last successful run's state, or None (first run, or outputs removed)."""
    path = output_dir / STATE_FILE
    if not path.exists():
        return None
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None  # a damaged state only costs a full recomputation
    return state if isinstance(state, dict) else None


def save_state(output_dir: Path, state: dict) -> Path:
    """Write the state atomically (the last thing a successful run does)."""
    return write_json(state, output_dir / STATE_FILE)


def plan_run(config, instruments: dict, code_version: str, key_id: str = "",
             new_key: bool = False) -> Plan:
    """Hash the inbox and compare with the last successful run (see ``tests/test_runs.py``).

    A file skipped by the last run (being written, unreadable) counts as changed,
    so the next run reads it again. A key other than the last run's raises
    :class:`KeyChanged` unless ``new_key`` says the change is intended.
    """
    inputs = inbox_files(config)
    fingerprint = run_fingerprint(inputs, config.root / "program.yaml", instruments,
                                  code_version, key_id)
    previous = load_state(config.output_dir)
    check_key(config, previous, key_id, new_key)
    before = {e["source_file"]: e["sha256"] for e in (previous or {}).get("inputs", [])}
    retry = set((previous or {}).get("skipped", []))
    changed = [e["source_file"] for e in inputs
               if before.get(e["source_file"]) != e["sha256"] or e["source_file"] in retry]
    changed += sorted(set(before) - {e["source_file"] for e in inputs})  # removed files
    nothing_new = (previous is not None and previous.get("fingerprint") == fingerprint
                   and not retry & {e["source_file"] for e in inputs}
                   and (config.output_dir / "tables").is_dir())
    return Plan(fingerprint, inputs, previous, nothing_new, changed, inbox_problems(config),
                key_id)


def check_key(config, previous: dict | None, key_id: str, new_key: bool) -> None:
    """Stop when the key is not the last run's, unless the change is declared."""
    before = (previous or {}).get("key_id")
    if not before or not key_id or before == key_id or new_key:
        return
    raise KeyChanged(
        f"the pseudonymisation key is not the one of the last run ({previous.get('run_id')}, "
        f"{previous.get('finished')}): every pseudonym would change and nobody would match "
        f"their earlier answers. Put the old key back, or if the new key is intended: "
        f"capacitar run {config.root} --new-key")


def cohort_fingerprints(valid: dict[str, pd.DataFrame], context: str) -> dict[str, str]:
    """SHA-256 per cohort of its valid responses (all instruments) plus ``context``.

    ``context`` carries what else a cohort's figures depend on (waves, wave
    pairs, instrument definitions, analysis version); rows are hashed in a
    canonical order (by row hash) so that reordering a file changes nothing.
    """
    digests: dict[str, hashlib._Hash] = {}
    for inst_id in sorted(valid):
        frame = valid[inst_id]
        if frame.empty:
            continue
        columns, canonical, hashes = row_hashes(frame)
        # Each cohort's row hashes in sorted order: the canonical order (much faster
        # than sorting the rows by every column and hashing per cohort).
        codes, cohorts = pd.factorize(canonical["cohort"], sort=True)
        order = np.lexsort((hashes, codes))
        bounds = np.searchsorted(codes[order], np.arange(len(cohorts) + 1))
        for i, cohort in enumerate(cohorts):
            digest = digests.setdefault(str(cohort), hashlib.sha256(context.encode()))
            digest.update(f"{inst_id}:{','.join(columns)}".encode())
            digest.update(hashes[order[bounds[i]:bounds[i + 1]]].tobytes())
    return {cohort: d.hexdigest() for cohort, d in digests.items()}


def row_hashes(frame: pd.DataFrame) -> tuple[list[str], pd.DataFrame, np.ndarray]:
    """The hashed columns (all but the row's file and line), their canonical values, and one
    64-bit hash per row."""
    columns = sorted(c for c in frame.columns if c not in ("source_file", "source_row"))
    canonical = canonical_values(frame, columns)
    return columns, canonical, pd.util.hash_pandas_object(canonical, index=False).to_numpy()


def equating_digest(valid: dict[str, pd.DataFrame], instruments: dict,
                    baseline_wave: str) -> str:
    """SHA-256 of what the knowledge tests' equating lines are fitted on: the baseline-wave
    rows of every cohort of each test with several forms.

    ``equated_percent_correct`` puts each form on the first form's scale with a
    line fitted on all cohorts' baseline answers, so a cohort's equated figures
    change when another cohort's baseline does: this digest goes into every
    cohort's fingerprint (:func:`cohort_fingerprints`'s ``context``).

    >>> equating_digest({}, {}, "pre") == hashlib.sha256().hexdigest()
    True
    """
    digest = hashlib.sha256()
    for inst_id in sorted(valid):
        inst, frame = instruments.get(inst_id), valid[inst_id]
        if inst is None or inst.kind != "knowledge" or len(inst.forms) < 2 or frame.empty:
            continue
        _, _, hashes = row_hashes(frame[frame["wave"].astype(str) == baseline_wave])
        digest.update(inst_id.encode())
        digest.update(np.sort(hashes).tobytes())
    return digest.hexdigest()


def canonical_values(frame: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """``columns`` of ``frame`` spelled one way per value, for hashing.

    Numbers (and booleans) as float64, so a column read as integers in one run
    and as floats in the next (a blank elsewhere in the file) hashes the same;
    dates as they are; everything else as text, missing as "\\x00". Only the
    text columns are converted to strings (the costly part).

    >>> a = pd.DataFrame({"cohort": ["c"], "q1": [3]})
    >>> b = pd.DataFrame({"cohort": ["c"], "q1": [3.0]})
    >>> canonical_values(a, ["cohort", "q1"]).equals(canonical_values(b, ["cohort", "q1"]))
    True
    """
    out = {}
    for column in columns:
        values = frame[column]
        if pd.api.types.is_bool_dtype(values) or pd.api.types.is_numeric_dtype(values):
            out[column] = values.astype("float64")
        elif pd.api.types.is_datetime64_any_dtype(values):
            out[column] = values
        else:
            out[column] = values.astype("string").fillna("\x00")
    return pd.DataFrame(out, index=frame.index)


def stale_cohorts(current: dict[str, str], previous: dict | None) -> list[str]:
    """Cohorts whose fingerprint differs from the last good run's (or that are new)."""
    before = (previous or {}).get("cohorts", {})
    return sorted(c for c, fp in current.items() if before.get(c) != fp)
