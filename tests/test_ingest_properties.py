"""Property-based tests: malformed exports never crash ingest and every row is accounted for."""

import string

import pandas as pd
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE

from instruments import load_builtin
from pipelines.config import load_program
from pipelines.ingest import ingest_program

KEY = b"property-test-key-0123456789"
STSS = {"stss": load_builtin()["stss"]}
CELL = st.one_of(
    st.sampled_from(["1", "2", "3", "5", "9", "", "a veces", "Muy a menudo", "NA", "3,0",
                     "maria@x.pe", "MARÍA@X.PE ", "viru", "pre", "post", "=1+1", '"', "\n"]),
    st.text(alphabet=string.printable + "áéíóúñÑ¿¡\x00", max_size=12),
)
HEADER = ["email", "sede", "momento"] + [f"s{n}" for n in range(1, 18)]


def program(tmp_path, fmt: str, pattern: str):
    config = {"name": "t", "cohorts": [{"id": "viru", "site": "Virú"}],
              "waves": [{"id": "pre", "order": 1}, {"id": "post", "order": 2}],
              "sources": [{"name": "s", "pattern": pattern, "format": fmt,
                           "identifier": ["email"], "cohort": {"column": "sede"},
                           "wave": {"column": "momento"},
                           "instruments": {"stss": {"items": "s{n}"}}}]}
    (tmp_path / "program.yaml").write_text(yaml.safe_dump(config, allow_unicode=True))
    return load_program(tmp_path / "program.yaml")


def check_accounting(result) -> None:
    """A file is either skipped with a message, or each of its records is ingested or rejected."""
    assert len(result.inputs) == 1
    for _, entry in result.inputs.iterrows():
        row = result.accounting.set_index("source_file").loc[entry["source_file"]]
        if entry["status"] == "skipped":
            assert entry["message"] and any(entry["source_file"] in p for p in result.problems)
            assert row["rows_skipped"] == row["rows_in"] and row["rows_read"] == 0
            continue
        ingested = (result.responses["stss"]["source_file"] == entry["source_file"]).sum()
        assert row["rows_in"] == ingested + row["rows_rejected_at_ingest"]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(raw=st.binary(max_size=400), fmt=st.sampled_from(["csv", "xlsx", "sav", "dta", "redcap"]))
def test_arbitrary_bytes_in_any_format(tmp_path_factory, raw, fmt):
    tmp_path = tmp_path_factory.mktemp("bytes")
    (tmp_path / "inbox").mkdir()
    (tmp_path / "inbox" / "x.bin").write_bytes(raw)
    result = ingest_program(program(tmp_path, fmt, "*.bin"), STSS, KEY)
    check_accounting(result)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=st.lists(st.lists(CELL, min_size=0, max_size=22), max_size=8),
       # Half the files have the full mapped header, so their rows reach the mapping.
       header=st.one_of(st.just(HEADER), st.lists(st.sampled_from(HEADER + ["extra", ""]),
                                                   min_size=1, max_size=22)),
       sep=st.sampled_from([",", ";", "\t"]), fmt=st.sampled_from(["csv", "kobo", "qualtrics",
                                                                   "odk", "gforms"]))
def test_malformed_csv_through_every_csv_adapter(tmp_path_factory, rows, header, sep, fmt):
    tmp_path = tmp_path_factory.mktemp("csv")
    (tmp_path / "inbox").mkdir()
    lines = [sep.join(header)] + [sep.join(r) for r in rows]
    (tmp_path / "inbox" / "x.csv").write_text("\n".join(lines), encoding="utf-8")
    result = ingest_program(program(tmp_path, fmt, "*.csv"), STSS, KEY)
    check_accounting(result)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=st.lists(st.lists(CELL, min_size=20, max_size=20), min_size=0, max_size=6),
       drop=st.sets(st.integers(0, 19), max_size=3))
def test_malformed_xlsx(tmp_path_factory, rows, drop):
    tmp_path = tmp_path_factory.mktemp("xlsx")
    (tmp_path / "inbox").mkdir()
    header = [h for i, h in enumerate(HEADER) if i not in drop]
    # openpyxl cannot store control characters; Excel files never hold them either.
    frame = pd.DataFrame([[ILLEGAL_CHARACTERS_RE.sub("", c) for i, c in enumerate(r)
                           if i not in drop] for r in rows], columns=header)
    frame.to_excel(tmp_path / "inbox" / "x.xlsx", index=False)
    result = ingest_program(program(tmp_path, "xlsx", "*.xlsx"), STSS, KEY)
    check_accounting(result)
