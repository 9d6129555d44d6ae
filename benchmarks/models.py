"""Benchmark: the random-cohort mixed model, statsmodels MixedLM vs the vectorised REML.

Run: python benchmarks/models.py [--cohorts 20 100 1000] [--models 14]

For each number of cohorts (x 30 people x 2 waves, 8% missing at post, 3% seen
only at post) prints the seconds of one ``random_cohort_model`` fit with
statsmodels (the former implementation: MixedLM, REML, lbfgs/bfgs/cg, refit
without the random slope when its standard errors are not finite) and with
:func:`pipelines.analysis.lmm.fit_reml` (the current one), the largest
difference between their estimates and standard errors, and the time of a
whole run's ``--models`` fits (a national run has ~14: instrument x scale x
wave pair). statsmodels is not run where its fit would take more than
``--max-statsmodels`` seconds (extrapolated linearly in cohorts from the
largest size timed), and the script says so.

``--table`` also times ``tables.models_table`` (what a run calls) on 7 scales x
3 waves (pre/post/follow_up; 2 wave pairs = 14 models), with the current fit
and with statsmodels patched in (not run above ``--max-statsmodels`` either).
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._machine import describe  # noqa: E402
from pipelines.analysis import models  # noqa: E402
from tests.oracles import random_cohort_spec, statsmodels_fit  # noqa: E402

PEOPLE = 30


def simulate(n_cohorts: int, seed: int = 0) -> pd.DataFrame:
    """long: cohort, participant, post, score; cohort change varies (sd 2)."""
    rng = np.random.default_rng(seed)
    people = n_cohorts * PEOPLE
    cohort = np.repeat(np.arange(n_cohorts), PEOPLE)
    u0, u1 = rng.normal(0, 3, n_cohorts), rng.normal(0, 2, n_cohorts)
    base = 40 + u0[cohort] + rng.normal(0, 5, people)
    r = rng.random(people)
    parts = []
    for post, keep in ((0, r >= 0.03), (1, (r < 0.03) | (r >= 0.11))):
        idx = np.flatnonzero(keep)
        score = base[idx] + post * (-4 + u1[cohort[idx]]) + rng.normal(0, 3, len(idx))
        parts.append(pd.DataFrame({"cohort": pd.Series(cohort[idx]).map("c{:04d}".format),
                                   "participant": pd.Series(idx).map("p{:06d}".format),
                                   "post": float(post), "score": score}))
    return pd.concat(parts, ignore_index=True)


def simulate_scores(n_cohorts: int, scales: int = 7) -> pd.DataFrame:
    """The ``scores`` table models_table reads: 7 scales x 3 waves (~92% / ~78% retained)."""
    parts = []
    for k in range(scales):
        long = simulate(n_cohorts, seed=100 + k)
        follow = simulate(n_cohorts, seed=200 + k).query("post == 1")
        follow = follow[np.random.default_rng(k).random(len(follow)) < 0.85]
        for frame, waves in ((long, np.where(long["post"] == 1, "post", "pre")),
                             (follow, "follow_up")):
            parts.append(frame.assign(wave=waves, instrument="bench", scale=f"s{k}")
                         .drop(columns="post"))
    return pd.concat(parts, ignore_index=True)


def statsmodels_model(long: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """The former random_cohort_model: statsmodels MixedLM; (estimates, standard errors)."""
    fit = statsmodels_fit(random_cohort_spec(long, "~post"), tight=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        if not np.isfinite(fit.bse_fe.to_numpy()).all():
            fit = statsmodels_fit(random_cohort_spec(long, "1"), tight=False)
        return fit.fe_params.to_numpy(), fit.bse_fe.to_numpy()


def new_model(long: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    rows = models.random_cohort_model(long)
    return np.array([r["estimate"] for r in rows]), np.array([r["se"] for r in rows])


def statsmodels_rows(long: pd.DataFrame) -> list[dict]:
    """statsmodels_model as rows, to patch into tables.models_table."""
    est, se = statsmodels_model(long)
    return [{"model": "mixed_random_cohorts", "term": t, "estimate": e, "se": s}
            for t, e, s in zip(["from_wave_mean", "change"], est, se)]


def time_table(n: int, fit) -> float:
    from pipelines.analysis import tables

    scores = simulate_scores(n)
    change = pd.DataFrame(columns=["cohort", "instrument", "scale", "from_wave", "to_wave",
                                   "d_z", "n_pairs"])
    original = tables.random_cohort_model
    tables.random_cohort_model = fit
    try:
        return timed(tables.models_table, scores, [("pre", "post"), ("pre", "follow_up")],
                     change)[0]
    finally:
        tables.random_cohort_model = original


def timed(fn, *args):
    start = time.perf_counter()
    out = fn(*args)
    return time.perf_counter() - start, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cohorts", type=int, nargs="+", default=[20, 100, 1000])
    parser.add_argument("--models", type=int, default=14, help="fits in a whole run")
    parser.add_argument("--max-statsmodels", type=float, default=120.0,
                        help="skip statsmodels where one fit would take longer (seconds)")
    parser.add_argument("--table", action="store_true", help="also time models_table")
    args = parser.parse_args()
    print(describe())
    new_model(simulate(5))  # warm up imports
    per_cohort = None  # statsmodels seconds per cohort at the largest size timed
    print(f"{'cohorts':>7} {'rows':>7} {'statsmodels s':>14} {'new s':>8} {'speed-up':>9} "
          f"{'max |d est|':>11} {'max rel d se':>12} {'run of ' + str(args.models) + ' new s':>16}")
    for n in args.cohorts:
        long = simulate(n)
        t_new, (est, se) = timed(new_model, long)
        t_new = min(t_new, timed(new_model, long)[0])
        run = sum(timed(new_model, simulate(n, seed=k))[0] for k in range(args.models))
        estimate = None if per_cohort is None else per_cohort * n
        if estimate is not None and estimate > args.max_statsmodels:
            print(f"{n:>7} {len(long):>7} {'~' + format(estimate, '.0f') + ' (not run)':>14} "
                  f"{t_new:>8.3f} {estimate / t_new:>8.0f}x {'':>11} {'':>12} {run:>16.2f}")
            continue
        t_sm, (est_sm, se_sm) = timed(statsmodels_model, long)
        per_cohort = t_sm / n
        print(f"{n:>7} {len(long):>7} {t_sm:>14.2f} {t_new:>8.3f} {t_sm / t_new:>8.0f}x "
              f"{np.abs(est - est_sm).max():>11.1e} {np.abs(se / se_sm - 1).max():>12.1e} "
              f"{run:>16.2f}")
    print("statsmodels' default convergence tolerance leaves ~1e-4 differences; run to a tight "
          "gradient it agrees with the new fit to ~1e-8 (tests/test_models_fast.py).")
    if per_cohort is not None and args.cohorts and per_cohort * max(args.cohorts) > \
            args.max_statsmodels:
        print(f"statsmodels was not run at {max(args.cohorts)} cohorts: one fit was estimated "
              f"(linearly from the largest size timed) above --max-statsmodels "
              f"{args.max_statsmodels:.0f} s.")

    if args.table:
        print(f"models_table, 14 models (7 scales x 2 wave pairs), seconds:\n"
              f"{'cohorts':>7} {'statsmodels':>12} {'new':>8}")
        sm_per_cohort = None
        for n in args.cohorts:
            t_new = time_table(n, models.random_cohort_model)
            if sm_per_cohort is not None and sm_per_cohort * n > args.max_statsmodels:
                print(f"{n:>7} {'~' + format(sm_per_cohort * n, '.0f') + ' (not run)':>12} "
                      f"{t_new:>8.2f}")
                continue
            t_sm = time_table(n, statsmodels_rows)
            sm_per_cohort = t_sm / n
            print(f"{n:>7} {t_sm:>12.2f} {t_new:>8.2f}")


if __name__ == "__main__":
    main()
