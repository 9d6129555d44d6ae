"""Write result tables beside each other as Parquet and UTF-8 CSV, atomically.

Each file is written to a temporary name in the same folder and renamed into
place, so a run killed midway leaves the previous file whole.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

import pandas as pd


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


def write_table(frame: pd.DataFrame, folder: Path, name: str) -> list[Path]:
    """Write ``name.parquet`` and ``name.csv`` into ``folder``; return the paths.

    Examples
    --------
    >>> import tempfile
    >>> paths = write_table(pd.DataFrame({"a": [1]}), Path(tempfile.mkdtemp()), "t")
    >>> [p.name for p in paths]
    ['t.parquet', 't.csv']
    """
    frame = frame.reset_index(drop=True)
    parquet, csv = folder / f"{name}.parquet", folder / f"{name}.csv"
    atomic_write(parquet, lambda tmp: frame.to_parquet(tmp, index=False))
    atomic_write(csv, lambda tmp: frame.to_csv(tmp, index=False, encoding="utf-8"))
    return [parquet, csv]


def write_json(data: object, path: Path) -> Path:
    """Write JSON atomically (UTF-8, readable)."""
    text = json.dumps(data, indent=2, ensure_ascii=False, default=str)
    atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))
    return path


def write_tables(tables: dict[str, pd.DataFrame], folder: Path) -> list[Path]:
    """Write every result table; return all written paths."""
    written: list[Path] = []
    for name, frame in tables.items():
        written += write_table(frame, folder, name)
    return written
