"""The results warehouse: one DuckDB file per program, accumulated across runs.

Each run replaces, table by table, the rows in its scope (the cohorts it
evaluated, the files it read, its input fingerprint) and leaves other rows
alone, so re-running the same inputs never duplicates rows and a run with one
new cohort adds exactly that cohort. "All cohorts ever evaluated" is then one
query: ``SELECT DISTINCT cohort FROM scores``.
"""

from __future__ import annotations

from pathlib import Path

import duckdb
import pandas as pd

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


def replace_scope(con, name: str, frame: pd.DataFrame, scope: str | None,
                  parquet: Path | None = None) -> None:
    """Delete the rows this run replaces, then insert this run's rows (from ``parquet``,
    the same table as a Parquet file, when given: DuckDB reads it without the GIL)."""
    if scope is None:
        con.execute(f'DELETE FROM "{name}"')
    else:
        values = frame[scope].dropna().astype(str).unique().tolist()
        if values:
            con.execute(f'DELETE FROM "{name}" WHERE CAST("{scope}" AS VARCHAR) IN '
                        f'(SELECT UNNEST(?::VARCHAR[]))', [values])
    if parquet is not None:
        con.execute(f'INSERT INTO "{name}" BY NAME SELECT * FROM read_parquet(?)', [str(parquet)])
        return
    con.register("incoming", frame)
    con.execute(f'INSERT INTO "{name}" BY NAME SELECT * FROM incoming')
    con.unregister("incoming")


def update_warehouse(
    path: Path, tables: dict[str, pd.DataFrame], specs: dict[str, TableSpec],
    parquet: dict[str, Path] | None = None,
) -> dict[str, int]:
    """Merge this run's tables into the program's DuckDB file in one transaction.

    Returns the row count of every table after the update. ``parquet`` (table
    name -> the table's Parquet file) inserts the rows from those files, so the
    update can run on a thread beside Python work.

    Examples
    --------
    >>> import tempfile
    >>> db = Path(tempfile.mkdtemp()) / "w.duckdb"
    >>> t = {"scores": pd.DataFrame({"cohort": ["a"], "score": [1.0]})}
    >>> update_warehouse(db, t, {})["scores"], update_warehouse(db, t, {})["scores"]
    (1, 1)
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    with duckdb.connect(str(path)) as con:
        con.execute("BEGIN TRANSACTION")
        try:
            for name, frame in tables.items():
                spec = specs.get(name)
                scope = spec.scope if spec is not None else "cohort"
                ensure_table(con, name, frame, spec)
                replace_scope(con, name, frame, scope if scope in frame.columns else None,
                              (parquet or {}).get(name))
            con.execute("COMMIT")
        except Exception:
            con.execute("ROLLBACK")
            raise
        return {name: con.execute(f'SELECT COUNT(*) FROM "{name}"').fetchone()[0]
                for name in tables}
