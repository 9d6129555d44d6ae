"""Text folding shared by the adapters and the mapping (no pandas, no I/O)."""

from __future__ import annotations

import unicodedata
from functools import lru_cache


def fold(text: object) -> str:
    """Compare-friendly text: no accents, lower case, single spaces.

    Examples
    --------
    >>> fold("  Muy a MENUDO ")
    'muy a menudo'
    >>> fold("Rara Vez") == fold("rara vez")
    True
    """
    return _fold(str(text))


# Exports repeat the same few labels, sites and emails in every row and file.
@lru_cache(maxsize=1 << 18)
def _fold(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text)
    plain = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return " ".join(plain.casefold().split())


def map_distinct(values, func):
    """``values.map(func)`` calling ``func`` once per distinct value (a pandas Series).

    Examples
    --------
    >>> import pandas as pd
    >>> map_distinct(pd.Series(["A", "b", "A"]), str.lower).tolist()
    ['a', 'b', 'a']
    """
    distinct = values.unique()
    return values.map(dict(zip(distinct, map(func, distinct))))
