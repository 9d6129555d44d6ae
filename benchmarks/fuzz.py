"""Fuzzing ingest and the contracts with damaged copies of the demo's exports.

Run: python benchmarks/fuzz.py [--files 2000] [--seed N] [--batch 400]

Every damaged file (byte flips, truncation, stray quotes, joined and split
lines, wrong encodings, junk with the right extension, huge cells, odd dates,
shifted cells, NUL bytes, placeholders, identifiers in the wrong column...)
goes into one program inbox with the demo's program.yaml; ``stages.ingest``
and ``stages.validate`` run on it as plain functions, and each file is
checked: read or skipped with a one-line message (never a traceback), its
records in = valid + quarantined + skipped, that count equal to the file's
non-blank lines when it holds no quote, and no identifier of the demo's inbox
(names, emails, DNIs, phones) anywhere in what ingest and the contracts
return (responses, quarantine, problems, summary, accounting, the GX folder).

``tests/test_fuzz.py`` runs a few hundred files with a random seed (printed;
``CAPACITAR_FUZZ_SEED`` replays one); this script runs a larger campaign and
prints files tried and outcomes per mutation.
"""

from __future__ import annotations

import argparse
import codecs
import io
import json
import random
import re
import shutil
import sys
import tempfile
import time
import zipfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pipelines.ingest.text import fold  # noqa: E402

STIGMA = ["estigma_OMSHC_pre.csv", "estigma_OMSHC_post.csv", "estigma_OMSHC_seguimiento.csv"]
REDCAP = "redcap_bienestar_export_2026-09-01.csv"
WORKBOOK = "conocimientos_TIC.xlsx"
ODD_DATES = ["31/02/2026", "1500-01-01", "9999-12-31 23:59", "0000-00-00", "ayer", "02/03/2026",
             "2026-13-45", "1/1/1", "44197", "2026-03-02T10:15:00Z", "12/31/2026", "٢٠٢٦-٠٣-٠٢"]
ODD_CELLS = ["N/A", "-", "sin correo", '=HYPERLINK("http://evil.example/","3")', "+1+1",
             "<script>alert(1)</script>", "@SUM(A1)", "\t3", "３", "3.0", "1e3", " ", "nan",
             "None", "ñ" * 50, "\u202e", "3;4", "Muy a menudo", "MUY A MENUDO "]


@dataclass
class Base:
    """One export of the demo to damage: its bytes and how it is written."""

    name: str
    raw: bytes
    kind: str  # csv, xlsx, sav
    encoding: str = ""
    sep: str = ","


@dataclass
class Case:
    """One damaged file in the fuzz inbox."""

    name: str
    base: str
    mutations: list[str]
    quote_free_lines: int | None = None  # non-blank lines after the header (text, no quotes)


