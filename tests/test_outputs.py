"""Outputs researchers open in SPSS, Stata, R and DuckDB; atomic writes; the warehouse."""

import csv
import json
import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

from urllib.parse import unquote

import duckdb
import numpy as np
import pandas as pd
import pyreadstat
import pytest

from instruments.model import Text
from pipelines import run_records, stages
from pipelines.codebook import SET_TITLES
from pipelines.export import variable_name
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
              "runs": run_records.run_record(ctx, ingested, contracts, accounting)}
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
    """Big programs write .sav/.dta in forked processes: same files as in-process."""
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


def test_a_failing_writer_is_an_error_not_a_silent_gap(tmp_path, monkeypatch):
    import pipelines.export as export

    monkeypatch.setattr(export, "PARALLEL_ROWS", 0)
    monkeypatch.setenv("CAPACITAR_WORKERS", "2")
    writer = export.LabelledFiles(tmp_path, {"t": None}, {}, "es")
    writer.submit({"t": pd.DataFrame({"a": [1]})}, processes=2)  # no spec: the writer fails
    with pytest.raises(RuntimeError, match="SPSS/Stata") as raised:
        writer.wait()
    assert "in the background process" in "".join(raised.value.__cause__.__notes__)


def test_cancelled_writers_stop(tmp_path, monkeypatch):
    import time

    import pipelines.export as export

    monkeypatch.setattr(export, "PARALLEL_ROWS", 0)
    monkeypatch.setattr(export, "write_labelled_files", lambda *a: time.sleep(60))
    monkeypatch.setenv("CAPACITAR_WORKERS", "2")
    writer = export.LabelledFiles(tmp_path, {"t": None}, {}, "es")
    writer.submit({"t": pd.DataFrame({"a": [1]})}, processes=2)
    children = [c._proc for shared in writer.writers for c in shared._children]
    assert len(children) == 2 and all(p.is_alive() for p in children)
    writer.cancel()
    assert not any(p.is_alive() for p in children)


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


# --- files a researcher opens: one meaning per code, every tool reads them -----------------

def labelled_files(root: Path) -> list[Path]:
    folder = root / "outputs" / "tables"
    return sorted(folder.glob("*.sav")) + sorted(folder.glob("*.dta"))


def read_labelled(path: Path) -> tuple[pd.DataFrame, dict, dict]:
    """A .sav/.dta file as (data, value labels, variable labels), under the .sav's names
    (a .dta has the same variables in the same order, some renamed for Stata)."""
    reader = pyreadstat.read_sav if path.suffix == ".sav" else pyreadstat.read_dta
    data, meta = reader(str(path))
    _, sav = pyreadstat.read_sav(str(path.with_suffix(".sav")), metadataonly=True)
    names = dict(zip(meta.column_names, sav.column_names))
    data = data.rename(columns=names)
    value_labels = {names[v]: labels for v, labels in meta.variable_value_labels.items()}
    return data, value_labels, {names[v]: label for v, label in
                                zip(meta.column_names, meta.column_labels)}


def text_keys(frame: pd.DataFrame, columns: list[str]) -> list[tuple]:
    """Each row's key as text (missing and empty as None)."""
    parts = [[None if pd.isna(v) or str(v) == "" else str(v) for v in frame[c]] for c in columns]
    return list(zip(*parts))


