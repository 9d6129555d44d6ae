"""Contracts with Great Expectations: each violation is quarantined with its reason."""

import dataclasses
import json

import pandas as pd
import pytest

from pipelines import stages
from tests.helpers import small_program, stss_csv

OK = ["3"] * 17


def with_item(code: str, position: int = 5) -> list[str]:
    answers = list(OK)
    answers[position - 1] = code
    return answers


@pytest.fixture
def checked(tmp_path, monkeypatch):
    monkeypatch.setenv("CAPACITAR_PSEUDONYM_KEY", "k" * 32)
    files = {
        "stss_pre.csv": stss_csv([
            ("Ana", "ana@x.pe", with_item("2", 1)), ("Ana", "ana@x.pe", OK),  # resubmitted
            ("Luis", "luis@x.pe", with_item("9")),                           # out of range
            ("Rosa", "rosa@x.pe", OK, "Lima"),                               # unknown cohort
            ("Eva", "eva@x.pe", with_item("", 3)),                           # missing item: fine
            ("Juan", "juan@x.pe", OK), ("Inés", "ines@x.pe", OK),
        ]),
        "stss_mid.csv": stss_csv([("Ana", "ana@x.pe", OK)]),                  # unknown wave
        "stss_post.csv": stss_csv([                                          # mostly broken
            ("Ana", "ana@x.pe", with_item("0")), ("Luis", "luis@x.pe", with_item("6")),
            ("Eva", "eva@x.pe", OK)]),
    }
    root = small_program(tmp_path, files)
    ctx = stages.load_context(root)
    ingested = stages.ingest(ctx)
    contracts = stages.validate(ctx, ingested)
    return ctx, ingested, contracts


def rules_by_row(contracts, source_file, scope="row"):
    q = contracts.quarantine
    q = q[(q["source_file"] == source_file) & (q["scope"] == scope)]
    return dict(zip(q["source_row"], q["rule"]))


def test_each_violation_has_its_rule_and_reason(checked):
    _, _, contracts = checked
    assert rules_by_row(contracts, "stss_pre.csv") == {
        2: "duplicate_submission", 5: "unknown_cohort"}
    assert rules_by_row(contracts, "stss_pre.csv", "cell") == {4: "code_out_of_range"}
    assert rules_by_row(contracts, "stss_mid.csv") == {2: "unknown_wave"}
    q = contracts.quarantine.set_index(["source_file", "source_row"])
    out = q.loc[("stss_pre.csv", 4)]
    assert (out["column"], out["value"], out["scope"]) == ("stss_05", "9", "cell")
    assert "no es un código permitido (1, 2, 3, 4, 5); se trata como faltante" in out["detail"]
    assert "Lima" in q.loc[("stss_pre.csv", 5), "detail"]


def test_a_mostly_broken_file_is_rejected_alone(checked):
    _, _, contracts = checked
    # two of three rows carry a bad answer: the file is suspect as a whole
    assert rules_by_row(contracts, "stss_post.csv") == {
        2: "batch_rejected", 3: "batch_rejected", 4: "batch_rejected"}
    assert rules_by_row(contracts, "stss_post.csv", "cell") == {
        2: "code_out_of_range", 3: "code_out_of_range"}
    assert any("stss_post.csv" in p and "67%" in p for p in contracts.problems)
    valid_files = set(contracts.valid["stss"]["source_file"])
    assert valid_files == {"stss_pre.csv"}


def test_clean_rows_pass_untouched_and_rows_add_up(checked):
    _, ingested, contracts = checked
    valid = contracts.valid["stss"]
    assert sorted(valid["source_row"]) == [3, 4, 6, 7, 8]
    ingested_rows = ingested.responses["stss"].set_index(["source_file", "source_row"])
    kept = valid.set_index(["source_file", "source_row"])
    expected = ingested_rows.loc[kept.index].copy()
    assert expected.loc[("stss_pre.csv", 4), "stss_05"] == 9
    expected.loc[("stss_pre.csv", 4), "stss_05"] = float("nan")  # the answer set aside
    pd.testing.assert_frame_equal(kept, expected)
    assert kept.loc[("stss_pre.csv", 3), "stss_01"] == 3  # the resubmission won
    accounting = stages.accounting_table(ingested, contracts)
    assert accounting["balanced"].all() and accounting["rows_read"].sum() == 11
    assert accounting.set_index("source_file").loc["stss_pre.csv", "rows_quarantined"] == 2


