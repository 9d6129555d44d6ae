"""Messy and hostile inboxes: every record accounted for, every problem one message, no PII out.

Each test damages the demo's exports the way real files get damaged (a stray
quote, a bad byte, a file still being written, a corrupted workbook...) and
checks what ingest makes of it.
"""

import os
import shutil
import time
import zipfile

import pandas as pd
import pytest
import yaml

from instruments import load_builtin
from pipelines import run_records, stages
from pipelines.accounting import row_accounting
from pipelines.config import load_program
from pipelines.ingest import ingest_program
from pipelines.ingest.readers import read_rows
from pipelines.ingest.scrub import REDACTED, looks_personal
from tests.helpers import small_program, stss_csv

KEY = b"robust-test-key-0123456789abcdef"
POST = "estigma_OMSHC_post.csv"


@pytest.fixture(scope="module")
def demo_template(tmp_path_factory):
    from pipelines.demo import write_demo

    return write_demo(tmp_path_factory.mktemp("demo-template"))


@pytest.fixture
def demo(tmp_path, demo_template):
    """A fresh copy of the demo program (inbox, program.yaml, key, truth)."""
    root = tmp_path / "demo"
    shutil.copytree(demo_template, root)
    return root


def ingest_demo(root):
    return ingest_program(load_program(root), load_builtin(), KEY)


def accounting_of(result, valid=None) -> pd.DataFrame:
    """The accounting table with every ingested row counted valid (no contracts run)."""
    valid = valid if valid is not None else result.responses
    return row_accounting(result.accounting, valid, result.rejected).set_index(
        ["source_file", "instrument"])


def lines_of(path, encoding="cp1252") -> list[str]:
    return path.read_bytes().decode(encoding).split("\r\n" if b"\r\n" in path.read_bytes()
                                                      else "\n")


def write_lines(path, lines, encoding="cp1252"):
    path.write_bytes("\n".join(lines).encode(encoding))


def pii_text(truth) -> list[str]:
    pii = truth["pii"]
    return [*pii["emails"], *pii["names"], *pii["dni"], *pii["phones"]]


def leaks(frames, truth) -> list[str]:
    """Identifiers of the inbox found in any cell of ``frames`` (folded comparison)."""
    from pipelines.ingest.text import fold

    text = fold("\n".join(f.astype(str).to_csv(index=False) for f in frames))
    return [p for p in pii_text(truth) if fold(p) in text]


def truth_of(root):
    import json

    return json.loads((root / "truth" / "truth.json").read_text(encoding="utf-8"))


# --- 1. account for the file, not the parser --------------------------------------------
def test_a_stray_quote_costs_its_own_line_not_the_rest_of_the_file(demo):
    path = demo / "inbox" / POST
    lines = lines_of(path)
    name = lines[5].split(";")[0]
    lines[5] = '"Lic. ' + lines[5]  # line 6: a name typed with an opening quote
    write_lines(path, lines)
    result = ingest_demo(demo)
    acc = accounting_of(result).loc[(POST, "omshc")]
    assert acc["rows_in"] == 78 and acc["rows_read"] == 77 and acc["balanced"]
    broken = result.rejected[result.rejected["rule"] == "malformed_row"]
    assert broken[["source_row", "value", "participant", "cohort", "wave", "column"]].values.tolist() \
        == [[6, "6", "", "", "", ""]]
    assert name not in broken.to_csv() and "León" not in broken.to_csv()
    post = result.responses["omshc"]
    assert post.loc[post["source_file"] == POST, "source_row"].max() == 79  # read after line 6


def test_a_stray_quote_closed_by_another_later_still_costs_one_line(demo):
    path = demo / "inbox" / POST
    lines = lines_of(path)
    lines[9] = '"' + lines[9]
    cells = lines[12].split(";")
    cells[0] += '"'  # a quote that closes "well formed" on line 13: lines 11-12 are whole rows
    lines[12] = ";".join(cells)
    write_lines(path, lines)
    result = ingest_demo(demo)
    broken = result.rejected[result.rejected["rule"] == "malformed_row"]
    assert broken["value"].tolist() == ["10"]
    acc = accounting_of(result).loc[(POST, "omshc")]
    assert acc["rows_in"] == 78 and acc["rows_read"] == 77 and acc["balanced"]


