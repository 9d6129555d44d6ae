"""The declarative instrument model: one YAML file per instrument version.

An instrument file carries everything capacitar needs to read, check and score
one instrument: items, response options with Spanish and English labels,
subscales with reverse keys, the scoring and missing-item rules, bands or
cut-offs and, for knowledge tests, item types and the answer key per form.

The model holds facts only (item numbers, keys, cut-offs, citations). Item
wording of published instruments is copyrighted and is never shipped; item
``text`` stays generic ("ProQOL item 7") for those.

Examples
--------
>>> from instruments import load_builtin
>>> proqol = load_builtin()["proqol"]
>>> proqol.subscale("burnout").reverse[:2]
['proqol_01', 'proqol_04']
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

Language = Literal["es", "en"]
# The scales a knowledge test is scored on (pipelines.analysis.scoring): more is better.
KNOWLEDGE_SCALES = ("percent_correct", "anchor_percent_correct", "equated_percent_correct")


class Strict(BaseModel):
    """Base model: unknown fields are errors, so typos in YAML are caught."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class Text(Strict):
    """A short text in Spanish and English."""

    es: str = ""
    en: str = ""

    def get(self, language: str) -> str:
        """Return the text in ``language``, falling back to the other one."""
        first, other = (self.es, self.en) if language == "es" else (self.en, self.es)
        return first or other


class ResponseOption(Strict):
    """One response option: the stored code and its labels.

    A rating instrument's options are its ordered levels; ``anchor`` describes
    what a rater sees at that level (optional).
    """

    code: int | str
    es: str
    en: str
    anchor: Text | None = None


class Item(Strict):
    """One item. ``options`` defaults to the instrument's ``response_options``."""

    id: str = Field(pattern=r"^[A-Za-z][A-Za-z0-9_]*$")
    text: Text = Text()
    type: Literal["likert", "single_choice", "true_false", "multi_select"] = "likert"
    options: list[ResponseOption] | None = None


class Band(Strict):
    """A score band (cut-off range), inclusive at both ends; open ends allowed."""

    id: str
    label: Text
    min: float | None = None
    max: float | None = None

    def contains(self, score: float) -> bool:
        """Whether ``score`` falls inside this band."""
        low_ok = self.min is None or score >= self.min
        high_ok = self.max is None or score <= self.max
        return low_ok and high_ok


class Subscale(Strict):
    """A scored scale: which items, which reversed, how scored and banded."""

    id: str = Field(pattern=r"^[A-Za-z][A-Za-z0-9_]*$")
    label: Text
    items: list[str] = Field(min_length=1)
    reverse: list[str] = []
    scoring: Literal["sum", "mean"] = "sum"
    min_items: int | None = Field(
        default=None,
        description="Fewest answered items that still give a score; default all items.",
    )
    proration: Literal["mean_of_answered", "none"] = Field(
        default="mean_of_answered",
        description="For sums with missing items: mean of answered items x number of items.",
    )
    higher_is: Literal["better", "worse", "neutral"] = "neutral"
    bands: list[Band] = []
    bands_source: str = ""
    # A published internal-consistency estimate, used for the Reliable Change
    # Index when the program's own baseline sample is too small (n < 30).
    reliability: float | None = Field(default=None, gt=0, lt=1)
    reliability_source: str = ""

    @model_validator(mode="after")
    def _check_items(self) -> Subscale:
        unknown = set(self.reverse) - set(self.items)
        if unknown:
            raise ValueError(f"reverse items {sorted(unknown)} are not in this subscale's items")
        if len(set(self.items)) != len(self.items):
            raise ValueError("an item is listed twice in items")
        if self.min_items is not None and not 1 <= self.min_items <= len(self.items):
            raise ValueError(f"min_items must be between 1 and {len(self.items)}")
        return self

    @property
    def required_items(self) -> int:
        """Fewest answered items needed for a score."""
        return self.min_items if self.min_items is not None else len(self.items)

    def band_of(self, score: float) -> str | None:
        """The id of the band containing ``score``, or None."""
        for band in self.bands:
            if band.contains(score):
                return band.id
        return None


class TestForm(Strict):
    """A knowledge-test form: item ids in the order printed, and the key.

    The key maps item id to the correct option code; a multi-select item's
    key is a list of codes (all and only those must be chosen).
    """

    id: str
    items: list[str] = Field(min_length=1)
    key: dict[str, int | str | list[int | str]]

    @model_validator(mode="after")
    def _key_covers_items(self) -> TestForm:
        missing = [i for i in self.items if i not in self.key]
        extra = [i for i in self.key if i not in self.items]
        if missing or extra:
            raise ValueError(f"form {self.id}: key misses {missing} / has extra {extra}")
        return self


