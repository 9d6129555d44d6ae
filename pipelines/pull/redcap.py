"""REDCap: records (raw, flat), the data dictionary and the project's structure, through PyCap.

REDCap's API is one POST endpoint (``content=project|metadata|record|event|
formEventMapping|repeatingFormsEvents``, ``format=json``); PyCap makes the calls. Records
come as JSON (a cut-short answer cannot pass for a shorter export, as a CSV could) and are
written as the CSV the records export gives: the export field names as columns, checkbox
fields as ``field___code`` columns, ``redcap_event_name`` and the repeat columns as REDCap
adds them. The records must match the dictionary fetched with them (a project edited during
the pull is refused; the next pull gets a consistent pair).
"""

from __future__ import annotations

import json
import re

from pipelines.pull.http import (
    BadResponse,
    TokenRefused,
    check_answer,
    csv_bytes,
    network_errors,
    require,
)
from pipelines.pull.snapshots import DATA, DICTIONARY, PROJECT

DICTIONARY_KEYS = ("field_name", "form_name", "field_type")


def fetch(pull, token: str) -> tuple[dict[str, bytes], int]:
    """The snapshot files (suffix -> bytes) and the number of records."""
    from redcap import Project
    from redcap.request import RedcapError

    if not re.fullmatch(r"[0-9A-Fa-f]{32}", token):  # PyCap would put the token in its error
        raise TokenRefused("the token is not a REDCap API token (32 hexadecimal characters)")
    project = Project(pull.url, token, timeout=pull.timeout, hooks={"response": check_answer})
    try:
        with network_errors():
            info = project.export_project_info()
            metadata = project.metadata  # cached: export_records asks for its field names
            records = project.export_records(format_type="json", raw_or_label="raw",
                                             raw_or_label_headers="raw",
                                             export_checkbox_labels=False)
            structure = {}
            if isinstance(info, dict) and str(info.get("is_longitudinal")) == "1":
                structure["events"] = project.export_events(format_type="json")
                structure["form_event_mapping"] = project.export_instrument_event_mappings(
                    format_type="json")
            if isinstance(info, dict) and str(info.get("has_repeating_instruments_or_events")) == "1":
                structure["repeating_forms_events"] = \
                    project.export_repeating_instruments_events(format_type="json")
    except RedcapError as exc:  # an {"error": ...} answer with HTTP 200
        raise BadResponse(f"REDCap answered with an error: {str(exc)[:160]}") from None
    require(isinstance(info, dict) and "is_longitudinal" in info, "project information")
    check_dictionary(metadata)
    if not records:
        return {}, 0
    header = check_records(records, metadata, structure)
    files = {DATA: csv_bytes(header, records),
             DICTIONARY: csv_bytes(list(metadata[0]), metadata),
             PROJECT: json.dumps(structure, indent=1, ensure_ascii=False).encode("utf-8")}
    return files, len(records)


def check_dictionary(metadata) -> None:
    """The data dictionary: a list of fields, each with its name, form and type."""
    require(isinstance(metadata, list) and metadata and all(
        isinstance(f, dict) and all(k in f for k in DICTIONARY_KEYS) for f in metadata),
        "a data dictionary (metadata) listing field_name, form_name and field_type")


def check_records(records, metadata: list[dict], structure: dict) -> list[str]:
    """The records' columns, checked against the dictionary and the project's events."""
    require(isinstance(records, list) and all(isinstance(r, dict) for r in records),
            "records as a list of flat objects")
    header = list(records[0])
    require(all(list(r) == header for r in records), "every record with the same fields")
    require(header[0] == metadata[0]["field_name"], "the record id field first")
    fields = [f["field_name"] for f in metadata if f["field_type"] != "descriptive"]
    checkbox = {f["field_name"] for f in metadata if f["field_type"] == "checkbox"}
    forms = {f["form_name"] for f in metadata}
    exported = set(header)

    def listed(column: str) -> bool:
        return (column in fields or column.startswith("redcap_")
                or column.rsplit("___", 1)[0] in checkbox
                or any(column in (f"{form}_complete", f"{form}_timestamp") for form in forms))

    unknown = [c for c in header if not listed(c)]
    missing = [f for f in fields if f not in exported and not (
        f in checkbox and any(c.startswith(f"{f}___") for c in header))]
    if unknown or missing:
        raise BadResponse("the records do not match the data dictionary fetched with them "
                          f"(not in the dictionary: {', '.join(unknown[:5]) or 'none'}; "
                          f"missing: {', '.join(missing[:5]) or 'none'}): the project "
                          "changed during the pull?")
    events = {e.get("unique_event_name") for e in structure.get("events", [])}
    if events:
        seen = {r.get("redcap_event_name", "") for r in records} - {""}
        require(seen <= events, "records only in the project's events")
    return header
