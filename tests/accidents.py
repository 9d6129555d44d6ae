"""The data accidents of issue 17, applied to a copy of the demo inbox (one function each).

Each takes the program folder and changes one inbox file the way a person or a
tool breaks it, and returns the file's name.
"""

from __future__ import annotations

from pathlib import Path

REDCAP = "redcap_bienestar_export_2026-09-01.csv"
OMSHC_POST = "estigma_OMSHC_post.csv"
OMSHC_PRE = "estigma_OMSHC_pre.csv"
KNOWLEDGE = "conocimientos_TIC.xlsx"


def edit_row(root: Path, name: str, line: int, change, sep: str = ";",
             encoding: str = "cp1252") -> str:
    """Replace line ``line`` (0 = header) of an inbox CSV by ``change(cells)``; the file's name."""
    path = root / "inbox" / name
    lines = path.read_text(encoding=encoding).split("\n")
    lines[line] = sep.join(change(lines[line].split(sep)))
    path.write_bytes("\n".join(lines).encode(encoding))
    return name


def put(cells: list[str], at: int, value: str) -> list[str]:
    return [*cells[:at], value, *cells[at + 1:]]


def last_first(name: str, sep: str) -> str:
    """'María Pérez' -> 'Pérez' + sep + ' María' (a delimiter typed inside a name)."""
    first, _, last = name.partition(" ")
    return f"{last}{sep} {first}"


def semicolon_in_name(root: Path) -> str:
    """An unquoted ';' inside a name of the stigma sheet: every later cell moves right."""
    return edit_row(root, OMSHC_POST, 4, lambda c: put(c, 0, last_first(c[0], ";")))


def comma_in_redcap_name(root: Path) -> str:
    """An unquoted ',' inside a name of the REDCap export: every later cell moves right."""
    return edit_row(root, REDCAP, 6, lambda c: put(c, 2, last_first(c[2], ",")), ",", "utf-8")


def lost_line_break(root: Path) -> str:
    """Two people's rows joined on one line (the line break between them lost)."""
    path = root / "inbox" / OMSHC_POST
    lines = path.read_text(encoding="cp1252").split("\n")
    path.write_bytes("\n".join([*lines[:8], lines[8] + lines[9], *lines[10:]]).encode("cp1252"))
    return OMSHC_POST


def stray_quote(root: Path, line: int = 3) -> str:
    """One opening quote in the REDCap export's event cell: the rest of the file is one cell
    (from line 3: some 215 people's names, emails and phones in one wave cell)."""
    return edit_row(root, REDCAP, line, lambda c: put(c, 1, '"' + c[1]), ",", "utf-8")


def email_in_site(root: Path) -> str:
    """A person's email pasted into the site column of the stigma sheet."""
    return edit_row(root, OMSHC_PRE, 3, lambda c: put(c, 2, c[1]))


def email_in_answer(root: Path) -> str:
    """A person's email pasted into an answer: a stigma item and a knowledge-test item."""
    import openpyxl

    book = openpyxl.load_workbook(root / "inbox" / KNOWLEDGE)
    sheet = book["Respuestas"]
    header = [c.value for c in sheet[2]]
    email, answer = header.index("Correo electrónico") + 1, header.index("P3") + 1
    sheet.cell(row=5, column=answer).value = sheet.cell(row=5, column=email).value
    book.save(root / "inbox" / KNOWLEDGE)
    return edit_row(root, OMSHC_PRE, 5, lambda c: put(c, 8, c[1]))


def name_in_site(root: Path) -> str:
    """A person's name typed into the site column of the stigma sheet."""
    return edit_row(root, OMSHC_PRE, 7, lambda c: put(c, 2, c[0]))


ACCIDENTS = [semicolon_in_name, comma_in_redcap_name, lost_line_break, stray_quote,
             email_in_site, email_in_answer]