def test_a_multi_line_cell_with_a_cell_too_many_is_one_record_of_its_lines(tmp_path):
    text = stss_csv([(f"N{i}", f"p{i}@x.pe", ["3"] * 17) for i in range(6)]).split("\n")
    text[3] = '"Ana\nPérez",' + text[3].split(",", 1)[1] + ",5"  # lines 4-5, 21 cells of 20
    root = small_program(tmp_path, {"stss_pre.csv": "\n".join(text)})
    result = ingest_program(load_program(root), load_builtin(), KEY)
    broken = result.rejected[result.rejected["rule"] == "malformed_row"]
    assert broken["value"].tolist() == ["4-5"] and "Pérez" not in broken.to_csv()
    assert sorted(result.responses["stss"]["source_row"]) == [2, 3, 6, 7, 8]
    acc = accounting_of(result).iloc[0]
    assert acc["rows_in"] == 6 and acc["balanced"]


def test_a_quote_that_would_overflow_the_cell_limit_costs_one_line_in_a_big_file(tmp_path):
    rows = [(f"N{i}", f"p{i}@x.pe", [str(1 + i % 5)] * 17) for i in range(4000)]
    text = stss_csv(rows).split("\n")
    text[10] = '"' + text[10]  # never closed: csv would swallow the rest into one field
    text[3999] = text[3999].replace(",", '",', 1)  # a well-formed close ~300 KB further down
    root = small_program(tmp_path, {"stss_pre.csv": "\n".join(text)})
    result = ingest_program(load_program(root), load_builtin(), KEY)
    assert result.problems == []
    broken = result.rejected[result.rejected["rule"] == "malformed_row"]
    assert broken["value"].tolist() == ["11"]
    acc = accounting_of(result).loc[("stss_pre.csv", "stss")]
    assert acc["rows_in"] == 4000 and acc["rows_read"] == 3999 and acc["balanced"]


def test_rows_with_fewer_or_more_cells_than_the_header_are_malformed_not_padded(tmp_path):
    good = ["3"] * 17
    text = stss_csv([("Ana", "ana@x.pe", good), ("Luis", "luis@x.pe", good),
                     ("Eva", "eva@x.pe", good), ("Rosa", "rosa@x.pe", good)]).split("\n")
    text[1] = text[1].rsplit(",", 1)[0]  # one cell short: answers would shift if padded
    text[2] = text[2].replace("Luis", "Luis, Díaz")  # an unquoted delimiter in a name
    text[3] = text[3] + ",,"  # blank extra cells: still a complete row
    root = small_program(tmp_path, {"stss_pre.csv": "\n".join(text)})
    result = ingest_program(load_program(root), load_builtin(), KEY)
    broken = result.rejected[result.rejected["rule"] == "malformed_row"]
    assert broken["source_row"].tolist() == [2, 3]
    assert "Díaz" not in broken.to_csv() and "luis" not in broken.to_csv()
    assert sorted(result.responses["stss"]["source_row"]) == [4, 5]
    assert accounting_of(result)["balanced"].all()


def test_a_row_the_reader_loses_shows_as_unbalanced(tmp_path, monkeypatch):
    """rows_in comes from the file: a reader that drops a row is caught, not believed."""
    import pipelines.ingest.readers as readers

    root = small_program(tmp_path, {"stss_pre.csv": stss_csv(
        [(f"N{i}", f"p{i}@x.pe", ["3"] * 17) for i in range(5)])})
    real = readers.data_rows
    monkeypatch.setattr(readers, "data_rows", lambda *a: tuple(
        part[:-1] if i < 2 else part for i, part in enumerate(real(*a))))
    result = ingest_program(load_program(root), load_builtin(), KEY)
    acc = accounting_of(result)
    assert acc["rows_in"].sum() == 5 and acc["rows_valid"].sum() == 4
    assert not acc["balanced"].all()
    with pytest.raises(RuntimeError, match="unaccounted"):
        stages.check_accounting(acc.reset_index())


