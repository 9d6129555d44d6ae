"""Models across cohorts: linear mixed models of change and a meta-analysis of d_z.

Every function returns rows for the ``models`` table (one row per model term)
and never raises on a model that cannot be fitted: the row carries NaN, a
``converged`` of False and a flag naming the problem.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import optimize, stats

from pipelines.analysis import lmm

FEW_COHORTS = 10  # up to this many cohorts, also fit the cohort fixed-effects form
MIN_COHORTS_RANDOM = 3


def _failed(model: str, n_obs: int, n_groups: int, flag: str) -> list[dict]:
    return [{"model": model, "term": "change", "estimate": np.nan, "se": np.nan,
             "ci_low": np.nan, "ci_high": np.nan, "p": np.nan, "n_obs": n_obs,
             "n_groups": n_groups, "converged": False, "flags": flag}]


def not_fitted(error: Exception) -> str:
    """The ``not_fitted`` flag with its reason (no ``;``: that separates flags)."""
    return f"not_fitted: {str(error).replace(';', ',')}"[:200]


def _wald_rows(fit: lmm.Fit, model: str, terms: list[tuple[str, str | None]], n_obs: int,
               n_groups: int, flags: list[str], level: float = 0.95) -> list[dict]:
    """One row per fixed effect (``terms``: (term, cohort or None)) with normal-based
    Wald intervals and p values, as statsmodels' ``MixedLMResults``."""
    se = fit.bse_fe
    if not np.isfinite(se).all():
        flags = [*flags, "se_not_estimable"]
    crit = stats.norm.ppf(1 - (1 - level) / 2)
    rows = []
    for (term, cohort), estimate, s in zip(terms, fit.fe_params, se):
        rows.append({"model": model, "term": term, "estimate": float(estimate), "se": float(s),
                     "ci_low": float(estimate - crit * s), "ci_high": float(estimate + crit * s),
                     "p": float(2 * stats.norm.sf(abs(estimate / s))), "n_obs": n_obs,
                     "n_groups": n_groups, "converged": fit.converged, "flags": ";".join(flags)})
        if cohort is not None:
            rows[-1]["cohort"] = cohort
    return rows


def random_cohort_model(long: pd.DataFrame) -> list[dict]:
    """score ~ post + (1 + post | cohort) + (1 | participant in cohort), REML.

    ``long`` has one row per person and wave with columns cohort, participant,
    post (0 = from wave, 1 = to wave) and score. The ``change`` term is the
    average change across cohorts (the fixed effect of post), the same model
    as lme4's ``lmer(score ~ post + (1 + post | cohort) + (1 | cohort:participant))``
    and statsmodels' ``MixedLM`` (the reference in ``tests/oracles.py``).

    The fit is :func:`pipelines.analysis.lmm.fit_reml`: the exact REML
    likelihood computed from per-cohort sums (Woodbury on the rank-2 cohort
    effects, per-person blocks ``I + lam J``), vectorised over cohorts, so a
    national program of 1,000 cohorts fits in a fraction of a second where
    statsmodels, looping over cohorts in Python, takes minutes. Estimates,
    standard errors and variance components equal statsmodels' REML fit (to
    ~1e-8 when both are converged); standard errors are statsmodels' (inverse
    of minus the Hessian in fixed effects and variance parameters, cross terms
    included; lme4's ``vcov`` omits the cross terms: 0 to ~1% apart in unbalanced data),
    and intervals and p values are normal-based Wald, as ``MixedLMResults``.

    When the cohorts' change does not vary -- the cohort covariance is
    singular in the slope direction (slope variance 0 or a +-1 correlation,
    lme4's ``isSingular`` tolerance) or the standard errors cannot be computed
    -- the model is refitted with a random intercept only and flagged
    ``random_slope_dropped``. Other flags: ``boundary_fit`` (a variance under
    0.01 or a singular covariance), ``convergence_warning``, ``se_not_estimable``;
    fewer than 3 cohorts, or a model that cannot be fitted, give one row of NaN.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> rows = []
    >>> for c in range(6):
    ...     for p in range(10):
    ...         base = 40 + rng.normal(0, 5)
    ...         rows += [(f"c{c}", f"c{c}p{p}", 0, base + rng.normal(0, 3)),
    ...                  (f"c{c}", f"c{c}p{p}", 1, base - 4 + rng.normal(0, 3))]
    >>> long = pd.DataFrame(rows, columns=["cohort", "participant", "post", "score"])
    >>> change = random_cohort_model(long)[1]
    >>> change["term"], round(change["estimate"])
    ('change', -4)
    """
    n_obs, n_groups = len(long), long["cohort"].nunique()
    name = "mixed_random_cohorts"
    if n_groups < MIN_COHORTS_RANDOM:
        return _failed(name, n_obs, n_groups, f"fewer_than_{MIN_COHORTS_RANDOM}_cohorts")
    data = long.dropna(subset=["cohort", "participant", "post", "score"])  # as patsy did
    columns = (data["cohort"].to_numpy(), data["participant"].to_numpy(),
               data["post"].to_numpy(dtype=float), data["score"].to_numpy(dtype=float))
    try:
        fit = lmm.fit_reml(*columns, slope=True)
        flags = fit.flags
        if fit.slope_singular or not np.isfinite(fit.bse_fe).all():
            fit = lmm.fit_reml(*columns, slope=False)
            flags = ["random_slope_dropped", *fit.flags]
    except (ValueError, np.linalg.LinAlgError) as error:
        return _failed(name, n_obs, n_groups, not_fitted(error))
    return _wald_rows(fit, name, [("from_wave_mean", None), ("change", None)], n_obs,
                      n_groups, flags)


