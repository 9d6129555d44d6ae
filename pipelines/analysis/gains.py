"""Knowledge gain on percent-correct scores (0-100)."""

from __future__ import annotations

import numpy as np


def hake_gain(mean_pre, mean_post):
    """Hake's (1998) class-average normalized gain <g> = (post - pre) / (100 - pre).

    Elementwise on arrays of class means (a float for floats); NaN where the
    class average at pre is already 100 (or missing).

    Examples
    --------
    >>> hake_gain(40.0, 70.0)
    0.5
    >>> hake_gain(np.array([40.0, 100.0]), np.array([70.0, 90.0])).tolist()
    [0.5, nan]
    """
    pre, post = np.asarray(mean_pre, dtype=float), np.asarray(mean_post, dtype=float)
    with np.errstate(all="ignore"):
        g = np.where(np.isfinite(pre) & (pre < 100), (post - pre) / (100 - pre), np.nan)
    return float(g) if g.ndim == 0 else g


def individual_gains(pre, post) -> np.ndarray:
    """Each person's normalized gain (post - pre) / (100 - pre); NaN when pre = 100.

    Examples
    --------
    >>> individual_gains([50, 100, 80], [75, 90, 60]).tolist()
    [0.5, nan, -1.0]
    """
    pre, post = np.asarray(pre, dtype=float), np.asarray(post, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(pre < 100, (post - pre) / (100 - pre), np.nan)


def normalized_change(pre, post) -> np.ndarray:
    """Marx & Cummings (2007) normalized change c per person.

    c = (post - pre) / (100 - pre) when post > pre; (post - pre) / pre when
    post < pre; 0 when equal; NaN (the person is dropped) when pre = post = 0
    or pre = post = 100. Unlike Hake's g, c is defined at pre = 100. A score
    outside 0-100 (linear equating can produce one) gives NaN: c is not
    defined there.

    Examples
    --------
    >>> normalized_change([50, 100, 80, 60, 100, 100], [75, 90, 60, 60, 100, 104]).tolist()
    [0.5, -0.1, -0.25, 0.0, nan, nan]
    """
    pre, post = np.asarray(pre, dtype=float), np.asarray(post, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        c = np.where(post > pre, (post - pre) / (100 - pre),
                     np.where(post < pre, (post - pre) / pre, 0.0))
    dropped = (pre == post) & ((pre == 0) | (pre == 100))
    outside = (pre < 0) | (pre > 100) | (post < 0) | (post > 100)
    return np.where(dropped | outside, np.nan, c)