def test_summary_says_rows_and_answers_apart(checked):
    _, _, contracts = checked
    s = contracts.summary.set_index(["source_file", "rule"])
    counts = ["checked", "failed", "quarantined", "cells_quarantined"]
    assert s.loc[("stss_pre.csv", "code_out_of_range"), counts].tolist() == [7, 1, 0, 1]
    assert s.loc[("stss_pre.csv", "unknown_cohort"), counts].tolist() == [7, 1, 1, 0]
    assert s.loc[("stss_post.csv", "code_out_of_range"), counts].tolist() == [3, 2, 0, 2]
    assert s.loc[("stss_post.csv", "batch_rejected"), counts].tolist() == [3, 3, 3, 0]


def test_suites_are_json_in_the_program_and_user_expectations_are_kept(checked):
    ctx, ingested, _ = checked
    path = ctx.config.path("gx") / "expectations" / "stss.json"
    suite = json.loads(path.read_text())
    assert any(e["type"] == "expect_column_values_to_be_in_set" and e["kwargs"]["column"] == "wave"
               for e in suite["expectations"])
    suite["expectations"].append({
        "type": "expect_column_values_to_be_between",
        "kwargs": {"column": "stss_02", "min_value": 1, "max_value": 2},
        "meta": {"note": "added by hand"}})
    path.write_text(json.dumps(suite))
    contracts = stages.validate(ctx, ingested)
    q = contracts.quarantine
    # every row with stss_02 = 3 that breaks no row rule before it (answers set aside in
    # other items do not count): six in pre, the three of post
    assert (q["rule"] == "user_expectation").sum() == 9
    stored = json.loads(path.read_text())
    assert any(e.get("meta", {}).get("note") == "added by hand" for e in stored["expectations"])
    assert contracts.data_docs.endswith("index.html")


def test_submissions_far_outside_the_cohort_dates_are_quarantined(tmp_path, monkeypatch):
    monkeypatch.setenv("CAPACITAR_PSEUDONYM_KEY", "k" * 32)
    text = stss_csv([("Ana", "ana@x.pe", OK), ("Luis", "luis@x.pe", OK), ("Eva", "eva@x.pe", OK)])
    lines = text.splitlines()
    dates = ["fecha", "2026-03-05", "2024-01-10", ""]  # in window, two years early, no date
    text = "\n".join(f"{line},{d}" for line, d in zip(lines, dates)) + "\n"
    root = small_program(tmp_path, {"stss_pre.csv": text},
                         cohorts=[{"id": "c1", "site": "Virú", "start": "2026-03-01",
                                   "end": "2026-03-31"}])
    import yaml
    config = yaml.safe_load((root / "program.yaml").read_text())
    config["sources"][0]["submitted_at"] = "fecha"
    (root / "program.yaml").write_text(yaml.safe_dump(config, allow_unicode=True))
    ctx = stages.load_context(root)
    contracts = stages.validate(ctx, stages.ingest(ctx))
    assert rules_by_row(contracts, "stss_pre.csv") == {3: "date_outside_cohort"}


# --- stored GX objects and Data Docs across runs ---------------------------------
def stores_during(monkeypatch, ctx, ingested) -> tuple[list[str], object]:
    """Run validate, returning the instruments whose suite was stored anew."""
    from data_contracts import checkpoints

    stored, real = [], checkpoints.store_checkpoint

    def spy(context, suite, batch):
        stored.append(suite.name)
        return real(context, suite, batch)

    monkeypatch.setattr(checkpoints, "store_checkpoint", spy)
    return stored, stages.validate(ctx, ingested)


def result_pages(ctx) -> list:
    site = ctx.config.path("gx") / "uncommitted" / "data_docs" / "local_site"
    return sorted((site / "validations").rglob("*.html"))


def test_an_unchanged_suite_is_not_stored_again(checked, monkeypatch):
    ctx, ingested, first = checked
    path = ctx.config.path("gx") / "expectations" / "stss.json"
    before = (path.read_bytes(), path.stat().st_mtime_ns)
    stored, again = stores_during(monkeypatch, ctx, ingested)
    assert stored == []
    assert (path.read_bytes(), path.stat().st_mtime_ns) == before
    pd.testing.assert_frame_equal(again.quarantine, first.quarantine)
    pd.testing.assert_frame_equal(again.valid["stss"], first.valid["stss"])


