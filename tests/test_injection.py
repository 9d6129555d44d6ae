"""Stored script and formula injection (issue 17): every user-controlled field carries payloads.

A small program puts ``<script>``, spreadsheet formulas (OWASP's CSV-injection
characters ``= + - @``, tab, CR) in its site names, program name, wave labels,
cohort aliases, answers and file names, runs the real flow and checks every
output: no raw ``<script>`` in any HTML (reports, codebook, Data Docs); a CSV
cell starting with one of those characters is prefixed with ``'``; Parquet,
.sav and .dta keep the true value.
"""

import csv
import io
from pathlib import Path

import pandas as pd
import pyreadstat
import pytest
import yaml

SCRIPT = "<script>alert(1)</script>"
FORMULA = '=HYPERLINK("http://evil.example/","3")'
PAYLOADS = [SCRIPT, FORMULA, "+1", "-1+2", "@SUM(1)", "\tTab", "\rCR"]
DANGEROUS = ("=", "+", "-", "@", "\t", "\r")  # OWASP: cells starting with these are formulas
FILE_NAMES = ["<script>alert(1).csv", '=HYPERLINK("http:evil.example","3").csv', "+1.csv",
              "-1+2.csv", "@SUM(1).csv", "\ttab.csv", "\rcr.csv"]
SITES = {"c1": SCRIPT, "c2": FORMULA, "c3": "@SUM(1)", "c4": "-1+2", "c5": "\tTab",
         "c6": "\rCR", "c7": "+1 site"}
ALIASES = {"c1": [FORMULA], "c2": ["+1", "@SUM(1)"], "c3": ["-2+3"]}
HEADER = ["name", "email", "sede", "momento", *(f"s{n}" for n in range(1, 18))]


def answers(i: int) -> list[str]:
    return [str(1 + (i * 7 + j * 3) % 5) for j in range(17)]


def csv_text(rows: list[list[str]]) -> str:
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows([HEADER, *rows])
    return out.getvalue()


def injected_program(root: Path) -> Path:
    """Seven cohorts with payload sites, payload wave labels and aliases, payload answers
    and file names, a payload program name."""
    (root / "inbox").mkdir(parents=True)
    rows, person = [], 0
    for cohort in SITES:
        for n in range(5):
            for wave in ("pre", "post"):
                sede = ALIASES.get(cohort, [cohort])[n % len(ALIASES.get(cohort, [cohort]))]
                rows.append([f"N{person}", f"p{person}@x.pe", sede, wave, *answers(person + n)])
            person += 1
    rows.append(["Z", "z@x.pe", "-1+2+3", "pre", *answers(0)])  # an undeclared cohort
    (root / "inbox" / "stss_main.csv").write_text(csv_text(rows), encoding="utf-8")
    for k, (name, payload) in enumerate(zip(FILE_NAMES, PAYLOADS)):
        bad = answers(k)
        bad[4] = payload  # an answer that is no code
        (root / "inbox" / name).write_text(csv_text([
            [f"F{k}", f"f{k}@x.pe", "c1", "pre", *answers(k)],
            [f"G{k}", f"g{k}@x.pe", "c2", "post", *bad]]), encoding="utf-8")
    config = {
        "name": f"{FORMULA} {SCRIPT}", "language": "es",
        "cohorts": [{"id": c, "site": s, "aliases": ALIASES.get(c, [])} for c, s in SITES.items()],
        "waves": [{"id": "pre", "order": 1, "label": {"es": SCRIPT, "en": FORMULA}},
                  {"id": "post", "order": 2, "label": {"es": "-1+2", "en": "\tTab"}}],
        "sources": [{"name": "s", "pattern": "*.csv", "identifier": ["email"], "pii": ["name"],
                     "cohort": {"column": "sede"}, "wave": {"column": "momento"},
                     "instruments": {"stss": {"items": "s{n}"}}}],
    }
    (root / "program.yaml").write_text(yaml.safe_dump(config, allow_unicode=True),
                                       encoding="utf-8")
    return root


