"""Observer ratings: scores, inter-rater reliability, rater severity and drift, level shares.

Input everywhere is one long ``ratings`` frame, one row per rating of one item:

============  =====  ==========================================================
column        type   meaning
============  =====  ==========================================================
cohort        str    cohort id
wave          str    wave id (pre, post, ...)
participant   str    participant pseudonym (the person rated)
rater         str    rater pseudonym (the person rating)
instrument    str    rating instrument id
item          str    item id
domain        str    the item's domain (subscale)
value         float  level code of the rating; NaN when the item was not rated
============  =====  ==========================================================

A **target** is one participant at one wave (within a cohort and instrument). A
**measure** is an item (``measure_kind`` ``item``), a domain (``domain``) or the
whole instrument (``total``). A rater's score of a target on a domain or the
total is the mean of the items that rater rated in it (items left unrated do
not count); a participant's score is the mean of their raters' scores.

Design this module assumes (the one programs use): most participants are rated
once, a calibration subsample by 2 or 3 raters, and the raters differ between
participants (raters are not crossed with targets). Reliability uses only the
targets with two or more ratings of the measure.

**Headline reliability: the one-way ICC(1)** (Shrout & Fleiss 1979 case 1;
McGraw & Wong 1996 ICC(1)). A reported score comes from whichever rater(s) the
participant happened to get, so a rater's severity is part of the score's error,
and the reliability wanted is absolute agreement of a single random rater's
score. ICC(A,1) (``icc2``) targets the same quantity but needs the same raters
to rate every target to separate a rater variance; with raters nested in
targets the rater effect cannot be separated from error and the one-way model
is the correct one (McGraw & Wong 1996, case 1). ICC(1) counts rater severity
as error, so it never flatters a program whose raters disagree in level.
``icc1k`` is the reliability of the mean of ``k0`` raters (Spearman-Brown of
``icc1``), the score of the double-rated participants.

Unbalanced targets (2 and 3 raters mixed, an item left unrated): the one-way
forms use one-way random-effects ANOVA on every target with 2+ ratings, with
the effective number of raters per target ``k0 = (N - sum(k_i^2)/N) / (n - 1)``
(Searle 1971; Donner 1986) in place of ``k`` in the estimate and in the F
confidence bounds of Shrout & Fleiss; with a balanced design this is exactly
``psych::ICC``. The two-way forms (``icc2``, ``icc3``, ``icc2k``, ``icc3k``)
need a complete targets x raters matrix: they are computed on the targets
with the most common number of raters ``k_twoway`` (``n_targets_twoway`` of
them), with the raters of each target in columns ordered by rater pseudonym,
as ``psych::ICC`` does on that wide matrix. They separate a rater effect only
when the same raters rate every such target (``raters_crossed`` True); when
raters are not crossed the columns are arbitrary slots and the two-way forms
are shown for comparison only.

Krippendorff's alpha (``alpha``): ordinal for items, interval for domains and
totals, from every target with 2+ ratings (missing ratings and unequal numbers
of raters are part of the method). Ordinal alpha equals interval alpha on the
mid-ranks of the pairable values, which is how it is computed here.

References
----------
Shrout, P. E., & Fleiss, J. L. (1979). Intraclass correlations: uses in
assessing rater reliability. Psychological Bulletin, 86, 420-428.
McGraw, K. O., & Wong, S. P. (1996). Forming inferences about some intraclass
correlation coefficients. Psychological Methods, 1, 30-46.
Koo, T. K., & Li, M. Y. (2016). A guideline of selecting and reporting
intraclass correlation coefficients for reliability research. Journal of
Chiropractic Medicine, 15, 155-163.
Krippendorff, K. (2011). Computing Krippendorff's alpha-reliability.
Annenberg School for Communication, University of Pennsylvania.
Cohen, J. (1968). Weighted kappa. Psychological Bulletin, 70, 213-220.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from pipelines.schema import POOLED

RATING_COLUMNS = ["cohort", "wave", "participant", "rater", "instrument", "item", "domain",
                  "value"]
TARGET = ["cohort", "instrument", "participant", "wave"]
MEASURE = ["measure_kind", "measure"]
TOTAL = "total"
CI_LEVEL = 0.95
# Below this many targets with 2+ ratings, agreement_level is not_estimable (the bands of Koo
# & Li 2016 assume a study of at least 30; 10 keeps small cohorts readable with a wide CI).
MIN_TARGETS = 10
# Koo & Li (2016): poor < 0.50 <= moderate < 0.75 <= good < 0.90 <= excellent.
AGREEMENT_BANDS = ((0.50, "poor"), (0.75, "moderate"), (0.90, "good"), (np.inf, "excellent"))
NOT_ESTIMABLE = "not_estimable"
HEADLINE_FORM = "icc1"
ICC_FORMS = ("icc1", "icc2", "icc3", "icc1k", "icc2k", "icc3k")
# A rater is outside the calibration band when their severity is further than this from the
# other raters, in level units, and its CI excludes 0. Half a level: a rater who moves half
# the participants one level.
SEVERITY_BAND = 0.5
DRIFT_BAND = 0.5
# Severity needs this many targets shared with other raters to be flagged at all.
MIN_SHARED = 5

INTERRATER_COLUMNS = (
    ["cohort", "instrument", "measure_kind", "measure", "n_targets", "n_raters", "n_ratings",
     "k_mean", "k0"]
    + [f"{form}{suffix}" for form in ICC_FORMS for suffix in ("", "_ci_low", "_ci_high")]
    + ["n_targets_twoway", "k_twoway", "raters_crossed", "alpha", "alpha_metric",
       "kappa_quadratic", "n_targets_kappa", "n_pairs", "exact_agreement", "adjacent_agreement",
       "headline", "headline_ci_low", "headline_ci_high", "headline_form", "agreement_level",
       "agreement_level_low", "agreement_level_high"]
)
RATERS_COLUMNS = ["cohort", "instrument", "measure_kind", "measure", "rater", "wave",
                  "n_targets", "severity", "sd", "se", "ci_low", "ci_high", "outside_band",
                  "direction", "drift", "drift_se", "drift_ci_low", "drift_ci_high",
                  "drift_from", "drift_to", "drifting"]
LEVEL_COLUMNS = ["cohort", "instrument", "wave", "measure_kind", "measure", "level", "n_level",
                 "n_ratings", "share", "share_harmful", "share_helpful_or_above"]


# --------------------------------------------------------------------------- input


def _compact(*codes: np.ndarray) -> np.ndarray:
    """A dense code 0..n-1 per distinct combination of non-negative integer code arrays."""
    key = np.zeros(len(codes[0]), dtype=np.int64)
    span = 1
    for code in codes:
        code = np.asarray(code, dtype=np.int64)
        width = int(code.max()) + 1 if len(code) else 1
        if span * width >= 2 ** 62:
            key = pd.factorize(key)[0].astype(np.int64)
            span = _size(key)
        key = key * width + code
        span *= width
    return pd.factorize(key)[0].astype(np.int64)


def _size(codes: np.ndarray) -> int:
    return int(codes.max()) + 1 if len(codes) else 0


def _one_row_of(codes: np.ndarray) -> np.ndarray:
    """A row index per code (any row: for attributes that are constant within a code)."""
    index = np.zeros(_size(codes), dtype=np.int64)
    index[codes] = np.arange(len(codes))
    return index


def _sums(codes: np.ndarray, size: int, weights: np.ndarray | None = None) -> np.ndarray:
    return np.bincount(codes, weights=weights, minlength=size).astype(float)


def _validated(ratings: pd.DataFrame) -> tuple[pd.DataFrame, dict, dict]:
    """The checked frame, integer codes of its text columns and their labels (sorted)."""
    missing = [c for c in RATING_COLUMNS if c not in ratings.columns]
    if missing:
        raise ValueError(f"ratings: missing columns {', '.join(missing)}")
    frame = ratings[RATING_COLUMNS].copy()
    frame["value"] = pd.to_numeric(frame["value"], errors="raise").astype(float)
    if frame["rater"].isna().any():
        raise ValueError(f"ratings: {int(frame['rater'].isna().sum())} rating(s) with no rater")
    codes, labels = {}, {}
    for column in RATING_COLUMNS[:-1]:
        codes[column], uniques = pd.factorize(frame[column], sort=True)
        labels[column] = np.asarray(uniques, dtype=object)
    rated = frame["value"].notna().to_numpy()
    key = _compact(*(codes[c][rated] for c in TARGET + ["rater", "item"]))
    twice = len(key) - _size(key)
    if twice:
        raise ValueError(f"ratings: {twice} item rating(s) given twice by the same "
                         "rater to the same participant at the same wave")
    return frame, codes, labels


def check_ratings(ratings: pd.DataFrame) -> pd.DataFrame:
    """The ratings with the documented columns, values as float; one clear error otherwise.

    Raises ``ValueError`` naming what is wrong: a missing column, a rating
    with no rater, or one rater rating one target's item twice.

    Examples
    --------
    >>> check_ratings(pd.DataFrame({"cohort": ["c"]}))
    Traceback (most recent call last):
    ...
    ValueError: ratings: missing columns wave, participant, rater, instrument, item, domain, value
    """
    return _validated(ratings)[0]


class _Scored:
    """Every rater's rating or scale score of every target, as integer codes (internal).

    Rows: one per rater x target x measure, ``kind`` 0 item, 1 domain, 2 total
    and ``code`` the item or domain code (0 for total). ``rt`` numbers the
    rater x target pairs; ``of_rt[column]`` gives their cohort, instrument,
    participant, wave and rater codes; ``labels[column]`` the sorted labels,
    so rater codes follow pseudonym order.
    """

    KINDS = np.array(["item", "domain", "total"], dtype=object)

    def __init__(self, ratings: pd.DataFrame):
        frame, codes, self.labels = _validated(ratings)
        rated = frame["value"].notna().to_numpy()
        codes = {c: v[rated] for c, v in codes.items()}
        value = frame["value"].to_numpy(dtype=float)[rated]
        rt = _compact(*(codes[c] for c in TARGET + ["rater"]))
        self.of_rt = {c: codes[c][_one_row_of(rt)] for c in TARGET + ["rater"]}
        n_rt = _size(rt)
        by_domain = _compact(rt, codes["domain"])
        domain_row = _one_row_of(by_domain)
        n_dom = _size(by_domain)
        with np.errstate(invalid="ignore", divide="ignore"):
            domain_score = _sums(by_domain, n_dom, value) / _sums(by_domain, n_dom)
            total_score = _sums(rt, n_rt, value) / _sums(rt, n_rt)
        self.rt = np.concatenate([rt, rt[domain_row], np.arange(n_rt)])
        self.kind = np.repeat(np.arange(3), [len(rt), n_dom, n_rt])
        self.code = np.concatenate([codes["item"], codes["domain"][domain_row],
                                    np.zeros(n_rt, dtype=np.int64)])
        self.value = np.concatenate([value, domain_score, total_score])
        self.target_of_rt = _compact(*(self.of_rt[c] for c in TARGET))

    def at(self, column: str, rows=slice(None)) -> np.ndarray:
        """The code of ``column`` (a TARGET column or rater) of each row."""
        return self.of_rt[column][self.rt[rows]]

    def label(self, column: str, codes: np.ndarray) -> np.ndarray:
        return self.labels[column][codes]

    def measure_labels(self, kind: np.ndarray, code: np.ndarray) -> np.ndarray:
        items = self.labels["item"][np.minimum(code, len(self.labels["item"]) - 1)]
        domains = self.labels["domain"][np.minimum(code, len(self.labels["domain"]) - 1)]
        return np.where(kind == 0, items, np.where(kind == 1, domains, TOTAL)).astype(object)

    def target(self, rows=slice(None)) -> np.ndarray:
        """A code per (participant x wave target, measure) of each row."""
        return _compact(self.target_of_rt[self.rt[rows]], self.kind[rows], self.code[rows])

    def frame(self) -> pd.DataFrame:
        out = pd.DataFrame({c: self.label(c, self.at(c)) for c in TARGET + ["rater"]})
        out["measure_kind"] = self.KINDS[self.kind]
        out["measure"] = self.measure_labels(self.kind, self.code)
        out["value"] = self.value
        return out.astype({c: str for c in TARGET + ["rater"] + MEASURE})


def rater_scores(ratings: pd.DataFrame) -> pd.DataFrame:
    """One row per target x rater x measure: the rater's rating or scale score.

    Output columns: ``cohort``, ``instrument``, ``participant``, ``wave``,
    ``rater``, ``measure_kind`` (item, domain, total), ``measure`` (item id,
    domain id, or ``total``), ``value``. An item's value is the rating; a
    domain's (total's) value is the mean of the items the rater rated in the
    domain (instrument). Unrated items (NaN) are left out.

    Examples
    --------
    >>> r = pd.DataFrame({"cohort": "c", "wave": "pre", "participant": "p", "rater": "r",
    ...                   "instrument": "role", "item": ["i1", "i2", "i3"],
    ...                   "domain": ["d1", "d1", "d2"], "value": [1.0, 2.0, np.nan]})
    >>> rater_scores(r)[["measure_kind", "measure", "value"]]
      measure_kind measure  value
    0         item      i1    1.0
    1         item      i2    2.0
    2       domain      d1    1.5
    3        total   total    1.5
    """
    return _Scored(ratings).frame()


def rated_scores(ratings: pd.DataFrame) -> pd.DataFrame:
    """A participant's score per wave and scale: the mean over raters of each rater's score.

    A rater's scale score is the mean of the items that rater rated in the
    scale (a domain, or all items for ``total``); the participant's ``score``
    is the unweighted mean of those rater scores, so each rater counts once
    whatever number of items they rated.

    Output columns: ``cohort``, ``instrument``, ``participant``, ``wave``,
    ``scale`` (domain id or ``total``), ``score``, ``n_raters``.

    Examples
    --------
    >>> r = pd.DataFrame({"cohort": "c", "wave": "pre", "participant": "p",
    ...                   "rater": ["a", "a", "b", "b"], "instrument": "role",
    ...                   "item": ["i1", "i2", "i1", "i2"], "domain": "d",
    ...                   "value": [1.0, 2.0, 3.0, np.nan]})
    >>> rated_scores(r)[["scale", "score", "n_raters"]]
      scale  score  n_raters
    0     d   2.25         2
    1 total   2.25         2
    """
    scored = _Scored(ratings)
    rows = scored.kind > 0
    t = scored.target(rows)
    n_t = _size(t)
    first = np.flatnonzero(rows)[_one_row_of(t)]
    n_raters = _sums(t, n_t)
    out = pd.DataFrame({c: scored.label(c, scored.at(c, first)) for c in TARGET})
    out["scale"] = scored.measure_labels(scored.kind[first], scored.code[first])
    out["score"] = _sums(t, n_t, scored.value[rows]) / n_raters
    out["n_raters"] = n_raters.astype(np.int64)
    out = out.astype({c: str for c in TARGET + ["scale"]})
    return out.sort_values(TARGET + ["scale"]).reset_index(drop=True)


# --------------------------------------------------------------------------- grouped arrays


class _Design:
    """Ratings of many groups as flat arrays: group ``g``, target ``t``, rater ``r``, value ``x``.

    Only targets with 2+ ratings of their measure are kept. Targets are
    renumbered 0..T-1 (a target belongs to one group) and the rows sorted by
    target, then rater code (pseudonym order); ``slot`` is a row's position
    within its target.
    """

    def __init__(self, g, t, r, x, n_groups):
        keep = np.bincount(t)[t] >= 2
        g, t, r, x = g[keep], t[keep], r[keep], x[keep]
        present = np.bincount(t) > 0
        t = (np.cumsum(present) - 1)[t]
        order = np.argsort(t * (_size(r) or 1) + r, kind="stable")
        self.g, self.t, self.r, self.x = g[order], t[order], r[order], x[order]
        self.G, self.T = n_groups, _size(t)
        counts = np.bincount(self.t, minlength=self.T)
        self.m = counts.astype(float)
        self.slot = np.arange(len(self.t)) - (np.cumsum(counts) - counts)[self.t]
        self.target_group = np.zeros(self.T, dtype=np.int64)
        self.target_group[self.t] = self.g

    def group_sum(self, weights=None):
        return _sums(self.g, self.G, weights)

    def target_sum(self, weights=None):
        return _sums(self.t, self.T, weights)

    def per_target_to_group(self, values):
        return _sums(self.target_group, self.G, values)

    def centred(self, x):
        """Values minus their group mean (sums of squares stay exact at any level)."""
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = self.group_sum(x) / self.group_sum()
        return x - mean[self.g]

    def pairs(self) -> tuple[np.ndarray, np.ndarray]:
        """Row indices (first, second) of every pair of ratings of one target."""
        first, second = [], []
        rows = np.arange(len(self.t))
        for offset in range(1, int(self.m.max()) if self.T else 1):
            i = rows[self.slot + offset < self.m[self.t]]
            first.append(i)
            second.append(i + offset)
        if not first:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
        return np.concatenate(first), np.concatenate(second)


def _f_bounds(f, df1, df2, level=CI_LEVEL):
    """F divided (lower) and multiplied (upper) by the F quantiles, as Shrout & Fleiss."""
    q = 1 - (1 - level) / 2
    with np.errstate(invalid="ignore", divide="ignore"):
        low = f / stats.f.ppf(q, df1, df2)
        high = f * stats.f.ppf(q, df2, df1)
    return low, high


def _oneway(d: _Design) -> dict[str, np.ndarray]:
    """ICC(1) and ICC(1,k0) with Shrout-Fleiss F bounds, unbalanced one-way ANOVA (k0)."""
    xc = d.centred(d.x)
    big_n = d.group_sum()
    n = d.per_target_to_group(np.ones(d.T))
    s_t = d.target_sum(xc)
    ssb = d.per_target_to_group(s_t ** 2 / d.m)
    ssw = d.group_sum(xc ** 2) - ssb
    with np.errstate(invalid="ignore", divide="ignore"):
        k0 = (big_n - d.per_target_to_group(d.m ** 2) / big_n) / (n - 1)
        msb, msw = ssb / (n - 1), ssw / (big_n - n)
        msw = np.where(np.isclose(ssw, 0, atol=1e-12), 0.0, msw)
        icc1 = (msb - msw) / (msb + (k0 - 1) * msw)
        icc1k = (msb - msw) / msb
        f_low, f_high = _f_bounds(msb / msw, n - 1, big_n - n)
        out = {"k0": k0, "k_mean": big_n / n, "n_targets": n, "n_ratings": big_n,
               "icc1": icc1, "icc1_ci_low": 1 - k0 / (f_low + k0 - 1),
               "icc1_ci_high": 1 - k0 / (f_high + k0 - 1),
               "icc1k": icc1k, "icc1k_ci_low": 1 - 1 / f_low, "icc1k_ci_high": 1 - 1 / f_high}
    return out


def _modal_k_targets(d: _Design) -> tuple[np.ndarray, np.ndarray]:
    """Per group the most common number of ratings per target (ties: the smaller), and a mask
    of the rows of targets that have it."""
    m = d.m.astype(np.int64)
    k_max = int(m.max()) if len(m) else 2
    counts = np.bincount(d.target_group * (k_max + 1) + m,
                         minlength=d.G * (k_max + 1)).reshape(d.G, k_max + 1)
    modal = counts.argmax(axis=1)
    return modal, m[d.t] == modal[d.g]


def _twoway(d: _Design) -> dict[str, np.ndarray]:
    """ICC(2), ICC(3) and their k forms on the targets with the modal k, as psych::ICC."""
    modal, rows = _modal_k_targets(d)
    sub = _Design(d.g[rows], d.t[rows], d.r[rows], d.x[rows], d.G)
    g, r, x = sub.g, sub.r, sub.x
    k = modal.astype(float)
    xc = sub.centred(x)
    n = sub.per_target_to_group(np.ones(sub.T))
    ss_rows = sub.per_target_to_group(sub.target_sum(xc) ** 2 / sub.m)
    k_max = int(modal.max()) if len(modal) else 2
    column = g * k_max + sub.slot
    col_sum = _sums(column, d.G * k_max, xc).reshape(d.G, k_max)
    with np.errstate(invalid="ignore", divide="ignore"):
        ss_cols = (col_sum ** 2).sum(axis=1) / n
        ss_err = sub.group_sum(xc ** 2) - ss_rows - ss_cols
        ss_err = np.where(np.isclose(ss_err, 0, atol=1e-12), 0.0, ss_err)
        msb, msj = ss_rows / (n - 1), ss_cols / (k - 1)
        mse = ss_err / ((n - 1) * (k - 1))
        icc2 = (msb - mse) / (msb + (k - 1) * mse + k * (msj - mse) / n)
        icc3 = (msb - mse) / (msb + (k - 1) * mse)
        f3_low, f3_high = _f_bounds(msb / mse, n - 1, (n - 1) * (k - 1))
        fj = msj / mse
        vn = (k - 1) * (n - 1) * (k * icc2 * fj + n * (1 + (k - 1) * icc2) - k * icc2) ** 2
        vd = (n - 1) * k ** 2 * icc2 ** 2 * fj ** 2 + (n * (1 + (k - 1) * icc2) - k * icc2) ** 2
        v = vn / vd
        q = 1 - (1 - CI_LEVEL) / 2
        fu, fl = stats.f.ppf(q, n - 1, v), stats.f.ppf(q, v, n - 1)
        denominator = k * msj + (k * n - k - n) * mse
        low2 = n * (msb - fu * mse) / (fu * denominator + n * msb)
        high2 = n * (fl * msb - mse) / (denominator + n * fl * msb)
        out = {"n_targets_twoway": n, "k_twoway": np.where(n > 0, k, np.nan),
               "icc2": icc2, "icc2_ci_low": low2, "icc2_ci_high": high2,
               "icc3": icc3, "icc3_ci_low": 1 - k / (f3_low + k - 1),
               "icc3_ci_high": 1 - k / (f3_high + k - 1),
               "icc2k": (msb - mse) / (msb + (msj - mse) / n),
               "icc2k_ci_low": low2 * k / (1 + low2 * (k - 1)),
               "icc2k_ci_high": high2 * k / (1 + high2 * (k - 1)),
               "icc3k": (msb - mse) / msb, "icc3k_ci_low": 1 - 1 / f3_low,
               "icc3k_ci_high": 1 - 1 / f3_high}
    # Crossed: each column (slot) of a group holds one and the same rater on every target.
    per_slot = _distinct_per_group(column, r, d.G * k_max).reshape(d.G, k_max)
    used = np.arange(k_max) < modal[:, None]
    out["raters_crossed"] = (n > 0) & np.where(used, per_slot == 1, True).all(axis=1)
    return out


def _distinct_per_group(g: np.ndarray, r: np.ndarray, size: int) -> np.ndarray:
    """Number of distinct values of ``r`` in each group ``g``."""
    width = _size(r) or 1
    distinct = pd.unique(np.asarray(g, dtype=np.int64) * width + r)
    return _sums(distinct // width, size)


def _alpha_interval(d: _Design, x: np.ndarray) -> np.ndarray:
    """Krippendorff's alpha with the interval metric (squared differences), per group.

    D_o = sum over units of (sum over ordered pairs in the unit of delta) / (m_u - 1) / n;
    D_e = (sum over ordered pairs of all pairable values of delta) / (n (n - 1)).
    For delta = (a - b)^2 an ordered-pair sum is 2 (m sum a^2 - (sum a)^2).
    """
    xc = d.centred(x)
    s_t, q_t = d.target_sum(xc), d.target_sum(xc ** 2)
    within = d.per_target_to_group(2 * (d.m * q_t - s_t ** 2) / (d.m - 1))
    big_n = d.group_sum()
    total = 2 * (big_n * d.group_sum(xc ** 2) - d.group_sum(xc) ** 2)
    with np.errstate(invalid="ignore", divide="ignore"):
        observed = within / big_n
        expected = total / (big_n * (big_n - 1))
        return 1 - observed / expected


def _midranks(d: _Design) -> np.ndarray:
    """Each pairable value's average rank within its group (ordinal alpha's metric):
    the count of smaller values in the group plus (count of equal values + 1) / 2."""
    levels, level = np.unique(d.x, return_inverse=True)
    if d.G * len(levels) > 5e7:
        return pd.Series(d.x).groupby(d.g).rank(method="average").to_numpy()
    counts = _sums(d.g * len(levels) + level, d.G * len(levels)).reshape(d.G, len(levels))
    below = np.cumsum(counts, axis=1) - counts
    return below[d.g, level] + (counts[d.g, level] + 1) / 2


def _pairs(d: _Design) -> dict[str, np.ndarray]:
    """Every pair of ratings of one target, the first by the rater whose pseudonym sorts
    first: group ``g``, values ``a`` and ``b``, the target's number of ratings ``m``."""
    first, second = d.pairs()
    return {"g": d.g[first], "a": d.x[first], "b": d.x[second], "m": d.m[d.t[first]]}