@dataclass
class Report:
    """What a campaign found."""

    seed: int
    files: int = 0
    seconds: float = 0.0
    outcomes: Counter = field(default_factory=Counter)  # (mutation, read/skipped) -> files
    files_by_outcome: Counter = field(default_factory=Counter)  # read/skipped -> files
    failures: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        outcomes = ", ".join(f"{n} {k}" for k, n in sorted(self.files_by_outcome.items()))
        out = [f"seed {self.seed}: {self.files} files ({outcomes}) in {self.seconds:.1f} s, "
               f"{len(self.failures)} failures; per mutation (a file may have several):"]
        by_mutation: dict[str, Counter] = {}
        for (mutation, outcome), n in sorted(self.outcomes.items()):
            by_mutation.setdefault(mutation, Counter())[outcome] += n
        for mutation, counts in by_mutation.items():
            out.append(f"  {mutation:<16} " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
        return out + [f"  FAILURE {f}" for f in self.failures[:30]]


# --- damaging text --------------------------------------------------------------------
def lines_of(raw: bytes) -> list[bytes]:
    return raw.split(b"\n")


def flip(rng, base, raw):
    data = bytearray(raw)
    for _ in range(rng.randint(1, 6)):
        i = rng.randrange(len(data))
        data[i] ^= rng.randrange(1, 256)
    return bytes(data)


def truncate(rng, base, raw):
    return raw[: rng.randrange(len(raw))]


def stray_quote(rng, base, raw):
    lines = lines_of(raw)
    sep = base.sep.encode()
    for _ in range(rng.randint(1, 3)):
        i = rng.randrange(1, len(lines))
        cells = lines[i].split(sep)
        j = rng.randrange(len(cells))
        cells[j] = (b'"' + cells[j]) if rng.random() < 0.7 else (cells[j] + b'"')
        lines[i] = sep.join(cells)
    return b"\n".join(lines)


def join_lines(rng, base, raw):
    lines = lines_of(raw)
    for _ in range(rng.randint(1, 3)):
        if len(lines) > 2:
            i = rng.randrange(1, len(lines) - 1)
            lines[i:i + 2] = [lines[i] + lines[i + 1]]
    return b"\n".join(lines)


def split_line(rng, base, raw):
    lines = lines_of(raw)
    for _ in range(rng.randint(1, 3)):
        i = rng.randrange(1, len(lines))
        if lines[i]:
            at = rng.randrange(len(lines[i]))
            lines[i:i + 1] = [lines[i][:at], lines[i][at:]]
    return b"\n".join(lines)


def wrong_encoding(rng, base, raw):
    text = raw.decode(base.encoding, "surrogateescape")
    target = rng.choice(["utf-8", "cp1252", "utf-16", "utf-8-sig", "mixed", "latin-1"])
    if target == "mixed":  # some lines pasted in the other encoding
        other = "utf-8" if base.encoding == "cp1252" else "cp1252"
        lines = text.split("\n")
        return b"\n".join(line.encode(other if rng.random() < 0.2 else base.encoding,
                                      errors="surrogateescape") for line in lines)
    return text.encode(target, errors="replace")


def junk(rng, base, raw):
    return bytes(rng.randrange(256) for _ in range(rng.randint(0, 3000)))


def huge_cell(rng, base, raw):
    lines = lines_of(raw)
    i = rng.randrange(1, len(lines))
    cells = lines[i].split(base.sep.encode())
    size = rng.choice([40_000, 140_000, 300_000])
    cells[rng.randrange(len(cells))] = rng.choice([b"x", b"3", "ñ".encode(base.encoding)]) * size
    lines[i] = base.sep.encode().join(cells)
    return b"\n".join(lines)


def edit_cells(rng, base, raw, column_filter, values):
    """Replace cells of the columns whose header matches ``column_filter`` in some rows."""
    text = raw.decode(base.encoding, "surrogateescape")
    lines = text.split("\n")
    header = lines[0].split(base.sep)
    columns = [k for k, name in enumerate(header) if column_filter(name)] or [0]
    for _ in range(rng.randint(1, 8)):
        i = rng.randrange(1, len(lines))
        cells = lines[i].split(base.sep)
        k = rng.choice(columns)
        if k < len(cells):
            cells[k] = rng.choice(values) if not callable(values) else values(cells)
        lines[i] = base.sep.join(cells)
    return "\n".join(lines).encode(base.encoding, errors="surrogateescape")


def odd_dates(rng, base, raw):
    return edit_cells(rng, base, raw, lambda n: "fecha" in n.lower(), ODD_DATES)


def odd_answers(rng, base, raw):
    return edit_cells(rng, base, raw, lambda n: re.search(r"\d$", n) is not None, ODD_CELLS)


def placeholders(rng, base, raw):
    return edit_cells(rng, base, raw, lambda n: "correo" in n.lower(),
                      ["N/A", "NA", "-", "sin correo", "no tiene", "ninguno", "", "n/a"])


def identifier_elsewhere(rng, base, raw):
    """A person's email or name typed in the site or wave column (same number of cells)."""
    text = raw.decode(base.encoding, "surrogateescape")
    header = text.split("\n")[0].split(base.sep)
    ids = [k for k, n in enumerate(header) if re.search("correo|nombre|telefono", n.lower())]
    return edit_cells(rng, base, raw,
                      lambda n: n.lower() in ("sede", "redcap_event_name", "fecha_encuesta",
                                              "fecha") or re.search(r"\d$", n) is not None,
                      lambda cells: cells[rng.choice(ids)] if ids else "x")


def shifted_cells(rng, base, raw):
    lines = lines_of(raw)
    sep = base.sep.encode()
    for _ in range(rng.randint(1, 3)):
        i = rng.randrange(1, len(lines))
        if rng.random() < 0.5:
            lines[i] = lines[i].replace(b" ", sep, 1)  # an unquoted delimiter in a name
        else:
            lines[i] = lines[i].replace(sep, b"", 1)  # a lost delimiter
    return b"\n".join(lines)


def nul_bytes(rng, base, raw):
    data = bytearray(raw)
    for _ in range(rng.randint(1, 4)):
        data.insert(rng.randrange(len(data)), 0)
    return bytes(data)


def line_endings(rng, base, raw):
    return raw.replace(b"\n", rng.choice([b"\r\n", b"\r", b"\n\n", b"\r\r\n"]))


def blank_and_headers(rng, base, raw):
    lines = lines_of(raw)
    choice = rng.choice(["blank", "header_again", "header_only", "empty", "bom", "delims"])
    if choice == "blank":
        lines.insert(rng.randrange(1, len(lines)), b"")
    elif choice == "header_again":
        lines.insert(rng.randrange(1, len(lines)), lines[0])
    elif choice == "header_only":
        lines = lines[:1]
    elif choice == "empty":
        lines = [b""]
    elif choice == "bom":
        return codecs.BOM_UTF8 + raw
    else:
        lines.insert(rng.randrange(1, len(lines)), base.sep.encode() * 20)
    return b"\n".join(lines)


TEXT_MUTATIONS = {f.__name__: f for f in (
    flip, truncate, stray_quote, join_lines, split_line, wrong_encoding, junk, huge_cell,
    odd_dates, odd_answers, placeholders, identifier_elsewhere, shifted_cells, nul_bytes,
    line_endings, blank_and_headers)}


# --- damaging workbooks and SPSS files ------------------------------------------------------
def zip_damage(rng, base, raw):
    choice = rng.choice(["drop_sheet", "drop_strings", "bomb", "not_xlsx"])
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(raw)) as src, zipfile.ZipFile(out, "w",
                                                                   zipfile.ZIP_DEFLATED) as dst:
        for name in src.namelist():
            if choice == "drop_sheet" and name.startswith("xl/worksheets/"):
                continue
            if choice == "drop_strings" and name.endswith("sharedStrings.xml"):
                continue
            dst.writestr(name, src.read(name))
        if choice == "bomb":
            dst.writestr("xl/media/filler.bin", b"\0" * 3_000_000)
        if choice == "not_xlsx":
            dst.writestr("hello.txt", b"not a workbook")
    return out.getvalue() if choice != "not_xlsx" else _only(out.getvalue(), "hello.txt")


