"""The run summary and artifacts the flow leaves in Prefect (markdown and tables)."""

from pathlib import Path
from types import SimpleNamespace

import pandas as pd

from pipelines.flows import CHANGE_VIEW, change_view, summarise
from pipelines.schema import load_schema


def run_tables() -> dict:
    accounting = pd.DataFrame({"rows_read": [10], "rows_valid": [7], "rows_quarantined": [3],
                               "cells_quarantined": [2]})
    quarantine = pd.DataFrame({"rule": ["duplicate", "duplicate", "duplicate", "out_of_range",
                                        "out_of_range", "too_fast"],
                               "scope": ["row", "row", "cell", "cell", "cell", "row"]})
    models = pd.DataFrame(columns=["model", "estimate"])
    return {"accounting": accounting, "quarantine": quarantine, "models": models}


def summary_text(name: str = "t") -> str:
    ctx = SimpleNamespace(run_id="r1", config=SimpleNamespace(name=name, output_dir=Path("/o")))
    return summarise(ctx, run_tables(), [Path("/o/program_es.html")], [])["markdown"]


def test_the_quarantine_counts_rows_and_answers_apart():
    text = summary_text()
    assert "- duplicate: 1 cell, 2 rows" in text
    assert "- out\\_of\\_range: 2 cells" in text and "- too\\_fast: 1 row" in text
    assert "quarantined 3; single answers (cells) quarantined 2" in text


def test_the_program_name_is_literal_text_in_the_markdown():
    text = summary_text("Salud *mental* [2026](http://x)")
    assert "Salud \\*mental\\* \\[2026\\]\\(http://x\\)" in text.splitlines()[0]


def test_the_change_artifact_carries_the_verdict():
    assert "verdict" in CHANGE_VIEW
    assert set(CHANGE_VIEW) <= set(load_schema().tables["change"].columns)
    change = pd.DataFrame({c: [None] for c in CHANGE_VIEW}).assign(verdict="improved")
    assert change_view(change)["verdict"].tolist() == ["improved"]
