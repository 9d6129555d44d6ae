"""Local stand-ins for the REDCap, ODK Central and KoboToolbox APIs (tests of pipelines/pull).

Each serves on 127.0.0.1 the requests and answers their documentation gives (REDCap's single
POST endpoint; ODK Central's sessions and OData Submissions with ``$top``/``$count``/
``@odata.nextLink``; Kobo's v2 asset and data pages with ``limit``/``start``/``next``), with
the demo program's answers (``pipelines/demo.py``) in each tool's shape: Spanish labels,
checkbox / select-multiple fields and repeat groups included. ``fault`` makes a server
misbehave: ``down`` (HTTP 503), ``hang`` (answers after the client's timeout), ``html`` (a
login page with HTTP 200), ``truncated`` (JSON cut short), ``drop`` (closes the connection),
``short`` (ODK/Kobo: a page count one more than the rows it serves).
"""

from __future__ import annotations

import base64
import copy
import csv
import json
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit

import pandas as pd

from pipelines.demo import COHORTS, EVENTS, REDCAP_DICTIONARY
from pipelines.ingest.adapters import DICTIONARY_COLUMNS

LOGIN_PAGE = b"<!DOCTYPE html><html><body><form>Iniciar sesi\xc3\xb3n</form></body></html>"
REDCAP_TOKEN = "0A1B2C3D4E5F60718293A4B5C6D7E8F9"
KOBO_TOKEN = "a94f3c1e0b7d25f68e9c4a1d3b7f0e2c5a8d6b4f"
ODK_PASSWORD = "Contraseña-de-prueba-2026!"
ODK_USER = "evaluacion@capacitar.example"


