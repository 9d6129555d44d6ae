"""Read one raw export into text cells, and count its records independently of the parser.

Spanish Excel writes CSV in cp1252 with ``;``; REDCap writes UTF-8 with ``,``;
Kobo uses ``;``; some tools add a BOM. Text is decoded strictly line by line
and cut into records from its lines (``lines.py``), so a bad byte or a stray
quote costs its own record, reported with its line numbers, never the rest of
the file. The delimiter is the one found as often on most of the first lines.

Reading is bounded (:data:`MAX_TEXT_BYTES`, :data:`MAX_XLSX_BYTES`,
:data:`MAX_COLUMNS`, :data:`MAX_CELLS`): a file beyond a bound is skipped
with a message before it is expanded into memory.
"""

from __future__ import annotations

import datetime as dt
import zipfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from pipelines.errors import SourceError
from pipelines.ingest.lines import decode_text, split_records

DELIMITERS = ",;\t|"
MAX_TEXT_BYTES = 512 * 2**20  # a text export larger than this is refused
MAX_XLSX_BYTES = 200 * 2**20  # a workbook's unpacked size (the zip's declared sizes)
MAX_XLSX_RATIO = 100  # unpacked / packed size of one part: beyond this only a zip bomb goes
MAX_COLUMNS = 16_384  # Excel's own limit
MAX_CELLS = 50_000_000  # rows x columns of one file
SNIFF_CHARS = 65_536  # the delimiter is guessed from the first lines, at most this much text


@dataclass
class Broken:
    """Lines of a file that could not be turned into a row (no cell text is kept)."""

    first: int
    last: int
    rule: str
    detail: str

    @property
    def lines(self) -> str:
        """'12' or '12-15'."""
        return str(self.first) if self.last == self.first else f"{self.first}-{self.last}"


@dataclass
class Read:
    """One export read as text cells, with its own count of records.

    Attributes
    ----------
    frame : stripped text cells, one row per record; the index is the line
        (or spreadsheet row) number.
    rows_in : records after the header, counted independently of the parser
        (records with no content at all, such as blank lines, not counted).
    broken : records that are not rows of ``frame`` (malformed, undecodable).
    encoding : the text encoding used ("" for binary formats).
    """

    frame: pd.DataFrame
    rows_in: int
    broken: list[Broken] = field(default_factory=list)
    encoding: str = ""


def sniff_delimiter(text: str) -> str:
    r"""The delimiter of a CSV text: the one found the same number of times on most of its
    first lines (a record's worth); ',' when none is.

    ``csv.Sniffer`` trusts a quoted cell: one answer like ``"3,5"`` in the first lines
    made it pick ',' for a ';' file and the whole file was skipped.

    Examples
    --------
    >>> sniff_delimiter('a;b;c\n1;"2,5";x\n4;5;6\n'), sniff_delimiter("a\tb\n1\t2\n")
    (';', '\t')
    """
    lines = [line for line in text[:SNIFF_CHARS].splitlines()[:50] if line.strip()]
    best, best_score = ",", (0, 0)
    for delimiter in DELIMITERS:
        counts = Counter(line.count(delimiter) for line in lines)
        counts.pop(0, None)
        if counts:  # lines sharing the most common count, then the more cells
            score = max((n, count) for count, n in counts.items())
            if score > best_score:
                best, best_score = delimiter, score
    return best


def looks_like_html(text: str) -> bool:
    """True for a web page saved with a .csv/.xlsx name (a common export mistake)."""
    head = text.lstrip()[:200].lower()
    return head.startswith("<!doctype html") or head.startswith("<html")


def read_csv_text(
    path: Path, header_row: int = 1, encoding: str | None = None, delimiter: str | None = None
) -> Read:
    """Read a CSV export as text cells (no type guessing: IDs keep leading zeros).

    The index is each record's first line in the file. A record that cannot
    be read (a quote not closed in a well-formed way, an undecodable line, more
    cells than the header or fewer than its named columns) is not a row: it is
    listed in ``broken`` with its lines.
    """
    if path.stat().st_size > MAX_TEXT_BYTES:
        raise SourceError(f"the file is larger than {MAX_TEXT_BYTES >> 20} MB; split the export")
    raw = path.read_bytes()
    if not raw.strip():
        raise SourceError("the file is empty")
    decoded = decode_text(raw, encoding)
    text = decoded.text
    if looks_like_html(text):
        raise SourceError("the file is a web page (HTML), not a CSV export; export it again")
    sep = delimiter or sniff_delimiter(text)
    records = split_records(text, sep)
    h = header_row - 1
    if len(records.cells) <= h:
        raise SourceError(f"the file has {len(records.cells)} lines: no header at "
                          f"header_row {header_row}")
    if h in records.broken or records.blank[h]:
        why = records.broken[h][1] if h in records.broken else "empty"
        raise SourceError(f"the header (line {records.first[h]}) cannot be read: {why}")
    header = unique_names(records.cells[h])
    bounded(len(header), len(records.cells) - h - 1)
    rows_in = len(records.blank) - h - 1 - sum(records.blank[h + 1:])
    cells, lines, broken = data_rows(records, h, header)
    frame = pd.DataFrame(cells, columns=header, index=pd.Index(lines, dtype="int64"), dtype=str)
    return Read(frame, rows_in, broken, decoded.encoding)