def _agreement(pairs: dict[str, np.ndarray], size: int) -> dict[str, np.ndarray]:
    """Share of rater pairs agreeing exactly and within one level code."""
    g = pairs["g"]
    gap = np.abs(pairs["a"] - pairs["b"])
    n_pairs = _sums(g, size)
    with np.errstate(invalid="ignore", divide="ignore"):
        return {"n_pairs": n_pairs,
                "exact_agreement": _sums(g, size, (gap < 1e-9).astype(float)) / n_pairs,
                "adjacent_agreement": _sums(g, size, (gap <= 1 + 1e-9).astype(float)) / n_pairs}


def _kappa_quadratic(pairs: dict[str, np.ndarray], size: int) -> dict[str, np.ndarray]:
    """Cohen's quadratic-weighted kappa on the targets with exactly two ratings.

    kappa = 1 - mean((a - b)^2) / [var(a) + var(b) + (mean(a) - mean(b))^2]
    (population moments): observed over chance-expected squared disagreement,
    Cohen's weighted kappa with weights (a - b)^2 on the level codes.
    """
    two = pairs["m"] == 2
    g, a, b = pairs["g"][two], pairs["a"][two], pairs["b"][two]
    n = _sums(g, size)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_a, mean_b = _sums(g, size, a) / n, _sums(g, size, b) / n
        var_a = _sums(g, size, a * a) / n - mean_a ** 2
        var_b = _sums(g, size, b * b) / n - mean_b ** 2
        observed = _sums(g, size, (a - b) ** 2) / n
        expected = var_a + var_b + (mean_a - mean_b) ** 2
        kappa = np.where(n >= 2, 1 - observed / expected, np.nan)
    return {"kappa_quadratic": kappa, "n_targets_kappa": n}


