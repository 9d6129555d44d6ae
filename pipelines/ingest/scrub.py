"""What counts as personal-looking text, and values made safe to leave ingest.

Personal columns (identifiers, names, phones) are dropped when a file is read,
but a broken export puts their text elsewhere: an unquoted ``;`` in a name
shifts an email into the site column, a stray quote joins rows. Every raw value
that leaves ingest (a quarantine ``value``, an unresolved cohort or wave, a
knowledge answer, a message) goes through :func:`safe_value` or
:func:`scrub_message` first. A value is personal-looking when it holds an
email, a phone or ID number (6 digits or more, dates aside: provincial landlines
have 6), a line break or other control character (pieces of several cells), or a
word or value from the file's own identifier and PII columns
(:class:`KnownValues`). This is the one detector: the quarantine records written
by the contracts (:mod:`data_contracts.neutral`) use it too.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

import pandas as pd

from pipelines.ingest.text import fold

REDACTED = "***"  # what stands in for a withheld value
MAX_VALUE = 40  # characters of a raw value kept (a code, a date, an answer: far fewer)

# An @ between word characters (spaces around it allowed): every email, typed any way.
EMAIL = re.compile(r"\w\s?@\s?\w")
# Dates and times are not phone numbers: taken out before counting digits.
DATE_OR_TIME = re.compile(
    r"\d{4}[-/.]\d{1,2}[-/.]\d{1,2}|\d{1,2}[-/.]\d{1,2}[-/.]\d{2,4}|\d{1,2}:\d{2}(?::\d{2})?")
# 6+ digits, possibly grouped (+51 987 654 321, (044) 123-456, 45678912): phones, DNIs, IDs.
LONG_NUMBER = re.compile(r"\+?\d(?:[\s.\-/()]{0,2}\d){5,}")
CONTROL = re.compile(r"[\x00-\x1f\x7f]")  # a line break or tab inside a cell: several cells
WORD = re.compile(r"[^\W\d_]{3,}")  # words of 3+ letters (names: Ana, Pérez, Quispe)
# Only digits, signs and separators, short: an answer code or a number, never a person.
PLAIN_NUMBER = re.compile(r"[\d\s.,+\-]{0,5}")


class KnownValues:
    """The values of one file's identifier and PII columns, for recognising them elsewhere.

    Built on first use (most files never need it), from the folded full
    values and their words of 3+ letters; the values themselves never leave
    the object.

    Examples
    --------
    >>> known = KnownValues(pd.DataFrame({"nombre": ["María Pérez"], "dni": ["41234567"]}))
    >>> known.contains("PEREZ, maria"), known.contains("Virú")
    (True, False)
    """

    def __init__(self, table: pd.DataFrame | None = None, columns: list[str] | None = None):
        self._table = table
        self._columns = list(table.columns) if columns is None and table is not None else columns
        self._values: set[str] | None = None
        self._words: set[str] | None = None

    def _build(self) -> None:
        values: set[str] = set()
        for column in self._columns or []:
            values.update(fold(v) for v in pd.unique(self._table[column].astype(str)))
        values.discard("")
        self._values = values
        self._words = {w for v in values for w in WORD.findall(v)}
        self._table = None  # the table is not kept once its values are folded

    def contains(self, text: str) -> bool:
        """True when ``text`` is, or holds a word of, a value of the personal columns."""
        if self._values is None:
            self._build()
        folded = fold(text)
        return folded in self._values or any(w in self._words for w in WORD.findall(folded))


NOTHING_KNOWN = KnownValues()


def looks_personal(text: str, known: KnownValues = NOTHING_KNOWN) -> bool:
    """True when ``text`` looks like an email, a phone/ID number, or a known personal value.

    Examples
    --------
    >>> [looks_personal(t) for t in ["josé.núñez@minsa.gob.pe", "+51 987 654 321",
    ...                              "45678912", "2026-03-02 10:15:00", "Muy a menudo", "7"]]
    [True, True, True, False, False, False]
    """
    if PLAIN_NUMBER.fullmatch(text):
        return False
    if CONTROL.search(text) or EMAIL.search(text) or LONG_NUMBER.search(DATE_OR_TIME.sub(" ", text)):
        return True
    return known.contains(text)


def safe_value(value: object, known: KnownValues = NOTHING_KNOWN, withheld: str = REDACTED) -> str:
    """A raw cell as it may be kept outside ingest: blank, ``withheld`` (``***``) if
    personal-looking, or the stripped text cut to ``MAX_VALUE`` characters.

    Examples
    --------
    >>> safe_value("no sé"), safe_value("ana.perez@gmail.com"), safe_value(None)
    ('no sé', '***', '')
    >>> len(safe_value("x" * 100))
    40
    """
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return ""
    text = str(value).strip()
    if not text:
        return ""
    if looks_personal(text, known):
        return withheld
    return text if len(text) <= MAX_VALUE else text[: MAX_VALUE - 1] + "…"


def safe_values(values: pd.Series, known: KnownValues = NOTHING_KNOWN,
                keep: Iterable[str] = ()) -> pd.Series:
    """:func:`safe_value` of each cell (once per distinct value); values in ``keep`` as they are.

    Examples
    --------
    >>> safe_values(pd.Series(["pre", "ana@x.pe", "Virú"]), keep={"pre"}).tolist()
    ['pre', '***', 'Virú']
    """
    from pipelines.ingest.text import map_distinct

    kept = set(keep)
    return map_distinct(values, lambda v: v if v in kept else safe_value(v, known))


QUOTED = re.compile(r"'[^']*'|\"[^\"]*\"")
EMAIL_WORD = re.compile(r"[^\s,;]*\w\s?@\s?\w[^\s,;]*")


def scrub_message(text: str, limit: int = 160) -> str:
    """One line of an error message with anything quoted or personal-looking withheld.

    For messages of unexpected errors, which may quote a cell of the file.

    Examples
    --------
    >>> scrub_message("Unable to parse 'x' near ana@x.pe, +51 987 654 321\\nmore")
    'Unable to parse *** near ***, ***'
    """
    line = (str(text).strip().splitlines() or [""])[0]
    for pattern in (QUOTED, EMAIL_WORD, LONG_NUMBER):
        line = pattern.sub(REDACTED, line)
    return line if len(line) <= limit else line[: limit - 1] + "…"