def test_blank_lines_and_empty_rows_are_not_records(tmp_path):
    text = stss_csv([("Ana", "ana@x.pe", ["3"] * 17)]) + "\n,,,\n  \n"
    root = small_program(tmp_path, {"stss_pre.csv": text})
    acc = accounting_of(ingest_program(load_program(root), load_builtin(), KEY))
    assert acc["rows_in"].tolist() == [1] and acc["balanced"].all()


def test_xlsx_rows_in_is_the_sheets_row_count(demo):
    from openpyxl import load_workbook

    path = demo / "inbox" / "conocimientos_TIC.xlsx"
    book = load_workbook(path)
    sheet = book["Respuestas"]
    sheet.insert_rows(10, amount=2)  # two empty rows in the middle: not records
    book.save(path)
    result = ingest_demo(demo)
    acc = accounting_of(result).loc[("conocimientos_TIC.xlsx", "tic_knowledge")]
    assert acc["rows_in"] == 219 and acc["rows_read"] == 219 and acc["balanced"]
    assert acc["encoding"] == ""
    rows = result.responses["tic_knowledge"]["source_row"]
    assert 10 not in rows.values and rows.max() == 219 + 2 + 2  # spreadsheet row numbers


@pytest.mark.parametrize("fmt", ["sav", "dta"])
def test_sav_and_dta_rows_in_is_the_files_case_count(tmp_path, fmt):
    import numpy as np
    import pyreadstat

    frame = pd.DataFrame({"email": ["a@x.pe", "b@x.pe", "", "c@x.pe"],
                          "sede": ["Virú", "Virú", "", "Virú"],
                          **{f"s{n}": [3.0, 2.0, np.nan, 1.0] for n in range(1, 18)}})
    (tmp_path / "inbox").mkdir()
    writer = pyreadstat.write_sav if fmt == "sav" else pyreadstat.write_dta
    writer(frame, str(tmp_path / "inbox" / f"stss_pre.{fmt}"))
    config = {"name": "t", "cohorts": [{"id": "c1", "site": "Virú"}],
              "waves": [{"id": "pre", "order": 1}],
              "sources": [{"name": "s", "pattern": f"*.{fmt}", "format": fmt,
                           "identifier": ["email"], "cohort": {"column": "sede"},
                           "wave": {"value": "pre"}, "instruments": {"stss": {"items": "s{n}"}}}]}
    (tmp_path / "program.yaml").write_text(yaml.safe_dump(config, allow_unicode=True))
    result = ingest_program(load_program(tmp_path), load_builtin(), KEY)
    acc = accounting_of(result).iloc[0]
    # The empty case is a record too: set aside for having no identifier, not dropped.
    assert acc["rows_in"] == 4 and acc["rows_valid"] == 3 and acc["rows_quarantined"] == 1
    assert result.rejected["rule"].tolist() == ["missing_identifier"]


# --- 2. encodings ------------------------------------------------------------------------
def test_one_bad_byte_in_a_utf8_file_costs_its_line_not_the_files_accents(demo):
    path = demo / "inbox" / "redcap_bienestar_export_2026-09-01.csv"
    clean = ingest_demo(demo)
    raw = path.read_bytes().split(b"\n")
    raw[7] = raw[7].replace(b",1,", b",\xe9,", 1)  # one cp1252 byte typed into line 8
    path.write_bytes(b"\n".join(raw))
    result = ingest_demo(demo)
    acc = accounting_of(result).loc[("redcap_bienestar_export_2026-09-01.csv", "proqol")]
    assert acc["encoding"] == "utf-8" and acc["balanced"] and acc["rows_read"] == acc["rows_in"] - 1
    bad = result.rejected[result.rejected["rule"] == "undecodable_line"]
    assert bad["source_row"].unique().tolist() == [8] and (bad["participant"] == "").all()
    # Every other row keeps its accented email, so its pseudonym is the clean file's.
    before = set(clean.responses["proqol"]["participant"])
    after = set(result.responses["proqol"]["participant"])
    assert after <= before and len(before - after) <= 1