def _only(raw, name):
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(raw)) as src, zipfile.ZipFile(out, "w") as dst:
        dst.writestr(name, src.read(name))
    return out.getvalue()


def sheet_cells(rng, base, raw):
    """Cells of the tutor's sheet damaged in Excel: names and emails elsewhere, odd values."""
    frame = pd.read_excel(io.BytesIO(raw), sheet_name="Respuestas", header=1, dtype=object,
                          engine="calamine")
    for _ in range(rng.randint(1, 10)):
        i = rng.randrange(len(frame))
        column = rng.choice(list(frame.columns))
        frame.loc[i, column] = rng.choice([
            frame.loc[rng.randrange(len(frame)), "Correo electrónico"],
            frame.loc[rng.randrange(len(frame)), "Apellidos y nombres"],
            frame.loc[rng.randrange(len(frame)), "DNI"], *ODD_CELLS, *ODD_DATES, None, 3.5,
            "x" * rng.choice([100, 40_000])])
    if rng.random() < 0.3:
        frame = frame.iloc[rng.sample(range(len(frame)), len(frame))]
    out = io.BytesIO()
    with pd.ExcelWriter(out, engine="openpyxl") as writer:
        frame.to_excel(writer, sheet_name="Respuestas", index=False,
                       startrow=rng.choice([1, 1, 1, 0, 2]))
    return out.getvalue()


XLSX_MUTATIONS = {"flip": flip, "truncate": truncate, "junk": junk, "zip_damage": zip_damage,
                  "sheet_cells": sheet_cells}
SAV_MUTATIONS = {"flip": flip, "truncate": truncate, "junk": junk}


# --- the campaign ----------------------------------------------------------------------------
def bases(demo: Path) -> list[Base]:
    """The demo's exports, and its post-training stigma answers as an SPSS file."""
    import pyreadstat

    inbox = demo / "inbox"
    found = [Base(REDCAP, (inbox / REDCAP).read_bytes(), "csv", "utf-8", ","),
             *[Base(n, (inbox / n).read_bytes(), "csv", "cp1252", ";") for n in STIGMA],
             Base(WORKBOOK, (inbox / WORKBOOK).read_bytes(), "xlsx")]
    frame = pd.read_csv(inbox / STIGMA[1], sep=";", encoding="cp1252", dtype=str,
                        keep_default_na=False).rename(columns={"Nombre y apellidos": "Nombre"})
    sav = demo / "estigma_post.sav"
    pyreadstat.write_sav(frame, str(sav))
    found.append(Base("estigma_OMSHC_post.sav", sav.read_bytes(), "sav"))
    return found


