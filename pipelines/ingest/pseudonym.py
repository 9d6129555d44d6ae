"""Keyed pseudonyms for participants (HMAC-SHA256 with a program secret).

Identifiers are normalised before hashing (trim, case, accents, inner spaces)
so "María.Pérez@x.pe " at pre and "maria.perez@x.pe" at post are one person.
The secret never reaches an output; without it a pseudonym cannot be
reversed or recomputed from a guessed email.
"""

from __future__ import annotations

import hmac
import os
import re
import secrets
from pathlib import Path

import pandas as pd

from pipelines.errors import ConfigError
from pipelines.ingest.text import fold, map_distinct

KEY_ENV = "CAPACITAR_PSEUDONYM_KEY"
PREFIX = "P"
DIGITS = 12  # 48 bits: collision-free in practice for programs of < 10^5 people


# What people type in an identifier cell when they have none: not one person, no identifier.
PLACEHOLDERS = frozenset({
    "n/a", "na", "n.a.", "n.a", "nan", "none", "null", "nil", "no", "ninguno", "ninguna",
    "no tiene", "no tengo", "sin correo", "sin email", "sin e-mail", "sin dni", "sin dato",
    "sin datos", "sin informacion", "s/c", "s/n", "s/d", "no aplica", "no registra",
    "desconocido", "unknown", "missing", "xxx", "x", "0",
})
NO_LETTER_OR_DIGIT = re.compile(r"[\W_]*")  # "-", "--", ".", "?", "*": a blank with marks


def normalise_identifier(value: object) -> str:
    """Canonical text of an identifier: no accents, lower case, single spaces.

    A placeholder (``N/A``, ``-``, ``sin correo``, ...) is no identifier: "".

    Examples
    --------
    >>> normalise_identifier("  María.Pérez@X.pe ")
    'maria.perez@x.pe'
    >>> normalise_identifier("N/A"), normalise_identifier(" - "), normalise_identifier("Sin correo")
    ('', '', '')
    """
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return ""
    folded = fold(value)  # the same folding as labels and sites (cached)
    if folded in PLACEHOLDERS or (not folded[:1].isalnum()
                                  and NO_LETTER_OR_DIGIT.fullmatch(folded)):
        return ""
    return folded


def pseudonym(identifier: str, key: bytes) -> str:
    """HMAC-SHA256 pseudonym of an already normalised identifier.

    Examples
    --------
    >>> pseudonym("maria.perez@x.pe", b"k") == pseudonym("maria.perez@x.pe", b"k")
    True
    >>> pseudonym("a", b"k1") != pseudonym("a", b"k2")
    True
    """
    # hmac.digest is the one-shot C implementation: several times faster than hmac.new.
    digest = hmac.digest(key, identifier.encode("utf-8"), "sha256").hex()
    return PREFIX + digest[:DIGITS]


def pseudonymise(frame: pd.DataFrame, columns: list[str], key: bytes) -> pd.Series:
    """One pseudonym per row from the identifier columns; empty string where none.

    Several columns are joined after normalisation, so list only the columns
    that together identify a person (usually one: an email or a DNI).
    """
    # Hash each distinct identifier once: exports repeat people across rows and waves.
    normalised = frame[columns].apply(lambda col: map_distinct(col, normalise_identifier))
    joined = normalised.agg("|".join, axis=1) if len(columns) > 1 else normalised[columns[0]]
    has_id = normalised.ne("").all(axis=1)
    hashed = map_distinct(joined, lambda v: pseudonym(v, key))
    return hashed.where(has_id, "").astype("str")


def load_key(key_file: Path, create_if_missing: bool = False) -> bytes:
    """The program's secret: from $CAPACITAR_PSEUDONYM_KEY, else ``key_file``.

    With ``create_if_missing`` (demo programs) a new random key is written
    with owner-only permissions; otherwise a missing key is a clear error.
    """
    from_env = os.environ.get(KEY_ENV, "").strip()
    if from_env:
        return from_env.encode("utf-8")
    if key_file.exists():
        key = key_file.read_text(encoding="utf-8").strip()
        if len(key) < 16:
            raise ConfigError(f"{key_file}: pseudonymisation key is too short (need >= 16 chars)")
        return key.encode("utf-8")
    if not create_if_missing:
        raise ConfigError(
            f"No pseudonymisation key: {key_file} does not exist and ${KEY_ENV} is not set.\n"
            f"Create one (and keep it outside the outputs, backed up): "
            f"capacitar keygen {key_file}"
        )
    write_new_key(key_file)
    return key_file.read_text(encoding="utf-8").strip().encode("utf-8")


def write_new_key(key_file: Path) -> None:
    """Write a new random 256-bit key readable only by its owner."""
    key_file.parent.mkdir(parents=True, exist_ok=True)
    key_file.write_text(secrets.token_hex(32) + "\n", encoding="utf-8")
    key_file.chmod(0o600)


def write_link_file(path: Path, links: pd.DataFrame) -> None:
    """Merge pseudonym -> identifier pairs into the link file (owner-only permissions).

    The link file is the only place a pseudonym meets its identifier; keep it
    apart from the outputs, for authorised re-identification only.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists():
        links = pd.concat([pd.read_csv(path, dtype=str, keep_default_na=False), links])
    links = links.drop_duplicates().sort_values(["participant", "identifier"])
    tmp = path.with_suffix(path.suffix + ".tmp")
    links.to_csv(tmp, index=False)
    tmp.chmod(0o600)
    tmp.replace(path)
