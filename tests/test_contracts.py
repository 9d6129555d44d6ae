"""Contracts with Great Expectations: each violation is quarantined with its reason."""

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


def test_data_docs_show_every_run_and_the_latest_validation(checked):
    ctx, ingested, first = checked
    assert len(result_pages(ctx)) == 1
    second = stages.validate(ctx, ingested)
    pages = result_pages(ctx)
    assert len(pages) == 2
    index = (ctx.config.path("gx") / "uncommitted" / "data_docs" / "local_site" / "index.html")
    newest = pages[-1].relative_to(index.parent).as_posix()
    assert newest in index.read_text()  # the index links this run's page
    assert second.data_docs == first.data_docs


def test_a_deleted_data_docs_site_is_built_whole_again(checked):
    import shutil

    ctx, ingested, _ = checked
    stages.validate(ctx, ingested)
    shutil.rmtree(ctx.config.path("gx") / "uncommitted" / "data_docs")
    stages.validate(ctx, ingested)
    assert len(result_pages(ctx)) == 3  # the two earlier runs' pages are rendered again
    site = ctx.config.path("gx") / "uncommitted" / "data_docs" / "local_site"
    assert (site / "expectations" / "stss.html").exists()
