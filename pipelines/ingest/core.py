"""Turn the inbox's raw exports into canonical responses, one frame per instrument.

Canonical responses (ARCHITECTURE.md): key columns ``KEYS`` then the instrument's
item ids as columns. Likert items hold numeric codes (float, NaN = missing);
knowledge items hold option codes as text. Personal columns never leave this
module: identifiers become keyed pseudonyms, other PII is dropped.

Every record of every file is accounted for, per instrument: it is ingested,
set aside with a reason (a quarantine record, of a whole row or of one cell),
or its whole file is skipped with a one-line message. A raw value leaves this
module only through ``scrub.safe_value`` (see ``scrub.py``).
"""

from __future__ import annotations

import difflib
import hashlib
import os
import re
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from instruments.model import Instrument, ResponseOption
from pipelines.config import InstrumentMapping, Locator, ProgramConfig, Source
from pipelines.errors import SourceError
from pipelines.ingest.adapters import read_export
from pipelines.ingest.raw import Export, RowRule
from pipelines.ingest.pseudonym import RATER_PREFIX, normalise_identifier, pseudonymise
from pipelines.ingest.scrub import NOTHING_KNOWN, REDACTED, KnownValues, looks_personal, \
    safe_value, safe_values, scrub_message
from pipelines.ingest.text import fold, map_distinct
from pipelines.parallel import Shared, workers

KEYS = ["cohort", "participant", "wave", "instrument", "source_file", "source_row"]
EXTRA_KEYS = ["submitted_at", "form"]
RATER = "rater"  # rating instruments only: the rater's pseudonym, after EXTRA_KEYS
QUARANTINE_COLUMNS = [
    "source_file",
    "source_row",
    "participant",
    "instrument",
    "cohort",
    "wave",
    "stage",
    "rule",
    "scope",
    "column",
    "value",
    "detail",
]
# A quarantine record sets aside a whole row ("row": the row is in no result) or one answer
# ("cell": that answer is treated as missing and the row stays valid).
SCOPES = ("row", "cell")


@dataclass
class IngestResult:
    """What ingest hands to the contracts stage."""

    responses: dict[str, pd.DataFrame]
    rejected: pd.DataFrame
    accounting: pd.DataFrame
    inputs: pd.DataFrame
    problems: list[str] = field(default_factory=list)
    links: pd.DataFrame | None = None