def test_a_new_cohort_in_program_yaml_stores_the_suite_again(checked, monkeypatch):
    import yaml

    ctx, ingested, _ = checked
    config = yaml.safe_load((ctx.config.root / "program.yaml").read_text())
    config["cohorts"].append({"id": "c2", "site": "Lima"})
    (ctx.config.root / "program.yaml").write_text(yaml.safe_dump(config, allow_unicode=True))
    ctx = stages.load_context(ctx.config.root)
    stored, contracts = stores_during(monkeypatch, ctx, stages.ingest(ctx))
    assert stored == ["stss"]
    suite = json.loads((ctx.config.path("gx") / "expectations" / "stss.json").read_text())
    cohorts = next(e["kwargs"]["value_set"] for e in suite["expectations"]
                   if e["kwargs"].get("column") == "cohort" and "value_set" in e["kwargs"])
    assert cohorts == ["c1", "c2"]
    assert "unknown_cohort" not in set(contracts.quarantine["rule"])  # Lima is c2 now


def test_a_hand_edited_generated_expectation_is_regenerated(checked, monkeypatch):
    ctx, ingested, _ = checked
    path = ctx.config.path("gx") / "expectations" / "stss.json"
    suite = json.loads(path.read_text())
    wave = next(e for e in suite["expectations"] if e["kwargs"].get("column") == "wave"
                and "value_set" in e["kwargs"])
    wave["kwargs"]["value_set"] = ["pre"]
    path.write_text(json.dumps(suite))
    stored, _ = stores_during(monkeypatch, ctx, ingested)
    assert stored == ["stss"]
    assert '"post"' in path.read_text()


def one_answer_changed(ingested, row: int = 0):
    """``ingested`` with one answer of row ``row`` changed (each row another GX verdict)."""
    stss = ingested.responses["stss"].copy()
    stss.loc[row, "stss_02"] = 4.0 if stss.loc[row, "stss_02"] != 4.0 else 2.0
    return dataclasses.replace(ingested, responses={"stss": stss})


def test_data_docs_show_every_validation_and_the_latest(checked):
    ctx, ingested, first = checked
    assert len(result_pages(ctx)) == 1
    assert stages.validate(ctx, ingested).data_docs == first.data_docs
    assert len(result_pages(ctx)) == 1  # the same frame and suite: GX's verdict is reused
    second = stages.validate(ctx, one_answer_changed(ingested))
    pages = result_pages(ctx)
    assert len(pages) == 2
    index = (ctx.config.path("gx") / "uncommitted" / "data_docs" / "local_site" / "index.html")
    newest = pages[-1].relative_to(index.parent).as_posix()
    assert newest in index.read_text()  # the index links this run's page
    assert second.data_docs == first.data_docs


def test_data_docs_keep_each_instruments_newest_results(checked, monkeypatch):
    from data_contracts import checkpoints

    ctx, ingested, _ = checked
    monkeypatch.setattr(checkpoints, "KEPT_RESULTS", 2)
    stored = ctx.config.path("gx") / "uncommitted" / "validations"
    results = set(stored.rglob("*.json"))  # the fixture's validation
    made = []
    for row in (0, 1, 2):  # three more validations: four results, the newest two kept
        stages.validate(ctx, one_answer_changed(ingested, row))
        now = set(stored.rglob("*.json"))
        made += sorted(now - results)
        results = now
    assert sorted(results) == sorted(made[-2:])
    pages = result_pages(ctx)
    assert [p.parent.name for p in pages] == [r.parent.name for r in sorted(results)]  # run times
    index = (ctx.config.path("gx") / "uncommitted" / "data_docs" / "local_site" / "index.html")
    assert all(p.relative_to(index.parent).as_posix() in index.read_text() for p in pages)


def test_older_results_are_counted_per_suite_newest_first():
    import datetime as dt
    from types import SimpleNamespace

    from great_expectations.core.run_identifier import RunIdentifier
    from great_expectations.data_context.types.resource_identifiers import (
        ExpectationSuiteIdentifier,
        ValidationResultIdentifier,
    )

    from data_contracts.checkpoints import older_results

    def key(suite, day):
        run = RunIdentifier(run_name=f"r{day}", run_time=dt.datetime(2026, 1, day,
                                                                     tzinfo=dt.timezone.utc))
        return ValidationResultIdentifier(ExpectationSuiteIdentifier(name=suite), run, "b")

    keys = [key("stss", 3), key("omshc", 1), key("stss", 1), key("stss", 2), key("omshc", 2)]
    context = SimpleNamespace(validation_results_store=SimpleNamespace(list_keys=lambda: keys))
    old = older_results(context, 2)
    assert [(k.expectation_suite_identifier.name, k.run_id.run_time.day) for k in old] == [
        ("stss", 1)]
    assert sorted((k.expectation_suite_identifier.name, k.run_id.run_time.day)
                  for k in older_results(context, 1)) == [("omshc", 1), ("stss", 1), ("stss", 2)]
    assert older_results(context, 3) == []


