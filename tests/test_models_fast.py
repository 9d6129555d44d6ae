"""The REML fits of the mixed models (pipelines/analysis/lmm.py): the random-cohort
model and the cohort fixed-effects model, against statsmodels' MixedLM (the reference
they replace, run to tight convergence) and against lme4 (tests/golden/golden_lmm.csv
and golden_cohort_fixed.csv, made by tests/golden/make_golden_lmm.R and
make_golden_cohort_fixed.R).
"""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pipelines.analysis import lmm
from pipelines.analysis.models import cohort_fixed_model, random_cohort_model
from tests.oracles import cohort_fixed_spec, random_cohort_spec, statsmodels_rows
from tests.oracles import statsmodels_fit as fit_statsmodels

GOLDEN = Path(__file__).parent / "golden"


def simulate(n_cohorts=12, sizes=(10, 20), seed=0, sd_u0=3.0, sd_u1=2.0, pre_only=0.1,
             post_only=0.0, repeats=0.0):
    """Cohorts x people x 2 waves; some people seen at one wave only; ``repeats`` of
    the people have a second row at the pre wave (a retest the model must also take)."""
    rng = np.random.default_rng(seed)
    n = rng.integers(sizes[0], sizes[1] + 1, n_cohorts) if np.ndim(sizes) == 1 else None
    n = np.asarray(sizes if n is None else n)
    cohort = np.repeat(np.arange(len(n)), n)
    people = len(cohort)
    u0, u1 = rng.normal(0, sd_u0, len(n)), rng.normal(0, sd_u1, len(n))
    person = rng.normal(0, 5, people)
    r = rng.random(people)
    at = {0: r >= post_only, 1: (r < post_only) | (r >= post_only + pre_only)}
    rows = []
    for post, keep in at.items():
        idx = np.flatnonzero(keep)
        if post == 0 and repeats:
            idx = np.r_[idx, idx[rng.random(len(idx)) < repeats]]
        y = 40 + u0[cohort[idx]] + person[idx] + (-4 + u1[cohort[idx]]) * post + rng.normal(
            0, 3, len(idx))
        rows.append(pd.DataFrame({"cohort": [f"c{c:03d}" for c in cohort[idx]],
                                  "participant": [f"p{i:04d}" for i in idx],
                                  "post": float(post), "score": y}))
    return pd.concat(rows, ignore_index=True)


def statsmodels_fit(long, re_formula):
    """statsmodels' REML fit, run to a tight gradient so it is a 1e-8 reference."""
    return fit_statsmodels(random_cohort_spec(long, re_formula))


DATASETS = {
    "balanced": dict(n_cohorts=10, sizes=(15, 15), pre_only=0.0, seed=1),
    "attrition": dict(n_cohorts=12, sizes=(8, 25), pre_only=0.3, seed=2),
    "seen_only_at_post": dict(n_cohorts=10, sizes=(10, 20), pre_only=0.1, post_only=0.2,
                              seed=3),
    "cohorts_of_1_and_2": dict(sizes=[1, 2, 12, 18, 9, 15, 20], pre_only=0.15, post_only=0.1,
                               seed=4),
    "retests_at_pre": dict(n_cohorts=8, sizes=(10, 16), repeats=0.2, seed=5),
}


def close(ours, theirs, rel, scale=1.0):
    """|ours - theirs| <= rel * max(|theirs|, scale): relative, with a floor for ~0."""
    ours, theirs = np.ravel(ours), np.ravel(theirs)
    return np.all(np.abs(ours - theirs) <= rel * np.maximum(np.abs(theirs), scale))


@pytest.mark.parametrize("name", list(DATASETS))
@pytest.mark.parametrize("slope", [True, False])
def test_fit_equals_statsmodels(name, slope):
    long = simulate(**DATASETS[name])
    sm = statsmodels_fit(long, "~post" if slope else "1")
    ours = lmm.fit_reml(long["cohort"], long["participant"], long["post"], long["score"],
                        slope=slope)
    assert ours.converged
    assert ours.llf == pytest.approx(sm.llf, rel=1e-10)
    assert close(ours.fe_params, sm.fe_params.to_numpy(), 1e-7)
    assert close(ours.bse_fe, sm.bse_fe.to_numpy(), 1e-5)
    var_scale = np.abs(sm.cov_re.to_numpy()).max()
    assert close(ours.cov_re, sm.cov_re.to_numpy(), 1e-5, scale=var_scale)
    assert close(ours.vcomp, sm.vcomp, 1e-5) and close(ours.scale, sm.scale, 1e-5)


