"""Change statistics and models against R (values in tests/golden/, made by
tests/golden/make_golden_change.R: stats::t.test, stats::wilcox.test, a d_z interval by
uniroot on pt(ncp=), lme4::lmer and metafor::rma; versions in VERSIONS_change.txt)."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pipelines.analysis.change import paired_change
from pipelines.analysis.models import (
    cohort_fixed_model, d_z_variance, random_cohort_model, random_effects_meta,
)

GOLDEN = Path(__file__).parent / "golden"
DATA = pd.read_csv(GOLDEN / "change_data.csv")
EXPECTED = pd.read_csv(GOLDEN / "golden_change.csv").set_index("set")


@pytest.mark.parametrize("name", list(EXPECTED.index))
@pytest.mark.parametrize("column", ["mean_diff", "t", "df", "p", "ci_low", "ci_high", "d_z",
                                    "d_z_ci_low", "d_z_ci_high", "d_av", "g_av",
                                    "wilcoxon_v", "wilcoxon_p"])
def test_paired_change_equals_r(name, column):
    data = DATA[DATA["set"] == name]
    ours = paired_change(data["pre"], data["post"], better="higher")
    assert ours[column] == pytest.approx(EXPECTED.loc[name, column], abs=1e-9, rel=1e-9)


MIXED = pd.read_csv(GOLDEN / "mixed_data.csv")
LME4 = pd.read_csv(GOLDEN / "golden_mixed.csv")


def test_random_cohort_model_fixed_effects_equal_lme4():
    ours = {r["term"]: r for r in random_cohort_model(MIXED)}
    theirs = LME4[LME4["model"] == "random_cohorts"].set_index("term")["estimate"]
    assert ours["from_wave_mean"]["estimate"] == pytest.approx(theirs["(Intercept)"], abs=1e-4)
    assert ours["change"]["estimate"] == pytest.approx(theirs["post"], abs=1e-4)
    assert ours["change"]["converged"] and ours["change"]["n_groups"] == 40


def test_cohort_fixed_model_equals_lme4():
    few = MIXED[MIXED["cohort"].isin(["c01", "c02", "c03", "c04"])]
    ours = {(r["term"], r["cohort"]): r for r in cohort_fixed_model(few)}
    theirs = LME4[LME4["model"] == "cohort_fixed"].set_index("term")
    for cohort in ["c01", "c02", "c03", "c04"]:
        assert ours[("change", cohort)]["estimate"] == pytest.approx(
            theirs.loc[f"factor(cohort){cohort}:post", "estimate"], abs=1e-4)
        assert ours[("change", cohort)]["se"] == pytest.approx(
            theirs.loc[f"factor(cohort){cohort}:post", "se"], rel=2e-3)
        assert ours[("from_wave_mean", cohort)]["estimate"] == pytest.approx(
            theirs.loc[f"factor(cohort){cohort}", "estimate"], abs=1e-4)


def test_model_that_cannot_be_fitted_is_a_flagged_row():
    two = MIXED[MIXED["cohort"].isin(["c01", "c02"])]
    [row] = random_cohort_model(two)
    assert not row["converged"] and row["flags"] == "fewer_than_3_cohorts"
    assert np.isnan(row["estimate"])


META = pd.read_csv(GOLDEN / "meta_data.csv")
METAFOR = pd.read_csv(GOLDEN / "golden_meta.csv").set_index("method")


def test_d_z_variance_formula_matches_the_r_script():
    np.testing.assert_allclose(d_z_variance(META["yi"], META["n"]), META["vi"], rtol=1e-12)


# metafor stops its REML iterations when tau^2 changes by less than 1e-5 (control
# threshold); ours converges further, hence the looser relative tolerance for REML.
@pytest.mark.parametrize("method,tol", [("DL", 1e-9), ("REML", 5e-5)])
@pytest.mark.parametrize("column", ["estimate", "se", "ci_low", "ci_high", "tau2", "i2", "q"])
def test_meta_analysis_equals_metafor(method, tol, column):
    ours = random_effects_meta(META["yi"], META["vi"], method=method)
    assert ours[column] == pytest.approx(METAFOR.loc[method, column], rel=tol, abs=tol)


# ---- the change table's own figures (tests/golden/make_golden_change.R, last part) ------

TABLE_DATA = pd.read_csv(GOLDEN / "change_table_data.csv")
TABLE = pd.read_csv(GOLDEN / "golden_change_table.csv").set_index("figure")["value"]
BINARY = pd.read_csv(GOLDEN / "sim_binary.csv")


def knowledge_scores() -> pd.DataFrame:
    """The R script's people as a percent-correct score at pre and (completers) post."""
    long = TABLE_DATA.melt(id_vars="participant", var_name="wave", value_name="score")
    return long.dropna().assign(cohort="c", instrument="k", scale="percent_correct")