def fuzz_config(demo: Path) -> dict:
    """The demo's program.yaml, able to read many copies of each export (and an SPSS one)."""
    config = yaml.safe_load((demo / "program.yaml").read_text(encoding="utf-8"))
    stigma = next(s for s in config["sources"] if s["name"] == "estigma_excel")
    stigma["wave"]["filename"] = r"estigma_OMSHC_([a-z]+)"
    config["sources"].append({**stigma, "name": "estigma_spss", "pattern": "estigma_*.sav",
                              "format": "sav", "pii": ["Nombre"]})
    return config


def quote_free_lines(raw: bytes, base: Base) -> int | None:
    """Non-blank lines after the header, when the text holds no quote (else None).

    The reader's count must equal it: with no quote no record spans lines.
    """
    data = raw
    if raw.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        try:
            data = raw.decode("utf-16").encode("utf-8")
        except UnicodeDecodeError:
            return None  # not UTF-16 after all: the reader skips it
    if b'"' in data or b"\xa0" in data or b"\x85" in data or not data.strip():
        return None  # quotes may join lines; NBSP/NEL may be white space in cp1252/latin-1
    lines = re.split(rb"\r\n|\r|\n", data)
    if lines and lines[-1] == b"":
        lines.pop()
    blank = re.compile(rb"[\s" + re.escape(base.sep.encode()) + rb"]*")
    return sum(1 for line in lines[1:] if not blank.fullmatch(line))


def write_cases(rng: random.Random, found: list[Base], inbox: Path, n: int,
                start: int = 0) -> list[Case]:
    """``n`` damaged files in ``inbox``, each with one to three mutations."""
    cases = []
    for k in range(start, start + n):
        base = rng.choice(found)
        table = {"csv": TEXT_MUTATIONS, "xlsx": XLSX_MUTATIONS, "sav": SAV_MUTATIONS}[base.kind]
        names = rng.sample(sorted(table), rng.choice([1, 1, 2, 3]) if base.kind == "csv" else 1)
        raw = base.raw
        for name in names:
            try:
                raw = table[name](rng, base, raw)
            except (ValueError, IndexError, KeyError):
                pass  # a mutation with nothing to work on (e.g. a line edit of a one-line file)
        stem, suffix = base.name.rsplit(".", 1)
        if base.name == REDCAP:
            stem = "redcap_bienestar_export"
        file_name = f"{stem}_m{k:04d}.{suffix}"
        (inbox / file_name).write_bytes(raw)
        cases.append(Case(file_name, base.name, names,
                          quote_free_lines(raw, base) if base.kind == "csv" else None))
    return cases


def identifiers(truth: dict) -> tuple[list[str], set[str]]:
    """The demo's identifiers (folded) and the words of its names (folded, 4+ letters)."""
    pii = truth["pii"]
    whole = [fold(v) for v in [*pii["emails"], *pii["names"], *pii["dni"], *pii["phones"],
                               truth["retyped_email"]["as_typed_at_post"]]]
    whole += [fold(e.split("@")[0]) for e in pii["emails"]]
    words = {w for name in pii["names"] for w in fold(name).split() if len(w) >= 4}
    return whole, words


def leaked(text: str, whole: list[str], words: set[str]) -> list[str]:
    folded = fold(text)
    found = [v for v in whole if v and v in folded]
    found += sorted(words & set(re.findall(r"[^\W\d_]+", folded)))
    return found


def outputs_text(ingested, contracts, root: Path) -> dict[str, str]:
    """Everything ingest and the contracts returned or wrote, as text, by where it was."""
    texts = {f"responses/{i}": f.to_csv() for i, f in ingested.responses.items()}
    texts["ingest_quarantine"] = ingested.rejected.to_csv()
    texts["inputs"] = ingested.inputs.to_csv()
    texts["ingest_accounting"] = ingested.accounting.to_csv()
    texts["problems"] = "\n".join(ingested.problems + contracts.problems)
    texts["quarantine"] = contracts.quarantine.to_csv()
    texts["summary"] = contracts.summary.to_csv()
    texts["valid"] = "\n".join(f.to_csv() for f in contracts.valid.values())
    for path in (root / "gx").rglob("*"):
        if path.is_file() and path.suffix in (".json", ".html", ".yml"):
            texts[str(path.relative_to(root))] = path.read_text(encoding="utf-8", errors="ignore")
    return texts


