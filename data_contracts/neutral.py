"""What Great Expectations and the quarantine may see of a row: declared values, no raw text.

Great Expectations stores every unexpected value it meets in its validation
results (``gx/uncommitted/validations``) and renders them, unescaped, in Data
Docs. A shifted cell, an email pasted in the site column or a ``<script>`` in
an answer would land there. So the frame GX validates (:func:`neutral_frame`)
holds only the columns the suite names, and in every column with declared
values (cohort, wave, answers) a value outside them becomes a neutral token
that is itself outside them: the expectation fails for the same rows, and the
raw text never reaches ``gx/``.

Our own quarantine records take their values from the canonical rows, through
:func:`safe_value`: text that ingest's one detector
(:func:`pipelines.ingest.scrub.looks_personal`) calls personal is withheld, the
rest truncated.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

from pipelines.ingest.pseudonym import DIGITS, PREFIX
from pipelines.ingest import scrub
from pipelines.ingest.text import map_distinct

TEXT_TOKEN = "[value not shown]"
NUMBER_TOKEN = -999.0  # a numeric answer outside its codes (a float column must stay numeric)
WITHHELD = "[withheld]"
GENERATED = "capacitar_generated"

PSEUDONYM = re.compile(rf"{PREFIX}[0-9a-f]{{{DIGITS}}}")
NEUTRAL_NOTE = (
    "Values outside the declared codes, cohorts and waves are shown here as "
    f"`{TEXT_TOKEN}` (`{NUMBER_TOKEN:g}` for a numeric answer): capacitar never hands raw "
    "text to Great Expectations. The quarantine table (`outputs/tables/quarantine.*`) lists "
    "every row and answer set aside, with its reason.")


def safe_value(value: object, withheld: str = WITHHELD) -> str:
    """A raw value as the quarantine may keep it: ``withheld`` if it looks personal, else
    truncated (:func:`pipelines.ingest.scrub.safe_value`).

    Examples
    --------
    >>> safe_value(7.0), safe_value("elena.ramirez@yahoo.es"), safe_value(None)
    ('7', '[withheld]', '')
    >>> safe_value("x" * 50)[-3:]
    'xx…'
    """
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return scrub.safe_value(value, withheld=withheld)


def safe_column(values: pd.Series, declared=frozenset(), withheld: str = WITHHELD) -> pd.Series:
    """:func:`safe_value` of each distinct value; ``declared`` values (ids) kept as they are."""
    return map_distinct(values.astype(object),
                        lambda v: v if v in declared else safe_value(v, withheld)).astype("str")


# --- the frame Great Expectations validates ----------------------------------------------
def suite_columns(suite) -> set[str]:
    """Every column an expectation of the suite names (``column``, ``column_list``, ...)."""
    names: set[str] = set()
    for expectation in suite.expectations:
        for key, value in expectation.configuration.kwargs.items():
            if "column" not in key:
                continue
            if isinstance(value, str):
                names.add(value)
            elif isinstance(value, (list, tuple, set)):
                names.update(v for v in value if isinstance(v, str))
    return names


def declared_sets(suite) -> dict[str, object]:
    """Column -> what capacitar declared for it: a value set, or a regular expression."""
    declared: dict[str, object] = {}
    for expectation in suite.expectations:
        config = expectation.configuration
        if not (config.meta or {}).get(GENERATED):
            continue
        column = config.kwargs.get("column")
        if "value_set" in config.kwargs:
            declared[column] = list(config.kwargs["value_set"])
        elif "regex" in config.kwargs:
            declared[column] = re.compile(config.kwargs["regex"])
    return declared


def outside(values: pd.Series, allowed) -> pd.Series:
    """True where a value is present and not among ``allowed`` (a list or a compiled regex)."""
    if isinstance(allowed, re.Pattern):
        fits = map_distinct(values.astype(object),
                            lambda v: not isinstance(v, str) or bool(allowed.search(v)))
        return values.notna() & ~fits.astype(bool)
    if pd.api.types.is_numeric_dtype(values) and all(
            isinstance(v, (int, float)) for v in allowed):  # answers: numpy's isin, 10x faster
        array = values.to_numpy(dtype=float, na_value=np.nan)
        return pd.Series(~np.isnan(array) & ~np.isin(array, np.asarray(allowed, dtype=float)),
                         index=values.index)
    return values.notna() & ~values.isin(allowed)


def token_for(values: pd.Series, allowed) -> object:
    """The neutral token of a column: a number for a numeric column, else text; never allowed."""
    taken = set() if isinstance(allowed, re.Pattern) else set(allowed)
    if pd.api.types.is_numeric_dtype(values):
        token = NUMBER_TOKEN
        while token in taken:
            token -= 1000
        return token
    token = TEXT_TOKEN
    while token in taken or (isinstance(allowed, re.Pattern) and allowed.search(token)):
        token += "*"
    return token


def neutral_frame(frame: pd.DataFrame, suite) -> pd.DataFrame:
    """The frame Great Expectations validates: the suite's columns, no raw text.

    Declared columns keep their declared values and missing cells; any other
    value becomes :func:`token_for` (so the same rows fail). Files are numbered
    (``file 1``...), participants must be pseudonyms, the rest (row numbers,
    timestamps, test forms) are not text a person typed.

    Examples
    --------
    >>> import great_expectations as gx, great_expectations.expectations as gxe
    >>> suite = gx.ExpectationSuite(name="s", expectations=[gxe.ExpectColumnValuesToBeInSet(
    ...     column="cohort", value_set=["c1"], meta={"capacitar_generated": True})])
    >>> neutral_frame(pd.DataFrame({"cohort": ["c1", "ana@x.pe"], "note": ["x", "y"]}),
    ...               suite)["cohort"].tolist()
    ['c1', '[value not shown]']
    """
    wanted = suite_columns(suite)
    out = frame[[c for c in frame.columns if c in wanted]]  # a new frame (copy on write)
    for column, allowed in declared_sets(suite).items():
        if column in out.columns:
            bad = outside(out[column], allowed)
            if bad.any():
                out[column] = out[column].where(~bad, token_for(out[column], allowed))
    if "participant" in out.columns:
        who = out["participant"].astype("str")
        fake = who.notna() & who.ne("") & ~who.str.fullmatch(PSEUDONYM.pattern).fillna(False)
        if fake.any():
            out["participant"] = who.where(~fake, TEXT_TOKEN)
    if "source_file" in out.columns:
        codes, _ = pd.factorize(out["source_file"])
        out["source_file"] = pd.Series(np.char.add("file ", (codes + 1).astype(str)),
                                       index=out.index, dtype=object)
    return out