def agreement_level(estimate, n_targets=None, min_targets: int = MIN_TARGETS) -> np.ndarray:
    """Koo & Li (2016) band of an ICC: poor, moderate, good, excellent, or not_estimable.

    poor < 0.50 <= moderate < 0.75 <= good < 0.90 <= excellent; ``not_estimable``
    for NaN or fewer than ``min_targets`` targets.

    Examples
    --------
    >>> agreement_level([0.3, 0.5, 0.8, 0.95, np.nan]).tolist()
    ['poor', 'moderate', 'good', 'excellent', 'not_estimable']
    >>> agreement_level([0.8], n_targets=[4]).tolist()
    ['not_estimable']
    """
    est = np.atleast_1d(np.asarray(estimate, dtype=float))
    bounds = np.array([b for b, _ in AGREEMENT_BANDS[:-1]])
    names = np.array([name for _, name in AGREEMENT_BANDS], dtype=object)
    level = names[np.searchsorted(bounds, np.nan_to_num(est, nan=0.0), side="right")]
    unknown = np.isnan(est)
    if n_targets is not None:
        unknown |= np.atleast_1d(np.asarray(n_targets, dtype=float)) < min_targets
    return np.where(unknown, NOT_ESTIMABLE, level).astype(object)


def spearman_brown(reliability, k) -> np.ndarray:
    """Reliability of the mean of ``k`` raters from a single rater's: k r / (1 + (k - 1) r).

    Examples
    --------
    >>> float(spearman_brown(0.5, 2))
    0.6666666666666666
    """
    r, k = np.asarray(reliability, dtype=float), np.asarray(k, dtype=float)
    return k * r / (1 + (k - 1) * r)


