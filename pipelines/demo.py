"""A seeded simulator of a realistic training program, written as real exports.

Five cohorts in La Libertad (Peru): El Porvenir, Alto Trujillo, Florencia de
Mora, Virú and a small cohort of 4 in Laredo; three waves (pre, post, 3-month
follow-up) with attrition. Known true effects: knowledge up, stigma (OMS-HC)
down, burnout and secondary traumatic stress flat.

The raw files are written the way the tools write them:
- ``redcap_bienestar_*.csv``: a REDCap longitudinal raw export (UTF-8, comma,
  ``record_id``, ``redcap_event_name``, radio codes, ``<form>_complete``) with
  ProQOL and STSS;
- ``estigma_OMSHC_<wave>.csv``: stigma sheets typed in Spanish Excel and saved
  as CSV (cp1252, ``;``), some answers typed as labels;
- ``conocimientos_TIC.xlsx``: the knowledge test typed by a tutor, a title
  row above the header, forms A/B;
- ``juego_de_roles_RPC.csv``: the role-play competency assessment (RPC-1) rated
  by six tutors at pre and post, about 30% of the role-plays rated by two tutors,
  one tutor planted harsh and one drifting (lenient at pre, harsh at post).

The messiness a real program has is planted and recorded in ``truth/truth.json``
(never read by the pipeline): accented names and emails, a duplicate
submission, out-of-range codes, missing items, an incomplete REDCap form, an
unreadable answer, and one participant whose email is typed differently at post.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from instruments import load_builtin
from instruments.model import Instrument
from pipelines.ingest.core import mark_settled
from pipelines.ingest.pseudonym import write_new_key
from pipelines.scaffold import write_program_gitignore

SEED = 20260301
WAVES = ["pre", "post", "follow_up"]
COHORTS = [  # id, site, size, start, end, redcap code
    ("porvenir-2026-1", "El Porvenir", 22, "2026-03-02", "2026-03-27", 1),
    ("alto-trujillo-2026-1", "Alto Trujillo", 35, "2026-03-09", "2026-04-03", 2),
    ("florencia-2026-1", "Florencia de Mora", 14, "2026-04-06", "2026-05-01", 3),
    ("viru-2026-1", "Virú", 8, "2026-04-13", "2026-05-08", 4),
    ("laredo-2026-1", "Laredo", 4, "2026-05-04", "2026-05-29", 5),
]
RETENTION = {"pre": 1.0, "post": 0.92, "follow_up": 0.78}
# Answer model: Likert items are thresholded normals (loading, thresholds); test items are
# logistic in ability - difficulty (discrimination); change varies per item (individual SD).
LOADING, THRESHOLDS, INDIVIDUAL_SD, DISCRIMINATION = 0.72, (-1.3, -0.45, 0.45, 1.3), 0.3, 1.3
# True mean change in SD units of the latent trait, relative to pre.
TRUE_EFFECTS = {
    "knowledge": {"post": 1.1, "follow_up": 0.9},
    "stigma": {"post": -0.6, "follow_up": -0.45},
    "burnout": {"post": 0.0, "follow_up": 0.0},
    "compassion": {"post": 0.0, "follow_up": 0.0},
    "sts": {"post": 0.0, "follow_up": 0.0},
}
FIRST = ["María", "José", "Lucía", "Andrés", "Martín", "Sofía", "Inés", "Raúl", "Ángel",
         "Verónica", "Jesús", "Rocío", "Iván", "Elena", "Darío", "Mónica", "Sebastián",
         "Belén", "Tomás", "Valeria", "Nélida", "Rubén", "Maritza", "Óscar"]
LAST = ["Pérez", "Gómez", "Rodríguez", "Núñez", "Quispe", "Chávez", "Díaz", "Ramírez",
        "Vásquez", "Sánchez", "Mendoza", "Castañeda", "Llontop", "Huamán", "Ñique",
        "Cabrera", "Paredes", "Alvarado", "León", "Rojas"]
EVENTS = {"pre": "baseline_arm_1", "post": "post_arm_1", "follow_up": "seguimiento_arm_1"}
SHEET_WAVES = {"pre": "Pre", "post": "Post", "follow_up": "Seguimiento"}
# Role-play ratings: tutors (staff, pseudonymised as raters), the share of role-plays rated
# twice, and the planted rater effects in latent SD units (negative = harsh).
TUTORS = ["Lic. Carmen Villanueva Ríos", "Ps. Jorge Benites Alfaro", "Lic. Rosa Zavaleta Cruz",
          "Ps. Miguel Ángel Tello", "Lic. Patricia Olórtegui", "Ps. Diana Cárdenas Ugaz"]
HARSH_TUTOR, DRIFTING_TUTOR = TUTORS[2], TUTORS[4]
SEVERITY = {HARSH_TUTOR: {"pre": -0.9, "post": -0.9}, DRIFTING_TUTOR: {"pre": 0.8, "post": -0.8}}
DOUBLE_RATED, ROLEPLAY_WAVES, ROLEPLAY_EFFECT = 0.3, ("pre", "post"), {"pre": 0.0, "post": 1.0}
LEVEL_THRESHOLDS = (-1.0, 0.0, 1.0)  # latent performance -> levels 1-4


@dataclass
class Person:
    """One simulated provider with latent traits at baseline."""

    index: int
    cohort: str
    first: str
    last: str
    email: str
    dni: str
    phone: str
    traits: dict[str, float]
    waves: list[str]
    pre_form: str


def make_people(rng: np.random.Generator) -> list[Person]:
    """Providers of every cohort, with correlated traits and attrition."""
    corr = np.array([  # compassion, burnout, sts, stigma, knowledge
        [1.0, -0.5, -0.1, -0.2, 0.1],
        [-0.5, 1.0, 0.6, 0.2, 0.0],
        [-0.1, 0.6, 1.0, 0.1, 0.0],
        [-0.2, 0.2, 0.1, 1.0, -0.3],
        [0.1, 0.0, 0.0, -0.3, 1.0],
    ])
    names = ["compassion", "burnout", "sts", "stigma", "knowledge"]
    people, used = [], set()
    for cohort, _, size, *_ in COHORTS:
        for _ in range(size):
            i = len(people)
            first, last = rng.choice(FIRST), rng.choice(LAST)
            email = unique_email(first, last, rng, used)
            traits = dict(zip(names, rng.multivariate_normal(np.zeros(5), corr)))
            waves = [w for w in WAVES if rng.random() < RETENTION[w]]
            if "pre" not in waves:
                waves.insert(0, "pre")
            people.append(Person(
                index=i, cohort=cohort, first=first, last=last, email=email,
                dni=f"{rng.integers(40_000_000, 49_999_999)}",
                phone=f"9{rng.integers(10_000_000, 99_999_999)}",
                traits=traits, waves=waves, pre_form=str(rng.choice(["A", "B"])),
            ))
    return people


def unique_email(first: str, last: str, rng, used: set) -> str:
    """A realistic, unique email; some keep their accents as people type them."""
    domain = rng.choice(["gmail.com", "hotmail.com", "minsa.gob.pe", "yahoo.es"])
    base = f"{first}.{last}".lower()
    email = f"{base}@{domain}"
    while email in used:
        email = f"{base}{rng.integers(1, 99)}@{domain}"
    used.add(email)
    return email


def likert(rng, latent: np.ndarray, loadings: np.ndarray, shift: np.ndarray) -> np.ndarray:
    """1-5 answers from a one-factor model with item thresholds (people x items)."""
    noise = rng.normal(size=(len(latent), len(loadings))) * np.sqrt(1 - loadings**2)
    y = latent[:, None] * loadings + noise + shift
    return np.digitize(y, THRESHOLDS) + 1


def trait_at(person: Person, trait: str, wave: str, rng) -> float:
    """A person's latent trait at a wave: baseline + true effect + individual change."""
    effect = TRUE_EFFECTS[trait].get(wave, 0.0)
    individual = rng.normal(0, INDIVIDUAL_SD) if wave != "pre" else 0.0
    return person.traits[trait] + effect + individual


