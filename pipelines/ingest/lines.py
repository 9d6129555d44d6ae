"""Text exports as records, counted from the file's lines rather than from the CSV parser.

Two steps, each strict and each independent of the ``csv`` module:

- :func:`decode_text` decodes line by line. A file is UTF-8 unless most of its
  non-ASCII characters are not valid UTF-8 (text in a single-byte encoding
  almost never forms valid UTF-8 sequences by chance); then it is cp1252
  (which reads latin-1 text the same). A line that does not decode in the
  file's encoding is replaced by a marker and set aside (``undecodable_line``);
  the other lines keep their encoding, so one bad byte never turns a UTF-8
  file into cp1252 mojibake.
- :func:`split_records` cuts the text into records by the lines, where only
  well-formed quoting (a quote opening a cell and closing it before a
  delimiter or the line's end) may carry a record over several lines. Each
  record is then parsed on its own, so a stray quote spoils its own line (or
  the lines up to a well-formed closing quote), never the rest of the file.

When the whole text parses with one record per line (the usual export), the
``csv`` module's single pass is used as it is.
"""

from __future__ import annotations

import codecs
import csv
import io
import re
from dataclasses import dataclass, field

import numpy as np

from pipelines.errors import SourceError

LEGACY = "cp1252"  # the single-byte encoding of Excel "CSV" on Spanish/English Windows
UNDECODABLE = "\x00"  # stands in for a line that did not decode (NUL never survives decoding)
MAX_BAD_SHARE = 0.5  # more undecodable lines than this share: not a text export at all
FIELD_LIMIT = csv.field_size_limit()  # the csv module's cell limit (131,072 characters)
BYTE_LINES = re.compile(rb"(\r\n|\r|\n)")
LINE_BREAK = re.compile(r"\r\n|\r|\n")


@dataclass
class Decoded:
    """A text export's characters, its encoding, and the lines that did not decode."""

    text: str
    encoding: str
    bad_lines: list[int] = field(default_factory=list)  # 1-based, replaced by UNDECODABLE


def decode_text(raw: bytes, encoding: str | None = None) -> Decoded:
    """Decode ``raw`` strictly, line by line, in ``encoding`` or the file's own.

    Examples
    --------
    >>> decode_text("Muñoz;1\\n".encode("cp1252")).encoding
    'cp1252'
    >>> d = decode_text("Muñoz;1\\n".encode() + b"P\\xe9rez;2\\n")
    >>> d.encoding, d.bad_lines
    ('utf-8', [2])
    """
    valid = None  # non-ASCII characters valid as UTF-8, when the encoding was guessed
    if encoding is None:
        if raw.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
            return whole(raw, "utf-16")
        if not raw.startswith(codecs.BOM_UTF8) and b"\x00" not in raw:
            try:
                return Decoded(raw.decode("utf-8"), "utf-8")  # the usual export: one pass
            except UnicodeDecodeError:
                pass
        encoding, valid = ("utf-8-sig", 0) if raw.startswith(codecs.BOM_UTF8) else \
            choose_encoding(raw)
    try:
        codec = codecs.lookup(encoding).name
    except LookupError:
        raise SourceError(f"unknown encoding {encoding!r}") from None
    if codec.startswith(("utf-16", "utf-32")):  # lines cannot be cut in the bytes
        return whole(raw, encoding)
    body = raw[len(codecs.BOM_UTF8):] if codec == "utf-8-sig" and raw.startswith(
        codecs.BOM_UTF8) else raw
    plain = "utf-8" if codec == "utf-8-sig" else codec
    # Lines valid as UTF-8 with accents in a cp1252 file would become mojibake: set aside.
    suspicious = plain == LEGACY and not body.isascii() and (
        valid if valid is not None else choose_encoding(body)[1]) > 0
    if b"\x00" not in body and not suspicious:
        try:
            return Decoded(body.decode(plain), encoding)
        except UnicodeDecodeError:
            pass
    return by_line(body, plain, encoding, suspicious)


def whole(raw: bytes, encoding: str) -> Decoded:
    """Decode a UTF-16/32 text in one piece (its line breaks are not single bytes)."""
    try:
        return Decoded(raw.decode(encoding), encoding)
    except UnicodeDecodeError:
        raise SourceError(f"the file is not valid {encoding.upper()} text") from None


