"""Observer-rated competencies (issue 24): the rating instrument kind, raters at ingest, the
demo's planted raters, the interrater/raters tables and the reports' competence section."""

from pathlib import Path

import numpy as np
import pytest

from instruments import load_builtin, load_instrument
from instruments.rating import domains
from pipelines.errors import ConfigError

RATING = """
id: mini_rating
version: "1"
kind: rating
title: {en: Mini rating, es: Mini}
citation: test
licence: test
harmful_to: 1
helpful_from: 3
response_options:
  - {code: 1, en: Harmful, es: Dañino, anchor: {en: does harm, es: daña}}
  - {code: 2, en: Basic, es: Básico}
  - {code: 3, en: Helpful, es: Útil}
  - {code: 4, en: Advanced, es: Avanzado}
items: [{id: a1}, {id: a2}, {id: b1}]
subscales:
  - {id: da, label: {en: A}, items: [a1, a2], scoring: mean}
  - {id: db, label: {en: B}, items: [b1], scoring: mean}
  - {id: total, label: {en: Total}, items: [a1, a2, b1], scoring: mean}
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "mini_rating.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_demo_roleplay_tool_is_a_rating_instrument():
    tool = load_builtin()["tic_roleplay"]
    assert tool.kind == "rating" and 8 <= len(tool.items) <= 10
    assert [o.code for o in tool.response_options] == [1, 2, 3, 4]
    assert all(o.anchor and o.anchor.es and o.anchor.en for o in tool.response_options)
    assert set(domains(tool).values()) == {"engagement", "safety", "collaboration"}
    assert all(i.text.es and i.text.en for i in tool.items)
    assert "CC BY" in tool.licence


def test_good_rating_yaml_loads(tmp_path):
    inst = load_instrument(write(tmp_path, RATING))
    assert domains(inst) == {"a1": "da", "a2": "da", "b1": "db"}
    assert inst.response_options[0].anchor.en == "does harm"


@pytest.mark.parametrize("patch, expected", [
    (("items: [a1, a2], scoring", "items: [a1], scoring"), "in none: ['a2']"),
    (("items: [b1], scoring", "items: [b1, a1], scoring"), "in two: ['a1']"),
    (("id: total, label: {en: Total}, items: [a1, a2, b1]",
      "id: total, label: {en: Total}, items: [a1, a2]"), "subscale 'total' listing every item"),
    (("{code: 2, en: Basic", "{code: 5, en: Basic"), "must rise"),
    (("{code: 2, en: Basic", "{code: b, en: Basic"), "whole-number codes"),
    (("helpful_from: 3", "helpful_from: 7"), "must be level codes"),
    (("helpful_from: 3\n", ""), "needs harmful_to and helpful_from"),
    (("items: [b1], scoring: mean", "items: [b1], scoring: sum"), "scoring: mean"),
])
def test_broken_rating_yaml_is_one_line_naming_file_and_field(tmp_path, patch, expected):
    assert patch[0] in RATING
    path = write(tmp_path, RATING.replace(*patch))
    with pytest.raises(ConfigError) as err:
        load_instrument(path)
    message = str(err.value)
    assert str(path) in message and expected in message and "\n" not in message


# --- raters at ingest -------------------------------------------------------------------------
def roleplay_program(tmp_path: Path, rows: list[str], **source) -> Path:
    """A one-cohort program with one role-play ratings CSV (``rows`` after the header)."""
    from tests.helpers import small_program

    header = "email,tutor,sede,momento," + ",".join(f"RP{n}" for n in range(1, 10))
    spec = {"name": "s", "pattern": "roleplay_*.csv", "identifier": ["email"],
            "rater": ["tutor"], "cohort": {"column": "sede"}, "wave": {"column": "momento"},
            "instruments": {"tic_roleplay": {"items": "RP{n}"}}, **source}
    return small_program(tmp_path, {"roleplay_1.csv": "\n".join([header, *rows]) + "\n"},
                         sources=[spec], max_failing_share=0.9)


def levels(*codes) -> str:
    return ",".join(str(c) for c in codes)


@pytest.fixture
def keyed(monkeypatch):
    monkeypatch.setenv("CAPACITAR_PSEUDONYM_KEY", "k" * 32)
    monkeypatch.setenv("CAPACITAR_SETTLE_SECONDS", "0")


def ingest_and_validate(root: Path):
    from pipelines import stages

    ctx = stages.load_context(root)
    ingested = stages.ingest(ctx)
    contracts = stages.validate(ctx, ingested)
    return ctx, contracts, stages.accounting_table(ingested, contracts)


def test_ratings_keep_a_rater_pseudonym_and_every_line_is_accounted_for(tmp_path, keyed):
    from pipelines.ingest.pseudonym import normalise_identifier, pseudonym

    rows = [f"ana@x.pe,Lic. Rosa Díaz,Virú,pre,{levels(*[3] * 9)}",
            f"ana@x.pe,Ps. Juan Soto,Virú,pre,{levels(*[2] * 9)}",
            f"ana@x.pe,Lic. Rosa Díaz,Virú,post,{levels(*[4] * 8, 'útil')}",   # label -> 3
            f"luis@x.pe,Lic. Rosa Díaz,Virú,pre,{levels(*[3] * 8, 7)}",       # 7: cell
            f"luis@x.pe,,Virú,post,{levels(*[3] * 9)}",                       # no rater: row
            f"eva@x.pe,Ps. Juan Soto,Virú,pre,{levels(*[1] * 9)}",            # twice: rows
            f"eva@x.pe,ps. juan soto ,Virú,pre,{levels(*[2] * 9)}"]
    _, contracts, accounting = ingest_and_validate(roleplay_program(tmp_path, rows))
    valid = contracts.valid["tic_roleplay"]
    rosa = pseudonym(normalise_identifier("Lic. Rosa Díaz"), b"k" * 32, "R")
    assert rosa.startswith("R") and valid["rater"].str.match(r"^R[0-9a-f]{12}$").all()
    assert (valid["rater"] == rosa).sum() == 3 and len(valid) == 4
    assert valid.loc[valid["wave"] == "post", "r09"].tolist() == [3.0]
    q = contracts.quarantine.set_index("source_row")
    assert q.loc[5, "rule"] == "code_out_of_range" and q.loc[5, "scope"] == "cell"
    assert q.loc[5, "column"] == "r09" and valid["r09"].isna().sum() == 1
    assert q.loc[6, "rule"] == "missing_rater" and q.loc[6, "scope"] == "row"
    assert q.loc[[7, 8], "rule"].tolist() == ["duplicate_rating"] * 2
    assert accounting["balanced"].all() and accounting["rows_in"].sum() == 7
    assert int(accounting["rows_valid"].sum()) == 4 and int(accounting["rows_quarantined"].sum()) == 3
    text = contracts.quarantine.to_csv() + valid.to_csv()
    assert "Rosa" not in text and "Soto" not in text and "ana@x.pe" not in text


def test_rating_source_without_rater_is_one_line(tmp_path, keyed):
    root = roleplay_program(tmp_path, [f"ana@x.pe,R,Virú,pre,{levels(*[3] * 9)}"], rater=[])
    from pipelines import stages

    with pytest.raises(ConfigError) as err:
        stages.load_context(root)
    assert "rating instrument" in str(err.value) and "rater:" in str(err.value)
    assert "\n" not in str(err.value)


# --- the demo: planted raters recovered ---------------------------------------------------------
def rater_names(demo_run) -> dict[str, str]:
    """Rater pseudonym -> tutor name, with the demo's key (the test knows the key; outputs do not)."""
    from pipelines.ingest.pseudonym import load_key, normalise_identifier, pseudonym

    key = load_key(demo_run["root"] / "secrets" / "pseudonym.key")
    return {pseudonym(normalise_identifier(name), key, "R"): name
            for name in demo_run["truth"]["roleplay"]["tutors"]}