def scale_answers(rng, people, wave, inst: Instrument, trait_of_item) -> np.ndarray:
    """Raw answers (people x items) of one scale at one wave; reverse items stored raw."""
    reverse = {i for s in inst.subscales for i in s.reverse}
    columns = []
    for item_id in inst.item_ids:
        trait = trait_of_item(item_id)
        latent = np.array([trait_at(p, trait, wave, rng) for p in people])
        sign = -1.0 if item_id in reverse else 1.0
        columns.append(likert(rng, sign * latent, np.array([LOADING]), np.array([0.0]))[:, 0])
    return np.column_stack(columns)


SCALE_TRAITS = {("omshc", None): "stigma", ("stss", None): "sts",
                ("proqol", "compassion_satisfaction"): "compassion",
                ("proqol", "burnout"): "burnout", ("proqol", "secondary_traumatic_stress"): "sts"}


def expected_changes(truth: dict, instruments: dict[str, Instrument]) -> dict:
    """Population change from pre, in score units, implied by the simulator's model.

    {(instrument, scale, wave): expected mean change}. Likert scales in closed
    form (an item is a thresholded normal: E[item] = 1 + sum P(y > threshold),
    reverse keys cancel by the thresholds' symmetry); anchor items of the
    knowledge test by Gauss-Hermite quadrature of the logistic answer model.
    """
    from scipy import stats

    effects = truth["true_effects_sd_units"]
    expected = {}
    for inst_id in ("omshc", "stss", "proqol"):
        for sub in instruments[inst_id].subscales:
            trait = SCALE_TRAITS.get((inst_id, sub.id)) or SCALE_TRAITS[(inst_id, None)]
            for wave, effect in effects[trait].items():
                sd = np.sqrt(LOADING**2 * (1 + INDIVIDUAL_SD**2) + 1 - LOADING**2)
                item = sum(stats.norm.sf((t - LOADING * effect) / sd) - stats.norm.sf(t)
                           for t in THRESHOLDS)
                expected[(inst_id, sub.id, wave)] = len(sub.items) * item
    nodes, weights = np.polynomial.hermite_e.hermegauss(60)
    weights = weights / weights.sum()
    anchors = instruments["tic_knowledge"].anchor_items
    difficulty = np.array([truth["knowledge_item_difficulty"][i] for i in anchors])

    def percent(mean: float, sd: float) -> float:
        ability = mean + sd * nodes[:, None]
        p = 1 / (1 + np.exp(-DISCRIMINATION * (ability - difficulty)))
        return 100 * float((weights[:, None] * p).sum(axis=0).mean())

    for wave, effect in effects["knowledge"].items():
        expected[("tic_knowledge", "anchor_percent_correct", wave)] = (
            percent(effect, np.sqrt(1 + INDIVIDUAL_SD**2)) - percent(0.0, 1.0))
    return expected


