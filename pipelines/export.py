"""Write the result tables as Parquet, CSV, SPSS .sav and Stata .dta, atomically.

Everything is first written into a staging folder and then swapped in with
renames, so a run killed midway leaves the previous outputs whole. SPSS and
Stata files carry variable labels and value labels in the program's language;
categories (cohort, wave, instrument, scale, band, rule...) are labelled
numeric codes, never text categoricals, so SPSS, PSPP, Stata and R (haven)
read them as factors with labels.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pyreadstat

from pipelines.schema import TableSpec

BOOL_LABELS = {"es": {0: "No", 1: "Sí"}, "en": {0: "No", 1: "Yes"}}
NO_STATA = {"scores_wide"}  # names longer than Stata's 32 characters


def atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    """Call ``write(tmp)`` then rename tmp over ``path`` (same folder, so atomic)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(Path(tmp))
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def write_json(data: object, path: Path) -> Path:
    """Write JSON atomically (UTF-8, readable)."""
    text = json.dumps(data, indent=2, ensure_ascii=False, default=str)
    atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))
    return path


def coded(values: pd.Series, value_set: list) -> tuple[pd.Series, dict]:
    """Text categories as 1-based codes in declaration order; unknown values appended."""
    order = [v for v, _ in value_set]
    extra = sorted({str(v) for v in values.dropna().unique()} - set(order))
    codes = {v: i for i, v in enumerate(order + extra, start=1)}
    return values.map(codes).astype("float64"), codes


def labelled(frame: pd.DataFrame, spec: TableSpec, sets: dict, language: str):
    """The frame with categories as codes, plus labels, value labels, measures and formats."""
    out = pd.DataFrame(index=frame.index)
    labels, value_labels, measures, formats = {}, {}, {}, {}
    for name in frame.columns:
        column = spec.columns[name]
        labels[name] = column.label.get(language)[:250]
        series = frame[name]
        if column.type == "category":
            value_set = sets.get(column.values or "", [])
            out[name], codes = coded(series.astype("object").where(series.notna()), value_set)
            text = {v: t.get(language) for v, t in value_set}
            value_labels[name] = {c: (text.get(v) or v)[:120] for v, c in codes.items()}
            measures[name] = "ordinal" if column.values == "waves" else "nominal"
            formats[name] = "F8.0"
        elif column.type == "boolean":
            out[name] = series.astype("boolean").to_numpy(dtype="float64", na_value=np.nan)
            value_labels[name] = BOOL_LABELS[language]
            measures[name], formats[name] = "nominal", "F1.0"
        elif column.type in ("integer", "number"):
            # SPSS and Stata have no infinity: an infinite figure is written as missing.
            numbers = pd.to_numeric(series, errors="coerce").astype("float64")
            out[name] = numbers.where(np.isfinite(numbers))
            measures[name] = "scale"
            formats[name] = "F8.0" if column.type == "integer" else "F12.4"
        else:
            out[name] = series.astype("object").where(series.notna(), "").astype(str)
            measures[name] = "nominal"
    return out, labels, value_labels, measures, formats


def write_sav(frame, spec, sets, language, path: Path) -> None:
    """An SPSS .sav with variable labels, value labels, measurement levels and formats."""
    data, labels, value_labels, measures, formats = labelled(frame, spec, sets, language)
    pyreadstat.write_sav(
        data, str(path), column_labels=labels, variable_value_labels=value_labels,
        variable_measure=measures, variable_format=formats, file_label=spec.title.get(language))


def write_dta(frame, spec, sets, language, path: Path) -> None:
    """A Stata .dta with variable and value labels (labels cut to Stata's 80 characters)."""
    data, labels, value_labels, _, _ = labelled(frame, spec, sets, language)
    pyreadstat.write_dta(
        data, str(path), column_labels={k: v[:80] for k, v in labels.items()},
        variable_value_labels={k: {c: t[:80] for c, t in v.items()} for k, v in value_labels.items()},
        file_label=spec.title.get(language)[:80], version=15)