def test_single_byte_files_are_cp1252_and_mixed_lines_are_set_aside(demo):
    path = demo / "inbox" / POST
    lines = lines_of(path)
    raw = [line.encode("cp1252") for line in lines]
    raw[20] = lines[20].replace("Porvenir", "Porvenír").encode("utf-8")  # pasted from UTF-8
    path.write_bytes(b"\n".join(raw))
    result = ingest_demo(demo)
    acc = accounting_of(result).loc[(POST, "omshc")]
    assert acc["encoding"] == "cp1252" and acc["balanced"]
    assert result.rejected.loc[result.rejected["rule"] == "undecodable_line",
                               "source_row"].tolist() == [21]


def test_utf16_with_bom_is_read(tmp_path):
    text = stss_csv([("José", "jose@x.pe", ["3"] * 17)])
    root = small_program(tmp_path, {})
    (root / "inbox" / "stss_pre.csv").write_bytes(text.encode("utf-16"))
    result = ingest_program(load_program(root), load_builtin(), KEY)
    assert result.problems == [] and len(result.responses["stss"]) == 1
    assert result.accounting["encoding"].tolist() == ["utf-16"]


def test_binary_junk_with_a_csv_name_is_one_message(tmp_path):
    import random

    rng = random.Random(3)
    root = small_program(tmp_path, {})
    (root / "inbox" / "stss_pre.csv").write_bytes(bytes(rng.randrange(256) for _ in range(5000)))
    result = ingest_program(load_program(root), load_builtin(), KEY)
    assert len(result.problems) == 1 and "stss_pre.csv" in result.problems[0]
    assert result.inputs["status"].tolist() == ["skipped"]


# --- 3. files in motion ----------------------------------------------------------------
def test_a_file_younger_than_the_settle_time_is_read_next_run(tmp_path, monkeypatch):
    root = small_program(tmp_path, {"stss_pre.csv": stss_csv([("Ana", "ana@x.pe", ["3"] * 17)])})
    monkeypatch.setenv("CAPACITAR_SETTLE_SECONDS", "30")
    result = ingest_program(load_program(root), load_builtin(), KEY)
    assert result.inputs["status"].tolist() == ["in_motion"]
    assert result.inputs["source_file"].tolist() == ["stss_pre.csv"]
    assert "modified" in result.problems[0] and "next run" in result.problems[0]
    old = time.time() - 31
    os.utime(root / "inbox" / "stss_pre.csv", (old, old))
    again = ingest_program(load_program(root), load_builtin(), KEY)
    assert again.problems == [] and len(again.responses["stss"]) == 1


def test_the_demos_inbox_is_read_at_once_with_the_default_settle_time(tmp_path, monkeypatch):
    from pipelines.demo import write_demo

    monkeypatch.delenv("CAPACITAR_SETTLE_SECONDS")
    root = write_demo(tmp_path / "demo")
    assert ingest_demo(root).problems == []


def test_a_file_changed_while_it_is_read_is_skipped(tmp_path, monkeypatch):
    import pipelines.ingest.core as core

    root = small_program(tmp_path, {"stss_pre.csv": stss_csv([("Ana", "ana@x.pe", ["3"] * 17)])})
    real = core.read_export

    def still_writing(path, *args):
        export = real(path, *args)
        with path.open("a") as handle:  # the writer appends a row meanwhile
            handle.write("Luis,luis@x.pe,VIRU," + ",".join(["3"] * 17) + "\n")
        return export

    monkeypatch.setattr(core, "read_export", still_writing)
    result = ingest_program(load_program(root), load_builtin(), KEY)
    assert result.inputs["status"].tolist() == ["in_motion"]
    assert "changed while it was read" in result.problems[0]
    assert len(result.responses["stss"]) == 0
    acc = accounting_of(result)
    assert acc["rows_skipped"].tolist() == acc["rows_in"].tolist() == [1] and acc["balanced"].all()


