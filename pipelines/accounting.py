"""Row accounting: every record of every file ends up valid, quarantined or in a skipped file.

``rows_in`` is counted from the file itself (its lines, respecting only
well-formed quoting; a sheet's or a data file's own row count), not from what
the parser returned, so a record the parser lost shows up as unbalanced.
"""

from __future__ import annotations

import pandas as pd

ACCOUNTING_COLUMNS = [
    "source_file", "instrument", "encoding", "rows_in", "rows_read", "rows_valid",
    "rows_quarantined", "rows_skipped", "cells_quarantined", "balanced",
]
COUNTS = ["rows_in", "rows_read", "rows_valid", "rows_quarantined", "rows_skipped",
          "cells_quarantined"]


def row_accounting(
    ingest_accounting: pd.DataFrame, valid: dict[str, pd.DataFrame], quarantine: pd.DataFrame
) -> pd.DataFrame:
    """Records in, read, valid, quarantined and skipped per source file x instrument.

    ``balanced`` is True where rows_in == rows_valid + rows_quarantined +
    rows_skipped (quarantine records of ``scope`` "row"; "cell" records, one
    answer set aside in a row that stays, are counted in ``cells_quarantined``).
    The flow fails loudly when any record is unaccounted for.

    Examples
    --------
    >>> acc = pd.DataFrame({"source_file": ["a.csv", "b.csv"], "instrument": ["x", "x"],
    ...                     "encoding": ["utf-8", ""], "rows_in": [3, 4], "rows_read": [2, 0],
    ...                     "rows_skipped": [0, 4]})
    >>> valid = {"x": pd.DataFrame({"source_file": ["a.csv", "a.csv"]})}
    >>> q = pd.DataFrame({"source_file": ["a.csv", "a.csv"], "instrument": ["x", "x"],
    ...                   "scope": ["row", "cell"]})
    >>> row_accounting(acc, valid, q)[["rows_quarantined", "cells_quarantined", "balanced"]]
       rows_quarantined  cells_quarantined  balanced
    0                 1                  1      True
    1                 0                  0      True
    """
    keys = ["source_file", "instrument"]
    read = ingest_accounting.groupby(keys, as_index=False, sort=False).agg(
        encoding=("encoding", "first"), rows_in=("rows_in", "sum"),
        rows_read=("rows_read", "sum"), rows_skipped=("rows_skipped", "sum"))
    valid_counts = pd.concat(
        [f.assign(instrument=i)[keys] for i, f in valid.items() if not f.empty]
        or [pd.DataFrame(columns=keys)]
    ).value_counts().rename("rows_valid").reset_index()
    scope = quarantine["scope"] if "scope" in quarantine else pd.Series("row", quarantine.index)
    rows = quarantine.loc[scope != "cell", keys].value_counts().rename("rows_quarantined")
    cells = quarantine.loc[scope == "cell", keys].value_counts().rename("cells_quarantined")
    table = (read.merge(valid_counts, on=keys, how="outer", sort=False)
             .merge(rows.reset_index(), on=keys, how="outer", sort=False)
             .merge(cells.reset_index(), on=keys, how="outer", sort=False))
    for col in COUNTS:
        table[col] = table[col].fillna(0).astype("int64")
    table["encoding"] = table["encoding"].fillna("").astype("str")
    table["balanced"] = table["rows_in"] == (
        table["rows_valid"] + table["rows_quarantined"] + table["rows_skipped"])
    return table[ACCOUNTING_COLUMNS]
