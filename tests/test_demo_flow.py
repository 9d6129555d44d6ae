"""The demo program end to end through the real Prefect flow."""

import re
import shutil
import subprocess

import pytest

from pipelines.ingest.pseudonym import normalise_identifier, pseudonym
from tests.conftest import outputs_text


def test_every_row_is_valid_or_quarantined(demo_run):
    acc = demo_run["tables"]["accounting"]
    assert acc["balanced"].all()
    s = demo_run["summary"]
    assert s["rows_read"] == s["rows_valid"] + s["rows_quarantined"]
    assert s["problems"] == []
    rows_per_file = demo_run["truth"]["rows_per_file"]
    for row in acc.itertuples():
        assert row.rows_read == rows_per_file[row.source_file]


def test_planted_problems_land_in_quarantine(demo_run):
    q = demo_run["tables"]["quarantine"]
    for expected in demo_run["truth"]["expected_quarantine"]:
        hits = q[(q["instrument"] == expected["instrument"]) & (q["rule"] == expected["rule"])
                 & q["source_file"].str.startswith(expected["file"].split(".")[0])]
        assert len(hits) == expected["rows"], expected
    assert (q["detail"] != "").all() and (q["participant"].str.startswith("P") | (q["participant"] == "")).all()


def test_recovered_effects_point_the_right_way(demo_run):
    change = demo_run["tables"]["change"]
    pre_post = change[(change["from_wave"] == "pre") & (change["to_wave"] == "post")]
    big = pre_post[pre_post["n_pairs"] >= 12]

    def rows(inst, scale):
        return big[(big["instrument"] == inst) & (big["scale"] == scale)]

    knowledge = rows("tic_knowledge", "percent_correct")
    assert len(knowledge) >= 3 and (knowledge["ci_low"] > 0).all()  # knowledge up
    stigma = rows("omshc", "total")
    assert (stigma["mean_diff"] < 0).all() and (stigma["ci_high"] < 0).any()  # stigma down
    burnout = rows("proqol", "burnout")  # flat: most intervals cover zero
    assert ((burnout["ci_low"] < 0) & (burnout["ci_high"] > 0)).mean() >= 0.5


def test_cohort_intervals_cover_the_simulators_expected_change(demo_run):
    from instruments import load_builtin
    from pipelines.demo import expected_changes

    expected = expected_changes(demo_run["truth"], load_builtin())
    change = demo_run["tables"]["change"].set_index(["instrument", "scale", "to_wave"])
    change = change[change["from_wave"] == "pre"]
    covered = []
    for (inst, scale, wave), value in expected.items():
        rows = change.loc[(inst, scale, wave)]
        covered += ((rows["ci_low"] <= value) & (value <= rows["ci_high"])).tolist()
    # ~120 nominal 95% intervals (5 cohorts x 12 scales x 2 pairs); subscales share people,
    # so misses come in clusters: require 85%. A sign or scale bug gives far less.
    assert len(covered) >= 100 and sum(covered) / len(covered) >= 0.85


def test_models_recover_the_program_effect(demo_run):
    from instruments import load_builtin
    from pipelines.demo import expected_changes

    expected = expected_changes(demo_run["truth"], load_builtin())
    models = demo_run["tables"]["models"]
    mixed = models[(models["model"] == "mixed_random_cohorts") & (models["term"] == "change")
                   & (models["from_wave"] == "pre")].set_index(["instrument", "scale", "to_wave"])
    for key in [("omshc", "total", "post"), ("tic_knowledge", "anchor_percent_correct", "post")]:
        row = mixed.loc[key]
        assert abs(row["estimate"] - expected[key]) < 3 * row["se"], key
    meta = models[(models["model"] == "meta_reml") & (models["scale"] == "percent_correct")
                  & (models["to_wave"] == "post")].iloc[0]
    assert meta["ci_low"] > 0 and meta["n_groups"] == 5  # d_z pooled, positive = improvement
    assert models["estimate"].notna().sum() > 0.9 * len(models)