def sha256_of(path: Path, chunk: int = 1 << 20) -> str:
    """SHA-256 of a file's bytes (read in chunks: exports can be large), for the runs record."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def quarantine_frame(records: list[dict] | None = None) -> pd.DataFrame:
    """A quarantine table with the stable columns, from records (dicts)."""
    frame = pd.DataFrame.from_records(records or [], columns=QUARANTINE_COLUMNS)
    frame["source_row"] = frame["source_row"].astype("Int64")
    return frame


# --- locating keys ----------------------------------------------------------
def require_columns(frame: pd.DataFrame, names: list[str], what: str) -> None:
    """SourceError naming the missing columns, the close matches and the columns the file has.

    Header cells that look personal (a data row taken for the header) are not listed.

    Examples
    --------
    >>> require_columns(pd.DataFrame(columns=["e-mail", "Sede"]), ["email", "Sede"], "x")
    Traceback (most recent call last):
    ...
    pipelines.errors.SourceError: x 'email' is not in the file (did you mean 'e-mail'?); the file has: e-mail, Sede
    """
    missing = [name for name in names if name not in frame.columns]
    if not missing:
        return
    header = [str(c) for c in frame.columns]
    by_fold = {fold(c): c for c in header}
    hints = [h for name in missing
             for h in difflib.get_close_matches(fold(name), list(by_fold), n=1, cutoff=0.75)]
    hint = f" (did you mean {', '.join(repr(by_fold[h]) for h in hints)}?)" if hints else ""
    if header_looks_like_data(header):
        has = "its header row looks like a row of answers: is header_row right?"
        hint = ""
    else:
        shown = [safe_value(c) for c in header[:40]]
        has = "the file has: " + ", ".join(shown) + (", ..." if len(header) > 40 else "")
    named = f"{what} {missing[0]!r} is" if len(missing) == 1 else f"{what}s {missing} are"
    raise SourceError(f"{named} not in the file{hint}; {has}")


def locate(frame: pd.DataFrame, locator: Locator, path: Path, what: str) -> pd.Series:
    """Values of a key (cohort, wave, form) for each row, mapped to program ids."""
    if locator.column is not None:
        require_columns(frame, [locator.column], f"the {what} column")
        raw = frame[locator.column]
    elif locator.value is not None:
        raw = pd.Series(locator.value, index=frame.index, dtype=str)
    else:
        match = re.search(locator.filename, path.name)
        if not match:
            raise SourceError(
                f"cannot find the {what} in the file name with pattern {locator.filename!r}"
            )
        raw = pd.Series(match.group(1), index=frame.index, dtype=str)
    folded_map = {fold(k): v for k, v in locator.map.items()}
    return map_distinct(raw, lambda v: folded_map.get(fold(v), str(v).strip()))


def header_looks_like_data(header: list[str]) -> bool:
    """A header row holding personal-looking values, or numbers in a third of its cells.

    Examples
    --------
    >>> header_looks_like_data(["Nombre", "Sede", "OMS1"]), header_looks_like_data(
    ...     ["Ana Díaz", "Virú", "3", "2", "4"])
    (False, True)
    """
    numbers = sum(bool(re.fullmatch(r"[\d.,:/ -]+", c)) for c in header)
    return numbers >= len(header) / 3 or any(looks_personal(c) for c in header)


def cohort_lookup(config: ProgramConfig) -> dict[str, str]:
    """Folded cohort id, site and alias -> cohort id (site only where unique)."""
    lookup: dict[str, str] = {}
    sites = Counter(fold(c.site) for c in config.cohorts)
    for cohort in config.cohorts:
        names = [cohort.id, *cohort.aliases]
        if sites[fold(cohort.site)] == 1:
            names.append(cohort.site)
        lookup.update({fold(name): cohort.id for name in names})
    return lookup


# --- items ------------------------------------------------------------------
def option_lookup(options: list[ResponseOption]) -> dict[str, str]:
    """Folded code and es/en label -> code as text."""
    lookup = {}
    for opt in options:
        for name in (opt.code, opt.es, opt.en):
            lookup[fold(name)] = str(opt.code)
    return lookup


def likert_to_number(cells: pd.Series, options: list[ResponseOption]) -> pd.Series:
    """Cells as numeric codes: numbers stay numbers, labels map to their codes.

    Blank cells become NaN (missing, not an error); cells that are neither a
    number nor a label (or a number that looks like a phone or ID) become the
    sentinel ``np.inf``, so the caller can set the cell aside with its reason.
    """
    # A column holds a handful of distinct answers: convert those, then pick by code
    # (to_numeric on every Arrow string cell was the costliest step of ingest).
    codes, distinct = cells.factorize(use_na_sentinel=False)
    numbers = distinct_numbers(pd.Series(distinct), options).to_numpy()
    return pd.Series(numbers.take(codes), index=cells.index, name=cells.name, dtype=float)


def distinct_numbers(cells: pd.Series, options: list[ResponseOption]) -> pd.Series:
    """``likert_to_number`` of each cell (as float), vectorised for the common case."""
    labels = option_lookup(options)
    numbers = pd.to_numeric(cells.str.replace(",", ".", regex=False), errors="coerce")
    leftover = numbers.isna() & cells.ne("")
    if leftover.any():
        def label_code(cell: str) -> float:
            code = labels.get(fold(cell))
            return float(code) if code is not None else np.inf

        numbers[leftover] = cells[leftover].map(label_code)
    numbers = numbers.astype(float)
    # A phone or ID number typed in an answer cell is no answer, and its digits go no further.
    other = np.isfinite(numbers) & ~numbers.isin([float(o.code) for o in options])
    if other.any():
        numbers[other & cells.map(looks_personal).astype(bool)] = np.inf
    return numbers


def choice_to_code(cells: pd.Series, options: list[ResponseOption],
                   known: KnownValues | None = None) -> pd.Series:
    """Knowledge answers as option codes (text); multi-select kept ';'-joined, sorted.

    An answer that is no option is kept folded (the contracts set it aside),
    unless it looks personal: then it is ``***``.
    """
    labels = option_lookup(options)
    codes_known = set(labels.values())

    def convert(cell: str) -> object:
        if cell == "":
            return pd.NA
        parts = [p for p in re.split(r"[;,]", cell) if p.strip()] if ";" in cell else [cell]
        codes = [labels.get(fold(p), fold(p)) for p in parts]
        if not codes_known.issuperset(codes) and looks_personal(cell, known or NOTHING_KNOWN):
            return REDACTED
        return ";".join(sorted(codes))

    return map_distinct(cells, convert).astype("str")


def item_columns(mapping: InstrumentMapping, item_ids: list[str]) -> dict[str, str]:
    """Raw column -> item id, from a ``{n}`` template or an explicit mapping."""
    if isinstance(mapping.items, dict):
        return dict(mapping.items)
    return {mapping.items.format(n=n): item for n, item in enumerate(item_ids, start=1)}


# --- one source file -> canonical rows of one instrument ----------------------
@dataclass
class FileFrame:
    """One read file with its row keys resolved."""

    path: Path
    source: Source
    table: pd.DataFrame
    keys: pd.DataFrame  # cohort, participant, wave, source_file, source_row, submitted_at
    export: Export
    known: KnownValues  # the file's personal values, to recognise them in other columns
    links: pd.DataFrame | None = None  # pseudonym -> identifier, only with a link file


def file_keys(table: pd.DataFrame, path: Path, source: Source, config, key,
              export: Export, known: KnownValues) -> pd.DataFrame:
    """The key columns of every row of one file (participant already pseudonymised).

    A cohort or wave value that is not a declared id is kept only as
    :func:`scrub.safe_value` keeps it, so a shifted email never travels on as
    a cohort.
    """
    require_columns(table, source.identifier + source.pii, "identifier/PII column")
    lookup = cohort_lookup(config)
    cohort = locate(table, source.cohort, path, "cohort")
    keys = pd.DataFrame(index=table.index)
    keys["cohort"] = map_distinct(cohort, lambda v: lookup.get(fold(v)) or safe_value(v, known))
    keys["participant"] = pseudonymise(table, source.identifier, key)
    if source.rater:
        require_columns(table, source.rater, "rater column")
        keys[RATER] = pseudonymise(table, source.rater, key, RATER_PREFIX)
    keys["wave"] = safe_values(locate(table, source.wave, path, "wave"), known,
                               keep=config.wave_order())
    keys["source_file"] = path.name
    keys["source_row"] = export.rows.astype("int64")
    stamp_column = source.submitted_at or export.submitted_at
    keys["submitted_at"] = pd.NaT
    if stamp_column:
        require_columns(table, [stamp_column], "the submitted_at column")
        dayfirst = config.language == "es" if export.dayfirst is None else export.dayfirst
        keys["submitted_at"], bad = parse_times(table[stamp_column], dayfirst)
        export.row_rules.append(RowRule(
            bad, "unreadable_date", "submission date is not a date (or its year is outside "
            "1677-2262)", stamp_column))
    return keys


EARLIEST, LATEST = pd.Timestamp.min.ceil("D"), pd.Timestamp.max.floor("D")


def parse_times(cells: pd.Series, dayfirst: bool = False) -> tuple[pd.Series, pd.Series]:
    """Submission times as timestamps, and which non-blank cells are not dates.

    Tolerates the tools' styles; ISO dates (year first) are never day-first.
    A year outside 1677-2262 (what a timestamp can hold) is not a date.

    Examples
    --------
    >>> stamps, bad = parse_times(pd.Series(["2026-03-01 10:15:00", "02/03/2026", "",
    ...                                      "3026-01-01", "ayer"]), dayfirst=True)
    >>> stamps.dt.month.tolist(), bad.tolist()
    ([3.0, 3.0, nan, nan, nan], [False, False, False, True, True])
    """
    codes, distinct = cells.factorize(use_na_sentinel=False)
    text = pd.Series(distinct, dtype="str")
    # Google Forms in Spanish writes "a. m."/"p. m.": make them parseable.
    text = text.str.replace(r"\s*a\.\s*m\.", " AM", regex=True).str.replace(
        r"\s*p\.\s*m\.", " PM", regex=True).str.replace(r"\s*GMT[+-]\d+$", "", regex=True)
    iso = text.str.match(r"^\s*\d{4}[-/]")
    parsed = pd.Series(pd.NaT, index=text.index, dtype="datetime64[us, UTC]")
    for rows, day_first in ((iso, False), (~iso, dayfirst)):
        if rows.any():
            # Parsed at microsecond resolution, so years beyond 2262 are read, then refused.
            parsed[rows] = pd.to_datetime(text[rows], errors="coerce", format="mixed",
                                          dayfirst=day_first, utc=True).astype(
                                              "datetime64[us, UTC]")
    naive = parsed.dt.tz_localize(None)
    inside = naive.between(EARLIEST, LATEST)
    stamps = naive.where(inside).astype("datetime64[ns]")
    bad = (~inside & text.str.strip().ne("")).to_numpy()
    return (pd.Series(stamps.to_numpy().take(codes), index=cells.index),
            pd.Series(bad.take(codes), index=cells.index))


def instrument_rows(
    ff: FileFrame, inst: Instrument, mapping: InstrumentMapping
) -> tuple[pd.DataFrame, list[dict]]:
    """Canonical rows of one instrument from one file, and quarantine records.

    A row is set aside whole when its keys are bad (no identifier, a broken
    record, an unreadable date, an incomplete form, no answer); an unreadable
    answer only makes that cell missing (a ``cell`` record).
    """
    rejects: list[dict] = broken_records(ff, inst.id)
    keys = ff.keys.assign(instrument=inst.id)
    keep = pd.Series(True, index=ff.table.index)

    def reject(mask: pd.Series, rule: str, detail: str, column: str = "", values=None,
               scope: str = "row") -> None:
        hits = mask & keep
        for idx in hits[hits].index:
            value = "" if values is None else safe_value(values.loc[idx], ff.known)
            rejects.append(record(keys.loc[idx], "ingest", rule, detail, column, value, scope))
        if scope == "row":
            keep.loc[mask] = False

    reject(keys["participant"].eq(""), "missing_identifier",
           "no identifier (" + ", ".join(ff.source.identifier) + ") in this row")
    for rule in ff.export.row_rules:
        reject(rule.mask.reindex(keep.index, fill_value=False), rule.rule, rule.detail,
               rule.column, ff.table.get(rule.column))
    first_item = next(iter(item_columns(mapping, first_form_items(inst))), None)
    form_rows = ff.export.form_rows.get(first_item)
    if form_rows is not None:
        reject(~form_rows.reindex(keep.index, fill_value=False), "other_redcap_form",
               "row of another REDCap instrument (repeating instrument rows)")
    complete_column = mapping.complete_column or ff.export.complete_columns.get(first_item)
    if complete_column:
        require_columns(ff.table, [complete_column], "the status column")
        status = ff.table[complete_column]
        reject(~status.isin(mapping.complete_values), "form_incomplete",
               f"form status is not complete ({'/'.join(mapping.complete_values)})",
               complete_column, status)
    if inst.kind == "knowledge":
        items, form = knowledge_items(ff, inst, mapping, reject)
        keys = keys.assign(form=form)
    else:
        items = likert_items(ff, inst, mapping, reject)
        keys = keys.assign(form=pd.NA)
    if inst.kind == "rating":
        reject(keys[RATER].eq(""), "missing_rater",
               "no rater (" + ", ".join(ff.source.rater) + ") in this row",
               ", ".join(ff.source.rater))
    unanswered = items.isna().all(axis=1)
    reject(unanswered, "no_answers", f"no {inst.id} item answered in this row")
    canonical = pd.concat([keys[key_columns(inst)], items], axis=1).loc[keep]
    return canonical.reset_index(drop=True), rejects


def key_columns(inst: Instrument) -> list[str]:
    """The key columns of an instrument's canonical rows (a rating's rater after the others)."""
    return KEYS + EXTRA_KEYS + ([RATER] if inst.kind == "rating" else [])


def broken_records(ff: FileFrame, inst_id: str) -> list[dict]:
    """Quarantine records of the records the reader could not turn into rows.

    Nothing of their text is kept (no participant, cohort or wave either):
    ``value`` holds their line numbers.
    """
    return [{"source_file": ff.path.name, "source_row": b.first, "participant": "",
             "instrument": inst_id, "cohort": "", "wave": "", "stage": "ingest",
             "rule": b.rule, "scope": "row", "column": "", "value": b.lines,
             "detail": f"lines {b.lines}: {b.detail}"} for b in ff.export.broken]


def first_form_items(inst: Instrument) -> list[str]:
    """Item ids in file order for a template mapping: the first form's for a knowledge test."""
    return inst.forms[0].items if inst.kind == "knowledge" and inst.forms else inst.item_ids


