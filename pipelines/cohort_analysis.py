"""Stage 4's parts: cohorts analysed apart, reused while unchanged, assembled with the
program-wide figures.

Every cohort-level figure depends on one cohort's rows only (and on the
context in :func:`analysis_context`), so cohorts can be analysed in any
grouping, in any process or on Dask, and reused while their fingerprint is
unchanged. What depends on the whole program (pooled rows, RCI references,
participation, models, verdicts) is computed on every run by :func:`assemble`.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from instruments.model import improvement_directions
from pipelines.analysis.tables import (
    apply_rci,
    band_transitions,
    change_tables,
    change_verdicts,
    item_tables,
    mixed_model_rows,
    model_verdicts,
    models_table,
    rci_references,
    reliability_table,
    retention,
    wave_means,
)
from pipelines.competence import RCI_RELIABILITY, competence_tables
from pipelines.competence import TABLES as COMPETENCE_TABLES
from pipelines.config import ProgramConfig
from pipelines.incremental import (
    ANALYSIS_VERSION,
    Plan,
    cohort_fingerprints,
    equating_digest,
    instruments_digest,
    stale_cohorts,
)
from pipelines.parallel import Shared, workers
from pipelines.run_records import code_version
from pipelines.schema import POOLED, load_schema

if TYPE_CHECKING:
    from pipelines.stages import Context


def participation_table(scores: pd.DataFrame, first_wave: str | None = None) -> pd.DataFrame:
    """People with a valid response per cohort x wave x instrument, and who lacks a baseline.

    A person seen at a later wave but not at ``first_wave`` is kept (their
    wave figures count) and reported in ``n_unmatched``.
    """
    people = scores[["cohort", "wave", "instrument", "participant"]].drop_duplicates()
    baseline = people[people["wave"] == first_wave][["cohort", "instrument", "participant"]]
    people = people.merge(baseline.assign(matched=True), how="left",
                          on=["cohort", "instrument", "participant"])
    people["matched"] = people["matched"].fillna(False).astype(bool)
    grouped = people.groupby(["cohort", "wave", "instrument"])
    table = grouped["participant"].nunique().rename("n").to_frame()
    table["n_matched_first_wave"] = grouped["matched"].sum().astype("int64")
    table["n_unmatched"] = table["n"] - table["n_matched_first_wave"]
    return table.reset_index()


COHORT_TABLES = ["reliability", "items", "item_options", "change", "individual_change",
                 "band_transitions", "wave_means"]


def analysis_context(ctx: Context, valid: dict[str, pd.DataFrame]) -> str:
    """What a cohort's figures depend on besides its own rows (for its fingerprint): the
    waves, the instruments, the code, and every cohort's baseline answers that the knowledge
    tests' equating lines are fitted on."""
    return json.dumps({
        "waves": ctx.config.wave_order(), "pairs": ctx.config.pairs(),
        "instruments": instruments_digest(ctx.instruments),
        "equating": equating_digest(valid, ctx.instruments, ctx.config.wave_order()[0]),
        "analysis": ANALYSIS_VERSION, "code": code_version()})


def cohorts_present(valid: dict[str, pd.DataFrame]) -> list[str]:
    """Cohorts with at least one valid row, in a stable order."""
    found = {str(c) for frame in valid.values() if not frame.empty
             for c in frame["cohort"].unique()}
    return sorted(found)


def cohort_groups(cohorts: list[str], n_groups: int) -> list[list[str]]:
    """Split cohorts into at most ``n_groups`` groups of about equal size (tasks to run).

    >>> cohort_groups(["a", "b", "c", "d", "e"], 2)
    [['a', 'c', 'e'], ['b', 'd']]
    """
    n_groups = max(1, min(n_groups, len(cohorts)))
    return [cohorts[i::n_groups] for i in range(n_groups)] if cohorts else []


def cohort_inputs(valid: dict[str, pd.DataFrame], scores: pd.DataFrame, cohorts: list[str]
                  ) -> tuple[dict[str, pd.DataFrame], pd.DataFrame]:
    """The valid responses and scores of ``cohorts`` only (what one analysis task needs)."""
    wanted = set(cohorts)
    if wanted.issuperset(cohorts_present(valid)):  # every cohort (a full local run): no copy
        return valid, scores
    return ({i: f[f["cohort"].astype(str).isin(wanted)] for i, f in valid.items()},
            scores[scores["cohort"].astype(str).isin(wanted)])


