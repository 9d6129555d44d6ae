"""Numeric codes of the categories in .sav/.dta files: one meaning per code, stable across runs.

A code stands for a category's whole meaning. Where a value means something
only together with another column (a scale within its instrument, a band
within its scale, a term within its model), the code stands for the pair:
STSS's ``total`` and OMS-HC's ``total`` are two codes, labelled "STSS: ..."
and "OMS-HC-15: ...". The value sets (:func:`pipelines.schema.value_sets`) say
which columns qualify a value (``within``).

Codes come from a registry kept with the tables (``tables/codes.json``) that
is only ever appended to: a value keeps the code it got the first time it was
declared, and a new cohort, wave, instrument or scale gets the next free code
of its set, whatever its place in ``program.yaml`` or the instrument files.
So every .sav/.dta a program ever wrote can be joined on its codes. Without a
registry (a program's first run, or a lost file) codes follow declaration
order, which gives the same codes again unless declarations were reordered.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from instruments.model import Text
from pipelines.errors import CapacitarError

REGISTRY_FILE = "codes.json"
Key = tuple[str, ...]


@dataclass(frozen=True)
class ValueSet:
    """The allowed values of a category column, each with its code and label.

    ``within`` names the columns that qualify a value: a row's key is the
    values of ``within`` and then the column's own value.

    Examples
    --------
    >>> scales = ValueSet("scales", ("instrument",), {("stss", "total"): 2},
    ...                   {("stss", "total"): Text(es="STSS: total", en="STSS: total")})
    >>> frame = pd.DataFrame({"instrument": ["stss", "stss"], "scale": ["total", None]})
    >>> codes, unmatched = scales.codes_of(frame, "scale")
    >>> codes.tolist(), unmatched.tolist()
    ([2.0, nan], [False, False])
    """

    name: str
    within: tuple[str, ...]
    codes: dict[Key, int]
    labels: dict[Key, Text] = field(default_factory=dict)

    def label(self, key: Key, language: str) -> str:
        """The label of one value in ``language``; never empty (the value itself at worst)."""
        text = self.labels.get(key)
        return (text.get(language) if text else "") or "/".join(key)

    def value_labels(self, language: str) -> dict[int, str]:
        """Code -> label of every declared value (what .sav/.dta value labels hold)."""
        return {self.codes[key]: self.label(key, language) for key in self.labels}

    def codes_of(self, frame: pd.DataFrame, column: str) -> tuple[np.ndarray, np.ndarray]:
        """(codes as float, NaN when missing; mask of rows whose value matches no declared key).

        Distinct keys are looked up once each (a table holds few), so the
        cost is a factorization per key column.
        """
        columns = [*self.within, column]
        n = len(frame)
        combined = np.zeros(n, dtype=np.int64)
        decoders = []
        for name in columns:
            codes, uniques = pd.factorize(frame[name], use_na_sentinel=True)
            combined = combined * (len(uniques) + 1) + (codes + 1)
            decoders.append((codes, np.asarray(uniques, dtype=object)))
        groups, inverse = np.unique(combined, return_inverse=True)
        first = np.empty(len(groups), dtype=np.int64)
        first[inverse] = np.arange(n)  # a row of each distinct key
        found = np.full(len(groups), np.nan)
        unmatched = np.zeros(len(groups), dtype=bool)
        for g, row in enumerate(first):
            parts = [None if codes[row] < 0 else str(uniques[codes[row]])
                     for codes, uniques in decoders]
            if parts[-1] is None or parts[-1] == "":
                continue  # the value itself is missing: no code, nothing unmatched
            code = self.codes.get(tuple(parts)) if None not in parts else None
            if code is None or tuple(parts) not in self.labels:
                unmatched[g] = True
            else:
                found[g] = code
        return found[inverse], unmatched[inverse]


class CodeRegistry:
    """Codes given so far, per code space (a value set or the space it shares).

    Examples
    --------
    >>> registry = CodeRegistry({})
    >>> sets = registry.code({"waves": [("pre", Text()), ("post", Text())]})
    >>> sets = CodeRegistry(registry.spaces).code({"waves": [("mid", Text()), ("pre", Text())]})
    >>> sets["waves"].codes
    {('pre',): 1, ('post',): 2, ('mid',): 3}
    """

    def __init__(self, spaces: dict[str, dict[Key, int]]):
        self.spaces = {name: dict(codes) for name, codes in spaces.items()}

    @classmethod
    def load(cls, folder: Path) -> CodeRegistry:
        """The registry stored in ``folder`` (empty when there is none yet)."""
        path = folder / REGISTRY_FILE
        if not path.exists():
            return cls({})
        try:
            stored = json.loads(path.read_text(encoding="utf-8"))
            return cls({space: {tuple(entry[1:]): int(entry[0]) for entry in entries}
                        for space, entries in stored["codes"].items()})
        except (ValueError, KeyError, TypeError, IndexError) as error:
            raise CapacitarError(
                f"{path} is unreadable ({error}): restore it from a backup, since the codes of "
                "earlier .sav/.dta files depend on it, or delete it to renumber from the "
                "declarations") from None

    def code(self, sets: dict[str, list], within: dict[str, tuple] | None = None,
             spaces: dict[str, str] | None = None) -> dict[str, ValueSet]:
        """Value sets with codes; values not coded yet get the next free code of their space.

        ``sets``: name -> [(value or tuple of values, Text label)] in declaration
        order; ``within``: name -> qualifying columns; ``spaces``: name -> the
        space whose codes it shares (``cohorts_pooled`` uses the cohorts' codes).
        """
        within, spaces = within or {}, spaces or {}
        coded = {}
        for name, entries in sets.items():
            space = self.spaces.setdefault(spaces.get(name, name), {})
            labels = {}
            for value, label in entries:
                key = tuple(str(v) for v in value) if isinstance(value, tuple) else (str(value),)
                if key not in space:
                    space[key] = max(space.values(), default=0) + 1
                labels[key] = label
            coded[name] = ValueSet(name, tuple(within.get(name, ())), space, labels)
        return coded

    def save(self, folder: Path) -> Path:
        """Write the registry into ``folder`` (the tables folder being staged), a code a line."""
        from pipelines.export import atomic_write

        spaces = ",\n".join(
            f"    {json.dumps(space)}: [\n" + ",\n".join(
                f"      {json.dumps([code, *key], ensure_ascii=False)}"
                for key, code in codes.items()) + "\n    ]"
            for space, codes in self.spaces.items())
        text = ('{\n  "about": "Numeric codes of the categories in the .sav/.dta files of this '
                'program: [code, value] or [code, qualifiers..., value]. Only ever appended to: '
                'keep it with the tables.",\n  "codes": {\n' + spaces + "\n  }\n}\n")
        path = folder / REGISTRY_FILE
        atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))
        return path


def program_codes(config, instruments: dict, rules: dict, tables: Path,
                  staging: Path) -> dict[str, ValueSet]:
    """The program's value sets with their codes: the registry in ``tables`` (the last run's
    tables folder) extended with what is new, and saved into ``staging`` (the new folder)."""
    from pipelines.schema import SPACES, WITHIN, value_sets

    registry = CodeRegistry.load(tables)
    sets = registry.code(value_sets(config, instruments, rules), WITHIN, SPACES)
    registry.save(staging)
    return sets
