"""Write the result tables as Parquet, CSV, SPSS .sav and Stata .dta, atomically.

Everything is first written into a staging folder and then swapped in with
renames (``pipelines/publish.py``), so a run killed midway leaves the previous
outputs whole. SPSS and
Stata files carry variable labels and value labels in the program's language;
categories (cohort, wave, instrument, scale, band, rule...) are labelled
numeric codes, never text categoricals, so SPSS, PSPP, Stata and R (haven)
read them as factors with labels.
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pyreadstat

from pipelines.parallel import dying_with_parent
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


def json_text(data: object) -> str:
    """JSON as capacitar writes it: UTF-8, indented, anything else as text."""
    return json.dumps(data, indent=2, ensure_ascii=False, default=str)


def write_json(data: object, path: Path) -> Path:
    """Write JSON atomically (UTF-8, readable)."""
    text = json_text(data)
    atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))
    return path


def coded(values: pd.Series, value_set: list) -> tuple[pd.Series, dict]:
    """Text categories as 1-based codes in declaration order; unknown values appended.

    >>> codes, labels = coded(pd.Series(["post", "pre", None, "x"]), [("pre", {}), ("post", {})])
    >>> codes.tolist()[:2], labels
    ([2.0, 1.0], {'pre': 1, 'post': 2, 'x': 3})
    """
    order = [v for v, _ in value_set]
    text = values.astype("object").where(values.notna())
    extra = sorted({str(v) for v in text.dropna().unique()} - set(order))
    codes = {v: i for i, v in enumerate(order + extra, start=1)}
    # one hash lookup per row (Index.get_indexer), not a Python call per row
    position = pd.Index(list(codes), dtype="object").get_indexer(text.to_numpy(dtype=object))
    numbers = np.where(position >= 0, position + 1, np.nan)
    return pd.Series(numbers, index=values.index, dtype="float64"), codes


def plain_text(series: pd.Series) -> np.ndarray:
    """A text column as a NumPy object array of str, missing as "" (what pyreadstat writes).

    pyreadstat writes object arrays about twice as fast as pandas' ``str`` dtype.
    """
    return series.astype("object").where(series.notna(), "").astype(str).to_numpy(dtype=object)


def labelled(frame: pd.DataFrame, spec: TableSpec, sets: dict, language: str):
    """The frame with categories as codes, plus labels, value labels, measures and formats."""
    out = {}
    labels, value_labels, measures, formats = {}, {}, {}, {}
    for name in frame.columns:
        column = spec.columns[name]
        labels[name] = column.label.get(language)[:250]
        series = frame[name]
        if column.type == "category":
            value_set = sets.get(column.values or "", [])
            out[name], codes = coded(series, value_set)
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
            out[name] = pd.Series(plain_text(series), index=frame.index, dtype=object)
            measures[name] = "nominal"
    return pd.DataFrame(out, index=frame.index), labels, value_labels, measures, formats


def write_labelled_files(frame: pd.DataFrame, spec: TableSpec, sets, language,
                         paths: list[Path]) -> list[Path]:
    """The SPSS (.sav) and/or Stata (.dta) files of one table, by suffix, from one conversion.

    SPSS files carry variable labels, value labels, measurement levels and
    formats; Stata files the labels cut to Stata's 80 characters.
    """
    data, labels, value_labels, measures, formats = labelled(
        frame.reset_index(drop=True), spec, sets, language)
    title = spec.title.get(language)
    for path in paths:
        if path.suffix == ".sav":
            pyreadstat.write_sav(
                data, str(path), column_labels=labels, variable_value_labels=value_labels,
                variable_measure=measures, variable_format=formats, file_label=title)
        else:
            pyreadstat.write_dta(
                data, str(path), column_labels={k: v[:80] for k, v in labels.items()},
                variable_value_labels={k: {c: t[:80] for c, t in v.items()}
                                       for k, v in value_labels.items()},
                file_label=title[:80], version=15)
    return paths


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


def labelled_paths(name: str, folder: Path) -> list[Path]:
    """Where a table's SPSS and Stata files go (no .dta for ``NO_STATA``)."""
    return [folder / f"{name}{suffix}" for suffix in (".sav", ".dta")
            if not (suffix == ".dta" and name in NO_STATA)]


PARALLEL_ROWS = 200_000  # below this, starting worker processes costs more than it saves
WORKERS = 2  # the machines evaluators use have two cores