# --------------------------------------------------------------------------- tables


def _group_keys(scored: _Scored, rows: np.ndarray, g: np.ndarray, columns: list[str],
                cohort: str | None = None) -> pd.DataFrame:
    """Labels of each group code: ``columns`` (TARGET columns or rater), measure_kind, measure;
    ``cohort`` given: that label in the cohort column (the pooled rows)."""
    first = rows[_one_row_of(g)]
    keys = pd.DataFrame({c: scored.label(c, scored.at(c, first)) for c in columns})
    if cohort is not None:
        keys.insert(0, "cohort", cohort)
    keys["measure_kind"] = scored.KINDS[scored.kind[first]]
    keys["measure"] = scored.measure_labels(scored.kind[first], scored.code[first])
    return keys.astype(str)


def _grouping(scored: _Scored, rows: np.ndarray, columns: list[str], pooled: str | None
              ) -> tuple[np.ndarray, pd.DataFrame, np.ndarray, np.ndarray]:
    """Group codes of ``rows`` by cohort x ``columns`` x measure, then (when ``pooled``)
    the same rows again grouped over all cohorts. Returns the codes, the keys of the codes,
    the row each code belongs to (``rows``, twice with pooled) and the copy (0, 1 pooled)."""
    measure = (scored.kind[rows], scored.code[rows])
    by_cohort = _compact(scored.at("cohort", rows), *(scored.at(c, rows) for c in columns),
                         *measure)
    keys = [_group_keys(scored, rows, by_cohort, ["cohort"] + columns)]
    codes, which = [by_cohort], [rows]
    if pooled is not None:
        program = _compact(*(scored.at(c, rows) for c in columns), *measure)
        keys.append(_group_keys(scored, rows, program, columns, cohort=pooled))
        codes.append(program + len(keys[0]))
        which.append(rows)
    copy = np.repeat(np.arange(len(which)), len(rows))
    return (np.concatenate(codes), pd.concat(keys, ignore_index=True), np.concatenate(which),
            copy)


