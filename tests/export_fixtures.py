"""One OMS-HC data set written the way each tool writes its export.

Every writer gets the same people and answers (``PEOPLE``, ``answers``) and
returns (file name, program.yaml source entry, extra files); ingesting any of
them must give the same canonical responses. Each export also carries that
tool's own noise (a preview, an unfinished or rejected submission, an
incomplete REDCap form), which must end up in quarantine with its rule.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyreadstat

LABELS = {1: "Totalmente en desacuerdo", 2: "En desacuerdo", 3: "Ni de acuerdo ni en desacuerdo",
          4: "De acuerdo", 5: "Totalmente de acuerdo"}
PEOPLE = [  # (name, email at pre, email at post, DNI)
    ("María Pérez", "María.Pérez@minsa.gob.pe ", "maria.perez@minsa.gob.pe", "41234567"),
    ("José Quispe", "jose.quispe@gmail.com", "JOSE.QUISPE@gmail.com", "42345678"),
    ("Lucía Rojas", "lucia.rojas@hotmail.com", "lucía.rojas@hotmail.com", "43456789"),
    ("Raúl Chávez", "raul.chavez@yahoo.es", "raul.chavez@yahoo.es", "44567890"),
]
WAVES = ["pre", "post"]
ITEMS = 15


def answers() -> dict[tuple[int, str], list[int]]:
    """(person index, wave) -> 15 answers 1..5 (seeded)."""
    rng = np.random.default_rng(7)
    return {(p, w): rng.integers(1, 6, ITEMS).tolist() for p in range(len(PEOPLE)) for w in WAVES}


def email(p: int, wave: str) -> str:
    return PEOPLE[p][1] if wave == "pre" else PEOPLE[p][2]


def base_source(name: str, pattern: str, fmt: str, **extra) -> dict:
    source = {"name": name, "pattern": pattern, "format": fmt, "identifier": ["email"],
              "cohort": {"value": "c1"}, "wave": {"column": "wave"},
              "instruments": {"omshc": {"items": "q{n}"}}}
    source.update(extra)
    return source


def rows_frame(label_answers: bool = False) -> pd.DataFrame:
    """Plain table: name, email, wave, q1..q15 (the common core of most writers)."""
    records = []
    for (p, wave), values in answers().items():
        row = {"name": PEOPLE[p][0], "email": email(p, wave), "wave": wave}
        row.update({f"q{i}": LABELS[v] if label_answers else v for i, v in enumerate(values, 1)})
        records.append(row)
    return pd.DataFrame(records)


# --- generic files ---------------------------------------------------------------
def write_csv_excel_es(folder: Path):
    """Spanish Excel: cp1252, ';', answers typed as labels."""
    frame = rows_frame(label_answers=True)
    (folder / "omshc.csv").write_bytes(frame.to_csv(index=False, sep=";").encode("cp1252"))
    return base_source("csv", "omshc.csv", "csv", pii=["name"]), {}


def write_xlsx(folder: Path):
    """A tutor's workbook: a title row above the header, on a named sheet."""
    frame = rows_frame()
    with pd.ExcelWriter(folder / "omshc.xlsx") as writer:
        frame.to_excel(writer, sheet_name="Respuestas", index=False, startrow=1)
        writer.sheets["Respuestas"].cell(row=1, column=1, value="Estigma OMS-HC — sede Virú")
    return base_source("xlsx", "omshc.xlsx", "xlsx", sheet="Respuestas", header_row=2,
                       pii=["name"]), {}


def _labelled_frame():
    frame = rows_frame()
    frame["wave"] = frame["wave"].map({"pre": 1, "post": 2})
    labels = {f"q{i}": {float(k): v for k, v in LABELS.items()} for i in range(1, ITEMS + 1)}
    labels["wave"] = {1.0: "pre", 2.0: "post"}
    return frame, labels


def write_sav(folder: Path):
    """SPSS: numeric codes with value labels; wave coded 1/2 with labels."""
    frame, labels = _labelled_frame()
    pyreadstat.write_sav(frame, str(folder / "omshc.sav"), variable_value_labels=labels)
    return base_source("sav", "omshc.sav", "sav", pii=["name"],
                       wave={"column": "wave", "map": {"1": "pre", "2": "post"}}), {}


def write_dta(folder: Path):
    """Stata: same as SPSS (value labels on integer codes)."""
    frame, labels = _labelled_frame()
    pyreadstat.write_dta(frame, str(folder / "omshc.dta"), variable_value_labels=labels)
    return base_source("dta", "omshc.dta", "dta", pii=["name"],
                       wave={"column": "wave", "map": {"1": "pre", "2": "post"}}), {}


