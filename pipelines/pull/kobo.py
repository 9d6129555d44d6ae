"""KoboToolbox: an asset's submissions with their validation status, over the v2 REST API.

``GET /api/v2/assets/{uid}/`` gives the form (its questions, in order, with their group
paths); ``GET /api/v2/assets/{uid}/data/?format=json&limit=N&start=0`` the submissions, page
by page through the ``next`` links (``count`` checked), with ``Authorization: Token ...``.
The submissions are written as Kobo's CSV export with XML names: the form's questions
(``grp/q1``; a question nobody answered yet is an empty column, as in Kobo's export), then
the submission's metadata (``_id``, ``_uuid``, ``_submission_time``, ``_validation_status``
as its uid, e.g. ``validation_status_not_approved``, ``_submitted_by``...). Repeat groups
(their own tables), attachments, notes, tags and the geolocation are left out.
"""

from __future__ import annotations

import requests

from pipelines.pull.http import (
    check_answer,
    csv_bytes,
    json_of,
    network_errors,
    require,
    same_server,
)
from pipelines.pull.snapshots import DATA

NO_DATA = {"note", "begin_group", "end_group", "begin_repeat", "end_repeat"}
REQUIRED = ("_id", "_submission_time", "_validation_status")


def fetch(pull, token: str) -> tuple[dict[str, bytes], int]:
    """The snapshot files (suffix -> bytes) and the number of submissions."""
    base = pull.url.rstrip("/")
    asset_url = f"{base}/api/v2/assets/{pull.asset}/"
    with requests.Session() as session, network_errors():
        session.headers["Authorization"] = f"Token {token}"
        session.hooks["response"].append(check_answer)
        asset = json_of(session.get(asset_url, params={"format": "json"}, timeout=pull.timeout))
        questions = form_questions(asset)
        rows = read_submissions(session, f"{asset_url}data/", pull, base)
    if not rows:
        return {}, 0
    extra = [k for k in dict.fromkeys(k for r in rows for k in r) if k not in questions]
    table = [kobo_row(r) for r in rows]
    header = [*questions, *(k for k in extra if any(k in r for r in table))]
    return {DATA: csv_bytes(header, table)}, len(rows)


def form_questions(asset) -> list[str]:
    """The XML paths of the form's questions outside repeat groups, in the form's order."""
    survey = asset.get("content", {}).get("survey") if isinstance(asset, dict) else None
    require(isinstance(survey, list), "an asset with its form (content.survey)")
    groups: list[tuple[str, bool]] = []  # (name, is a repeat) of the groups we are in
    paths = []
    for row in survey:
        kind, name = str(row.get("type", "")), row.get("name") or row.get("$autoname")
        if kind in ("begin_group", "begin_repeat"):
            groups.append((name, kind == "begin_repeat"))
        elif kind in ("end_group", "end_repeat"):
            groups = groups[:-1]
        elif kind not in NO_DATA and name and not any(repeat for _, repeat in groups):
            paths.append(row.get("$xpath") or "/".join([*(g for g, _ in groups), name]))
    return paths


def read_submissions(session: requests.Session, url: str, pull, base: str) -> list[dict]:
    """Every submission, following ``next`` (on the same server only); checked against ``count``."""
    params: dict | None = {"format": "json", "limit": pull.page_size, "start": 0}
    rows, count = [], None
    while url:
        page = json_of(session.get(url, params=params, timeout=pull.timeout))
        require(isinstance(page, dict) and isinstance(page.get("results"), list)
                and isinstance(page.get("count"), int), "a page with count and results")
        require(all(isinstance(r, dict) and all(k in r for k in REQUIRED)
                    for r in page["results"]), f"every submission with {', '.join(REQUIRED)}")
        count = page["count"] if count is None else count
        rows += page["results"]
        url, params = page.get("next"), None
        require(not url or same_server(url, base), "next links on the same server")
    require(len(rows) == count, f"{count} submissions (count), got {len(rows)}")
    return rows


def kobo_row(submission: dict) -> dict:
    """One submission as a row of Kobo's CSV export (lists and objects left out)."""
    row = {k: v for k, v in submission.items() if not isinstance(v, (list, dict))}
    status = submission.get("_validation_status")
    row["_validation_status"] = status.get("uid", "") if isinstance(status, dict) else status
    return row
