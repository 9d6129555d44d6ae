"""The GX objects one instrument is validated with, stored once and reused while unchanged.

A checkpoint needs its validation definition, suite and batch definition in
the program's ``gx/`` stores. GX's ``add_or_update`` rewrites all of them on
every call, and the checkpoint's call stores the suite again for its
validation definition: three serialisations and three O(n^2) comparisons of
a suite whose cohort set holds every cohort id (about 2 s a run at 1,000
cohorts, measured). The suite only changes when program.yaml, an instrument
or a hand-added expectation does, so we compare the suite we would store with
the stored one and reuse the stored checkpoint when they match.

Data Docs are rendered the same way: every page of the site is rendered when
the site is new, afterwards only this run's validation results, the suites
that changed and the index (a full build renders every result ever kept,
longer with each run). The index still reads every result kept, so only the
newest :data:`KEPT_RESULTS` of each instrument are kept: a program run every day
would otherwise validate a little slower each day (on the demo every result kept
added 2-3 ms to each later validation, measured).
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

DATASOURCE = "capacitar"
BATCH = "all_rows"
RESULT_FORMAT = {"result_format": "COMPLETE"}
KEPT_RESULTS = 10  # validation results of each instrument kept in gx/ and shown in Data Docs


def checkpoint_name(inst_id: str) -> str:
    """The stored checkpoint of one instrument."""
    return f"capacitar_{inst_id}"


def batch_definition(context, asset_name: str):
    """The whole-dataframe batch definition of one instrument, created only when missing.

    Every instrument keeps its own asset in the one pandas data source, so a
    stored validation definition always finds its data (``add_or_update_pandas``
    would replace the data source, and the other instruments' assets with it).
    """
    try:
        source = context.data_sources.get(DATASOURCE)
    except KeyError:
        source = context.data_sources.add_pandas(DATASOURCE)
    if source.type != "pandas":  # a hand-made data source of that name: start again
        source = context.data_sources.add_or_update_pandas(DATASOURCE)
    try:
        asset = source.get_asset(asset_name)
    except LookupError:
        asset = source.add_dataframe_asset(asset_name)
    try:
        return asset.get_batch_definition(BATCH)
    except KeyError:
        return asset.add_batch_definition_whole_dataframe(BATCH)


def canonical(suite_dict: dict) -> str:
    """A suite's JSON without the ids GX assigns, for comparing built and stored suites.

    Compared as text so that ``1`` and ``1.0`` in a value set differ, as they
    do in the stored file.
    """
    plain = {k: v for k, v in suite_dict.items() if k != "id"}
    plain["expectations"] = [{k: v for k, v in e.items() if k != "id"}
                             for e in suite_dict.get("expectations", [])]
    return json.dumps(plain, sort_keys=True, default=str)


def suite_unchanged(suite, stored_path: Path) -> bool:
    """True when the suite stored at ``stored_path`` is ``suite`` (ids aside)."""
    if not stored_path.exists():
        return False
    try:
        stored = json.loads(stored_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return canonical(stored) == canonical(suite.to_json_dict())


def is_ours(checkpoint, inst_id: str) -> bool:
    """A stored checkpoint is the one ``store_checkpoint`` writes for ``inst_id``."""
    definitions = checkpoint.validation_definitions
    if checkpoint.actions or len(definitions) != 1:
        return False
    definition = definitions[0]
    data = definition.data
    return (definition.name == inst_id and definition.suite.name == inst_id
            and data.name == BATCH and data.data_asset.name == inst_id
            and data.data_asset.datasource.name == DATASOURCE
            and json.dumps(checkpoint.result_format, default=str, sort_keys=True)
            == json.dumps(RESULT_FORMAT, sort_keys=True))


def stored_checkpoint(context, suite, stored_path: Path):
    """The stored checkpoint of ``suite``'s instrument if nothing changed, else None."""
    from great_expectations.exceptions import DataContextError

    if not suite_unchanged(suite, stored_path):
        return None
    try:
        checkpoint = context.checkpoints.get(checkpoint_name(suite.name))
    except (DataContextError, LookupError, KeyError, ValueError):
        return None  # missing, or refers to objects that are gone: store them again
    return checkpoint if is_ours(checkpoint, suite.name) else None


def store_checkpoint(context, suite, batch):
    """Store (add or update) the suite, its validation definition and checkpoint."""
    import great_expectations as gx

    suite = context.suites.add_or_update(suite)
    definition = context.validation_definitions.add_or_update(
        gx.ValidationDefinition(name=suite.name, data=batch, suite=suite))
    return context.checkpoints.add_or_update(gx.Checkpoint(
        name=checkpoint_name(suite.name), validation_definitions=[definition],
        actions=[],  # Data Docs are built once per run, after every instrument
        result_format=RESULT_FORMAT))


def checkpoint_for(context, suite, stored_path: Path):
    """The checkpoint validating ``suite``, and whether the suite was stored anew."""
    batch = batch_definition(context, suite.name)
    checkpoint = stored_checkpoint(context, suite, stored_path)
    if checkpoint is not None:
        return checkpoint, False
    return store_checkpoint(context, suite, batch), True


def older_results(context, keep: int) -> list:
    """Validation results of each suite but its newest ``keep``: GX's store keys."""
    by_suite = defaultdict(list)
    for key in context.validation_results_store.list_keys():
        by_suite[key.expectation_suite_identifier.name].append(key)
    newest_first = (sorted(keys, key=lambda k: (k.run_id.run_time, k.run_id.run_name or ""),
                           reverse=True) for keys in by_suite.values())
    return [key for keys in newest_first for key in keys[keep:]]


def build_docs(context, pages: list) -> str:
    """Render Data Docs and return the URL of the first site's index.

    A site without an index yet is built whole (its pages of earlier results
    too); a built site gets ``pages`` (this run's validation results and
    changed suites) and a new index. Earlier results' pages stay as rendered,
    but those of results beyond each suite's newest :data:`KEPT_RESULTS` go with
    their results (GX drops a page whose result is gone when it builds the index).
    """
    for key in older_results(context, KEPT_RESULTS):
        context.validation_results_store.remove_key(key)
    sites = context.get_docs_sites_urls(only_if_exists=True)
    new = [s["site_name"] for s in sites if not s["site_url"]]
    built = [s["site_name"] for s in sites if s["site_url"]]
    if new:
        context.build_data_docs(site_names=new)
    if built and pages:  # an empty list would mean "every page" to GX
        context.build_data_docs(site_names=built, resource_identifiers=pages)
    urls = context.get_docs_sites_urls()
    return urls[0]["site_url"] if urls else ""
