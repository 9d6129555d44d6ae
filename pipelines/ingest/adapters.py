"""Source adapters: one function per export kind, each returning an :class:`Export`.

``format`` in program.yaml picks the adapter. Generic files (csv, xlsx, sav,
dta) are read as they are; tool exports (redcap, kobo, odk, qualtrics,
gforms) also get that tool's habits undone: extra header rows, group
prefixes, status columns, metadata with personal data, checkbox columns.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from pipelines.errors import SourceError
from pipelines.ingest.raw import Export, RowRule, strip_prefixes
from pipelines.ingest.readers import MAX_CELLS, MAX_COLUMNS, read_rows, read_table
from pipelines.ingest.text import fold

FALSE_TEXT = {"0", "false", "falso", "no"}


def generic(path: Path, source, fmt: str | None = None) -> Export:
    """CSV or xlsx as configured (encoding, delimiter, sheet and header row)."""
    fmt = fmt or source.format
    read = read_rows(path, fmt, sheet=source.sheet, header_row=source.header_row,
                     encoding=source.encoding, delimiter=source.delimiter)
    table = read.frame
    return Export(table=table, rows=pd.Series(table.index, index=table.index),
                  rows_in=read.rows_in, broken=read.broken, encoding=read.encoding)


def by_extension(path: Path, source) -> Export:
    """Tools that export either CSV or xlsx (KoboToolbox, Google Forms)."""
    return generic(path, source, "xlsx" if path.suffix.lower() in (".xlsx", ".xlsm") else "csv")


# --- SPSS and Stata -------------------------------------------------------------
def spss_stata(path: Path, source) -> Export:
    """An SPSS .sav or Stata .dta file: codes as text, value labels kept."""
    import pyreadstat

    reader = pyreadstat.read_sav if source.format == "sav" else pyreadstat.read_dta
    try:
        _, meta = reader(str(path), metadataonly=True)
        if (meta.number_columns or 0) > MAX_COLUMNS or \
                (meta.number_rows or 0) * (meta.number_columns or 0) > MAX_CELLS:
            raise SourceError(f"the file has {meta.number_rows:,} cases x {meta.number_columns:,}"
                              f" variables (at most {MAX_CELLS:,} cells are read)")
        frame, meta = reader(str(path), apply_value_formats=False)
    except SourceError:
        raise
    except Exception as exc:  # pyreadstat raises its own error types for a bad file
        raise SourceError(f"not a readable .{source.format} file ({type(exc).__name__})") from None
    table = frame.apply(lambda col: col.map(_cell_text)).astype(str)
    table.columns = [str(c) for c in table.columns]
    labels = {col: {_cell_text(code): str(label) for code, label in mapping.items()}
              for col, mapping in meta.variable_value_labels.items()}
    table.index = table.index + 1  # SPSS/Stata case numbers
    # Every case is a record, even an empty one (it has no identifier: quarantined).
    rows_in = meta.number_rows if meta.number_rows is not None and meta.number_rows >= 0 \
        else len(table)
    return Export(table=table, rows=pd.Series(table.index, index=table.index),
                  value_labels=labels, rows_in=rows_in)


def _cell_text(value: object) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return str(value).strip()


# --- REDCap ---------------------------------------------------------------------
DICTIONARY_COLUMNS = {  # the data dictionary CSV's 18 headers -> the API's snake_case names
    "Variable / Field Name": "field_name", "Form Name": "form_name",
    "Section Header": "section_header", "Field Type": "field_type",
    "Field Label": "field_label",
    "Choices, Calculations, OR Slider Labels": "select_choices_or_calculations",
    "Field Note": "field_note",
    "Text Validation Type OR Show Slider Number": "text_validation_type_or_show_slider_number",
    "Text Validation Min": "text_validation_min", "Text Validation Max": "text_validation_max",
    "Identifier?": "identifier", "Branching Logic (Show field only if...)": "branching_logic",
    "Required Field?": "required_field", "Custom Alignment": "custom_alignment",
    "Question Number (surveys only)": "question_number", "Matrix Group Name": "matrix_group_name",
    "Matrix Ranking?": "matrix_ranking", "Field Annotation": "field_annotation",
}


def read_dictionary(path: Path) -> pd.DataFrame:
    """A REDCap data dictionary (either header style) with snake_case columns."""
    table = read_table(path, "csv")
    table = table.rename(columns=DICTIONARY_COLUMNS)
    needed = {"field_name", "form_name", "field_type"}
    if not needed <= set(table.columns):
        raise SourceError(f"{path.name} is not a REDCap data dictionary "
                          f"(needs {sorted(needed)} or their 'Variable / Field Name' headers)")
    return table


def parse_choices(text: str) -> dict[str, str]:
    """REDCap choices '1, Nunca | 2, Rara vez' -> {'1': 'Nunca', '2': 'Rara vez'}.

    Examples
    --------
    >>> parse_choices("1, Nunca | 2, Rara vez, a veces")
    {'1': 'Nunca', '2': 'Rara vez, a veces'}
    """
    pairs = [part.split(",", 1) for part in str(text).split("|") if "," in part]
    return {code.strip(): label.strip() for code, label in pairs}


def combine_checkboxes(table: pd.DataFrame, checkbox_fields: set[str] | None) -> pd.DataFrame:
    """Collapse REDCap's ``field___code`` 0/1 columns into one ``field`` of ';'-joined codes."""
    groups: dict[str, list[str]] = {}
    for col in table.columns:
        if "___" in col:
            name, code = col.rsplit("___", 1)
            if checkbox_fields is None or name in checkbox_fields:
                groups.setdefault(name, []).append(col)
    for name, cols in groups.items():
        checked = table[cols].apply(lambda c: c.str.casefold().isin(["1", "checked"]))
        codes = [c.rsplit("___", 1)[1] for c in cols]
        table[name] = checked.apply(lambda r: ";".join(c for c, on in zip(codes, r) if on), axis=1)
        table = table.drop(columns=cols)
    return table