def test_a_run_with_a_file_in_motion_is_not_the_last_word(tmp_path):
    """The state of a run that skipped a file being written never makes the next run 'no new data'."""
    root = small_program(tmp_path, {"stss_pre.csv": stss_csv([("Ana", "ana@x.pe", ["3"] * 17)])},
                         pseudonymisation={"key_file": "k.key", "create_if_missing": True})
    ctx = stages.load_context(root)
    plan = stages.plan(ctx)
    (ctx.config.output_dir / "tables").mkdir(parents=True)
    run_records.save_run_state(ctx, plan, {}, skipped=["stss_pre.csv"])
    assert not stages.plan(ctx).nothing_new
    run_records.save_run_state(ctx, plan, {})
    assert stages.plan(ctx).nothing_new


# --- 4. one file's error is that file's problem ------------------------------------------
def flip_bytes(path, at: list[int]):
    raw = bytearray(path.read_bytes())
    for i in at:
        raw[i] ^= 0xFF
    path.write_bytes(bytes(raw))


@pytest.mark.parametrize("damage", ["flip", "truncate", "not_a_workbook_zip", "missing_sheet_xml"])
def test_a_corrupted_workbook_is_skipped_and_the_others_go_on(demo, damage):
    path = demo / "inbox" / "conocimientos_TIC.xlsx"
    if damage == "flip":
        flip_bytes(path, list(range(2000, 2400, 7)))
    elif damage == "truncate":
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    else:
        with zipfile.ZipFile(path) as src:
            parts = {n: src.read(n) for n in src.namelist()}
        with zipfile.ZipFile(path, "w") as out:
            for name, data in parts.items():
                if damage == "not_a_workbook_zip" and name.endswith(".xml"):
                    continue
                if damage == "missing_sheet_xml" and name.startswith("xl/worksheets/"):
                    continue
                out.writestr(name, data)
    result = ingest_demo(demo)
    problems = [p for p in result.problems if "conocimientos_TIC.xlsx" in p]
    assert len(problems) == 1 and "\n" not in problems[0] and len(problems[0]) < 300
    assert len(result.responses["omshc"]) > 200 and len(result.responses["proqol"]) > 200
    acc = accounting_of(result)
    assert acc["balanced"].all()


def test_an_unexpected_error_in_one_file_is_one_scrubbed_message(demo, monkeypatch):
    import pipelines.ingest.core as core

    real = core.instrument_rows

    def buggy(ff, inst, mapping):
        if ff.path.name == POST:
            raise KeyError("elena.ramírez@yahoo.es not found for 'Elena Ramírez'")
        return real(ff, inst, mapping)

    monkeypatch.setattr(core, "instrument_rows", buggy)
    result = ingest_demo(demo)
    assert len(result.problems) == 1
    problem = result.problems[0]
    assert problem.startswith(POST) and "KeyError" in problem
    assert "elena" not in problem.lower() and "Ramírez" not in problem
    assert len(result.responses["omshc"]) > 100  # the other stigma files went on


def test_a_folder_matching_a_pattern_and_a_header_row_beyond_the_file(tmp_path):
    root = small_program(tmp_path, {"stss_pre.csv": stss_csv([("Ana", "ana@x.pe", ["3"] * 17)])})
    (root / "inbox" / "stss_post.csv").mkdir()
    result = ingest_program(load_program(root), load_builtin(), KEY)
    assert any("stss_post.csv" in p and "folder" in p for p in result.problems)
    assert len(result.responses["stss"]) == 1
    config = yaml.safe_load((root / "program.yaml").read_text())
    config["sources"][0]["header_row"] = 100
    (root / "program.yaml").write_text(yaml.safe_dump(config))
    result = ingest_program(load_program(root), load_builtin(), KEY)
    assert any("header_row 100" in p for p in result.problems)