@pytest.fixture(scope="module")
def injected(prefect_harness, tmp_path_factory):
    from pipelines.flows import evaluate_program

    root = injected_program(tmp_path_factory.mktemp("injection") / "program")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("CAPACITAR_PSEUDONYM_KEY", "k" * 32)
        summary = evaluate_program(str(root), pdf=False)
    return root, summary


def tables_of(root: Path) -> list[str]:
    return sorted(p.stem for p in (root / "outputs" / "tables").glob("*.parquet"))


def text_columns(frame: pd.DataFrame) -> list[str]:
    return [c for c in frame.columns
            if pd.api.types.is_string_dtype(frame[c]) or frame[c].dtype == object]


def test_the_payloads_reached_the_outputs(injected):
    root, summary = injected
    tables = root / "outputs" / "tables"
    q = pd.read_parquet(tables / "quarantine.parquet")
    assert set(FILE_NAMES) <= set(pd.read_parquet(tables / "accounting.parquet")["source_file"])
    assert {"-1+2", SCRIPT, FORMULA} <= set(q["value"])  # answers that are no code
    assert "-1+2+3" in set(q["cohort"])
    scores = pd.read_parquet(tables / "scores.parquet")
    assert set(scores["cohort"]) == set(SITES)  # aliases and sites matched their cohorts
    assert summary["rows_valid"] > 70


def test_no_raw_script_in_data_docs(injected):
    root, _ = injected
    pages = {page: page.read_text(encoding="utf-8") for page in (root / "gx").rglob("*.html")}
    assert any("[value not shown]" in text for text in pages.values())  # the cohort -1+2+3
    for page, text in pages.items():
        assert "<script>alert" not in text and "-1+2+3" not in text, page


def test_no_raw_script_in_the_reports(injected):
    root, _ = injected
    pages = list((root / "outputs" / "reports").rglob("*.html"))
    assert len(pages) >= 7
    for page in pages:
        assert "<script>alert" not in page.read_text(encoding="utf-8"), page


def test_no_raw_script_in_the_codebook(injected):
    root, _ = injected
    assert "<script>alert" not in (root / "outputs" / "codebook.html").read_text(encoding="utf-8")


def csv_and_parquet(root: Path, name: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    folder = root / "outputs" / "tables"
    written = pd.read_csv(folder / f"{name}.csv", dtype=str, keep_default_na=False,
                          encoding="utf-8-sig")
    return written, pd.read_parquet(folder / f"{name}.parquet")


def test_csv_cells_that_start_a_formula_are_neutralised(injected):
    root, _ = injected
    checked = 0
    for name in tables_of(root):
        written, true = csv_and_parquet(root, name)
        for column in text_columns(true):
            for cell, value in zip(written[column], true[column].fillna("")):
                if str(value).startswith(DANGEROUS):
                    assert cell == "'" + str(value), (name, column, value)
                    checked += 1
                assert not cell.startswith(DANGEROUS), (name, column, cell)
    assert checked >= len(FILE_NAMES)


def test_parquet_sav_and_dta_keep_the_true_value(injected):
    root, _ = injected
    folder = root / "outputs" / "tables"
    q = pd.read_parquet(folder / "quarantine.parquet")
    assert not any(str(v).startswith("'") for c in text_columns(q) for v in q[c])
    for suffix, read in ((".sav", pyreadstat.read_sav), (".dta", pyreadstat.read_dta)):
        data, meta = read(str(folder / f"quarantine{suffix}"))
        assert data["source_file"].tolist() == q["source_file"].tolist(), suffix
        assert data["value"].tolist() == q["value"].fillna("").tolist(), suffix
        _, meta = read(str(folder / f"scores{suffix}"))
        assert sorted(meta.variable_value_labels["cohort"].values()) == sorted(SITES.values())
        assert set(meta.variable_value_labels["wave"].values()) == {SCRIPT, "-1+2"}