def analyse_cohorts(ctx: Context, valid: dict[str, pd.DataFrame], scores: pd.DataFrame
                    ) -> dict[str, pd.DataFrame]:
    """Cohort-level rows (no pooled rows) of the cohort tables for the cohorts given.

    Every figure here depends on one cohort's data only, so cohorts can be
    analysed in any grouping, on any worker, and reused while unchanged. RCI
    columns are left for :func:`assemble` (they use program-wide references).
    """
    items, options = item_tables(valid, ctx.instruments, scope="cohorts")
    change, individual, transitions = change_tables(
        scores, ctx.config.pairs(), improvement_directions(ctx.instruments), scope="cohorts")
    return {"reliability": reliability_table(valid, ctx.instruments, scope="cohorts"),
            "items": items, "item_options": options, "change": change,
            "individual_change": individual, "band_transitions": transitions,
            "wave_means": wave_means(scores, scope="cohorts")}


def pooled_parts(ctx: Context, valid: dict[str, pd.DataFrame], scores: pd.DataFrame,
                 previous: tuple[pd.DataFrame, pd.DataFrame] | None = None
                 ) -> dict[str | tuple, Callable[[], Any]]:
    """The program-wide computations, biggest first, each independent of the others (so they
    can be shared out among processes); :func:`pooled_rows` puts their results together.
    ``previous``: :func:`earlier_models`."""
    pairs = ctx.config.pairs()
    # The mixed models are the biggest part: one part per wave pair, so processes share them.
    mixed = {("mixed_models", pair): functools.partial(mixed_model_rows, scores, [pair],
                                                       previous)
             for pair in pairs}
    return {
        **mixed,
        "reliability": lambda: reliability_table(valid, ctx.instruments, scope="pooled"),
        "items": lambda: item_tables(valid, ctx.instruments, scope="pooled"),
        "band_transitions": lambda: [band_transitions(scores, f, t, scope="pooled")
                                     for f, t in pairs],
        "wave_means": lambda: wave_means(scores, scope="pooled"),
        "competence": lambda: competence_tables(valid, ctx.instruments, ctx.config.wave_order()),
    }


def pooled_rows(parts: dict[str | tuple, Any]) -> dict[str, pd.DataFrame]:
    """The results of :func:`pooled_parts` as the program-wide rows of each table."""
    items, options = parts["items"]
    transitions = parts["band_transitions"]
    mixed = [row for name, rows in parts.items() if name[0] == "mixed_models" for row in rows]
    return {"reliability": parts["reliability"], "items": items, "item_options": options,
            "band_transitions": pd.concat(transitions, ignore_index=True) if transitions else None,
            "wave_means": parts["wave_means"], "mixed_models": mixed,
            **parts["competence"]}


def analyse_pooled(ctx: Context, valid: dict[str, pd.DataFrame], scores: pd.DataFrame
                   ) -> dict[str, pd.DataFrame]:
    """Program-wide (cohort ``ALL``) rows of the cohort tables, and the mixed models' rows
    (:func:`mixed_model_rows`): they need no cohort's figures, refreshed on every run."""
    return pooled_rows({name: part() for name, part in pooled_parts(ctx, valid, scores).items()})


def analyse_shared(ctx: Context, valid: dict[str, pd.DataFrame], scores: pd.DataFrame,
                   cohorts: list[str]) -> tuple[dict, list[dict]]:
    """(:func:`analyse_pooled`, :func:`analyse_cohorts` per group of ``cohorts``), computed by
    this process and :func:`pipelines.parallel.workers` - 1 forked ones.

    The work is one group of cohorts per process (the analysis is vectorised
    over cohorts: a few large calls cost less than many small ones), then the
    program-wide parts; each process takes the next piece as it becomes free.
    """
    groups = cohort_groups(cohorts, workers())
    pooled = pooled_parts(ctx, valid, scores, earlier_models(ctx, valid, cohorts))
    work = [functools.partial(analyse_group, ctx, valid, scores, group) for group in groups]
    with Shared(call, [*work, *pooled.values()], workers() - 1) as shared:
        shared.help()
        done = shared.results()
    return pooled_rows(dict(zip(pooled, done[len(groups):]))), done[:len(groups)]


def earlier_models(ctx: Context, valid: dict[str, pd.DataFrame], cohorts: list[str]
                   ) -> tuple[pd.DataFrame, pd.DataFrame] | None:
    """The last good run's ``scores`` and ``models`` tables when some cohort is not analysed
    afresh (``cohorts`` are those that are): that cohort kept its fingerprint, which holds
    the code and the analysis context, so that run's models of unchanged data are this run's
    (:func:`pipelines.analysis.tables.mixed_model_rows` checks the data)."""
    if set(cohorts) >= set(cohorts_present(valid)):
        return None
    stored = stored_tables(ctx, ["scores", "models"])
    return None if stored is None else (stored["scores"], stored["models"])