def test_hessian_is_statsmodels_hessian():
    """The standard errors come from the Hessian statsmodels computes, at any variances
    (with the GLS fixed effects, where statsmodels drops a term that is then 0)."""
    from statsmodels.regression.mixed_linear_model import MixedLMParams

    long = simulate(**DATASETS["seen_only_at_post"])
    model = random_cohort_spec(long, "~post")
    model.reml = True
    g, lam = np.array([[0.7, 0.1], [0.1, 0.4]]), 2.3
    stats = lmm._sums(long["cohort"].to_numpy(), long["participant"].to_numpy(),
                      long["post"].to_numpy(), long["score"].to_numpy())
    xvx, xvy, _, _ = lmm._pieces(stats, g[None], np.array([lam]))
    beta = np.linalg.solve(xvx[0], xvy[0])
    params = MixedLMParams.from_components(fe_params=beta, cov_re=g, vcomp=np.array([lam]))
    theta = np.r_[g[np.tril_indices(2)], lam]
    ours = lmm._hessian(stats, beta, theta, 2, 1e-5 * np.maximum(np.abs(theta), 1e-2))
    theirs, _ = model.hessian(params)
    np.testing.assert_allclose(ours, theirs, rtol=1e-6, atol=1e-6 * np.abs(theirs).max())


@pytest.mark.parametrize("name", ["attrition", "cohorts_of_1_and_2"])
def test_model_rows_equal_statsmodels_rows(name):
    """estimate, se, Wald CI and p as _term_rows makes them from the statsmodels fit."""
    long = simulate(**DATASETS[name])
    sm = statsmodels_fit(long, "~post")
    theirs = statsmodels_rows(sm, {"Intercept": ("from_wave_mean", None),
                                   "post": ("change", None)})
    ours = random_cohort_model(long)
    assert [r["term"] for r in ours] == ["from_wave_mean", "change"]
    for a, b in zip(ours, theirs):
        for column in ["estimate", "se", "ci_low", "ci_high", "p"]:
            assert a[column] == pytest.approx(b[column], rel=1e-5, abs=1e-10), column
        assert (a["n_obs"], a["n_groups"], a["converged"], a["flags"]) == (
            len(long), long["cohort"].nunique(), True, "")


def test_cohort_change_without_variance_drops_the_slope_as_statsmodels_intercept_fit():
    long = simulate(n_cohorts=25, sizes=(10, 25), sd_u1=0.0, seed=3)
    full = lmm.fit_reml(long["cohort"], long["participant"], long["post"], long["score"])
    assert full.slope_singular and "boundary_fit" in full.flags
    rows = random_cohort_model(long)
    assert rows[1]["flags"].split(";")[0] == "random_slope_dropped"
    sm = statsmodels_fit(long, "1")
    assert rows[0]["estimate"] == pytest.approx(sm.fe_params["Intercept"], rel=1e-7)
    assert rows[1]["estimate"] == pytest.approx(sm.fe_params["post"], rel=1e-7)
    assert rows[1]["se"] == pytest.approx(sm.bse_fe["post"], rel=1e-5)


# ---- lme4 -----------------------------------------------------------------------

LME4_DATA = pd.read_csv(GOLDEN / "lmm_data.csv")
LME4 = pd.read_csv(GOLDEN / "golden_lmm.csv")


