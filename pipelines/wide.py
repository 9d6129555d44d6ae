"""Scores in wide form (one row per participant) for SPSS users, with its documentation."""

from __future__ import annotations

import pandas as pd

from instruments.model import Text
from pipelines.schema import Column, TableSpec, load_schema


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


def scores_wide_spec(frame: pd.DataFrame, instruments: dict, config) -> TableSpec:
    """Documentation of the wide table's generated columns."""
    base = load_schema().tables["scores"]
    waves = {w.id: w.label for w in config.waves}
    columns = {"cohort": base.columns["cohort"], "participant": base.columns["participant"]}
    for name in frame.columns[2:]:
        inst_id = next(i for i in sorted(instruments, key=len, reverse=True)
                       if name.startswith(i + "_"))
        rest = name[len(inst_id) + 1:]
        wave = next(w for w in sorted(waves, key=len, reverse=True) if rest.endswith("_" + w))
        scale = rest[: -len(wave) - 1]
        inst = instruments[inst_id]
        sub = next((s.label for s in inst.subscales if s.id == scale), Text(es=scale, en=scale))
        label = Text(**{lang: f"{inst.title.get(lang)}: {sub.get(lang)}, "
                              f"{waves[wave].get(lang) or wave}" for lang in ("es", "en")})
        columns[name] = Column(type="number", label=label, definition=base.columns["score"].definition)
    return TableSpec(title=Text(es="Puntajes (formato ancho)", en="Scores (wide)"),
                     description=Text(es="Una fila por participante; una columna por escala y momento.",
                                      en="One row per participant; one column per scale and wave."),
                     key=["cohort", "participant"], scope="cohort", columns=columns)