def test_every_code_has_one_meaning_in_every_labelled_file(demo_run):
    """For every .sav and .dta, every labelled variable: each code stands for one value of the
    Parquet file's text ids (with its qualifiers: a scale with its instrument), the same code
    in every file, one label per code; flag_* and booleans match the Parquet values."""
    root = demo_run["root"]
    book = json.loads((root / "outputs" / "codebook.json").read_text(encoding="utf-8"))
    meaning, code_of = {}, {}  # (code space, code) -> key and back, across all files
    checked = 0
    for path in labelled_files(root):
        table = book["tables"][path.stem]
        variables = {**table["columns"], **table["labelled_only"]}
        text = pd.read_parquet(path.with_suffix(".parquet"))
        data, value_labels, _ = read_labelled(path)
        assert len(data) == len(text), path.name
        for variable, labels in value_labels.items():
            entry = variables[variable]
            assert len(set(labels.values())) == len(labels), (path.name, variable)  # 1 label/code
            assert all(str(label).strip() for label in labels.values()), (path.name, variable)
            codes = data[variable]
            assert set(codes.dropna()) <= set(labels), (path.name, variable)
            if entry["type"] == "boolean" and "from" in entry:  # a flag_* variable
                parent = table["columns"][entry["from"]]
                flag = next(v["value"] for v in book["value_sets"][parent["values"]]["values"]
                            if f"flag_{variable_name(v['value'])}" == variable)
                holds = text[entry["from"]].fillna("").map(
                    lambda joined, flag=flag: flag in {p.split(":")[0].strip()
                                                       for p in joined.split(";")})
                assert (codes == holds.astype(float)).all(), (path.name, variable)
            elif entry["type"] == "boolean":
                np.testing.assert_array_equal(codes.to_numpy(), text[variable].astype(
                    "boolean").to_numpy(dtype="float64", na_value=np.nan), err_msg=variable)
            else:
                value_set = book["value_sets"][entry["values"]]
                space = value_set["shares_codes_of"] or entry["values"]
                keys = text_keys(text, value_set["within"] + [variable])
                for row, (code, key) in enumerate(zip(codes, keys)):
                    if key[-1] is None:
                        assert np.isnan(code), (path.name, variable, key)
                    elif np.isnan(code):  # a value matching no declared one: text in *_raw
                        assert entry.get("raw"), (path.name, variable, key)
                        assert data[f"{variable}_raw"].iloc[row] == key[-1]
                    else:
                        assert meaning.setdefault((space, code), key) == key, (path.name, key)
                        assert code_of.setdefault((space, key), code) == code, (path.name, key)
            checked += 1
    assert checked > 100
    scale_codes = {key: code for (space, key), code in code_of.items() if space == "scales"}
    assert scale_codes[("stss", "total")] != scale_codes[("omshc", "total")]


def test_raw_values_without_a_declared_match_stay_text(program):
    """quarantine's cohort/wave as found: the declared one's code, or the text in *_raw."""
    (program / "inbox" / "stss_pre_x.csv").write_text(
        stss_csv(stss_rows("z", 2, "Nowhere Town")), encoding="utf-8")
    run_stages(program)
    folder = program / "outputs" / "tables"
    text = pd.read_parquet(folder / "quarantine.parquet")
    for suffix in (".sav", ".dta"):
        data, labels, _ = read_labelled(folder / f"quarantine{suffix}")
        unknown = (text["cohort"] == "Nowhere Town").to_numpy()
        assert unknown.sum() == 2
        assert data.loc[unknown, "cohort"].isna().all()
        assert (data.loc[unknown, "cohort_raw"] == "Nowhere Town").all()
        assert (data.loc[~unknown, "cohort_raw"] == "").all()
        assert data.loc[~unknown, "cohort"].map(labels["cohort"]).notna().all()
        assert "wave_raw" in data.columns


def test_undeclared_values_stop_the_export_instead_of_getting_a_code(program):
    from pipelines.codes import CodeRegistry
    from pipelines.export import write_labelled_files

    spec = load_schema().tables["participation"]
    sets = CodeRegistry({}).code({"cohorts": [("c1", Text(es="Virú"))],
                                  "waves": [("pre", Text(es="Antes"))],
                                  "instruments": [("stss", Text(es="STSS"))]})
    frame = pd.DataFrame({"cohort": ["c1"], "wave": ["mid"], "instrument": ["stss"], "n": [3],
                          "n_matched_first_wave": [3], "n_unmatched": [0]})
    with pytest.raises(RuntimeError, match="'mid'"):
        write_labelled_files(frame, spec, sets, "es", [program / "p.sav"])
    reliability = load_schema().tables["reliability"]
    flags = CodeRegistry({}).code({"reliability_flags": [("n_below_10", Text(es="n < 10"))]})
    with pytest.raises(RuntimeError, match="'made_up'"):
        write_labelled_files(pd.DataFrame({"flags": ["n_below_10;made_up"]}), reliability,
                             flags, "es", [program / "r.sav"])


