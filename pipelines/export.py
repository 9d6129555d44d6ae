"""Write the result tables as Parquet, CSV, SPSS .sav and Stata .dta, atomically.

Everything is first written into a staging folder and then swapped in with
renames (``pipelines/publish.py``), so a run killed midway leaves the previous
outputs whole. SPSS and
Stata files carry variable labels and value labels in the program's language;
categories (cohort, wave, instrument, scale, band, rule...) are labelled
numeric codes, never text categoricals, so SPSS, PSPP, Stata and R (haven)
read them as factors with labels.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pyreadstat

from instruments.model import Text
from pipelines.codes import ValueSet
from pipelines.parallel import Shared
from pipelines.schema import BOOLEAN, Column, TableSpec, per_language

SAV_VALUE_LABEL_BYTES = 120  # SPSS's limit for a value label
SAV_NAME_BYTES = 64  # SPSS's limit for a variable name (a longer one uses its stata_name)
STATA_LABEL_CHARS = 80  # Stata's limit for variable labels
STATA_NAME_CHARS = 32
STATA_LABELLED_NAME_CHARS = 29
STATA_VERSION = 14  # pyreadstat's version 14 writes .dta format 118 (Stata 14 and later)


def atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    """Call ``write(tmp)`` then rename tmp over ``path`` (same folder, so atomic)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(Path(tmp))
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def json_text(data: object) -> str:
    """JSON as capacitar writes it: UTF-8, indented, anything else as text."""
    return json.dumps(data, indent=2, ensure_ascii=False, default=str)


def write_json(data: object, path: Path) -> Path:
    """Write JSON atomically (UTF-8, readable)."""
    text = json_text(data)
    atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))
    return path


def bytes_cut(text: str, limit: int) -> str:
    """``text`` cut to at most ``limit`` UTF-8 bytes, never inside a character.

    >>> bytes_cut("año ñ", 5)
    'año '
    >>> bytes_cut("año ñ", 6)
    'año '
    """
    return text.encode("utf-8")[:limit].decode("utf-8", errors="ignore")


def plain_text(series: pd.Series) -> np.ndarray:
    """A text column as a NumPy object array of str, missing as "" (what pyreadstat writes).

    pyreadstat writes object arrays about twice as fast as pandas' ``str`` dtype.
    """
    return series.astype("object").where(series.notna(), "").astype(str).to_numpy(dtype=object)


def variable_name(text: str) -> str:
    """A valid SPSS/Stata variable name part: letters, digits and _ only.

    >>> variable_name("alpha_below_0.70")
    'alpha_below_0_70'
    """
    return re.sub(r"[^A-Za-z0-9_]", "_", text)


def labelled_columns(spec: TableSpec, sets: dict[str, ValueSet]) -> dict[str, tuple[str, Column]]:
    """The variables of a table's .sav/.dta files: name -> (the table column it comes from, spec).

    Each column gives one variable of the same name, except ``flags`` (one
    0/1 ``flag_<code>`` per declared warning) and a ``raw`` category (its
    code, then ``<name>_raw`` with a value that matches no declared one).
    """
    out = {}
    for name, column in spec.columns.items():
        if column.type == "flags":
            for flag, text in sets[column.values].labels.items():
                variable = f"flag_{variable_name(flag[0])}"
                out[variable] = (name, Column(
                    type="boolean", stata_name=stata_labelled_name(variable), label=per_language(
                        lambda lang, flag=flag, text=text: f"{flag[0]}: {text.get(lang)}"),
                    definition=per_language(
                        lambda lang, flag=flag: GENERATED["flag"].get(lang).format(
                            flag=flag[0], column=name))))
            continue
        out[name] = (name, column)
        if column.raw:
            out[f"{name}_raw"] = (name, Column(
                type="string",
                label=per_language(lambda lang: f"{column.label.get(lang)} "
                                                f"({GENERATED['raw_label'].get(lang)})"),
                definition=per_language(
                    lambda lang: GENERATED["raw"].get(lang).format(column=name))))
    return out


GENERATED = {
    "flag": Text(es="1 (Sí) cuando la columna {column} de Parquet/CSV incluye la advertencia "
                    "{flag}; 0 (No) si no.",
                 en="1 (Yes) when the Parquet/CSV column {column} holds the warning {flag}; "
                    "0 (No) otherwise."),
    "raw_label": Text(es="texto sin correspondencia", en="unmatched text"),
    "raw": Text(es="Solo .sav/.dta: el valor de {column} tal como vino cuando no coincide con "
                   "ningún valor declarado ({column} queda sin código); vacío si coincide.",
                en="Only .sav/.dta: the value of {column} as found when it matches no declared "
                   "value ({column} then has no code); empty when it matches one."),
}


