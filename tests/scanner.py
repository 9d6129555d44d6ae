"""Find personal identifiers in everything a run wrote: every format decoded, not only bytes.

The privacy tests collect the inbox's identifiers (:func:`inbox_identifiers`),
then read back every file a run wrote as text (:func:`run_texts`: Parquet, CSV,
SPSS and Stata files through pyreadstat, every table of a DuckDB file, JSON,
HTML, Great Expectations' folder, Prefect's database) and look for them in raw
and normalised form (:func:`find_identifiers`).
"""

from __future__ import annotations

import re
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import pandas as pd
import pyreadstat
import yaml

from pipelines.ingest.text import _fold, fold

# What a program folder holds before a run: never scanned (it is the input).
INPUTS = {"inbox", "truth", "secrets", "program.yaml", "instruments", ".gitignore"}
DIGITS = re.compile(r"\d+")


@dataclass
class Identifiers:
    """What must never appear: text (names, emails) and numbers (phones, DNIs)."""

    text: set[str] = field(default_factory=set)  # folded (no accents, lower case)
    numbers: set[str] = field(default_factory=set)  # digits only

    def add(self, value: object) -> None:
        raw = "" if value is None or (isinstance(value, float) and pd.isna(value)) else str(value)
        raw = raw.strip()
        digits = re.sub(r"\D", "", raw)
        if len(digits) >= 7 and len(digits) >= len(raw.replace(" ", "")) - 3:
            self.numbers.add(digits)  # a phone or DNI however it is spaced
        elif len(raw) >= 5:
            self.text.add(fold(raw))


def read_source(path: Path, source: dict) -> pd.DataFrame:
    """One inbox file as the program reads it (all text), for its personal columns."""
    if path.suffix == ".xlsx":
        return pd.read_excel(path, sheet_name=source.get("sheet", 0),
                             header=source.get("header_row", 1) - 1, dtype=str,
                             engine="calamine")
    for encoding in ("utf-8", "cp1252"):
        try:
            return pd.read_csv(path, sep=None, engine="python", dtype=str, encoding=encoding,
                               keep_default_na=False, on_bad_lines="skip")
        except UnicodeDecodeError:
            continue
    raise ValueError(f"cannot read {path}")


def inbox_identifiers(root: Path, extra_columns: dict[str, list[str]] | None = None
                      ) -> Identifiers:
    """Every identifier and personal value in the inbox's declared identifier/PII columns.

    ``extra_columns``: source name -> more personal columns (a REDCap dictionary's
    ``Identifier? y`` fields that program.yaml does not list).
    """
    config = yaml.safe_load((root / "program.yaml").read_text(encoding="utf-8"))
    found = Identifiers()
    for source in config["sources"]:
        columns = [*source["identifier"], *source.get("pii", []), *source.get("rater", []),
                   *(extra_columns or {}).get(source["name"], [])]
        for path in sorted((root / config.get("inbox", "inbox")).glob(source["pattern"])):
            table = read_source(path, source)
            for column in columns:
                if column in table.columns:
                    for value in table[column].dropna().unique():
                        found.add(value)
    return found


def frame_text(frame: pd.DataFrame) -> str:
    """A table's cells, index and column names as text."""
    return frame.to_csv(index=True)


def file_texts(path: Path) -> dict[str, str]:
    """A written file as text: decoded by format, and its raw bytes besides."""
    texts = {f"{path} (bytes)": path.read_bytes().decode("utf-8", errors="replace")}
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        texts[str(path)] = frame_text(pd.read_parquet(path))
    elif suffix in (".sav", ".dta"):
        read = pyreadstat.read_sav if suffix == ".sav" else pyreadstat.read_dta
        data, meta = read(str(path))
        texts[str(path)] = frame_text(data) + repr(
            [meta.column_labels, meta.variable_value_labels, meta.file_label, meta.notes])
    elif suffix == ".duckdb":
        texts[str(path)] = duckdb_text(path)
    elif suffix == ".csv":
        for encoding in ("utf-8-sig", "cp1252"):
            try:
                texts[str(path)] = path.read_text(encoding=encoding)
                break
            except UnicodeDecodeError:
                continue
    return texts


def duckdb_text(path: Path) -> str:
    """Every row of every table of a DuckDB file."""
    with duckdb.connect(str(path), read_only=True) as con:
        names = [r[0] for r in con.execute(
            "SELECT table_name FROM duckdb_tables()").fetchall()]
        return "\n".join(frame_text(con.execute(f'SELECT * FROM "{n}"').df()) for n in names)


def sqlite_text(path: Path) -> str:
    """Every row of every table of a SQLite file (Prefect's database)."""
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        names = [r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        chunks = []
        for name in names:
            for row in con.execute(f'SELECT * FROM "{name}"'):
                chunks.append(" ".join(v.decode("utf-8", "replace") if isinstance(v, bytes)
                                       else str(v) for v in row))
        return "\n".join(chunks)
    finally:
        con.close()


def run_texts(root: Path) -> dict[str, str]:
    """Every file under the program folder that is not an input, as text."""
    texts = {}
    for path in sorted(root.rglob("*")):
        if path.is_file() and path.relative_to(root).parts[0] not in INPUTS:
            texts.update(file_texts(path))
    return texts


def prefect_database() -> Path:
    """The SQLite file of the Prefect API in use (the test harness's)."""
    from prefect.settings import get_current_settings

    url = get_current_settings().server.database.connection_url.get_secret_value()
    return Path(url.split(":///", 1)[1])


def find_identifiers(texts: dict[str, str], ids: Identifiers) -> list[tuple[str, str]]:
    """(where, identifier) for every identifier found, accent- and case-insensitive;
    numbers only as whole numbers (not inside longer digit strings such as decimals)."""
    hits = []
    for where, text in texts.items():
        folded = _fold.__wrapped__(text)  # not the cached fold: these texts are big
        hits += [(where, needle) for needle in sorted(ids.text) if needle in folded]
        spaced = re.sub(r"(?<=\d)[ \-](?=\d)", "", text)  # 987 654 321 -> 987654321
        numbers = set(DIGITS.findall(spaced))
        hits += [(where, number) for number in sorted(ids.numbers & numbers)]
    return hits
