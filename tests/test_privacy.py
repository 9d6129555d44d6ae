"""Privacy under bad input (issue 17): no identifier of the inbox in anything a run writes.

The demo is written once and each accident of issue 17 applied to a copy. A cheap
check per accident runs ingest and the contracts (where a broken row's text could
stick: quarantine, validation summary, Great Expectations' folder); one run of the
real flow over a copy carrying every accident at once scans everything it wrote:
the tables in every format (decoded), the warehouse, ``gx/``, Prefect's database,
Prefect's result storage and the captured output. The warehouse tests check that
rows of a file removed from the inbox leave the warehouse.
"""

import logging
import os
import shutil
from functools import partial
from pathlib import Path

import duckdb
import pandas as pd
import pyreadstat
import pytest

from pipelines import run_records, stages
from tests import accidents
from tests.helpers import small_program, stss_csv
from tests.scanner import (
    Identifiers,
    file_texts,
    find_identifiers,
    frame_text,
    inbox_identifiers,
    prefect_database,
    run_texts,
    sqlite_text,
)

PII_COLUMNS = {"redcap_bienestar": ["nombre_completo", "telefono"]}  # REDCap "Identifier? y"


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """The demo program, and the quarantine records of its clean files."""
    from pipelines.demo import write_demo

    root = write_demo(tmp_path_factory.mktemp("privacy") / "demo")
    clean = tmp_path_factory.mktemp("clean") / "program"
    shutil.copytree(root, clean)
    ctx = stages.load_context(clean)
    return root, records_of(stages.validate(ctx, stages.ingest(ctx)).quarantine)


def records_of(quarantine: pd.DataFrame) -> dict[str, list]:
    """File -> its quarantine records as (row, rule, scope)."""
    return {f: sorted(zip(g["source_row"], g["rule"], g["scope"]))
            for f, g in quarantine.groupby("source_file")}


def copy_of(demo_root: Path, folder: Path) -> tuple[Path, Identifiers]:
    """A copy of the demo and the identifiers of its (still clean) inbox."""
    root = folder / "program"
    shutil.copytree(demo_root, root)
    return root, inbox_identifiers(root, PII_COLUMNS)


def contract_texts(root: Path, ingested, contracts) -> dict[str, str]:
    """What ingest and the contracts leave: gx/, the quarantine, the summaries, the messages."""
    texts = run_texts(root)
    for name, table in (("quarantine", contracts.quarantine),
                        ("validation_summary", contracts.summary),
                        ("accounting", stages.accounting_table(ingested, contracts)),
                        ("inputs", ingested.inputs)):
        texts[name] = frame_text(table)
    texts["problems"] = "\n".join(ingested.problems + contracts.problems)
    return texts


def check_accident(accident, demo, tmp_path) -> list:
    """Apply one accident, run ingest and the contracts, return the identifiers found."""
    demo_root, clean = demo
    root, ids = copy_of(demo_root, tmp_path)
    broken = accident(root)
    ctx = stages.load_context(root)
    ingested = stages.ingest(ctx)
    contracts = stages.validate(ctx, ingested)
    assert records_of(contracts.quarantine)[broken] != clean.get(broken)  # it did something
    return find_identifiers(contract_texts(root, ingested, contracts), ids)


@pytest.mark.parametrize("accident", accidents.ACCIDENTS, ids=lambda a: a.__name__)
def test_an_accident_leaves_no_identifier_in_the_quarantine_or_gx(accident, demo, tmp_path):
    assert check_accident(accident, demo, tmp_path) == []


def test_a_name_in_the_site_column_is_not_kept(demo, tmp_path):
    assert check_accident(accidents.name_in_site, demo, tmp_path) == []


class Collect(logging.Handler):
    """Every log record's message (the flow's and tasks' run loggers propagate to prefect)."""

    def __init__(self):
        super().__init__(level=logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record):
        self.lines.append(record.getMessage())


def test_a_run_over_every_accident_writes_no_identifier(prefect_harness, demo, tmp_path):
    from prefect.logging.handlers import APILogHandler

    from pipelines.flows import evaluate_program

    root, ids = copy_of(demo[0], tmp_path)
    everything = [a for a in accidents.ACCIDENTS if a is not accidents.stray_quote]
    for accident in [*everything, partial(accidents.stray_quote, line=-8)]:
        accident(root)  # the quote near the end, so the comma accident above it stays its own
    logs = Collect()
    logging.getLogger("prefect").addHandler(logs)
    try:
        summary = evaluate_program(str(root), pdf=False)
    finally:
        logging.getLogger("prefect").removeHandler(logs)
    APILogHandler().flush()  # the run's log lines into Prefect's database
    assert summary["rows_quarantined"] > 0
    texts = run_texts(root)
    texts["prefect database"] = sqlite_text(prefect_database())
    results = Path(os.environ["PREFECT_RESULTS_LOCAL_STORAGE_PATH"])
    for path in (p for p in results.rglob("*") if p.is_file()):
        texts.update(file_texts(path))
    texts["log records"] = "\n".join(logs.lines)
    decoded = {Path(w).suffix for w in texts if not w.endswith("(bytes)")}
    assert {".parquet", ".csv", ".sav", ".dta", ".duckdb"} <= decoded
    assert any(f"{os.sep}gx{os.sep}" in w and w.endswith(".html (bytes)") for w in texts)
    assert "Contracts:" in texts["prefect database"] and "Contracts:" in texts["log records"]
    inbox = {}
    for path in (root / "inbox").glob("*.csv"):
        inbox.update(file_texts(path))
    assert len(find_identifiers(inbox, ids)) > 100  # the scanner sees them where they are
    assert find_identifiers(texts, ids) == []