def test_a_deleted_data_docs_site_is_built_whole_again(checked):
    import shutil

    ctx, ingested, _ = checked
    changed = one_answer_changed(ingested)
    stages.validate(ctx, changed)
    shutil.rmtree(ctx.config.path("gx") / "uncommitted" / "data_docs")
    stages.validate(ctx, changed)  # every verdict reused, the site built whole
    assert len(result_pages(ctx)) == 2  # the two earlier validations' pages are rendered again
    site = ctx.config.path("gx") / "uncommitted" / "data_docs" / "local_site"
    assert (site / "expectations" / "stss.html").exists()


# --- answers set aside one by one (issue 18) -------------------------------------------------
def test_a_user_expectation_does_not_count_an_answer_set_aside(checked):
    ctx, ingested, _ = checked
    path = ctx.config.path("gx") / "expectations" / "stss.json"
    suite = json.loads(path.read_text())
    suite["expectations"].append({
        "type": "expect_column_values_to_be_between",
        "kwargs": {"column": "stss_05", "min_value": 1, "max_value": 3}})
    path.write_text(json.dumps(suite))
    contracts = stages.validate(ctx, ingested)
    q = contracts.quarantine
    # the 9, 0 and 6 of stss_05 are already set aside (missing): the expectation has nothing left
    assert (q["rule"] == "user_expectation").sum() == 0
    assert (q["scope"] == "cell").sum() == 3


def test_a_form_with_too_many_bad_answers_is_kept_unscored_with_every_answer_recorded(
        tmp_path, monkeypatch):
    monkeypatch.setenv("CAPACITAR_PSEUDONYM_KEY", "k" * 32)
    bad = list(OK)
    for item in (2, 5, 9, 13):  # STSS total needs 14 of 17 answers: 13 left
        bad[item - 1] = "9"
    rows = [("Ana", "ana@x.pe", bad), ("Luis", "luis@x.pe", with_item("0", 4)),
            *[(f"N{i}", f"n{i}@x.pe", OK) for i in range(4)]]
    root = small_program(tmp_path, {"stss_pre.csv": stss_csv(rows)})
    ctx = stages.load_context(root)
    contracts = stages.validate(ctx, stages.ingest(ctx))
    q = contracts.quarantine
    assert (q["scope"] == "row").sum() == 0
    assert sorted(q.loc[q["source_row"] == 2, "column"]) == ["stss_02", "stss_05", "stss_09",
                                                             "stss_13"]
    assert len(contracts.valid["stss"]) == 6  # every form stays
    scores = stages.score(ctx, contracts).set_index(["participant", "scale"])
    ana, luis = (contracts.valid["stss"].set_index("source_row").loc[r, "participant"]
                 for r in (2, 3))
    assert pd.isna(scores.loc[(ana, "total"), "score"])  # too few answers: not scored
    assert scores.loc[(ana, "total"), "items_answered"] == 13
    luis_total = scores.loc[(luis, "total")]  # one answer missing: prorated 16 answers x 17/16
    assert luis_total["items_answered"] == 16 and bool(luis_total["prorated"])
    assert luis_total["score"] == pytest.approx(3 * 17)


def test_demo_forms_with_one_bad_answer_are_scored(demo_run):
    q, scores = demo_run["tables"]["quarantine"], demo_run["tables"]["scores"]
    cells = q[(q["source_file"] == "estigma_OMSHC_post.csv") & (q["scope"] == "cell")
              & (q["rule"] == "code_out_of_range")]
    assert sorted(cells["source_row"]) == [6, 11]
    for participant in cells["participant"]:
        total = scores[(scores["participant"] == participant) & (scores["instrument"] == "omshc")
                       & (scores["wave"] == "post") & (scores["scale"] == "total")].iloc[0]
        assert total["items_answered"] == 14 and bool(total["prorated"])
        assert pd.notna(total["score"])
    knowledge = q[(q["instrument"] == "tic_knowledge") & (q["rule"] == "code_out_of_range")]
    assert knowledge["scope"].tolist() == ["cell"]
    assert (scores["participant"] == knowledge["participant"].iloc[0]).any()