# --- REDCap ------------------------------------------------------------------------
REDCAP_DICTIONARY_HEADER = [
    "Variable / Field Name", "Form Name", "Section Header", "Field Type", "Field Label",
    "Choices, Calculations, OR Slider Labels", "Field Note",
    "Text Validation Type OR Show Slider Number", "Text Validation Min", "Text Validation Max",
    "Identifier?", "Branching Logic (Show field only if...)", "Required Field?",
    "Custom Alignment", "Question Number (surveys only)", "Matrix Group Name", "Matrix Ranking?",
    "Field Annotation"]


def write_redcap(folder: Path):
    """Longitudinal REDCap label export with its data dictionary.

    Events baseline_arm_1 / post_arm_1; the email field is marked as an
    identifier; a fifth record's form is incomplete (status 1 = Unverified).
    """
    choices = " | ".join(f"{k}, {v}" for k, v in LABELS.items())
    dictionary = [["record_id", "registro", "", "text", "ID", "", "", "", "", "", "", "", "", "",
                   "", "", "", ""],
                  ["correo", "registro", "", "text", "Correo", "", "", "email", "", "", "y",
                   "", "", "", "", "", "", ""]]
    dictionary += [[f"oms{i}", "estigma_omshc", "", "radio", f"Ítem {i}", choices, "", "", "",
                    "", "", "", "", "", "", "omshc", "", ""] for i in range(1, ITEMS + 1)]
    pd.DataFrame(dictionary, columns=REDCAP_DICTIONARY_HEADER).to_csv(
        folder / "redcap_dictionary.csv", index=False)
    records = []
    events = {"pre": "baseline_arm_1", "post": "post_arm_1"}
    for (p, wave), values in answers().items():
        row = {"record_id": str(100 + p), "redcap_event_name": events[wave],
               "correo": email(p, wave)}
        row.update({f"oms{i}": LABELS[v] for i, v in enumerate(values, 1)})
        row["estigma_omshc_complete"] = "Complete"
        records.append(row)
    incomplete = dict(records[0], record_id="999", correo="otra@x.pe",
                      estigma_omshc_complete="Unverified")
    frame = pd.DataFrame(records + [incomplete])
    frame.to_csv(folder / "redcap_export.csv", index=False)
    source = base_source("redcap", "redcap_export.csv", "redcap", identifier=["correo"],
                         dictionary="redcap_dictionary.csv",
                         wave={"column": "redcap_event_name",
                               "map": {"baseline_arm_1": "pre", "post_arm_1": "post"}},
                         instruments={"omshc": {"items": "oms{n}",
                                                "complete_values": ["2", "Complete"]}})
    return source, {"form_incomplete": 1}


# --- KoboToolbox / ODK Central -------------------------------------------------------
def write_kobo(folder: Path):
    """Kobo CSV: ';', group-prefixed XML names, metadata, one 'not approved' submission."""
    records = []
    for n, ((p, wave), values) in enumerate(answers().items()):
        row = {"start": "2026-03-01T09:00:00.000-05:00", "end": "2026-03-01T09:10:00.000-05:00",
               "datos/momento": wave, "datos/correo": email(p, wave)}
        row.update({f"estigma/oms{i}": LABELS[v] for i, v in enumerate(values, 1)})
        row.update({"_id": str(5000 + n), "_uuid": f"uuid-{n}", "_submission_time":
                    f"2026-03-01T14:{n:02d}:00", "_validation_status": "", "_submitted_by": "tablet3",
                    "_index": str(n + 1)})
        records.append(row)
    rejected = dict(records[0], _id="6000", _validation_status="validation_status_not_approved")
    rejected["datos/correo"] = "duplicado@x.pe"
    pd.DataFrame(records + [rejected]).to_csv(folder / "kobo_estigma.csv", index=False, sep=";")
    source = base_source("kobo", "kobo_*.csv", "kobo", identifier=["correo"],
                         wave={"column": "momento"},
                         instruments={"omshc": {"items": "oms{n}"}})
    return source, {"kobo_not_approved": 1}