@pytest.mark.parametrize("row", LME4.to_dict("records"), ids=lambda r: f"{r['set']}-{r['model']}")
def test_fit_equals_lme4(row):
    data = LME4_DATA[LME4_DATA["set"] == row["set"]]
    fit = lmm.fit_reml(data["cohort"], data["participant"], data["post"], data["score"],
                       slope=row["model"] == "slope")
    se = np.sqrt(np.diag(fit.cov_fe_gls))  # lme4's vcov(): sigma^2 (X'V^-1X)^-1
    assert fit.fe_params[0] == pytest.approx(row["intercept"], rel=1e-7)
    assert fit.fe_params[1] == pytest.approx(row["change"], rel=1e-7)
    assert se == pytest.approx([row["se_intercept"], row["se_change"]], rel=1e-5)
    assert fit.llf == pytest.approx(row["reml_loglik"], rel=1e-9)
    # lme4 stops its optimiser earlier than we do: variances agree to ~3e-6.
    ours = {"var_cohort": fit.cov_re[0, 0], "var_participant": fit.vcomp,
            "var_residual": fit.scale}
    if row["model"] == "slope":
        ours |= {"var_cohort_slope": fit.cov_re[1, 1], "cov_cohort": fit.cov_re[0, 1]}
        assert fit.slope_singular == row["singular"]
    largest = max(abs(row[k]) for k in ours)
    for key, value in ours.items():
        assert value == pytest.approx(row[key], rel=2e-5, abs=1e-5 * largest), key
    assert fit.llf >= row["reml_loglik"] - 1e-9 * abs(row["reml_loglik"])


@pytest.mark.parametrize("name", ["no_slope_variance", "tiny_cohorts"])
def test_singular_lme4_fits_are_refitted_with_a_random_intercept(name):
    data = LME4_DATA[LME4_DATA["set"] == name].drop(columns="set")
    expected = LME4[(LME4["set"] == name) & (LME4["model"] == "intercept")].iloc[0]
    rows = {r["term"]: r for r in random_cohort_model(data)}
    assert rows["change"]["flags"].startswith("random_slope_dropped")
    assert rows["change"]["estimate"] == pytest.approx(expected["change"], rel=1e-7)
    assert rows["from_wave_mean"]["estimate"] == pytest.approx(expected["intercept"], rel=1e-7)
    assert rows["change"]["converged"] and rows["change"]["n_groups"] == data["cohort"].nunique()


# ---- the cohort fixed-effects model ------------------------------------------------

COHORT_FIXED = pd.read_csv(GOLDEN / "golden_cohort_fixed.csv")


def golden_subset(name):
    """The rows make_golden_cohort_fixed.R fitted for set ``name``."""
    expected = COHORT_FIXED[COHORT_FIXED["set"] == name]
    source = {"shared_labels": "seen_once"}.get(name, name)
    data = LME4_DATA[(LME4_DATA["set"] == source)
                     & LME4_DATA["cohort"].isin(expected["cohort"])].drop(columns="set")
    if name == "shared_labels":
        data = data.assign(participant=data["participant"].str.replace(r"^c\d+_", "",
                                                                        regex=True))
    return data, expected


def design_of(long):
    cohorts, codes = np.unique(long["cohort"], return_inverse=True)
    indicator = (codes[:, None] == np.arange(len(cohorts))).astype(float)
    return np.hstack([indicator, indicator * long["post"].to_numpy()[:, None]])


@pytest.mark.parametrize("name", COHORT_FIXED["set"].unique())
def test_cohort_fixed_model_equals_lme4(name):
    """Every figure of the rows, lme4's variances and vcov, and statsmodels' standard
    errors (the Hessian with cross terms) recomputed in R at lme4's optimum."""
    data, expected = golden_subset(name)
    ours = pd.DataFrame(cohort_fixed_model(data))
    expected = expected.set_index(["term", "cohort"]).loc[list(zip(ours["term"],
                                                                   ours["cohort"]))]
    assert len(ours) == len(expected) and (ours["n_obs"] == expected["n_obs"].to_numpy()).all()
    assert ours["converged"].all() and (ours["flags"] == "").all()
    for ours_column, theirs_column in [("estimate", "estimate"), ("se", "se_hessian"),
                                       ("ci_low", "ci_low"), ("ci_high", "ci_high")]:
        np.testing.assert_allclose(ours[ours_column], expected[theirs_column], rtol=1e-6,
                                   atol=1e-7 * expected["se_lme4"].max(), err_msg=ours_column)
    np.testing.assert_allclose(ours["p"], expected["p"], rtol=1e-5, atol=1e-12)
    fit = lmm.fit_reml_person(design_of(data), data["participant"], data["score"])
    cohorts = sorted(data["cohort"].unique())
    order = [f(c) for c in cohorts for f in (lambda c: ("from_wave_mean", c),
                                            lambda c: ("change", c))]
    gls = np.sqrt(np.diag(fit.cov_fe_gls))[np.ravel([[i, len(cohorts) + i]
                                                     for i in range(len(cohorts))])]
    np.testing.assert_allclose(gls, expected.loc[order, "se_lme4"], rtol=1e-7)
    first = expected.iloc[0]
    assert fit.llf == pytest.approx(first["reml_loglik"], rel=1e-10)
    assert fit.vcomp == pytest.approx(first["var_participant"], rel=1e-6)
    assert fit.scale == pytest.approx(first["var_residual"], rel=1e-6)


