"""Scoring of each built-in instrument against hand-computed cases."""

import math

import numpy as np
import pandas as pd
import pytest

from instruments import load_builtin
from pipelines.analysis.scoring import score_knowledge, score_scale

KEYS = {"cohort": "c", "participant": "p", "wave": "pre"}


@pytest.fixture(scope="module")
def builtin():
    return load_builtin()


def one_row(inst, answers: dict) -> pd.DataFrame:
    row = {**KEYS, "instrument": inst.id, **{i: np.nan for i in inst.item_ids}}
    row.update(answers)
    return pd.DataFrame([row])


def scores_of(inst, answers) -> dict:
    table = score_scale(one_row(inst, answers), inst)
    return {r.scale: r for r in table.itertuples()}


def test_proqol_all_never(builtin):
    pq = builtin["proqol"]
    s = scores_of(pq, {i: 1 for i in pq.item_ids})
    assert s["compassion_satisfaction"].score == 10 and s["compassion_satisfaction"].band == "low"
    # burnout: five reverse-keyed items become 5, five stay 1
    assert s["burnout"].score == 5 * 5 + 5 * 1 and s["burnout"].band == "moderate"
    assert s["secondary_traumatic_stress"].score == 10


def test_proqol_all_very_often(builtin):
    pq = builtin["proqol"]
    s = scores_of(pq, {i: 5 for i in pq.item_ids})
    assert s["compassion_satisfaction"].score == 50 and s["compassion_satisfaction"].band == "high"
    assert s["burnout"].score == 30
    assert s["secondary_traumatic_stress"].band == "high"


@pytest.mark.parametrize("total, band", [(22, "low"), (23, "moderate"), (41, "moderate"), (42, "high")])
def test_proqol_band_edges(builtin, total, band):
    assert builtin["proqol"].subscale("compassion_satisfaction").band_of(total) == band


def test_proqol_proration_and_minimum(builtin):
    pq = builtin["proqol"]
    cs = pq.subscale("compassion_satisfaction").items
    # 9 of 10 answered, each 3: prorated to 3 x 10 = 30
    s = scores_of(pq, {i: 3 for i in cs[:9]})
    row = s["compassion_satisfaction"]
    assert row.score == 30 and row.items_answered == 9 and row.prorated
    # answers 4,4,4,4,4,4,4,5 on 8 items: mean 4.125 x 10 = 41.25 (min_items 8 reached)
    s = scores_of(pq, {**{i: 4 for i in cs[:7]}, cs[7]: 5})
    assert math.isclose(s["compassion_satisfaction"].score, 41.25)
    # 7 answered: below the 8-item minimum, no score
    s = scores_of(pq, {i: 3 for i in cs[:7]})
    assert math.isnan(s["compassion_satisfaction"].score)
    assert s["compassion_satisfaction"].items_answered == 7


def test_reverse_key_uses_the_response_range(builtin):
    pq = builtin["proqol"]
    bo = pq.subscale("burnout")
    # reverse items answered 2 -> 4 each; the other five answered 3
    answers = {i: (2 if i in bo.reverse else 3) for i in bo.items}
    assert scores_of(pq, answers)["burnout"].score == 5 * 4 + 5 * 3


def test_omshc_all_agree(builtin):
    om = builtin["omshc"]
    s = scores_of(om, {i: 4 for i in om.item_ids})
    assert s["total"].score == 10 * 4 + 5 * 2  # items 2, 6, 7, 8, 14 reversed: 6 - 4 = 2
    assert s["attitudes"].score == 24
    assert s["disclosure_help_seeking"].score == 3 * 4 + 2
    assert s["social_distance"].score == 4 + 4 * 2


def test_stss_pattern(builtin):
    st = builtin["stss"]
    answers = {f"stss_{n:02d}": (n - 1) % 5 + 1 for n in range(1, 18)}
    s = scores_of(st, answers)
    assert s["intrusion"].score == 2 + 3 + 1 + 5 + 3
    assert s["avoidance"].score == 1 + 5 + 2 + 4 + 2 + 4 + 2
    assert s["arousal"].score == 4 + 3 + 1 + 5 + 1
    assert s["total"].score == 48 and s["total"].band == "high"


def test_knowledge_percent_correct(builtin):
    kt = builtin["tic_knowledge"]
    form = kt.form("A")
    answers = {i: str(form.key[i]) for i in form.items}
    wrong_item, blank_item = form.items[-1], form.items[-2]
    options = [str(o.code) for o in kt.options_for(wrong_item)]
    answers[wrong_item] = next(o for o in options if o != str(form.key[wrong_item]))
    answers[blank_item] = np.nan
    frame = one_row(kt, answers).assign(form="A")
    s = {r.scale: r for r in score_knowledge(frame, kt).itertuples()}
    assert math.isclose(s["percent_correct"].score, 100 * 13 / 15)
    assert s["percent_correct"].items_answered == 14
    assert s["anchor_percent_correct"].score == 100