def write_odk(folder: Path):
    """ODK Central CSV: '-'-joined groups, SubmissionDate, meta-instanceID, KEY, ReviewState."""
    records = []
    for n, ((p, wave), values) in enumerate(answers().items()):
        row = {"SubmissionDate": f"2026-03-01T15:{n:02d}:00.000Z", "datos-momento": wave,
               "datos-correo": email(p, wave)}
        row.update({f"estigma-oms{i}": str(v) for i, v in enumerate(values, 1)})
        row.update({"meta-instanceID": f"uuid:{n}", "KEY": f"uuid:{n}", "SubmitterID": "12",
                    "SubmitterName": "Ana Enumeradora", "AttachmentsPresent": "0",
                    "AttachmentsExpected": "0", "Status": "", "ReviewState": "",
                    "DeviceID": "collect:abc", "Edits": "0", "FormVersion": "2026030101"})
        records.append(row)
    rejected = dict(records[1], KEY="uuid:99", ReviewState="rejected")
    rejected["datos-correo"] = "rechazado@x.pe"
    pd.DataFrame(records + [rejected]).to_csv(folder / "odk_estigma.csv", index=False)
    source = base_source("odk", "odk_*.csv", "odk", identifier=["correo"],
                         wave={"column": "momento"}, instruments={"omshc": {"items": "oms{n}"}})
    return source, {"odk_rejected": 1}


# --- Qualtrics ------------------------------------------------------------------------
def write_qualtrics(folder: Path):
    """Qualtrics CSV: 3 header rows, matrix Q5_1..Q5_15, a preview and an unfinished response."""
    meta = ["StartDate", "EndDate", "Status", "IPAddress", "Progress", "Duration (in seconds)",
            "Finished", "RecordedDate", "ResponseId", "RecipientLastName", "RecipientFirstName",
            "RecipientEmail", "ExternalReference", "LocationLatitude", "LocationLongitude",
            "DistributionChannel", "UserLanguage"]
    items = [f"Q5_{i}" for i in range(1, ITEMS + 1)]
    names = meta + ["Q2", "Q3"] + items
    text = meta[:] + ["Momento", "Correo electrónico"] + [
        f"Indique su acuerdo con cada frase - Ítem {i}" for i in range(1, ITEMS + 1)]
    ids = [json.dumps({"ImportId": m.lower()}) for m in meta] + [
        json.dumps({"ImportId": "QID2_TEXT"}), json.dumps({"ImportId": "QID3_TEXT"})] + [
        json.dumps({"ImportId": f"QID5_{i}"}) for i in range(1, ITEMS + 1)]
    rows = []
    for n, ((p, wave), values) in enumerate(answers().items()):
        rows.append(["2026-03-01 09:00:00", "2026-03-01 09:12:00", "0", "190.12.34.56", "100",
                     "720", "1", f"2026-03-01 09:12:{n:02d}", f"R_{n:015d}", "", "", "", "",
                     "-8.11", "-79.03", "anonymous", "ES-ES", wave, email(p, wave),
                     *[str(v) for v in values]])
    preview = rows[0][:]
    preview[2], preview[8], preview[18] = "1", "R_preview", "preview@x.pe"
    unfinished = rows[1][:]
    unfinished[4], unfinished[6], unfinished[8], unfinished[18] = "40", "0", "R_unfin", "u@x.pe"
    frame = pd.DataFrame([text, ids, *rows, preview, unfinished], columns=names)
    frame.to_csv(folder / "qualtrics_estigma.csv", index=False)
    source = base_source("qualtrics", "qualtrics_*.csv", "qualtrics", identifier=["Q3"],
                         wave={"column": "Q2"}, instruments={"omshc": {"items": "Q5_{n}"}})
    return source, {"preview_response": 1, "not_finished": 1}


# --- Google Forms ----------------------------------------------------------------------
QUESTION = "Indique qué tan de acuerdo está: afirmación {n}"


def write_gforms(folder: Path):
    """Google Forms (Spanish account): 'Marca temporal', question-text headers, label answers."""
    records = []
    for n, ((p, wave), values) in enumerate(answers().items()):
        row = {"Marca temporal": f"1/03/2026 {9 + n % 3}:{n:02d}:00",
               "Dirección de correo electrónico": email(p, wave),
               "¿En qué momento responde?": wave}
        row.update({QUESTION.format(n=i): LABELS[v] for i, v in enumerate(values, 1)})
        records.append(row)
    pd.DataFrame(records).to_csv(folder / "gforms_estigma.csv", index=False)
    items = {QUESTION.format(n=i).upper(): f"omshc_{i:02d}" for i in range(1, ITEMS + 1)}
    source = base_source("gforms", "gforms_*.csv", "gforms",
                         identifier=["direccion de correo electronico"],
                         wave={"column": "¿En qué momento responde?"},
                         instruments={"omshc": {"items": items}})
    return source, {}


WRITERS = {"csv": write_csv_excel_es, "xlsx": write_xlsx, "sav": write_sav, "dta": write_dta,
           "redcap": write_redcap, "kobo": write_kobo, "odk": write_odk,
           "qualtrics": write_qualtrics, "gforms": write_gforms}