def test_retyped_email_is_one_person(demo_run):
    key = (demo_run["root"] / "secrets" / "pseudonym.key").read_text().strip().encode()
    retyped = demo_run["truth"]["retyped_email"]
    person = pseudonym(normalise_identifier(retyped["as_typed_at_pre"]), key)
    assert person == pseudonym(normalise_identifier(retyped["as_typed_at_post"]), key)
    scores = demo_run["tables"]["scores"]
    mine = scores[scores["participant"] == person]
    for inst in ("proqol", "omshc", "tic_knowledge"):
        assert {"pre", "post"} <= set(mine[mine["instrument"] == inst]["wave"]), inst


def test_no_personal_data_in_any_output(demo_run):
    text = outputs_text(demo_run["root"]).casefold()
    pii = demo_run["truth"]["pii"]
    for value in pii["emails"] + pii["names"] + pii["dni"] + pii["phones"]:
        assert value.casefold() not in text, value
    emails = re.compile(r"[\w.+-]+@[\w-]+\.[a-z]{2,}")
    for path in (demo_run["root"] / "outputs").rglob("*"):
        if path.suffix in {".csv", ".html", ".md", ".json", ".R", ".sps"}:
            assert not emails.search(path.read_text(encoding="utf-8")), path.name


def test_reports_per_cohort_with_small_cohort_suppressed(demo_run):
    reports = demo_run["root"] / "outputs" / "reports"
    pages = sorted(p.name for p in reports.glob("cohort_*_es.html"))
    assert len(pages) == 5
    small = (reports / "cohort_laredo-2026-1_es.html").read_text(encoding="utf-8")
    assert "menos de 5 personas" in small
    big = (reports / "cohort_alto-trujillo-2026-1_es.html").read_text(encoding="utf-8")
    change = demo_run["tables"]["change"]
    row = change[(change["cohort"] == "alto-trujillo-2026-1") & (change["scale"] == "percent_correct")
                 & (change["to_wave"] == "post")].iloc[0]
    assert f"{row['mean_to']:.1f}".replace(".", ",") in big  # headline figure, Spanish format


def test_reliability_table_has_cohort_and_pooled_rows(demo_run):
    rel = demo_run["tables"]["reliability"]
    pooled = rel[(rel["cohort"] == "ALL") & (rel["wave"] == "pre")].set_index(["instrument", "scale"])
    assert pooled.loc[("proqol", "burnout"), "n"] > 60
    assert pooled.loc[("omshc", "total"), "alpha"] > 0.7
    assert set(rel["cohort"]) >= {"ALL", "laredo-2026-1"}


def test_reliability_table_has_every_coefficient(demo_run):
    rel = demo_run["tables"]["reliability"]
    pooled = rel[rel["cohort"] == "ALL"].set_index(["wave", "instrument", "scale", "form"]).sort_index()
    stss = pooled.loc[("pre", "stss", "total", "")]
    assert stss["k"] == 17 and stss["alpha_boot_low"] < stss["alpha"] < stss["alpha_boot_high"]
    assert 0 < stss["omega_h"] < stss["omega_total"] <= 1  # three subscales: Schmid-Leiman
    assert stss["n_boot"] == 2000 and stss["std_alpha"] > 0 and stss["lambda6"] > 0
    knowledge = pooled.loc[("pre", "tic_knowledge", "percent_correct")]
    assert list(knowledge.index) == ["A", "B"]  # KR-20 per form: their items differ
    assert knowledge["kr20"].notna().all() and knowledge["kr21"].le(knowledge["kr20"]).all()
    # SEM of percent correct is in percentage points.
    assert knowledge["sem"].between(3, 30).all()
    small = rel[rel["cohort"] == "laredo-2026-1"]
    assert small["flags"].str.contains("n_below_10").all()