class Instrument(Strict):
    """One version of one instrument, as declared in its YAML file."""

    id: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    version: str
    kind: Literal["scale", "knowledge", "rating"]
    title: Text
    short: Text = Field(default=Text(), description="Short name for labels (STSS); default: "
                        "the title's last parenthesis, else the id.")
    citation: str
    licence: str
    languages: list[Language] = ["es", "en"]
    response_options: list[ResponseOption] = []
    items: list[Item] = Field(min_length=1)
    subscales: list[Subscale] = []
    forms: list[TestForm] = []
    anchor_items: list[str] = []
    # Rating instruments (observer-rated competencies): the highest level code that is
    # harmful and the lowest that is helpful, for the level distributions of the reports.
    harmful_to: int | None = None
    helpful_from: int | None = None
    notes: str = ""

    @field_validator("items")
    @classmethod
    def _unique_item_ids(cls, items: list[Item]) -> list[Item]:
        ids = [i.id for i in items]
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        if dupes:
            raise ValueError(f"item ids listed twice: {dupes}")
        return items

    @model_validator(mode="after")
    def _check_references(self) -> Instrument:
        known = set(self.item_ids)
        for sub in self.subscales:
            unknown = [i for i in sub.items if i not in known]
            if unknown:
                raise ValueError(f"subscale {sub.id}: unknown items {unknown}")
        for form in self.forms:
            unknown = [i for i in form.items if i not in known]
            if unknown:
                raise ValueError(f"form {form.id}: unknown items {unknown}")
            self._check_key(form)
        if self.kind == "scale":
            if not self.subscales:
                raise ValueError("a scale needs at least one subscale")
            for item in self.items:
                if not self.options_for(item.id):
                    raise ValueError(f"item {item.id} has no response options")
        if self.kind == "knowledge" and not self.forms:
            raise ValueError("a knowledge test needs at least one form with its key")
        if self.kind == "rating":
            from instruments.rating import check_rating

            check_rating(self)
        elif self.harmful_to is not None or self.helpful_from is not None:
            raise ValueError("harmful_to and helpful_from are for kind: rating only")
        return self

    def _check_key(self, form: TestForm) -> None:
        for item_id, answer in form.key.items():
            codes = {str(o.code) for o in self.options_for(item_id)}
            answers = answer if isinstance(answer, list) else [answer]
            bad = [a for a in answers if str(a) not in codes]
            if bad:
                raise ValueError(f"form {form.id}: key of {item_id} uses unknown options {bad}")

    # --- convenient views -------------------------------------------------
    @property
    def item_ids(self) -> list[str]:
        """All item ids in declaration order."""
        return [i.id for i in self.items]

    def item(self, item_id: str) -> Item:
        """The item with this id."""
        for item in self.items:
            if item.id == item_id:
                return item
        raise KeyError(f"{self.id} has no item {item_id!r}")

    def options_for(self, item_id: str) -> list[ResponseOption]:
        """Response options of one item (its own, else the instrument's)."""
        item = self.item(item_id)
        return item.options if item.options is not None else self.response_options

    def code_range(self, item_id: str) -> tuple[float, float]:
        """(lowest, highest) numeric code of a Likert item, for reverse keying."""
        codes = [float(o.code) for o in self.options_for(item_id)]
        return min(codes), max(codes)

    def subscale(self, subscale_id: str) -> Subscale:
        """The subscale with this id."""
        for sub in self.subscales:
            if sub.id == subscale_id:
                return sub
        raise KeyError(f"{self.id} has no subscale {subscale_id!r}")

    def form(self, form_id: str) -> TestForm:
        """The knowledge-test form with this id."""
        for form in self.forms:
            if form.id == str(form_id):
                return form
        raise KeyError(f"{self.id} has no form {form_id!r}")

    @property
    def label(self) -> str:
        """Id and version, e.g. ``proqol 5``."""
        return f"{self.id} {self.version}"


def improvement_directions(instruments: dict[str, Instrument]) -> dict[tuple[str, str], str]:
    """(instrument, scale) -> "higher" or "lower" is better, "" when neutral.

    >>> from instruments import load_builtin
    >>> directions = improvement_directions(load_builtin())
    >>> directions[("proqol", "burnout")], directions[("proqol", "compassion_satisfaction")]
    ('lower', 'higher')
    """
    directions = {}
    for inst in instruments.values():
        if inst.kind == "knowledge":
            directions.update({(inst.id, s): "higher" for s in KNOWLEDGE_SCALES})
        for sub in inst.subscales:
            directions[(inst.id, sub.id)] = {"better": "higher", "worse": "lower"}.get(
                sub.higher_is, "")
    return directions
