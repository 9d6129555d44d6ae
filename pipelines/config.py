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

import codecs
import datetime as dt
import fnmatch
import re
import string
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from instruments.loader import read_yaml_model
from instruments.model import Text
from pipelines.errors import ConfigError

PROGRAM_FILE = "program.yaml"
MAX_HEADER_ROW = 100  # exports put the header in the first rows (title rows, tool headers)


def check_template(template: str) -> None:
    """A column template must use ``{n}`` (the item number) and no other field.

    >>> check_template("OMS{n}"); check_template("proqol_{n:02d}")
    >>> check_template("OMS{i}")
    Traceback (most recent call last):
    ...
    ValueError: items template 'OMS{i}' may use only {n} (the item number), e.g. 'OMS{n}'
    """
    example = re.sub(r"\{[^{}]*\}?", "{n}", template) if "{" in template else template + "{n}"
    try:
        fields = [name for _, name, _, _ in string.Formatter().parse(template) if name is not None]
        template.format(n=1)
    except (ValueError, KeyError, IndexError, AttributeError):
        fields = ["?"]
    if not fields or set(fields) != {"n"}:
        raise ValueError(f"items template {template!r} may use only {{n}} (the item number), "
                         f"e.g. {example!r}")


def check_pattern(pattern: str) -> None:
    """A glob of files inside the inbox: relative, without ``..``.

    >>> check_pattern("redcap_*.csv"); check_pattern("**/*.xlsx")
    >>> check_pattern("../secrets/*")
    Traceback (most recent call last):
    ...
    ValueError: pattern '../secrets/*' must name files inside the inbox: no '..' and no absolute path
    """
    parts = PurePosixPath(pattern.replace("\\", "/")).parts
    if (not pattern.strip() or ".." in parts or pattern.startswith(("/", "\\", "~"))
            or PureWindowsPath(pattern).is_absolute() or PureWindowsPath(pattern).drive):
        raise ValueError(f"pattern {pattern!r} must name files inside the inbox: no '..' and no "
                         "absolute path")


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

    @field_validator("items")
    @classmethod
    def _template(cls, items: str | dict[str, str]) -> str | dict[str, str]:
        if isinstance(items, str):
            check_template(items)
        return items

    complete_column: str | None = Field(
        default=None, description="A form-status column (e.g. REDCap's <form>_complete)."
    )
    complete_values: list[str] = ["2"]
    form: Locator | None = Field(default=None, description="Knowledge tests: the form (A, B).")


SECRET_KEYS = ("token", "password", "passwd", "secret", "api_key", "apikey", "key")
NAMED_SECRETS = ("token_env", "token_block", "user")  # where a pasted token would land


def looks_like_token(value: str) -> bool:
    """True for text shaped like an API token (REDCap/Kobo hex, ODK Central's 64 characters).

    >>> looks_like_token("0123456789ABCDEF0123456789ABCDEF"), looks_like_token("REDCAP_TOKEN")
    (True, False)
    """
    text = value.strip()
    if re.fullmatch(r"[0-9A-Fa-f]{32,}", text):
        return True
    return (len(text) >= 24 and re.fullmatch(r"[A-Za-z0-9!$]+", text) is not None
            and sum(c.isdigit() for c in text) >= 4 and any(c.isalpha() for c in text))