def with_value_labels(cells: pd.Series, labels: dict[str, str] | None,
                      options: list[ResponseOption]) -> pd.Series:
    """Cells the instrument does not know, read through the tool's value labels.

    A code whose label the instrument knows becomes that label (SPSS 1 = "b"),
    and a label the tool defined becomes its code (REDCap label exports).
    """
    if not labels:
        return cells
    known = option_lookup(options)
    by_label = {fold(label): code for code, label in labels.items()}

    def fix(cell: str) -> str:
        if cell == "" or fold(cell) in known:
            return cell
        if cell in labels and fold(labels[cell]) in known:
            return labels[cell]
        return by_label.get(fold(cell), cell)

    return map_distinct(cells, fix)


def likert_items(ff: FileFrame, inst: Instrument, mapping, reject) -> pd.DataFrame:
    """Numeric item columns of a scale; an unreadable answer is a missing cell (recorded)."""
    columns = item_columns(mapping, inst.item_ids)
    require_columns(ff.table, list(columns), f"{inst.id}: mapped item column")
    items = pd.DataFrame(index=ff.table.index)
    for raw, item_id in columns.items():
        cells = with_value_labels(ff.table[raw], ff.export.value_labels.get(raw),
                                  inst.options_for(item_id))
        values = likert_to_number(cells, inst.options_for(item_id))
        bad = np.isinf(values)
        if bad.any():
            reject(bad, "unreadable_answer", f"answer is neither a code nor a label of {item_id}",
                   item_id, ff.table[raw], scope="cell")
        items[item_id] = values.where(~bad)
    return items.reindex(columns=inst.item_ids)