def redcap(path: Path, source, inbox: Path) -> Export:
    """A REDCap records export (raw or labels), with its data dictionary when configured.

    With the dictionary: checkbox fields are combined, choices become value
    labels (so label exports map to codes), fields marked "Identifier? y" are
    dropped as personal data, each field knows its form's ``<form>_complete``
    column, and rows of repeating instruments belong to their own form.
    """
    export = generic(path, source, "csv")
    dictionary = None
    if source.dictionary:
        from pipelines.config import inbox_glob

        matches, outside = inbox_glob(inbox, source.dictionary)
        if not matches:
            where = " (a link to a file outside the inbox is not read)" if outside else ""
            raise SourceError(
                f"the REDCap data dictionary {source.dictionary!r} is not in the inbox{where}")
        dictionary = read_dictionary(matches[-1])
    checkbox = None if dictionary is None else set(
        dictionary.loc[dictionary["field_type"] == "checkbox", "field_name"])
    table = combine_checkboxes(export.table, checkbox)
    export.table = table
    if dictionary is not None:
        _apply_dictionary(export, dictionary)
    return export


def _apply_dictionary(export: Export, dictionary: pd.DataFrame) -> None:
    table = export.table
    choices = dictionary.get("select_choices_or_calculations", pd.Series("", index=dictionary.index))
    for field, kind, text in zip(dictionary["field_name"], dictionary["field_type"], choices):
        if kind in ("radio", "dropdown", "checkbox") and text:
            export.value_labels[field] = parse_choices(text)
        elif kind in ("yesno", "truefalse"):
            export.value_labels[field] = {"1": "Yes", "0": "No"} if kind == "yesno" else \
                {"1": "True", "0": "False"}
    if "identifier" in dictionary:
        marked = dictionary.loc[dictionary["identifier"].str.casefold().eq("y"), "field_name"]
        export.personal += [f for f in marked if f in table.columns]
    repeating = set(table.get("redcap_repeat_instrument", pd.Series(dtype=str))) - {""}
    for field, form in zip(dictionary["field_name"], dictionary["form_name"]):
        if f"{form}_complete" in table.columns:
            export.complete_columns[field] = f"{form}_complete"
        if "redcap_repeat_instrument" in table.columns:
            instrument = table["redcap_repeat_instrument"]
            export.form_rows[field] = instrument.eq(form) if form in repeating else instrument.eq("")


# --- KoboToolbox and ODK Central -------------------------------------------------
KOBO_PERSONAL = ["_submitted_by", "deviceid", "phonenumber", "simserial", "subscriberid",
                 "username", "_geolocation", "_attachments"]
ODK_PERSONAL = ["SubmitterID", "SubmitterName", "DeviceID"]


