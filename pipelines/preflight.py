"""Checks before a run starts: instrument ids and the columns program.yaml names.

A misspelled instrument id or a column that no file of a source has would
otherwise be found mid-run, file by file. Only the header of each file is read
(the first kilobytes of a CSV, the first rows of a sheet, the metadata of an
SPSS/Stata file), with ingest's own decoding, so a check costs milliseconds.
A column missing from *some* files of a source is left to the run (those files
are skipped with a message, the others go on); missing from *every* file, the
mapping is wrong and the run does not start.
"""

from __future__ import annotations

import difflib
from pathlib import Path

import pandas as pd

from instruments.model import improvement_directions
from pipelines.errors import ConfigError, SourceError
from pipelines.ingest.core import configured_columns
from pipelines.ingest.raw import Export, strip_prefixes
from pipelines.ingest.lines import decode_text, split_records
from pipelines.ingest.readers import looks_like_html, sniff_delimiter, unique_names
from pipelines.ingest.text import fold

SAMPLE_BYTES = 1 << 16  # a CSV header is in its first lines
SHOWN_COLUMNS = 40


def did_you_mean(name: str, known: list[str]) -> str:
    """" (did you mean 'x'?)" for the closest of ``known``, ignoring accents and case.

    >>> did_you_mean("proqql", ["proqol", "stss"])
    " (did you mean 'proqol'?)"
    """
    folded = {fold(k): k for k in known}
    close = difflib.get_close_matches(fold(name), list(folded), n=1, cutoff=0.6)
    return f" (did you mean {folded[close[0]]!r}?)" if close else ""


def check_instruments(config, instruments: dict) -> None:
    """Every instrument a source maps must be defined (built in or in instruments_dir)."""
    for source in config.sources:
        for inst_id in source.instruments:
            if inst_id not in instruments:
                raise ConfigError(
                    f"{config.root / 'program.yaml'}: source {source.name}: unknown instrument "
                    f"{inst_id!r}{did_you_mean(inst_id, list(instruments))}; known: "
                    f"{', '.join(sorted(instruments))} (`capacitar instruments list`)")
            if instruments[inst_id].kind == "rating" and not source.rater:
                raise ConfigError(
                    f"{config.root / 'program.yaml'}: source {source.name}: {inst_id} is a rating "
                    "instrument: name the column(s) identifying the rater, e.g. rater: [tutor]")


def check_primary_outcomes(primary, instruments: dict) -> None:
    """ConfigError naming the first declared primary outcome that is no instrument's scale."""
    known = improvement_directions(instruments)
    for outcome in primary:
        if (outcome.instrument, outcome.scale) not in known:
            scales = sorted(s for i, s in known if i == outcome.instrument)
            where = (f"its scales are {', '.join(scales)}" if scales
                     else f"instruments are {', '.join(sorted(instruments))}")
            raise ConfigError(f"program.yaml: primary_outcomes names {outcome.instrument}/"
                              f"{outcome.scale}, which is not a scale ({where})")


def header_of(path: Path, source) -> list[str]:
    """The column names of one export as its adapter would see them (header only)."""
    fmt = source.format
    if fmt in ("sav", "dta"):
        import pyreadstat

        reader = pyreadstat.read_sav if fmt == "sav" else pyreadstat.read_dta
        return [str(c) for c in reader(str(path), metadataonly=True)[1].column_names]
    if fmt == "xlsx" or (fmt in ("kobo", "gforms")
                         and path.suffix.lower() in (".xlsx", ".xlsm")):
        frame = pd.read_excel(path, sheet_name=source.sheet, header=source.header_row - 1,
                              nrows=0, engine="calamine")
        return [str(c).strip() for c in frame.columns]
    return csv_header(path, source.header_row, source.encoding, source.delimiter)


def csv_header(path: Path, header_row: int = 1, encoding: str | None = None,
               delimiter: str | None = None) -> list[str]:
    """The header cells of a CSV export from its first bytes (the whole file if need be)."""
    with path.open("rb") as handle:
        raw = handle.read(SAMPLE_BYTES)
        if len(raw) == SAMPLE_BYTES:
            raw = raw[:raw.rfind(b"\n") + 1] or raw + handle.read()  # whole lines only
    text = decode_text(raw, encoding).text
    if looks_like_html(text):
        raise SourceError("not a CSV export")  # the run says which, as it skips the file
    records = split_records(text, delimiter or sniff_delimiter(text))
    if len(records.cells) < header_row or not records.cells[header_row - 1]:
        raise SourceError("no header row")
    return unique_names(records.cells[header_row - 1])


def as_export(columns: list[str], fmt: str) -> Export:
    """An empty export with the names a program.yaml may use for ``columns``."""
    export = Export(table=pd.DataFrame(columns=columns), rows=pd.Series(dtype="int64"))
    if fmt == "kobo":
        export.aliases = strip_prefixes(columns, "/")
    elif fmt == "odk":
        export.aliases = strip_prefixes([c for c in columns if not c.startswith("meta-")], "-")
    elif fmt == "redcap":  # checkbox columns field___code are combined into field
        export.aliases = {c.rsplit("___", 1)[0]: c for c in columns if "___" in c}
    return export


def check_headers(config, instruments: dict, only_files: set[str] | None = None) -> None:
    """Stop when a column program.yaml names is in none of a source's files.

    ``only_files`` limits the check to sources with one of these files (those
    new or changed since the last run). Files are read one by one until every
    column is found (usually in the first). A file whose header cannot be read
    is left to the run, which skips it with its own message.
    """
    for source in config.sources:
        paths = [p for p in config.source_paths(source.pattern) if p.is_file()]
        if not paths or (only_files is not None and not only_files & {p.name for p in paths}):
            continue
        unfound = list(dict.fromkeys(configured_columns(source, instruments)))
        headers = {}
        for path in paths:
            try:
                export = as_export(header_of(path, source), source.format)
            except Exception:  # noqa: BLE001 - unreadable: the run skips it with a message
                continue
            headers[path] = export
            unfound = [name for name in unfound if export.column(name) is None]
            if not unfound:
                break
        if headers and unfound:
            raise ConfigError(missing_message(config, source, unfound[0], headers))


def missing_message(config, source, name: str, headers: dict[Path, Export]) -> str:
    """``column 'x' is in none of the files ... did you mean ...; FILE has: ...``."""
    path, export = next(iter(headers.items()))
    columns = list(export.table.columns)
    shown = ", ".join(columns[:SHOWN_COLUMNS]) + (
        f", ... ({len(columns)} columns)" if len(columns) > SHOWN_COLUMNS else "")
    where = f"in none of its {len(headers)} files" if len(headers) > 1 else "not in its file"
    return (f"{config.root / 'program.yaml'}: source {source.name}: column {name!r} is {where}"
            f"{did_you_mean(name, columns)}; {path.name} has: {shown}")