def run_batch(root: Path, cases: list[Case], truth: dict, report: Report) -> None:
    """Ingest and validate the inbox, then check every file."""
    from pipelines import stages

    ctx = stages.load_context(root)
    try:
        ingested = stages.ingest(ctx)
        contracts = stages.validate(ctx, ingested)
    except Exception as exc:  # noqa: BLE001 - reported with the file that causes it
        report.failures.append(f"traceback ({type(exc).__name__}: {exc}); "
                               f"culprit: {culprit(root, cases)}")
        return
    from pipelines.accounting import row_accounting

    accounting = row_accounting(ingested.accounting, contracts.valid, contracts.quarantine)
    by_file = accounting.groupby("source_file")
    inputs = ingested.inputs.set_index("source_file")
    for case in cases:
        tag = f"{case.name} ({'+'.join(case.mutations)} of {case.base})"
        if case.name not in inputs.index:
            report.failures.append(f"{tag}: not in the inputs")
            continue
        entry = inputs.loc[case.name]
        outcome = entry["status"]
        report.files_by_outcome[outcome] += 1
        for mutation in case.mutations:
            report.outcomes[(mutation, outcome)] += 1
        if outcome != "read":
            if not entry["message"] or "\n" in entry["message"] or not any(
                    p.startswith(case.name) for p in ingested.problems):
                report.failures.append(f"{tag}: skipped without a one-line message")
        if case.name not in by_file.groups:
            report.failures.append(f"{tag}: no accounting row")
            continue
        rows = by_file.get_group(case.name)
        if not rows["balanced"].all():
            report.failures.append(f"{tag}: unbalanced {rows[['rows_in', 'rows_valid', 'rows_quarantined', 'rows_skipped']].values.tolist()}")
        if outcome == "read" and case.quote_free_lines is not None and \
                (rows["rows_in"] != case.quote_free_lines).any():
            report.failures.append(f"{tag}: rows_in {rows['rows_in'].tolist()} but the file has "
                                   f"{case.quote_free_lines} non-blank lines")
    whole, words = identifiers(truth)
    for where, text in outputs_text(ingested, contracts, root).items():
        found = leaked(text, whole, words)
        if found:
            report.failures.append(f"identifiers in {where}: {len(found)} (e.g. a "
                                   f"{'word of a name' if found[0] in words else 'value'})")


def culprit(root: Path, cases: list[Case]) -> str:
    """The first file whose ingest alone raises (to report a traceback's cause)."""
    from pipelines import stages

    keep = root / "inbox_all"
    shutil.move(root / "inbox", keep)
    try:
        for case in cases:
            (root / "inbox").mkdir()
            for extra in keep.glob("diccionario_*"):
                shutil.copy2(extra, root / "inbox")
            shutil.copy2(keep / case.name, root / "inbox")
            try:
                stages.ingest(stages.load_context(root))
            except Exception as exc:  # noqa: BLE001
                return f"{case.name} ({'+'.join(case.mutations)}): {type(exc).__name__}: {exc}"
            finally:
                shutil.rmtree(root / "inbox")
        return "none alone (the contracts, or files together)"
    finally:
        shutil.move(keep, root / "inbox")


def campaign(seed: int, files: int, workdir: Path, batch: int = 400) -> Report:
    """Damage ``files`` copies of the demo's exports and check ingest and the contracts on them."""
    from pipelines.demo import write_demo
    from pipelines.ingest.core import mark_settled

    start = time.perf_counter()
    rng = random.Random(seed)
    demo = write_demo(workdir / "demo")
    truth = json.loads((demo / "truth" / "truth.json").read_text(encoding="utf-8"))
    found = bases(demo)
    report = Report(seed=seed)
    for first in range(0, files, batch):
        root = workdir / f"batch{first}"
        (root / "inbox").mkdir(parents=True)
        shutil.copytree(demo / "secrets", root / "secrets")
        shutil.copy2(demo / "inbox" / "diccionario_redcap_bienestar.csv", root / "inbox")
        (root / "program.yaml").write_text(
            yaml.safe_dump(fuzz_config(demo), allow_unicode=True), encoding="utf-8")
        cases = write_cases(rng, found, root / "inbox", min(batch, files - first), first)
        mark_settled(root / "inbox")
        run_batch(root, cases, truth, report)
        report.files += len(cases)
    report.seconds = time.perf_counter() - start
    return report


def main() -> None:
    from benchmarks._machine import describe

    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--batch", type=int, default=400,
                        help="files per inbox (one ingest + contracts run each)")
    args = parser.parse_args()
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(2**32)
    print(describe())
    with tempfile.TemporaryDirectory() as tmp:
        report = campaign(seed, args.files, Path(tmp), args.batch)
    print("\n".join(report.lines()))
    raise SystemExit(1 if report.failures else 0)


if __name__ == "__main__":
    main()
