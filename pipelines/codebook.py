"""The codebook (JSON, Markdown, HTML) generated from the same declarations as the exports.

Every table and column of the outputs in the program's language: label, type,
value set (with the numeric codes of .sav/.dta), definition; the variables
only the .sav/.dta files have (``flag_*``, ``*_raw``); every value set once;
each instrument's scales, bands, citation and licence. User text (site names,
instrument files, the program's name) is escaped for Markdown, and the HTML is
rendered with raw HTML off, so nothing in it runs in a browser.
"""

from __future__ import annotations

import datetime as dt
import inspect
import re
import unicodedata
from hashlib import sha256
from html import escape
from pathlib import Path

import jinja2
import pandas as pd

from instruments.model import Text
from pipelines.competence import SET_TITLES as COMPETENCE_SET_TITLES
from pipelines.codes import REGISTRY_FILE, ValueSet
from pipelines.export import json_text, labelled_columns
from pipelines.schema import (
    BOOLEAN,
    SPACES,
    TableSpec,
    band_range,
    instrument_name,
    number_text,
)

WORDS = {  # every fixed word of the codebook, per language
    "es": {
        "codebook": "Libro de códigos", "generated": "Generado el {when} por capacitar.",
        "intro": "Cada tabla se escribe como Parquet, CSV, SPSS (.sav) y Stata (.dta, formato "
                 "118, Stata 14 o posterior). En Parquet, CSV y en el almacén DuckDB las "
                 "categorías son identificadores de texto; en .sav/.dta son códigos numéricos "
                 "con etiquetas de valor. Cada código tiene un solo significado: cuando un valor "
                 "depende de otra columna (una escala dentro de su instrumento, un rango dentro "
                 "de su escala, un término dentro de su modelo), el código identifica el par "
                 "(el total de la STSS y el del OMS-HC son dos códigos). Los códigos se "
                 "guardan en tables/codes.json, que solo se amplía: un código nunca cambia de "
                 "significado, y una cohorte, momento, instrumento o escala nuevos reciben el "
                 "siguiente código libre, así que los .sav/.dta de ejecuciones anteriores se "
                 "pueden unir con los nuevos por sus códigos.",
        "booleans": "Columnas sí/no: 0 = {no}; 1 = {yes} en .sav/.dta (false/true en "
                    "Parquet/CSV).",
        "contents": "Contenido", "tables": "Tablas", "value_sets": "Conjuntos de valores "
        "(códigos)", "instruments": "Instrumentos", "key": "Clave", "rows": "Filas en esta "
        "ejecución", "files": "Archivos", "column": "columna", "label": "etiqueta",
        "type": "tipo", "meaning": "valores y definición", "code": "código", "value": "valor",
        "variable": "variable .sav/.dta", "flag": "advertencia",
        "string": "texto", "integer": "entero", "number": "número",
        "boolean": "sí/no (0 = {no}; 1 = {yes})", "category": "código: {set}",
        "flags": "advertencias: {set}", "only_labelled": "solo .sav/.dta",
        "only_open": "solo Parquet/CSV", "stata": ".dta", "pattern_columns": "Columnas de "
        "este archivo", "shares": "Los códigos de {base}, más:", "scale_line":
        "{scoring} de {items} ítems (al menos {min} respondidos); ítems inversos: {reverse}; "
        "{direction}", "bands": "rangos", "none": "ninguno", "sum": "suma", "mean": "media",
        "better": "más alto es mejor", "worse": "más bajo es mejor", "neutral": "sin dirección",
        "reliability": "alfa publicado {alpha} ({source})", "citation": "Cita",
        "licence": "Licencia", "version": "versión",
        "form_line": "forma {form}: {items} ítems, puntaje = % de respuestas correctas "
                     "(sin respuesta = incorrecta)", "anchors": "ítems ancla: {items}",
    },
    "en": {
        "codebook": "Codebook", "generated": "Generated {when} by capacitar.",
        "intro": "Every table is written as Parquet, CSV, SPSS (.sav) and Stata (.dta, format "
                 "118, Stata 14 and later). In Parquet, CSV and the DuckDB warehouse categories "
                 "are text ids; in .sav/.dta they are numeric codes with value labels. Every "
                 "code has one meaning: where a value depends on another column (a scale within "
                 "its instrument, a band within its scale, a term within its model) the code "
                 "stands for the pair (the STSS total and the OMS-HC total are two codes). Codes are kept in tables/codes.json, which is only ever appended to: "
                 "a code never changes meaning, and a new cohort, wave, instrument or scale gets "
                 "the next free code, so .sav/.dta files of earlier runs join the new ones on "
                 "their codes.",
        "booleans": "Yes/no columns: 0 = {no}; 1 = {yes} in .sav/.dta (false/true in "
                    "Parquet/CSV).",
        "contents": "Contents", "tables": "Tables", "value_sets": "Value sets (codes)",
        "instruments": "Instruments", "key": "Key", "rows": "Rows in this run",
        "files": "Files", "column": "column", "label": "label", "type": "type",
        "meaning": "values and definition", "code": "code", "value": "value",
        "variable": ".sav/.dta variable", "flag": "warning",
        "string": "text", "integer": "integer", "number": "number",
        "boolean": "yes/no (0 = {no}; 1 = {yes})", "category": "code: {set}",
        "flags": "warnings: {set}", "only_labelled": ".sav/.dta only",
        "only_open": "Parquet/CSV only", "stata": ".dta", "pattern_columns": "Columns of this "
        "file", "shares": "The codes of {base}, and:", "scale_line":
        "{scoring} of {items} items (at least {min} answered); reverse-keyed: {reverse}; "
        "{direction}", "bands": "bands", "none": "none", "sum": "sum", "mean": "mean",
        "better": "higher is better", "worse": "lower is better", "neutral": "no direction",
        "reliability": "published alpha {alpha} ({source})", "citation": "Citation",
        "licence": "Licence", "version": "version",
        "form_line": "form {form}: {items} items, score = % of answers correct (unanswered = "
                     "incorrect)", "anchors": "anchor items: {items}",
    },
}
SET_TITLES = {
    "cohorts": Text(es="Cohortes", en="Cohorts"),
    "cohorts_pooled": Text(es="Cohortes y programa completo", en="Cohorts and whole program"),
    "waves": Text(es="Momentos", en="Waves"), "instruments": Text(es="Instrumentos",
                                                                  en="Instruments"),
    "scales": Text(es="Escalas (por instrumento)", en="Scales (per instrument)"),
    "bands": Text(es="Rangos (por instrumento y escala)", en="Bands (per instrument and scale)"),
    "items": Text(es="Ítems (por instrumento)", en="Items (per instrument)"),
    "forms": Text(es="Formas (por prueba)", en="Forms (per test)"),
    "options": Text(es="Opciones de respuesta (por instrumento)",
                    en="Response options (per instrument)"),
    "rules": Text(es="Reglas de validación", en="Validation rules"),
    "rci_categories": Text(es="Categorías del RCI", en="RCI categories"),
    "rci_reliability_sources": Text(es="Fuentes de r_xx del RCI", en="Sources of the RCI's r_xx"),
    "alpha_ci_methods": Text(es="Métodos del IC de alfa", en="Methods of the alpha CI"),
    "missing_rules": Text(es="Reglas de datos faltantes", en="Missing-data rules"),
    "models": Text(es="Modelos", en="Models"),
    "terms": Text(es="Términos (por modelo)", en="Terms (per model)"),
    "run_statuses": Text(es="Resultados de una ejecución", en="Run outcomes"),
    "reliability_flags": Text(es="Advertencias de confiabilidad", en="Reliability warnings"),
    "item_flags": Text(es="Advertencias de ítems", en="Item warnings"),
    "change_flags": Text(es="Advertencias de cambio", en="Change warnings"),
    "model_flags": Text(es="Advertencias de modelos", en="Model warnings"),
    "stages": Text(es="Etapas", en="Stages"),
    "quarantine_scopes": Text(es="Alcance de la cuarentena", en="Quarantine scopes"),
    "improvement": Text(es="Dirección de mejora", en="Direction of improvement"),
    "verdicts": Text(es="Veredictos de cambio", en="Change verdicts"),
    "verdict_families": Text(es="Familias de veredictos", en="Verdict families"),
}
SET_TITLES.update((name, Text(es=es, en=en)) for name, (es, en) in COMPETENCE_SET_TITLES.items())


