"""Great Expectations' verdicts reused for unchanged inputs (issue 22): same results as a full
validation, and anything changed is validated again."""

import json

import pandas as pd
import pytest

from data_contracts import apply_contracts, outcomes, rules
from pipelines import stages
from tests.test_contracts import checked, knowledge_rows  # noqa: F401 - the fixture


@pytest.fixture
def validated(monkeypatch):
    """Run the contracts, returning the result and the instruments GX validated."""
    real = rules.run_suite
    checked_now: list[str] = []

    def spy(context, inst, config, frame):
        checked_now.append(inst.id)
        return real(context, inst, config, frame)

    monkeypatch.setattr(rules, "run_suite", spy)

    def validate(ctx, ingested, responses=None):
        checked_now.clear()
        result = apply_contracts(responses or ingested.responses, ctx.instruments, ctx.config,
                                 ingested)
        return result, list(checked_now)

    return validate


def both_instruments(ctx, ingested) -> dict[str, pd.DataFrame]:
    inst = ctx.instruments["tic_knowledge"]
    return {"stss": ingested.responses["stss"].copy(),
            "tic_knowledge": knowledge_rows(inst, ["a", "b", "9", "a"])}


def assert_same(one, other, ingested=None):
    """Same contracts results; with ``ingested`` (their input), the same accounting."""
    assert one.valid.keys() == other.valid.keys()
    for inst_id in one.valid:
        pd.testing.assert_frame_equal(one.valid[inst_id], other.valid[inst_id])
    pd.testing.assert_frame_equal(one.quarantine, other.quarantine)
    pd.testing.assert_frame_equal(one.summary, other.summary)
    if ingested is not None:
        pd.testing.assert_frame_equal(stages.accounting_table(ingested, one),
                                      stages.accounting_table(ingested, other))
    assert one.problems == other.problems
    assert one.data_docs == other.data_docs


def latest_results(ctx) -> dict[str, list]:
    """Per suite, what the newest stored GX validation result says (no ids, no times)."""
    found = {}
    folders = (ctx.config.path("gx") / "uncommitted" / "validations").iterdir()
    for folder in sorted(f for f in folders if f.is_dir()):
        newest = sorted(folder.rglob("*.json"))[-1]
        result = json.loads(newest.read_text())
        found[folder.name] = [result["success"], result["statistics"], sorted(
            (r["expectation_config"]["type"],
             json.dumps(r["expectation_config"]["kwargs"], sort_keys=True), r["success"],
             r["result"].get("unexpected_index_list")) for r in result["results"])]
    return found


def test_a_reused_validation_gives_what_a_full_validation_gives(checked, validated):
    ctx, ingested, first = checked  # GX validated stss, its verdict was recorded
    pages = sorted((ctx.config.path("gx") / "uncommitted" / "data_docs").rglob("*.html"))
    reused, gx_ran = validated(ctx, ingested)
    assert gx_ran == [] and reused.reused == ["stss"] and first.reused == []
    # no new result: Data Docs show the latest validation, which is what GX would say again
    assert sorted((ctx.config.path("gx") / "uncommitted" / "data_docs").rglob("*.html")) == pages
    shown = latest_results(ctx)
    outcomes.record_path(ctx.config).unlink()
    full, gx_ran = validated(ctx, ingested)
    assert gx_ran == ["stss"]
    assert_same(reused, full, ingested)
    assert_same(first, full, ingested)
    assert latest_results(ctx) == shown
    # a run with problems still has them: the quarantine, and the rejected file
    assert {"code_out_of_range", "unknown_cohort", "batch_rejected"} <= set(reused.quarantine["rule"])
    assert any("stss_post.csv (stss): rejected" in p for p in reused.problems)


def test_a_changed_file_is_validated_again_and_only_its_instrument(checked, validated):
    ctx, ingested, _ = checked
    responses = both_instruments(ctx, ingested)
    assert validated(ctx, ingested, responses)[1] == ["tic_knowledge"]  # stss: reused
    stss = responses["stss"]
    clean = stss.index[stss["source_file"].eq("stss_pre.csv") & stss["stss_05"].eq(3.0)][-1]
    stss.loc[clean, "stss_05"] = 7.0  # one answer changed in one file
    changed, gx_ran = validated(ctx, ingested, responses)
    assert gx_ran == ["stss"]
    cells = changed.quarantine[changed.quarantine["scope"].eq("cell")]
    assert (cells["source_row"] == stss.loc[clean, "source_row"]).any()
    outcomes.record_path(ctx.config).unlink()
    full, _ = validated(ctx, ingested, responses)
    assert_same(changed, full)