def category_codes(frame: pd.DataFrame, name: str, column: Column, values: ValueSet,
                   table: str) -> tuple[np.ndarray, np.ndarray | None]:
    """A category column's codes and, for a ``raw`` column, its unmatched text.

    A value outside the declared ones is a bug in any other column: it would
    get a code without a meaning, so it stops the export.
    """
    codes, unmatched = values.codes_of(frame, name)
    if not column.raw:
        if unmatched.any():
            found = sorted({str(v) for v in frame.loc[unmatched, name].unique()})[:5]
            raise RuntimeError(f"table {table}, column {name}: values {found} are not in the "
                               f"value set {column.values!r} (pipelines/schema.py)")
        return codes, None
    return codes, np.where(unmatched, plain_text(frame[name]), "").astype(object)


def flag_matrix(text: pd.Series, flags: list[str], table: str) -> np.ndarray:
    """(rows, flags) 0/1 from ``;``-joined warnings (``code: detail`` counts as ``code``).

    >>> flag_matrix(pd.Series(["a;b", "", "b: why"]), ["a", "b"], "t").tolist()
    [[1.0, 1.0], [0.0, 0.0], [0.0, 1.0]]
    """
    codes, uniques = pd.factorize(text.fillna(""))
    place = {flag: i for i, flag in enumerate(flags)}
    table_of = np.zeros((len(uniques) + 1, len(flags)))  # the last row: missing text
    for u, joined in enumerate(uniques):
        for part in filter(None, (p.split(":", 1)[0].strip() for p in str(joined).split(";"))):
            if part not in place:
                raise RuntimeError(f"table {table}: warning {part!r} is not declared in its "
                                   "flags value set (pipelines/schema.py)")
            table_of[u, place[part]] = 1.0
    return table_of[codes]


def labelled(frame: pd.DataFrame, spec: TableSpec, sets: dict[str, ValueSet], language: str,
             table: str = ""):
    """The frame as .sav/.dta variables: categories as codes, flags as 0/1 variables, plus
    variable labels, value labels, measurement levels and formats."""
    out = {}
    labels, value_labels, measures, formats = {}, {}, {}, {}
    flag_columns: dict[str, np.ndarray] = {}
    yes_no = {code: text.get(language) for code, text in BOOLEAN.items()}
    for name, (source, column) in labelled_columns(spec, sets).items():
        if source not in frame.columns:
            continue
        labels[name] = column.label.get(language)[:250]
        series = frame[source]
        parent = spec.columns[source]
        if parent.type == "flags":
            flags = [key[0] for key in sets[parent.values].labels]
            if source not in flag_columns:
                flag_columns[source] = flag_matrix(series, flags, table)
            position = [f"flag_{variable_name(flag)}" for flag in flags].index(name)
            out[name] = flag_columns[source][:, position]
            value_labels[name] = yes_no
            measures[name], formats[name] = "nominal", "F1.0"
        elif column.type == "category":
            values = sets[column.values]
            out[name], raw = category_codes(frame, source, column, values, table)
            if raw is not None:
                out[f"{name}_raw"] = raw
            value_labels[name] = {c: bytes_cut(t, SAV_VALUE_LABEL_BYTES)
                                  for c, t in values.value_labels(language).items()}
            measures[name] = "ordinal" if column.values == "waves" else "nominal"
            formats[name] = "F8.0"
        elif name != source:  # the raw text, filled with its category above
            measures[name] = "nominal"
        elif column.type == "boolean":
            out[name] = series.astype("boolean").to_numpy(dtype="float64", na_value=np.nan)
            value_labels[name] = yes_no
            measures[name], formats[name] = "nominal", "F1.0"
        elif column.type in ("integer", "number"):
            # SPSS and Stata have no infinity: an infinite figure is written as missing.
            numbers = pd.to_numeric(series, errors="coerce").astype("float64")
            out[name] = numbers.where(np.isfinite(numbers))
            measures[name] = "scale"
            formats[name] = "F8.0" if column.type == "integer" else "F12.4"
        else:
            out[name] = pd.Series(plain_text(series), index=frame.index, dtype=object)
            measures[name] = "nominal"
    data = pd.DataFrame({name: out[name] for name in labels}, index=frame.index)
    return data, labels, value_labels, measures, formats