def knowledge_items(ff: FileFrame, inst: Instrument, mapping, reject):
    """Option-code columns of a knowledge test, positions mapped through each row's form."""
    if mapping.form is None:
        raise SourceError(f"{inst.id}: a knowledge test source needs a 'form' locator")
    form = locate(ff.table, mapping.form, ff.path, "test form")
    form = map_distinct(form, lambda v: str(v).upper())
    known = {f.id.upper(): f for f in inst.forms}
    reject(~form.isin(known), "unknown_form",
           f"test form is not one of {sorted(known)}", mapping.form.column or "form", form)
    # Columns are filled as arrays and framed once: a .loc read and an aligned .loc write
    # per form and item cost more than the answers' conversion.
    columns = {item_id: np.full(len(form), np.nan, dtype=object) for item_id in inst.item_ids}
    unlisted = []  # mapped item ids the instrument lacks: .loc adds them as columns
    for form_id, spec in known.items():
        rows = form.eq(form_id)
        if not rows.any():
            continue
        subset, at = ff.table.loc[rows], rows.to_numpy()
        for raw, item_id in item_columns(mapping, spec.items).items():
            require_columns(ff.table, [raw], f"{inst.id} form {form_id}: column")
            cells = with_value_labels(subset[raw], ff.export.value_labels.get(raw),
                                      inst.options_for(item_id))
            codes = choice_to_code(cells, inst.options_for(item_id), ff.known)
            if item_id in columns:
                columns[item_id][at] = codes.to_numpy(dtype=object)
            else:
                unlisted.append((rows, item_id, codes))
    items = pd.DataFrame(columns, index=ff.table.index, columns=inst.item_ids, dtype="str")
    for rows, item_id, codes in unlisted:
        items.loc[rows, item_id] = codes
    return items, form.where(form.isin(known))