def set_title(name: str, language: str) -> str:
    """A value set's title in ``language`` (every value set declares one in ``SET_TITLES``)."""
    return SET_TITLES[name].get(language)


def codebook(specs: dict[str, TableSpec], tables: dict[str, pd.DataFrame],
             sets: dict[str, ValueSet], instruments: dict, config, language: str) -> dict:
    """The machine-readable codebook of the tables written by one run.

    It is dated by day (UTC): the runs of a day that leave the tables' declarations as
    they were make the same codebook, and keep its HTML page (:func:`codebook_html`).
    """
    out = {"program": config.name, "language": language,
           "generated": dt.datetime.now(dt.UTC).date().isoformat(),
           "codes_file": f"tables/{REGISTRY_FILE}",
           "booleans": [{"code": c, "label": t.get(language)} for c, t in BOOLEAN.items()],
           "tables": {}, "value_sets": {}, "instruments": []}
    used = []
    for name, frame in tables.items():
        spec = specs[name]
        columns, labelled_only = {}, {}
        for variable, (source, column) in labelled_columns(spec, sets).items():
            entry = {"label": column.label.get(language), "type": column.type,
                     "definition": column.definition.get(language), "unit": column.unit}
            if column.values:
                entry["values"] = column.values
                used.append(column.values)
            if column.raw:
                entry["raw"] = True
            if column.stata_name:
                entry["stata_name"] = column.stata_name
            if column.pattern:
                entry["pattern"] = column.pattern.get(language)
            if variable != source:
                labelled_only[variable] = {**entry, "from": source}
            elif source in frame.columns:
                columns[variable] = entry
        for source in frame.columns:  # flags columns give .sav/.dta variables, not their own
            if spec.columns[source].type == "flags":
                used.append(spec.columns[source].values)
                columns[source] = {"label": spec.columns[source].label.get(language),
                                   "type": "flags", "values": spec.columns[source].values,
                                   "definition": spec.columns[source].definition.get(language),
                                   "unit": ""}
        columns = {c: columns[c] for c in frame.columns}
        out["tables"][name] = {"title": spec.title.get(language),
                               "description": spec.description.get(language),
                               "key": spec.key, "rows": len(frame), "columns": columns,
                               "labelled_only": labelled_only}
    for name in (n for n in sets if n in used):
        values = sets[name]
        out["value_sets"][name] = {
            "title": set_title(name, language), "within": list(values.within),
            "shares_codes_of": SPACES.get(name),
            "values": [{"code": values.codes[key], "value": list(key) if values.within else key[0],
                        "label": values.label(key, language)} for key in values.labels]}
    for inst in sorted(instruments.values(), key=lambda i: i.id):
        out["instruments"].append({
            "id": inst.id, "version": inst.version, "title": inst.title.get(language),
            "short": instrument_name(inst, language),
            "citation": inst.citation, "licence": inst.licence,
            "scales": [{"id": s.id, "label": s.label.get(language), "items": s.items,
                        "reverse": s.reverse, "scoring": s.scoring,
                        "min_items": s.required_items, "higher_is": s.higher_is,
                        "reliability": s.reliability, "reliability_source": s.reliability_source,
                        "bands": [{"id": b.id, "label": b.label.get(language), "min": b.min,
                                   "max": b.max, "range": band_range(b, language)}
                                  for b in s.bands]}
                       for s in inst.subscales],
            "forms": [{"id": f.id, "items": f.items} for f in inst.forms],
            "anchor_items": inst.anchor_items})
    return out