COHORT_FIXED_CASES = {
    "attrition": dict(n_cohorts=6, sizes=(8, 25), pre_only=0.3, seed=2),
    "seen_only_at_post": dict(n_cohorts=5, sizes=(10, 20), pre_only=0.1, post_only=0.2, seed=3),
    "cohorts_of_2_and_3": dict(sizes=[2, 3, 12, 18], pre_only=0.0, seed=6),
    "retests_at_pre": dict(n_cohorts=4, sizes=(10, 16), repeats=0.2, seed=5),
}


@pytest.mark.parametrize("name", list(COHORT_FIXED_CASES))
def test_cohort_fixed_model_equals_statsmodels(name):
    long = simulate(**COHORT_FIXED_CASES[name])
    sm = fit_statsmodels(cohort_fixed_spec(long))
    names = {}
    for cohort in sorted(long["cohort"].unique()):
        names[f"C(cohort)[{cohort}]"] = ("from_wave_mean", cohort)
        names[f"C(cohort)[{cohort}]:post"] = ("change", cohort)
    theirs = pd.DataFrame(statsmodels_rows(sm, names))
    ours = pd.DataFrame(cohort_fixed_model(long))
    assert (ours[["term", "cohort"]].to_numpy() == theirs[["term", "cohort"]].to_numpy()).all()
    for column in ["estimate", "se", "ci_low", "ci_high", "p"]:
        np.testing.assert_allclose(ours[column], theirs[column], rtol=1e-6, atol=1e-12,
                                   err_msg=column)
    fit = lmm.fit_reml_person(design_of(long), long["participant"], long["score"])
    assert fit.llf == pytest.approx(sm.llf, rel=1e-10)
    assert fit.vcomp == pytest.approx(sm.cov_re.iloc[0, 0], rel=1e-6)
    assert fit.scale == pytest.approx(sm.scale, rel=1e-6)


def test_person_hessian_is_statsmodels_hessian():
    """At any person variance, with the GLS fixed effects."""
    from statsmodels.regression.mixed_linear_model import MixedLMParams

    long = simulate(**COHORT_FIXED_CASES["seen_only_at_post"])
    model = cohort_fixed_spec(long)
    model.reml = True
    stats = lmm._person_sums(model.exog, long["participant"], long["score"].to_numpy())
    lam = 2.3
    xvx, xvy, _, _ = lmm._person_pieces(stats, np.array([lam]))
    beta = np.linalg.solve(xvx[0], xvy[0])
    params = MixedLMParams.from_components(fe_params=beta, cov_re=np.array([[lam]]))
    ours = lmm._person_hessian(stats, beta, lam, 1e-5 * lam)
    theirs, _ = model.hessian(params)
    np.testing.assert_allclose(ours, theirs, rtol=1e-6, atol=1e-6 * np.abs(theirs).max())


def test_cohort_fixed_model_rows_that_cannot_be_fitted_are_flagged():
    long = simulate(**COHORT_FIXED_CASES["attrition"])
    one_wave = long[(long["cohort"] != "c000") | (long["post"] == 0)]
    [row] = cohort_fixed_model(one_wave)
    assert row["flags"].startswith("not_fitted") and np.isnan(row["estimate"])
    assert not row["converged"] and row["n_obs"] == len(one_wave)


