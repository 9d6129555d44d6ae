"""Read one raw export into a DataFrame of text cells, whatever its encoding.

Spanish Excel writes CSV in cp1252 with ``;``; REDCap writes UTF-8 with ``,``;
Kobo uses ``;``; some tools add a BOM. We decode strictly (UTF-8, then
cp1252, then latin-1) so accents are never silently mangled, and let
``csv.Sniffer`` pick the delimiter.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from pathlib import Path

import numpy as np
import pandas as pd

from pipelines.errors import SourceError

ENCODINGS = ("utf-8-sig", "cp1252", "latin-1")
DELIMITERS = ",;\t|"


def decode_bytes(raw: bytes, encoding: str | None = None) -> tuple[str, str]:
    """Decode ``raw`` with ``encoding`` or the first of ENCODINGS that fits.

    Examples
    --------
    >>> decode_bytes("Muñoz".encode("cp1252"))
    ('Muñoz', 'cp1252')
    """
    for candidate in [encoding] if encoding else ENCODINGS:
        try:
            return raw.decode(candidate), candidate
        except (UnicodeDecodeError, LookupError):
            continue
    raise SourceError(f"cannot decode the file as {encoding or ' / '.join(ENCODINGS)}")


def sniff_delimiter(text: str) -> str:
    """The delimiter of a CSV text, from its first lines; ',' when unsure."""
    sample = "\n".join(text.splitlines()[:50])
    try:
        return csv.Sniffer().sniff(sample, delimiters=DELIMITERS).delimiter
    except csv.Error:
        return ","


def looks_like_html(text: str) -> bool:
    """True for a web page saved with a .csv/.xlsx name (a common export mistake)."""
    head = text.lstrip()[:200].lower()
    return head.startswith("<!doctype html") or head.startswith("<html")


EXTRA = "__extra_cells__"  # cells beyond the header, kept so the row can be quarantined


def read_csv_text(
    path: Path, header_row: int = 1, encoding: str | None = None, delimiter: str | None = None
) -> pd.DataFrame:
    """Read a CSV export as text cells (no type guessing: IDs keep leading zeros).

    The index is each record's line number in the file (multi-line quoted
    cells counted right). A row with more cells than the header keeps them,
    joined, in ``__extra_cells__`` so the caller can set it aside.
    """
    raw = path.read_bytes()
    if not raw.strip():
        raise SourceError("the file is empty")
    text, _ = decode_bytes(raw, encoding)
    if looks_like_html(text):
        raise SourceError("the file is a web page (HTML), not a CSV export; export it again")
    if "\x00" in text:
        raise SourceError("the file holds binary data (NUL bytes), not CSV text")
    sep = delimiter or sniff_delimiter(text)
    try:
        records, lines = parse_records(text, sep)
    except csv.Error as exc:
        raise SourceError(f"cannot parse as CSV with delimiter {sep!r}: {exc}") from None
    if len(records) < header_row:
        raise SourceError(f"the file has fewer than {header_row} lines: no header row")
    header = unique_names(records[header_row - 1])
    body, numbers = records[header_row:], lines[header_row:]
    width = len(header)
    cells = body if all(len(r) == width for r in body) else \
        [(r + [""] * (width - len(r)))[:width] for r in body]
    frame = pd.DataFrame(cells, columns=header, index=pd.Index(numbers, dtype="int64"), dtype=str)
    if any(len(r) > width for r in body):
        frame[EXTRA] = [sep.join(r[width:]) for r in body]
    return frame


def parse_records(text: str, sep: str) -> tuple[list[list[str]], list[int]]:
    r"""CSV records and the line each starts on (quoted cells may span lines).

    Examples
    --------
    >>> parse_records('a,b\n"x\ny",1\nz,2\n', ",")
    ([['a', 'b'], ['x\ny', '1'], ['z', '2']], [1, 2, 4])
    """
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=sep)
    records = list(reader)
    if reader.line_num == len(records):  # one line per record, the usual: no bookkeeping
        return records, list(range(1, len(records) + 1))
    return records_line_by_line(text, sep)


def records_line_by_line(text: str, sep: str) -> tuple[list[list[str]], list[int]]:
    """:func:`parse_records` counting lines record by record (what a multi-line cell needs)."""
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=sep)
    records, lines, line = [], [], 1
    for record in reader:
        records.append(record)
        lines.append(line)
        line = reader.line_num + 1
    return records, lines


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


def read_xlsx_text(path: Path, sheet: str | int = 0, header_row: int = 1) -> pd.DataFrame:
    """Read one sheet of an Excel workbook as text cells."""
    head = path.read_bytes()[:512]
    if looks_like_html(head.decode("latin-1")):
        raise SourceError("the file is a web page (HTML), not an Excel workbook")
    try:
        # calamine (Rust) reads a workbook ~10x faster than openpyxl: 25 regional
        # workbooks of 3,000 rows took 35 s with openpyxl, 4 s with calamine.
        workbook = pd.ExcelFile(path, engine="calamine")
    except Exception as exc:  # the engines raise many types for a non-workbook
        raise SourceError(f"not a readable .xlsx workbook ({type(exc).__name__})") from None
    if isinstance(sheet, str) and sheet not in workbook.sheet_names:
        raise SourceError(f"no sheet named {sheet!r}; the workbook has {workbook.sheet_names}")
    if isinstance(sheet, int) and sheet >= len(workbook.sheet_names):
        raise SourceError(f"no sheet number {sheet}; the workbook has {workbook.sheet_names}")
    frame = pd.read_excel(workbook, sheet_name=sheet, header=header_row - 1, dtype=object)
    frame.index = pd.Index(frame.index + header_row + 1, dtype="int64")  # spreadsheet row numbers
    return frame.apply(column_text)


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


def read_table(
    path: Path,
    fmt: str,
    *,
    sheet: str | int = 0,
    header_row: int = 1,
    encoding: str | None = None,
    delimiter: str | None = None,
) -> pd.DataFrame:
    """Read one export as a frame of stripped text cells; SourceError when unreadable.

    The index is the row number a spreadsheet shows for each row.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "x.csv"
    >>> _ = p.write_bytes("nombre;q1\\nJosé;3\\n".encode("cp1252"))
    >>> read_table(p, "csv").to_dict("records")
    [{'nombre': 'José', 'q1': '3'}]
    """
    if fmt == "csv":
        frame = read_csv_text(path, header_row, encoding, delimiter)
    elif fmt == "xlsx":
        frame = read_xlsx_text(path, sheet, header_row)
    else:
        raise SourceError(f"unknown format {fmt!r} (use csv or xlsx)")
    frame.columns = [str(c).strip() for c in frame.columns]
    frame = frame.astype(str).apply(lambda col: col.str.strip())
    # Spreadsheets often carry fully blank rows at the end; they are not responses.
    return frame.loc[frame.ne("").any(axis=1)]
