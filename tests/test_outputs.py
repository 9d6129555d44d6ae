"""Outputs researchers open in SPSS, Stata, R and DuckDB; atomic writes; the warehouse."""

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import duckdb
import pandas as pd
import pyreadstat
import pytest

from pipelines import stages
from pipelines.schema import load_schema
from tests.helpers import small_program, stss_csv

OK = ["3"] * 17


def stss_rows(prefix: str, n: int, site: str = "VIRU"):
    return [(f"N{i}", f"{prefix}{i}@x.pe", [str(1 + (i + j) % 5) for j in range(17)], site)
            for i in range(n)]


def run_stages(root: Path) -> dict:
    """The flow's stages without Prefect (the flow test covers Prefect itself)."""
    ctx = stages.load_context(root)
    ingested = stages.ingest(ctx)
    contracts = stages.validate(ctx, ingested)
    accounting = stages.accounting_table(ingested, contracts)
    scores = stages.score(ctx, contracts)
    tables = {"scores": scores, **stages.analyse(ctx, contracts, scores),
              "quarantine": contracts.quarantine, "validation_summary": contracts.summary,
              "accounting": accounting,
              "runs": stages.run_record(ctx, ingested, contracts, accounting)}
    stages.export(ctx, tables)
    return tables


@pytest.fixture
def program(tmp_path, monkeypatch):
    monkeypatch.setenv("CAPACITAR_PSEUDONYM_KEY", "k" * 32)
    files = {"stss_pre.csv": stss_csv(stss_rows("a", 8)), "stss_post.csv": stss_csv(stss_rows("a", 8))}
    root = small_program(tmp_path, files, cohorts=[{"id": "c1", "site": "Virú"},
                                                   {"id": "c2", "site": "Laredo"}])
    return root


def test_sav_has_variable_and_value_labels(program):
    tables = run_stages(program)
    data, meta = pyreadstat.read_sav(str(program / "outputs" / "tables" / "scores.sav"))
    labels = dict(zip(meta.column_names, meta.column_labels))
    assert labels["cohort"] == "Cohorte" and labels["score"] == "Puntaje"
    assert meta.variable_value_labels["cohort"] == {1.0: "Virú", 2.0: "Laredo"}
    assert meta.variable_value_labels["wave"][1.0] == "pre"
    assert meta.variable_measure["wave"] == "ordinal" and meta.variable_measure["score"] == "scale"
    assert meta.original_variable_types["items_answered"] == "F8.0"
    assert data["score"].mean() == pytest.approx(tables["scores"]["score"].mean())
    for path in (program / "outputs" / "tables").glob("*.sav"):
        _, m = pyreadstat.read_sav(str(path), metadataonly=True)
        assert all(m.column_labels), path.name  # every variable labelled
    _, dta = pyreadstat.read_dta(str(program / "outputs" / "tables" / "change.dta"))
    assert dta.variable_value_labels["instrument"]  # Stata value labels too


def test_every_written_column_is_documented_in_the_codebook(program):
    run_stages(program)
    import json
    book = json.loads((program / "outputs" / "codebook.json").read_text())
    for name, table in book["tables"].items():
        written = pd.read_parquet(program / "outputs" / "tables" / f"{name}.parquet")
        assert list(table["columns"]) == list(written.columns), name
        assert all(c["label"] for c in table["columns"].values())
    assert any("Stamm" in i["citation"] for i in book["instruments"])
    for script in ("load_in_R.R", "load_in_SPSS.sps", "codebook.md", "codebook.html"):
        assert (program / "outputs" / script).stat().st_size > 100


def counts(db: Path) -> dict:
    with duckdb.connect(str(db), read_only=True) as con:
        names = [r[0] for r in con.execute("SHOW TABLES").fetchall()]
        return {n: con.execute(f'SELECT COUNT(*) FROM "{n}"').fetchone()[0] for n in names}


def test_warehouse_is_idempotent_and_adds_exactly_a_new_cohort(program):
    db = program / "outputs" / "warehouse.duckdb"
    run_stages(program)
    first = counts(db)
    run_stages(program)
    again = counts(db)
    assert again["runs"] == first["runs"] + 1  # every run is recorded
    assert {**again, "runs": 0} == {**first, "runs": 0}  # results are replaced, not duplicated
    (program / "inbox" / "stss_pre_laredo.csv").write_text(stss_csv(stss_rows("b", 5, "Laredo")))
    tables = run_stages(program)
    after = counts(db)
    new_scores = (tables["scores"]["cohort"] == "c2").sum()
    assert after["scores"] == first["scores"] + new_scores > first["scores"]
    with duckdb.connect(str(db), read_only=True) as con:
        assert sorted(r[0] for r in con.execute("SELECT DISTINCT cohort FROM scores").fetchall()) == ["c1", "c2"]
    assert after["runs"] == first["runs"] + 2


