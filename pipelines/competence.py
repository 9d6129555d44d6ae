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

RATING_COLUMNS = ["cohort", "wave", "participant", "rater", "instrument", "item", "domain",
                  "value"]
TABLES = ("interrater", "raters", "competence_levels")
RCI_RELIABILITY = "rated_rci_reliability"  # key of the RCI reliabilities among pooled parts
RCI_SOURCE = "interrater_score_reliability"


def rating_instruments(instruments: dict[str, Instrument]) -> dict[str, Instrument]:
    """The instruments of kind ``rating``."""
    return {i: inst for i, inst in instruments.items() if inst.kind == "rating"}


def repeated_ratings(frame: pd.DataFrame) -> pd.Series:
    """Rows of a rater rating one participant more than once at one wave (all of them).

    >>> frame = pd.DataFrame({"participant": ["P1", "P1", "P1"], "wave": ["pre"] * 3,
    ...                       "instrument": ["x"] * 3, "rater": ["R1", "R1", "R2"]})
    >>> repeated_ratings(frame).tolist()
    [True, True, False]
    """
    return frame.duplicated(["participant", "wave", "instrument", "rater"], keep=False)


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
    from pipelines.analysis.interrater import rated_scores

    ratings = ratings_frame({inst.id: frame}, {inst.id: inst})
    keys = ["cohort", "instrument", "participant", "wave", "scale"]
    scores = rated_scores(ratings).merge(items_rated(ratings), on=keys, how="left")
    totals = {sub.id: len(sub.items) for sub in inst.subscales}
    scores["items_answered"] = scores["items_answered"].fillna(0).astype("int64")
    scores["items_total"] = scores["scale"].map(totals).astype("int64")
    scores["prorated"] = False
    scores["band"] = pd.Series(np.nan, index=scores.index).astype("str")
    return scores[columns]


def competence_tables(valid: dict[str, pd.DataFrame], instruments: dict[str, Instrument]
                      ) -> dict:
    """The ``interrater``, ``raters`` and ``competence_levels`` tables, and under
    :data:`RCI_RELIABILITY` the reliability of each rated scale for the RCI:
    ``{(instrument, scale): (reliability, source)}``. Empty without rating instruments."""
    rating = rating_instruments(instruments)
    if not rating:
        return {}
    from pipelines.analysis.interrater import (
        interrater_table,
        level_distribution,
        raters_table,
        score_reliability,
    )

    ratings = ratings_frame(valid, instruments)
    return {
        "interrater": interrater_table(ratings),
        "raters": raters_table(ratings),
        "competence_levels": level_distribution(ratings, **level_cuts(rating)),
        RCI_RELIABILITY: rci_reliabilities(score_reliability, ratings, rating),
    }


def level_cuts(rating: dict[str, Instrument]) -> dict:
    """The harmful and helpful levels of each rating instrument, for the level distribution."""
    return {"harmful_to": {i: inst.harmful_to for i, inst in rating.items()},
            "helpful_from": {i: inst.helpful_from for i, inst in rating.items()}}


def rci_reliabilities(score_reliability, ratings: pd.DataFrame,
                      rating: dict[str, Instrument]) -> dict:
    """(instrument, scale) -> (reliability of the rated score, source) for the RCI."""
    found = {}
    for inst_id, inst in rating.items():
        mine = ratings[ratings["instrument"] == inst_id]
        for sub in inst.subscales:
            found[(inst_id, sub.id)] = (score_reliability(mine, sub.id), RCI_SOURCE)
    return found