def analyse_group(ctx: Context, valid: dict[str, pd.DataFrame], scores: pd.DataFrame,
                  group: list[str]) -> dict[str, pd.DataFrame]:
    """:func:`analyse_cohorts` of the cohorts in ``group`` only."""
    return analyse_cohorts(ctx, *cohort_inputs(valid, scores, group))


def call(work: Callable[[], Any]) -> Any:
    """``work()``: what a process does with each piece of shared work."""
    return work()


def cohort_rank(config: ProgramConfig):
    """Sort key: declared cohorts in program.yaml's order, then others, pooled rows last."""
    declared = {c.id: i for i, c in enumerate(config.cohorts)}
    return lambda cohort: (cohort == POOLED, declared.get(cohort, len(declared)), cohort)


def stack(parts: list[pd.DataFrame | None], rank, name: str) -> pd.DataFrame:
    """Concatenate table parts, cohorts in ``rank`` order, row order within a cohort kept.

    With no rows at all (no valid data, every file skipped) the table is empty
    with the columns ``schema.yaml`` documents for ``name``.
    """
    used = [p for p in parts if p is not None and not p.empty]
    if not used:
        known = [p for p in parts if p is not None]
        return known[0].iloc[0:0] if known else pd.DataFrame(
            columns=list(load_schema().tables[name].columns))
    table = pd.concat(used, ignore_index=True)
    codes, cohorts = pd.factorize(table["cohort"].astype(str))
    place = np.empty(len(cohorts), dtype=np.int64)  # each distinct cohort's place in rank order
    place[sorted(range(len(cohorts)), key=lambda i: rank(cohorts[i]))] = np.arange(len(cohorts))
    order = place[codes]
    if (np.diff(order) >= 0).all():  # already in order (a full run): no copy
        return table
    return table.iloc[np.argsort(order, kind="stable")].reset_index(drop=True)


def assemble(ctx: Context, scores: pd.DataFrame, fresh: list[dict], pooled: dict,
             previous: dict[str, pd.DataFrame] | None = None, kept: list[str] = (),
             quarantine: pd.DataFrame | None = None) -> dict:
    """The analysis tables from fresh cohort rows, reused cohort rows and pooled rows.

    Then what depends on the whole program: RCI (pooled baseline references),
    participation (with retention: ``quarantine`` tells forms set aside from
    absences), the models across cohorts and the verdicts.
    """
    rank, tables = cohort_rank(ctx.config), {}
    for name in COHORT_TABLES:
        reused = None
        if previous is not None and kept:
            reused = previous[name][previous[name]["cohort"].astype(str).isin(set(kept))]
        tables[name] = stack([*(f[name] for f in fresh), reused, pooled.get(name)], rank, name)
    first = ctx.config.wave_order()[0]
    references = rci_references(scores, tables["reliability"], ctx.instruments, first,
                                rated=pooled.get(RCI_RELIABILITY))
    tables["change"], tables["individual_change"] = apply_rci(
        tables["change"], tables["individual_change"], references,
        improvement_directions(ctx.instruments))
    tables["participation"] = retention(participation_table(scores, first), scores, quarantine,
                                        ctx.config.wave_order())
    tables["models"] = models_table(scores, ctx.config.pairs(), tables["change"],
                                    pooled.get("mixed_models"))
    primary = ctx.config.primary_outcomes
    tables["change"] = change_verdicts(tables["change"], primary)
    tables["models"] = model_verdicts(tables["models"], improvement_directions(ctx.instruments),
                                      primary)
    tables.update({name: pooled[name] for name in COMPETENCE_TABLES if name in pooled})
    return tables


@dataclass
class CohortWork:
    """Which cohorts a run analyses afresh and which keep their stored rows."""

    fingerprints: dict[str, str]
    stale: list[str]
    kept: list[str]
    previous: dict[str, pd.DataFrame] | None


def cohort_work(ctx: Context, plan: Plan, valid: dict[str, pd.DataFrame],
                force: bool = False) -> CohortWork:
    """Compare each cohort's fingerprint with the last good run's (all stale when forced)."""
    fingerprints = cohort_fingerprints(valid, analysis_context(ctx, valid))
    previous = None if force or plan.previous is None else stored_tables(ctx, COHORT_TABLES)
    stale = stale_cohorts(fingerprints, plan.previous if previous is not None else None)
    return CohortWork(fingerprints, stale, [c for c in fingerprints if c not in stale], previous)


def stored_tables(ctx: Context, names: list[str]) -> dict[str, pd.DataFrame] | None:
    """The tables ``names`` of the last good run, or None when any is missing."""
    folder = ctx.config.output_dir / "tables"
    paths = {name: folder / f"{name}.parquet" for name in names}
    if not all(p.exists() for p in paths.values()):
        return None
    return {name: pd.read_parquet(p) for name, p in paths.items()}