def cohort_fixed_model(long: pd.DataFrame) -> list[dict]:
    """score ~ 0 + cohort + cohort:post + (1 | participant), REML: change per cohort.

    The form for programs with few cohorts, where a cohort variance cannot be
    estimated: each cohort's change is a fixed effect (term ``change``, with the cohort),
    people are a random intercept (so the unpaired are used, not dropped). ``long`` as
    :func:`random_cohort_model`; rows per cohort in sorted order, ``from_wave_mean`` then
    ``change``.

    The fit is :func:`pipelines.analysis.lmm.fit_reml_person`, the model of lme4's
    ``lmer(score ~ 0 + factor(cohort) + factor(cohort):post + (1 | participant))`` and
    statsmodels' ``MixedLM``: estimates and variances as both, standard errors as
    statsmodels' (cross terms with the person variance included; lme4's ``vcov`` omits
    them), Wald intervals and p values on the normal distribution. Flags: ``boundary_fit``
    (person variance under 0.01 or ~0), ``convergence_warning``, ``se_not_estimable``;
    a model that cannot be fitted (e.g. a cohort seen at one wave only) gives one row of NaN.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> rows = []
    >>> for c, change in (("a", -2), ("b", -6)):
    ...     for p in range(20):
    ...         base = 40 + rng.normal(0, 5)
    ...         rows += [(c, f"{c}{p}", 0, base + rng.normal(0, 2)),
    ...                  (c, f"{c}{p}", 1, base + change + rng.normal(0, 2))]
    >>> long = pd.DataFrame(rows, columns=["cohort", "participant", "post", "score"])
    >>> [(r["term"], r["cohort"], round(r["estimate"])) for r in cohort_fixed_model(long)][1::2]
    [('change', 'a', -2), ('change', 'b', -5)]
    """
    n_obs, n_groups = len(long), long["cohort"].nunique()
    name = "mixed_cohort_fixed"
    data = long.dropna(subset=["cohort", "participant", "post", "score"])  # as patsy did
    cohorts, codes = np.unique(data["cohort"].to_numpy(), return_inverse=True)
    indicator = (codes[:, None] == np.arange(len(cohorts))[None, :]).astype(float)
    design = np.hstack([indicator, indicator * data["post"].to_numpy(dtype=float)[:, None]])
    order = np.ravel([[c, len(cohorts) + c] for c in range(len(cohorts))])  # per cohort
    try:
        fit = lmm.fit_reml_person(design[:, order], data["participant"].to_numpy(),
                                  data["score"].to_numpy(dtype=float))
    except (ValueError, np.linalg.LinAlgError) as error:
        return _failed(name, n_obs, n_groups, not_fitted(error))
    terms = [(term, cohort) for cohort in cohorts for term in ("from_wave_mean", "change")]
    return _wald_rows(fit, name, terms, n_obs, n_groups, fit.flags)