def proqol_trait(item_id: str, inst: Instrument) -> str:
    """Which latent trait drives a ProQOL item."""
    for sub, trait in (("compassion_satisfaction", "compassion"), ("burnout", "burnout"),
                       ("secondary_traumatic_stress", "sts")):
        if item_id in inst.subscale(sub).items:
            return trait
    raise KeyError(item_id)


# --- writers -------------------------------------------------------------------
def redcap_export(rng, people, instruments, truth) -> pd.DataFrame:
    """REDCap longitudinal raw export rows (one per record x event)."""
    proqol, stss = instruments["proqol"], instruments["stss"]
    code_of = {c[0]: c[5] for c in COHORTS}
    rows = []
    for wave in WAVES:
        present = [p for p in people if wave in p.waves]
        pq = scale_answers(rng, present, wave, proqol, lambda i: proqol_trait(i, proqol))
        st = scale_answers(rng, present, wave, stss, lambda i: "sts")
        for p, a, b in zip(present, pq, st):
            row = {"record_id": str(1000 + p.index), "redcap_event_name": EVENTS[wave],
                   "nombre_completo": f"{p.first} {p.last}", "correo": p.email,
                   "telefono": p.phone, "sede": str(code_of[p.cohort]),
                   "fecha_encuesta": survey_date(p.cohort, wave, rng)}
            row.update({f"proqol_{n}": str(v) for n, v in enumerate(a, 1)})
            row["proqol_complete"] = "2"
            row.update({f"stss_{n}": str(v) for n, v in enumerate(b, 1)})
            row["stss_complete"] = "2"
            rows.append(row)
    frame = pd.DataFrame(rows)
    plant_redcap_mess(frame, people, rng, truth)
    return frame