def test_the_scanner_reads_every_format(tmp_path):
    """Each format hides an identifier only the decoded text shows (or a spaced phone)."""
    ids = Identifiers()
    for value in ("María Pérez", "maria.perez@x.pe", "987654321", "45678912"):
        ids.add(value)
    frame = pd.DataFrame({"who": ["MARIA PEREZ"], "n": [1.5]})
    frame.to_parquet(tmp_path / "t.parquet")
    pyreadstat.write_sav(frame, str(tmp_path / "t.sav"), column_labels=["maria.perez@x.pe", "n"])
    pyreadstat.write_dta(pd.DataFrame({"code": [1.0]}), str(tmp_path / "t.dta"),
                         variable_value_labels={"code": {1.0: "987 654 321"}})
    with duckdb.connect(str(tmp_path / "t.duckdb")) as con:
        con.execute("CREATE TABLE t AS SELECT '45678912' AS dni")
    for path in tmp_path.iterdir():
        assert find_identifiers(file_texts(path), ids), path.name
    assert find_identifiers({"decimals": "0.1456789123, 987654321.5"}, ids) == [
        ("decimals", "987654321")]


# --- the warehouse: removing a bad file removes its rows ------------------------------------------
def warehouse_text(db: Path, table: str) -> str:
    with duckdb.connect(str(db), read_only=True) as con:
        return frame_text(con.execute(f'SELECT * FROM "{table}"').df())


def table_names(db: Path) -> list[str]:
    with duckdb.connect(str(db), read_only=True) as con:
        return [r[0] for r in con.execute("SELECT table_name FROM duckdb_tables()").fetchall()]


def test_removing_a_bad_file_removes_its_rows_from_the_warehouse(tmp_path, monkeypatch):
    from tests.test_outputs import run_stages, stss_rows

    monkeypatch.setenv("CAPACITAR_PSEUDONYM_KEY", "k" * 32)
    files = {"stss_pre.csv": stss_csv(stss_rows("a", 8)),
             "stss_post.csv": stss_csv(stss_rows("a", 8)),
             "stss_pre_laredo.csv": stss_csv(  # a second cohort, and a site that is a stray value
                 [*stss_rows("b", 5, "Laredo"),
                  ("Z", "z@x.pe", ["3"] * 17, "Sede Desconocida Quillabamba")])}
    root = small_program(tmp_path, files, cohorts=[{"id": "c1", "site": "Virú"},
                                                   {"id": "c2", "site": "Laredo"}])
    db = root / "outputs" / "warehouse.duckdb"
    run_stages(root)
    assert oct(db.stat().st_mode & 0o777) == "0o600"
    with duckdb.connect(str(db), read_only=True) as con:
        assert con.execute("SELECT COUNT(*) FROM scores WHERE cohort = 'c2'").fetchone()[0] > 0
    stray = b"Sede Desconocida Quillabamba"
    assert stray in db.read_bytes()  # (the check below is not vacuous: DuckDB keeps it plain)
    keyed = {name: "stss_pre_laredo.csv" in warehouse_text(db, name) for name in table_names(db)}
    assert {n for n, found in keyed.items() if found} >= {
        "quarantine", "validation_summary", "accounting", "runs"}

    (root / "inbox" / "stss_pre_laredo.csv").unlink()
    run_stages(root)
    for name in table_names(db):
        text = warehouse_text(db, name)
        if name == "runs":  # the history of runs stays: the earlier run read that file
            assert text.count("stss_pre_laredo.csv") == 1
            continue
        assert "stss_pre_laredo.csv" not in text and "Quillabamba" not in text, name
        assert ",c2," not in text, name  # no row of a cohort no longer in the inbox
    assert stray not in db.read_bytes()  # not even in the file's freed pages
    assert oct(db.stat().st_mode & 0o777) == "0o600"
    assert sorted(p.name for p in db.parent.iterdir() if "warehouse" in p.name) == [db.name]


def test_a_run_with_no_new_data_keeps_the_results_and_adds_its_run(tmp_path, monkeypatch):
    from tests.test_outputs import counts, run_stages, stss_rows

    monkeypatch.setenv("CAPACITAR_PSEUDONYM_KEY", "k" * 32)
    root = small_program(tmp_path, {"stss_pre.csv": stss_csv(stss_rows("a", 6))})
    run_stages(root)
    db = root / "outputs" / "warehouse.duckdb"
    before = counts(db)
    ctx = stages.load_context(root)
    run_records.record_no_new_data(ctx, stages.plan(ctx))
    after = counts(db)
    assert after == {**before, "runs": before["runs"] + 1} and before["scores"] > 0
    assert oct(db.stat().st_mode & 0o777) == "0o600"