def d_z_variance(d_z: np.ndarray, n: np.ndarray) -> np.ndarray:
    """Sampling variance of d_z: 1/n + d_z^2 / (2n) (Borenstein et al., 2009).

    Examples
    --------
    >>> float(d_z_variance(np.array([0.5]), np.array([20]))[0])
    0.05625
    """
    return 1 / n + d_z**2 / (2 * n)


def _tau2_reml(y: np.ndarray, v: np.ndarray) -> float:
    """REML estimate of the between-cohort variance tau^2 (>= 0)."""
    def restricted_nll(tau2: float) -> float:
        w = 1 / (v + tau2)
        mu = (w * y).sum() / w.sum()
        return 0.5 * (np.log(v + tau2).sum() + np.log(w.sum()) + (w * (y - mu) ** 2).sum())

    upper = max(10 * np.var(y, ddof=1), 1e-6) if len(y) > 1 else 1.0
    fit = optimize.minimize_scalar(restricted_nll, bounds=(0, upper), method="bounded",
                                   options={"xatol": 1e-12})
    return float(fit.x) if restricted_nll(fit.x) < restricted_nll(0.0) else 0.0


def random_effects_meta(y, v, method: str = "REML", level: float = 0.95) -> dict:
    """Random-effects meta-analysis (DerSimonian-Laird or REML), as metafor::rma.

    Returns estimate, se, ci_low, ci_high, p (z test), tau2, i2 (percent), q
    (Cochran's Q), k. Needs 2+ studies (cohorts) with finite effects.

    Examples
    --------
    >>> r = random_effects_meta([0.2, 0.5, 0.8], [0.04, 0.05, 0.06], method="DL")
    >>> round(r["estimate"], 4), round(r["tau2"], 4), r["k"]
    (0.4779, 0.0407, 3)
    """
    y, v = np.asarray(y, dtype=float), np.asarray(v, dtype=float)
    keep = np.isfinite(y) & np.isfinite(v) & (v > 0)
    y, v = y[keep], v[keep]
    k = len(y)
    if k < 2:
        return {"estimate": np.nan, "se": np.nan, "ci_low": np.nan, "ci_high": np.nan,
                "p": np.nan, "tau2": np.nan, "i2": np.nan, "q": np.nan, "k": k}
    w = 1 / v
    fixed = (w * y).sum() / w.sum()
    q = float((w * (y - fixed) ** 2).sum())
    if method == "DL":
        tau2 = float(max(0.0, (q - (k - 1)) / (w.sum() - (w**2).sum() / w.sum())))
    else:
        tau2 = _tau2_reml(y, v)
    w_star = 1 / (v + tau2)
    estimate = float((w_star * y).sum() / w_star.sum())
    se = float(np.sqrt(1 / w_star.sum()))
    crit = stats.norm.ppf(1 - (1 - level) / 2)
    # I^2 as metafor: tau^2 / (tau^2 + typical within-study variance).
    typical = (k - 1) * w.sum() / (w.sum() ** 2 - (w**2).sum())
    return {"estimate": estimate, "se": se, "ci_low": float(estimate - crit * se),
            "ci_high": float(estimate + crit * se),
            "p": float(2 * stats.norm.sf(abs(estimate / se))),
            "tau2": tau2, "i2": float(100 * tau2 / (tau2 + typical)), "q": q, "k": k}