def plant_redcap_mess(frame: pd.DataFrame, people, rng, truth) -> None:
    """Missing items, an abandoned form and a second registration of one person."""
    # One or two blank items: prorated. Three blanks in one burnout set: no score.
    for row, cols in ((3, ["proqol_7"]), (10, ["proqol_12", "stss_4"]), (25, ["proqol_21"])):
        frame.loc[row, cols] = ""
    frame.loc[40, ["proqol_1", "proqol_4", "proqol_8"]] = ""
    truth["missing_items"] = {"prorated_rows": 3, "too_few_items_rows": 1}
    # A ProQOL form abandoned half-way (status 0 = incomplete).
    frame.loc[55, [f"proqol_{n}" for n in range(16, 31)]] = ""
    frame.loc[55, "proqol_complete"] = "0"
    truth["expected_quarantine"].append(
        {"file": "redcap", "instrument": "proqol", "rule": "form_incomplete", "rows": 1})
    # The same person registered twice at post (a second record id), later submission wins.
    post_rows = frame.index[frame["redcap_event_name"] == EVENTS["post"]]
    dup = frame.loc[post_rows[5]].copy()
    dup["record_id"] = str(5000)
    dup["fecha_encuesta"] = (pd.Timestamp(dup["fecha_encuesta"]) + pd.Timedelta(days=2)).isoformat()
    frame.loc[len(frame)] = dup
    for inst in ("proqol", "stss"):
        truth["expected_quarantine"].append(
            {"file": "redcap", "instrument": inst, "rule": "duplicate_submission", "rows": 1})


def survey_date(cohort: str, wave: str, rng) -> str:
    """A plausible submission timestamp for a wave of a cohort."""
    start, end = next((c[3], c[4]) for c in COHORTS if c[0] == cohort)
    base = {"pre": pd.Timestamp(start), "post": pd.Timestamp(end),
            "follow_up": pd.Timestamp(end) + pd.Timedelta(days=90)}[wave]
    return (base + pd.Timedelta(minutes=int(rng.integers(8 * 60, 18 * 60)))).isoformat(sep=" ")


def omshc_sheets(rng, people, inst, truth) -> dict[str, pd.DataFrame]:
    """Stigma answers as typed in Spanish Excel, one sheet per wave."""
    labels = {o.code: o.es for o in inst.response_options}
    site_of = {c[0]: c[1] for c in COHORTS}
    sheets = {}
    for wave in WAVES:
        present = [p for p in people if wave in p.waves]
        answers = scale_answers(rng, present, wave, inst, lambda i: "stigma")
        rows = []
        for p, a in zip(present, answers):
            row = {"Nombre y apellidos": f"{p.first} {p.last}", "Correo": p.email,
                   "Sede": site_of[p.cohort], "Fecha": survey_date(p.cohort, wave, rng)[:10]}
            row.update({f"OMS{n}": str(v) for n, v in enumerate(a, 1)})
            rows.append(row)
        sheets[wave] = pd.DataFrame(rows)
    # Some answers typed as labels, with and without accents or capitals.
    pre = sheets["pre"]
    for row, col in ((2, "OMS3"), (7, "OMS9"), (12, "OMS1")):
        pre.loc[row, col] = labels[int(pre.loc[row, col])].upper()
    pre.loc[15, "OMS4"] = "ni de acuerdo ni en desacuerdo"
    truth["label_answers"] = 4
    # Out-of-range codes and an unreadable answer.
    post = sheets["post"]
    post.loc[4, "OMS6"] = "7"
    post.loc[9, "OMS11"] = "0"
    post.loc[13, "OMS2"] = "no sé"
    truth["expected_quarantine"] += [
        {"file": "estigma_OMSHC_post.csv", "instrument": "omshc", "rule": "code_out_of_range",
         "rows": 2},
        {"file": "estigma_OMSHC_post.csv", "instrument": "omshc", "rule": "unreadable_answer",
         "rows": 1},
    ]
    return sheets