def test_codes_stay_when_instruments_cohorts_and_waves_are_added(program):
    """The registry is only appended to: a program that declares a new cohort first, a new
    first wave, a use of another instrument and an instrument file of its own whose id sorts
    before every other keeps every code it had."""
    import yaml

    def coded() -> dict:
        book = json.loads((program / "outputs" / "codebook.json").read_text(encoding="utf-8"))
        return {(name, json.dumps(v["value"])): v["code"]
                for name, s in book["value_sets"].items() for v in s["values"]}

    run_stages(program)
    first = coded()
    _, first_labels, _ = read_labelled(program / "outputs" / "tables" / "scores.sav")
    config = yaml.safe_load((program / "program.yaml").read_text(encoding="utf-8"))
    config["cohorts"].insert(0, {"id": "c0", "site": "Huanchaco"})
    config["waves"].insert(0, {"id": "screening", "order": 0})
    config["sources"].append({
        "name": "o", "pattern": "omshc_*.csv", "identifier": ["email"],
        "cohort": {"value": "c1"}, "wave": {"value": "pre"},
        "instruments": {"omshc": {"items": "q{n}"}}})
    (program / "program.yaml").write_text(yaml.safe_dump(config, allow_unicode=True))
    builtin = Path(__file__).parent.parent / "instruments" / "builtin" / "stss-17.yaml"
    (program / "instruments").mkdir()
    (program / "instruments" / "abc.yaml").write_text(
        builtin.read_text(encoding="utf-8").replace("id: stss", "id: abc", 1).replace("(STSS)", "(ABC)"),
        encoding="utf-8")
    header = "email," + ",".join(f"q{n}" for n in range(1, 16))
    (program / "inbox" / "omshc_pre.csv").write_text(
        header + "\n" + "\n".join(f"a{i}@x.pe," + ",".join(["2"] * 15) for i in range(8)) + "\n")
    tables = run_stages(program)
    assert (tables["scores"]["instrument"] == "omshc").any()
    again = coded()
    assert {k: again[k] for k in first} == first  # nothing renumbered
    new = {k: v for k, v in again.items() if k not in first}
    assert ("cohorts", '"c0"') in new and ("waves", '"screening"') in new
    assert ("instruments", '"abc"') in new and ("scales", '["abc", "total"]') in new
    assert all(code > max(c for (s, _), c in first.items() if s == name)
               for (name, _), code in new.items() if any(s == name for s, _ in first))
    _, labels, _ = read_labelled(program / "outputs" / "tables" / "scores.sav")
    for variable in ("cohort", "wave", "instrument", "scale"):
        assert first_labels[variable].items() <= labels[variable].items()
    # Without the registry (a lost file) codes follow declaration order again.
    (program / "outputs" / "tables" / "codes.json").unlink()
    run_stages(program)
    assert coded()[("cohorts", '"c0"')] == 1