@pytest.fixture(scope="module")
def change_row():
    """The change table (RCI included) of the R script's data, built as the pipeline does."""
    from types import SimpleNamespace

    from pipelines.analysis.reliability import cronbach_alpha
    from pipelines.analysis.tables import change_tables, rci_references

    scores = knowledge_scores()
    forms = [BINARY.iloc[:150], BINARY.iloc[150:]]
    reliability = pd.DataFrame({"cohort": "ALL", "wave": "pre", "instrument": "k",
                                "scale": "percent_correct", "form": ["A", "B"],
                                "n": [150, 150], "alpha": [cronbach_alpha(f) for f in forms]})
    refs = rci_references(scores, reliability, {"k": SimpleNamespace(subscales=[])}, "pre")
    change, individual, _ = change_tables(scores, [("pre", "post")],
                                          {("k", "percent_correct"): "higher"}, refs)
    return change.iloc[0], individual, reliability


@pytest.mark.parametrize("column", ["hake_g", "attrition_diff", "attrition_d", "n_lost",
                                    "rci_reliability", "rci_s_diff", "rci_improved",
                                    "rci_deteriorated", "rci_no_change"])
def test_change_table_figures_equal_r(change_row, column):
    row, _, _ = change_row
    assert row[column] == pytest.approx(TABLE[column], abs=1e-9, rel=1e-9)
    assert row["rci_reliability_source"] == "pooled_baseline_alpha"


def test_individual_rci_equals_r(change_row):
    _, individual, reliability = change_row
    rci = individual.set_index("participant")["rci"]
    assert rci["p01"] == pytest.approx(TABLE["rci_first"], rel=1e-9)
    assert rci.abs().sum() == pytest.approx(TABLE["rci_sum_abs"], rel=1e-9)
    assert reliability["alpha"].tolist() == pytest.approx(
        [TABLE["alpha_form_a"], TABLE["alpha_form_b"]], rel=1e-9)


def test_published_alpha_below_30_people_at_baseline():
    """Below 30 baseline people (or without an alpha) the declared alpha replaces the pooled one."""
    from types import SimpleNamespace

    from pipelines.analysis.change import rci_reliability, rci_s_diff
    from pipelines.analysis.tables import rci_references

    scores = knowledge_scores()
    scores = scores[scores["participant"].isin(TABLE_DATA["participant"][:20])]
    inst = {"k": SimpleNamespace(subscales=[SimpleNamespace(id="percent_correct",
                                                            reliability=0.85)])}
    for n, expected in ((29, "published_alpha"), (30, "pooled_baseline_alpha")):
        reliability = pd.DataFrame({"cohort": "ALL", "wave": "pre", "instrument": "k",
                                    "scale": "percent_correct", "n": [n], "alpha": [0.7]})
        [(sd, r_xx, source)] = rci_references(scores, reliability, inst, "pre").values()
        assert source == expected and r_xx == (0.85 if n < 30 else 0.7)
    assert float(rci_s_diff(sd, 0.85)) == pytest.approx(TABLE["s_diff_published"], rel=1e-12)
    assert rci_reliability([np.nan], [500], published=0.85) == (0.85, "published_alpha")
    assert rci_reliability([0.7], [500], published=None) == (0.7, "pooled_baseline_alpha")
    assert rci_reliability([0.7], [10], published=None) == (0.7, "pooled_baseline_alpha")
    assert np.isnan(rci_reliability([np.nan], [10])[0])
