"""The documented result tables (``schema.yaml``) and the value labels of their codes.

Exports, the codebook and the tests read the same declarations, so a column
cannot reach an output without a label and a definition.

Examples
--------
>>> schema = load_schema()
>>> schema.tables["scores"].columns["score"].type
'number'
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict

from instruments.loader import read_yaml_model
from instruments.model import Instrument, Text

SCHEMA_FILE = Path(__file__).parent / "schema.yaml"
POOLED = "ALL"


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Column(Strict):
    """One documented column.

    ``category``: a labelled code in .sav/.dta (``values`` names its value
    set); with ``raw``, a value matching no declared one is written as text in
    ``<name>_raw`` there. ``flags``: ``;``-joined warnings in Parquet/CSV, one
    0/1 variable per declared flag (``flag_<id>``) in .sav/.dta. ``stata_name``:
    the column's name in .dta (Stata names have at most 32 characters).
    ``pattern``: generated columns sharing one definition (``<instrument>_<scale>_<wave>``).
    """

    type: Literal["string", "integer", "number", "boolean", "category", "flags"]
    label: Text
    values: str | None = None
    raw: bool = False
    unit: str = ""
    definition: Text = Text()
    stata_name: str | None = None
    pattern: Text | None = None


class TableSpec(Strict):
    """One documented result table."""

    title: Text
    description: Text
    key: list[str]
    scope: str | None = None
    columns: dict[str, Column]


class Schema(Strict):
    tables: dict[str, TableSpec]


@cache
def load_schema() -> Schema:
    """The result-table declarations shipped with capacitar."""
    return read_yaml_model(SCHEMA_FILE, Schema)


STAGES = {"ingest": Text(es="lectura", en="ingest"),
          "contracts": Text(es="contratos", en="contracts")}
QUARANTINE_SCOPES = {"row": Text(es="fila entera", en="whole row"),
                     "cell": Text(es="una respuesta", en="one answer")}
VERDICTS = {"improved": Text(es="mejoró", en="improved"),
            "worsened": Text(es="empeoró", en="got worse"),
            "no_clear_change": Text(es="sin cambio claro", en="no clear change"),
            "not_estimable": Text(es="no estimable", en="not estimable")}
VERDICT_FAMILIES = {"primary": Text(es="resultado primario", en="primary outcome"),
                    "exploratory": Text(es="exploratorio", en="exploratory"),
                    "all": Text(es="todas las escalas (sin resultados primarios declarados)",
                                en="every scale (no primary outcome declared)")}
IMPROVEMENT = {"higher": Text(es="más alto es mejor", en="higher is better"),
               "lower": Text(es="más bajo es mejor", en="lower is better")}
RCI_CATEGORIES = {"improved": Text(es="mejoró de forma confiable", en="reliably improved"),
                  "no_change": Text(es="sin cambio confiable", en="no reliable change"),
                  "deteriorated": Text(es="empeoró de forma confiable",
                                       en="reliably deteriorated")}
RCI_RELIABILITY_SOURCES = {
    "pooled_baseline_alpha": Text(es="alfa del programa completo en el primer momento",
                                  en="the program's pooled alpha at the first wave"),
    "published_alpha": Text(es="alfa publicado del instrumento (menos de 30 personas)",
                            en="the instrument's published alpha (fewer than 30 people)"),
    "pooled_interrater_icc": Text(  # rated scales: pipelines/competence.py
        es="confiabilidad entre evaluadores del puntaje (ICC(1) del programa completo, ajustada "
           "al número habitual de evaluadores)",
        en="inter-rater reliability of the score (the whole program's ICC(1), stepped up to "
           "the usual number of raters)")}
ALPHA_CI_METHODS = {"feldt": Text(es="Feldt (1965), basado en F", en="Feldt (1965), F-based")}
MISSING_RULES = {"listwise within scale": Text(es="casos completos dentro de la escala",
                                               en="listwise within the scale")}
MODELS = {
    "mixed_random_cohorts": Text(es="Modelo mixto, cohortes aleatorias",
                                 en="Mixed model, random cohorts"),
    "mixed_cohort_fixed": Text(es="Modelo mixto, efectos fijos de cohorte",
                               en="Mixed model, cohort fixed effects"),
    "meta_reml": Text(es="Metaanálisis de efectos aleatorios (REML)",
                      en="Random-effects meta-analysis (REML)"),
    "meta_dl": Text(es="Metaanálisis de efectos aleatorios (DerSimonian-Laird)",
                    en="Random-effects meta-analysis (DerSimonian-Laird)")}
TERMS = {  # (model, term): a term means something only within its model
    ("mixed_random_cohorts", "from_wave_mean"): Text(
        es="Cohortes aleatorias: media en el momento inicial",
        en="Random cohorts: mean at the first wave"),
    ("mixed_random_cohorts", "change"): Text(es="Cohortes aleatorias: cambio medio",
                                             en="Random cohorts: average change"),
    ("mixed_cohort_fixed", "from_wave_mean"): Text(
        es="Efectos fijos: media de la cohorte en el momento inicial",
        en="Fixed effects: the cohort's mean at the first wave"),
    ("mixed_cohort_fixed", "change"): Text(es="Efectos fijos: cambio de la cohorte",
                                           en="Fixed effects: the cohort's change"),
    ("meta_reml", "pooled_d_z"): Text(es="Metaanálisis REML: d_z combinada",
                                      en="REML meta-analysis: pooled d_z"),
    ("meta_dl", "pooled_d_z"): Text(es="Metaanálisis DL: d_z combinada",
                                    en="DL meta-analysis: pooled d_z")}
RUN_STATUSES = {"complete": Text(es="completa", en="complete"),
                "complete_with_problems": Text(es="completa con problemas",
                                               en="complete with problems"),
                "no_new_data": Text(es="sin datos nuevos", en="no new data"),
                "failed": Text(es="fallida", en="failed")}
RELIABILITY_FLAGS = {
    "n_below_10": Text(es="menos de 10 personas: coeficientes inestables",
                       en="fewer than 10 people: unstable coefficients"),
    "n_below_k": Text(es="menos personas que ítems", en="fewer people than items"),
    "alpha_below_0.70": Text(es="alfa menor que 0,70", en="alpha below 0.70"),
    "negative_average_covariance": Text(
        es="covarianza media negativa entre ítems (¿ítems mal invertidos?)",
        en="negative average inter-item covariance (items keyed wrongly?)"),
    "constant_item": Text(es="un ítem con la misma respuesta en todas las personas",
                          en="an item everyone answered alike"),
    "zero_total_variance": Text(es="el total no varía", en="the total does not vary"),
    "item_never_answered": Text(es="un ítem sin respuestas (fuera de la confiabilidad)",
                                en="an item nobody answered (left out of reliability)"),
    "omega_not_estimable": Text(es="omega total no estimable", en="omega total not estimable"),
    "omega_h_not_estimable": Text(es="omega jerárquico no estimable",
                                  en="omega hierarchical not estimable"),
    "omega_h_two_factors": Text(es="omega jerárquico con solo dos factores grupales (inestable)",
                                en="omega hierarchical with only two group factors (unstable)"),
    "heywood_case": Text(es="caso Heywood: una unicidad en el límite",
                         en="Heywood case: a uniqueness at its bound"),
    "rotation_not_converged": Text(es="la rotación oblimin no convergió",
                                   en="the oblimin rotation did not converge")}
ITEM_FLAGS = {
    "possibly_miskeyed": Text(es="r_drop < 0: ¿ítem mal invertido?",
                              en="r_drop < 0: item keyed wrongly?"),
    "constant_item": RELIABILITY_FLAGS["constant_item"],
    "too_hard": Text(es="muy difícil (p < 0,20)", en="too hard (p < .20)"),
    "too_easy": Text(es="muy fácil (p > 0,90)", en="too easy (p > .90)"),
    "low_discrimination": Text(es="discrimina poco (r_drop < 0,20)",
                               en="low discrimination (r_drop < .20)"),
    "possible_wrong_key": Text(es="un distractor discrimina más que la clave: revisar la clave",
                               en="a distractor beats the key: check the key")}
CHANGE_FLAGS = {
    "fewer_than_3_pairs": Text(es="menos de 3 pares: pruebas vacías",
                               en="fewer than 3 pairs: tests left empty"),
    "no_variation_in_differences": Text(es="las diferencias no varían",
                                        en="the differences do not vary")}
MODEL_FLAGS = {
    "fewer_than_3_cohorts": Text(es="menos de 3 cohortes: modelo no ajustado",
                                 en="fewer than 3 cohorts: model not fitted"),
    "fewer_than_2_cohorts": Text(es="menos de 2 cohortes: metaanálisis de una sola",
                                 en="fewer than 2 cohorts: a meta-analysis of one"),
    "boundary_fit": Text(es="una varianza estimada en 0 (ajuste en el límite)",
                         en="a variance estimated at 0 (boundary fit)"),
    "convergence_warning": Text(es="advertencia de convergencia", en="convergence warning"),
    "random_slope_dropped": Text(
        es="el cambio no varió entre cohortes: solo intercepto aleatorio",
        en="change did not vary across cohorts: random intercept only"),
    "se_not_estimable": Text(es="errores estándar no estimables",
                             en="standard errors not estimable"),
    "not_fitted": Text(es="no se pudo ajustar (el motivo, en el texto de flags)",
                       en="could not be fitted (the reason in the flags text)")}
WITHIN = {"scales": ("instrument",), "bands": ("instrument", "scale"),
          "items": ("instrument",), "forms": ("instrument",), "options": ("instrument",),
          "terms": ("model",), "measures": ("instrument",)}
BOOLEAN = {0: Text(es="No", en="No"), 1: Text(es="Sí", en="Yes")}  # every 0/1 variable
SPACES = {"cohorts_pooled": "cohorts", "waves_pooled": "waves"}  # value sets that share another set's codes
KNOWLEDGE_SCALES = {
    "percent_correct": Text(es="% correctas", en="% correct"),
    "anchor_percent_correct": Text(es="% correctas (ítems ancla)", en="% correct (anchor items)"),
    "equated_percent_correct": Text(es="% correctas equiparado (forma de referencia)",
                                    en="% correct, equated (reference form)")}


def instrument_name(inst: Instrument, language: str) -> str:
    """A short name for labels: ``short`` if declared, else the title's last parenthesis.

    >>> from instruments import load_builtin
    >>> instrument_name(load_builtin()["stss"], "es")
    'STSS'
    """
    short = inst.short.get(language)
    if short:
        return short
    title = inst.title.get(language)
    inside = title[title.rfind("(") + 1:-1] if title.endswith(")") and "(" in title else ""
    return inside or inst.id


def number_text(value: float, language: str) -> str:
    """A cut-off as printed: no trailing .0, decimal comma in Spanish.

    >>> number_text(22.0, "es"), number_text(2.5, "es"), number_text(2.5, "en")
    ('22', '2,5', '2.5')
    """
    text = f"{value:g}"
    return text.replace(".", ",") if language == "es" else text


def band_range(band, language: str) -> str:
    """A band's limits as a range: ``<= 22``, ``23-41``, ``>= 42``."""
    low = None if band.min is None else number_text(band.min, language)
    high = None if band.max is None else number_text(band.max, language)
    if low is None and high is None:
        return ""
    if low is None:
        return f"<= {high}"
    if high is None:
        return f">= {low}"
    return f"{low}-{high}"


