"""Small generated programs for report tests: tiny cohorts, two test forms with anchor items,
three waves with attrition and forms set aside, run through the real analysis (no Prefect)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from data_contracts.rules import ContractResult
from instruments import load_builtin
from pipelines import cohort_analysis, stages
from pipelines.analysis.tables import band_transitions, item_tables, reliability_table, wave_means
from pipelines.config import ProgramConfig

WAVES = ("pre", "post", "follow_up")
LABELS = {"pre": ("Antes", "Before"), "post": ("Después", "After"),
          "follow_up": ("Seguimiento", "Follow-up")}
INSTRUMENTS = ("tic_knowledge", "proqol")


def program_config(sizes: list[int], waves=WAVES, name: str = "Programa de prueba",
                   min_cell_size: int = 5, primary=()) -> ProgramConfig:
    """A program.yaml of ``len(sizes)`` cohorts (no inbox: the answers are generated)."""
    return ProgramConfig.model_validate({
        "name": name, "language": "es", "min_cell_size": min_cell_size,
        "cohorts": [{"id": f"c{i}", "site": f"Sede {chr(65 + i)}"} for i in range(len(sizes))],
        "waves": [{"id": w, "order": k, "label": {"es": LABELS[w][0], "en": LABELS[w][1]}}
                  for k, w in enumerate(waves)],
        "primary_outcomes": list(primary),
        "sources": [{"name": "s", "pattern": "*.csv", "identifier": ["email"],
                     "cohort": {"column": "cohort"}, "wave": {"column": "wave"},
                     "instruments": {"proqol": {"items": "proqol_{n}"}}}]})


def answers(rng, sizes: list[int], waves=WAVES, retention=(1.0, 0.8, 0.65),
            set_aside: float = 0.3) -> tuple[dict[str, pd.DataFrame], pd.DataFrame]:
    """Valid responses per instrument and the quarantine of a generated program.

    Everyone answers at the first wave; later, each person comes with the
    wave's retention probability, and of those who do not, a share had a form
    that was set aside (a whole-row quarantine record) instead.
    """
    instruments = load_builtin()
    test, scale = instruments["tic_knowledge"], instruments["proqol"]
    rows = {"tic_knowledge": [], "proqol": []}
    quarantine = []
    # One trait drives every ProQOL item, burnout's and stress's against satisfaction's.
    reversed_items = {i for sub in scale.subscales for i in sub.reverse}
    sign = {i: (1.0 if sub.id == "compassion_satisfaction" else -1.0)
            for sub in scale.subscales for i in sub.items}
    loadings = np.array([sign[i] for i in scale.item_ids])
    reverse = np.array([i in reversed_items for i in scale.item_ids])
    for c, size in enumerate(sizes):
        for p in range(size):
            person, ability, trait = f"P{c:02d}{p:03d}", rng.normal(), rng.normal()
            for k, wave in enumerate(waves):
                keys = {"cohort": f"c{c}", "participant": person, "wave": wave}
                if rng.random() > retention[min(k, len(retention) - 1)]:
                    if rng.random() < set_aside:
                        quarantine += [{**keys, "instrument": i, "rule": "code_out_of_range",
                                        "scope": "row", "source_file": "f.csv",
                                        "source_row": p + 2, "stage": "contracts"}
                                       for i in INSTRUMENTS]
                    continue
                form = test.forms[int(rng.integers(len(test.forms)))]
                answer = {item: np.nan for item in test.item_ids}
                for item in form.items:
                    key = form.key[item]
                    codes = [str(o.code) for o in test.options_for(item)]
                    right = rng.random() < 1 / (1 + np.exp(-(ability + 0.6 * k)))
                    answer[item] = key if right else rng.choice([x for x in codes if x != key])
                rows["tic_knowledge"].append({**keys, "instrument": "tic_knowledge",
                                              "form": form.id, **answer})
                keyed = 3 + (trait - 0.3 * k) * loadings + rng.normal(0, 0.8, len(loadings))
                codes = np.clip(np.round(np.where(reverse, 6 - keyed, keyed)), 1, 5)
                rows["proqol"].append({**keys, "instrument": "proqol", "form": "",
                                       **dict(zip(scale.item_ids, codes))})
    valid = {}
    for inst_id, found in rows.items():
        frame = pd.DataFrame(found)
        frame["source_file"], frame["source_row"] = "f.csv", np.arange(len(frame)) + 2
        valid[inst_id] = frame
    columns = ["source_file", "source_row", "participant", "instrument", "cohort", "wave",
               "stage", "rule", "scope", "column", "value", "detail"]
    q = pd.DataFrame(quarantine).reindex(columns=columns)
    for column in ("column", "value", "detail"):
        q[column] = ""
    return valid, q


def analysed(config: ProgramConfig, valid: dict[str, pd.DataFrame], quarantine: pd.DataFrame,
             mixed_models: bool = False) -> dict[str, pd.DataFrame]:
    """The report stage's tables, through the pipeline's own stage functions.

    Without ``mixed_models`` the program-wide rows are those of
    ``cohort_analysis.analyse_pooled`` minus the mixed models (seconds per program; they
    print no count), so that many programs can be rendered in a test.
    """
    ctx = stages.Context(config=config, instruments=load_builtin(), run_id="r0test",
                         started="2026-12-01T00:00:00+00:00")
    contracts = ContractResult(valid=valid, quarantine=quarantine, summary=pd.DataFrame())
    scores = stages.score(ctx, contracts)
    if mixed_models:
        tables = stages.analyse(ctx, contracts, scores)
    else:
        items, options = item_tables(valid, ctx.instruments, scope="pooled")
        pooled = {"reliability": reliability_table(valid, ctx.instruments, n_boot=200,
                                                   scope="pooled"),
                  "items": items, "item_options": options,
                  "band_transitions": pd.concat(
                      [band_transitions(scores, f, t, scope="pooled") for f, t in config.pairs()]
                      or [None]),
                  "wave_means": wave_means(scores, scope="pooled"), "mixed_models": []}
        fresh = [cohort_analysis.analyse_cohorts(ctx, valid, scores)]
        tables = cohort_analysis.assemble(ctx, scores, fresh, pooled, quarantine=quarantine)
    runs = pd.DataFrame([{"run_id": ctx.run_id, "started": ctx.started,
                          "finished": ctx.started, "status": "complete",
                          "code_version": "test", "problems": ""}])
    return {"scores": scores, **tables, "quarantine": quarantine, "runs": runs}


def small_program(seed: int, sizes: list[int] | None = None, **config_options):
    """(tables, config, instruments) of a generated program of 2-5 cohorts of 1-12 people."""
    rng = np.random.default_rng(seed)
    if sizes is None:
        sizes = [int(n) for n in rng.integers(1, 13, size=rng.integers(2, 6))]
    config = program_config(sizes, **config_options)
    valid, quarantine = answers(rng, sizes, tuple(w.id for w in config.waves))
    return analysed(config, valid, quarantine), config, load_builtin()