def record(keys: pd.Series, stage: str, rule: str, detail: str, column="", value="",
           scope: str = "row") -> dict:
    """One quarantine record (no personal data: participant is a pseudonym)."""
    return {
        "source_file": keys["source_file"],
        "source_row": int(keys["source_row"]),
        "participant": keys["participant"],
        "instrument": keys["instrument"],
        "cohort": keys["cohort"],
        "wave": keys["wave"],
        "stage": stage,
        "rule": rule,
        "scope": scope,
        "column": column,
        "value": "" if pd.isna(value) else str(value),
        "detail": detail,
    }


# --- the whole inbox ----------------------------------------------------------
@dataclass
class FileResult:
    """What one inbox file gives: its input record, rows per instrument, rejects, accounting."""

    entry: dict
    frames: dict[str, pd.DataFrame] = field(default_factory=dict)
    rejects: list[dict] = field(default_factory=list)
    accounting: list[dict] = field(default_factory=list)
    problem: str | None = None
    links: pd.DataFrame | None = None


PARALLEL_BYTES = 4_000_000  # a smaller inbox is read in this process: too little to share
SETTLE_SECONDS = 3.0  # a file modified more recently may still be being written
SETTLE_ENV = "CAPACITAR_SETTLE_SECONDS"
INPUT_COLUMNS = ["source", "source_file", "sha256", "status", "rows", "encoding", "message"]
INGEST_ACCOUNTING = ["source_file", "instrument", "encoding", "rows_in", "rows_read",
                     "rows_skipped", "rows_rejected_at_ingest"]
