"""What the analysis' flags mean for a reader: which figures to mark, warn about or leave out.

Reports decide nothing about statistics: they ask these functions, which read
only the flags and columns the analysis wrote, so a threshold lives in one
place (the statistic that sets the flag).
"""

from __future__ import annotations

from collections.abc import Collection

import pandas as pd

from pipelines.analysis.change import MIN_PAIRS

LOW_ALPHA = "alpha_below_0.70"  # set by reliability.reliability_flags
FEW_PEOPLE = "n_below_10"  # set by reliability.reliability_flags
ROUTINE_MODEL_FLAGS = {"random_slope_dropped", "boundary_fit"}  # set by models.py


def low_reliability(flags: Collection[str]) -> bool:
    """Whether alpha is below the floor a reader should trust.

    >>> low_reliability({"alpha_below_0.70"}), low_reliability(set())
    (True, False)
    """
    return LOW_ALPHA in flags


def few_people(flags: Collection[str]) -> bool:
    """Whether reliability rests on too few people to be stable.

    >>> few_people({"n_below_10", "alpha_below_0.70"})
    True
    """
    return FEW_PEOPLE in flags


def reliability_caveat(flags: Collection[str]) -> bool:
    """Whether to warn in words that a scale measured unreliably: alpha is low on enough people
    (on too few, alpha itself is unstable, and the figure is marked as such instead).

    >>> reliability_caveat({"alpha_below_0.70"})
    True
    >>> reliability_caveat({"alpha_below_0.70", "n_below_10"})
    False
    """
    return low_reliability(flags) and not few_people(flags)


def in_meta_analysis(d_z: float, n_pairs: int) -> bool:
    """Whether a cohort's change enters the pooled (meta-analytic) effect: a d_z computed on at
    least the pairs a paired change needs.

    >>> in_meta_analysis(0.4, 12), in_meta_analysis(float("nan"), 12), in_meta_analysis(0.4, 2)
    (True, False, False)
    """
    return bool(pd.notna(d_z)) and n_pairs >= MIN_PAIRS


def model_flag_needs_care(flag: str) -> bool:
    """Whether a model's flag asks the reader for care; the routine ones (a simpler model or a
    variance at zero, expected with few cohorts) are explained once instead.

    >>> model_flag_needs_care("boundary_fit"), model_flag_needs_care("not_converged: singular")
    (False, True)
    """
    return flag.split(":")[0].strip() not in ROUTINE_MODEL_FLAGS
