"""What the reports of a program may publish: small-cell suppression that holds across them all.

Every figure a report shows describes a group of people: the people of a cohort with valid
answers to an instrument at a wave, those who took one form of a test, the people present at
both waves of a pair, those in one band or reliable-change category. A group of fewer than
``min_cell_size`` people is hidden (primary suppression), and so is every figure about it.

Counts are linked: the first wave's people are those present at a later wave plus those whose
form was set aside plus those who did not come; a test's takers are the sum of its forms'; the
people of a pair are the sum of their reliable-change categories, and of their bands at either
wave. Whenever one member of such a relation is hidden and all the others are shown, it could
be recovered by subtraction, so another member is hidden too (secondary suppression, repeated
until no relation has exactly one hidden member). A group hidden that way is hidden with all
its figures, in every report of the program: the cohort reports and the program report read
the same :class:`Disclosure`.

Program figures beside the cohorts (participation totals, means at each wave) are computed
from the published cohort figures only, so a hidden cohort cannot be recovered from the
program's figure and the other cohorts'. Model-based pooled estimates (the meta-analysis and
mixed models of change) count every cohort, as the reports say.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable

import numpy as np
import pandas as pd

from pipelines.schema import POOLED

SUPPRESSED = None  # a suppressed cell; templates print the stated reason instead
RCI_CATEGORIES = ("improved", "no_change", "deteriorated")


def values(column: pd.Series) -> list:
    """A column as a list of Python values (fast for Arrow-backed text too)."""
    return column.to_numpy(dtype=object).tolist()


def enough(n: object, min_n: int) -> bool:
    """True when a figure from ``n`` people may be shown.

    Examples
    --------
    >>> enough(5, 5), enough(4, 5), enough(float("nan"), 5)
    (True, False, False)
    """
    try:
        return float(n) >= min_n
    except (TypeError, ValueError):
        return False


def secondary_suppression(cells: dict[Hashable, int],
                          relations: Iterable[tuple[Hashable, list[Hashable]]],
                          min_n: int, hidden: set | None = None) -> set:
    """Keys of ``cells`` to hide: every count of 1..min_n-1, then complements.

    ``relations`` are (total, parts) with ``cells[total] == sum(cells[part])``.
    While a relation has exactly one hidden member, another is hidden: the
    smallest shown part (a zero costs the reader least; the two hidden cells
    then have a known sum but no known value), else the total. Zeros are shown
    otherwise: they describe nobody. ``hidden``: keys hidden already. All
    relations are settled in rounds, at once (a national program has a
    hundred thousand of them).

    Examples
    --------
    >>> cells = {"all": 8, "A": 3, "B": 5}
    >>> sorted(secondary_suppression(cells, [("all", ["A", "B"])], 5))
    ['A', 'B']
    >>> cells = {"first": 10, "here": 8, "aside": 2, "absent": 0}
    >>> sorted(secondary_suppression(cells, [("first", ["here", "aside", "absent"])], 5))
    ['absent', 'aside']
    """
    keys = list(cells)
    number = {k: i for i, k in enumerate(keys)}
    values = np.fromiter(cells.values(), dtype=np.int64, count=len(keys))
    out = (values > 0) & (values < min_n)
    for key in hidden or ():
        if key in number:
            out[number[key]] = True
    relation, member, is_part = [], [], []
    for total, parts in relations:
        ids = [number.get(k) for k in (total, *parts)]
        if None in ids:
            continue
        r = len(relation) and relation[-1] + 1
        relation += [r] * len(ids)
        member += ids
        is_part += [False] + [True] * len(parts)
    relation, member = np.array(relation, dtype=np.int64), np.array(member, dtype=np.int64)
    is_part = np.array(is_part, dtype=bool)
    n_relations = int(relation.max()) + 1 if len(relation) else 0
    # Among the shown parts of a relation, the smallest (then the first) is the complement.
    rank = np.lexsort((np.arange(len(member)), values[member], relation))
    while n_relations:
        hidden_in = np.bincount(relation, weights=out[member], minlength=n_relations)
        open_ = hidden_in == 1
        if not open_.any():
            break
        candidates = rank[open_[relation[rank]] & is_part[rank] & ~out[member[rank]]]
        first = np.unique(relation[candidates], return_index=True)
        out[member[candidates[first[1]]]] = True
        without = np.setdiff1d(np.flatnonzero(open_), first[0])  # no shown part: the total
        totals = np.flatnonzero(~is_part & np.isin(relation, without))
        out[member[totals]] = True
    return {keys[i] for i in np.flatnonzero(out)}


class Disclosure:
    """Which counts and groups the reports of one program may show (see the module docstring).

    Keys: ``("part", cohort, wave, instrument)`` people with valid answers;
    ``("matched" | "aside" | "absent", cohort, wave, instrument)`` first-wave
    people present at a later wave, whose form there was set aside, who did not
    come (and ``aside`` at the first wave: people whose only forms were set
    aside); ``("form", cohort, wave, instrument, form)`` takers of one form;
    ``("pairs", cohort, instrument, scale, from, to)`` people present at both
    waves; ``("rci", *pair, category)`` and ``("band", *pair, wave, band)``.
    """

    def __init__(self, tables: dict[str, pd.DataFrame], config, instruments: dict | None = None):
        self.min_n = config.min_cell_size
        self.instruments = instruments or {}
        self._bands: dict[tuple, list[str]] = {}
        self.waves = config.wave_order()
        self.cells: dict[tuple, int] = {}
        self.relations: list[tuple[tuple, list[tuple]]] = []
        self._participation(tables.get("participation"))
        self._forms(tables.get("reliability"))
        self._pairs(tables.get("change"), tables.get("band_transitions"))
        self.hidden = secondary_suppression(self.cells, self.relations, self.min_n)
        self.groups: dict[str, list[tuple[str, str]]] = {}  # cohort -> (wave, instrument)
        for key in self.cells:
            if key[0] == "part":
                self.groups.setdefault(key[1], []).append((key[2], key[3]))

    # --- building the cells and their relations ------------------------------------------
    def _add(self, key: tuple, value) -> None:
        if value is not None and value is not pd.NA and value == value:  # not missing
            self.cells[key] = int(value)

    def _relate(self, total: tuple, parts: list[tuple]) -> None:
        """Record ``total = sum(parts)`` when the counts say so (they do by construction)."""
        cells = self.cells
        if total in cells and parts and all(map(cells.__contains__, parts)) and \
                cells[total] == sum(map(cells.__getitem__, parts)):
            self.relations.append((total, parts))

    def _participation(self, part: pd.DataFrame | None) -> None:
        if part is None or part.empty:
            return
        first = self.waves[0]
        columns = [c for c in ("cohort", "wave", "instrument", "n", "n_matched_first_wave",
                               "n_set_aside", "n_absent") if c in part.columns]
        rows = part[part["cohort"] != POOLED][columns]
        none = [None] * len(rows)
        for cohort, wave, instrument, n, matched, aside, absent in zip(
                *(values(rows[c]) if c in rows else none
                  for c in ("cohort", "wave", "instrument", "n", "n_matched_first_wave",
                            "n_set_aside", "n_absent"))):
            key = (cohort, wave, instrument)
            self._add(("part", *key), n)
            self._add(("aside", *key), aside)
            if wave != first:
                self._add(("matched", *key), matched)
                self._add(("absent", *key), absent)
        for cohort, instrument in dict.fromkeys(zip(values(rows["cohort"]),
                                                     values(rows["instrument"]))):
            for wave in self.waves[1:]:
                key = (cohort, wave, instrument)
                self._relate(("part", cohort, first, instrument),
                             [("matched", *key), ("aside", *key), ("absent", *key)])

    def _forms(self, reliability: pd.DataFrame | None) -> None:
        if reliability is None or reliability.empty:
            return
        forms = reliability[(reliability["cohort"] != POOLED)
                            & (reliability["scale"] == "percent_correct")
                            & (reliability["form"].fillna("") != "")]
        groups: dict[tuple, list[tuple]] = {}
        for r in forms[["cohort", "wave", "instrument", "form", "n"]].itertuples(index=False):
            key = ("form", r.cohort, r.wave, r.instrument, r.form)
            self._add(key, r.n)
            groups.setdefault((r.cohort, r.wave, r.instrument), []).append(key)
        for (cohort, wave, instrument), keys in groups.items():
            self._relate(("part", cohort, wave, instrument), keys)

    def _pairs(self, change: pd.DataFrame | None, bands: pd.DataFrame | None) -> None:
        if change is None or change.empty:
            return
        rows = change[change["cohort"] != POOLED]
        pairs = zip(*(values(rows[c]) for c in ("cohort", "instrument", "scale", "from_wave",
                                                 "to_wave")))
        rci = zip(*(values(rows[f"rci_{c}"]) for c in RCI_CATEGORIES))
        for pair, n, counts in zip(pairs, values(rows["n_pairs"]), rci):
            self._add(("pairs", *pair), n)
            keys = [("rci", *pair, c) for c in RCI_CATEGORIES]
            for key, value in zip(keys, counts):
                self._add(key, value)
            self._relate(("pairs", *pair), keys)
        if bands is None or bands.empty:
            return
        keys = ["cohort", "instrument", "scale", "from_wave", "to_wave"]
        bands = bands[bands["cohort"] != POOLED]
        for side, band_column in (("from_wave", "band_from"), ("to_wave", "band_to")):
            counts = bands.groupby([*keys, band_column], sort=False)["n"].sum().reset_index()
            counts = counts.rename(columns={band_column: "band"})
            # Every band the instrument declares, empty ones as 0: zeros protect too.
            declared = pd.DataFrame(
                [(i, s, b) for i, s in counts[["instrument", "scale"]].drop_duplicates()
                 .itertuples(index=False) for b in self.band_ids(i, s)],
                columns=["instrument", "scale", "band"])
            every = counts[keys].drop_duplicates().merge(declared, on=["instrument", "scale"])
            counts = pd.concat([counts, every]).drop_duplicates([*keys, "band"])
            members: dict[tuple, list[tuple]] = {}
            for *pair, band, n in zip(*(values(counts[c]) for c in (*keys, "band", "n"))):
                pair = tuple(pair)
                key = ("band", *pair, pair[3] if side == "from_wave" else pair[4], band)
                self.cells[key] = 0 if n != n else int(n)  # NaN: a declared band nobody is in
                members.setdefault(pair, []).append(key)
            for pair, parts in members.items():
                total = sum(map(self.cells.__getitem__, parts))
                if total == self.cells.get(("pairs", *pair)):
                    self.relations.append((("pairs", *pair), parts))
                else:  # some pairs without a band: their own total
                    self.cells[("banded", *pair)] = total
                    self.relations.append((("banded", *pair), parts))

    def band_ids(self, instrument: str, scale: str) -> list[str]:
        """The bands the instrument declares for the scale (none when unknown)."""
        key = (instrument, scale)
        if key not in self._bands:
            inst = self.instruments.get(instrument)
            sub = next((s for s in inst.subscales if s.id == scale), None) if inst else None
            self._bands[key] = [b.id for b in sub.bands] if sub else []
        return self._bands[key]

    # --- reading ---------------------------------------------------------------------------
    def count(self, key: tuple) -> int | None:
        """The published count, or ``SUPPRESSED`` (hidden, or unknown)."""
        if key in self.hidden or key not in self.cells:
            return SUPPRESSED
        return self.cells[key]

    def shown(self, key: tuple) -> bool:
        """True when the group of ``key`` is published (with its figures)."""
        return key in self.cells and key not in self.hidden

    def participation(self, cohort: str, wave: str, instrument: str) -> bool:
        return self.shown(("part", cohort, wave, instrument))

    def mean_shown(self, cohort: str, wave: str, instrument: str, n) -> bool:
        """A mean at a wave: its people published, and enough of them scored on the scale."""
        return self.participation(cohort, wave, instrument) and enough(n, self.min_n)

    def form_shown(self, cohort: str, wave: str, instrument: str, form: str) -> bool:
        return self.shown(("form", cohort, wave, instrument, form))

    def pair_shown(self, cohort: str, instrument: str, scale: str, from_wave: str,
                   to_wave: str) -> bool:
        return self.shown(("pairs", cohort, instrument, scale, from_wave, to_wave))

    def instruments_at(self, cohort: str, wave: str) -> list[str]:
        """The instruments with a participation count for the cohort at the wave."""
        return [i for w, i in self.groups.get(cohort, []) if w == wave]

    def first_wave_size(self, cohort: str) -> int:
        """The largest count of people at the first wave over the cohort's instruments."""
        first = self.waves[0]
        return max((self.cells[("part", cohort, first, i)]
                    for i in self.instruments_at(cohort, first)), default=0)

    def reportable(self, cohort: str) -> bool:
        """A cohort gets a full report when enough people answered at the first wave."""
        return self.first_wave_size(cohort) >= self.min_n