def knowledge_sheet(rng, people, inst: Instrument, truth) -> pd.DataFrame:
    """The knowledge test as a tutor types it: one row per person and wave."""
    difficulty = {i: rng.normal(-0.2, 0.8) for i in inst.item_ids}
    truth["knowledge_item_difficulty"] = difficulty
    site_of = {c[0]: c[1] for c in COHORTS}
    other = {"A": "B", "B": "A"}
    rows = []
    for wave in WAVES:
        for p in (p for p in people if wave in p.waves):
            form_id = other[p.pre_form] if wave == "post" else p.pre_form
            form = inst.form(form_id)
            ability = trait_at(p, "knowledge", wave, rng)
            row = {"Momento": SHEET_WAVES[wave], "Sede": site_of[p.cohort],
                   "Apellidos y nombres": f"{p.last}, {p.first}", "DNI": p.dni,
                   "Correo electrónico": p.email, "Forma": form_id}
            for n, item_id in enumerate(form.items, 1):
                row[f"P{n}"] = answer(rng, inst, form.key[item_id], item_id,
                                      ability - difficulty[item_id])
            rows.append(row)
    frame = pd.DataFrame(rows)
    frame.loc[6, "P4"] = "e"  # not an option
    truth["expected_quarantine"].append(
        {"file": "conocimientos_TIC.xlsx", "instrument": "tic_knowledge",
         "rule": "code_out_of_range", "rows": 1})
    return frame


def answer(rng, inst, key, item_id, logit) -> str:
    """The chosen option: the key with logistic probability, else a distractor."""
    options = [str(o.code) for o in inst.options_for(item_id)]
    if rng.random() < 1 / (1 + np.exp(-DISCRIMINATION * logit)):
        chosen = str(key)
    else:
        chosen = str(rng.choice([o for o in options if o != str(key)]))
    return chosen.upper()


def roleplay_ratings(people, inst: Instrument, truth, seed: int) -> pd.DataFrame:
    """The tutors' role-play sheet: one row per rating (a tutor rating one person at a wave).

    A stream of its own (``seed`` + 24), so the other files stay as they were. Competence
    is half knowledge, half its own; a role-play's performance per item is shared by its
    raters, each adds their severity and their own noise.
    """
    rng = np.random.default_rng([seed, 24])
    site_of = {c[0]: c[1] for c in COHORTS}
    shift = rng.normal(0, 0.3, len(inst.item_ids))
    severity = {t: SEVERITY.get(t, {w: rng.normal(0, 0.05) for w in ROLEPLAY_WAVES})
                for t in TUTORS}
    rows = []
    for wave in ROLEPLAY_WAVES:
        for p in (p for p in people if wave in p.waves):
            base = 0.5 * p.traits["knowledge"] + np.sqrt(0.75) * p.traits.setdefault(
                "competence", rng.normal())
            level = base + ROLEPLAY_EFFECT[wave] + (rng.normal(0, INDIVIDUAL_SD) if wave != "pre"
                                                    else 0.0)
            performance = level + shift + rng.normal(0, 0.5, len(shift))
            raters = rng.choice(TUTORS, 2 if rng.random() < DOUBLE_RATED else 1, replace=False)
            for tutor in raters:
                seen = performance + severity[tutor][wave] + rng.normal(0, 0.35, len(shift))
                row = {"Fecha": survey_date(p.cohort, wave, rng), "Sede": site_of[p.cohort],
                       "Momento": SHEET_WAVES[wave], "Correo del participante": p.email,
                       "Tutor(a) evaluador(a)": tutor}
                row.update({f"RP{n}": str(v) for n, v in
                            enumerate(np.digitize(seen, LEVEL_THRESHOLDS) + 1, 1)})
                rows.append(row)
    frame = pd.DataFrame(rows)
    plant_rating_mess(frame, inst, truth)
    truth["roleplay"] = {"tutors": TUTORS, "harsh_rater": HARSH_TUTOR,
                         "drifting_rater": DRIFTING_TUTOR, "severity_sd_units": severity,
                         "double_rated_share": DOUBLE_RATED, "waves": list(ROLEPLAY_WAVES),
                         "true_effect_sd_units": ROLEPLAY_EFFECT}
    return frame


