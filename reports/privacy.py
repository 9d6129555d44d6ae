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

import pandas as pd

SUPPRESSED = None  # a suppressed cell; templates print the stated reason instead
POOLED = "ALL"
RCI_CATEGORIES = ("improved", "no_change", "deteriorated")


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
    otherwise: they describe nobody. ``hidden``: keys hidden already.

    Examples
    --------
    >>> cells = {"all": 8, "A": 3, "B": 5}
    >>> sorted(secondary_suppression(cells, [("all", ["A", "B"])], 5))
    ['A', 'B']
    >>> cells = {"first": 10, "here": 8, "aside": 2, "absent": 0}
    >>> sorted(secondary_suppression(cells, [("first", ["here", "aside", "absent"])], 5))
    ['absent', 'aside']
    """
    out = set(hidden or ()) | {k for k, v in cells.items() if 0 < v < min_n}
    relations = [(total, parts) for total, parts in relations
                 if total in cells and all(p in cells for p in parts)]
    member_of: dict[Hashable, list[int]] = {}
    for i, (total, parts) in enumerate(relations):
        for key in (total, *parts):
            member_of.setdefault(key, []).append(i)
    pending = set(range(len(relations)))
    while pending:
        i = pending.pop()
        total, parts = relations[i]
        if sum(key in out for key in (total, *parts)) != 1:
            continue
        shown = [p for p in parts if p not in out]
        choice = min(shown, key=lambda p: cells[p]) if shown else total
        out.add(choice)
        pending.update(member_of[choice])
    return out


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
        if value is not None and not pd.isna(value):
            self.cells[key] = int(value)

    def _relate(self, total: tuple, parts: list[tuple]) -> None:
        """Record ``total = sum(parts)`` when the counts say so (they do by construction)."""
        if total in self.cells and parts and all(p in self.cells for p in parts) and \
                self.cells[total] == sum(self.cells[p] for p in parts):
            self.relations.append((total, parts))

    def _participation(self, part: pd.DataFrame | None) -> None:
        if part is None or part.empty:
            return
        first = self.waves[0]
        columns = [c for c in ("cohort", "wave", "instrument", "n", "n_matched_first_wave",
                               "n_set_aside", "n_absent") if c in part.columns]
        rows = part[part["cohort"] != POOLED][columns]
        for r in rows.itertuples(index=False):
            key = (r.cohort, r.wave, r.instrument)
            self._add(("part", *key), r.n)
            later = r.wave != first
            if later:
                self._add(("matched", *key), r.n_matched_first_wave)
            self._add(("aside", *key), getattr(r, "n_set_aside", None))
            if later:
                self._add(("absent", *key), getattr(r, "n_absent", None))
        for (cohort, instrument), _ in rows.groupby(["cohort", "instrument"], sort=False):
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
        columns = ["cohort", "instrument", "scale", "from_wave", "to_wave", "n_pairs",
                   *[f"rci_{c}" for c in RCI_CATEGORIES]]
        for r in change[change["cohort"] != POOLED][columns].itertuples(index=False):
            pair = (r.cohort, r.instrument, r.scale, r.from_wave, r.to_wave)
            self._add(("pairs", *pair), r.n_pairs)
            counts = [("rci", *pair, c) for c in RCI_CATEGORIES]
            for key, value in zip(counts, (r.rci_improved, r.rci_no_change, r.rci_deteriorated)):
                self._add(key, value)
            self._relate(("pairs", *pair), counts)
        if bands is None or bands.empty:
            return
        bands = bands[bands["cohort"] != POOLED]
        keys = ["cohort", "instrument", "scale", "from_wave", "to_wave"]
        for side, band_column in (("from", "band_from"), ("to", "band_to")):
            per_band = bands.groupby([*keys, band_column], sort=False)["n"].sum()
            members: dict[tuple, list[tuple]] = {}
            for (*pair, band), n in per_band.items():
                wave = pair[3] if side == "from" else pair[4]
                key = ("band", *pair, wave, band)
                self._add(key, n)
                members.setdefault(tuple(pair), []).append(key)
            for pair, parts in members.items():  # empty bands count (0): zeros protect too
                wave = pair[3] if side == "from" else pair[4]
                for band in self.band_ids(pair[1], pair[2]):
                    key = ("band", *pair, wave, band)
                    if key not in self.cells:
                        self.cells[key] = 0
                        parts.append(key)
                total = ("banded", *pair)
                self._add(total, sum(self.cells[p] for p in parts))
                self._relate(total, parts)
                if self.cells[total] == self.cells.get(("pairs", *pair)):
                    self.relations.append((("pairs", *pair), parts))

    def band_ids(self, instrument: str, scale: str) -> list[str]:
        """The bands the instrument declares for the scale (none when unknown)."""
        inst = self.instruments.get(instrument)
        sub = next((s for s in inst.subscales if s.id == scale), None) if inst else None
        return [b.id for b in sub.bands] if sub else []

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

