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


def edit_lines(path: Path, encoding: str, edit) -> None:
    """Rewrite a CSV's lines (header first) with ``edit(lines)``."""
    lines = path.read_text(encoding=encoding).split("\n")
    path.write_bytes("\n".join(edit(lines)).encode(encoding))


def cells(line: str, sep: str) -> list[str]:
    return line.split(sep)


def semicolon_in_name(root: Path) -> str:
    """An unquoted ';' inside a name of the stigma sheet: every later cell moves right."""
    def edit(lines):
        row = cells(lines[4], ";")
        first, _, last = row[0].partition(" ")
        row[0] = f"{last}; {first}"
        lines[4] = ";".join(row)
        return lines
    edit_lines(root / "inbox" / OMSHC_POST, "cp1252", edit)
    return OMSHC_POST


def comma_in_redcap_name(root: Path) -> str:
    """An unquoted ',' inside a name of the REDCap export: every later cell moves right."""
    def edit(lines):
        row = cells(lines[6], ",")
        first, _, last = row[2].partition(" ")
        row[2] = f"{last}, {first}"
        lines[6] = ",".join(row)
        return lines
    edit_lines(root / "inbox" / REDCAP, "utf-8", edit)
    return REDCAP


def lost_line_break(root: Path) -> str:
    """Two people's rows joined on one line (the line break between them lost)."""
    def edit(lines):
        return [*lines[:8], lines[8] + lines[9], *lines[10:]]
    edit_lines(root / "inbox" / OMSHC_POST, "cp1252", edit)
    return OMSHC_POST


def stray_quote(root: Path, line: int = 3) -> str:
    """One opening quote in the REDCap export's event cell: the rest of the file is one cell
    (from line 3: some 215 people's names, emails and phones in one wave cell)."""
    def edit(lines):
        row = cells(lines[line], ",")
        row[1] = '"' + row[1]
        lines[line] = ",".join(row)
        return lines
    edit_lines(root / "inbox" / REDCAP, "utf-8", edit)
    return REDCAP


def email_in_site(root: Path) -> str:
    """A person's email pasted into the site column of the stigma sheet."""
    def edit(lines):
        row = cells(lines[3], ";")
        row[2] = row[1]
        lines[3] = ";".join(row)
        return lines
    edit_lines(root / "inbox" / OMSHC_PRE, "cp1252", edit)
    return OMSHC_PRE


def email_in_answer(root: Path) -> str:
    """A person's email pasted into an answer: a stigma item and a knowledge-test item."""
    def edit(lines):
        row = cells(lines[5], ";")
        row[8] = row[1]
        lines[5] = ";".join(row)
        return lines
    edit_lines(root / "inbox" / OMSHC_PRE, "cp1252", edit)
    import openpyxl

    book = openpyxl.load_workbook(root / "inbox" / KNOWLEDGE)
    sheet = book["Respuestas"]
    header = [c.value for c in sheet[2]]
    email, answer = header.index("Correo electrónico") + 1, header.index("P3") + 1
    sheet.cell(row=5, column=answer).value = sheet.cell(row=5, column=email).value
    book.save(root / "inbox" / KNOWLEDGE)
    return OMSHC_PRE


def name_in_site(root: Path) -> str:
    """A person's name typed into the site column of the stigma sheet."""
    def edit(lines):
        row = cells(lines[7], ";")
        row[2] = row[0]
        lines[7] = ";".join(row)
        return lines
    edit_lines(root / "inbox" / OMSHC_PRE, "cp1252", edit)
    return OMSHC_PRE


ACCIDENTS = [semicolon_in_name, comma_in_redcap_name, lost_line_break, stray_quote,
             email_in_site, email_in_answer]