def test_a_run_killed_during_export_leaves_previous_outputs_whole(program):
    run_stages(program)
    tables_dir = program / "outputs" / "tables"
    before = {p.name: p.read_bytes() for p in tables_dir.iterdir()}
    # A second run whose SPSS writer hangs midway; we kill it with SIGKILL.
    script = (
        "import sys, time, pyreadstat\n"
        "real = pyreadstat.write_sav\n"
        "calls = []\n"
        "def slow(*a, **k):\n"
        "    calls.append(1)\n"
        "    real(*a, **k)\n"
        "    if len(calls) == 3: print('midway', flush=True); time.sleep(60)\n"
        "pyreadstat.write_sav = slow\n"
        "from tests.test_outputs import run_stages\n"
        f"run_stages(__import__('pathlib').Path({str(program)!r}))\n"
    )
    (program / "inbox" / "stss_pre_laredo.csv").write_text(stss_csv(stss_rows("b", 5, "Laredo")))
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True,
                            cwd=Path(__file__).parent.parent, env={**os.environ})
    assert proc.stdout.readline().strip() == "midway"
    assert any(p.name.startswith(".tables.staging") for p in tables_dir.parent.iterdir())
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    after = {p.name: p.read_bytes() for p in tables_dir.iterdir()}
    assert after == before
    run_stages(program)  # the next run cleans up and goes through
    assert (pd.read_parquet(tables_dir / "scores.parquet")["cohort"] == "c2").any()


@pytest.mark.skipif(shutil.which("pspp") is None, reason="pspp not installed (CI installs it)")
def test_pspp_opens_the_sav_with_labels_and_the_same_means(program):
    tables = run_stages(program)
    out = program / "outputs"
    syntax = out / "check.sps"
    syntax.write_text(f"GET FILE='{out / 'tables' / 'scores.sav'}'.\nDISPLAY DICTIONARY.\n"
                      "DESCRIPTIVES VARIABLES=score.\n", encoding="utf-8")
    result = subprocess.run(["pspp", "-O", "format=txt", str(syntax)], capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "Puntaje" in result.stdout and "Virú" in result.stdout
    mean = tables["scores"]["score"].mean()
    assert f"{mean:.2f}" in result.stdout


def test_schema_file_loads_with_both_languages_everywhere():

    load_schema.cache_clear()
    schema = load_schema()
    for name, table in schema.tables.items():
        for column, spec in table.columns.items():
            assert spec.label.es and spec.label.en, f"{name}.{column}"


def test_worker_processes_write_the_same_labelled_files(program, monkeypatch, tmp_path):
    """Big programs write .sav/.dta in two worker processes: same files as in-process."""
    import pipelines.export as export

    run_stages(program)
    inline = program / "outputs" / "tables"
    kept = tmp_path / "inline"
    shutil.copytree(inline, kept)
    monkeypatch.setattr(export, "PARALLEL_ROWS", 0)
    run_stages(program)
    for name in ("scores", "change", "reliability", "items"):
        for suffix, reader in ((".sav", pyreadstat.read_sav), (".dta", pyreadstat.read_dta)):
            a, meta_a = reader(str(kept / f"{name}{suffix}"))
            b, meta_b = reader(str(inline / f"{name}{suffix}"))
            pd.testing.assert_frame_equal(a, b)
            assert meta_a.variable_value_labels == meta_b.variable_value_labels
    assert not list(inline.glob(".labelled-job-*"))  # job files cleaned up


def test_a_failing_worker_is_an_error_not_a_silent_gap(program, monkeypatch):
    import pipelines.export as export

    monkeypatch.setattr(export, "PARALLEL_ROWS", 0)
    monkeypatch.setattr(export, "write_labelled_files", lambda *a: None)  # parent side unaffected
    monkeypatch.setenv("PYTHONPATH", "/nonexistent")  # still finds pipelines (root added)
    run_stages(program)  # workers import pipelines from the checkout: succeeds
    table_dir = program / "outputs" / "tables"
    assert (table_dir / "scores.sav").exists()
    writer = export.LabelledFiles(table_dir, {}, {}, "es")
    writer.workers.append(export.start_worker(
        [(table_dir / "missing.parquet", None, {}, "es", [table_dir / "x.sav"])], table_dir))
    with pytest.raises(RuntimeError, match="SPSS/Stata"):
        writer.wait()
    assert not list(table_dir.glob(".labelled-job-*"))


def test_cancelled_workers_stop_and_leave_no_job_files(tmp_path):
    import pipelines.export as export

    writer = export.LabelledFiles(tmp_path, {}, {}, "es")
    job, worker = export.start_worker([], tmp_path)
    writer.workers.append((job, worker))
    writer.cancel()
    assert worker.returncode is not None and not job.exists()


def test_warehouse_from_parquet_files_equals_from_frames(program, tmp_path):
    """The flow merges the warehouse from the staged Parquet files (on a thread): same rows, types."""
    from pipelines.warehouse import update_warehouse

    tables = run_stages(program)
    specs = dict(load_schema().tables)
    folder = program / "outputs" / "tables"
    names = [n for n in tables if (folder / f"{n}.parquet").exists()]
    frames = {n: tables[n] for n in names}
    contents = []
    for label, parquet in (("frames", None), ("parquet", {n: folder / f"{n}.parquet" for n in names})):
        db = tmp_path / f"{label}.duckdb"
        update_warehouse(db, frames, specs, parquet)
        with duckdb.connect(str(db), read_only=True) as con:
            contents.append({n: con.execute(f'SELECT * FROM "{n}"').df() for n in names})
    assert len(contents[1]["scores"]) > 0 and len(contents[1]["reliability"]) > 0
    for name in names:
        assert len(contents[0][name]) == len(tables[name]), name
        pd.testing.assert_frame_equal(contents[0][name], contents[1][name], obj=name)