def write_labelled_files(frame: pd.DataFrame, spec: TableSpec, sets, language,
                         paths: list[Path]) -> list[Path]:
    """The SPSS (.sav) and/or Stata (.dta) files of one table, by suffix, from one conversion.

    SPSS files carry variable labels, value labels, measurement levels and
    formats (a name over SPSS's 64 bytes takes its ``stata_name``); Stata files
    (format 118) the labels cut to Stata's 80 characters and ``stata_name``s.
    """
    table = paths[0].stem if paths else ""
    data, labels, value_labels, measures, formats = labelled(
        frame.reset_index(drop=True), spec, sets, language, table)
    title = spec.title.get(language)
    columns = labelled_columns(spec, sets)
    for path in paths:
        if path.suffix == ".sav":
            names = {name: columns[name][1].stata_name
                     if len(name.encode()) > SAV_NAME_BYTES and columns[name][1].stata_name
                     else name for name in data.columns}
            pyreadstat.write_sav(
                data.rename(columns=names), str(path),
                column_labels={names[k]: v for k, v in labels.items()},
                variable_value_labels={names[k]: v for k, v in value_labels.items()},
                variable_measure={names[k]: v for k, v in measures.items()},
                variable_format={names[k]: v for k, v in formats.items()}, file_label=title)
        else:
            names = stata_names(columns, list(data.columns), set(value_labels))
            pyreadstat.write_dta(
                data.rename(columns=names), str(path),
                column_labels={names[k]: stata_label(k, names[k], v) for k, v in labels.items()},
                variable_value_labels={names[k]: v for k, v in value_labels.items()},
                file_label=title[:STATA_LABEL_CHARS], version=STATA_VERSION)
    return paths


def stata_labelled_name(name: str) -> str | None:
    """The .dta name of a variable with value labels whose own name is too long, else None.

    pyreadstat names a variable's value-label set after it plus a counter, and
    Stata allows 32 characters there too: such names are cut to 29.
    """
    return name[:STATA_LABELLED_NAME_CHARS] if len(name) > STATA_LABELLED_NAME_CHARS else None


def stata_names(columns: dict[str, tuple[str, Column]], names: list[str],
                labelled: set[str]) -> dict[str, str]:
    """Variable name -> its .dta name (``stata_name`` where declared), checked for Stata."""
    out = {}
    for name in names:
        out[name] = columns[name][1].stata_name or name
        limit = STATA_LABELLED_NAME_CHARS if name in labelled else STATA_NAME_CHARS
        if len(out[name]) > limit:
            raise RuntimeError(f"variable {name!r} is too long for Stata and has no stata_name")
    if len(set(out.values())) < len(out):
        raise RuntimeError(f"two variables share a Stata name: {out}")
    return out


def stata_label(name: str, stata_name: str, label: str) -> str:
    """A .dta variable label: the long name first when the variable was renamed for Stata,
    cut at a word to Stata's 80 characters.

    >>> stata_label("stss_total_follow_up", "s8_w3", "STSS: total, " + "Seguimiento " * 6)
    'stss_total_follow_up: STSS: total, Seguimiento Seguimiento Seguimiento…'
    """
    text = label if name == stata_name else f"{name}: {label}"
    if len(text) <= STATA_LABEL_CHARS:
        return text
    return text[:STATA_LABEL_CHARS - 1].rsplit(" ", 1)[0].rstrip(",;: ") + "…"