def test_registry_that_cannot_be_read_is_a_clear_error(tmp_path):
    from pipelines.codes import CodeRegistry
    from pipelines.errors import CapacitarError

    (tmp_path / "codes.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(CapacitarError, match="codes.json is unreadable"):
        CodeRegistry.load(tmp_path)


def test_stata_files_are_format_118_with_short_names_and_the_wide_file(demo_run):
    folder = demo_run["root"] / "outputs" / "tables"
    for path in folder.glob("*.dta"):
        assert path.read_bytes()[:40].startswith(b"<stata_dta><header><release>118"), path.name
        _, meta = pyreadstat.read_dta(str(path), metadataonly=True)
        assert all(len(n) <= 32 and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", n)
                   for n in meta.column_names), path.name
        assert all(len(label) <= 80 for label in meta.column_labels)
    wide, meta = pyreadstat.read_dta(str(folder / "scores_wide.dta"))
    text = pd.read_parquet(folder / "scores_wide.parquet")
    labels = dict(zip(meta.column_names, meta.column_labels))
    assert len(meta.column_names) == len(text.columns) > 30
    for stata_name, long_name in zip(meta.column_names[2:], text.columns[2:]):
        assert re.fullmatch(r"s\d+_w\d+", stata_name)
        assert labels[stata_name].startswith(f"{long_name}: ")
        np.testing.assert_allclose(wide[stata_name], text[long_name])
    anchor = next(label for label in meta.column_labels if "anchor_percent_correct" in label)
    described = anchor.split(": ", 1)[1]  # after the long name: words, not ids
    assert "(ítems ancla)" in described and "anchor_percent_correct" not in described


def test_pyreadstat_round_trips_every_file(demo_run, tmp_path):
    for path in labelled_files(demo_run["root"]):
        reader, writer = ((pyreadstat.read_sav, pyreadstat.write_sav) if path.suffix == ".sav"
                          else (pyreadstat.read_dta, pyreadstat.write_dta))
        data, meta = reader(str(path))
        copy = tmp_path / path.name
        extra = {"version": 14} if path.suffix == ".dta" else {
            "variable_measure": meta.variable_measure}
        writer(data, str(copy), column_labels=meta.column_labels,
               variable_value_labels=meta.variable_value_labels, **extra)
        again, meta_again = reader(str(copy))
        pd.testing.assert_frame_equal(data, again, obj=path.name)
        assert meta_again.variable_value_labels == meta.variable_value_labels
        assert meta_again.column_labels == meta.column_labels


@pytest.mark.skipif(shutil.which("pspp") is None, reason="pspp not installed (CI installs it)")
def test_pspp_opens_every_sav_and_crosstabs_scales_apart(demo_run, tmp_path):
    folder = demo_run["root"] / "outputs" / "tables"
    syntax = "".join(f"GET FILE='{p}'.\nDISPLAY DICTIONARY.\n" for p in folder.glob("*.sav"))
    syntax += f"GET FILE='{folder / 'scores.sav'}'.\nCROSSTABS /TABLES=scale BY instrument.\n"
    (tmp_path / "check.sps").write_text(syntax, encoding="utf-8")
    result = subprocess.run(["pspp", "-o", str(tmp_path / "out.csv"), str(tmp_path / "check.sps")],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0 and "error" not in (result.stdout + result.stderr).lower()
    lines = (tmp_path / "out.csv").read_text(encoding="utf-8").splitlines()
    assert sum(line == "Table: Variables" for line in lines) == len(list(folder.glob("*.sav")))
    rows = [line.split(",") for line in lines if ",Count," in line and not line.startswith("Total")]
    scales = pd.read_parquet(folder / "scores.parquet")[["instrument", "scale"]].drop_duplicates()
    assert len(rows) == len(scales) == 18  # 14 questionnaire and test scales, 4 rated (RPC-1)
    for row in rows:  # each scale row counts rows of one instrument only
        counts = [int(c) for c in row[row.index("Count") + 1:-1]]
        assert sum(c > 0 for c in counts) == 1, row
    stss = next(r for r in rows if r[1].startswith("STSS:") and "(total)" in r[1])
    omshc = next(r for r in rows if r[1].startswith("OMS-HC-15: Estigma total"))
    scores = pd.read_parquet(folder / "scores.parquet")
    def n_rows(instrument, scale):
        return str(int(((scores["instrument"] == instrument) & (scores["scale"] == scale)).sum()))
    assert stss[1] != omshc[1]
    assert (stss[-1], omshc[-1]) == (n_rows("stss", "total"), n_rows("omshc", "total"))


@pytest.mark.skipif(shutil.which("pspp") is None, reason="pspp not installed (CI installs it)")
def test_pspp_paired_t_test_on_the_wide_file_reproduces_a_change_row(demo_run, tmp_path):
    folder = demo_run["root"] / "outputs" / "tables"
    change = demo_run["tables"]["change"]
    row = change[(change["cohort"] == "alto-trujillo-2026-1") & (change["instrument"] == "stss")
                 & (change["scale"] == "total") & (change["to_wave"] == "post")].iloc[0]
    _, labels, _ = read_labelled(folder / "scores_wide.sav")
    cohort = next(c for c, label in labels["cohort"].items() if label == "Alto Trujillo")
    (tmp_path / "t.sps").write_text(
        f"GET FILE='{folder / 'scores_wide.sav'}'.\nSELECT IF cohort = {cohort:g}.\n"
        "T-TEST PAIRS = stss_total_post WITH stss_total_pre (PAIRED).\n", encoding="utf-8")
    subprocess.run(["pspp", "-o", str(tmp_path / "t.csv"), str(tmp_path / "t.sps")], check=True,
                   capture_output=True, timeout=120)
    lines = (tmp_path / "t.csv").read_text(encoding="utf-8").splitlines()
    test = next(line for line in lines[lines.index("Table: Paired Samples Test"):]
                if line.startswith("Pair 1"))
    *_, mean, sd, se, low, high, t, df, p = next(csv.reader([test]))
    assert int(df) == row["df"] == row["n_pairs"] - 1
    assert float(t) == pytest.approx(row["t"], abs=0.006)  # PSPP prints 2 decimals
    assert (float(low), float(high)) == pytest.approx((row["ci_low"], row["ci_high"]), abs=0.006)
    assert float(mean) == pytest.approx(row["mean_diff"], abs=0.006)


def r_with_haven() -> bool:
    return shutil.which("Rscript") is not None and subprocess.run(
        ["Rscript", "-e", "library(haven)"], capture_output=True).returncode == 0


@pytest.mark.skipif(not r_with_haven(), reason="R with haven not installed (CI installs both)")
def test_r_haven_reads_every_file_with_its_labels(demo_run):
    folder = demo_run["root"] / "outputs" / "tables"
    script = Path(__file__).parent / "r" / "read_labelled.R"
    result = subprocess.run(["Rscript", str(script), str(folder)], capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    seen, labels, factors = {}, {}, {}
    file = None
    for line in result.stdout.splitlines():
        kind, *rest = line.rstrip("\t").split("\t")
        if kind == "FILE":
            file = rest[0]
            seen[file] = (int(rest[1]), int(rest[2]))
        elif kind == "LABEL":
            labels.setdefault((file, rest[0]), {})[float(rest[1])] = rest[2]
        elif kind == "FACTOR":
            factors[(file, rest[0])] = int(rest[1])
    assert set(seen) == {p.name for p in labelled_files(demo_run["root"])}
    for path in labelled_files(demo_run["root"]):
        reader = pyreadstat.read_sav if path.suffix == ".sav" else pyreadstat.read_dta
        data, meta = reader(str(path))
        assert seen[path.name] == data.shape, path.name
        for variable, value_labels in meta.variable_value_labels.items():
            assert labels[(path.name, variable)] == value_labels, (path.name, variable)
            assert factors[(path.name, variable)] == data[variable].notna().sum()


@pytest.mark.skipif(not r_with_haven(), reason="R with haven not installed (CI installs both)")
def test_load_in_r_runs_with_haven_alone(demo_run):
    outputs = demo_run["root"] / "outputs"
    result = subprocess.run(["Rscript", "-e", "if (requireNamespace('arrow', quietly = TRUE)) "
                             "stop('arrow is installed: this check needs it absent')"],
                            capture_output=True, text=True)
    if result.returncode != 0:
        pytest.skip("arrow is installed here")
    result = subprocess.run(["Rscript", "load_in_R.R"], cwd=outputs, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    scores = len(demo_run["tables"]["scores"])
    assert f"capacitar tables loaded: {scores} scores," in result.stdout


# --- the codebook ------------------------------------------------------------------------

def test_every_column_of_every_table_is_defined_in_both_languages():
    for name, table in load_schema().tables.items():
        for column, spec in table.columns.items():
            assert spec.definition.es and spec.definition.en, f"{name}.{column} has no definition"


def test_codebook_defines_every_variable_in_the_program_language(demo_run):
    outputs = demo_run["root"] / "outputs"
    book = json.loads((outputs / "codebook.json").read_text(encoding="utf-8"))
    assert book["language"] == "es"
    for name, table in book["tables"].items():
        written = pd.read_parquet(outputs / "tables" / f"{name}.parquet")
        assert list(table["columns"]) == list(written.columns), name
        _, sav = pyreadstat.read_sav(str(outputs / "tables" / f"{name}.sav"), metadataonly=True)
        documented = {**table["columns"], **table["labelled_only"]}
        assert set(sav.column_names) <= set(documented), name
        for column, entry in documented.items():
            assert entry["label"] and entry["definition"], f"{name}.{column}"
    for name, value_set in book["value_sets"].items():
        assert name in SET_TITLES, f"value set {name} has no title in codebook.SET_TITLES"
        for value in value_set["values"]:  # no empty codes, no empty labels
            assert value["value"] not in ("", [], None) and value["label"].strip(), name
    markdown = (outputs / "codebook.md").read_text(encoding="utf-8")
    for english in ("Rows in this run", "| column |", "Citation", "Licence", "reverse-keyed",
                    "higher is", "Codebook"):
        assert english not in markdown
    assert "0 = No; 1 = Sí" in markdown
    _, meta = pyreadstat.read_sav(str(outputs / "tables" / "scores.sav"), metadataonly=True)
    assert meta.variable_value_labels["prorated"] == {0.0: "No", 1.0: "Sí"}
    assert "(<= 22)" in json.dumps(book["value_sets"]["bands"], ensure_ascii=False)
    assert "bajo \\<= 22, moderado 23-41, alto \\>= 42" in markdown
    wide = markdown[markdown.index("### scores\\_wide"):]
    wide = wide[:wide.index("\n## ")]
    assert wide.count("Suma (o media)") == 1  # one definition for the pattern, not per column


def test_codebook_contents_link_to_every_section(demo_run):
    html = (demo_run["root"] / "outputs" / "codebook.html").read_text(encoding="utf-8")
    links = [unquote(link) for link in re.findall(r'<a href="#([^"]+)"', html)]
    ids = set(re.findall(r'<h[1-6] id="([^"]+)"', html))
    assert len(links) > 40 and set(links) <= ids
    assert {"tablas", "scores-puntajes", "instrumentos"} <= ids


def test_user_text_is_escaped_in_the_codebook_and_formulas_neutralised_in_csv(tmp_path,
                                                                             monkeypatch):
    """A site, program name or wave label holding HTML or a spreadsheet formula: shown as
    text in codebook.html, a formula neutralised in the CSV only, true value elsewhere."""
    monkeypatch.setenv("CAPACITAR_PSEUDONYM_KEY", "k" * 32)
    script = '<script>alert("x")</script><img src=x onerror=alert(1)>'
    files = {"stss_pre.csv": stss_csv(stss_rows("a", 8)),
             "stss_post.csv": stss_csv(stss_rows("a", 8))}
    root = small_program(tmp_path, files, name="=HYPERLINK(\"http://evil.example/\",\"3\")",
                         cohorts=[{"id": "c1", "site": f"Virú {script} | x", "aliases": ["VIRU"]}],
                         waves=[{"id": "pre", "order": 1, "label": {"es": "@SUM(1)", "en": "pre"}},
                                {"id": "post", "order": 2}])
    run_stages(root)
    outputs = root / "outputs"
    html = (outputs / "codebook.html").read_text(encoding="utf-8")
    assert "<script" not in html and "<img" not in html
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in html
    markdown = (outputs / "codebook.md").read_text(encoding="utf-8")
    assert "<script" not in markdown.replace("\\<script", "")
    runs_csv = (outputs / "tables" / "runs.csv").read_text(encoding="utf-8")
    assert "\"'=HYPERLINK(\"\"http://evil.example/\"\",\"\"3\"\")\"" in runs_csv
    assert pd.read_parquet(outputs / "tables" / "runs.parquet")["program"][0].startswith("=HYP")
    runs_sav, _ = pyreadstat.read_sav(str(outputs / "tables" / "runs.sav"))
    assert runs_sav["program"][0].startswith("=HYP")
    change = pd.read_csv(outputs / "tables" / "change.csv")
    assert pd.api.types.is_numeric_dtype(change["mean_diff"])  # numbers are not prefixed
    specs = load_schema().tables
    for path in (outputs / "tables").glob("*.csv"):
        if path.stem not in specs:
            continue
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
        for column in frame.columns:
            if specs[path.stem].columns[column].type in ("string", "category", "flags"):
                assert not frame[column].str.match(r"^[=+\-@\t\r]").any(), (path.name, column)


def test_wide_columns_too_long_for_spss_take_their_short_name(tmp_path):
    """A program's own instrument may have a long id: its wide columns still fit SPSS (64
    bytes) and Stata (32 characters), with the long name in the label."""
    from pipelines.codes import CodeRegistry
    from pipelines.export import write_labelled_files
    from pipelines.wide import scores_wide, scores_wide_spec

    long_id = "compassion_fatigue_short_form_for_community_health_workers"
    sets = CodeRegistry({}).code({
        "cohorts": [("c1", Text(es="Virú"))],
        "waves": [("pre", Text(es="Antes")), ("follow_up", Text(es="Seguimiento"))],
        "scales": [((long_id, "secondary_traumatic_stress"), Text(es="CF: estrés"))]},
        {"scales": ("instrument",)})
    scores = pd.DataFrame({"cohort": "c1", "participant": ["P1", "P1"], "instrument": long_id,
                           "scale": "secondary_traumatic_stress", "wave": ["pre", "follow_up"],
                           "score": [40.0, 35.0]})
    wide = scores_wide(scores, ["pre", "follow_up"])
    assert len(wide.columns[-1]) > 64
    write_labelled_files(wide, scores_wide_spec(wide, sets), sets, "es",
                         [tmp_path / "w.sav", tmp_path / "w.dta"])
    for path, reader in ((tmp_path / "w.sav", pyreadstat.read_sav),
                         (tmp_path / "w.dta", pyreadstat.read_dta)):
        data, meta = reader(str(path))
        assert meta.column_names == ["cohort", "participant", "s1_w1", "s1_w2"], path.name
        assert data["s1_w2"].tolist() == [35.0]
    _, meta = pyreadstat.read_dta(str(tmp_path / "w.dta"))
    assert meta.column_labels[3].startswith(f"{long_id}_follow_up"[:40])


def test_the_codebook_page_is_reused_only_when_made_from_the_same(tmp_path, monkeypatch):
    """codebook.html is the previous page when its Markdown, title and language are the same
    (the parser is not run), and made again when any of them changed."""
    import markdown_it

    from pipelines.codebook import codebook_html

    markdown = "# Libro\n\n## Tablas\n\n| a | b |\n|---|---|\n| 1 | <x> |\n"
    previous = tmp_path / "codebook.html"
    previous.write_text(codebook_html(markdown, "Libro: demo", "es"), encoding="utf-8")
    fresh = previous.read_text(encoding="utf-8")

    def no_parse(*args, **kwargs):
        raise AssertionError("the Markdown was parsed again")

    with monkeypatch.context() as patched:
        patched.setattr(markdown_it.MarkdownIt, "parse", no_parse)
        assert codebook_html(markdown, "Libro: demo", "es", previous) == fresh
    for changed in [(markdown + "\nmás\n", "Libro: demo", "es"),
                    (markdown, "Libro: otro", "es"), (markdown, "Libro: demo", "en")]:
        page = codebook_html(*changed, previous)
        assert page != fresh and page == codebook_html(*changed)
    previous.write_text(fresh.replace("Tablas", "Tablas a mano"), encoding="utf-8")
    assert codebook_html(markdown, "Libro: demo", "es", previous) == fresh  # an edit: made again


def test_two_runs_of_a_day_make_the_same_codebook_and_keep_its_page(tmp_path, monkeypatch):
    """The codebook is dated by day: runs at 09:00 and 17:00 with the same declarations make the
    same Markdown, so the second keeps the first's HTML page; the next day's is made again."""
    import datetime as dt
    from types import SimpleNamespace

    import markdown_it

    from pipelines import codebook as books

    times = iter([dt.datetime(2026, 3, 2, 9, tzinfo=dt.UTC), dt.datetime(2026, 3, 2, 17,
                                                                         tzinfo=dt.UTC),
                  dt.datetime(2026, 3, 3, 9, tzinfo=dt.UTC)])

    class Clock(dt.datetime):
        @classmethod
        def now(cls, tz=None):
            return next(times)

    monkeypatch.setattr(books.dt, "datetime", Clock)
    config = SimpleNamespace(name="Demo")

    def page(previous=None) -> tuple[str, str]:
        markdown = books.codebook_markdown(books.codebook({}, {}, {}, {}, config, "es"))
        return markdown, books.codebook_html(markdown, "Libro: Demo", "es", previous)

    morning, first = page()
    (tmp_path / "codebook.html").write_text(first, encoding="utf-8")
    with monkeypatch.context() as patched:
        patched.setattr(markdown_it.MarkdownIt, "parse", lambda *a, **k: pytest.fail("parsed"))
        evening, kept = page(tmp_path / "codebook.html")
    assert evening == morning and kept == first and "Generado el 2026-03-02 " in morning
    tomorrow, made = page(tmp_path / "codebook.html")
    assert "Generado el 2026-03-03 " in tomorrow and "2026-03-03" in made