def write_open_formats(frame: pd.DataFrame, folder: Path, name: str) -> list[Path]:
    """Parquet and CSV (UTF-8, written by Arrow: ~10x pandas' to_csv on big tables)."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    from pyarrow import csv

    paths = [folder / f"{name}.parquet", folder / f"{name}.csv"]
    table = pa.Table.from_pandas(frame.reset_index(drop=True), preserve_index=False)
    pq.write_table(table, paths[0])
    csv.write_csv(table, paths[1], csv.WriteOptions(quoting_style="needed"))
    return paths


def write_labelled(frame: pd.DataFrame, spec: TableSpec, sets, language, path: Path) -> Path:
    """One SPSS (.sav) or Stata (.dta) file, by the path's suffix."""
    writer = write_sav if path.suffix == ".sav" else write_dta
    writer(frame.reset_index(drop=True), spec, sets, language, path)
    return path


PARALLEL_ROWS = 200_000  # below this, starting worker processes costs more than it saves
WORKERS = 2  # the machines evaluators use have two cores


def write_tables(files: dict[str, pd.DataFrame], specs: dict, sets, language,
                 folder: Path) -> list[Path]:
    """Every table as Parquet, CSV, .sav and .dta (not .dta for ``NO_STATA``) in ``folder``.

    SPSS and Stata writing is the slow part (pyreadstat holds the GIL, ~4 M
    cells/s): for big programs the files are written by two worker processes,
    the biggest files first, shared out to balance the work.
    """
    paths = [p for name, frame in files.items() for p in write_open_formats(frame, folder, name)]
    jobs = [(name, folder / f"{name}{suffix}") for name in files for suffix in (".sav", ".dta")
            if not (suffix == ".dta" and name in NO_STATA)]
    jobs.sort(key=lambda job: -files[job[0]].size)
    if sum(len(f) for f in files.values()) < PARALLEL_ROWS:
        return paths + [write_labelled(files[n], specs[n], sets, language, p) for n, p in jobs]
    shares: list[list] = [[] for _ in range(WORKERS)]
    loads = [0] * WORKERS
    for name, path in jobs:
        least = loads.index(min(loads))
        shares[least].append((files[name], specs[name], sets, language, path))
        loads[least] += files[name].size
    run_workers(shares, folder)
    return paths + [path for _, path in jobs]


def run_workers(shares: list[list], folder: Path) -> None:
    """Write each share of labelled files in its own ``python -m pipelines.export`` process.

    Plain subprocesses rather than multiprocessing: nothing of the caller's
    script is re-run in the workers, whatever started the run.
    """
    import pickle
    import subprocess
    import sys

    root = str(Path(__file__).resolve().parents[1])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [root, *filter(None, [os.environ.get("PYTHONPATH")])])}
    workers = []
    for i, share in enumerate(s for s in shares if s):
        job = folder / f".labelled-job-{i}.pkl"
        job.write_bytes(pickle.dumps(share, protocol=pickle.HIGHEST_PROTOCOL))
        workers.append((job, subprocess.Popen(
            [sys.executable, "-m", "pipelines.export", str(job)], env=env,
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)))
    failures = []
    for job, worker in workers:
        _, err = worker.communicate()
        job.unlink(missing_ok=True)
        if worker.returncode != 0:
            failures.append(err[-2000:])
    if failures:
        raise RuntimeError("writing the SPSS/Stata files failed:\n" + "\n".join(failures))


def write_job(job: Path) -> None:
    """Worker side of :func:`run_workers`: write the labelled files listed in ``job``."""
    import pickle

    for frame, spec, sets, language, path in pickle.loads(job.read_bytes()):
        write_labelled(frame, spec, sets, language, path)


def swap_in(staged: Path, target: Path) -> None:
    """Replace ``target`` by ``staged`` with renames; the old one is kept until the new is in."""
    previous = target.with_name(f".{target.name}.previous")
    if previous.exists():
        shutil.rmtree(previous)
    if target.exists():
        os.rename(target, previous)
    os.rename(staged, target)
    if previous.exists():
        shutil.rmtree(previous)


def recover(target: Path) -> None:
    """Undo a swap cut short: bring back the previous folder if the new one never arrived."""
    previous = target.with_name(f".{target.name}.previous")
    if previous.exists() and not target.exists():
        os.rename(previous, target)


def write_folder(target: Path, fill: Callable[[Path], list[Path]]) -> list[Path]:
    """Fill a staging folder beside ``target`` with ``fill(staging)``, then swap it in."""
    recover(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.staging-", dir=target.parent))
    try:
        written = fill(staging)
        swap_in(staging, target)
    finally:
        if staging.exists():
            shutil.rmtree(staging)
    return [target / p.relative_to(staging) for p in written]


if __name__ == "__main__":
    import sys

    write_job(Path(sys.argv[1]))