def _reliability_design(scored: _Scored, pooled: str | None) -> tuple[pd.DataFrame, _Design]:
    """Group keys (cohort, instrument, measure_kind, measure) and the design of their
    targets with 2+ ratings; the pooled groups' targets are copies with new numbers."""
    t = scored.target()
    rows = np.flatnonzero(np.bincount(t)[t] >= 2)
    g, keys, which, copy = _grouping(scored, rows, ["instrument"], pooled)
    t = t[which] + copy * _size(t)
    design = _Design(g, t, scored.at("rater", which), scored.value[which], len(keys))
    return keys, design


def icc_forms(data: pd.DataFrame, target: str = "target", rater: str = "rater",
              value: str = "value") -> pd.DataFrame:
    """The six Shrout-Fleiss / McGraw-Wong ICCs with 95% CIs for one long data set.

    ``data`` holds one row per rating: the target rated, the rater, the value.
    Targets with fewer than 2 ratings are dropped. One-way forms use all
    remaining targets (unbalanced: ``k0``); two-way forms the targets with the
    modal number of raters (see the module docstring).

    Output: one row per form (``form`` icc1 ... icc3k) with ``estimate``,
    ``ci_low``, ``ci_high``.

    Examples
    --------
    Shrout & Fleiss (1979), 6 targets x 4 judges:

    >>> sf = [[9, 2, 5, 8], [6, 1, 3, 2], [8, 4, 6, 8], [7, 1, 2, 6], [10, 5, 6, 9], [6, 2, 4, 7]]
    >>> long = pd.DataFrame([(t, j, v) for t, row in enumerate(sf) for j, v in enumerate(row)],
    ...                     columns=["target", "rater", "value"])
    >>> icc_forms(long).set_index("form")["estimate"].round(2).tolist()
    [0.17, 0.29, 0.71, 0.44, 0.62, 0.91]
    """
    t = pd.factorize(data[target])[0]
    r = pd.factorize(data[rater], sort=True)[0]
    d = _Design(np.zeros(len(t), dtype=np.int64), t, r,
                data[value].to_numpy(dtype=float), 1)
    found = _oneway(d) | _twoway(d)
    return pd.DataFrame({"form": list(ICC_FORMS),
                         "estimate": [float(found[f][0]) for f in ICC_FORMS],
                         "ci_low": [float(found[f"{f}_ci_low"][0]) for f in ICC_FORMS],
                         "ci_high": [float(found[f"{f}_ci_high"][0]) for f in ICC_FORMS]})


def krippendorff_alpha(reliability_data, level_of_measurement: str = "interval") -> float:
    """Krippendorff's alpha of a raters x units matrix (NaN = not rated).

    ``level_of_measurement``: ``nominal``, ``ordinal`` or ``interval``; same
    interface as ``krippendorff.alpha`` (used as this function's test oracle).

    Examples
    --------
    Krippendorff (2011), 4 observers x 12 units with missing values:

    >>> nan = np.nan
    >>> data = [[1, 2, 3, 3, 2, 1, 4, 1, 2, nan, nan, nan],
    ...         [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, nan, 3],
    ...         [nan, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, nan],
    ...         [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, nan]]
    >>> [round(krippendorff_alpha(data, m), 3) for m in ("nominal", "ordinal", "interval")]
    [0.743, 0.815, 0.849]
    """
    matrix = np.asarray(reliability_data, dtype=float)
    raters, units = np.nonzero(~np.isnan(matrix))
    d = _Design(np.zeros(len(units), dtype=np.int64), units, raters, matrix[raters, units], 1)
    if level_of_measurement == "interval":
        return float(_alpha_interval(d, d.x)[0])
    if level_of_measurement == "ordinal":
        return float(_alpha_interval(d, _midranks(d))[0])
    if level_of_measurement == "nominal":
        return float(_alpha_nominal(d)[0])
    raise ValueError(f"level_of_measurement must be nominal, ordinal or interval, "
                     f"not {level_of_measurement!r}")


def _alpha_nominal(d: _Design) -> np.ndarray:
    """Nominal alpha: delta = 1 when values differ (ordered-pair sum m^2 - sum of n_c^2)."""
    value = pd.factorize(d.x)[0]
    n_values = int(value.max()) + 1 if len(value) else 1
    unit_counts = _sums(d.t * n_values + value, d.T * n_values).reshape(d.T, n_values)
    within = d.per_target_to_group((d.m ** 2 - (unit_counts ** 2).sum(axis=1)) / (d.m - 1))
    group_counts = _sums(d.g * n_values + value, d.G * n_values).reshape(d.G, n_values)
    big_n = d.group_sum()
    with np.errstate(invalid="ignore", divide="ignore"):
        observed = within / big_n
        expected = (big_n ** 2 - (group_counts ** 2).sum(axis=1)) / (big_n * (big_n - 1))
        return 1 - observed / expected