def kobo(path: Path, source) -> Export:
    """A KoboToolbox export (CSV with ';' or xlsx; XML-name or label headers).

    Questions may be named without their group prefix (``grp/q1`` as ``q1``);
    ``_submission_time`` orders duplicates; rows marked "not approved" in
    Kobo's validation are quarantined unless ``keep_rejected``.
    """
    export = by_extension(path, source)
    columns = list(export.table.columns)
    export.aliases = strip_prefixes(columns, "/")
    export.personal = [c for c in columns if c in KOBO_PERSONAL or c.endswith("/_geolocation")]
    export.submitted_at = "_submission_time" if "_submission_time" in columns else None
    status = export.table.get("_validation_status")
    if status is not None and not source.keep_rejected:
        export.row_rules.append(RowRule(
            status.str.contains("not_approved"), "kobo_not_approved",
            "marked 'not approved' in KoboToolbox's validation", "_validation_status"))
    return export


def odk(path: Path, source) -> Export:
    """An ODK Central CSV export: '-'-joined group names, SubmissionDate, ReviewState."""
    export = generic(path, source, "csv")
    columns = list(export.table.columns)
    export.aliases = strip_prefixes([c for c in columns if not c.startswith("meta-")], "-")
    export.personal = [c for c in columns if c in ODK_PERSONAL]
    export.submitted_at = "SubmissionDate" if "SubmissionDate" in columns else None
    state = export.table.get("ReviewState")
    if state is not None and not source.keep_rejected:
        export.row_rules.append(RowRule(state.str.casefold().eq("rejected"), "odk_rejected",
                                        "rejected in ODK Central's review", "ReviewState"))
    return export


# --- Qualtrics ------------------------------------------------------------------
QUALTRICS_PERSONAL = ["IPAddress", "LocationLatitude", "LocationLongitude", "RecipientLastName",
                      "RecipientFirstName", "RecipientEmail"]


def qualtrics(path: Path, source) -> Export:
    """A Qualtrics CSV export: names, question text and ImportId header rows.

    The two extra header rows are dropped (row numbers stay true to the file);
    survey previews are quarantined, and unfinished responses unless
    ``keep_unfinished``.
    """
    export = generic(path, source, "csv")
    table = export.table
    extra = 0
    if len(table) and table.iloc[:2].apply(lambda r: r.str.contains('"ImportId"').any(),
                                           axis=1).any():
        extra = 2
    elif "ResponseId" in table and len(table) and table["ResponseId"].iloc[0] == "Response ID":
        extra = 1
    export.table, export.rows = table.iloc[extra:], export.rows.iloc[extra:]
    export.rows_in -= extra  # header rows written as records, not responses
    columns = list(export.table.columns)
    export.personal = [c for c in columns if c in QUALTRICS_PERSONAL]
    export.submitted_at = "RecordedDate" if "RecordedDate" in columns else None
    t = export.table
    if "Status" in columns:
        preview = t["Status"].isin(["1", "Survey Preview"])
        export.row_rules.append(RowRule(preview, "preview_response",
                                        "a survey preview, not a participant", "Status"))
    if "Finished" in columns and not source.keep_unfinished:
        export.row_rules.append(RowRule(t["Finished"].map(fold).isin(FALSE_TEXT), "not_finished",
                                        "response not finished (Finished = 0)", "Finished"))
    return export


# --- Google Forms -----------------------------------------------------------------
GFORMS_TIMESTAMPS = ["Timestamp", "Marca temporal", "Horodateur", "Carimbo de data/hora"]


def gforms(path: Path, source) -> Export:
    """A Google Forms response sheet (CSV or xlsx): a timestamp column, question text headers.

    Items are mapped by their question text in program.yaml (accents, case and
    spacing are ignored); the email column Forms collects is personal data.
    """
    export = by_extension(path, source)
    columns = list(export.table.columns)
    stamp = next((c for c in columns if c in GFORMS_TIMESTAMPS), None)
    export.submitted_at = stamp
    export.dayfirst = stamp in ("Marca temporal", "Horodateur", "Carimbo de data/hora")
    export.personal = [c for c in columns if fold(c) in ("email address",
                                                         "direccion de correo electronico")]
    return export


def read_export(path: Path, source, inbox: Path) -> Export:
    """Read ``path`` with the adapter of ``source.format``."""
    if source.format in ("csv", "xlsx"):
        return generic(path, source)
    if source.format in ("sav", "dta"):
        return spss_stata(path, source)
    if source.format == "redcap":
        return redcap(path, source, inbox)
    adapter = {"kobo": kobo, "odk": odk, "qualtrics": qualtrics, "gforms": gforms}.get(
        source.format)
    if adapter is None:
        raise SourceError(f"unknown format {source.format!r}")
    return adapter(path, source)