class Pull(Strict):
    """Where a source's snapshots come from: a survey server's API, fetched before each run.

    The token is never written here: ``token_env`` names an environment
    variable and ``token_block`` a Prefect ``Secret`` block that holds it (for
    ODK Central with ``user``: that web user's password). See ``pipelines/pull``.
    """

    kind: Literal["redcap", "odk", "kobo"]
    url: str = Field(description="REDCap: the API URL (ending in /api/); ODK Central, "
                     "KoboToolbox: the server's address (https://kf.kobotoolbox.org).")
    project: int | None = Field(default=None, ge=1, description="ODK Central: the project id.")
    form: str | None = Field(default=None, description="ODK Central: the form's xmlFormId.")
    asset: str | None = Field(default=None, description="KoboToolbox: the form's asset uid.")
    user: str | None = Field(default=None, description=(
        "ODK Central: the web user (email) to log in as, with the password as the secret; "
        "without it the secret is used as a bearer token."))
    token_env: str | None = Field(default=None, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    token_block: str | None = Field(default=None, pattern=r"^[a-z0-9][a-z0-9-]*$")
    timeout: float = Field(default=60, gt=0, description="Seconds to wait for each answer.")
    retries: int = Field(default=3, ge=0, le=10, description="Retries when the server is down.")
    retry_delay: float = Field(default=10, ge=0, description=(
        "Seconds before the first retry; each later retry waits twice as long."))
    page_size: int = Field(default=1000, ge=1, le=30000, description="ODK/Kobo: rows per page.")

    @model_validator(mode="before")
    @classmethod
    def _no_secret_here(cls, data):
        if isinstance(data, dict):
            for name, value in data.items():
                if str(name).lower() in SECRET_KEYS or (
                        name in NAMED_SECRETS and isinstance(value, str)
                        and looks_like_token(value)):
                    raise ValueError(
                        f"{name}: never write a token or password in program.yaml; put it in an "
                        "environment variable named by token_env, or in a Prefect Secret block "
                        "named by token_block")
            url = str(data.get("url", ""))
            if re.search(r"//[^/]*@|[?&](token|key|password)=", url, re.IGNORECASE):
                raise ValueError("url: put no credentials in the URL; use token_env or token_block")
        return data

    @model_validator(mode="after")
    def _complete(self) -> Pull:
        if not re.fullmatch(r"https?://[^/\s]+(/\S*)?", self.url):
            raise ValueError("url: give the server's address, e.g. https://redcap.example.org/api/")
        if (self.token_env is None) == (self.token_block is None):
            raise ValueError("give exactly one of token_env (an environment variable) or "
                             "token_block (a Prefect Secret block) holding the token")
        needed = {"redcap": [], "odk": ["project", "form"], "kobo": ["asset"]}[self.kind]
        missing = [f for f in needed if getattr(self, f) is None]
        if missing:
            raise ValueError(f"a {self.kind} pull needs {' and '.join(missing)}")
        if self.kind == "redcap" and not self.url.endswith("/api/"):
            raise ValueError("url: REDCap's API address ends in /api/ "
                             "(https://redcap.example.org/api/)")
        return self


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
    sheet: str | int = Field(default=0, description="Sheet name, or number from 0 (the first).")
    header_row: int = Field(default=1, ge=1, le=MAX_HEADER_ROW,
                            description="Row number of the header (1-based).")
    encoding: str | None = Field(default=None, description="Detected when not given.")
    delimiter: str | None = Field(default=None, description="Detected when not given.")
    instruments: dict[str, InstrumentMapping] = Field(min_length=1)
    identifier: list[str] = Field(
        min_length=1, description="Columns that identify a person (email, DNI...); hashed."
    )
    pii: list[str] = Field(default=[], description="Other personal columns; dropped at ingest.")
    rater: list[str] = Field(default=[], description=(
        "Rating instruments: the columns that identify the rater (staff); hashed to R pseudonyms."))
    cohort: Locator
    wave: Locator
    submitted_at: str | None = Field(default=None, description="Timestamp column, for duplicates.")
    pull: Pull | None = Field(default=None, description=(
        "Fetch this source from REDCap, ODK Central or KoboToolbox before each run: the "
        "snapshots land in the inbox and pattern, dictionary and format follow from name."))

    @model_validator(mode="before")
    @classmethod
    def _pulled_files(cls, data):
        """A pulled source reads the snapshots its pull writes (``pipelines.pull.snapshots``)."""
        if not isinstance(data, dict) or not isinstance(data.get("pull"), dict):
            return data
        from pipelines.pull.snapshots import snapshot_globs

        kind = data["pull"].get("kind")
        implied = {"format": kind, "delimiter": ",", "encoding": "utf-8",
                   **snapshot_globs(str(data.get("name", "")), kind)}
        for field_name, value in implied.items():
            given = data.get(field_name)
            if given is not None and given != value:
                raise ValueError(f"{field_name}: a pulled source reads its snapshots "
                                 f"({field_name} {value!r}); leave {field_name} out")
        return {**data, **implied}

    @field_validator("pattern", "dictionary")
    @classmethod
    def _inside_inbox(cls, pattern: str | None) -> str | None:
        if pattern is not None:
            check_pattern(pattern)
        return pattern

    @field_validator("sheet")
    @classmethod
    def _sheet(cls, sheet: str | int) -> str | int:
        if isinstance(sheet, int) and sheet < 0 or isinstance(sheet, str) and not sheet.strip():
            raise ValueError(f"sheet {sheet!r}: give the sheet's name, or its number counting "
                             "from 0 (the first sheet)")
        return sheet

    @field_validator("encoding")
    @classmethod
    def _encoding(cls, encoding: str | None) -> str | None:
        if encoding is not None:
            try:
                codecs.lookup(encoding)
            except LookupError:
                raise ValueError(f"unknown encoding {encoding!r} (e.g. utf-8, cp1252, "
                                 "latin-1), or leave it out to detect it") from None
        return encoding

    @field_validator("delimiter")
    @classmethod
    def _delimiter(cls, delimiter: str | None) -> str | None:
        if delimiter is not None and (len(delimiter) != 1 or delimiter in "\"\r\n"):
            raise ValueError(f"delimiter {delimiter!r}: give one character (',' ';' tab '|'), "
                             "or leave it out to detect it")
        return delimiter


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
        for pulled in (s for s in self.sources if s.pull):
            example = pulled.pattern.replace("?", "0")
            others = [s.name for s in self.sources
                      if s is not pulled and fnmatch.fnmatchcase(example, s.pattern)]
            if others:
                raise ValueError(f"the pattern of source {others[0]} also matches the snapshots "
                                 f"of pulled source {pulled.name} ({pulled.pattern})")
        compared = {tuple(p) for p in self.pairs()}
        for outcome in self.primary_outcomes:
            if outcome.waves is not None and tuple(outcome.waves) not in compared:
                raise ValueError(f"primary_outcomes: the wave pair {list(outcome.waves)} of "
                                 f"{outcome.instrument}/{outcome.scale} is not compared "
                                 f"(wave_pairs: {[list(p) for p in self.pairs()]})")
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

    def inbox_matches(self, pattern: str) -> tuple[list[Path], list[Path]]:
        """(paths inside the inbox, links leading outside it) that ``pattern`` matches, sorted."""
        return inbox_glob(self.inbox_dir, pattern)

    def source_paths(self, pattern: str) -> list[Path]:
        """What a source's ``pattern`` reads: the matches that stay inside the inbox."""
        return self.inbox_matches(pattern)[0]

    @property
    def inbox_dir(self) -> Path:
        return self.path(self.inbox)

    @property
    def output_dir(self) -> Path:
        return self.path(self.output)


def inbox_glob(inbox: Path, pattern: str) -> tuple[list[Path], list[Path]]:
    """(matches of ``pattern`` that stay inside ``inbox``, links leading outside it), sorted.

    Examples
    --------
    >>> import tempfile
    >>> inbox = Path(tempfile.mkdtemp())
    >>> (inbox / "a.csv").write_text("x")
    1
    >>> (inbox / "b.csv").symlink_to("/etc/hostname")
    >>> [[p.name for p in part] for part in inbox_glob(inbox, "*.csv")]
    [['a.csv'], ['b.csv']]
    """
    found = sorted(Path(inbox).glob(pattern))
    inside = [p for p in found if p.resolve().is_relative_to(Path(inbox).resolve())]
    return inside, [p for p in found if p not in set(inside)]


def load_program(path: str | Path) -> ProgramConfig:
    """Load ``program.yaml`` (or the folder holding it), validated.

    Raises ``ConfigError`` naming the file and field when invalid.
    """
    path = Path(path)
    if path.is_dir():
        path = path / PROGRAM_FILE
    config = read_yaml_model(path, ProgramConfig)
    config = config.model_copy(update={"root": path.parent.resolve()})
    check_paths(config, path)
    return config


def check_paths(config: ProgramConfig, program_file: Path) -> None:
    """The folders stay inside the program folder, the secrets outside the outputs.

    Every path is resolved (``..`` and symbolic links followed) before it is
    compared, so neither ``x/../outputs`` nor a link can lead elsewhere.
    ConfigError names the field and what to do.
    """
    root, output, inbox = config.root, config.output_dir, config.inbox_dir
    instruments = config.path(config.instruments_dir)

    def refuse(field: str, value: str, why: str) -> None:
        raise ConfigError(f"{program_file}: {field} {value!r} {why}")

    for field, value, folder in (("inbox", config.inbox, inbox), ("output", config.output, output),
                                 ("instruments_dir", config.instruments_dir, instruments)):
        if not folder.is_relative_to(root):
            refuse(field, value, f"is outside the program folder {root} (it resolves to "
                                 f"{folder}); give a folder inside it")
    if output == root:
        refuse("output", config.output, "is the program folder itself; give a folder of its "
                                        "own inside it, e.g. 'outputs'")
    for field, value, folder in (("inbox", config.inbox, inbox),
                                 ("instruments_dir", config.instruments_dir, instruments)):
        if folder.is_relative_to(output) or output.is_relative_to(folder):
            refuse("output", config.output, f"overlaps the {field} {value!r}: the outputs need "
                                            "a folder of their own")
    pseudo = config.pseudonymisation
    for field, value in (("pseudonymisation.key_file", pseudo.key_file),
                         ("pseudonymisation.link_file", pseudo.link_file)):
        if value is None:
            continue
        where = config.path(value)
        for name, folder in (("output", output), ("inbox", inbox)):
            if where.is_relative_to(folder):
                refuse(field, value, f"is inside the {name} folder ({where}); it must be "
                                     "outside the output folder and the inbox")