def write_open_formats(frame: pd.DataFrame, folder: Path, name: str) -> list[Path]:
    """Parquet (the true values) and CSV (UTF-8, formulas neutralised), both written by Arrow."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    from pyarrow import csv

    paths = [folder / f"{name}.parquet", folder / f"{name}.csv"]
    table = pa.Table.from_pandas(frame.reset_index(drop=True), preserve_index=False)
    pq.write_table(table, paths[0])
    csv.write_csv(formulas_neutralised(table), paths[1],
                  csv.WriteOptions(quoting_style="needed"))
    return paths


FORMULA_STARTS = ["=", "+", "-", "@", "\t", "\r"]  # what a spreadsheet may run (OWASP)


def formulas_neutralised(table):
    r"""The Arrow table with ``'`` before every text cell a spreadsheet would read as a formula.

    OWASP's CSV-injection rule: a cell starting with ``=``, ``+``, ``-``,
    ``@``, a tab or a carriage return gets a leading apostrophe, so Excel or
    LibreOffice shows it as text. Only text columns are touched: a negative
    number in a numeric column stays a number.

    >>> import pyarrow as pa
    >>> t = formulas_neutralised(pa.table({"s": ["=1+1", "-2", "ok", None], "x": [-1, 2, 3, 4],
    ...                                     "l": pa.array(["@A", "\tB", "\rC", "+D"], pa.large_string())}))
    >>> t.column("s").to_pylist(), t.column("x").to_pylist(), t.column("l").to_pylist()
    (["'=1+1", "'-2", 'ok', None], [-1, 2, 3, 4], ["'@A", "'\tB", "'\rC", "'+D"])
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    columns = []
    for column in table.columns:
        text = column.type
        if pa.types.is_dictionary(text):
            column, text = column.cast(text.value_type), text.value_type
        if pa.types.is_string(text) or pa.types.is_large_string(text):
            risky = pc.is_in(pc.utf8_slice_codeunits(column, 0, 1),
                             value_set=pa.array(FORMULA_STARTS, text))
            if pc.any(risky).as_py():
                quote, nothing = pa.scalar("'", text), pa.scalar("", text)
                column = pc.if_else(risky, pc.binary_join_element_wise(quote, column, nothing),
                                    column)
        columns.append(column)
    return pa.table(columns, names=table.column_names)


def labelled_paths(name: str, folder: Path) -> list[Path]:
    """Where a table's SPSS and Stata files go."""
    return [folder / f"{name}{suffix}" for suffix in (".sav", ".dta")]


PARALLEL_ROWS = 200_000  # fewer rows are written at once in this process: too little to share


class LabelledFiles:
    """SPSS and Stata files of tables, written by forked processes beside the caller's work.

    pyreadstat holds the GIL, so big batches of tables are shared out among
    processes (:class:`pipelines.parallel.Shared`) that write them from the
    caller's frames while the run goes on; :meth:`wait` collects them. Small
    batches are written in-process at once.

    Examples
    --------
    >>> import tempfile
    >>> from pipelines.schema import load_schema
    >>> folder = Path(tempfile.mkdtemp())
    >>> from pipelines.codes import CodeRegistry
    >>> frame = pd.DataFrame({"cohort": ["a"], "wave": ["pre"], "instrument": ["proqol"],
    ...                       "n": [3], "n_matched_first_wave": [3], "n_unmatched": [0]})
    >>> sets = CodeRegistry({}).code({"cohorts": [("a", Text(en="Site A"))],
    ...                               "waves": [("pre", Text(en="Before"))],
    ...                               "instruments": [("proqol", Text(en="ProQOL"))]})
    >>> writer = LabelledFiles(folder, {"participation": load_schema().tables["participation"]},
    ...                        sets, "en")
    >>> writer.submit({"participation": frame}, processes=1)
    >>> sorted(p.name for p in writer.wait())
    ['participation.dta', 'participation.sav']
    """

    def __init__(self, folder: Path, specs: dict, sets: dict, language: str):
        self.folder, self.specs, self.sets, self.language = folder, specs, sets, language
        self.paths: list[Path] = []
        self.writers: list[Shared] = []

    def submit(self, files: dict[str, pd.DataFrame], processes: int) -> None:
        """Start writing ``files`` on ``processes`` forked processes (small batches: here, now)."""
        jobs = sorted(((files[name], self.specs[name], labelled_paths(name, self.folder))
                       for name in files), key=lambda job: -job[0].size)  # biggest first
        self.paths += [p for *_, paths in jobs for p in paths]
        if sum(len(f) for f in files.values()) < PARALLEL_ROWS:
            for job in jobs:
                self.write(job)
            return
        self.writers.append(Shared(self.write, jobs, processes))

    def write(self, job: tuple) -> list[Path]:
        frame, spec, paths = job
        return write_labelled_files(frame, spec, self.sets, self.language, paths)

    def wait(self) -> list[Path]:
        """Every file submitted, once written; a failed writer raises (a bug, not a user error)."""
        writers, self.writers = self.writers, []
        try:
            for shared in writers:
                shared.results()
        except Exception as exc:
            for shared in writers:
                shared.cancel()
            raise RuntimeError(f"writing the SPSS/Stata files failed: {exc}") from exc
        return list(self.paths)

    def cancel(self) -> None:
        """Stop the writers (the run failed): their half-written files go with the staging."""
        for shared in self.writers:
            shared.cancel()
        self.writers = []