def plant_rating_mess(frame: pd.DataFrame, inst: Instrument, truth) -> None:
    """Levels typed as labels, a level that is none, a rating without tutor, one repeated."""
    labels = {o.code: o.es for o in inst.response_options}
    for row, col in ((1, "RP2"), (8, "RP7")):
        frame.loc[row, col] = labels[int(frame.loc[row, col])].lower()
    frame.loc[12, "RP5"] = "5"
    frame.loc[20, "Tutor(a) evaluador(a)"] = ""
    again = frame.loc[30].copy()
    again["RP1"] = str(5 - int(again["RP1"]))  # the same tutor, another level: which holds?
    frame.loc[len(frame)] = again
    file = "juego_de_roles_RPC.csv"
    truth["expected_quarantine"] += [
        {"file": file, "instrument": inst.id, "rule": "code_out_of_range", "rows": 1},
        {"file": file, "instrument": inst.id, "rule": "missing_rater", "rows": 1},
        {"file": file, "instrument": inst.id, "rule": "duplicate_rating", "rows": 2},
    ]


def retype_one_email(people, sheets, knowledge, redcap, truth) -> None:
    """One participant types their email differently at post (accents, case, spaces)."""
    person = next(p for p in people if "post" in p.waves and p.cohort == COHORTS[0][0])
    variant = "  " + person.email.replace("a", "á", 1).title().replace("@", "@", 1) + " "
    for frame, col, wave_col, wave_value in (
        (sheets["post"], "Correo", None, None),
        (knowledge, "Correo electrónico", "Momento", SHEET_WAVES["post"]),
        (redcap, "correo", "redcap_event_name", EVENTS["post"]),
    ):
        rows = frame[col].eq(person.email)
        if wave_col:
            rows &= frame[wave_col].eq(wave_value)
        frame.loc[rows, col] = variant
    truth["retyped_email"] = {"cohort": person.cohort, "as_typed_at_pre": person.email,
                              "as_typed_at_post": variant}


# --- the program folder -----------------------------------------------------------
REDCAP_DICTIONARY = "diccionario_redcap_bienestar.csv"


def dictionary_field(name, form, kind, label, choices="", identifier="") -> dict:
    """One row of a REDCap data dictionary (all 18 columns, the rest blank)."""
    from pipelines.ingest.adapters import DICTIONARY_COLUMNS

    row = dict.fromkeys(DICTIONARY_COLUMNS, "")
    row.update({"Variable / Field Name": name, "Form Name": form, "Field Type": kind,
                "Field Label": label, "Choices, Calculations, OR Slider Labels": choices,
                "Identifier?": identifier})
    return row


