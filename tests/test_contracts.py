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


def rules_by_row(contracts, source_file):
    q = contracts.quarantine
    q = q[q["source_file"] == source_file]
    return dict(zip(q["source_row"], q["rule"]))


def test_each_violation_has_its_rule_and_reason(checked):
    _, _, contracts = checked
    assert rules_by_row(contracts, "stss_pre.csv") == {
        2: "duplicate_submission", 4: "code_out_of_range", 5: "unknown_cohort"}
    assert rules_by_row(contracts, "stss_mid.csv") == {2: "unknown_wave"}
    q = contracts.quarantine.set_index(["source_file", "source_row"])
    out = q.loc[("stss_pre.csv", 4)]
    assert (out["column"], out["value"]) == ("stss_05", "9")
    assert "no es un código permitido (1, 2, 3, 4, 5)" in out["detail"]
    assert "Lima" in q.loc[("stss_pre.csv", 5), "detail"]


def test_a_mostly_broken_file_is_rejected_alone(checked):
    _, _, contracts = checked
    assert set(rules_by_row(contracts, "stss_post.csv").values()) == {
        "code_out_of_range", "batch_rejected"}
    assert len(rules_by_row(contracts, "stss_post.csv")) == 3
    assert any("stss_post.csv" in p and "67%" in p for p in contracts.problems)
    valid_files = set(contracts.valid["stss"]["source_file"])
    assert valid_files == {"stss_pre.csv"}


def test_clean_rows_pass_untouched_and_rows_add_up(checked):
    _, ingested, contracts = checked
    valid = contracts.valid["stss"]
    assert sorted(valid["source_row"]) == [3, 6, 7, 8]
    ingested_rows = ingested.responses["stss"].set_index(["source_file", "source_row"])
    kept = valid.set_index(["source_file", "source_row"])
    pd.testing.assert_frame_equal(kept, ingested_rows.loc[kept.index])
    assert kept.loc[("stss_pre.csv", 3), "stss_01"] == 3  # the resubmission won
    accounting = stages.accounting_table(ingested, contracts)
    assert accounting["balanced"].all() and accounting["rows_read"].sum() == 11


def test_summary_counts_checked_failed_quarantined(checked):
    _, _, contracts = checked
    s = contracts.summary.set_index(["source_file", "rule"])
    assert s.loc[("stss_pre.csv", "code_out_of_range"), ["checked", "failed", "quarantined"]].tolist() == [7, 1, 1]
    assert s.loc[("stss_post.csv", "batch_rejected"), "quarantined"] == 1


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
    # every row with stss_02 = 3 that breaks no more basic rule: five in pre, one in post
    assert (q["rule"] == "user_expectation").sum() == 6
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
