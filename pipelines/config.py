"""Program configuration (``program.yaml``), validated on load.

A program folder holds ``program.yaml``, an ``inbox/`` of raw exports, an
optional ``instruments/`` folder of the program's own instrument YAML files and
the ``outputs/`` the pipeline writes. Paths in the file are relative to the
program folder.

Examples
--------
>>> from pathlib import Path
>>> cfg = load_program(Path("program.yaml"))  # doctest: +SKIP
>>> cfg.wave_order()  # doctest: +SKIP
['pre', 'post', 'follow_up']
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from instruments.loader import read_yaml_model
from instruments.model import Text

PROGRAM_FILE = "program.yaml"


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Cohort(Strict):
    """One training cohort (an edition at one site)."""

    id: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    site: str
    start: dt.date | None = None
    end: dt.date | None = None
    aliases: list[str] = Field(default=[], description="Other spellings seen in raw files.")


class Wave(Strict):
    """One measurement occasion, e.g. pre, post, follow_up."""

    id: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    order: int
    label: Text = Text()


class Locator(Strict):
    """Where a key (cohort, wave, form) comes from in a source.

    Exactly one of ``column`` (a column of the file), ``value`` (fixed for the
    source) or ``filename`` (a regular expression with one group, applied to
    the file name). ``map`` translates raw values (e.g. REDCap event names) to
    the program's ids.
    """

    column: str | None = None
    value: str | None = None
    filename: str | None = None
    map: dict[str, str] = {}

    @model_validator(mode="after")
    def _exactly_one(self) -> Locator:
        given = [f for f in ("column", "value", "filename") if getattr(self, f) is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of column, value or filename")
        if self.filename is not None:
            try:
                pattern = re.compile(self.filename)
            except re.error as exc:
                raise ValueError(f"filename is not a valid regular expression: {exc}") from None
            if pattern.groups != 1:
                raise ValueError("filename needs exactly one (group) capturing the value")
        return self


class InstrumentMapping(Strict):
    """Which columns of a source hold one instrument's items.

    ``items`` is either a template with ``{n}`` (the item's position, 1-based;
    for knowledge tests the position on the printed form) such as
    ``proqol_{n}`` or ``P{n}``, or an explicit mapping raw column -> item id.
    """

    items: str | dict[str, str]
    complete_column: str | None = Field(
        default=None, description="A form-status column (e.g. REDCap's <form>_complete)."
    )
    complete_values: list[str] = ["2"]
    form: Locator | None = Field(default=None, description="Knowledge tests: the form (A, B).")


class Source(Strict):
    """One kind of export in the inbox."""

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    pattern: str = Field(description="Glob inside the inbox, e.g. 'redcap_*.csv'.")
    format: Literal["csv", "xlsx", "sav", "dta", "redcap", "kobo", "odk", "qualtrics",
                    "gforms"] = Field(default="csv", description=(
        "csv/xlsx/sav/dta as they are; redcap, kobo, odk, qualtrics, gforms undo that tool's "
        "export habits (header rows, group prefixes, status and metadata columns)."))
    dictionary: str | None = Field(
        default=None, description="REDCap: glob of the data dictionary CSV in the inbox.")
    keep_unfinished: bool = Field(
        default=False, description="Qualtrics: keep responses with Finished = 0.")
    keep_rejected: bool = Field(
        default=False, description="Kobo/ODK: keep submissions rejected in review.")
    sheet: str | int = 0
    header_row: int = Field(default=1, ge=1, description="Row number of the header (1-based).")
    encoding: str | None = Field(default=None, description="Detected when not given.")
    delimiter: str | None = Field(default=None, description="Detected when not given.")
    instruments: dict[str, InstrumentMapping] = Field(min_length=1)
    identifier: list[str] = Field(
        min_length=1, description="Columns that identify a person (email, DNI...); hashed."
    )
    pii: list[str] = Field(default=[], description="Other personal columns; dropped at ingest.")
    cohort: Locator
    wave: Locator
    submitted_at: str | None = Field(default=None, description="Timestamp column, for duplicates.")


class PrimaryOutcome(Strict):
    """A scale declared, before the data came in, as a primary outcome of the program.

    The declared outcomes form the family over which reports' verdicts are
    adjusted; every other scale is reported as exploratory.
    """

    instrument: str
    scale: str
    waves: tuple[str, str] | None = Field(
        default=None, description="The wave pair, e.g. [pre, post]; default: every pair compared.")


class Pseudonymisation(Strict):
    """Where the program's secret key for participant pseudonyms lives.

    The key must stay outside the outputs. ``CAPACITAR_PSEUDONYM_KEY`` in the
    environment overrides the file. ``create_if_missing`` is for demo programs.
    """

    key_file: str = "secrets/pseudonym.key"
    create_if_missing: bool = False
    link_file: str | None = Field(
        default=None, description=(
            "Optional CSV (outside the outputs) linking each pseudonym to its normalised "
            "identifier, for authorised re-identification. Off by default."))


class DateWindow(Strict):
    """How far from a cohort's dates a submission may be and still belong to it."""

    days_before_start: int = Field(default=30, ge=0)
    days_after_end: int = Field(default=365, ge=0)


