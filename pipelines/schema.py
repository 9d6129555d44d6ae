"""The documented result tables (``schema.yaml``) and the value labels of their codes.

Exports, the codebook and the tests read the same declarations, so a column
cannot reach an output without a label and a definition.

Examples
--------
>>> schema = load_schema()
>>> schema.tables["scores"].columns["score"].type
'number'
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict

from instruments.loader import read_yaml_model
from instruments.model import Instrument, Text

SCHEMA_FILE = Path(__file__).parent / "schema.yaml"
POOLED = "ALL"


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Column(Strict):
    """One documented column."""

    type: Literal["string", "integer", "number", "boolean", "category"]
    label: Text
    values: str | None = None
    unit: str = ""
    definition: Text = Text()


class TableSpec(Strict):
    """One documented result table."""

    title: Text
    description: Text
    key: list[str]
    scope: str | None = None
    columns: dict[str, Column]


class Schema(Strict):
    tables: dict[str, TableSpec]


@cache
def load_schema() -> Schema:
    """The result-table declarations shipped with capacitar."""
    return read_yaml_model(SCHEMA_FILE, Schema)


STAGES = {"ingest": Text(es="lectura", en="ingest"),
          "contracts": Text(es="contratos", en="contracts")}
QUARANTINE_SCOPES = {"row": Text(es="fila entera", en="whole row"),
                     "cell": Text(es="una respuesta", en="one answer")}
VERDICTS = {"improved": Text(es="mejoró", en="improved"),
            "worsened": Text(es="empeoró", en="got worse"),
            "no_clear_change": Text(es="sin cambio claro", en="no clear change"),
            "not_estimable": Text(es="no estimable", en="not estimable")}
IMPROVEMENT = {"higher": Text(es="más alto es mejor", en="higher is better"),
               "lower": Text(es="más bajo es mejor", en="lower is better"),
               "": Text(es="sin dirección", en="no direction")}


def value_sets(config, instruments: dict[str, Instrument], rules: dict) -> dict[str, list]:
    """Ordered (value, Text label) pairs per value set; order = stable numeric codes.

    Codes follow declaration order (cohorts and waves as in program.yaml,
    instruments by id, scales and bands as in each instrument), so a cohort
    keeps its code across runs as long as program.yaml lists it in place.
    """
    ordered = sorted(instruments.values(), key=lambda i: i.id)
    scales, bands = {}, {}
    for inst in ordered:
        for sub in inst.subscales:
            scales.setdefault(sub.id, sub.label)
            for band in sub.bands:
                bands.setdefault(band.id, band.label)
        if inst.kind == "knowledge":
            scales.setdefault("percent_correct", Text(es="% correctas", en="% correct"))
            scales.setdefault("anchor_percent_correct",
                              Text(es="% correctas (ítems ancla)", en="% correct (anchor items)"))
            if len(inst.forms) > 1:
                scales.setdefault("equated_percent_correct",
                                  Text(es="% correctas equiparado (forma de referencia)",
                                       en="% correct, equated (reference form)"))
    cohorts = [(c.id, Text(es=c.site, en=c.site)) for c in config.cohorts]
    return {
        "cohorts": cohorts,
        "cohorts_pooled": cohorts + [(POOLED, Text(es="Todo el programa", en="Whole program"))],
        "waves": [(w.id, w.label if (w.label.es or w.label.en) else Text(es=w.id, en=w.id))
                  for w in sorted(config.waves, key=lambda w: w.order)],
        "instruments": [(i.id, i.title) for i in ordered],
        "scales": list(scales.items()),
        "bands": list(bands.items()),
        "rules": [(rule, Text(**text)) for rule, text in rules.items()],
        "stages": list(STAGES.items()),
        "quarantine_scopes": list(QUARANTINE_SCOPES.items()),
        "improvement": list(IMPROVEMENT.items()),
        "verdicts": list(VERDICTS.items()),
    }