def redcap_dictionary(instruments) -> pd.DataFrame:
    """The REDCap project's data dictionary, as REDCap exports it (18 columns).

    Name, email and phone are flagged "Identifier? y": capacitar drops them
    even if program.yaml forgot to list them.
    """
    field = dictionary_field
    sites = " | ".join(f"{c[5]}, {c[1]}" for c in COHORTS)
    rows = [field("record_id", "registro", "text", "Record ID"),
            field("nombre_completo", "registro", "text", "Nombre completo", identifier="y"),
            field("correo", "registro", "text", "Correo electrónico", identifier="y"),
            field("telefono", "registro", "text", "Teléfono", identifier="y"),
            field("sede", "registro", "dropdown", "Sede", sites),
            field("fecha_encuesta", "registro", "text", "Fecha")]
    for inst_id in ("proqol", "stss"):
        inst = instruments[inst_id]
        choices = " | ".join(f"{o.code}, {o.es}" for o in inst.response_options)
        rows += [field(f"{inst_id}_{n}", inst_id, "radio", f"{inst_id.upper()} {n}", choices)
                 for n in range(1, len(inst.item_ids) + 1)]
    return pd.DataFrame(rows)


def program_yaml(name: str) -> dict:
    """The demo's program.yaml as a dict."""
    return {
        "name": name,
        "language": "es",
        "inbox": "inbox",
        "output": "outputs",
        "pseudonymisation": {"key_file": "secrets/pseudonym.key", "create_if_missing": True},
        "cohorts": [{"id": c, "site": s, "start": a, "end": b} for c, s, _, a, b, _ in COHORTS],
        "waves": [
            {"id": "pre", "order": 1, "label": {"es": "Antes", "en": "Before"}},
            {"id": "post", "order": 2, "label": {"es": "Después", "en": "After"}},
            {"id": "follow_up", "order": 3,
             "label": {"es": "Seguimiento (3 meses)", "en": "Follow-up (3 months)"}},
        ],
        "sources": [
            {"name": "redcap_bienestar", "pattern": "redcap_bienestar_*.csv", "format": "redcap",
             "dictionary": REDCAP_DICTIONARY,
             "identifier": ["correo"], "pii": ["record_id"],
             "cohort": {"column": "sede", "map": {str(c[5]): c[0] for c in COHORTS}},
             "wave": {"column": "redcap_event_name", "map": {v: k for k, v in EVENTS.items()}},
             "submitted_at": "fecha_encuesta",
             # Each form's <form>_complete column comes from the data dictionary.
             "instruments": {"proqol": {"items": "proqol_{n}"}, "stss": {"items": "stss_{n}"}}},
            {"name": "estigma_excel", "pattern": "estigma_OMSHC_*.csv", "format": "csv",
             "identifier": ["Correo"], "pii": ["Nombre y apellidos"],
             "cohort": {"column": "Sede"},
             "wave": {"filename": r"estigma_OMSHC_(\w+)\.csv",
                      "map": {"pre": "pre", "post": "post", "seguimiento": "follow_up"}},
             "submitted_at": "Fecha",
             "instruments": {"omshc": {"items": "OMS{n}"}}},
            {"name": "conocimientos_tutor", "pattern": "conocimientos_*.xlsx", "format": "xlsx",
             "sheet": "Respuestas", "header_row": 2,
             "identifier": ["Correo electrónico"], "pii": ["Apellidos y nombres", "DNI"],
             "cohort": {"column": "Sede"},
             "wave": {"column": "Momento",
                      "map": {"pre": "pre", "post": "post", "seguimiento": "follow_up"}},
             "instruments": {"tic_knowledge": {"items": "P{n}", "form": {"column": "Forma"}}}},
            {"name": "juego_de_roles", "pattern": "juego_de_roles_*.csv", "format": "csv",
             "identifier": ["Correo del participante"], "rater": ["Tutor(a) evaluador(a)"],
             "cohort": {"column": "Sede"},
             "wave": {"column": "Momento", "map": {"pre": "pre", "post": "post"}},
             "submitted_at": "Fecha",
             "instruments": {"tic_roleplay": {"items": "RP{n}"}}},
        ],
    }