def test_demo_form_with_an_unreadable_answer_is_scored(demo_run):
    q, scores = demo_run["tables"]["quarantine"], demo_run["tables"]["scores"]
    unreadable = q[q["rule"] == "unreadable_answer"].iloc[0]
    total = scores[(scores["participant"] == unreadable["participant"])
                   & (scores["instrument"] == "omshc") & (scores["wave"] == "post")
                   & (scores["scale"] == "total")]
    assert len(total) == 1 and pd.notna(total["score"].iloc[0])


# --- the batch rule counts what failed at ingest -----------------------------------------------
def test_rows_unreadable_at_ingest_count_towards_the_batch_rule(tmp_path, monkeypatch):
    monkeypatch.setenv("CAPACITAR_PSEUDONYM_KEY", "k" * 32)
    people = [(f"N{i}", f"n{i}@x.pe", OK) for i in range(4)]
    lines = stss_csv(people).splitlines()
    shifted = [lines[0], lines[1], *(line + ",x,y" for line in lines[2:])]  # 3 of 4 malformed
    empty = stss_csv([*people[:1], *((f"E{i}", f"e{i}@x.pe", [""] * 17) for i in range(3))])
    root = small_program(tmp_path, {"stss_pre.csv": "\n".join(shifted) + "\n",
                                    "stss_post.csv": empty})
    ctx = stages.load_context(root)
    ingested = stages.ingest(ctx)
    contracts = stages.validate(ctx, ingested)
    assert rules_by_row(contracts, "stss_pre.csv") == {
        2: "batch_rejected", 3: "malformed_row", 4: "malformed_row", 5: "malformed_row"}
    assert [p for p in contracts.problems if "stss_pre.csv" in p] == [
        "stss_pre.csv (stss): rejected, 75% of rows failed (limit 50%); check the export and "
        "its mapping in program.yaml"]
    # forms left empty are absent, not broken: that file goes on
    assert rules_by_row(contracts, "stss_post.csv") == {3: "no_answers", 4: "no_answers",
                                                        5: "no_answers"}
    assert len(contracts.valid["stss"]) == 1
    assert stages.accounting_table(ingested, contracts)["balanced"].all()


def test_a_file_unreadable_at_ingest_is_a_batch_problem_even_with_no_row_left(
        tmp_path, monkeypatch):
    monkeypatch.setenv("CAPACITAR_PSEUDONYM_KEY", "k" * 32)
    lines = stss_csv([(f"N{i}", f"n{i}@x.pe", OK) for i in range(3)]).splitlines()
    root = small_program(tmp_path, {"stss_pre.csv": "\n".join(
        [lines[0], *(line + ",x" for line in lines[1:])]) + "\n"})
    ctx = stages.load_context(root)
    contracts = stages.validate(ctx, stages.ingest(ctx))
    assert any(p.startswith("stss_pre.csv (stss): rejected, 100% of rows failed")
               for p in contracts.problems)


# --- Great Expectations and the quarantine keep no raw text (issue 17) ---------------------------
RAW = ["ana.perez@x.pe", "<script>alert(1)</script>", "987654321", "luis.rojas@x.pe",
       "<script>alert(2)</script>"]


def knowledge_rows(inst, answers: list[str]) -> pd.DataFrame:
    """Canonical tic_knowledge rows on form A, every item keyed right but the first."""
    form = inst.forms[0]
    rows = []
    for n, first in enumerate(answers):
        row = {"cohort": "c1", "participant": f"P{n:012x}", "wave": "pre",
               "instrument": inst.id, "source_file": "tic.xlsx", "source_row": n + 2,
               "submitted_at": pd.NaT, "form": form.id}
        row.update({i: (str(form.key[i]) if i in form.items else None) for i in inst.item_ids})
        row[form.items[0]] = first
        rows.append(row)
    return pd.DataFrame(rows).astype({i: "str" for i in inst.item_ids})


