"""Rating instruments: observer-rated competencies (a rater scores a role-play item by item).

A ``kind: rating`` instrument declares ordered levels (its ``response_options``: whole-number
codes, lowest = least competent, each with es/en labels and an optional ``anchor``), items
rated on those levels, domains (every subscale but ``total``, which together hold each item
exactly once) and a ``total`` over all items. Scores are means of item levels, so a domain
and the total stay on the levels' metric. ``harmful_to`` and ``helpful_from`` say which levels
are harmful and which helpful, for the level distributions of the reports.

Examples
--------
>>> from instruments import load_builtin
>>> roleplay = load_builtin()["tic_roleplay"]
>>> domains(roleplay)["r01"], [level.code for level in roleplay.response_options]
('engagement', [1, 2, 3, 4])
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from instruments.model import Instrument

TOTAL = "total"


def level_codes(inst: Instrument, item_id: str) -> list[int]:
    """The level codes of one item, in declared order."""
    return [int(o.code) for o in inst.options_for(item_id)]


def domains(inst: Instrument) -> dict[str, str]:
    """Item id -> the id of its domain (the subscale other than ``total`` that holds it)."""
    return {item: sub.id for sub in inst.subscales if sub.id != TOTAL for item in sub.items}


def check_rating(inst: Instrument) -> None:
    """ValueError (one line) when a rating instrument is not shaped as above."""
    for item in inst.items:
        codes = [o.code for o in inst.options_for(item.id)]
        if len(codes) < 2 or not all(isinstance(c, int) and not isinstance(c, bool)
                                     for c in codes):
            raise ValueError(f"item {item.id}: a rating item needs two or more levels with "
                             "whole-number codes (response_options)")
        if codes != sorted(set(codes)):
            raise ValueError(f"item {item.id}: level codes must rise from the least to the "
                             f"most competent level, each once (got {codes})")
    total = next((s for s in inst.subscales if s.id == TOTAL), None)
    if total is None or sorted(total.items) != sorted(inst.item_ids):
        raise ValueError("a rating instrument needs a subscale 'total' listing every item")
    for sub in inst.subscales:
        if sub.scoring != "mean" or sub.reverse:
            raise ValueError(f"subscale {sub.id}: rating scores are means of levels "
                             "(scoring: mean, no reverse items)")
    seen = [item for sub in inst.subscales if sub.id != TOTAL for item in sub.items]
    if not seen or sorted(seen) != sorted(inst.item_ids):
        twice = sorted({i for i in seen if seen.count(i) > 1})
        missing = sorted(set(inst.item_ids) - set(seen))
        raise ValueError("the domains (subscales other than total) must hold every item once"
                         f" (in two: {twice}; in none: {missing})")
    codes = {c for item in inst.item_ids for c in level_codes(inst, item)}
    if inst.harmful_to is None or inst.helpful_from is None:
        raise ValueError("a rating instrument needs harmful_to and helpful_from (level codes)")
    if not {inst.harmful_to, inst.helpful_from} <= codes or inst.harmful_to >= inst.helpful_from:
        raise ValueError(f"harmful_to ({inst.harmful_to}) and helpful_from ({inst.helpful_from})"
                         f" must be level codes ({sorted(codes)}), harmful_to the lower")