IN_MOTION = "in_motion"  # an input's status when it is skipped to be read next run


def settle_seconds() -> float:
    """How old a file must be to be read: ``$CAPACITAR_SETTLE_SECONDS`` or SETTLE_SECONDS."""
    try:
        return max(0.0, float(os.environ.get(SETTLE_ENV, SETTLE_SECONDS)))
    except ValueError:
        return SETTLE_SECONDS


def mark_settled(folder: Path) -> None:
    """Date every file of ``folder`` back a minute, past the settle time.

    For inboxes capacitar writes itself and reads at once (the demo, the
    example of ``capacitar init``): they are complete when written.
    """
    earlier = time.time() - 60
    for path in folder.iterdir():
        if path.is_file():
            os.utime(path, (earlier, earlier))


class FileInMotion(SourceError):
    """A file still being written: skipped this run, read on the next one."""


def ingest_program(
    config: ProgramConfig, instruments: dict[str, Instrument], key: bytes
) -> IngestResult:
    """Read every source file of the program's inbox into canonical responses.

    A file that cannot be read (as configured, or at all) is reported in
    ``problems`` (one message naming the file) and skipped; the other files go
    on. A big inbox is read by several processes (files are independent), the
    results assembled in the inbox's order: the same result as one process.
    """
    plan: list[str | tuple[Source, Path]] = []  # in order: a problem, or a file to read
    for source in config.sources:
        unknown = [i for i in source.instruments if i not in instruments]
        if unknown:
            plan.append(f"source {source.name}: unknown instruments {unknown}")
            continue
        paths = config.source_paths(source.pattern)
        if not paths:
            plan.append(f"source {source.name}: no file matches {source.pattern!r} in the inbox")
        for path in paths:
            plan.append((source, path) if path.is_file() else
                        f"{path.name} (source {source.name}): a folder, not a file; move it "
                        "out of the inbox or change the pattern")
    at = [i for i, job in enumerate(plan) if not isinstance(job, str)]
    parts: list = list(plan)
    for i, result in zip(at, read_in_parallel([plan[i] for i in at], config, instruments, key)):
        parts[i] = result
    return assemble_ingest(parts, instruments)