class ProgramConfig(Strict):
    """A training program: cohorts, waves, sources and where outputs go."""

    name: str
    language: Literal["es", "en"] = "es"
    inbox: str = "inbox"
    output: str = "outputs"
    instruments_dir: str = "instruments"
    pseudonymisation: Pseudonymisation = Pseudonymisation()
    cohorts: list[Cohort] = Field(min_length=1)
    waves: list[Wave] = Field(min_length=1)
    wave_pairs: list[tuple[str, str]] | None = Field(
        default=None, description="Pairs compared for change; default: each wave vs the first."
    )
    sources: list[Source] = Field(min_length=1)
    primary_outcomes: list[PrimaryOutcome] = Field(
        default=[], description="Pre-registered outcomes: the family of the reports' verdicts.")
    min_cell_size: int = Field(default=5, ge=1, description="Report figures from fewer are hidden.")
    date_window: DateWindow = DateWindow()
    max_failing_share: float = Field(
        default=0.5, gt=0, le=1,
        description="A file with a larger share of failing rows is rejected whole (batch problem).")
    dask_address: str | None = Field(
        default=None, pattern=r"^(tcp|tls|inproc|ucx)://.+",
        description="Dask scheduler (tcp://host:8786) for the per-cohort analysis; "
                    "default: local threads.")

    # Set by load_program: the folder the file was read from.
    root: Path = Field(default=Path("."), exclude=True)

    @model_validator(mode="after")
    def _check_ids(self) -> ProgramConfig:
        for kind, ids in (
            ("cohort", [c.id for c in self.cohorts]),
            ("wave", [w.id for w in self.waves]),
            ("source", [s.name for s in self.sources]),
        ):
            dupes = sorted({i for i in ids if ids.count(i) > 1})
            if dupes:
                raise ValueError(f"{kind} ids listed twice: {dupes}")
        known = {w.id for w in self.waves}
        for pair in self.wave_pairs or []:
            unknown = [w for w in pair if w not in known]
            if unknown:
                raise ValueError(f"wave_pairs names unknown waves {unknown}")
        compared = {tuple(p) for p in self.pairs()}
        for outcome in self.primary_outcomes:
            if outcome.waves is not None and tuple(outcome.waves) not in compared:
                raise ValueError(f"primary_outcomes: the wave pair {list(outcome.waves)} of "
                                 f"{outcome.instrument}/{outcome.scale} is not compared "
                                 f"(wave_pairs: {[list(p) for p in self.pairs()]})")
        link = self.pseudonymisation.link_file
        if link and Path(link).parts[:1] == Path(self.output).parts[:1]:
            raise ValueError("pseudonymisation.link_file must be outside the output folder")
        return self

    def wave_order(self) -> list[str]:
        """Wave ids sorted by their order."""
        return [w.id for w in sorted(self.waves, key=lambda w: w.order)]

    def pairs(self) -> list[tuple[str, str]]:
        """Wave pairs to compare: configured, else every later wave vs the first."""
        if self.wave_pairs:
            return [tuple(p) for p in self.wave_pairs]
        order = self.wave_order()
        return [(order[0], later) for later in order[1:]]

    def path(self, relative: str) -> Path:
        """A path inside the program folder."""
        return (self.root / relative).resolve()

    @property
    def inbox_dir(self) -> Path:
        return self.path(self.inbox)

    @property
    def output_dir(self) -> Path:
        return self.path(self.output)


def load_program(path: str | Path) -> ProgramConfig:
    """Load ``program.yaml`` (or the folder holding it), validated.

    Raises ``ConfigError`` naming the file and field when invalid.
    """
    path = Path(path)
    if path.is_dir():
        path = path / PROGRAM_FILE
    config = read_yaml_model(path, ProgramConfig)
    return config.model_copy(update={"root": path.parent.resolve()})