def test_great_expectations_and_the_quarantine_see_no_raw_text(checked):
    """Defence in depth: raw text that ingest let through stays out of gx/ and the quarantine."""
    from data_contracts import apply_contracts

    ctx, ingested, _ = checked
    responses = {"stss": ingested.responses["stss"].copy()}
    stss = responses["stss"]
    stss.loc[0, "cohort"] = RAW[0]
    stss.loc[1, "wave"] = RAW[1]
    stss.loc[5, "stss_07"] = float(RAW[2])
    inst = ctx.instruments["tic_knowledge"]
    responses["tic_knowledge"] = knowledge_rows(inst, [RAW[4], RAW[3], "a", "a", "a"])
    result = apply_contracts(responses, ctx.instruments, ctx.config, ingested)
    q = result.quarantine
    by_key = q.set_index(["source_file", "source_row", "scope"])
    first = stss.loc[0, ["source_file", "source_row"]].tolist()
    assert by_key.loc[(*first, "row"), "rule"] == "unknown_cohort"
    assert by_key.loc[(*stss.loc[1, ["source_file", "source_row"]], "row"), "rule"] == "unknown_wave"
    seventh = q[q["column"] == "stss_07"]
    assert seventh["scope"].tolist() == ["cell"] and seventh["value"].tolist() == ["[oculto]"]
    answers = q[q["instrument"] == "tic_knowledge"]
    assert answers["source_row"].tolist() == [2, 3] and set(answers["scope"]) == {"cell"}
    assert answers["value"].tolist() == ["<script>alert(2)</script>", "[oculto]"]  # not personal
    # not personal: kept (escaping is each output's job), unlike the email and the phone
    assert set(q["wave"]) == {"c1", "pre", "post", "mid", RAW[1]} - {"c1"}
    personal = q[["cohort", "wave", "value", "detail"]].to_csv()
    assert "x.pe" not in personal and RAW[2] not in personal
    gx_files = [p for p in ctx.config.path("gx").rglob("*") if p.is_file()]
    texts = {str(p): p.read_bytes().decode("utf-8", "replace") for p in gx_files}
    for where, text in texts.items():
        for raw in RAW:
            assert raw not in text, (where, raw)
        assert "alert(" not in text and "x.pe" not in text, where  # GX has <script> tags of its own
    validations = [t for w, t in texts.items() if "data_docs" in w and "/validations/" in w]
    assert validations and all("[value not shown]" in t for t in validations)  # failures shown


def test_the_frame_great_expectations_sees_keeps_declared_values_only():
    import great_expectations as gx
    import great_expectations.expectations as gxe

    from data_contracts.neutral import GENERATED, neutral_frame, safe_value

    mine = {"meta": {GENERATED: True}}
    suite = gx.ExpectationSuite(name="s", expectations=[
        gxe.ExpectColumnValuesToBeInSet(column="cohort", value_set=["c1"], **mine),
        gxe.ExpectColumnValuesToBeInSet(column="q1", value_set=[-999.0, 1.0], **mine),
        gxe.ExpectColumnValuesToMatchRegex(column="q2", regex="^(a|b)(;(a|b))*$", **mine),
        gxe.ExpectColumnToExist(column="participant"),
        gxe.ExpectColumnToExist(column="source_file")])
    frame = pd.DataFrame({
        "cohort": ["c1", "ana@x.pe", None], "q1": [1.0, 987654321.0, float("nan")],
        "q2": ["a;b", "<b>x</b>", None], "participant": ["P0123456789ab", "ana@x.pe", ""],
        "source_file": ["ana.csv", "b.csv", "ana.csv"], "notes": ["x", "y", "z"]})
    out = neutral_frame(frame, suite)
    assert list(out.columns) == ["cohort", "q1", "q2", "participant", "source_file"]
    assert out["cohort"].tolist()[:2] == ["c1", "[value not shown]"] and pd.isna(out["cohort"][2])
    assert out["q1"].tolist()[:2] == [1.0, -1999.0]  # the token is never a declared code
    assert out["q2"].tolist()[:2] == ["a;b", "[value not shown]"] and pd.isna(out["q2"][2])
    assert out["participant"].tolist() == ["P0123456789ab", "[value not shown]", ""]
    assert out["source_file"].tolist() == ["file 1", "file 2", "file 1"]
    kept = ["7", "no sé", "2026-03-05 10:15:00", "-1+2", "Lima"]
    assert [safe_value(v) for v in kept] == kept
    for personal in ["ana@x.pe", "45678912", "+51 987 654 321", "987-654-321", "a\nb", "a\tb"]:
        assert safe_value(personal) == "[withheld]", personal
    assert safe_value("x" * 60) == "x" * 39 + "…"