def bounded(columns: int, rows: int) -> None:
    """Refuse a file beyond the column or cell bound (one message, nothing expanded)."""
    if columns > MAX_COLUMNS:
        raise SourceError(f"the file has {columns:,} columns (at most {MAX_COLUMNS:,} are read)")
    if columns * rows > MAX_CELLS:
        raise SourceError(f"the file has {columns * rows:,} cells (at most {MAX_CELLS:,} are "
                          "read); split the export")


def data_rows(records, h: int, header: list[str]) -> tuple[list, list, list[Broken]]:
    """Rows of cells after the header (with their first lines) and the broken records.

    A row shorter than the header is complete when only unnamed trailing
    columns are missing; a longer one when its extra cells are blank.
    """
    width = len(header)
    body = records.cells[h + 1:]
    if not records.broken and not any(records.blank[h + 1:]) and \
            all(len(r) == width for r in body):  # the usual export: nothing to set aside
        return body, records.first[h + 1:], []
    named = max((i + 1 for i, name in enumerate(header) if not name.startswith("Unnamed: ")),
                default=0)
    cells, lines, broken = [], [], []
    for i in range(h + 1, len(records.cells)):
        if records.blank[i]:
            continue
        first, last = records.first[i], records.last[i]
        row = records.cells[i]
        if row is None:
            broken.append(Broken(first, last, *records.broken[i]))
            continue
        if len(row) != width:
            row = fit(row, width, named)
            if isinstance(row, str):
                broken.append(Broken(first, last, "malformed_row", row))
                continue
        cells.append(row)
        lines.append(first)
    return cells, lines, broken


def fit(row: list[str], width: int, named: int) -> list[str] | str:
    """``row`` with exactly ``width`` cells, or why it cannot have them.

    Examples
    --------
    >>> fit(["a", "b"], 3, 2), fit(["a", "b", "c", ""], 3, 3)
    (['a', 'b', ''], ['a', 'b', 'c'])
    >>> fit(["a"], 3, 3)
    '1 cells where the header has 3: a missing delimiter, or cells shifted?'
    """
    if len(row) < named:
        return (f"{len(row)} cells where the header has {named}: a missing delimiter, "
                "or cells shifted?")
    if any(cell.strip() for cell in row[width:]):
        return (f"{len(row)} cells where the header has {width}: an unquoted delimiter "
                "inside an answer?")
    return (row + [""] * (width - len(row)))[:width]


def unique_names(header: list[str]) -> list[str]:
    """Header cells as usable column names: blanks named, repeats numbered (as pandas does).

    Examples
    --------
    >>> unique_names(["q1", "", "q1", " q2 "])
    ['q1', 'Unnamed: 1', 'q1.1', 'q2']
    """
    names, seen = [], {}
    for i, cell in enumerate(header):
        name = cell.strip() or f"Unnamed: {i}"
        if name in seen:
            seen[name] += 1
            name = f"{name}.{seen[name]}"
        seen.setdefault(name, 0)
        names.append(name)
    return names


def read_xlsx_text(path: Path, sheet: str | int = 0, header_row: int = 1) -> Read:
    """Read one sheet of an Excel workbook as text cells (calamine, a Rust reader).

    ``rows_in`` is the sheet's own row count below the header, rows with no
    value left out. A workbook beyond the size bounds is refused from its zip
    directory, before anything is unpacked.
    """
    with path.open("rb") as handle:
        head = handle.read(512)
    if looks_like_html(head.decode("latin-1")):
        raise SourceError("the file is a web page (HTML), not an Excel workbook")
    check_unpacked_size(path)
    name, rows = sheet_rows(path, sheet)
    h = header_row - 1
    if len(rows) <= h:
        raise SourceError(f"sheet {name!r} has {len(rows)} rows: no header at "
                          f"header_row {header_row}")
    header = unique_names([cell_text(c) for c in rows[h]])
    body = rows[h + 1:]
    filled = [i for i, row in enumerate(body) if any(not blank_cell(c) for c in row)]
    rows_in = len(filled)
    if len(filled) < len(body):
        body = [body[i] for i in filled]
    numbers = np.asarray(filled, dtype=np.int64) + header_row + 1  # spreadsheet row numbers
    frame = pd.DataFrame(body, columns=header, index=pd.Index(numbers, dtype="int64"),
                         dtype=object)
    return Read(frame.apply(column_text) if len(header) else frame, rows_in)


