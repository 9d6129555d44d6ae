"""Read one raw export into a DataFrame of text cells, whatever its encoding.

Spanish Excel writes CSV in cp1252 with ``;``; REDCap writes UTF-8 with ``,``;
Kobo uses ``;``; some tools add a BOM. We decode strictly (UTF-8, then
cp1252, then latin-1) so accents are never silently mangled, and let
``csv.Sniffer`` pick the delimiter.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

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


def read_csv_text(
    path: Path, header_row: int = 1, encoding: str | None = None, delimiter: str | None = None
) -> pd.DataFrame:
    """Read a CSV export as text cells (no type guessing: IDs keep leading zeros)."""
    raw = path.read_bytes()
    if not raw.strip():
        raise SourceError("the file is empty")
    text, _ = decode_bytes(raw, encoding)
    if looks_like_html(text):
        raise SourceError("the file is a web page (HTML), not a CSV export; export it again")
    sep = delimiter or sniff_delimiter(text)
    try:
        frame = pd.read_csv(
            io.StringIO(text),
            sep=sep,
            dtype=str,
            keep_default_na=False,
            skiprows=header_row - 1,
            skip_blank_lines=False,  # keep line numbers true to the file
        )
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise SourceError(f"cannot parse as CSV with delimiter {sep!r}: {exc}") from None
    return frame


def read_xlsx_text(path: Path, sheet: str | int = 0, header_row: int = 1) -> pd.DataFrame:
    """Read one sheet of an Excel workbook as text cells."""
    head = path.read_bytes()[:512]
    if looks_like_html(head.decode("latin-1")):
        raise SourceError("the file is a web page (HTML), not an Excel workbook")
    try:
        workbook = pd.ExcelFile(path, engine="openpyxl")
    except Exception as exc:  # openpyxl raises many types for a non-workbook
        raise SourceError(f"not a readable .xlsx workbook ({type(exc).__name__})") from None
    if isinstance(sheet, str) and sheet not in workbook.sheet_names:
        raise SourceError(f"no sheet named {sheet!r}; the workbook has {workbook.sheet_names}")
    if isinstance(sheet, int) and sheet >= len(workbook.sheet_names):
        raise SourceError(f"no sheet number {sheet}; the workbook has {workbook.sheet_names}")
    frame = pd.read_excel(workbook, sheet_name=sheet, header=header_row - 1, dtype=object)
    return frame.map(cell_text)


def cell_text(value: object) -> str:
    """Excel cell as text: whole floats without '.0', empty for blanks."""
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, pd.Timestamp):
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
