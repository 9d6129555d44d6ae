"""Observer-rated competencies in the flow: the ratings frame, rated scores and the tables.

A rating instrument's valid rows (one per rater x participant x wave, see
``instruments/rating.py``) become a long ``ratings`` frame, one row per rating of one
item. The statistics are :mod:`pipelines.analysis.interrater`'s; this module only
shapes its inputs and outputs for the pipeline:

- :func:`rated_score_rows`: scores-table rows of a rating instrument (a participant's
  score at a wave is the mean over raters of each rater's scale score), so change,
  verdicts and meta-analysis treat them as any other scale;
- :func:`competence_tables`: the ``interrater``, ``raters`` and ``competence_levels``
  tables and the reliability the Reliable Change Index of each rated scale uses.

A program without a rating instrument pays nothing: every function returns at once.

Examples
--------
>>> import pandas as pd
>>> from instruments import load_builtin
>>> tool = load_builtin()["tic_roleplay"]
>>> frame = pd.DataFrame({"cohort": ["c"] * 2, "wave": ["pre"] * 2, "participant": ["P1"] * 2,
...                       "rater": ["R1", "R2"], **{i: [3.0, 2.0] for i in tool.item_ids}})
>>> long = ratings_frame({"tic_roleplay": frame}, {"tic_roleplay": tool})
>>> len(long), sorted(long["domain"].unique())
(18, ['collaboration', 'engagement', 'safety'])
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from instruments import Instrument
from instruments.rating import TOTAL, domains
from pipelines.analysis.interrater import (
    RATING_COLUMNS,
    interrater_table,
    level_distribution,
    rated_scores,
    raters_table,
    score_reliability,
)
from pipelines.schema import POOLED

TABLES = ("interrater", "raters", "competence_levels")
RCI_RELIABILITY = "rated_rci_reliability"  # key of the RCI reliabilities among pooled parts
RCI_SOURCE = "pooled_interrater_icc"  # labelled in pipelines/schema.py


def rating_instruments(instruments: dict[str, Instrument]) -> dict[str, Instrument]:
    """The instruments of kind ``rating``."""
    return {i: inst for i, inst in instruments.items() if inst.kind == "rating"}


def ratings_frame(valid: dict[str, pd.DataFrame], instruments: dict[str, Instrument]
                  ) -> pd.DataFrame:
    """One row per rating of one item, from the valid rows of every rating instrument.

    ``value`` is the level code as a float (NaN: the item was not rated).
    """
    parts = []
    for inst_id, inst in rating_instruments(instruments).items():
        frame = valid.get(inst_id)
        if frame is None or frame.empty:
            continue
        long = frame.melt(id_vars=["cohort", "wave", "participant", "rater"],
                          value_vars=inst.item_ids, var_name="item", value_name="value")
        long["instrument"] = inst_id
        long["domain"] = long["item"].map(domains(inst))
        long["value"] = pd.to_numeric(long["value"], errors="coerce").astype(float)
        parts.append(long[RATING_COLUMNS])
    if not parts:
        return pd.DataFrame({c: pd.Series(dtype=float if c == "value" else "str")
                             for c in RATING_COLUMNS})
    return pd.concat(parts, ignore_index=True)


def items_rated(ratings: pd.DataFrame) -> pd.DataFrame:
    """Per participant x wave x scale (each domain and the total): items any rater rated."""
    keys = ["cohort", "instrument", "participant", "wave"]
    rated = ratings[ratings["value"].notna()].drop_duplicates([*keys, "item"])
    by_domain = rated.groupby([*keys, "domain"]).size().rename("items_answered").reset_index()
    total = rated.groupby(keys).size().rename("items_answered").reset_index()
    return pd.concat([by_domain.rename(columns={"domain": "scale"}), total.assign(scale=TOTAL)],
                     ignore_index=True)


def rated_score_rows(frame: pd.DataFrame, inst: Instrument, columns: list[str]) -> pd.DataFrame:
    """Scores-table rows (``columns``) of one rating instrument's valid rows.

    ``score`` is :func:`interrater.rated_scores`'s (the mean over raters of each
    rater's scale score); ``items_answered`` counts the items any rater rated,
    ``prorated`` is False and ``band`` empty (rated scales have no cut-offs).
    """
    ratings = ratings_frame({inst.id: frame}, {inst.id: inst})
    keys = ["cohort", "instrument", "participant", "wave", "scale"]
    scores = rated_scores(ratings).merge(items_rated(ratings), on=keys, how="left")
    totals = {sub.id: len(sub.items) for sub in inst.subscales}
    scores["items_answered"] = scores["items_answered"].fillna(0).astype("int64")
    scores["items_total"] = scores["scale"].map(totals).astype("int64")
    scores["prorated"] = False
    scores["band"] = pd.Series(np.nan, index=scores.index).astype("str")
    return scores[columns]


def competence_tables(valid: dict[str, pd.DataFrame], instruments: dict[str, Instrument],
                      waves: list[str]) -> dict:
    """The ``interrater``, ``raters`` and ``competence_levels`` tables, and under
    :data:`RCI_RELIABILITY` the reliability of each rated scale for the RCI.

    Empty without rating instruments (nothing is computed). ``waves``: the program's
    waves in order (a rater's drift is from the first to the last wave they rated).
    """
    rating = rating_instruments(instruments)
    if not rating:
        return {}
    ratings = ratings_frame(valid, instruments)
    interrater = interrater_table(ratings)
    levels = [level_distribution(ratings[ratings["instrument"] == inst_id],
                                 harmful_below=inst.harmful_to + 1,
                                 helpful_from=inst.helpful_from,
                                 levels=[o.code for o in inst.response_options])
              for inst_id, inst in rating.items()]
    return {
        "interrater": interrater,
        "raters": raters_table(ratings, waves=waves),
        "competence_levels": pd.concat(levels, ignore_index=True),
        RCI_RELIABILITY: rci_reliabilities(score_reliability(ratings, interrater)),
    }


def rci_reliabilities(reliability: pd.DataFrame) -> dict:
    """(instrument, scale) -> (reliability, source) of the rated scores, program-wide.

    The RCI uses program-wide references (as alpha for questionnaires): the
    pooled ICC(1), stepped up to the typical number of raters of a participant.
    """
    pooled = reliability[reliability["cohort"] == POOLED]
    return {(i, s): (float(r), RCI_SOURCE)
            for i, s, r in zip(pooled["instrument"], pooled["scale"], pooled["reliability"])}


# --- labels of the tables' categories (value sets of pipelines/schema.py) ------------------
def _texts(pairs: dict[str, tuple[str, str]]) -> list:
    from instruments.model import Text

    return [(key, Text(es=es, en=en)) for key, (es, en) in pairs.items()]


MEASURE_KINDS = {"item": ("ítem", "item"), "domain": ("dominio", "domain"),
                 "total": ("total", "total")}
AGREEMENT_LEVELS = {  # Koo & Li (2016) bands, computed in pipelines/analysis/interrater.py
    "poor": ("pobre (< 0,50)", "poor (< 0.50)"),
    "moderate": ("moderado (0,50-0,75)", "moderate (0.50-0.75)"),
    "good": ("bueno (0,75-0,90)", "good (0.75-0.90)"),
    "excellent": ("excelente (>= 0,90)", "excellent (>= 0.90)"),
    "not_estimable": ("no estimable (menos de 10 personas calificadas dos veces o más)",
                      "not estimable (fewer than 10 people rated twice or more)")}
DIRECTIONS = {
    "harsh": ("más severo que los demás (fuera de la banda de calibración)",
              "harsher than the others (outside the calibration band)"),
    "lenient": ("más benévolo que los demás (fuera de la banda de calibración)",
                "more lenient than the others (outside the calibration band)"),
    "within_band": ("dentro de la banda de calibración", "within the calibration band"),
    "not_estimable": ("no estimable (pocas personas compartidas con otros evaluadores)",
                      "not estimable (few people shared with other raters)")}
ICC_FORMS = {
    "icc1": ("ICC(1): un evaluador, modelo de una vía", "ICC(1): one rater, one-way model"),
    "icc2": ("ICC(A,1): un evaluador, dos vías, acuerdo absoluto",
             "ICC(A,1): one rater, two-way, absolute agreement"),
    "icc3": ("ICC(C,1): un evaluador, dos vías, consistencia",
             "ICC(C,1): one rater, two-way, consistency"),
    "icc1k": ("ICC(k): media de k evaluadores, una vía", "ICC(k): mean of k raters, one-way"),
    "icc2k": ("ICC(A,k): media de k evaluadores, dos vías, acuerdo absoluto",
              "ICC(A,k): mean of k raters, two-way, absolute agreement"),
    "icc3k": ("ICC(C,k): media de k evaluadores, dos vías, consistencia",
              "ICC(C,k): mean of k raters, two-way, consistency")}
ALPHA_METRICS = {"ordinal": ("ordinal (ítems)", "ordinal (items)"),
                 "interval": ("de intervalo (dominios y total)", "interval (domains and total)")}


def value_sets(instruments: dict[str, Instrument], waves: list) -> dict[str, list]:
    """The value sets of the competence tables' categories, for ``schema.value_sets``.

    ``measures``: every rating instrument's items, domains and total (within the instrument);
    ``waves_pooled``: the waves and ``ALL`` (all waves), sharing the waves' codes.
    """
    from instruments.model import Text
    from pipelines.schema import instrument_name

    measures = []
    for inst in rating_instruments(instruments).values():
        def name(lang, inst=inst):
            return instrument_name(inst, lang)
        measures += [((inst.id, item.id), Text(
            es=f"{name('es')} {item.id}: {item.text.get('es')}".rstrip(": "),
            en=f"{name('en')} {item.id}: {item.text.get('en')}".rstrip(": ")))
            for item in inst.items]
        measures += [((inst.id, sub.id), Text(es=f"{name('es')}: {sub.label.get('es')}",
                                              en=f"{name('en')}: {sub.label.get('en')}"))
                     for sub in inst.subscales]
    return {"measure_kinds": _texts(MEASURE_KINDS), "measures": measures,
            "agreement_levels": _texts(AGREEMENT_LEVELS), "rater_directions": _texts(DIRECTIONS),
            "icc_forms": _texts(ICC_FORMS), "alpha_metrics": _texts(ALPHA_METRICS),
            "waves_pooled": waves + [(POOLED, Text(es="Todos los momentos", en="All waves"))]}


SET_TITLES = {  # the codebook's titles of the value sets above
    "measure_kinds": ("Tipos de medida", "Measure kinds"),
    "measures": ("Medidas de instrumentos de calificación (por instrumento)",
                 "Measures of rating instruments (per instrument)"),
    "agreement_levels": ("Niveles de acuerdo entre evaluadores", "Inter-rater agreement levels"),
    "rater_directions": ("Calibración de evaluadores", "Rater calibration"),
    "icc_forms": ("Formas del ICC", "ICC forms"),
    "alpha_metrics": ("Métricas del alfa de Krippendorff", "Krippendorff's alpha metrics"),
    "waves_pooled": ("Momentos y todos los momentos", "Waves and all waves")}