def interrater_table(ratings: pd.DataFrame, pooled: str | None = POOLED,
                     min_targets: int = MIN_TARGETS) -> pd.DataFrame:
    """Inter-rater reliability per cohort (and program-wide), instrument and measure.

    Only targets (participant x wave) with 2+ ratings of the measure count.
    Rows: one per ``cohort`` (plus ``cohort == pooled``: all cohorts together;
    ``pooled=None`` for none) x ``instrument`` x ``measure_kind`` (item,
    domain, total) x ``measure``; only measures with at least one such target.

    Columns (wide: one column per statistic, bounds as ``<stat>_ci_low`` /
    ``<stat>_ci_high``, 95%):

    - ``n_targets`` targets with 2+ ratings, ``n_raters`` distinct raters among
      them, ``n_ratings`` ratings, ``k_mean`` ratings per target, ``k0`` the
      effective k of the unbalanced one-way ANOVA;
    - ``icc1``, ``icc1k`` (one-way, all targets, k0), ``icc2``, ``icc3``,
      ``icc2k``, ``icc3k`` (two-way on the ``n_targets_twoway`` targets with
      the modal ``k_twoway`` raters; ``raters_crossed`` says whether the same
      raters rated them all), each with ``_ci_low`` and ``_ci_high``;
    - ``alpha`` Krippendorff's alpha, ``alpha_metric`` ordinal (items) or
      interval (domains, totals);
    - ``kappa_quadratic`` Cohen's quadratic-weighted kappa over the
      ``n_targets_kappa`` targets with exactly two ratings (raters ordered by
      pseudonym; items only, NaN for domains and totals and with < 2 targets);
    - ``n_pairs`` rater pairs within targets, ``exact_agreement`` and
      ``adjacent_agreement``: share of pairs at the same level / within one
      level code (items only; level codes are consecutive integers);
    - ``headline`` (= ``icc1``, see the module docstring) with
      ``headline_ci_low``/``headline_ci_high``, ``headline_form`` (``icc1``),
      ``agreement_level`` the Koo & Li (2016) band of the headline
      (``not_estimable`` below ``min_targets`` targets or when undefined) and
      ``agreement_level_low``/``agreement_level_high`` the bands of its CI
      bounds (Koo & Li read the band off the CI).

    Examples
    --------
    >>> from pipelines.analysis.interrater import example_ratings
    >>> table = interrater_table(example_ratings())
    >>> table.query("cohort == 'ALL' and measure == 'total'")[
    ...     ["n_targets", "icc1", "headline_form", "agreement_level"]].round(2)
       n_targets  icc1 headline_form agreement_level
    6         25  0.86          icc1            good
    """
    keys, d = _reliability_design(_Scored(ratings), pooled)
    if d.T == 0:
        return pd.DataFrame(columns=INTERRATER_COLUMNS)
    out = keys.copy()
    for part in (_oneway(d), _twoway(d)):
        for name, values in part.items():
            out[name] = values
    out["n_raters"] = _distinct_per_group(d.g, d.r, d.G)
    is_item = (out["measure_kind"] == "item").to_numpy()
    alpha_interval = _alpha_interval(d, d.x)
    alpha_ordinal = _alpha_interval(d, _midranks(d))
    out["alpha"] = np.where(is_item, alpha_ordinal, alpha_interval)
    out["alpha_metric"] = np.where(is_item, "ordinal", "interval")
    pairs = _pairs(d)
    for name, values in (_kappa_quadratic(pairs, d.G) | _agreement(pairs, d.G)).items():
        out[name] = values
    for name in ("kappa_quadratic", "exact_agreement", "adjacent_agreement"):
        out.loc[~is_item, name] = np.nan
    out["headline"] = out[HEADLINE_FORM]
    out["headline_ci_low"] = out[f"{HEADLINE_FORM}_ci_low"]
    out["headline_ci_high"] = out[f"{HEADLINE_FORM}_ci_high"]
    out["headline_form"] = HEADLINE_FORM
    n = out["n_targets"].to_numpy()
    for column, source in (("agreement_level", "headline"), ("agreement_level_low",
                           "headline_ci_low"), ("agreement_level_high", "headline_ci_high")):
        out[column] = agreement_level(out[source], n, min_targets)
    out = out[out["n_targets"] > 0]
    for column in ("n_targets", "n_raters", "n_ratings", "n_targets_twoway", "n_targets_kappa",
                   "n_pairs"):
        out[column] = out[column].astype(np.int64)
    out["raters_crossed"] = out["raters_crossed"].astype(bool)
    out = out.sort_values(["cohort", "instrument"] + MEASURE)
    return out[INTERRATER_COLUMNS].reset_index(drop=True)


def score_reliability(ratings: pd.DataFrame, table: pd.DataFrame | None = None,
                      pooled: str | None = POOLED, min_targets: int = MIN_TARGETS
                      ) -> pd.DataFrame:
    """The reliability of a rated scale's reported score, for the RCI.

    A participant's score is the mean of their raters' scores, so its
    reliability is ICC(1) stepped up by Spearman-Brown to the typical number
    of raters per target: ``k_typical`` is the most common number of raters
    over *all* targets of the cohort and instrument (usually 1: then
    ``reliability`` = ``icc1``). ``icc1`` is the cohort's when it has
    ``min_targets`` targets with 2+ ratings, else the program-wide one
    (``icc_source`` cohort or pooled; NaN when neither is estimable).

    ``table``: an ``interrater_table`` of the same ratings (computed when None).

    Output columns: ``cohort``, ``instrument``, ``scale`` (domain id or
    ``total``), ``icc1``, ``icc_source``, ``k_typical``, ``reliability``.

    Examples
    --------
    >>> from pipelines.analysis.interrater import example_ratings
    >>> rel = score_reliability(example_ratings())
    >>> rel.query("scale == 'total'")[["cohort", "k_typical", "icc_source"]]
      cohort  k_typical icc_source
    2    ALL          1     pooled
    5     c1          1     cohort
    8     c2          1     cohort
    """
    if table is None:
        table = interrater_table(ratings, pooled=pooled, min_targets=min_targets)
    scores = rated_scores(ratings)
    frames = [scores]
    if pooled is not None:
        frames.append(scores.assign(cohort=pooled))
    scores = pd.concat(frames, ignore_index=True)
    typical = (scores.groupby(["cohort", "instrument", "scale", "n_raters"], observed=True)
               .size().rename("count").reset_index()
               .sort_values(["count", "n_raters"], ascending=[False, True])
               .drop_duplicates(["cohort", "instrument", "scale"])
               .rename(columns={"n_raters": "k_typical"})
               [["cohort", "instrument", "scale", "k_typical"]])
    scales = table[table["measure_kind"] != "item"].rename(columns={"measure": "scale"})
    usable = scales[scales["n_targets"] >= min_targets]
    keys = ["cohort", "instrument", "scale"]
    out = typical.merge(usable[keys + ["icc1"]], on=keys, how="left")
    out["icc_source"] = np.where(out["icc1"].notna(), "cohort", "pooled")
    if pooled is not None:
        program = usable[usable["cohort"] == pooled][["instrument", "scale", "icc1"]]
        out = out.merge(program, on=["instrument", "scale"], how="left",
                        suffixes=("", "_pooled"))
        out["icc1"] = out["icc1"].fillna(out["icc1_pooled"])
    out.loc[out["cohort"] == pooled, "icc_source"] = "pooled"
    out.loc[out["icc1"].isna(), "icc_source"] = NOT_ESTIMABLE
    out["reliability"] = spearman_brown(out["icc1"], out["k_typical"])
    out = out.sort_values(keys).reset_index(drop=True)
    return out[keys + ["icc1", "icc_source", "k_typical", "reliability"]]


def _severity_stats(scored: _Scored, rows: np.ndarray, dev: np.ndarray, columns: list[str],
                    pooled: str | None, band: float, min_shared: int) -> pd.DataFrame:
    """Mean deviation per cohort x ``columns`` x measure (and pooled) with SD, SE, t CI,
    band flag and direction; ``dev`` holds one deviation per scored row."""
    g, out, which, _ = _grouping(scored, rows, columns, pooled)
    x = dev[which]
    n = _sums(g, len(out))
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = _sums(g, len(out), x) / n
        sd = np.sqrt(_sums(g, len(out), (x - mean[g]) ** 2) / (n - 1))
        se = sd / np.sqrt(n)
        half = stats.t.ppf(1 - (1 - CI_LEVEL) / 2, n - 1) * se
    out["n_targets"] = n.astype(np.int64)
    out["severity"], out["sd"], out["se"] = mean, sd, se
    out["ci_low"], out["ci_high"] = mean - half, mean + half
    excludes_zero = (out["ci_low"] > 0) | (out["ci_high"] < 0)
    out["outside_band"] = (out["severity"].abs() > band) & excludes_zero & (n >= min_shared)
    out["direction"] = np.select(
        [n < max(min_shared, 2), out["outside_band"] & (out["severity"] < 0),
         out["outside_band"]], [NOT_ESTIMABLE, "harsh", "lenient"], "within_band")
    return out