def test_demo_flags_the_planted_harsh_and_drifting_raters_and_no_other(demo_run):
    truth, names = demo_run["truth"]["roleplay"], rater_names(demo_run)
    raters = demo_run["tables"]["raters"]
    program = raters[(raters["cohort"] == "ALL") & (raters["measure"] == "total")
                     & (raters["wave"] == "ALL")].assign(name=lambda f: f["rater"].map(names))
    assert set(program["name"]) == set(truth["tutors"])  # every tutor has a row, as a pseudonym
    harsh = program.loc[program["direction"] == "harsh", "name"].tolist()
    lenient = program.loc[program["direction"] == "lenient", "name"].tolist()
    drifting = program.loc[program["drifting"], "name"].tolist()
    assert harsh == [truth["harsh_rater"]] and lenient == []
    assert drifting == [truth["drifting_rater"]]
    drifter = program.set_index("name").loc[truth["drifting_rater"]]
    assert drifter["drift"] < 0 and (drifter["drift_from"], drifter["drift_to"]) == ("pre", "post")


def test_demo_interrater_reliability_and_rated_change(demo_run):
    ir = demo_run["tables"]["interrater"]
    total = ir[(ir["cohort"] == "ALL") & (ir["measure"] == "total")].iloc[0]
    assert total["n_targets"] >= 30 and total["headline_form"] == "icc1"
    assert 0.5 < total["headline"] < 0.95 and total["agreement_level"] in ("moderate", "good")
    change = demo_run["tables"]["change"]
    rated = change[change["instrument"] == "tic_roleplay"]
    assert set(rated["scale"]) == {"engagement", "safety", "collaboration", "total"}
    assert (rated["rci_reliability_source"] == "pooled_interrater_icc").all()
    pooled = ir[(ir["cohort"] == "ALL") & (ir["measure_kind"] != "item")].set_index("measure")
    assert np.allclose(rated.groupby("scale")["rci_reliability"].first().sort_index(),
                       pooled["headline"].sort_index())  # usual raters per person: 1
    big = rated[(rated["scale"] == "total") & (rated["n_pairs"] >= 12)]
    assert (big["mean_diff"] > 0).all() and (big["verdict"] == "improved").any()
    scores = demo_run["tables"]["scores"]
    assert not scores[scores["instrument"] == "tic_roleplay"].duplicated(
        ["participant", "wave", "scale"]).any()  # one score per person, wave and scale
    levels = demo_run["tables"]["competence_levels"]
    shares = levels.groupby(["cohort", "wave", "measure"])["share"].sum()
    assert np.allclose(shares, 1.0)