def choose_encoding(raw: bytes) -> tuple[str, int]:
    """UTF-8, unless most non-ASCII characters are not valid UTF-8: then cp1252.

    Also returns how many non-ASCII characters are valid UTF-8.

    Examples
    --------
    >>> choose_encoding("José Núñez".encode("utf-8")), choose_encoding("José".encode("cp1252"))
    (('utf-8', 3), ('cp1252', 0))
    """
    loose = raw.decode("utf-8", "replace")
    replaced = loose.count("\ufffd")
    valid = len(loose) - len(loose.encode("ascii", "ignore")) - replaced
    invalid = replaced - raw.count("\ufffd".encode("utf-8"))
    return ("utf-8" if valid >= invalid else LEGACY), valid


def by_line(body: bytes, codec: str, name: str, reject_utf8: bool) -> Decoded:
    """Decode each line on its own; lines that fail (or hold NUL) become UNDECODABLE."""
    parts = BYTE_LINES.split(body)  # line, break, line, break, ..., line
    out, bad = [], []
    for i in range(0, len(parts), 2):
        chunk = parts[i]
        try:
            text = chunk.decode(codec)
            if "\x00" in text or (reject_utf8 and not chunk.isascii() and is_utf8(chunk)):
                raise ValueError
        except (UnicodeDecodeError, ValueError):
            text = UNDECODABLE
            bad.append(i // 2 + 1)
        out.append(text)
        if i + 1 < len(parts):
            out.append(parts[i + 1].decode("ascii"))
    lines = (len(parts) + 1) // 2 - (parts[-1] == b"")
    if bad and len(bad) > MAX_BAD_SHARE * max(lines, 1):
        raise SourceError(f"{len(bad)} of {lines} lines are not valid {name} text: not a text "
                          "export, or another encoding (set `encoding:` in program.yaml)")
    return Decoded("".join(out), name, bad)


def is_utf8(chunk: bytes) -> bool:
    try:
        chunk.decode("utf-8")
        return True
    except UnicodeDecodeError:
        return False


# --- records ------------------------------------------------------------------------
@dataclass
class Records:
    """The records of a text export, in file order (blank records included).

    ``cells[i]`` is None for a record that cannot be read; ``broken[i]`` then
    says why as (rule, detail). ``first``/``last`` are its line numbers.
    """

    cells: list[list[str] | None]
    first: list[int]
    last: list[int]
    blank: list[bool]
    broken: dict[int, tuple[str, str]] = field(default_factory=dict)


def record_pattern(sep: str) -> re.Pattern:
    """One record with well-formed quoting, from a line start to its line break.

    A quoted cell opens at a cell's start and closes with a quote followed by
    the delimiter or the end of a line (``""`` is a quote inside it); only such
    a cell may hold line breaks. Possessive matching: no backtracking.
    """
    s = re.escape(sep)
    quoted = r'"(?:[^"]++|"")*+"'
    plain = rf'(?!")[^{s}\r\n]*+'
    cell = rf"(?:{quoted}|{plain})"
    return re.compile(rf"{cell}(?:{s}{cell})*+(?:\r\n|\r|\n|\Z)")


def content_pattern(sep: str) -> re.Pattern:
    """Any character besides white space, quotes and the delimiter (a record's content)."""
    return re.compile(rf'[^\s"{re.escape(sep)}]')


def split_records(text: str, sep: str) -> Records:
    r"""The records of ``text``: one per line, or several lines joined by well-formed quotes.

    Examples
    --------
    >>> r = split_records('a;b\n"x\ny";1\n"Lic. León;2\n\nz;3\n', ";")
    >>> r.cells, r.first, r.last, r.blank
    ([['a', 'b'], ['x\ny', '1'], None, [], ['z', '3']], [1, 2, 4, 5, 6], [1, 3, 4, 5, 6], [False, False, False, True, False])
    >>> r.broken[2][0]
    'malformed_row'
    """
    has_content = content_pattern(sep).search
    lone_cr = "\r" in text and text.count("\r") != text.count("\r\n")
    lines = len(physical_lines(text)) if lone_cr else \
        text.count("\n") + (not text.endswith("\n") and text != "")
    one_per_line = False
    if UNDECODABLE not in text:
        try:
            reader = csv.reader(io.StringIO(text, newline=""), delimiter=sep, strict=True)
            cells = list(reader)
            one_per_line = reader.line_num == len(cells) == lines
        except csv.Error:
            pass
    if one_per_line:  # the usual export: the parser's records are the lines
        numbers = list(range(1, lines + 1))
        return Records(cells, numbers, numbers,
                       blank_lines(text, lines, sep, has_content, lone_cr))
    return scanned_records(text, sep, has_content)


def blank_lines(text: str, lines: int, sep: str, has_content, lone_cr: bool) -> list[bool]:
    """Which lines hold no content; one search of the text when none does (the usual)."""
    body = text[:-1] if text.endswith("\n") else text
    if lone_cr or re.search(rf'\n(?:[^\S\n]|["{re.escape(sep)}])*\n', f"\n{body}\n"):
        return [not has_content(line) for line in physical_lines(text)]
    return [False] * lines


def physical_lines(text: str) -> list[str]:
    """The lines of ``text`` as the csv module counts them (\\n, \\r\\n or \\r end a line)."""
    if "\r" not in text or text.count("\r") == text.count("\r\n"):  # no lone \r
        lines = text.split("\n")
    else:
        lines = LINE_BREAK.split(text)
    if lines and lines[-1] in ("", "\r"):
        lines.pop()
    return lines


def scanned_records(text: str, sep: str, has_content) -> Records:
    """:func:`split_records` by the record pattern, each record parsed on its own."""
    pattern = record_pattern(sep)
    starts = np.array([0] + [m.end() for m in LINE_BREAK.finditer(text)], dtype=np.int64)
    typical = typical_delimiters(text, sep)
    spans, pos, end_of_text = [], 0, len(text)
    while pos < end_of_text:
        match = pattern.match(text, pos)
        line_end = next_line_end(text, pos)
        if match and (match.end() <= line_end or (
                match.end() - pos <= FIELD_LIMIT
                and not holds_a_record(match.group(), sep, typical))):
            spans.append((pos, match.end(), True))
            pos = match.end()
        else:  # quoting not well formed (or a quote running past the cell limit): this line
            spans.append((pos, line_end, False))
            pos = line_end
    bounds = np.array([(a, max(a, b - 1)) for a, b, _ in spans], dtype=np.int64).reshape(-1, 2)
    first = (np.searchsorted(starts, bounds[:, 0], side="right")).tolist()
    last = (np.searchsorted(starts, bounds[:, 1], side="right")).tolist()
    records = Records([], first, last, [])
    for i, (a, b, well_formed) in enumerate(spans):
        body = text[a:b].rstrip("\r\n") if well_formed else LINE_BREAK.sub("", text[a:b])
        records.blank.append(not has_content(body))
        records.cells.append(None)
        if UNDECODABLE in body:
            records.broken[i] = ("undecodable_line", "the line is not valid text in the "
                                                     "file's encoding")
        elif not well_formed:
            records.broken[i] = ("malformed_row", "a quote opens a cell that is not closed "
                                                  "in a well-formed way")
        else:
            parsed = parse_one(body, sep)
            if isinstance(parsed, str):
                records.broken[i] = ("malformed_row", parsed)
            else:
                records.cells[i] = parsed
    return records


def typical_delimiters(text: str, sep: str) -> int:
    """Delimiters on a typical line (the median over lines with any): a record's worth."""
    counts = sorted(n for n in (line.count(sep) for line in physical_lines(text)) if n)
    return counts[len(counts) // 2] if counts else 0


QUOTED_CELL = re.compile(r'"(?:[^"]|"")*"')


def holds_a_record(span: str, sep: str, typical: int) -> bool:
    """True when a quoted cell of a multi-line ``span`` holds a line with a record's worth of
    delimiters: a stray quote swallowing whole rows, not a cell with line breaks."""
    for cell in QUOTED_CELL.findall(span):
        if "\n" in cell or "\r" in cell:
            if any(part.count(sep) >= typical > 1 for part in LINE_BREAK.split(cell)):
                return True
    return False


def next_line_end(text: str, pos: int) -> int:
    """Offset just past the line break of the line holding ``pos`` (or the text's end)."""
    match = LINE_BREAK.search(text, pos)
    return match.end() if match else len(text)


def parse_one(body: str, sep: str) -> list[str] | str:
    """The cells of one well-formed record, or why it cannot be parsed."""
    try:
        rows = list(csv.reader([body], delimiter=sep, strict=True))
    except csv.Error as exc:
        return f"the record cannot be parsed as CSV ({str(exc).split('(')[0].strip()})"
    return rows[0] if len(rows) == 1 else "the record cannot be parsed as one CSV row"