def _deviations(scored: _Scored) -> tuple[np.ndarray, np.ndarray]:
    """Rows of scale scores of targets with 2+ raters, and per scored row the rater's
    score minus the mean of the OTHER raters' scores of the same target (NaN elsewhere)."""
    scale = np.flatnonzero(scored.kind > 0)
    t = scored.target(scale)
    x = scored.value[scale]
    m = np.bincount(t)[t].astype(float)
    shared = m >= 2
    with np.errstate(invalid="ignore", divide="ignore"):
        others = (_sums(t, _size(t), x)[t] - x) / (m - 1)
    dev = np.full(len(scored.value), np.nan)
    dev[scale] = x - others
    return scale[shared], dev


def _drift(by_wave: pd.DataFrame, keys: list[str], waves: list[str], band: float,
           min_shared: int) -> pd.DataFrame:
    """Last minus first wave's severity per rater (waves with ``min_shared`` targets)."""
    rank = {w: i for i, w in enumerate(waves)}
    usable = by_wave[by_wave["n_targets"] >= max(min_shared, 2)].assign(
        order=lambda f: f["wave"].map(rank)).sort_values(keys + ["order"])
    grouped = usable.groupby(keys, sort=False, observed=True)
    first, last = grouped.head(1).set_index(keys), grouped.tail(1).set_index(keys)
    last = last.reindex(first.index)
    more = first["order"] != last["order"]
    first, last = first[more], last[more]
    drift = last["severity"] - first["severity"]
    se = np.sqrt(first["se"] ** 2 + last["se"] ** 2)
    # Welch-Satterthwaite degrees of freedom for the difference of two means.
    df = se ** 4 / (first["se"] ** 4 / (first["n_targets"] - 1)
                    + last["se"] ** 4 / (last["n_targets"] - 1))
    half = stats.t.ppf(1 - (1 - CI_LEVEL) / 2, df) * se
    out = pd.DataFrame({"drift": drift, "drift_se": se, "drift_ci_low": drift - half,
                        "drift_ci_high": drift + half, "drift_from": first["wave"],
                        "drift_to": last["wave"]})
    excludes_zero = (out["drift_ci_low"] > 0) | (out["drift_ci_high"] < 0)
    out["drifting"] = (out["drift"].abs() > band) & excludes_zero
    return out.reset_index()


def raters_table(ratings: pd.DataFrame, pooled: str | None = POOLED,
                 waves: list[str] | None = None, band: float = SEVERITY_BAND,
                 drift_band: float = DRIFT_BAND, min_shared: int = MIN_SHARED
                 ) -> pd.DataFrame:
    """Rater severity (with CI and calibration flag) and drift over the waves.

    For a rater and a target they share with other raters, the deviation is
    the rater's scale score minus the mean of the OTHER raters' scores of that
    target (level units; negative = harsher). Only targets with 2+ raters
    count. Rows: ``cohort`` (and ``pooled``: the rater over all cohorts) x
    ``instrument`` x ``measure_kind`` (domain, total) x ``measure`` x
    ``rater`` x ``wave``, where ``wave == pooled`` is the rater over all
    waves and the other rows are the rater at one wave (drift).

    The others' mean includes their own severity: a rater who shares a
    share ``f`` of their targets with a rater of severity ``s`` (and no third
    rater) looks shifted by about ``-f * s``. With one harsh rater among six
    this is a fifth of the harsh rater's severity, which is why the band is
    half a level and a flag also needs the CI to exclude 0.

    Columns: ``n_targets`` shared targets, ``severity`` mean deviation, ``sd``,
    ``se`` = sd / sqrt(n), ``ci_low``/``ci_high`` (95%, t with n - 1 df),
    ``outside_band`` True when |severity| > ``band`` levels, the CI excludes 0
    and n >= ``min_shared``; ``direction`` harsh / lenient (outside the band),
    within_band, or not_estimable (n < ``min_shared``). On the all-waves rows:
    ``drift`` = severity at the last wave minus at the first (in ``waves``
    order, first appearance when None; waves with ``min_shared`` targets),
    ``drift_se``, ``drift_ci_low``/``drift_ci_high`` (Welch), ``drift_from``,
    ``drift_to``, ``drifting`` True when |drift| > ``drift_band`` and its CI
    excludes 0 (NaN/False elsewhere).

    Examples
    --------
    Two raters on the same four targets: each is the other's mirror.

    >>> r = pd.DataFrame({"cohort": "c", "wave": "pre", "instrument": "role", "item": "i1",
    ...                   "domain": "d", "participant": ["p1", "p1", "p2", "p2", "p3", "p3",
    ...                   "p4", "p4"], "rater": ["a", "b"] * 4,
    ...                   "value": [1.0, 3, 2, 3, 1, 3, 2, 3]})
    >>> t = raters_table(r, pooled=None, min_shared=4)
    >>> t.query("measure == 'total' and wave == 'ALL'")[
    ...     ["rater", "n_targets", "severity", "ci_low", "ci_high", "direction"]].round(2)
      rater  n_targets  severity  ci_low  ci_high direction
    4     a          4      -1.5   -2.42    -0.58     harsh
    6     b          4       1.5    0.58     2.42   lenient
    """
    scored = _Scored(ratings)
    rows, dev = _deviations(scored)
    wave_label = POOLED if pooled is None else pooled
    keys = ["cohort", "instrument"] + MEASURE + ["rater"]
    overall = _severity_stats(scored, rows, dev, ["instrument", "rater"], pooled, band,
                              min_shared).assign(wave=wave_label)
    by_wave = _severity_stats(scored, rows, dev, ["instrument", "rater", "wave"], pooled, band,
                              min_shared)
    order = list(waves) if waves is not None else list(pd.unique(ratings["wave"]))
    if by_wave.empty:
        return pd.DataFrame(columns=RATERS_COLUMNS)
    overall = overall.merge(_drift(by_wave, keys, order, drift_band, min_shared), on=keys,
                            how="left")
    overall["drifting"] = overall["drifting"].astype("boolean").fillna(False).astype(bool)
    out = pd.concat([overall, by_wave], ignore_index=True)
    out["drifting"] = out["drifting"].astype("boolean").fillna(False).astype(bool)
    out["wave_order"] = out["wave"].map({w: i for i, w in enumerate(order)}).fillna(-1)
    out = out.sort_values(keys + ["wave_order"]).reset_index(drop=True)
    return out[RATERS_COLUMNS]


