"""Linear equating of knowledge-test forms through their shared anchor items.

When pre and post use different forms (counterbalanced A/B), percent correct
on the two forms is not the same ruler. Tucker linear equating (Kolen &
Brennan, 2014, ch. 4) puts every form onto the reference form's scale using
the anchor items all forms share, from the baseline wave's data, and does not
need the two form groups to be equivalent.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

MIN_PER_FORM = 10


def tucker_linear(x, v_x, y, v_y) -> tuple[float, float]:
    """(slope, intercept) putting form-Y scores on the form-X scale, Tucker method.

    Parameters
    ----------
    x, v_x : totals on form X and on the anchor, of the group that took X.
    y, v_y : totals on form Y and on the anchor, of the group that took Y.

    The synthetic population weights the two groups by their sizes. With equal
    anchor means and variances in both groups it reduces to mean-sigma
    equating: slope = sd(x)/sd(y), intercept = mean(x) - slope x mean(y).

    Examples
    --------
    >>> slope, intercept = tucker_linear([50, 60, 70], [40, 60, 80], [40, 50, 60], [40, 60, 80])
    >>> slope, intercept
    (1.0, 10.0)
    """
    x, v_x, y, v_y = (np.asarray(a, dtype=float) for a in (x, v_x, y, v_y))
    w1 = len(x) / (len(x) + len(y))
    w2 = 1 - w1
    g1 = np.cov(x, v_x)[0, 1] / v_x.var(ddof=1)
    g2 = np.cov(y, v_y)[0, 1] / v_y.var(ddof=1)
    dmu = v_x.mean() - v_y.mean()
    dvar = v_x.var(ddof=1) - v_y.var(ddof=1)
    mu_x = x.mean() - w2 * g1 * dmu
    mu_y = y.mean() + w1 * g2 * dmu
    var_x = x.var(ddof=1) - w2 * g1**2 * dvar + w1 * w2 * g1**2 * dmu**2
    var_y = y.var(ddof=1) + w1 * g2**2 * dvar + w1 * w2 * g2**2 * dmu**2
    slope = float(np.sqrt(var_x / var_y))
    return slope, float(mu_x - slope * mu_y)


def form_equating(baseline: pd.DataFrame, reference: str) -> tuple[dict, list[str]]:
    """Tucker line of every form onto ``reference`` from baseline-wave scores.

    ``baseline`` has one row per person: form, percent_correct, anchor_percent_correct.
    Returns ({form: (slope, intercept)}, flags). A form with fewer than 10
    people at baseline, or without anchor variance, cannot be equated.
    """
    lines, flags = {reference: (1.0, 0.0)}, []
    ref = baseline[baseline["form"] == reference]
    for form, grp in baseline.groupby("form"):
        if form == reference:
            continue
        if min(len(ref), len(grp)) < MIN_PER_FORM:
            flags.append(f"form_{form}_not_equated_fewer_than_{MIN_PER_FORM}")
            continue
        if ref["anchor_percent_correct"].var() == 0 or grp["anchor_percent_correct"].var() == 0:
            flags.append(f"form_{form}_not_equated_constant_anchor")
            continue
        lines[form] = tucker_linear(ref["percent_correct"], ref["anchor_percent_correct"],
                                    grp["percent_correct"], grp["anchor_percent_correct"])
    return lines, flags