def per_language(make) -> Text:
    """A Text built by ``make(language)`` for es and en."""
    return Text(es=make("es"), en=make("en"))


def instrument_sets(ordered: list[Instrument]) -> dict[str, list]:
    """Scales, bands, items, forms and options, each keyed by its instrument (and scale)."""
    sets = {"scales": [], "bands": [], "items": [], "forms": [], "options": []}
    for inst in ordered:
        def name(lang, inst=inst):
            return instrument_name(inst, lang)
        for sub in inst.subscales:
            sets["scales"].append(((inst.id, sub.id), per_language(
                lambda lang, sub=sub: f"{name(lang)}: {sub.label.get(lang)}")))
            sets["bands"] += [((inst.id, sub.id, band.id), per_language(
                lambda lang, sub=sub, band=band: f"{name(lang)} {sub.label.get(lang)}: "
                f"{band.label.get(lang)} ({band_range(band, lang)})")) for band in sub.bands]
        if inst.kind == "knowledge":
            wanted = ["percent_correct"] + ["anchor_percent_correct"] * bool(inst.anchor_items)
            wanted += ["equated_percent_correct"] * (len(inst.forms) > 1)
            sets["scales"] += [((inst.id, scale), per_language(
                lambda lang, scale=scale: f"{name(lang)}: {KNOWLEDGE_SCALES[scale].get(lang)}"))
                for scale in wanted]
        sets["items"] += [((inst.id, item.id), per_language(
            lambda lang, item=item: f"{name(lang)} {item.id}: {item.text.get(lang)}".rstrip(": ")))
            for item in inst.items]
        sets["forms"] += [((inst.id, form.id), per_language(
            lambda lang, form=form: f"{name(lang)}: {FORM.get(lang)} {form.id}"))
            for form in inst.forms]
        sets["options"] += option_entries(inst, name)
    return sets


