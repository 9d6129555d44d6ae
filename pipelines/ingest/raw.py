"""What every source adapter returns: one export as text cells plus what the tool said.

An adapter knows one tool's export habits (header rows, metadata columns,
status columns, group prefixes, value labels) and hands the generic mapping in
``core`` a plain table. Nothing here knows about instruments or waves.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from pipelines.ingest.text import fold


@dataclass
class RowRule:
    """Rows an adapter sets aside (e.g. an unfinished Qualtrics response), with the reason."""

    mask: pd.Series
    rule: str
    detail: str
    column: str = ""


@dataclass
class Export:
    """One export read by its adapter.

    Attributes
    ----------
    table : text cells, one row per submission, columns as named by the tool.
    rows : the line (or spreadsheet row) number of each row in the original file.
    aliases : other names a program.yaml may use for a column (e.g. a Kobo
        question without its group prefix) -> the table's column.
    value_labels : column -> {code: label} from the tool (SPSS, Stata, REDCap).
    personal : columns the tool fills with personal data (IP address, device id,
        submitter name); dropped at ingest whether or not program.yaml lists them.
    submitted_at : the tool's submission-time column, used when program.yaml names none.
    complete_columns : field -> the completion-status column of its form (REDCap).
    form_rows : field -> rows that belong to its form (REDCap repeating instruments).
    row_rules : rows to quarantine for every instrument of the file.
    dayfirst : dates in the file are day/month (Spanish-locale Google Forms); None:
        the program's language decides (day first in Spanish).
    rows_in : records of the file after its header rows, counted independently of
        the parser (see ``readers.Read``).
    broken : records the reader could not turn into rows (``readers.Broken``).
    encoding : the text encoding the file was read in ("" for binary formats).
    """

    table: pd.DataFrame
    rows: pd.Series
    aliases: dict[str, str] = field(default_factory=dict)
    value_labels: dict[str, dict[str, str]] = field(default_factory=dict)
    personal: list[str] = field(default_factory=list)
    submitted_at: str | None = None
    complete_columns: dict[str, str] = field(default_factory=dict)
    form_rows: dict[str, pd.Series] = field(default_factory=dict)
    row_rules: list[RowRule] = field(default_factory=list)
    dayfirst: bool | None = None
    rows_in: int = 0
    broken: list = field(default_factory=list)
    encoding: str = ""

    def column(self, name: str) -> str | None:
        """The table column a configured name refers to (exact, alias, or accent/case-folded)."""
        if name in self.table.columns:
            return name
        if name in self.aliases:
            return self.aliases[name]
        folded = fold(name)
        for candidate in [*self.table.columns, *self.aliases]:
            if fold(candidate) == folded:
                return self.aliases.get(candidate, candidate)
        return None


def strip_prefixes(columns: list[str], separator: str) -> dict[str, str]:
    """Short name -> full column for group-prefixed names, where the short name is unique.

    Examples
    --------
    >>> strip_prefixes(["grp_a/q1", "grp_b/q1", "grp_a/q2", "_id"], "/")
    {'q2': 'grp_a/q2'}
    """
    short: dict[str, list[str]] = {}
    for col in columns:
        if separator in col:
            short.setdefault(col.rsplit(separator, 1)[1], []).append(col)
    return {name: cols[0] for name, cols in short.items()
            if len(cols) == 1 and name not in columns}
