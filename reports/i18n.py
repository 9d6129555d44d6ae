"""Words and numbers of the reports in each language: messages, labels, number formats.

Every sentence a report shows is in ``messages.yaml`` (es and en); this module
looks them up and formats numbers the way each language writes them.
"""

from __future__ import annotations

import functools
import math
import re
from dataclasses import dataclass
from pathlib import Path

import markupsafe
import pandas as pd
import yaml

from data_contracts.rules import RULES
from instruments.model import Instrument

HERE = Path(__file__).parent


MESSAGES = yaml.safe_load((HERE / "messages.yaml").read_text(encoding="utf-8"))


LANGUAGES = ("es", "en")


@functools.lru_cache(maxsize=16384)  # ticks and program-wide figures repeat on every page
def number(value: object, language: str, digits: int = 1) -> str:
    """Format a number the way the language writes it (1.234,5 vs 1,234.5).

    Examples
    --------
    >>> number(1234.5, "es"), number(1234.5, "en"), number(float("nan"), "en")
    ('1.234,5', '1,234.5', '—')
    >>> number(-0.04, "es")  # no "-0,0"
    '0,0'
    """
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA:
        return "—"
    rounded = round(float(value), digits)
    text = f"{(rounded if rounded != 0 else 0.0):,.{digits}f}"
    return text.translate(SPANISH_MARKS) if language == "es" else text


SPANISH_MARKS = str.maketrans(",.", ".,")


@dataclass
class Catalogue:
    """Message lookup for one language."""

    language: str

    def __call__(self, key: str, **values) -> str:
        entry = MESSAGES[key]
        return entry[self.language].format(**values)

    def html(self, key: str, **values) -> markupsafe.Markup:
        """The message as HTML: values escaped, except those already marked up (annotated
        counts, see :func:`annotated`)."""
        return markupsafe.Markup(html_message(key, self.language).format(
            **{k: v if isinstance(v, markupsafe.Markup) else markupsafe.escape(v)
               for k, v in values.items()}))

    def rule(self, rule: str) -> str:
        entry = RULES.get(rule)
        return entry["label"][self.language] if entry else rule


@functools.lru_cache(maxsize=None)
def html_message(key: str, language: str) -> str:
    """A message's text escaped for HTML (its placeholders untouched)."""
    return str(markupsafe.escape(MESSAGES[key][language]))


def scale_label(instruments: dict[str, Instrument], inst_id: str, scale: str, lang: str) -> str:
    """Human label of an instrument's scale: its subscale's label, or a knowledge test's score
    (``scale_<id>`` in messages.yaml).

    >>> from instruments import load_builtin
    >>> scale_label(load_builtin(), "tic_knowledge", "percent_correct", "en")
    'Trauma-informed care knowledge test (TIC-1, demo): % correct'
    """
    inst = instruments.get(inst_id)
    if inst is None:
        return f"{inst_id} / {scale}"
    title = inst.title.get(lang)
    for sub in inst.subscales:
        if sub.id == scale:
            return f"{title}: {sub.label.get(lang)}"
    named = MESSAGES.get(f"scale_{scale}")
    return f"{title}: {named[lang] if named else scale}"


def instrument_short(inst: Instrument, lang: str) -> str:
    """The abbreviation in the title's last parentheses (ProQOL 5, OMS-HC-15), else the title.

    Examples
    --------
    >>> from instruments import load_builtin
    >>> instrument_short(load_builtin()["omshc"], "es")
    'OMS-HC-15'
    """
    title = inst.title.get(lang)
    match = re.search(r"\(([^()]+)\)\s*$", title)
    return match.group(1).split(",")[0] if match else title


def short_label(instruments, inst_id: str, scale: str, lang: str) -> str:
    """'OMS-HC-15: Total'-style label for tables and plots."""
    inst = instruments.get(inst_id)
    if inst is None:
        return scale
    full = scale_label(instruments, inst_id, scale, lang)
    return f"{instrument_short(inst, lang)}: {full.split(': ', 1)[-1]}"