FORM = Text(es="forma", en="form")
OPTION = Text(es="opción", en="option")


def option_entries(inst: Instrument, name) -> list:
    """(instrument, option code) -> label; the option's text when every item shares it."""
    texts: dict[str, set] = {}
    for item in inst.items:
        for option in inst.options_for(item.id):
            texts.setdefault(str(option.code), set()).add((option.es, option.en))
    entries = []
    for code, labels in texts.items():
        if len(labels) == 1:
            (es, en), = labels
            label = Text(es=f"{name('es')}: {code} = {es}", en=f"{name('en')}: {code} = {en}")
        else:
            label = per_language(lambda lang, code=code: f"{name(lang)}: {OPTION.get(lang)} {code}")
        entries.append(((inst.id, code), label))
    return entries


def distinct_labels(entries: list) -> list:
    """Entries whose label repeats another's (two cohorts at one site) get their id added."""
    out = entries
    for lang in ("es", "en"):
        seen: dict[str, int] = {}
        for _, label in out:
            seen[label.get(lang)] = seen.get(label.get(lang), 0) + 1
        out = [(value, label if seen[label.get(lang)] == 1 else label.model_copy(update={
            lang: f"{label.get(lang)} ({value[-1] if isinstance(value, tuple) else value})"}))
            for value, label in out]
    return out


