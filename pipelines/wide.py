"""Scores in wide form (one row per participant) for SPSS and Stata users, with its documentation."""

from __future__ import annotations

import pandas as pd

from instruments.model import Text
from pipelines.codes import ValueSet
from pipelines.schema import Column, TableSpec, load_schema

PATTERN = Text(es="<instrumento>_<escala>_<momento>", en="<instrument>_<scale>_<wave>")


def scores_wide(scores: pd.DataFrame, wave_order: list[str]) -> pd.DataFrame:
    """One row per cohort x participant; a column per instrument_scale_wave.

    Examples
    --------
    >>> s = pd.DataFrame({"cohort": "c", "participant": "P1", "instrument": "stss",
    ...                   "scale": "total", "wave": ["pre", "post"], "score": [40.0, 35.0]})
    >>> scores_wide(s, ["pre", "post"]).columns.tolist()
    ['cohort', 'participant', 'stss_total_pre', 'stss_total_post']
    """
    if scores.empty:
        return pd.DataFrame(columns=["cohort", "participant"])
    wide = scores.pivot_table(index=["cohort", "participant"],
                              columns=["instrument", "scale", "wave"], values="score",
                              aggfunc="first")
    order = {w: i for i, w in enumerate(wave_order)}
    columns = sorted(wide.columns, key=lambda c: (c[0], c[1], order.get(c[2], 99)))
    wide = wide[columns]
    wide.columns = [f"{i}_{s}_{w}" for i, s, w in columns]
    return wide.reset_index()


def scores_wide_spec(frame: pd.DataFrame, sets: dict[str, ValueSet]) -> TableSpec:
    """Documentation of the wide table: one pattern for its generated columns.

    Each score column is named ``<instrument>_<scale>_<wave>`` (Parquet, CSV,
    .sav) and ``s<scale code>_w<wave code>`` in .dta (Stata names have at most
    32 characters; the codes are the scale's and the wave's, stable across
    runs), labelled with the scale and the wave.
    """
    base = load_schema().tables["scores"]
    scales, waves = sets["scales"], sets["waves"]
    triples = {f"{i}_{s}_{w}": (i, s, w) for i, s in scales.labels for (w,) in waves.labels}
    columns = {"cohort": base.columns["cohort"], "participant": base.columns["participant"]}
    definition = Text(**{lang: f"{base.columns['score'].definition.get(lang)} "
                               f"{DEFINITION.get(lang)}" for lang in ("es", "en")})
    for name in frame.columns[2:]:
        inst, scale, wave = triples[name]
        label = Text(**{lang: f"{scales.label((inst, scale), lang)}, {waves.label((wave,), lang)}"
                        for lang in ("es", "en")})
        columns[name] = Column(
            type="number", label=label, definition=definition, pattern=PATTERN,
            stata_name=f"s{scales.codes[(inst, scale)]}_w{waves.codes[(wave,)]}")
    return TableSpec(title=Text(es="Puntajes (formato ancho)", en="Scores (wide)"),
                     description=Text(es="Una fila por participante; una columna por escala y "
                                         "momento.",
                                      en="One row per participant; one column per scale and "
                                         "wave."),
                     key=["cohort", "participant"], scope="cohort", columns=columns)


DEFINITION = Text(
    es="Una columna por escala y momento: <instrumento>_<escala>_<momento> en Parquet, CSV y "
       ".sav; s<código de escala>_w<código de momento> en .dta (los nombres de Stata tienen "
       "como máximo 32 caracteres), con el nombre largo al inicio de la etiqueta.",
    en="One column per scale and wave: <instrument>_<scale>_<wave> in Parquet, CSV and .sav; "
       "s<scale code>_w<wave code> in .dta (Stata names have at most 32 characters), with the "
       "long name at the start of its label.")