class FakeServer:
    """A threaded HTTP server on 127.0.0.1 answering through :meth:`answer`."""

    def __init__(self):
        self.fault: str | None = None
        self.hits: list[str] = []  # method and path of every request (no headers: no token)
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                owner.serve(self, "GET")

            def do_POST(self):
                owner.serve(self, "POST")

            def do_DELETE(self):
                owner.serve(self, "DELETE")

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.httpd.block_on_close = False
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    @property
    def base(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}"

    def serve(self, handler: BaseHTTPRequestHandler, method: str) -> None:
        parts = urlsplit(handler.path)
        self.hits.append(f"{method} {parts.path}")
        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(length) if length else b""
        if self.fault == "drop":
            handler.close_connection = True
            handler.connection.close()
            return
        if self.fault == "hang":
            time.sleep(3)
        if self.fault == "down":
            status, kind, content = 503, "text/plain", b"Service Unavailable"
        elif self.fault == "html":
            status, kind, content = 200, "text/html; charset=utf-8", LOGIN_PAGE
        else:
            status, payload = self.answer(method, parts.path, parse_qs(parts.query),
                                          handler.headers, body)
            kind, content = "application/json", json.dumps(payload).encode("utf-8")
            if self.fault == "truncated" and status == 200:
                content = content[: len(content) // 2]
        handler.send_response(status)
        handler.send_header("Content-Type", kind)
        handler.send_header("Content-Length", str(len(content)))
        handler.end_headers()
        handler.wfile.write(content)

    def answer(self, method, path, query, headers, body) -> tuple[int, object]:
        raise NotImplementedError

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


# --- REDCap -----------------------------------------------------------------------
class RedcapServer(FakeServer):
    """REDCap's API: one POST endpoint at /api/, ``content`` chooses what comes back."""

    def __init__(self, inbox: Path):
        super().__init__()
        self.token = REDCAP_TOKEN
        self.metadata = redcap_metadata(inbox)
        self.records = redcap_records(inbox)

    @property
    def url(self) -> str:
        return f"{self.base}/api/"

    def answer(self, method, path, query, headers, body):
        form = {k: v[0] for k, v in parse_qs(body.decode("utf-8")).items()}
        if method != "POST" or path != "/api/":
            return 404, {"error": "The requested method is not implemented."}
        if form.get("token") != self.token:
            return 403, {"error": "You do not have permissions to use the API"}
        if form.get("format") != "json":
            return 400, {"error": "This test server speaks JSON only"}
        content = form.get("content")
        if content == "record" and (form.get("type"), form.get("rawOrLabel")) != ("flat", "raw"):
            return 400, {"error": "expected type=flat and rawOrLabel=raw"}
        answers = {
            "project": {"project_id": 14, "project_title": "Bienestar del proveedor 2026",
                        "is_longitudinal": 1, "has_repeating_instruments_or_events": 1,
                        "purpose": 2, "project_language": "Spanish"},
            "metadata": self.metadata,
            "record": self.records,
            "event": [{"event_name": name, "arm_num": 1, "unique_event_name": unique,
                       "custom_event_label": "", "event_id": 40 + i}
                      for i, (name, unique) in enumerate(zip(
                          ["Línea de base", "Después", "Seguimiento"], EVENTS.values()))],
            "formEventMapping": [{"arm_num": 1, "unique_event_name": e, "form": f}
                                 for e in EVENTS.values()
                                 for f in ("registro", "proqol", "stss", "contactos")],
            "repeatingFormsEvents": [{"event_name": e, "form_name": "contactos",
                                      "custom_form_label": "[contacto_fecha]"}
                                     for e in EVENTS.values()],
        }
        if content not in answers:
            return 400, {"error": f"The value of the parameter \"content\" ({content}) is not valid"}
        return 200, answers[content]


def redcap_metadata(inbox: Path) -> list[dict]:
    """The demo's data dictionary as the API's ``content=metadata`` gives it, plus a checkbox
    field on the registration form and a repeating contact-log instrument."""
    with (inbox / REDCAP_DICTIONARY).open(encoding="utf-8", newline="") as handle:
        rows = [{DICTIONARY_COLUMNS[k]: v for k, v in row.items()}
                for row in csv.DictReader(handle)]
    blank = dict.fromkeys(DICTIONARY_COLUMNS.values(), "")
    at = next(i for i, r in enumerate(rows) if r["form_name"] != "registro")
    rows.insert(at, {**blank, "field_name": "formacion_previa", "form_name": "registro",
                     "field_type": "checkbox", "field_label": "Formación previa recibida",
                     "select_choices_or_calculations":
                         "1, Primeros auxilios psicológicos | 2, Atención informada en trauma "
                         "| 3, Ninguna"})
    rows += [{**blank, "field_name": "contacto_fecha", "form_name": "contactos",
              "field_type": "text", "field_label": "Fecha del contacto",
              "text_validation_type_or_show_slider_number": "date_ymd"},
             {**blank, "field_name": "contacto_nota", "form_name": "contactos",
              "field_type": "notes", "field_label": "Nota de seguimiento"}]
    return rows


def redcap_records(inbox: Path) -> list[dict]:
    """The demo's records export as ``content=record&type=flat&format=json`` gives it: the
    same rows in the same order, the repeat columns, checkbox columns, then contact-log rows."""
    export = next(inbox.glob("redcap_bienestar_export_*.csv"))
    with export.open(encoding="utf-8", newline="") as handle:
        hand = list(csv.DictReader(handle))
    records = []
    for i, row in enumerate(hand):
        record = {"record_id": row["record_id"], "redcap_event_name": row["redcap_event_name"],
                  "redcap_repeat_instrument": "", "redcap_repeat_instance": ""}
        for field, value in row.items():
            record.setdefault(field, value)
            if field == "fecha_encuesta":
                record.update({f"formacion_previa___{c}": str(int((i + c) % 3 == 0))
                               for c in (1, 2, 3)})
                record["registro_complete"] = "2"
        record.update({"contacto_fecha": "", "contacto_nota": "", "contactos_complete": ""})
        records.append(record)
    for k, base in enumerate(records[:6]):
        contact = {key: "" for key in base}
        contact.update({"record_id": base["record_id"],
                        "redcap_event_name": base["redcap_event_name"],
                        "redcap_repeat_instrument": "contactos", "redcap_repeat_instance": k % 2 + 1,
                        "contacto_fecha": "2026-03-1%d" % k,
                        "contacto_nota": "Llamada de seguimiento; refiere sueño más reparador",
                        "contactos_complete": "2"})
        records.append(contact)
    return records


# --- ODK Central --------------------------------------------------------------------
class OdkServer(FakeServer):
    """ODK Central: ``POST /v1/sessions``, OData ``Submissions`` with paging, log out."""

    def __init__(self, inbox: Path, project: int = 3, form: str = "estigma_omshc"):
        super().__init__()
        self.project, self.form = project, form
        self.user, self.password = ODK_USER, ODK_PASSWORD
        self.sessions: set[str] = set()
        self.issued: list[str] = []  # every session token given out (tests look for leaks)
        self.submissions = odk_submissions(inbox)

    @property
    def url(self) -> str:
        return self.base

    def answer(self, method, path, query, headers, body):
        unauthorised = 401, {"code": 401.2,
                             "message": "Could not authenticate with the provided credentials."}
        if method == "POST" and path == "/v1/sessions":
            sent = json.loads(body or b"{}")
            if (sent.get("email"), sent.get("password")) != (self.user, self.password):
                return unauthorised
            token = uuid.uuid4().hex + "!" + uuid.uuid4().hex[:8]
            self.sessions.add(token)
            self.issued.append(token)
            return 200, {"token": token, "expiresAt": "2026-09-02T06:00:00.000Z",
                         "createdAt": "2026-09-01T06:00:00.000Z"}
        bearer = headers.get("Authorization", "").removeprefix("Bearer ")
        if bearer not in self.sessions:
            return unauthorised
        if method == "DELETE" and path == "/v1/sessions/current":
            self.sessions.discard(bearer)
            return 200, {"success": True}
        table = f"/v1/projects/{self.project}/forms/{self.form}.svc/Submissions"
        if method != "GET" or path != table:
            return 404, {"code": 404.1,
                         "message": "Could not find the resource you were looking for."}
        top = int(query.get("$top", [len(self.submissions)])[0])
        start = int(base64.b64decode(query["$skiptoken"][0])) if "$skiptoken" in query else 0
        page = {"@odata.context": f"{self.base}/v1/projects/{self.project}/forms/{self.form}"
                                  ".svc/$metadata#Submissions",
                "value": self.submissions[start:start + top]}
        if start + top < len(self.submissions):
            cursor = base64.b64encode(str(start + top).encode()).decode()
            page["@odata.nextLink"] = f"{self.base}{table}?" + urlencode(
                {"$top": top, "$count": "true", "$skiptoken": cursor})
        if query.get("$count", ["false"])[0].lower() == "true":
            page["@odata.count"] = len(self.submissions) + (self.fault == "short")
        return 200, page

    def add(self, submission: dict) -> None:
        self.submissions.append(submission)


def odk_submissions(inbox: Path) -> list[dict]:
    """The demo's stigma sheets as OData Submissions of one form (groups, a select-multiple
    field, a repeat group as its navigation link, review states)."""
    rows = []
    for wave in ("pre", "post", "seguimiento"):
        sheet = pd.read_csv(inbox / f"estigma_OMSHC_{wave}.csv", sep=";", encoding="cp1252",
                            dtype=str, keep_default_na=False)
        for _, row in sheet.iterrows():
            rows.append(odk_submission(wave, row["Nombre y apellidos"], row["Correo"], row["Sede"],
                                       row["Fecha"], [row[f"OMS{n}"] for n in range(1, 16)],
                                       len(rows)))
    return rows


def odk_submission(wave, name, email, site, date, answers, n, review="approved") -> dict:
    instance = f"uuid:{uuid.UUID(int=n + 1)}"
    return {
        "__id": instance,
        "__system": {"submissionDate": f"{date}T15:0{n % 10}:00.000Z",
                     "updatedAt": None, "submitterId": "7",
                     "submitterName": "Tablet Sede Trujillo", "attachmentsPresent": 0,
                     "attachmentsExpected": 0, "status": None,
                     "reviewState": review if n % 4 else None,
                     "deviceId": f"collect:TAB{n % 3}", "edits": 0,
                     "formVersion": "2026030101", "deletedAt": None},
        "momento": wave,
        "datos": {"nombre": name, "correo": email, "sede": site, "fecha": date,
                  "temas_previos": "pap estigma" if n % 2 else "ninguno"},
        "estigma": {f"oms{i}": a for i, a in enumerate(answers, 1)},
        "familiares@odata.navigationLink": f"Submissions('{instance}')/familiares",
        "meta": {"instanceID": instance},
    }


# --- KoboToolbox ------------------------------------------------------------------------
class KoboServer(FakeServer):
    """KoboToolbox v2: the asset (its form) and its data pages, ``Authorization: Token``."""

    def __init__(self, inbox: Path, asset: str = "aTicKnowledge2026LaLib"):
        super().__init__()
        self.asset, self.token = asset, KOBO_TOKEN
        self.submissions = kobo_submissions(inbox)

    @property
    def url(self) -> str:
        return self.base

    def answer(self, method, path, query, headers, body):
        if headers.get("Authorization") != f"Token {self.token}":
            return 401, {"detail": "Invalid token."}
        if path == f"/api/v2/assets/{self.asset}/":
            return 200, {"uid": self.asset, "name": "Prueba de conocimientos TIC",
                         "asset_type": "survey", "content": {"survey": KOBO_SURVEY},
                         "deployment__submission_count": len(self.submissions)}
        if path != f"/api/v2/assets/{self.asset}/data/":
            return 404, {"detail": "Not found."}
        limit = int(query.get("limit", ["100"])[0])
        start = int(query.get("start", ["0"])[0])
        url = f"{self.base}{path}"
        following = start + limit < len(self.submissions)
        return 200, {"count": len(self.submissions) + (self.fault == "short"),
                     "next": f"{url}?format=json&limit={limit}&start={start + limit}"
                             if following else None,
                     "previous": f"{url}?format=json&limit={limit}&start={max(0, start - limit)}"
                                 if start else None,
                     "results": copy.deepcopy(self.submissions[start:start + limit])}

    def add(self, submission: dict) -> None:
        self.submissions.append(submission)


def question(kind, name, label):
    return {"type": kind, "name": name, "label": [label]}


KOBO_SURVEY = [
    question("start", "start", None), question("end", "end", None),
    {"type": "begin_group", "name": "datos", "label": ["Datos del participante"]},
    question("select_one momentos", "momento", "Momento de la evaluación"),
    question("select_one sedes", "sede", "Sede"),
    question("text", "nombres", "Apellidos y nombres"),
    question("text", "dni", "DNI"),
    question("text", "correo_electronico", "Correo electrónico"),
    question("select_multiple cursos", "cursos_previos", "Cursos previos"),
    {"type": "end_group"},
    {"type": "begin_group", "name": "prueba", "label": ["Prueba de conocimientos"]},
    question("select_one formas", "forma", "Forma de la prueba"),
    question("note", "instrucciones", "Marque una sola respuesta por pregunta"),
    *[question("select_one opciones", f"P{n}", f"Pregunta {n}") for n in range(1, 16)],
    {"type": "end_group"},
    {"type": "begin_repeat", "name": "capacitaciones", "label": ["Capacitaciones recibidas"]},
    question("text", "tema", "Tema"),
    {"type": "end_repeat"},
]


def kobo_submissions(inbox: Path) -> list[dict]:
    """The demo's knowledge workbook as Kobo v2 JSON submissions (XML paths as keys,
    unanswered questions absent, a select-multiple, a repeat group, validation statuses)."""
    sheet = pd.read_excel(inbox / "conocimientos_TIC.xlsx", sheet_name="Respuestas", header=1,
                          dtype=str, engine="calamine").fillna("")
    return [kobo_submission(row, i) for i, (_, row) in enumerate(sheet.iterrows())]


def kobo_submission(row, i: int, status: str | None = None) -> dict:
    answers = {"datos/momento": row["Momento"], "datos/sede": row["Sede"],
               "datos/nombres": row["Apellidos y nombres"], "datos/dni": row["DNI"],
               "datos/correo_electronico": row["Correo electrónico"],
               "datos/cursos_previos": "pap tic" if i % 3 == 0 else "",
               "prueba/forma": row["Forma"],
               **{f"prueba/P{n}": row[f"P{n}"] for n in range(1, 16)}}
    status = status or ("validation_status_approved" if i % 5 == 0 else None)
    submission = {
        "_id": 9000 + i, "formhub/uuid": "3f1c2b9d8e7a4c6b", "start": "2026-03-02T09:00:00-05:00",
        "end": "2026-03-02T09:20:00-05:00", "__version__": "vTicKnow2026",
        **{k: v for k, v in answers.items() if v != ""},
        "capacitaciones": [{"capacitaciones/tema": "Primeros auxilios psicológicos"}]
        if i % 4 == 0 else [],
        "meta/instanceID": f"uuid:{uuid.UUID(int=10_000 + i)}",
        "_xform_id_string": "aTicKnowledge2026LaLib", "_uuid": str(uuid.UUID(int=10_000 + i)),
        "_attachments": [], "_status": "submitted_via_web", "_geolocation": [-8.1116, -79.0287],
        "_submission_time": f"2026-03-02T14:{i % 60:02d}:00", "_tags": [], "_notes": [],
        "_validation_status": {"timestamp": 1772470000, "uid": status, "by_whom": "evaluadora",
                               "label": status.removeprefix("validation_status_").title()}
        if status else {},
        "_submitted_by": "tutor_trujillo",
    }
    return submission


# --- the program that pulls from all three -------------------------------------------------
def pull_program_yaml(redcap: RedcapServer, odk: OdkServer, kobo: KoboServer,
                      **pull_settings) -> dict:
    """The demo's program with its three sources pulled from the servers instead of exported."""
    from pipelines.demo import program_yaml

    config = program_yaml("Formación TIC — La Libertad 2026 (pull test)")
    hand = {s["name"]: s for s in config["sources"]}
    quick = {"timeout": 2, "retries": 2, "retry_delay": 0.1, "page_size": 40, **pull_settings}
    redcap_source = {k: v for k, v in hand["redcap_bienestar"].items()
                     if k not in ("pattern", "format", "dictionary")}
    config["sources"] = [
        {**redcap_source, "name": "bienestar",
         "pull": {"kind": "redcap", "url": redcap.url, "token_env": "TEST_REDCAP_TOKEN",
                  **quick}},
        {"name": "estigma", "identifier": ["correo"], "pii": ["nombre"],
         "cohort": {"column": "sede"},
         "wave": {"column": "momento",
                  "map": {"pre": "pre", "post": "post", "seguimiento": "follow_up"}},
         "submitted_at": "fecha", "instruments": {"omshc": {"items": "oms{n}"}},
         "pull": {"kind": "odk", "url": odk.url, "project": odk.project, "form": odk.form,
                  "user": odk.user, "token_env": "TEST_ODK_PASSWORD", **quick}},
        {"name": "conocimientos", "identifier": ["correo_electronico"],
         "pii": ["nombres", "dni"], "cohort": {"column": "sede"},
         "wave": {"column": "momento",
                  "map": {"pre": "pre", "post": "post", "seguimiento": "follow_up"}},
         "instruments": {"tic_knowledge": {"items": "P{n}", "form": {"column": "forma"}}},
         "pull": {"kind": "kobo", "url": kobo.url, "asset": kobo.asset,
                  "token_env": "TEST_KOBO_TOKEN", **quick}},
    ]
    return config


COHORT_SITES = {c[0]: c[1] for c in COHORTS}