def test_cohort_report_shows_first_wave_reliability_with_caveats(demo_run):
    reports = demo_run["root"] / "outputs" / "reports"
    rel = demo_run["tables"]["reliability"]
    big = (reports / "cohort_alto-trujillo-2026-1_es.html").read_text(encoding="utf-8")
    row = rel[(rel["cohort"] == "alto-trujillo-2026-1") & (rel["wave"] == "pre")
              & (rel["instrument"] == "stss") & (rel["scale"] == "total")].iloc[0]
    assert f"{row['alpha']:.2f}".replace(".", ",") in big
    assert "forma A" in big  # knowledge test reliability per form
    small = (reports / "cohort_viru-2026-1_es.html").read_text(encoding="utf-8")
    assert "menos de 10 personas: lea la cifra del programa completo" in small


def test_items_table_flags_and_pooled_rows(demo_run):
    items = demo_run["tables"]["items"]
    likert = items[(items["instrument"] == "omshc") & (items["cohort"] == "ALL")
                   & (items["scale"] == "total")]
    assert len(likert) == 15 * 3 and likert["r_drop"].between(-1, 1).all()
    knowledge = items[items["instrument"] == "tic_knowledge"]
    assert knowledge["difficulty"].between(0, 1).all() and knowledge["mean"].isna().all()
    options = demo_run["tables"]["item_options"]
    single = options[options["instrument"] != "tic_knowledge"]
    assert single.groupby(["cohort", "wave", "item"])["share"].sum().round(9).eq(1).all()
    knowledge = options[options["instrument"] == "tic_knowledge"]
    shares = knowledge.groupby(["cohort", "wave", "form", "item"])["share"].sum()
    keys = knowledge.groupby(["cohort", "wave", "form", "item"])["is_key"].sum()
    # one share per item analysed in the items table: no item without its options
    analysed = items[items["instrument"] == "tic_knowledge"].set_index(
        ["cohort", "wave", "form", "item"]).index
    assert sorted(shares.index) == sorted(analysed)
    # every respondent is counted, an unanswered (or set-aside) knowledge answer chooses nothing
    assert shares.round(9).le(1).all() and shares.gt(0.9).all()
    assert keys.ge(1).all()


def test_scores_table_columns_are_stable(demo_run):
    assert list(demo_run["tables"]["scores"].columns) == [
        "cohort", "participant", "wave", "instrument", "scale", "score",
        "items_answered", "items_total", "prorated", "band"]


@pytest.mark.skipif(shutil.which("pspp") is None, reason="pspp not installed (CI installs it)")
def test_pspp_opens_the_demo_sav(demo_run):
    tables = demo_run["root"] / "outputs" / "tables"
    syntax = demo_run["root"] / "check.sps"
    syntax.write_text(f"GET FILE='{tables / 'change.sav'}'.\nDISPLAY DICTIONARY.\n"
                      "DESCRIPTIVES VARIABLES=d_z.\n", encoding="utf-8")
    out = subprocess.run(["pspp", "-O", "format=txt", str(syntax)], capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "d_z de Cohen" in out.stdout and "Trujillo" in out.stdout  # labels (PSPP wraps long ones)
    mean = demo_run["tables"]["change"]["d_z"].mean()
    assert f"{mean:.2f}".replace("0.", ".", 1) in out.stdout  # PSPP writes -.11 for -0.11


@pytest.mark.skipif(shutil.which("pspp") is None, reason="pspp not installed (CI installs it)")
def test_pspp_opens_reliability_and_item_tables(demo_run):
    tables = demo_run["root"] / "outputs" / "tables"
    syntax = demo_run["root"] / "check_items.sps"
    syntax.write_text(
        f"GET FILE='{tables / 'reliability.sav'}'.\nDESCRIPTIVES VARIABLES=omega_total.\n"
        f"GET FILE='{tables / 'item_options.sav'}'.\nFREQUENCIES VARIABLES=is_key.\n",
        encoding="utf-8")
    out = subprocess.run(["pspp", "-O", "format=txt", str(syntax)], capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    options = demo_run["tables"]["item_options"]
    assert f"{int(options['is_key'].eq(True).sum())}" in out.stdout  # keyed options counted
    assert "Omega total" in out.stdout