# --- reports --------------------------------------------------------------------------------
SECTION = {"es": "Competencias observadas (juegos de roles)",
           "en": "Observed competencies (role-plays)"}


def test_demo_reports_show_the_competence_section_in_es_and_en(demo_run):
    reports = demo_run["root"] / "outputs" / "reports"
    names = rater_names(demo_run)
    harsh = next(p for p, n in names.items() if n == demo_run["truth"]["roleplay"]["harsh_rater"])
    for lang in ("es", "en"):
        program = (reports / f"program_{lang}.html").read_text(encoding="utf-8")
        cohort = (reports / f"cohort_alto-trujillo-2026-1_{lang}.html").read_text(encoding="utf-8")
        for page in (program, cohort):
            assert SECTION[lang] in page
            assert page.count("<svg") > 4  # the level charts (domains and total)
        section = program[program.index(SECTION[lang]):]
        row = section[section.index(harsh):].split("</tr>")[0]
        assert '<span class="badge">!</span>' in row  # flagged, as a pseudonym
        assert {"es": "más severo", "en": "harsher"}[lang] in row
    laredo = (reports / "cohort_laredo-2026-1_en.html").read_text(encoding="utf-8")
    assert SECTION["en"] not in laredo  # 4 people: no full report, no competence section


def test_no_rater_identity_in_any_output(demo_run):
    from tests.scanner import Identifiers, find_identifiers, run_texts

    tutors = Identifiers()
    for name in demo_run["truth"]["roleplay"]["tutors"]:
        tutors.add(name)
        tutors.add(name.split(" ", 1)[1])  # without the title (Lic., Ps.)
    texts = run_texts(demo_run["root"])
    assert any("juego_de_roles" in t for t in texts.values())  # the scan reads the outputs
    assert find_identifiers(texts, tutors) == []
    pseudonyms = set(rater_names(demo_run))
    program = (demo_run["root"] / "outputs" / "reports" / "program_en.html").read_text()
    assert sum(p in program for p in pseudonyms) == len(pseudonyms)


def test_small_level_counts_are_hidden_with_a_complement():
    from reports.competence import suppressed

    assert suppressed({1.0: 0, 2.0: 12, 3.0: 30, 4.0: 9}, 5) == set()
    assert suppressed({1.0: 3, 2.0: 12, 3.0: 30, 4.0: 9}, 5) == {1.0, 4.0}
    assert suppressed({1.0: 3, 2.0: 2, 3.0: 30, 4.0: 9}, 5) == {1.0, 2.0}
    assert suppressed({1.0: 6, 2.0: 12, 3.0: 30, 4.0: 9}, 5, hidden={2.0}) == {1.0, 2.0}
