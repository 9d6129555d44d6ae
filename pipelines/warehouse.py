"""The results warehouse: one DuckDB file per program, written anew by every run.

A run's tables replace the warehouse's: it holds the results of the inbox as it
is now, so the rows of a file removed from the inbox (or of cohorts no longer
in it) leave the warehouse with the file, and personal data that once reached
it through a bad file does not stay. The ``runs`` table (``scope: run_id`` in
``schema.yaml``) accumulates: one row per run, ever. Tables a run does not
write (a run that found no new data writes only ``runs``) are kept whole.

A run that replaces rows builds the file in a private staging folder beside the
old one and renames it over it: the old file's freed pages (where deleted rows
linger in DuckDB) are not carried over, a failed update leaves the old file
whole, and the file is owner-only (0600) like every other output. A run that
only adds its ``runs`` row adds it in place.
"""

from __future__ import annotations

import os
from pathlib import Path

import duckdb
import pandas as pd

from pipelines.publish import private_folder
from pipelines.schema import TableSpec

DUCK_TYPES = {"string": "VARCHAR", "category": "VARCHAR", "integer": "BIGINT",
              "number": "DOUBLE", "boolean": "BOOLEAN", "flags": "VARCHAR"}


def ensure_table(con, name: str, frame: pd.DataFrame, spec: TableSpec | None) -> None:
    """Create the table, or add columns a newer capacitar version introduced."""
    def duck_type(column: str) -> str:
        if spec is not None and column in spec.columns:
            return DUCK_TYPES[spec.columns[column].type]
        return "DOUBLE" if pd.api.types.is_numeric_dtype(frame[column]) else "VARCHAR"

    existing = {r[0] for r in con.execute(
        "SELECT column_name FROM information_schema.columns WHERE table_name = ?", [name]
    ).fetchall()}
    if not existing:
        columns = ", ".join(f'"{c}" {duck_type(c)}' for c in frame.columns)
        con.execute(f'CREATE TABLE "{name}" ({columns})')
        return
    for column in frame.columns:
        if column not in existing:
            con.execute(f'ALTER TABLE "{name}" ADD COLUMN "{column}" {duck_type(column)}')


ACCUMULATES = "run_id"  # a table with this scope keeps every run's rows


def keep_previous(con, path: Path, tables: dict[str, pd.DataFrame], specs: dict) -> None:
    """Copy from the old file what this run does not replace: tables it does not write, and
    the earlier runs' rows of accumulating tables."""
    if not path.exists():
        return
    con.execute("ATTACH ? AS previous (READ_ONLY)", [str(path)])
    names = [r[0] for r in con.execute(
        "SELECT table_name FROM duckdb_tables() WHERE database_name = 'previous'").fetchall()]
    for name in names:
        spec = specs.get(name)
        accumulates = spec is not None and spec.scope == ACCUMULATES
        if name in tables and not accumulates:
            continue
        query = f'CREATE TABLE "{name}" AS SELECT * FROM previous."{name}"'
        if name in tables and ACCUMULATES in tables[name].columns:
            runs = tables[name][ACCUMULATES].dropna().astype(str).unique().tolist()
            con.execute(query + f' WHERE CAST("{ACCUMULATES}" AS VARCHAR) NOT IN '
                        '(SELECT UNNEST(?::VARCHAR[]))', [runs])
        else:
            con.execute(query)
    con.execute("DETACH previous")


def insert(con, name: str, frame: pd.DataFrame, parquet: Path | None = None) -> None:
    """Insert this run's rows (from ``parquet``, the same table as a Parquet file, when given:
    DuckDB reads it without the GIL)."""
    if parquet is not None:
        con.execute(f'INSERT INTO "{name}" BY NAME SELECT * FROM read_parquet(?)', [str(parquet)])
        return
    con.register("incoming", frame)
    con.execute(f'INSERT INTO "{name}" BY NAME SELECT * FROM incoming')
    con.unregister("incoming")


def add_in_place(path: Path, tables: dict[str, pd.DataFrame], specs: dict) -> dict[str, int]:
    """Add accumulating tables' rows to the file in one transaction (a run with no new data
    adds its ``runs`` row: rewriting every table for it would cost seconds)."""
    with duckdb.connect(str(path)) as con:
        con.execute("BEGIN TRANSACTION")
        for name, frame in tables.items():
            ensure_table(con, name, frame, specs.get(name))
            runs = frame[ACCUMULATES].dropna().astype(str).unique().tolist()
            con.execute(f'DELETE FROM "{name}" WHERE CAST("{ACCUMULATES}" AS VARCHAR) IN '
                        '(SELECT UNNEST(?::VARCHAR[]))', [runs])  # a retried run: once
            insert(con, name, frame)
        con.execute("COMMIT")
        counts = {name: con.execute(f'SELECT COUNT(*) FROM "{name}"').fetchone()[0]
                  for name in tables}
    os.chmod(path, 0o600)
    return counts


def update_warehouse(
    path: Path, tables: dict[str, pd.DataFrame], specs: dict[str, TableSpec],
    parquet: dict[str, Path] | None = None,
) -> dict[str, int]:
    """Write the program's DuckDB file with this run's tables (see the module docstring).

    Returns the row count of every table written. ``parquet`` (table name ->
    the table's Parquet file) inserts the rows from those files, so the update
    can run on a thread beside Python work.

    Examples
    --------
    >>> import tempfile
    >>> db = Path(tempfile.mkdtemp()) / "w.duckdb"
    >>> t = {"scores": pd.DataFrame({"cohort": ["a"], "score": [1.0]})}
    >>> update_warehouse(db, t, {})["scores"], update_warehouse(db, t, {})["scores"]
    (1, 1)
    >>> oct(db.stat().st_mode & 0o777)
    '0o600'
    """
    accumulating = {n for n in tables if specs.get(n) is not None
                    and specs[n].scope == ACCUMULATES}
    if path.exists() and accumulating == set(tables):  # only runs' rows added, none removed
        return add_in_place(path, tables, specs)
    with private_folder(path) as staging:  # DuckDB's WAL lands in this private folder too
        new = staging / path.name
        with duckdb.connect(str(new)) as con:
            keep_previous(con, path, tables, specs)
            for name, frame in tables.items():
                ensure_table(con, name, frame, specs.get(name))
                insert(con, name, frame, (parquet or {}).get(name))
            counts = {name: con.execute(f'SELECT COUNT(*) FROM "{name}"').fetchone()[0]
                      for name in tables}
        os.chmod(new, 0o600)
        os.replace(new, path)
    Path(f"{path}.wal").unlink(missing_ok=True)  # the old file's log, if a run died writing it
    return counts