class LabelledFiles:
    """SPSS and Stata files of tables, written by worker processes beside the caller's work.

    pyreadstat holds the GIL (~4 M cells/s), so big tables are written by
    ``python -m pipelines.export`` worker processes that read the table's
    Parquet file (already written, so nothing is pickled here) while the run
    goes on; :meth:`wait` joins them. Small batches are written in-process at
    once: a worker's start costs more than it saves.

    Examples
    --------
    >>> import tempfile
    >>> from pipelines.schema import load_schema
    >>> folder = Path(tempfile.mkdtemp())
    >>> frame = pd.DataFrame({"cohort": ["a"], "wave": ["pre"], "instrument": ["proqol"],
    ...                       "n": [3], "n_matched_first_wave": [3], "n_unmatched": [0]})
    >>> writer = LabelledFiles(folder, {"participation": load_schema().tables["participation"]},
    ...                        {}, "en")
    >>> writer.submit({"participation": frame})
    >>> sorted(p.name for p in writer.wait())
    ['participation.dta', 'participation.sav']
    """

    def __init__(self, folder: Path, specs: dict, sets: dict, language: str):
        self.folder, self.specs, self.sets, self.language = folder, specs, sets, language
        self.paths: list[Path] = []
        self.workers: list[tuple[Path, subprocess.Popen]] = []

    def submit(self, files: dict[str, pd.DataFrame], workers: int = WORKERS) -> None:
        """Start writing ``files`` (their Parquet files must be in the folder already)."""
        jobs = sorted(((name, labelled_paths(name, self.folder)) for name in files),
                      key=lambda job: -files[job[0]].size)
        self.paths += [p for _, paths in jobs for p in paths]
        if sum(len(f) for f in files.values()) < PARALLEL_ROWS:
            for name, paths in jobs:
                write_labelled_files(files[name], self.specs[name], self.sets, self.language,
                                     paths)
            return
        shares: list[list] = [[] for _ in range(max(1, workers))]
        loads = [0] * len(shares)
        for name, paths in jobs:  # biggest first, each to the least loaded worker
            least = loads.index(min(loads))
            shares[least].append((self.folder / f"{name}.parquet", self.specs[name], self.sets,
                                  self.language, paths))
            loads[least] += files[name].size * len(paths)
        for share in filter(None, shares):
            self.workers.append(start_worker(share, self.folder))

    def wait(self) -> list[Path]:
        """Every file submitted, once written; a failed worker raises (a bug, not a user error)."""
        failures = []
        for job, worker in self.workers:
            _, err = worker.communicate()
            job.unlink(missing_ok=True)
            if worker.returncode != 0:
                failures.append(err[-2000:])
        self.workers = []
        if failures:
            raise RuntimeError("writing the SPSS/Stata files failed:\n" + "\n".join(failures))
        return list(self.paths)

    def cancel(self) -> None:
        """Stop the workers (the run failed): their half-written files go with the staging."""
        for job, worker in self.workers:
            worker.kill()
            worker.wait()
            job.unlink(missing_ok=True)
        self.workers = []


def start_worker(share: list, folder: Path) -> tuple[Path, subprocess.Popen]:
    """A ``python -m pipelines.export JOB`` process writing the labelled files of ``share``.

    A plain subprocess rather than multiprocessing: nothing of the caller's
    script is re-run in the worker, whatever started the run.
    """
    import pickle
    import sys

    root = str(Path(__file__).resolve().parents[1])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [root, *filter(None, [os.environ.get("PYTHONPATH")])])}
    fd, name = tempfile.mkstemp(prefix=".labelled-job-", suffix=".pkl", dir=folder)
    with os.fdopen(fd, "wb") as job:
        pickle.dump(share, job, protocol=pickle.HIGHEST_PROTOCOL)
    worker = subprocess.Popen(dying_with_parent([sys.executable, "-m", "pipelines.export", name]),
                              env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    return Path(name), worker


def write_job(job: Path) -> None:
    """Worker side of :class:`LabelledFiles`: write the labelled files listed in ``job``."""
    import pickle

    for table, spec, sets, language, paths in pickle.loads(job.read_bytes()):
        write_labelled_files(pd.read_parquet(table), spec, sets, language, paths)


if __name__ == "__main__":
    import sys

    write_job(Path(sys.argv[1]))
