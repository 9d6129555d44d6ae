"""ODK Central: a form's submissions with their review state, through pyodk and OData.

pyodk logs in (``POST /v1/sessions`` with the web user's email and password, or uses a
bearer token as given) and reads ``/v1/projects/{id}/forms/{xmlFormId}.svc/Submissions``
page by page (``$top``, ``$count``, then ``@odata.nextLink`` with its ``$skiptoken``). The
submissions are written as Central's own root-table CSV export (``submissions.csv``):
``SubmissionDate``, the fields with ``-``-joined group names, then ``KEY``, ``SubmitterID``,
``SubmitterName``, ``AttachmentsPresent``, ``AttachmentsExpected``, ``Status``,
``ReviewState``, ``DeviceID``, ``Edits``, ``FormVersion``. Repeat groups (their own tables)
and geopoints (a respondent's location) are left out. The session is logged out at the end;
no token is cached on disk.
"""

from __future__ import annotations

import contextlib

from pipelines.pull.http import (
    check_answer,
    csv_bytes,
    network_errors,
    require,
    same_server,
)
from pipelines.pull.snapshots import DATA

SYSTEM_COLUMNS = {"KEY": "__id", "SubmitterID": "submitterId", "SubmitterName": "submitterName",
                  "AttachmentsPresent": "attachmentsPresent",
                  "AttachmentsExpected": "attachmentsExpected", "Status": "status",
                  "ReviewState": "reviewState", "DeviceID": "deviceId", "Edits": "edits",
                  "FormVersion": "formVersion"}


def fetch(pull, secret: str) -> tuple[dict[str, bytes], int]:
    """The snapshot files (suffix -> bytes) and the number of submissions."""
    from pyodk._utils.session import Adapter, Session

    session = Session(base_url=pull.url, api_version="v1", username=pull.user or "-",
                      password=secret if pull.user else "-", cache_path=None)
    for scheme in ("https://", "http://"):  # our timeout; retries are the flow's, with back-off
        session.mount(scheme, Adapter(timeout=pull.timeout, max_retries=0))
    session.hooks["response"].append(check_answer)
    if not pull.user:
        session.headers["Authorization"] = f"Bearer {secret}"
    try:
        with network_errors():
            submissions = read_submissions(session, pull)
    finally:
        log_out(session, pull)
    if not submissions:
        return {}, 0
    rows = [central_row(s) for s in submissions]
    header = ["SubmissionDate", *dict.fromkeys(k for r in rows for k in r
                                               if k not in SYSTEM_COLUMNS and k != "SubmissionDate"),
              *SYSTEM_COLUMNS]
    return {DATA: csv_bytes(header, rows)}, len(rows)


def read_submissions(session, pull) -> list[dict]:
    """Every submission of the form, page by page; checked against ``@odata.count``."""
    from pyodk._utils.config import CentralConfig, Config
    from pyodk.client import Client

    config = Config(central=CentralConfig(base_url=pull.url, username=pull.user or "-",
                                          password="-"))
    client = Client(config=config, session=session, project_id=pull.project)
    page = client.submissions.get_table(form_id=pull.form, top=pull.page_size, count=True)
    check_page(page, first=True)
    total, rows = page["@odata.count"], list(page["value"])
    while page.get("@odata.nextLink"):
        link = page["@odata.nextLink"]
        require(same_server(link, session.base_url), "@odata.nextLink on the same server")
        page = session.get(link).json()
        check_page(page)
        rows += page["value"]
    require(len(rows) == total, f"{total} submissions (@odata.count), got {len(rows)}")
    return rows


def check_page(page, first: bool = False) -> None:
    """One OData page: ``value`` rows, each with ``__id`` and ``__system`` (review state)."""
    require(isinstance(page, dict) and isinstance(page.get("value"), list),
            "an OData document with a value list")
    if first:
        require(isinstance(page.get("@odata.count"), int), "@odata.count")
    require(all(isinstance(r, dict) and "__id" in r and isinstance(r.get("__system"), dict)
                and "submissionDate" in r["__system"] and "reviewState" in r["__system"]
                for r in page["value"]), "every submission with __id and __system/reviewState")


def central_row(submission: dict) -> dict:
    """One OData submission as a row of Central's CSV export."""
    system = submission["__system"]
    row = {"SubmissionDate": system.get("submissionDate")}
    row.update(flat_fields(submission))
    row.update({column: submission["__id"] if key == "__id" else system.get(key)
                for column, key in SYSTEM_COLUMNS.items()})
    return row


def flat_fields(data: dict, prefix: str = "") -> dict:
    """Form fields with ``-``-joined group names (``grp-q1``); metadata, repeats and geo left out.

    >>> flat_fields({"__id": "x", "estigma": {"oms1": "4"}, "rep@odata.navigationLink": "r"})
    {'estigma-oms1': '4'}
    """
    out = {}
    for key, value in data.items():
        if key.startswith("__") or "@odata" in key or isinstance(value, list):
            continue
        if isinstance(value, dict):
            if "coordinates" not in value:  # a group, not a GeoJSON point
                out.update(flat_fields(value, f"{prefix}{key}-"))
            continue
        out[f"{prefix}{key}"] = value
    return out


def log_out(session, pull) -> None:
    """End the session made for this pull (``DELETE /v1/sessions/current``), then close."""
    # The data is in: a session that could not be ended expires by itself.
    with contextlib.suppress(Exception), session:
        if pull.user and "Authorization" in session.headers:
            session.delete("sessions/current", timeout=pull.timeout)