MARKDOWN_SPECIAL = re.compile(r"([\\`*_\[\]<>|&~])")


def md(text) -> str:
    """User or free text for Markdown: special characters escaped, on one line.

    >>> md("<script>a|b</script>")
    '\\\\<script\\\\>a\\\\|b\\\\</script\\\\>'
    """
    return MARKDOWN_SPECIAL.sub(r"\\\1", " ".join(str(text).split()))


def code(text) -> str:
    """Text as a Markdown code span (literal), fenced by more backticks than it holds."""
    text = " ".join(str(text).split()).replace("|", "¦")
    fence = "`" * (max((len(run) for run in re.findall("`+", text)), default=0) + 1)
    return f"{fence} {text} {fence}" if text.startswith("`") or text.endswith("`") \
        else f"{fence}{text}{fence}"


def slug(text: str) -> str:
    """An anchor as GitHub makes it from a heading's text (so links work there and here).

    >>> slug("scores: Puntajes (formato ancho)")
    'scores-puntajes-formato-ancho'
    """
    text = unicodedata.normalize("NFC", text).strip().lower()
    return re.sub(r"\s", "-", "".join(ch for ch in text if ch.isalnum() or ch in " -_"))


def link(heading: str) -> str:
    """A Markdown link to a heading (its plain text)."""
    return f"[{md(heading)}](#{slug(heading)})"


