"""Ingest's fast paths give exactly what the straightforward per-cell code gives."""

import csv
import datetime as dt
import io

import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from instruments import load_builtin
from pipelines.ingest.core import distinct_numbers, likert_to_number
from pipelines.ingest.lines import content_pattern, scanned_records, split_records
from pipelines.ingest.readers import cell_text, column_text
from pipelines.ingest.text import fold, map_distinct

TEXT = st.one_of(st.sampled_from(["", "1", "2", "3,0", "Nunca", "a veces", "NA", "x;y"]),
                 st.text(alphabet="ab;,\"\n\r 1é", max_size=6))
CELLS = st.lists(st.one_of(TEXT, st.none(), st.just(np.nan)), max_size=30)
OBJECTS = st.lists(st.one_of(TEXT, st.none(), st.just(np.nan), st.just(pd.NA), st.just(pd.NaT),
                             st.integers(-3, 3), st.floats(allow_nan=True), st.booleans(),
                             st.just(dt.datetime(2026, 3, 1, 10, 15))), max_size=20)


def mapped_through_dict(values: pd.Series, func) -> pd.Series:
    """The reference: one dict entry per distinct value, then Series.map."""
    distinct = values.unique()
    return values.map(dict(zip(distinct, map(func, distinct))))


@settings(max_examples=200, deadline=None)
@given(CELLS, st.sampled_from([fold, lambda v: v, lambda v: len(str(v)),
                               lambda v: pd.NA if v == "" else str(v).upper()]))
def test_map_distinct_is_series_map_of_a_dict(cells, func):
    values = pd.Series(cells, dtype="str", index=range(7, 7 + len(cells)), name="c")
    pd.testing.assert_series_equal(map_distinct(values, func), mapped_through_dict(values, func),
                                   check_exact=True)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.lists(TEXT, max_size=4), max_size=8), st.sampled_from([",", ";"]),
       st.booleans(), st.sampled_from(["\n", "\r\n"]))
def test_records_of_the_csv_pass_equal_records_scanned_one_by_one(rows, sep, quote_all, end):
    """The csv module's single pass (when it applies) and the record scan agree exactly."""
    if end == "\n":  # csv.writer leaves a lone \r unquoted then: not a CSV anyone can read
        rows = [[cell.replace("\r", "") for cell in row] for row in rows]
    out = io.StringIO()
    csv.writer(out, delimiter=sep, quoting=csv.QUOTE_ALL if quote_all else csv.QUOTE_MINIMAL,
               lineterminator=end).writerows(rows)
    text = out.getvalue()
    scanned = scanned_records(text, sep, content_pattern(sep).search)
    assert vars(split_records(text, sep)) == vars(scanned)
    # What csv.writer writes is well formed, unless a cell holds a line break and a
    # record's worth of delimiters: that is read as a stray quote swallowing rows.
    if not any(sep in c and ("\n" in c or "\r" in c) for row in rows for c in row):
        assert not scanned.broken
        assert scanned.cells == [r if r else [] for r in rows]


@settings(max_examples=300, deadline=None)
@given(OBJECTS)
def test_column_text_is_cell_text_of_every_cell(cells):
    column = pd.Series(cells, dtype=object, index=range(2, 2 + len(cells)), name="q")
    pd.testing.assert_series_equal(column_text(column).astype(str),
                                   column.map(cell_text).astype(str), check_exact=True)


@settings(max_examples=200, deadline=None)
@given(st.lists(TEXT, max_size=30))
def test_likert_numbers_per_distinct_answer_equal_numbers_per_cell(cells):
    options = load_builtin()["stss"].options_for("stss_01")
    series = pd.Series(cells, dtype="str", index=range(3, 3 + len(cells)), name="s1")
    pd.testing.assert_series_equal(likert_to_number(series, options),
                                   distinct_numbers(series, options), check_exact=True)
