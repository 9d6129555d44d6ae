"""A run after one changed answer, with Great Expectations' verdicts of the unchanged
instruments reused, writes the same contracts tables as a run that validates everything
(issue 22)."""

import shutil

import pandas as pd

from benchmarks.small import change_one_answer
from data_contracts import outcomes, rules
from pipelines.config import load_program


def test_a_run_reusing_verdicts_writes_what_a_full_validation_writes(demo_run, tmp_path,
                                                                      monkeypatch):
    from pipelines.flows import evaluate_program

    reusing = shutil.copytree(demo_run["root"], tmp_path / "reusing")
    full = shutil.copytree(demo_run["root"], tmp_path / "full")
    outcomes.record_path(load_program(full)).unlink()  # nothing recorded: GX validates all
    real, validated = rules.run_suite, []

    def spy(context, inst, config, frame):
        validated.append((config.root.name, inst.id))
        return real(context, inst, config, frame)

    monkeypatch.setattr(rules, "run_suite", spy)
    tables = {}
    for program in (reusing, full):
        change_one_answer(program)
        evaluate_program(str(program), pdf=False)
        tables[program.name] = {name: pd.read_parquet(program / "outputs" / "tables" /
                                                      f"{name}.parquet")
                                for name in ("quarantine", "validation_summary", "accounting",
                                             "scores")}
    assert [i for p, i in validated if p == "reusing"] == ["omshc"]
    assert sorted(i for p, i in validated if p == "full") == sorted(
        demo_run["tables"]["accounting"]["instrument"].unique())
    for name, table in tables["reusing"].items():
        pd.testing.assert_frame_equal(table, tables["full"][name], obj=name)
    assert (tables["reusing"]["quarantine"]["rule"] == "code_out_of_range").any()