def test_header_row_beyond_a_sheet(demo):
    config = yaml.safe_load((demo / "program.yaml").read_text())
    config["sources"][2]["header_row"] = 100
    (demo / "program.yaml").write_text(yaml.safe_dump(config, allow_unicode=True))
    result = ingest_demo(demo)
    assert any("conocimientos_TIC.xlsx" in p and "header_row" in p for p in result.problems)


# --- bounded reading ---------------------------------------------------------------------
def test_a_workbook_that_would_unpack_too_big_is_refused_before_unpacking(demo, monkeypatch):
    import pipelines.ingest.readers as readers

    def never(*args):
        raise AssertionError("the workbook was opened")

    monkeypatch.setattr(readers, "sheet_rows", never)
    monkeypatch.setattr(readers, "MAX_XLSX_BYTES", 50_000)  # the demo's unpacks to ~150 KB
    result = ingest_demo(demo)
    problem = next(p for p in result.problems if "conocimientos_TIC.xlsx" in p)
    assert "unpacks to" in problem


def test_a_zip_bomb_part_is_refused(tmp_path):
    path = tmp_path / "bomb.xlsx"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as out:
        out.writestr("xl/worksheets/sheet1.xml", b"<c/>" * 2_000_000)  # 8 MB of one pattern
    with pytest.raises(Exception, match="zip bomb"):
        read_rows(path, "xlsx")


def test_columns_and_cells_are_bounded(tmp_path, monkeypatch):
    import pipelines.ingest.readers as readers

    root = small_program(tmp_path, {"stss_pre.csv": stss_csv(
        [(f"N{i}", f"p{i}@x.pe", ["3"] * 17) for i in range(10)])})
    monkeypatch.setattr(readers, "MAX_CELLS", 100)
    result = ingest_program(load_program(root), load_builtin(), KEY)
    assert "cells" in result.problems[0] and "split the export" in result.problems[0]
    monkeypatch.setattr(readers, "MAX_COLUMNS", 10)
    result = ingest_program(load_program(root), load_builtin(), KEY)
    assert "20 columns" in result.problems[0]


# --- 5. dates, placeholders, missing columns ----------------------------------------------
def dated_program(tmp_path, dates, language="es"):
    rows = [(f"N{i}", f"p{i}@x.pe", ["3"] * 17) for i in range(len(dates))]
    text = stss_csv(rows).split("\n")
    text[0] += ",fecha"
    for i, date in enumerate(dates, start=1):
        text[i] += f",{date}"
    tmp_path.mkdir(exist_ok=True)
    root = small_program(tmp_path, {"stss_pre.csv": "\n".join(text)}, language=language)
    config = yaml.safe_load((root / "program.yaml").read_text())
    config["sources"][0]["submitted_at"] = "fecha"
    (root / "program.yaml").write_text(yaml.safe_dump(config))
    return root


def test_dates_are_day_first_in_spanish_iso_stays_iso(tmp_path):
    root = dated_program(tmp_path / "es", ["02/03/2026", "2026-03-02", "13/03/2026 9:00"])
    stamps = ingest_program(load_program(root), load_builtin(), KEY).responses["stss"]["submitted_at"]
    assert stamps.dt.strftime("%Y-%m-%d").tolist() == ["2026-03-02", "2026-03-02", "2026-03-13"]
    root = dated_program(tmp_path / "en", ["02/03/2026", "2026-03-02"], language="en")
    stamps = ingest_program(load_program(root), load_builtin(), KEY).responses["stss"]["submitted_at"]
    assert stamps.dt.strftime("%Y-%m-%d").tolist() == ["2026-02-03", "2026-03-02"]