def file_size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def read_in_parallel(files: list[tuple[Source, Path]], config: ProgramConfig,
                     instruments: dict[str, Instrument], key: bytes) -> list[FileResult]:
    """:func:`ingest_file` of each file, in order; a big inbox shared out among processes
    (:class:`pipelines.parallel.Shared`), the biggest files first."""
    sizes = [file_size(path) for _, path in files]
    if sum(sizes) < PARALLEL_BYTES or len(files) < 2:
        return ingest_files(files, config, instruments, key)
    order = sorted(range(len(files)), key=lambda i: -sizes[i])
    with Shared(lambda i: ingest_file(*files[i], config, instruments, key), order,
                workers() - 1) as shared:
        shared.help()
        results = shared.results()
    out: list = [None] * len(files)
    for i, result in zip(order, results):
        out[i] = result
    return out


def ingest_files(files: list[tuple[Source, Path]], config: ProgramConfig,
                 instruments: dict[str, Instrument], key: bytes) -> list[FileResult]:
    """:func:`ingest_file` of each file, in order."""
    return [ingest_file(source, path, config, instruments, key) for source, path in files]


def ingest_file(source: Source, path: Path, config: ProgramConfig,
                instruments: dict[str, Instrument], key: bytes) -> FileResult:
    """One file's canonical rows per instrument and its rejects (or the reason it is skipped).

    Any error while reading the file skips that file with a one-line message:
    a file being written (younger than the settle time, or changed while it
    was read) is read on the next run instead.
    """
    entry = {"source": source.name, "source_file": path.name, "sha256": "", "encoding": ""}
    counted: list[int] = []  # the file's records, once the reader has counted them
    try:
        before = settled(path)
        entry["sha256"] = sha256_of(path)
        ff = read_file(path, source, config, key, instruments, counted)
        result = FileResult(entry={**entry, "encoding": ff.export.encoding, "status": "read",
                                   "rows": len(ff.table), "message": ""}, links=ff.links)
        for inst_id, mapping in source.instruments.items():
            canonical, rejected = instrument_rows(ff, instruments[inst_id], mapping)
            result.frames[inst_id] = canonical
            result.rejects.extend(rejected)
            result.accounting.append(
                {"source_file": path.name, "instrument": inst_id,
                 "encoding": ff.export.encoding, "rows_in": ff.export.rows_in,
                 "rows_read": len(ff.table), "rows_skipped": 0,
                 "rows_rejected_at_ingest": sum(r["scope"] == "row" for r in rejected)})
        if changed_since(path, before):
            raise FileInMotion("changed while it was read; it will be read on the next run")
        return result
    except Exception as exc:  # noqa: BLE001 - whatever goes wrong, it is this file's problem
        message = str(exc) if isinstance(exc, SourceError) else \
            f"could not be read ({type(exc).__name__}: {scrub_message(exc)})"
        status = IN_MOTION if isinstance(exc, FileInMotion) else "skipped"
        rows_in = counted[0] if counted else 0
        return FileResult(
            entry={**entry, "status": status, "rows": 0, "message": message},
            accounting=[{"source_file": path.name, "instrument": inst_id, "encoding": "",
                         "rows_in": rows_in, "rows_read": 0, "rows_skipped": rows_in,
                         "rows_rejected_at_ingest": 0} for inst_id in source.instruments],
            problem=f"{path.name} (source {source.name}): {message}")


def settled(path: Path) -> os.stat_result:
    """The file's status, or FileInMotion when it was modified within the settle time."""
    status = path.stat()
    age = time.time() - status.st_mtime
    if -1.0 < age < settle_seconds():
        raise FileInMotion(f"modified {max(age, 0):.1f} s ago, it may still be being written; "
                           "it will be read on the next run")
    return status


def changed_since(path: Path, before: os.stat_result) -> bool:
    """True when the file's size or modification time is not what it was before reading."""
    try:
        after = path.stat()
    except OSError:
        return True
    return (after.st_size, after.st_mtime_ns) != (before.st_size, before.st_mtime_ns)