def level_distribution(ratings: pd.DataFrame, harmful_below: float, helpful_from: float,
                       pooled: str | None = POOLED, levels=None) -> pd.DataFrame:
    """Share of ratings at each level per cohort, instrument, wave, item, domain and total.

    Every rating counts once (a double-rated participant contributes both
    raters' ratings). ``share_harmful`` is the share of ratings with a level
    code below ``harmful_below``; ``share_helpful_or_above`` the share at or
    above ``helpful_from``. A domain's (total's) row pools the ratings of its
    items. Levels never used in an instrument appear with share 0 when listed
    in ``levels``.

    Output (long, one row per level): ``cohort`` (and ``pooled``),
    ``instrument``, ``wave``, ``measure_kind`` (item, domain, total),
    ``measure``, ``level``, ``n_level`` ratings at the level, ``n_ratings``
    ratings of the measure, ``share`` = n_level / n_ratings, and the measure's
    ``share_harmful`` and ``share_helpful_or_above`` (repeated on its rows).

    Examples
    --------
    >>> r = pd.DataFrame({"cohort": "c", "wave": "pre", "participant": ["p1", "p2", "p3"],
    ...                   "rater": "a", "instrument": "role", "item": "i1", "domain": "d",
    ...                   "value": [1.0, 3.0, 3.0]})
    >>> level_distribution(r, harmful_below=2, helpful_from=3, pooled=None,
    ...                    levels=[1, 2, 3, 4]).query("measure_kind == 'item'")[
    ...     ["level", "n_level", "share", "share_harmful", "share_helpful_or_above"]].round(3)
       level  n_level  share  share_harmful  share_helpful_or_above
    0    1.0        1  0.333          0.333                   0.667
    1    2.0        0  0.000          0.333                   0.667
    2    3.0        2  0.667          0.333                   0.667
    3    4.0        0  0.000          0.333                   0.667
    """
    frame, codes, labels = _validated(ratings)
    rated = frame["value"].notna().to_numpy()
    value = frame["value"].to_numpy(dtype=float)[rated]
    if not len(value):
        return pd.DataFrame(columns=LEVEL_COLUMNS)
    all_levels = np.array(sorted(set(np.unique(value)) | {float(v) for v in (levels or [])}))
    n_levels = len(all_levels)
    base = ["cohort", "instrument", "wave"]
    key = _compact(*(codes[c][rated] for c in base + ["item", "domain"]))
    counts = _sums(key * n_levels + np.searchsorted(all_levels, value),
                   _size(key) * n_levels).reshape(-1, n_levels)
    first = np.flatnonzero(rated)[_one_row_of(key)]
    items = pd.DataFrame({c: labels[c][codes[c][first]] for c in base + ["item", "domain"]})
    level_columns = list(range(n_levels))
    items[level_columns] = counts
    cohorts = [items] if pooled is None else [items, items.assign(cohort=pooled)]
    items = pd.concat(cohorts, ignore_index=True)
    tables = []
    for kind, column in (("item", "item"), ("domain", "domain"), ("total", None)):
        by = base + ([column] if column else [])
        table = items.groupby(by, sort=True, observed=True)[level_columns].sum().reset_index()
        table["measure"] = table[column] if column else TOTAL
        tables.append(table.assign(measure_kind=kind)[base + MEASURE + level_columns])
    wide = pd.concat(tables, ignore_index=True)
    n_level = wide[level_columns].to_numpy()
    n = n_level.sum(axis=1)
    out = wide.loc[np.repeat(wide.index, n_levels), base + MEASURE].reset_index(drop=True)
    out["level"] = np.tile(all_levels, len(wide))
    out["n_level"] = n_level.ravel().astype(np.int64)
    out["n_ratings"] = np.repeat(n, n_levels).astype(np.int64)
    out["share"] = out["n_level"] / out["n_ratings"]
    out["share_harmful"] = np.repeat(n_level[:, all_levels < harmful_below].sum(axis=1) / n,
                                     n_levels)
    out["share_helpful_or_above"] = np.repeat(
        n_level[:, all_levels >= helpful_from].sum(axis=1) / n, n_levels)
    return out[LEVEL_COLUMNS].astype({c: str for c in base + MEASURE})


def example_ratings(seed: int = 1) -> pd.DataFrame:
    """A small simulated ratings frame (2 cohorts, 20 participants, 5 raters, 4 items).

    Examples
    --------
    >>> example_ratings().columns.tolist()
    ['cohort', 'wave', 'participant', 'rater', 'instrument', 'item', 'domain', 'value']
    """
    return simulate_ratings(seed=seed, cohorts=2, participants=20, raters=5, items=4)


def simulate_ratings(seed: int = 1, cohorts: int = 2, participants: int = 20, raters: int = 5,
                     items: int = 4, domains: int = 2, waves=("pre", "post"),
                     double_share: float = 0.3, triple_share: float = 0.0,
                     severity: dict | None = None, drift: dict | None = None,
                     noise: float = 0.5, spread: float = 0.8, gain: float = 0.3
                     ) -> pd.DataFrame:
    """Simulated ratings on levels 1-4 with optional planted rater effects.

    Each participant has a true level (normal, mean 2.5, sd ``spread``) that
    rises by ``gain`` per wave; a rating is the true level plus the rater's
    shift plus normal noise (sd ``noise``), rounded and clipped to 1-4. Each
    target gets one rater, a second with probability ``double_share``, a third
    with ``triple_share`` (of all targets), drawn without replacement from the
    cohort's ``raters``. ``severity``: {rater index: shift at every wave}
    (negative = harsh); ``drift``: {rater index: shift added at the last
    wave}. Pseudonyms: participants ``c<k>-p<i>``, raters ``c<k>-r<j>``; items
    ``i1..`` cycle over domains ``d1..``.

    Examples
    --------
    >>> r = simulate_ratings(cohorts=1, participants=3, raters=2, items=2, double_share=1)
    >>> len(r), sorted(r["rater"].unique())
    (24, ['c1-r0', 'c1-r1'])
    """
    rng = np.random.default_rng(seed)
    n_waves = len(waves)
    n_targets = cohorts * participants * n_waves
    cohort = np.repeat(np.arange(cohorts), participants * n_waves)
    person = np.repeat(np.arange(cohorts * participants), n_waves)
    wave = np.tile(np.arange(n_waves), cohorts * participants)
    level = rng.normal(2.5, spread, cohorts * participants)[person] + gain * wave
    u = rng.random(n_targets)
    n_raters = 1 + (u < double_share) + (u < triple_share)
    slots = np.argsort(rng.random((n_targets, raters)), axis=1)
    take = np.arange(raters) < np.minimum(n_raters, raters)[:, None]
    target, rater = np.nonzero(take)
    rater = slots[target, rater]
    shift = np.zeros(raters)
    for j, value in (severity or {}).items():
        shift[j] += value
    last = np.zeros(raters)
    for j, value in (drift or {}).items():
        last[j] += value
    mean = level[target] + shift[rater] + np.where(wave[target] == n_waves - 1, last[rater], 0)
    values = mean[:, None] + rng.normal(0, noise, (len(target), items))
    values = np.clip(np.rint(values), 1, 4).ravel()
    row_target = np.repeat(target, items)
    item = np.tile(np.arange(items), len(target))
    c = cohort[row_target] + 1
    frame = pd.DataFrame({
        "cohort": pd.Series(c).map(lambda k: f"c{k}"),
        "wave": np.asarray(waves, dtype=object)[wave[row_target]],
        "participant": pd.Series(person[row_target] % participants),
        "rater": pd.Series(np.repeat(rater, items)),
        "instrument": "role",
        "item": pd.Series(item + 1).map(lambda i: f"i{i}"),
        "domain": pd.Series(item % domains + 1).map(lambda i: f"d{i}"),
        "value": values})
    frame["participant"] = frame["cohort"] + "-p" + frame["participant"].astype(str)
    frame["rater"] = frame["cohort"] + "-r" + frame["rater"].astype(str)
    return frame[RATING_COLUMNS].astype({c: str for c in RATING_COLUMNS[:-1]})