def headings(cb: dict) -> dict:
    """The plain text of every heading the Markdown has (for the contents and the links)."""
    words = WORDS[cb["language"]]
    return {
        "tables": words["tables"], "value_sets": words["value_sets"],
        "instruments": words["instruments"],
        **{f"table:{n}": f"{n}: {t['title']}" for n, t in cb["tables"].items()},
        **{f"set:{n}": f"{s['title']} ({n})" for n, s in cb["value_sets"].items()},
        **{f"instrument:{i['id']}": f"{i['title']} ({i['id']} {i['version']})"
           for i in cb["instruments"]},
    }


MARKDOWN = jinja2.Environment(autoescape=False, trim_blocks=True, lstrip_blocks=True,
                              undefined=jinja2.StrictUndefined)
MARKDOWN.filters["code"] = code
TEMPLATE = MARKDOWN.from_string(
    """# {{ w.codebook }}: {{ md(cb.program) }}

{{ w.generated.format(when=cb.generated) }} {{ w.intro }} {{ w.booleans.format(no=no, yes=yes) }}

## {{ w.contents }}

- {{ link(h.tables) }}
{% for name in cb.tables %}
  - {{ link(h["table:" + name]) }}
{% endfor %}
- {{ link(h.value_sets) }}
{% for name in cb.value_sets %}
  - {{ link(h["set:" + name]) }}
{% endfor %}
- {{ link(h.instruments) }}
{% for i in cb.instruments %}
  - {{ link(h["instrument:" + i.id]) }}
{% endfor %}

## {{ w.tables }}

{% for name, t in cb.tables.items() %}
### {{ md(h["table:" + name]) }}

{{ md(t.description) }} {{ w.key }}: {{ t.key | map("code") | join(", ") }}. {{ w.rows }}: {{ t.rows }}. {{ w.files }}: {{ code("tables/" + name + ".{parquet,csv,sav,dta}") }}.

| {{ w.column }} | {{ w.label }} | {{ w.type }} | {{ w.meaning }} |
|---|---|---|---|
{% for col, c in t.columns.items() if not c.get("pattern") %}
| {{ varname(col, c) }} | {{ md(c.label) }} | {{ kind(c, w.only_open if c.type == "flags" else "") }} | {{ md(c.definition) }} |
{% endfor %}
{% for col, c in t.labelled_only.items() %}
| {{ varname(col, c) }} | {{ md(c.label) }} | {{ kind(c, w.only_labelled) }} | {{ md(c.definition) }} |
{% endfor %}
{% for pattern, cols in patterns(t).items() %}
| {{ code(pattern) }} ({{ w.stata }}: {{ code(cols[0][1].stata_pattern) }}) | {{ md(cols[0][1].label_pattern) }} | {{ kind(cols[0][1], "") }} | {{ md(cols[0][1].definition) }} |

{{ w.pattern_columns }}:

| {{ w.column }} | {{ w.stata }} | {{ w.label }} |
|---|---|---|
{% for col, c in cols %}
| {{ code(col) }} | {{ code(c.stata_name) }} | {{ md(c.label) }} |
{% endfor %}
{% endfor %}

{% endfor %}
## {{ w.value_sets }}

{% for name, s in cb.value_sets.items() %}
### {{ md(h["set:" + name]) }}

{% if s.shares_codes_of %}
{{ w.shares.format(base=link(h["set:" + s.shares_codes_of]) if ("set:" + s.shares_codes_of) in h else code(s.shares_codes_of)) }}

{% endif %}
{% if name.endswith("_flags") %}
| {{ w.flag }} | {{ w.variable }} | {{ w.label }} |
|---|---|---|
{% for v in s["values"] %}
| {{ code(v.value) }} | {{ code(flag_variable(v.value)) }} | {{ md(v.label) }} |
{% endfor %}
{% else %}
| {{ w.code }} | {% for q in s.within %}{{ code(q) }} | {% endfor %}{{ w.value }} | {{ w.label }} |
|---|{% for q in s.within %}---|{% endfor %}---|---|
{% for v in own_values(name, s) %}
| {{ v.code }} | {% for part in (v.value if s.within else [v.value]) %}{{ code(part) }} | {% endfor %}{{ md(v.label) }} |
{% endfor %}
{% endif %}

{% endfor %}
## {{ w.instruments }}

{% for i in cb.instruments %}
### {{ md(h["instrument:" + i.id]) }}

{{ w.citation }}: {{ md(i.citation) }}

{{ w.licence }}: {{ md(i.licence) }}

{% for s in i.scales %}
- {{ code(s.id) }} {{ md(s.label) }}: {{ md(w.scale_line.format(scoring=w[s.scoring], items=s["items"] | length, min=s.min_items, reverse=(s.reverse | join(", ")) or w.none, direction=w[s.higher_is])) }}{% if s.bands %}; {{ w.bands }}: {% for b in s.bands %}{{ md(b.label) }} {{ md(b.range) }}{% if not loop.last %}, {% endif %}{% endfor %}{% endif %}{% if s.reliability %}; {{ md(w.reliability.format(alpha=number(s.reliability), source=s.reliability_source)) }}{% endif %}

{% endfor %}
{% for f in i.forms %}
- {{ md(w.form_line.format(form=f.id, items=f["items"] | length)) }}{% if i.anchor_items %}; {{ md(w.anchors.format(items=i.anchor_items | join(", "))) }}{% endif %}

{% endfor %}

{% endfor %}
""")


