"""Small-cell suppression for reports: primary (n < min) and secondary (no recovery from totals)."""

from __future__ import annotations

SUPPRESSED = None  # a suppressed cell; templates print the stated reason instead


def suppress_counts(counts: dict[str, int], min_n: int, total_shown: bool = True) -> dict:
    """Counts with every cell of 1..min_n-1 hidden, plus secondary suppression.

    When the total is shown and exactly one cell is hidden, it could be
    recovered by subtraction, so the next smallest non-zero cell is hidden too.
    Zeros stay: they describe nobody.

    Examples
    --------
    >>> suppress_counts({"improved": 9, "no_change": 3, "deteriorated": 6}, 5)
    {'improved': 9, 'no_change': None, 'deteriorated': None}
    >>> suppress_counts({"a": 9, "b": 7, "c": 0}, 5)
    {'a': 9, 'b': 7, 'c': 0}
    """
    shown = {k: (SUPPRESSED if 0 < v < min_n else v) for k, v in counts.items()}
    hidden = [k for k, v in shown.items() if v is SUPPRESSED]
    if total_shown and len(hidden) == 1:
        others = sorted((v, k) for k, v in shown.items() if v not in (SUPPRESSED, 0))
        if others:
            shown[others[0][1]] = SUPPRESSED
    return shown


def enough(n: object, min_n: int) -> bool:
    """True when a figure from ``n`` people may be shown.

    Examples
    --------
    >>> enough(5, 5), enough(4, 5), enough(float("nan"), 5)
    (True, False, False)
    """
    try:
        return float(n) >= min_n
    except (TypeError, ValueError):
        return False