def test_years_a_timestamp_cannot_hold_quarantine_their_row(tmp_path):
    root = dated_program(tmp_path, ["1500-01-01", "02/03/2026", "9999-12-31 10:00", "ayer", ""])
    result = ingest_program(load_program(root), load_builtin(), KEY)
    bad = result.rejected[result.rejected["rule"] == "unreadable_date"]
    assert bad["source_row"].tolist() == [2, 4, 5]
    assert bad["value"].tolist() == ["1500-01-01", "9999-12-31 10:00", "ayer"]
    assert sorted(result.responses["stss"]["source_row"]) == [3, 6]  # a blank date is no error
    assert accounting_of(result)["balanced"].all()


def test_identifier_placeholders_are_missing_identifiers_not_one_person(tmp_path):
    rows = [(f"N{i}", ["N/A", "NA", "-", "sin correo", "No tiene", "ninguno", " "][i % 7],
             ["3"] * 17) for i in range(20)]
    root = small_program(tmp_path, {"stss_pre.csv": stss_csv(rows + [("Ana", "ana@x.pe", ["3"] * 17)])})
    result = ingest_program(load_program(root), load_builtin(), KEY)
    assert len(result.responses["stss"]) == 1
    assert (result.rejected["rule"] == "missing_identifier").sum() == 20
    assert set(result.rejected["value"]) == {""}  # an identifier column's cell is never kept


def test_a_missing_column_lists_the_columns_and_a_close_match(tmp_path):
    text = stss_csv([("Ana", "ana@x.pe", ["3"] * 17)]).replace("email", "e-mail", 1)
    root = small_program(tmp_path, {"stss_pre.csv": text})
    problem = ingest_program(load_program(root), load_builtin(), KEY).problems[0]
    assert "identifier/PII column 'email' is not in the file" in problem
    assert "did you mean 'e-mail'" in problem
    assert "the file has: name, e-mail, sede, s1" in problem


@pytest.mark.parametrize("email", ["ana@x.pe", "41234567"])
def test_a_header_that_is_a_persons_row_is_not_listed(tmp_path, email):
    text = "\n".join(stss_csv([("Ana Díaz", email, ["3"] * 17),
                                ("Luis Díaz", "luis@x.pe", ["3"] * 17)]).split("\n")[1:])
    root = small_program(tmp_path, {"stss_pre.csv": text})
    problem = ingest_program(load_program(root), load_builtin(), KEY).problems[0]
    assert "header_row" in problem and "ana" not in problem.lower() and email not in problem


# --- 6. cell-level quarantine -----------------------------------------------------------
def test_an_unreadable_answer_is_one_missing_cell_and_no_answers_is_a_row(tmp_path):
    root = small_program(tmp_path, {"stss_pre.csv": stss_csv([
        ("Ana", "ana@x.pe", ["??"] + ["3"] * 16), ("Luis", "luis@x.pe", ["x"] * 17)])})
    result = ingest_program(load_program(root), load_builtin(), KEY)
    frame = result.responses["stss"]
    assert len(frame) == 1 and frame["stss_01"].isna().all() and frame["stss_02"].eq(3).all()
    cells = result.rejected[result.rejected["scope"] == "cell"]
    assert len(cells) == 1 + 17 and set(cells["rule"]) == {"unreadable_answer"}
    rows = result.rejected[result.rejected["scope"] == "row"]
    assert rows["rule"].tolist() == ["no_answers"]
    acc = accounting_of(result).iloc[0]
    assert (acc["rows_valid"], acc["rows_quarantined"], acc["cells_quarantined"]) == (1, 1, 18)


