"""What every pull does with HTTP: classify the server's answer, and write what it sent as CSV.

Three kinds of failure, each handled its own way by the run:

- :class:`TokenRefused` (HTTP 401/403, or a token of the wrong shape): not retried;
- :class:`ServerDown` (no connection, a timeout, a broken transfer, HTTP 5xx/408/429):
  retried with back-off, then the run goes on with the last snapshot;
- :class:`BadResponse` (an HTML page, JSON that does not parse or lacks what the API
  documents, a changed field list): refused, nothing written.

Messages never carry the token, nor the server's raw answer beyond a short error text.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlsplit

import requests

from pipelines.errors import CapacitarError


class PullError(CapacitarError):
    """A pull that did not give a snapshot (the run goes on with the last one)."""


class TokenRefused(PullError):
    """The server refused the token (or there is none to send)."""


class ServerDown(PullError):
    """The server did not answer, or answered that it cannot now: worth retrying."""


class BadResponse(PullError):
    """The answer is not what the API documents: refused, nothing written."""


def check_answer(response: requests.Response, *args, **kwargs) -> requests.Response:
    """A ``requests`` response hook: raise the pull error an HTTP status or a web page means."""
    status = response.status_code
    if status in (401, 403):
        raise TokenRefused(f"the server refused the token (HTTP {status}){error_text(response)}")
    if status in (408, 429) or status >= 500:
        raise ServerDown(f"the server answered HTTP {status}")
    if status >= 400:
        raise BadResponse(f"the server answered HTTP {status}{error_text(response)}")
    if "html" in response.headers.get("Content-Type", "").lower():
        raise BadResponse("the server sent a web page (HTML: a login page?) instead of data")
    return response


def error_text(response: requests.Response) -> str:
    """The server's short error message (REDCap ``error``, ODK Central ``message``), if any."""
    try:
        body = response.json()
    except ValueError:
        return ""
    text = body.get("error") or body.get("message") or body.get("detail") \
        if isinstance(body, dict) else None
    return f": {str(text)[:160]}" if text else ""


@contextmanager
def network_errors() -> Iterator[None]:
    """Turn ``requests``' failures into :class:`ServerDown` or :class:`BadResponse`."""
    try:
        yield
    except requests.Timeout:
        raise ServerDown("no answer within the timeout") from None
    except (requests.ConnectionError, requests.exceptions.ChunkedEncodingError):
        raise ServerDown("could not connect, or the connection broke") from None
    except ValueError as exc:  # requests' JSONDecodeError is a ValueError too
        if isinstance(exc, PullError):
            raise
        raise BadResponse("the answer is not valid JSON (cut short?)") from None


def json_of(response: requests.Response):
    """The JSON body of ``response``; :class:`BadResponse` when it does not parse."""
    try:
        return json.loads(response.content.decode("utf-8"))
    except (ValueError, UnicodeDecodeError):
        raise BadResponse("the answer is not valid JSON (cut short?)") from None


def require(condition: bool, what: str) -> None:
    """:class:`BadResponse` naming what the API documents when ``condition`` fails."""
    if not condition:
        raise BadResponse(f"the answer is not what the API documents: {what}")


def same_server(link: str, base: str) -> bool:
    """True when ``link`` is on the server of ``base`` (the token is never sent elsewhere).

    >>> same_server("https://kf.kobotoolbox.org/api/v2/x?start=2", "https://kf.kobotoolbox.org")
    True
    >>> same_server("https://evil.example/x", "https://kf.kobotoolbox.org")
    False
    """
    a, b = urlsplit(link), urlsplit(base)
    return (a.scheme, a.netloc) == (b.scheme, b.netloc)


def cell(value) -> str:
    """A JSON scalar as CSV text: null -> empty, numbers as written, booleans lower case.

    >>> [cell(v) for v in (None, 3, 2.5, True, "Virú")]
    ['', '3', '2.5', 'true', 'Virú']
    """
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def csv_bytes(header: list[str], rows: list[dict]) -> bytes:
    """UTF-8 CSV (comma, minimal quoting) of ``rows`` (dicts) under ``header``."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    writer.writerows([cell(row.get(name)) for name in header] for row in rows)
    return out.getvalue().encode("utf-8")