def codebook_markdown(cb: dict) -> str:
    """The codebook as Markdown (user text escaped; a contents list linking every section)."""
    from pipelines.export import variable_name

    language = cb["language"]
    w = WORDS[language]
    h = headings(cb)
    yes_no = {c["code"]: c["label"] for c in cb["booleans"]}

    def kind(c: dict, where: str) -> str:
        words = {"boolean": w["boolean"].format(no=yes_no[0], yes=yes_no[1])}
        text = words.get(c["type"], w.get(c["type"], c["type"]))
        if c.get("values"):
            target = h.get(f"set:{c['values']}")
            text = text.format(set=link(target) if target else code(c["values"]))
        return f"{text} ({where})" if where else text

    def varname(col: str, c: dict) -> str:
        stata = c.get("stata_name")
        return f"{code(col)} ({w['stata']}: {code(stata)})" if stata else code(col)

    def patterns(t: dict) -> dict:
        grouped: dict[str, list] = {}
        for col, c in t["columns"].items():
            if c.get("pattern"):
                grouped.setdefault(c["pattern"], []).append((col, {
                    **c, "stata_pattern": STATA_PATTERN[language],
                    "label_pattern": PATTERN_LABEL[language]}))
        return grouped

    def own_values(name: str, s: dict) -> list:
        base = cb["value_sets"].get(s["shares_codes_of"] or "", {"values": []})
        shared = {v["code"] for v in base["values"]}
        return [v for v in s["values"] if v["code"] not in shared]

    return TEMPLATE.render(cb=cb, w=w, h=h, md=md, code=code, link=link, kind=kind, varname=varname,
                           patterns=patterns, own_values=own_values,
                           flag_variable=lambda flag: f"flag_{variable_name(flag)}",
                           number=lambda value: number_text(value, language),
                           no=yes_no[0], yes=yes_no[1])


STATA_PATTERN = {"es": "s<código de escala>_w<código de momento>",
                 "en": "s<scale code>_w<wave code>"}
PATTERN_LABEL = {"es": "<escala>, <momento>", "en": "<scale>, <wave>"}
STYLE = ("body{font-family:system-ui,sans-serif;max-width:70rem;margin:2rem auto;padding:0 1rem}"
         "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:.25rem .5rem;"
         "vertical-align:top}code{background:#f4f4f4}")


