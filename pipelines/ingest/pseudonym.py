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
MIN_KEY_CHARS = 16  # the same minimum for the file and the environment variable
PREFIX = "P"
RATER_PREFIX = "R"  # raters (staff) get their own pseudonyms: R + 12 hex digits
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


def pseudonym(identifier: str, key: bytes, prefix: str = PREFIX) -> str:
    """HMAC-SHA256 pseudonym of an already normalised identifier.

    Examples
    --------
    >>> pseudonym("maria.perez@x.pe", b"k") == pseudonym("maria.perez@x.pe", b"k")
    True
    >>> pseudonym("a", b"k1") != pseudonym("a", b"k2")
    True
    >>> pseudonym("a", b"k", RATER_PREFIX)[1:] != pseudonym("a", b"k")[1:]
    True
    """
    # Another prefix also hashes another message, so a tutor who is also a trainee has
    # two unlinkable pseudonyms.
    message = identifier if prefix == PREFIX else f"{prefix}\x1f{identifier}"
    # hmac.digest is the one-shot C implementation: several times faster than hmac.new.
    digest = hmac.digest(key, message.encode("utf-8"), "sha256").hex()
    return prefix + digest[:DIGITS]


def pseudonymise(frame: pd.DataFrame, columns: list[str], key: bytes,
                 prefix: str = PREFIX) -> pd.Series:
    """One pseudonym per row from the identifier columns; empty string where none.

    Several columns are joined after normalisation, so list only the columns
    that together identify a person (usually one: an email or a DNI).
    """
    # Hash each distinct identifier once: exports repeat people across rows and waves.
    normalised = frame[columns].apply(lambda col: map_distinct(col, normalise_identifier))
    joined = normalised.agg("|".join, axis=1) if len(columns) > 1 else normalised[columns[0]]
    has_id = normalised.ne("").all(axis=1)
    hashed = map_distinct(joined, lambda v: pseudonym(v, key, prefix))
    return hashed.where(has_id, "").astype("str")


def load_key(key_file: Path, create_if_missing: bool = False) -> bytes:
    """The program's secret: from $CAPACITAR_PSEUDONYM_KEY, else ``key_file``.

    Either must hold at least ``MIN_KEY_CHARS`` characters, and the file must be
    readable by its owner only (on POSIX systems). With ``create_if_missing``
    (demo programs) a new random key is written with owner-only permissions;
    otherwise a missing key is a clear error.
    """
    from_env = os.environ.get(KEY_ENV, "").strip()
    if from_env:
        return checked_key(from_env, f"${KEY_ENV}")
    if key_file.is_dir():
        raise ConfigError(f"{key_file}: pseudonymisation.key_file is a folder; give the key's "
                          f"file (create one with: capacitar keygen {key_file / 'pseudonym.key'})")
    if key_file.exists():
        check_owner_only(key_file)
        return checked_key(key_file.read_text(encoding="utf-8").strip(), str(key_file))
    if not create_if_missing:
        raise ConfigError(
            f"No pseudonymisation key: {key_file} does not exist and ${KEY_ENV} is not set.\n"
            f"Create one (and keep it outside the outputs, backed up): "
            f"capacitar keygen {key_file}"
        )
    write_new_key(key_file)
    return key_file.read_text(encoding="utf-8").strip().encode("utf-8")


def checked_key(key: str, where: str) -> bytes:
    """``key`` as bytes, if long enough to resist guessing."""
    if len(key) < MIN_KEY_CHARS:
        raise ConfigError(f"{where}: the pseudonymisation key is too short ({len(key)} "
                          f"characters; at least {MIN_KEY_CHARS}): make one with "
                          "`capacitar keygen FILE`")
    return key.encode("utf-8")


def check_owner_only(key_file: Path) -> None:
    """Refuse a key file that other users can read (it would let them re-identify people)."""
    if os.name != "posix":
        return
    mode = key_file.stat().st_mode & 0o777
    if mode & 0o077:
        raise ConfigError(f"{key_file} can be read by other users (mode {mode:o}); make it "
                          f"yours only: chmod 600 {key_file}")


def key_identity(key: bytes) -> str:
    """A keyed hash that tells keys apart without revealing them (for the run state).

    Examples
    --------
    >>> key_identity(b"k" * 16) == key_identity(b"k" * 16) != key_identity(b"j" * 16)
    True
    """
    return hmac.digest(key, b"capacitar key identity", "sha256").hex()[:16]


def write_new_key(key_file: Path) -> None:
    """Write a new random 256-bit key readable only by its owner (never readable by others,
    not even while it is written)."""
    key_file.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(secrets.token_hex(32) + "\n")


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