def test_cohort_fixed_model_flags_a_person_variance_at_zero():
    long = simulate(**COHORT_FIXED_CASES["attrition"])
    rng = np.random.default_rng(7)
    no_person = long.assign(score=40 - 4 * long["post"] + rng.normal(0, 3, len(long)))
    rows = cohort_fixed_model(no_person)
    assert all("boundary_fit" in r["flags"].split(";") for r in rows)


# ---- behaviour ------------------------------------------------------------------

def test_rows_do_not_depend_on_row_order_or_labels():
    long = simulate(**DATASETS["attrition"])
    shuffled = long.sample(frac=1, random_state=0).reset_index(drop=True)
    # The same participant labels in every cohort: people are nested in cohorts.
    relabelled = shuffled.assign(participant=shuffled.groupby("cohort")["participant"].transform(
        lambda p: "id" + pd.Series(pd.factorize(p)[0], index=p.index).astype(str)))
    assert relabelled.groupby("participant")["cohort"].nunique().max() > 1
    a, b, c = (random_cohort_model(x) for x in (long, shuffled, relabelled))
    for ra, rb, rc in zip(a, b, c):
        assert rb["estimate"] == pytest.approx(ra["estimate"], rel=1e-8)
        assert rc["se"] == pytest.approx(ra["se"], rel=1e-6)


def test_missing_scores_are_dropped_but_counted_in_n_obs():
    long = simulate(**DATASETS["balanced"])
    with_gaps = pd.concat([long, long.head(5).assign(score=np.nan)], ignore_index=True)
    a, b = random_cohort_model(long), random_cohort_model(with_gaps)
    assert b[1]["estimate"] == pytest.approx(a[1]["estimate"], rel=1e-10)
    assert b[1]["n_obs"] == len(with_gaps)


def test_models_that_cannot_be_fitted_are_flagged_rows():
    long = simulate(**DATASETS["balanced"])
    [few] = random_cohort_model(long[long["cohort"].isin(["c000", "c001"])])
    assert few["flags"] == "fewer_than_3_cohorts" and not few["converged"]
    [pre_only] = random_cohort_model(long[long["post"] == 0])
    assert pre_only["flags"].startswith("not_fitted") and np.isnan(pre_only["estimate"])


def test_models_of_unchanged_data_keep_an_earlier_runs_rows(tmp_path, monkeypatch):
    """mixed_model_rows with an earlier run's stored scores and models: only the model
    whose data changed is fitted again, and the table is the one fitted afresh."""
    from pipelines.analysis import models, tables

    long = simulate(**COHORT_FIXED_CASES["attrition"])
    scores = pd.concat([long.assign(instrument="i", scale=s) for s in ("a", "b")],
                       ignore_index=True)
    scores["wave"] = np.where(scores["post"] == 1, "post", "pre")
    scores = scores.drop(columns="post")
    pairs = [("pre", "post")]
    no_change = pd.DataFrame(columns=["cohort", "instrument", "scale", "from_wave", "to_wave",
                                      "d_z", "n_pairs"])
    tables.models_table(scores, pairs, no_change).to_parquet(tmp_path / "models.parquet")
    scores.to_parquet(tmp_path / "scores.parquet")
    earlier = (pd.read_parquet(tmp_path / "scores.parquet"),
               pd.read_parquet(tmp_path / "models.parquet"))
    changed = scores.copy()
    changed.loc[changed.index[changed["scale"] == "b"][0], "score"] += 1.0
    fitted = []
    monkeypatch.setattr(tables, "cohort_fixed_model",
                        lambda data: fitted.append(data) or models.cohort_fixed_model(data))
    rows = tables.mixed_model_rows(changed, pairs, earlier)
    assert len(fitted) == 1 and fitted[0]["score"].sum() == pytest.approx(
        changed.loc[changed["scale"] == "b", "score"].sum())
    pd.testing.assert_frame_equal(tables.models_table(changed, pairs, no_change, rows),
                                  tables.models_table(changed, pairs, no_change))