def test_the_same_values_of_another_type_are_validated_again(checked, validated):
    ctx, ingested, _ = checked
    responses = both_instruments(ctx, ingested)
    knowledge = responses["tic_knowledge"]
    first = ctx.instruments["tic_knowledge"].forms[0].items[0]
    knowledge[first] = knowledge[first].astype(object)
    knowledge.loc[0, first] = "1"
    validated(ctx, ingested, responses)
    knowledge.loc[0, first] = 1  # the number 1, not the text "1": GX may see it otherwise
    _, gx_ran = validated(ctx, ingested, responses)
    assert gx_ran == ["tic_knowledge"]


def edit_suite(ctx, change) -> None:
    path = ctx.config.path("gx") / "expectations" / "stss.json"
    suite = json.loads(path.read_text())
    change(suite)
    path.write_text(json.dumps(suite))


@pytest.mark.parametrize("change", ["user expectation", "cohort", "checkpoint", "data source",
                                    "gx version", "capacitar code", "record"])
def test_a_changed_contract_is_validated_again(checked, validated, monkeypatch, change):
    import yaml

    ctx, ingested, _ = checked
    validated(ctx, ingested)
    gx = ctx.config.path("gx")
    if change == "user expectation":  # every row fails it: a batch problem
        edit_suite(ctx, lambda s: s["expectations"].append(
            {"type": "expect_table_row_count_to_be_between",
             "kwargs": {"min_value": 1000}, "meta": {}}))
    elif change == "cohort":
        config = yaml.safe_load((ctx.config.root / "program.yaml").read_text())
        config["cohorts"].append({"id": "c2", "site": "Lima"})
        (ctx.config.root / "program.yaml").write_text(yaml.safe_dump(config))
        ctx = stages.load_context(ctx.config.root)
    elif change == "checkpoint":
        path = gx / "checkpoints" / "capacitar_stss.json"
        checkpoint = json.loads(path.read_text())
        checkpoint["actions"] = [{"name": "docs", "type": "update_data_docs"}]
        path.write_text(json.dumps(checkpoint))
    elif change == "data source":  # the instrument's asset, by hand
        path = gx / "great_expectations.yml"
        config = yaml.safe_load(path.read_text())
        config["fluent_datasources"]["capacitar"]["assets"]["stss"]["batch_metadata"] = {"x": 1}
        path.write_text(yaml.safe_dump(config))
    elif change == "gx version":
        monkeypatch.setattr(outcomes, "gx_version", lambda: "9.9.9")
    elif change == "capacitar code":
        monkeypatch.setattr(outcomes, "code_digest", lambda: b"another capacitar")
    else:  # a record someone edited: another key
        path = outcomes.record_path(ctx.config)
        record = json.loads(path.read_text())
        record["instruments"]["stss"]["key"] = "0" * 64
        path.write_text(json.dumps(record))
    again, gx_ran = validated(ctx, ingested)
    assert gx_ran == ["stss"]
    if change == "user expectation":
        assert "stss: expectation on '' failed for the whole batch " \
               "(expect_table_row_count_to_be_between)" in again.problems


def test_the_record_holds_no_value_of_any_row(checked):
    ctx, _, contracts = checked
    text = outcomes.record_path(ctx.config).read_text()
    assert contracts.quarantine["rule"].eq("code_out_of_range").any()
    for value in ["9", "ana", "x.pe", "Lima", "VIRU"]:
        assert f'"{value}' not in text.lower()
    record = json.loads(text)
    assert set(record) == {"format", "docs", "instruments"}
    assert {k for v in record["instruments"]["stss"]["failures"] for k in v} == {
        "rule", "column", "rows", "batch", "allowed"}


def test_a_copied_program_shows_its_own_data_docs(checked, validated, tmp_path_factory):
    import shutil

    ctx, ingested, first = checked
    copy = shutil.copytree(ctx.config.root, tmp_path_factory.mktemp("copied") / "program")
    moved = stages.load_context(copy)
    again, gx_ran = validated(moved, ingested)
    assert gx_ran == []  # the same rows and contract: reused
    assert again.data_docs.startswith((copy / "gx").as_uri())
    assert first.data_docs.startswith((ctx.config.root / "gx").as_uri())