def codebook_html(markdown_text: str, title: str, language: str,
                  previous: Path | None = None) -> str:
    """The codebook as a self-contained HTML page.

    Raw HTML in the Markdown is shown as text, never passed through, and every
    heading gets the id its contents link uses. The page ends with a stamp: a
    digest of what it was made from (the Markdown, title, language, style, this
    module's page code and the Markdown parser's version) and of the page itself.
    When the ``previous`` page has the same stamp and is unaltered, it is that
    page: its text is returned without parsing the Markdown again.

    Examples
    --------
    >>> page = codebook_html("# Codebook", "Codebook: demo", "en")
    >>> '<h1 id="codebook">Codebook</h1>' in page
    True
    """
    import markdown_it

    made_from = "\0".join([markdown_text, title, language, STYLE, markdown_it.__version__,
                           inspect.getsource(codebook_html), inspect.getsource(html_page)])
    key = sha256(made_from.encode()).hexdigest()
    kept = stamped_page(previous, key)
    if kept is not None:
        return kept
    page = html_page(markdown_text, title, language)
    return f"{page}\n<!-- capacitar codebook {key} {sha256(page.encode()).hexdigest()} -->\n"


def stamped_page(path: Path | None, key: str) -> str | None:
    """The text of the page at ``path`` if its stamp names ``key`` and the page is unaltered."""
    if path is None or not path.is_file() or path.is_symlink():
        return None
    text = path.read_text(encoding="utf-8", errors="replace")
    page, _, stamp = text.rstrip("\n").rpartition("\n")
    if stamp == f"<!-- capacitar codebook {key} {sha256(page.encode()).hexdigest()} -->":
        return text
    return None


def html_page(markdown_text: str, title: str, language: str) -> str:
    """The Markdown as HTML with heading ids, raw HTML shown as text."""
    from markdown_it import MarkdownIt

    parser = MarkdownIt("commonmark", {"html": False}).enable("table")
    tokens = parser.parse(markdown_text)
    for opening, inline in zip(tokens, tokens[1:]):
        if opening.type == "heading_open":
            opening.attrSet("id", slug("".join(child.content for child in inline.children)))
    body = parser.renderer.render(tokens, parser.options, {})
    return (f'<!DOCTYPE html><html lang="{escape(language)}"><head><meta charset="utf-8">'
            f"<title>{escape(title)}</title><style>{STYLE}</style></head>"
            f"<body>{body}</body></html>")


R_SCRIPT = """# Open capacitar's outputs in R with haven alone (arrow is optional).
# Run from the outputs folder: setwd() to it first.
library(haven)
scores <- read_sav("tables/scores.sav")
scores <- as_factor(scores)          # every labelled code becomes a factor with its label
str(scores)
change <- as_factor(read_sav("tables/change.sav"))
wide <- read_dta("tables/scores_wide.dta")   # Stata file: short names, long names in labels
if (requireNamespace("arrow", quietly = TRUE)) {
  # The same table with text ids instead of codes, faster for big tables.
  change_ids <- arrow::read_parquet("tables/change.parquet")
}
# All runs accumulated: DBI::dbConnect(duckdb::duckdb(), "warehouse.duckdb", read_only = TRUE)
cat("capacitar tables loaded:", nrow(scores), "scores,", nrow(change), "change rows\\n")
"""

SPSS_SCRIPT = """* Open capacitar's outputs in SPSS or PSPP. Change the folder path first.
CD '{folder}'.
GET FILE='tables/scores.sav'.
DISPLAY DICTIONARY.
FREQUENCIES VARIABLES=cohort wave instrument.
CROSSTABS /TABLES=scale BY instrument.
GET FILE='tables/change.sav'.
DESCRIPTIVES VARIABLES=n_pairs mean_diff d_z.
"""


def codebook_texts(out: Path, specs: dict[str, TableSpec], tables: dict[str, pd.DataFrame],
                   sets: dict[str, ValueSet], instruments: dict, config) -> dict[str, str]:
    """codebook.{md,html,json} and the load scripts for R and SPSS: file name -> text.

    The caller stages them beside the tables (they are published with them).
    """
    language = config.language
    book = codebook(specs, tables, sets, instruments, config, language)
    markdown = codebook_markdown(book)
    title = f"{WORDS[language]['codebook']}: {config.name}"
    return {"codebook.md": markdown,
            "codebook.html": codebook_html(markdown, title, language, out / "codebook.html"),
            "load_in_R.R": R_SCRIPT,
            "load_in_SPSS.sps": SPSS_SCRIPT.format(folder=str(out).replace("'", "''")),
            "codebook.json": json_text(book)}