def write_demo(folder: str | Path, seed: int = SEED) -> Path:
    """Write the demo program (program.yaml, inbox/, truth/) into ``folder``.

    Examples
    --------
    >>> import tempfile
    >>> root = write_demo(tempfile.mkdtemp())
    >>> sorted(p.name for p in (root / "inbox").iterdir())[:2]
    ['conocimientos_TIC.xlsx', 'diccionario_redcap_bienestar.csv']
    """
    root = Path(folder)
    inbox = root / "inbox"
    if inbox.exists():
        shutil.rmtree(inbox)
    inbox.mkdir(parents=True)
    (root / "truth").mkdir(exist_ok=True)
    rng = np.random.default_rng(seed)
    instruments = load_builtin()
    truth: dict = {"seed": seed, "true_effects_sd_units": TRUE_EFFECTS, "expected_quarantine": []}
    people = make_people(rng)
    redcap = redcap_export(rng, people, instruments, truth)
    sheets = omshc_sheets(rng, people, instruments["omshc"], truth)
    knowledge = knowledge_sheet(rng, people, instruments["tic_knowledge"], truth)
    retype_one_email(people, sheets, knowledge, redcap, truth)
    roleplay = roleplay_ratings(people, instruments["tic_roleplay"], truth, seed)

    redcap.to_csv(inbox / "redcap_bienestar_export_2026-09-01.csv", index=False, encoding="utf-8")
    redcap_dictionary(instruments).to_csv(inbox / REDCAP_DICTIONARY, index=False)
    for wave, frame in sheets.items():
        name = {"follow_up": "seguimiento"}.get(wave, wave)
        frame.to_csv(inbox / f"estigma_OMSHC_{name}.csv", sep=";", index=False, encoding="cp1252")
    write_knowledge_xlsx(inbox / "conocimientos_TIC.xlsx", knowledge)
    roleplay.to_csv(inbox / "juego_de_roles_RPC.csv", index=False, encoding="utf-8")
    mark_settled(inbox)  # complete exports, read at once (not files still being written)

    truth["participants"] = len(people)
    # For the privacy tests only: what must never appear in an output.
    truth["pii"] = {"emails": [p.email for p in people],
                    "names": [f"{p.first} {p.last}" for p in people] + TUTORS,
                    "dni": [p.dni for p in people], "phones": [p.phone for p in people]}
    truth["people_per_cohort"] = {c[0]: c[2] for c in COHORTS}
    truth["rows_per_file"] = {p.name: rows_of(p) for p in sorted(inbox.iterdir())}
    (root / "truth" / "truth.json").write_text(json.dumps(truth, indent=2, ensure_ascii=False))
    config = program_yaml("Formación en atención informada en trauma — La Libertad 2026 (demo)")
    (root / "program.yaml").write_text(
        "# Demo program written by `capacitar demo`; see README for every field.\n"
        + yaml.safe_dump(config, allow_unicode=True, sort_keys=False), encoding="utf-8")
    key_file = root / "secrets" / "pseudonym.key"
    if not key_file.exists():
        write_new_key(key_file)
    write_program_gitignore(root)
    return root


def write_knowledge_xlsx(path: Path, frame: pd.DataFrame) -> None:
    """The tutor's workbook: a title row, then the header, on sheet 'Respuestas'."""
    with pd.ExcelWriter(path, engine="openpyxl") as writer:
        frame.to_excel(writer, sheet_name="Respuestas", index=False, startrow=1)
        sheet = writer.sheets["Respuestas"]
        sheet["A1"] = "Prueba de conocimientos: atención informada en trauma (TIC-1)"
        pd.DataFrame({"Nota": ["Formas A y B; P1-P15 en el orden impreso de cada forma."]}
                     ).to_excel(writer, sheet_name="Instrucciones", index=False)


def rows_of(path: Path) -> int:
    """Data rows written to one file."""
    if path.suffix == ".xlsx":
        return len(pd.read_excel(path, sheet_name="Respuestas", header=1, engine="calamine"))
    encoding = "cp1252" if path.name.startswith("estigma") else "utf-8"
    return len(pd.read_csv(path, sep=None, engine="python", encoding=encoding, dtype=str))
