"""Row accounting: every row read ends up valid or quarantined, per file and instrument."""

from __future__ import annotations

import pandas as pd

ACCOUNTING_COLUMNS = [
    "source_file", "instrument", "rows_read", "rows_valid", "rows_quarantined", "balanced",
]


def row_accounting(
    ingest_accounting: pd.DataFrame, valid: dict[str, pd.DataFrame], quarantine: pd.DataFrame
) -> pd.DataFrame:
    """Rows read, valid and quarantined per source file x instrument.

    ``balanced`` is True where rows_read == rows_valid + rows_quarantined;
    the flow fails loudly when any row is unaccounted for.

    Examples
    --------
    >>> acc = pd.DataFrame({"source_file": ["a.csv"], "instrument": ["x"], "rows_read": [3],
    ...                     "rows_rejected_at_ingest": [1]})
    >>> valid = {"x": pd.DataFrame({"source_file": ["a.csv", "a.csv"]})}
    >>> q = pd.DataFrame({"source_file": ["a.csv"], "instrument": ["x"]})
    >>> row_accounting(acc, valid, q)["balanced"].tolist()
    [True]
    """
    keys = ["source_file", "instrument"]
    read = ingest_accounting.groupby(keys, as_index=False)["rows_read"].sum()
    valid_counts = pd.concat(
        [f.assign(instrument=i)[keys] for i, f in valid.items() if not f.empty]
        or [pd.DataFrame(columns=keys)]
    ).value_counts().rename("rows_valid").reset_index()
    rows = quarantine[quarantine["scope"] != "cell"] if "scope" in quarantine else quarantine
    quarantined = rows[keys].value_counts().rename("rows_quarantined").reset_index()
    table = read.merge(valid_counts, on=keys, how="outer").merge(quarantined, on=keys, how="outer")
    for col in ("rows_read", "rows_valid", "rows_quarantined"):
        table[col] = table[col].fillna(0).astype("int64")
    table["balanced"] = table["rows_read"] == table["rows_valid"] + table["rows_quarantined"]
    return table[ACCOUNTING_COLUMNS]