def blank_cell(value: object) -> bool:
    """An Excel cell with no value (empty, or only white space)."""
    return value is None or value == "" or (isinstance(value, str) and not value.strip())


def check_unpacked_size(path: Path) -> None:
    """Refuse a workbook whose parts would unpack beyond the bounds (zip's declared sizes)."""
    try:
        with zipfile.ZipFile(path) as archive:
            parts = archive.infolist()
    except (zipfile.BadZipFile, OSError, ValueError, EOFError):
        return  # not a zip (an .xls, or damaged): the reader says what it is
    total = sum(p.file_size for p in parts)
    if total > MAX_XLSX_BYTES:
        raise SourceError(f"the workbook unpacks to {total >> 20} MB (at most "
                          f"{MAX_XLSX_BYTES >> 20} MB are read); split it or save it as CSV")
    for part in parts:
        if part.file_size > 2**20 and part.file_size > MAX_XLSX_RATIO * max(part.compress_size, 1):
            raise SourceError(f"a part of the workbook unpacks {part.file_size // max(part.compress_size, 1)}"
                              " times its size (a zip bomb?); save it again from Excel")


def sheet_rows(path: Path, sheet: str | int) -> tuple[str, list[list]]:
    """The name and the cells (from A1) of one sheet; SourceError for any unreadable workbook."""
    from python_calamine import CalamineWorkbook

    try:
        # calamine (Rust) reads a workbook many times faster than openpyxl.
        book = CalamineWorkbook.from_path(str(path))
        names = list(book.sheet_names)
    except Exception as exc:  # calamine raises its own types (CalamineError, ZipError, ...)
        raise SourceError(f"not a readable .xlsx workbook ({type(exc).__name__}); "
                          "open it in Excel and save it again") from None
    if isinstance(sheet, str) and sheet not in names:
        raise SourceError(f"no sheet named {sheet!r}; the workbook has {names}")
    if isinstance(sheet, int) and not 0 <= sheet < len(names):
        raise SourceError(f"no sheet number {sheet}; the workbook has {names} (0 is the first)")
    name = sheet if isinstance(sheet, str) else names[sheet]
    try:
        data = book.get_sheet_by_name(name)
        bounded(data.total_width, data.total_height)
        return name, data.to_python(skip_empty_area=False)
    except SourceError:
        raise
    except Exception as exc:
        raise SourceError(f"sheet {name!r} cannot be read ({type(exc).__name__}); "
                          "open the workbook in Excel and save it again") from None


BLANKS = {float, type(None)}


def column_text(column: pd.Series) -> pd.Series:
    """``cell_text`` of every cell of one column.

    Survey exports are mostly text columns (text cells and blanks): those need
    no Python call per cell. Any other kind of cell goes through ``cell_text``.
    """
    values = column.to_numpy(dtype=object)
    blank = pd.isna(values)
    # Blank means NaN or None here: cell_text writes NaT and pd.NA as text.
    if set(map(type, values[~blank])) <= {str} and set(map(type, values[blank])) <= BLANKS:
        return pd.Series(np.where(blank, "", values), index=column.index, name=column.name,
                         dtype=object)
    return column.map(cell_text)


def cell_text(value: object) -> str:
    """Excel cell as text: whole floats without '.0', empty for blanks."""
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, (dt.datetime, dt.date, dt.time)):  # Timestamp is a datetime
        return value.isoformat()
    return str(value)


def read_rows(
    path: Path,
    fmt: str,
    *,
    sheet: str | int = 0,
    header_row: int = 1,
    encoding: str | None = None,
    delimiter: str | None = None,
) -> Read:
    """Read one export (csv or xlsx) as stripped text cells with its record count.

    SourceError (one message) when the file cannot be read as configured.
    """
    if fmt == "csv":
        read = read_csv_text(path, header_row, encoding, delimiter)
    elif fmt == "xlsx":
        read = read_xlsx_text(path, sheet, header_row)
    else:
        raise SourceError(f"unknown format {fmt!r} (use csv or xlsx)")
    frame = read.frame
    frame.columns = [str(c).strip() for c in frame.columns]
    read.frame = frame.astype(str).apply(lambda col: col.str.strip()) if frame.shape[1] else \
        frame.astype(str)
    return read


def read_table(path: Path, fmt: str, **options) -> pd.DataFrame:
    """:func:`read_rows`' cells only: the index is the row number a spreadsheet shows.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "x.csv"
    >>> _ = p.write_bytes("nombre;q1\\nJosé;3\\n".encode("cp1252"))
    >>> read_table(p, "csv").to_dict("records")
    [{'nombre': 'José', 'q1': '3'}]
    """
    return read_rows(path, fmt, **options).frame