def value_sets(config, instruments: dict[str, Instrument], rules: dict) -> dict[str, list]:
    """Ordered (value, Text label) pairs per value set; the order gives first-time codes.

    A value qualified by other columns (``WITHIN``: a scale by its
    instrument) is a tuple. Codes come from :class:`pipelines.codes.CodeRegistry`:
    declaration order the first time (cohorts and waves as in program.yaml,
    instruments by id, scales and bands as in each instrument), then kept.
    """
    ordered = sorted(instruments.values(), key=lambda i: i.id)
    cohorts = [(c.id, Text(es=c.site, en=c.site)) for c in config.cohorts]
    sets = {
        "cohorts": cohorts,
        "cohorts_pooled": cohorts + [(POOLED, Text(es="Todo el programa", en="Whole program"))],
        "waves": [(w.id, w.label if (w.label.es or w.label.en) else Text(es=w.id, en=w.id))
                  for w in sorted(config.waves, key=lambda w: w.order)],
        "instruments": [(i.id, i.title) for i in ordered],
        **instrument_sets(ordered),
        "rules": [(rule, Text(**text)) for rule, text in rules.items()],
        "rci_categories": list(RCI_CATEGORIES.items()),
        "rci_reliability_sources": list(RCI_RELIABILITY_SOURCES.items()),
        "alpha_ci_methods": list(ALPHA_CI_METHODS.items()),
        "missing_rules": list(MISSING_RULES.items()),
        "models": list(MODELS.items()),
        "terms": list(TERMS.items()),
        "run_statuses": list(RUN_STATUSES.items()),
        "reliability_flags": list(RELIABILITY_FLAGS.items()),
        "item_flags": list(ITEM_FLAGS.items()),
        "change_flags": list(CHANGE_FLAGS.items()),
        "model_flags": list(MODEL_FLAGS.items()),
        "stages": list(STAGES.items()),
        "quarantine_scopes": list(QUARANTINE_SCOPES.items()),
        "improvement": list(IMPROVEMENT.items()),
        "verdicts": list(VERDICTS.items()),
        "verdict_families": list(VERDICT_FAMILIES.items()),
    }
    from pipelines.competence import value_sets as competence_sets  # rating instruments

    sets.update(competence_sets(instruments, sets["waves"]))
    return {name: distinct_labels(entries) for name, entries in sets.items()}
