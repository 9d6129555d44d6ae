"""The codebook (JSON, Markdown, HTML) generated from the same declarations as the exports.

Every table and column of the outputs with its label, type, allowed values
(with the numeric codes used in .sav/.dta), definition, plus each
instrument's citation and licence note.
"""

from __future__ import annotations

import datetime as dt

import jinja2
import pandas as pd

from pipelines.schema import TableSpec


def codebook(specs: dict[str, TableSpec], tables: dict[str, pd.DataFrame], sets: dict,
             instruments: dict, config, language: str) -> dict:
    """The machine-readable codebook of the tables written by one run."""
    out = {"program": config.name, "language": language,
           "generated": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
           "tables": {}, "instruments": []}
    for name, frame in tables.items():
        spec = specs[name]
        columns = {}
        for col in frame.columns:
            c = spec.columns[col]
            entry = {"label": c.label.get(language), "type": c.type,
                     "definition": c.definition.get(language), "unit": c.unit}
            if c.type == "category":
                entry["values"] = [{"code": i, "value": v, "label": t.get(language)}
                                   for i, (v, t) in enumerate(sets.get(c.values or "", []), 1)]
            if c.type == "boolean":
                entry["values"] = [{"code": 0, "value": False}, {"code": 1, "value": True}]
            columns[col] = entry
        out["tables"][name] = {"title": spec.title.get(language),
                               "description": spec.description.get(language),
                               "key": spec.key, "rows": len(frame), "columns": columns}
    for inst in sorted(instruments.values(), key=lambda i: i.id):
        out["instruments"].append({
            "id": inst.id, "version": inst.version, "title": inst.title.get(language),
            "citation": inst.citation, "licence": inst.licence,
            "scales": [{"id": s.id, "label": s.label.get(language), "items": s.items,
                        "reverse": s.reverse, "scoring": s.scoring,
                        "min_items": s.required_items, "higher_is": s.higher_is,
                        "bands": [b.model_dump(mode="json") for b in s.bands]}
                       for s in inst.subscales]})
    return out


TEMPLATE = jinja2.Environment(autoescape=False, trim_blocks=True, lstrip_blocks=True).from_string(
    """# Codebook: {{ cb.program }}

Generated {{ cb.generated }} by capacitar. Categories are stored as numeric codes with value
labels in `.sav`/`.dta`, and as text in Parquet/CSV/DuckDB.

{% for name, t in cb.tables.items() %}
## `{{ name }}`: {{ t.title }}

{{ t.description }} Key: {{ t.key | join(", ") }}. Rows in this run: {{ t.rows }}.

| column | label | type | values / definition |
|---|---|---|---|
{% for col, c in t.columns.items() %}
| `{{ col }}` | {{ c.label }} | {{ c.type }} | {% if c.get("values") %}{% for v in c.get("values") %}{{ v.code }} = {{ v.value }}{% if v.label and v.label != v.value %} ({{ v.label }}){% endif %}{% if not loop.last %}; {% endif %}{% endfor %}{% endif %}{% if c.definition %} {{ c.definition }}{% endif %} |
{% endfor %}

{% endfor %}
## Instruments

{% for i in cb.instruments %}
### {{ i.title }} (`{{ i.id }}` {{ i.version }})

Citation: {{ i.citation }}

Licence: {{ i.licence }}

{% for s in i.scales %}
- `{{ s.id }}` {{ s.label }}: {{ s.scoring }} of {{ s["items"] | length }} items (min {{ s.min_items }} answered), reverse-keyed: {{ s.reverse | join(", ") or "none" }}; higher is {{ s.higher_is }}{% if s.bands %}; bands: {% for b in s.bands %}{{ b.id }} {{ b.min if b.min is not none else "" }}-{{ b.max if b.max is not none else "" }}{% if not loop.last %}, {% endif %}{% endfor %}{% endif %}

{% endfor %}
{% endfor %}
""")


def codebook_markdown(cb: dict) -> str:
    """The codebook as Markdown."""
    return TEMPLATE.render(cb=cb)


def codebook_html(markdown_text: str, title: str) -> str:
    """The codebook as a self-contained HTML page (Markdown rendered with markdown-it)."""
    from markdown_it import MarkdownIt

    body = MarkdownIt("commonmark").enable("table").render(markdown_text)
    style = ("body{font-family:system-ui,sans-serif;max-width:70rem;margin:2rem auto;padding:0 1rem}"
             "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:.25rem .5rem;"
             "vertical-align:top}code{background:#f4f4f4}")
    return (f'<!DOCTYPE html><html><head><meta charset="utf-8"><title>{title}</title>'
            f"<style>{style}</style></head><body>{body}</body></html>")


R_SCRIPT = """# Open capacitar's outputs in R. Run from this folder (setwd to it first).
library(haven)       # .sav with variable and value labels
scores <- read_sav("tables/scores.sav")
scores$cohort <- as_factor(scores$cohort)    # labelled codes -> factors
str(scores)
change <- read_sav("tables/change.sav")
# The same tables without labels, faster: arrow::read_parquet("tables/change.parquet")
# All runs accumulated: DBI::dbConnect(duckdb::duckdb(), "warehouse.duckdb", read_only = TRUE)
"""

SPSS_SCRIPT = """* Open capacitar's outputs in SPSS or PSPP. Change the folder path first.
CD '{folder}'.
GET FILE='tables/scores.sav'.
DISPLAY DICTIONARY.
FREQUENCIES VARIABLES=cohort wave instrument.
GET FILE='tables/change.sav'.
DESCRIPTIVES VARIABLES=n_pairs mean_diff d_z.
"""
