"""Text folding shared by the adapters and the mapping (no pandas, no I/O)."""

from __future__ import annotations

import unicodedata


def fold(text: object) -> str:
    """Compare-friendly text: no accents, lower case, single spaces.

    Examples
    --------
    >>> fold("  Muy a MENUDO ")
    'muy a menudo'
    >>> fold("Rara Vez") == fold("rara vez")
    True
    """
    decomposed = unicodedata.normalize("NFKD", str(text))
    plain = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return " ".join(plain.casefold().split())