def assemble_ingest(parts: list[str | FileResult], instruments: dict[str, Instrument]
                    ) -> IngestResult:
    """One :class:`IngestResult` from problems and file results, in inbox order."""
    frames: dict[str, list[pd.DataFrame]] = {i: [] for i in instruments}
    rejects, accounting, inputs, problems, links = [], [], [], [], []
    for part in parts:
        if isinstance(part, str):
            problems.append(part)
            continue
        for inst_id, frame in part.frames.items():
            frames[inst_id].append(frame)
        rejects += part.rejects
        accounting += part.accounting
        inputs.append(part.entry)
        if part.problem:
            problems.append(part.problem)
        if part.links is not None:
            links.append(part.links)
    responses = {
        inst_id: pd.concat(parts, ignore_index=True) if parts else empty_responses(instruments[inst_id])
        for inst_id, parts in frames.items()
    }
    return IngestResult(
        responses=responses,
        rejected=quarantine_frame(rejects),
        accounting=pd.DataFrame(accounting, columns=INGEST_ACCOUNTING),
        inputs=pd.DataFrame(inputs, columns=INPUT_COLUMNS),
        problems=problems,
        links=pd.concat(links).drop_duplicates() if links else None,
    )


def read_file(path: Path, source: Source, config: ProgramConfig, key: bytes,
              instruments: dict[str, Instrument], counted: list[int] | None = None
              ) -> FileFrame:
    """Read one file with its adapter and resolve its row keys; PII columns are dropped here.

    ``counted`` receives the file's record count as soon as the reader knows it
    (a file skipped later still says how many records it held).
    """
    export = read_export(path, source, config.inbox_dir)
    if counted is not None:
        counted.append(export.rows_in)
    if export.rows_in == 0:
        raise SourceError("the file has a header but no data rows")
    resolve_names(export, configured_columns(source, instruments))
    table = export.table
    personal = [c for c in dict.fromkeys(source.identifier + source.pii + source.rater
                                          + export.personal)
                if c in table.columns]
    known = KnownValues(table, personal)
    keys = file_keys(table, path, source, config, key, export, known)
    links = link_records(table, source, keys["participant"]) \
        if config.pseudonymisation.link_file else None
    return FileFrame(path=path, source=source, table=table.drop(columns=personal), keys=keys,
                     export=export, known=known, links=links)


def configured_columns(source: Source, instruments: dict[str, Instrument]) -> list[str]:
    """Every column name program.yaml uses for this source."""
    names = [*source.identifier, *source.pii, *source.rater]
    for locator in (source.cohort, source.wave):
        names += [locator.column] if locator.column else []
    names += [source.submitted_at] if source.submitted_at else []
    for inst_id, mapping in source.instruments.items():
        inst = instruments.get(inst_id)
        if inst is None:
            continue
        names += list(item_columns(mapping, first_form_items(inst)))
        names += [mapping.complete_column] if mapping.complete_column else []
        names += [mapping.form.column] if mapping.form and mapping.form.column else []
    return names


def resolve_names(export: Export, names: list[str]) -> None:
    """Let program.yaml name a column by alias or with other accents/case: copy it under that name."""
    for name in names:
        found = export.column(name)
        if found is not None and found != name and name not in export.table.columns:
            export.table[name] = export.table[found]
            if found in export.value_labels:
                export.value_labels[name] = export.value_labels[found]
            if found in export.personal:
                export.personal.append(name)


def link_records(ff_table: pd.DataFrame, source: Source, participants: pd.Series) -> pd.DataFrame:
    """Pseudonym -> normalised identifier pairs of one file, for the optional link file."""
    ids = ff_table[source.identifier].apply(lambda c: map_distinct(c, normalise_identifier))
    identifier = ids.agg("|".join, axis=1) if len(source.identifier) > 1 else ids.iloc[:, 0]
    return pd.DataFrame({"participant": participants, "identifier": identifier}).loc[
        participants.ne("")].drop_duplicates()


def empty_responses(inst: Instrument) -> pd.DataFrame:
    """A canonical frame with no rows (an instrument no file delivered)."""
    return pd.DataFrame(columns=key_columns(inst) + inst.item_ids)