# --- 7. privacy at ingest -----------------------------------------------------------------
def test_shifted_and_joined_rows_leave_no_personal_text(demo):
    path = demo / "inbox" / POST
    lines = lines_of(path)
    lines[3] = lines[3].replace(" ", ";", 1)  # an unquoted ; in a name: the email moves to Sede
    cells = lines[7].split(";")
    cells[1], cells[2] = cells[2], cells[1]  # same width, email and site swapped
    lines[7] = ";".join(cells)
    lines[10] = lines[10] + lines[11]  # a lost line break joins two people
    del lines[11]
    lines[14] = lines[14].replace("2026-", "Maritza Ñique 2026-", 1)  # a name in the date column
    write_lines(path, lines)
    result = ingest_demo(demo)
    truth = truth_of(demo)
    frames = [result.rejected, *result.responses.values(), pd.DataFrame({"p": result.problems})]
    assert leaks(frames, truth) == []
    q = result.rejected.set_index("source_row")
    assert q.loc[4, "rule"] == "malformed_row" and q.loc[11, "rule"] == "malformed_row"
    post = result.responses["omshc"]
    swapped = post[post["source_file"] == POST].set_index("source_row").loc[8]
    assert swapped["cohort"] == REDACTED  # fails the contracts as an unknown cohort, no text
    assert q.loc[15, "rule"] == "unreadable_date" and q.loc[15, "value"] == REDACTED
    for frame in result.responses.values():
        for column in ("cohort", "wave", "form"):
            assert not frame[column].dropna().astype(str).map(looks_personal).any()


def test_phone_and_id_numbers_typed_as_answers_go_no_further(tmp_path):
    answers = ["987654321", "+51 987 654 321", "45678912"] + ["3"] * 14
    root = small_program(tmp_path, {"stss_pre.csv": stss_csv([("Ana", "ana@x.pe", answers)])})
    result = ingest_program(load_program(root), load_builtin(), KEY)
    frame = result.responses["stss"]
    assert frame[["stss_01", "stss_02", "stss_03"]].isna().all(axis=None)
    cells = result.rejected[result.rejected["scope"] == "cell"]
    assert cells["value"].tolist() == [REDACTED] * 3 and cells["column"].tolist() == [
        "stss_01", "stss_02", "stss_03"]


def test_a_formula_with_a_quoted_comma_does_not_change_the_delimiter(demo):
    path = demo / "inbox" / POST
    lines = lines_of(path)
    for i in (1, 2):  # two answers that made csv.Sniffer pick ',' and skip the file
        cells = lines[i].split(";")
        cells[6] = '=HYPERLINK("http://evil.example/","3")'
        lines[i] = ";".join(cells)
    write_lines(path, lines)
    result = ingest_demo(demo)
    assert not [p for p in result.problems if POST in p]
    acc = accounting_of(result).loc[(POST, "omshc")]
    assert acc["rows_read"] == 78 and acc["balanced"]


def test_knowledge_answers_and_forms_keep_no_personal_text(demo):
    from openpyxl import load_workbook

    path = demo / "inbox" / "conocimientos_TIC.xlsx"
    book = load_workbook(path)
    sheet = book["Respuestas"]
    header = [c.value for c in sheet[2]]
    sheet.cell(row=5, column=header.index("P3") + 1, value="maria.perez@gmail.com")
    sheet.cell(row=6, column=header.index("Forma") + 1, value="45678912")
    sheet.cell(row=7, column=header.index("Momento") + 1, value="+51 987 654 321")
    name = sheet.cell(row=8, column=header.index("Apellidos y nombres") + 1).value
    sheet.cell(row=8, column=header.index("P5") + 1, value=name)
    book.save(path)
    result = ingest_demo(demo)
    frames = [result.rejected, result.responses["tic_knowledge"]]
    text = "\n".join(f.astype(str).to_csv() for f in frames)
    for secret in ("maria.perez", "45678912", "987 654", name, name.lower()):
        assert secret not in text
    answers = result.responses["tic_knowledge"].set_index("source_row")
    assert REDACTED in answers.loc[5].values and REDACTED in answers.loc[8].values
    assert answers.loc[7, "wave"] == REDACTED
