"""A seeded synthetic national edition: N cohorts x 30 providers x 3 waves x 3 instruments.

Written as the raw exports a ministry would collect (see :func:`write_national`):

- ``redcap_nacional_*.csv`` + its data dictionary: one national REDCap
  longitudinal project with the ProQOL (30 items), the site as a dropdown
  code, emails as identifiers;
- ``estigma_OMSHC_<wave>.csv``: the stigma scale (OMS-HC, 15 items) typed in
  Spanish Excel and saved as CSV (cp1252, ``;``), 3% of answers typed as labels;
- ``conocimientos_<region>.xlsx``: the knowledge test (forms A/B, 15 items),
  one workbook per region as the regional tutors send them.

Answers follow the demo's one-factor threshold model with true effects
(knowledge up, stigma down, burnout flat); every cohort keeps ~92% at post and
~78% at follow-up. A few planted problems per 100 cohorts (out-of-range code,
duplicate submission) keep contracts and quarantine busy. Everything is
vectorised: 3,000 cohorts take well under a minute to write.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from instruments import load_builtin
from pipelines.demo import (
    DISCRIMINATION, EVENTS, INDIVIDUAL_SD, LOADING, RETENTION, THRESHOLDS, TRUE_EFFECTS, WAVES,
    dictionary_field,
)
from pipelines.ingest.core import mark_settled
from pipelines.ingest.pseudonym import write_new_key

REGIONS = ["Amazonas", "Áncash", "Apurímac", "Arequipa", "Ayacucho", "Cajamarca", "Callao",
           "Cusco", "Huancavelica", "Huánuco", "Ica", "Junín", "La Libertad", "Lambayeque",
           "Lima", "Loreto", "Madre de Dios", "Moquegua", "Pasco", "Piura", "Puno",
           "San Martín", "Tacna", "Tumbes", "Ucayali"]
PROVIDERS = 30
SHEET_WAVES = {"pre": "Pre", "post": "Post", "follow_up": "Seguimiento"}
FILE_WAVES = {"pre": "pre", "post": "post", "follow_up": "seguimiento"}
TRAITS = ["compassion", "burnout", "sts", "stigma", "knowledge"]
CORR = np.array([[1.0, -0.5, -0.1, -0.2, 0.1], [-0.5, 1.0, 0.6, 0.2, 0.0],
                 [-0.1, 0.6, 1.0, 0.1, 0.0], [-0.2, 0.2, 0.1, 1.0, -0.3],
                 [0.1, 0.0, 0.0, -0.3, 1.0]])


def cohort_frame(n_cohorts: int) -> pd.DataFrame:
    """Cohort id, site, region, dates and REDCap site code; starts spread over 2026."""
    i = np.arange(n_cohorts)
    start = pd.Timestamp("2026-01-05") + pd.to_timedelta((i % 40) * 7, unit="D")
    return pd.DataFrame({
        "id": [f"csmc-{k + 1:04d}-2026" for k in i],
        "site": [f"CSMC {k + 1:04d} {REGIONS[k % len(REGIONS)]}" for k in i],
        "region": [REGIONS[k % len(REGIONS)] for k in i],
        "start": start, "end": start + pd.Timedelta(days=25), "code": i + 1})


def people_frame(rng, cohorts: pd.DataFrame) -> pd.DataFrame:
    """Providers with correlated baseline traits, waves attended and their pre-test form."""
    n = len(cohorts) * PROVIDERS
    frame = pd.DataFrame(rng.multivariate_normal(np.zeros(5), CORR, size=n), columns=TRAITS)
    frame["cohort"] = np.repeat(np.arange(len(cohorts)), PROVIDERS)
    frame["email"] = [f"prov.{k:06d}@minsa.gob.pe" for k in range(n)]
    for wave in WAVES:
        frame[wave] = rng.random(n) < RETENTION[wave]
    frame["pre"] = True
    frame["pre_form"] = np.where(rng.random(n) < 0.5, "A", "B")
    return frame


def latent(rng, people: pd.DataFrame, trait: str, wave: str, n_items: int) -> np.ndarray:
    """Trait + true effect + individual change, one draw per item (people x items)."""
    base = people[trait].to_numpy()[:, None] + TRUE_EFFECTS[trait].get(wave, 0.0)
    if wave == "pre":
        return np.repeat(base, n_items, axis=1)
    return base + rng.normal(0, INDIVIDUAL_SD, size=(len(people), n_items))


def likert(rng, lat: np.ndarray, reverse: np.ndarray) -> np.ndarray:
    """1-5 answers of a one-factor threshold model; reverse items answered reversed."""
    signed = np.where(reverse, -lat, lat)
    y = signed * LOADING + rng.normal(size=lat.shape) * np.sqrt(1 - LOADING**2)
    return np.digitize(y, THRESHOLDS) + 1


def proqol_answers(rng, people, wave, inst) -> np.ndarray:
    trait_of = {}
    for sub, trait in (("compassion_satisfaction", "compassion"), ("burnout", "burnout"),
                       ("secondary_traumatic_stress", "sts")):
        trait_of.update({i: trait for i in inst.subscale(sub).items})
    reverse = {i for s in inst.subscales for i in s.reverse}
    lat = np.column_stack([latent(rng, people, trait_of[i], wave, 1)[:, 0] for i in inst.item_ids])
    return likert(rng, lat, np.array([i in reverse for i in inst.item_ids]))


def survey_dates(rng, cohorts, people, wave) -> pd.Series:
    """Submission timestamps within each cohort's window."""
    start = cohorts["start"].to_numpy()[people["cohort"].to_numpy()]
    offset = {"pre": 0, "post": 25, "follow_up": 115}[wave]
    minutes = rng.integers(8 * 60, 18 * 60, size=len(people))
    stamp = pd.to_datetime(start) + pd.to_timedelta(offset, unit="D") + pd.to_timedelta(
        minutes, unit="min")
    return pd.Series(stamp.strftime("%Y-%m-%d %H:%M:%S"), index=people.index)


