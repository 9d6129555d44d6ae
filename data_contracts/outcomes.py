"""Great Expectations' verdicts on an instrument, reused while nothing they depend on changed.

A checkpoint's verdict on one instrument's frame is a function of the frame,
the suite with its stored GX objects, capacitar's contract code and the GX,
pandas and numpy versions. Each verdict is recorded
(``gx/uncommitted/capacitar_outcomes.json``) under a key made of digests of all
of these, taken from the files as they are before the checkpoint would run; a
later run whose key is the same reads the verdict instead of importing GX and
running the checkpoint again. Anything different (one answer in one file, a
cohort added to program.yaml, a hand-added expectation, another version) gives
another key, and that instrument is validated again.

The record holds what :func:`data_contracts.rules.failure_of` reads from a
result: rule, column name, row numbers of the instrument's frame, the declared
codes. No value of any row is kept.
"""

from __future__ import annotations

import functools
import hashlib
import json
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from urllib.parse import unquote, urlparse

import numpy as np
import pandas as pd
import yaml

from instruments.model import Instrument
from pipelines.config import ProgramConfig
from pipelines.export import write_json

RECORD_FILE = "capacitar_outcomes.json"
FORMAT = 1
# capacitar's code that turns declarations and frames into what GX checks, and reads back
CODE = [*sorted(Path(__file__).parent.glob("*.py")),
        Path(__file__).parent.parent / "instruments" / "model.py",
        Path(__file__).parent.parent / "pipelines" / "ingest" / "pseudonym.py"]


def record_path(config: ProgramConfig) -> Path:
    """Where the verdicts of a program are recorded (GX's own uncommitted folder)."""
    return config.path("gx") / "uncommitted" / RECORD_FILE


def frame_digest(frame: pd.DataFrame) -> str:
    """SHA-256 of a frame's columns, dtypes, row order and values (with each object's type).

    Examples
    --------
    >>> a = pd.DataFrame({"x": [1, 2]})
    >>> frame_digest(a) == frame_digest(a.copy()), frame_digest(a) == frame_digest(a[::-1])
    (True, False)
    >>> frame_digest(pd.DataFrame({"x": ["1"]})) == frame_digest(pd.DataFrame({"x": [1]}))
    False
    """
    digest = hashlib.sha256(json.dumps([[str(c), str(t)] for c, t in frame.dtypes.items()])
                            .encode())
    digest.update(pd.util.hash_pandas_object(frame, index=True).to_numpy().tobytes())
    for column in frame.columns[frame.dtypes.eq(object).to_numpy()]:  # "1" and 1 hash alike
        kinds = frame[column].map(lambda v: type(v).__name__)
        digest.update(pd.util.hash_pandas_object(kinds, index=False).to_numpy().tobytes())
    return digest.hexdigest()


def gx_version() -> str:
    """The installed Great Expectations version (without importing it)."""
    try:
        return version("great_expectations")
    except PackageNotFoundError:
        return "unknown"


def stored_files(config: ProgramConfig, inst_id: str) -> list[Path]:
    """The GX files of an instrument's checkpoint: suite, validation definition, checkpoint."""
    gx = config.path("gx")
    return [gx / "expectations" / f"{inst_id}.json",
            gx / "validation_definitions" / f"{inst_id}.json",
            gx / "checkpoints" / f"capacitar_{inst_id}.json"]


def data_source(config: ProgramConfig, inst_id: str) -> bytes:
    """The data source of capacitar's checkpoints in great_expectations.yml, with only
    ``inst_id``'s asset (another instrument's new asset changes nothing here); the whole
    file when it is not as capacitar writes it."""
    from data_contracts.checkpoints import DATASOURCE

    path = config.path("gx") / "great_expectations.yml"
    if not path.exists():
        return b"\0missing"
    raw = path.read_bytes()
    try:
        source = dict(parsed_yaml(raw)["fluent_datasources"][DATASOURCE])
        source["assets"] = {inst_id: source.get("assets", {}).get(inst_id)}
    except (yaml.YAMLError, KeyError, TypeError, ValueError, AttributeError):
        return raw
    return json.dumps(source, sort_keys=True, default=str).encode()


@functools.lru_cache(maxsize=4)
def parsed_yaml(raw: bytes):
    """YAML text parsed once per process (read again for each instrument)."""
    return yaml.load(raw, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))


@functools.lru_cache(maxsize=1)
def code_digest() -> bytes:
    """SHA-256 of capacitar's contract code (:data:`CODE`)."""
    digest = hashlib.sha256()
    for path in CODE:
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.digest()


def contract_digest(inst: Instrument, config: ProgramConfig) -> str:
    """SHA-256 of what an instrument's suite and checkpoint are made of, as stored now."""
    declared = {"instrument": inst.model_dump(mode="json"),
                "cohorts": [c.id for c in config.cohorts], "waves": [w.id for w in config.waves],
                "gx": gx_version(), "pandas": pd.__version__, "numpy": np.__version__}
    digest = hashlib.sha256(json.dumps(declared, sort_keys=True, default=str).encode())
    digest.update(code_digest())
    for path in stored_files(config, inst.id):
        digest.update(path.name.encode())
        digest.update(path.read_bytes() if path.exists() else b"\0missing")
    digest.update(data_source(config, inst.id))
    return digest.hexdigest()


class OutcomeRecord:
    """The recorded verdicts of a program's instruments, and the Data Docs address."""

    def __init__(self, config: ProgramConfig):
        self.path = record_path(config)
        self.gx = config.path("gx")
        self.verdicts: dict[str, dict] = {}
        self.docs = ""
        self.changed = False
        try:
            stored = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return  # none yet, or unreadable: every instrument is validated
        if isinstance(stored, dict) and stored.get("format") == FORMAT:
            self.verdicts = stored.get("instruments") or {}
            self.docs = stored.get("docs") or ""

    def get(self, inst_id: str, frame: str, contract: str) -> list[dict] | None:
        """The failures recorded for ``inst_id`` with these frame and contract digests."""
        kept = self.verdicts.get(inst_id)
        if isinstance(kept, dict) and kept.get("key") == f"{frame}:{contract}":
            return kept.get("failures")
        return None

    def put(self, inst_id: str, frame: str, contract: str, failures: list[dict]) -> None:
        self.verdicts[inst_id] = {"key": f"{frame}:{contract}", "failures": failures}
        self.changed = True

    def docs_exist(self) -> bool:
        """True when the recorded Data Docs index is a file in this program's ``gx/`` (not
        in the folder this program was copied from)."""
        url = urlparse(self.docs)
        index = Path(unquote(url.path))
        return (url.scheme == "file" and index.is_file()
                and index.resolve().is_relative_to(self.gx.resolve()))

    def save(self, docs: str) -> None:
        """Write the record (atomically: a concurrent ``validate`` reads it whole or not)."""
        if self.changed or docs != self.docs:
            self.docs = docs
            write_json({"format": FORMAT, "docs": docs, "instruments": self.verdicts}, self.path)
