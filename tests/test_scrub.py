"""What counts as personal-looking text at ingest (pipelines/ingest/scrub.py)."""

import pandas as pd
import pytest

from pipelines.ingest.scrub import (
    MAX_VALUE,
    REDACTED,
    KnownValues,
    looks_personal,
    safe_value,
    safe_values,
    scrub_message,
)


@pytest.mark.parametrize("text", [
    "josé.núñez@minsa.gob.pe", "MARÍA.PÉREZ@YAHOO.ES ", "ana @ gmail.com", "elena.ramírez@yahoo.es",
    "Valeria Mendoza;valeria.mendoza@minsa.gob.pe;El Porvenir",  # a joined row
    "+51 987 654 321", "987654321", "(044) 123-4567", "987-654-321", "+1 (416) 555-0199",
    "45678912", "DNI 01234567", "CE 001234567", "123456", "044-123456",
    "Rocío\n3", "a\tb",  # pieces of several cells
])
def test_emails_phones_and_id_numbers_look_personal(text):
    assert looks_personal(text)
    assert safe_value(text) == REDACTED


@pytest.mark.parametrize("text", [
    "3", "3,5", "-1", "Muy a menudo", "ni de acuerdo ni en desacuerdo", "no sé", "pre", "Seguimiento",
    "El Porvenir", "porvenir-2026-1", "2026-03-02", "2026-03-02 10:15:00", "02/03/2026 9:00:00",
    "1/03/2026 9:00:00 p. m.", "baseline_arm_1", "a;c", "B", "2026-03-02T10:15:00",
])
def test_answers_codes_keys_and_dates_do_not(text):
    assert not looks_personal(text)
    assert safe_value(text) == text


def test_names_from_the_files_own_personal_columns():
    personal = pd.DataFrame({"Nombre y apellidos": ["Andrés León", "Ñique Quispe, Rocío"],
                             "Correo": ["andres.leon@yahoo.es", "N/A"]})
    known = KnownValues(personal)
    for text in ["Andrés León", "ANDRES LEON", "León", "quispe", "Rocío Ñique", "Sra. Rocío"]:
        assert looks_personal(text, known), text
    for text in ["El Porvenir", "no sé", "Ana", "3", "Virú"]:  # not a name of this file
        assert not looks_personal(text, known), text
    assert safe_value("Lic. Andrés León", known) == REDACTED
    # Without the file's names a bare name is not recognised: the names must come from the file.
    assert not looks_personal("Andrés León")


def test_values_are_cut_and_blanks_stay_blank():
    assert safe_value("x" * 100) == "x" * (MAX_VALUE - 1) + "…"
    assert safe_value("  ") == "" and safe_value(None) == "" and safe_value(float("nan")) == ""
    assert safe_values(pd.Series(["pre", "ana@x.pe", "Trujillo Norte"]), keep={"pre"}).tolist() == [
        "pre", REDACTED, "Trujillo Norte"]


def test_messages_keep_no_quoted_or_personal_text():
    message = scrub_message("Unable to parse 'María Pérez' at row 3: maria.perez@x.pe or "
                            "+51 987 654 321\nsecond line with 45678912")
    assert "María" not in message and "maria" not in message and "987" not in message
    assert "second line" not in message and "45678912" not in message
    assert message.startswith("Unable to parse ***")