def redcap_export(rng, cohorts, people, inst) -> pd.DataFrame:
    frames = []
    for wave in WAVES:
        present = people[people[wave]]
        answers = proqol_answers(rng, present, wave, inst)
        frame = pd.DataFrame(answers.astype(str),
                             columns=[f"proqol_{n}" for n in range(1, answers.shape[1] + 1)])
        frame.insert(0, "record_id", (100000 + present.index).astype(str))
        frame.insert(1, "redcap_event_name", EVENTS[wave])
        frame.insert(2, "correo", present["email"].to_numpy())
        frame.insert(3, "sede", (present["cohort"].to_numpy() + 1).astype(str))
        frame.insert(4, "fecha_encuesta", survey_dates(rng, cohorts, present, wave).to_numpy())
        frame["proqol_complete"] = "2"
        frames.append(frame)
    frame = pd.concat(frames, ignore_index=True)
    # Planted: an abandoned form every ~50 cohorts, a duplicate submission every ~100.
    abandoned = rng.choice(len(frame), size=max(1, len(cohorts) // 50), replace=False)
    frame.loc[abandoned, "proqol_complete"] = "0"
    duplicates = frame.loc[rng.choice(len(frame), size=max(1, len(cohorts) // 100),
                                      replace=False)].copy()
    duplicates["record_id"] = (900000 + np.arange(len(duplicates))).astype(str)
    return pd.concat([frame, duplicates], ignore_index=True)


def redcap_dictionary(cohorts, inst) -> pd.DataFrame:
    field = dictionary_field
    sites = " | ".join(f"{c}, {s}" for c, s in zip(cohorts["code"], cohorts["site"]))
    choices = " | ".join(f"{o.code}, {o.es}" for o in inst.response_options)
    rows = [field("record_id", "registro", "text", "Record ID"),
            field("correo", "registro", "text", "Correo electrónico", identifier="y"),
            field("sede", "registro", "dropdown", "Sede", sites),
            field("fecha_encuesta", "registro", "text", "Fecha")]
    rows += [field(f"proqol_{n}", "proqol", "radio", f"PROQOL {n}", choices)
             for n in range(1, len(inst.item_ids) + 1)]
    return pd.DataFrame(rows)


def stigma_sheet(rng, cohorts, people, wave, inst) -> pd.DataFrame:
    present = people[people[wave]]
    reverse = {i for s in inst.subscales for i in s.reverse}
    lat = latent(rng, present, "stigma", wave, len(inst.item_ids))
    answers = likert(rng, lat, np.array([i in reverse for i in inst.item_ids])).astype(str)
    labels = np.array([o.es for o in inst.response_options], dtype=object)
    typed = rng.random(answers.shape) < 0.03
    answers = answers.astype(object)
    answers[typed] = labels[answers[typed].astype(int) - 1]
    frame = pd.DataFrame(answers, columns=[f"OMS{n}" for n in range(1, answers.shape[1] + 1)])
    frame.insert(0, "Correo", present["email"].to_numpy())
    frame.insert(1, "Sede", cohorts["site"].to_numpy()[present["cohort"].to_numpy()])
    frame.insert(2, "Fecha", survey_dates(rng, cohorts, present, wave).str[:10].to_numpy())
    bad = rng.choice(len(frame), size=max(1, len(cohorts) // 100), replace=False)
    frame.loc[bad, "OMS6"] = "7"  # planted: out of range
    return frame


def knowledge_sheet(rng, cohorts, people, inst) -> pd.DataFrame:
    difficulty = dict(zip(inst.item_ids, np.random.default_rng(7).normal(-0.2, 0.8,
                                                                        len(inst.item_ids))))
    frames = []
    for wave in WAVES:
        present = people[people[wave]]
        forms = present["pre_form"].to_numpy()
        if wave == "post":
            forms = np.where(forms == "A", "B", "A")
        ability = latent(rng, present, "knowledge", wave, 1)[:, 0]
        frame = pd.DataFrame({
            "Momento": SHEET_WAVES[wave],
            "Sede": cohorts["site"].to_numpy()[present["cohort"].to_numpy()],
            "Región": cohorts["region"].to_numpy()[present["cohort"].to_numpy()],
            "Correo electrónico": present["email"].to_numpy(), "Forma": forms})
        for form in inst.forms:
            rows = forms == form.id
            for n, item in enumerate(form.items, 1):
                frame.loc[rows, f"P{n}"] = chosen_options(
                    rng, inst, form.key[item], item, ability[rows] - difficulty[item])
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


def chosen_options(rng, inst, key, item, logit: np.ndarray) -> np.ndarray:
    """The key with logistic probability, else one distractor at random."""
    options = [str(o.code) for o in inst.options_for(item)]
    distractors = np.array([o for o in options if o != str(key)], dtype=object)
    right = rng.random(len(logit)) < 1 / (1 + np.exp(-DISCRIMINATION * logit))
    wrong = distractors[rng.integers(0, len(distractors), size=len(logit))]
    return np.where(right, str(key), wrong).astype(object)


def program_yaml(cohorts: pd.DataFrame) -> dict:
    return {
        "name": f"Formación nacional en atención informada en trauma 2026 "
                f"({len(cohorts)} cohortes, sintético)",
        "language": "es", "inbox": "inbox", "output": "outputs",
        "pseudonymisation": {"key_file": "secrets/pseudonym.key", "create_if_missing": True},
        "cohorts": [{"id": r.id, "site": r.site, "start": r.start.date().isoformat(),
                     "end": r.end.date().isoformat()} for r in cohorts.itertuples()],
        "waves": [
            {"id": "pre", "order": 1, "label": {"es": "Antes", "en": "Before"}},
            {"id": "post", "order": 2, "label": {"es": "Después", "en": "After"}},
            {"id": "follow_up", "order": 3,
             "label": {"es": "Seguimiento (3 meses)", "en": "Follow-up (3 months)"}}],
        "sources": [
            {"name": "redcap_nacional", "pattern": "redcap_nacional_*.csv", "format": "redcap",
             "dictionary": "diccionario_redcap_nacional.csv", "identifier": ["correo"],
             "pii": ["record_id"],
             "cohort": {"column": "sede", "map": {str(c): i for c, i in
                                                  zip(cohorts["code"], cohorts["id"])}},
             "wave": {"column": "redcap_event_name", "map": {v: k for k, v in EVENTS.items()}},
             "submitted_at": "fecha_encuesta",
             "instruments": {"proqol": {"items": "proqol_{n}"}}},
            {"name": "estigma_excel", "pattern": "estigma_OMSHC_*.csv", "format": "csv",
             "identifier": ["Correo"], "cohort": {"column": "Sede"},
             "wave": {"filename": r"estigma_OMSHC_(\w+)\.csv",
                      "map": {"pre": "pre", "post": "post", "seguimiento": "follow_up"}},
             "submitted_at": "Fecha", "instruments": {"omshc": {"items": "OMS{n}"}}},
            {"name": "conocimientos_regiones", "pattern": "conocimientos_*.xlsx",
             "format": "xlsx", "sheet": "Respuestas", "header_row": 1,
             "identifier": ["Correo electrónico"], "cohort": {"column": "Sede"},
             "wave": {"column": "Momento",
                      "map": {"pre": "pre", "post": "post", "seguimiento": "follow_up"}},
             "instruments": {"tic_knowledge": {"items": "P{n}", "form": {"column": "Forma"}}}},
        ],
    }


def slug(text: str) -> str:
    import unicodedata
    plain = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return plain.lower().replace(" ", "-")


def write_national(folder: str | Path, n_cohorts: int = 1000, seed: int = 2026) -> dict:
    """Write the program folder; return counts (cohorts, people, rows, item responses).

    Examples
    --------
    >>> import tempfile
    >>> write_national(tempfile.mkdtemp(), n_cohorts=4)["cohorts"]
    4
    """
    root = Path(folder)
    inbox = root / "inbox"
    inbox.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    instruments = load_builtin()
    cohorts = cohort_frame(n_cohorts)
    people = people_frame(rng, cohorts)
    redcap = redcap_export(rng, cohorts, people, instruments["proqol"])
    redcap.to_csv(inbox / "redcap_nacional_2026-12-01.csv", index=False)
    redcap_dictionary(cohorts, instruments["proqol"]).to_csv(
        inbox / "diccionario_redcap_nacional.csv", index=False)
    responses = redcap.filter(like="proqol_").shape[1] - 1
    counts = {"redcap rows": len(redcap), "responses": len(redcap) * responses}
    for wave in WAVES:
        sheet = stigma_sheet(rng, cohorts, people, wave, instruments["omshc"])
        sheet.to_csv(inbox / f"estigma_OMSHC_{FILE_WAVES[wave]}.csv", sep=";", index=False,
                     encoding="cp1252")
        counts["responses"] += sheet.size - 3 * len(sheet)
    knowledge = knowledge_sheet(rng, cohorts, people, instruments["tic_knowledge"])
    for region, frame in knowledge.groupby("Región"):
        with pd.ExcelWriter(inbox / f"conocimientos_{slug(region)}.xlsx") as writer:
            frame.drop(columns="Región").to_excel(writer, sheet_name="Respuestas", index=False)
    counts["responses"] += len(knowledge) * 15
    mark_settled(inbox)  # complete exports, read at once (not files still being written)
    (root / "program.yaml").write_text(yaml.safe_dump(program_yaml(cohorts), allow_unicode=True,
                                                      sort_keys=False), encoding="utf-8")
    key = root / "secrets" / "pseudonym.key"
    if not key.exists():
        write_new_key(key)
    return {"cohorts": n_cohorts, "people": len(people), **counts,
            "files": len(list(inbox.iterdir()))}
