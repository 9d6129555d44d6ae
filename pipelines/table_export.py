"""Stage 5 in parts: the tables of one run written to a staging folder and published whole.

Parquet and CSV as each table becomes final; SPSS and Stata files on forked
processes meanwhile (:class:`pipelines.export.LabelledFiles`); the warehouse
merged on a thread; the codebook and load scripts; then one swap publishes the
tables with the run's reports (``pipelines/publish.py``).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from data_contracts import RULES
from pipelines.codebook import codebook_texts
from pipelines.codes import REGISTRY_FILE, program_codes
from pipelines.export import LabelledFiles, json_text, write_open_formats
from pipelines.parallel import OnThread, workers
from pipelines.publish import Publication
from pipelines.schema import load_schema
from pipelines.warehouse import update_warehouse
from pipelines.wide import scores_wide, scores_wide_spec

if TYPE_CHECKING:
    from pipelines.stages import Context


@contextmanager
def table_export(ctx: Context) -> Iterator[TableExport]:
    """Stage 5 in parts: :meth:`TableExport.add` tables as they become final (their SPSS and
    Stata files are written by worker processes meanwhile), :meth:`TableExport.seal` once all
    are in (the warehouse merges on a thread), :meth:`TableExport.finish` swaps the tables (and
    the reports staged in :attr:`TableExport.reports_staging`) in, :meth:`TableExport.commit`
    once the run's state is written. Leaving before the commit (an error) stops the workers,
    drops the staging folders and undoes the swap."""
    publication = Publication(ctx.config.output_dir, ctx.run_id)
    try:
        exporting = TableExport(ctx, publication)
        yield exporting
    finally:
        if not publication.committed:
            if "exporting" in locals():
                exporting.cancel()
            publication.abandon()


class TableExport:
    """One run's outputs, filled in staging folders and published by :meth:`finish`."""

    def __init__(self, ctx: Context, publication: Publication):
        self.ctx, self.publication = ctx, publication
        self.staging = publication.folder("tables")
        self._reports: Path | None = None
        self.specs = dict(load_schema().tables)
        self.sets = program_codes(ctx.config, ctx.instruments,
                                  {r: v["label"] for r, v in RULES.items()},
                                  ctx.config.output_dir / "tables", self.staging)
        self.labelled = LabelledFiles(self.staging, self.specs, self.sets, ctx.config.language)
        self.files: dict[str, pd.DataFrame] = {}
        self.written: list[Path] = [self.staging / REGISTRY_FILE]
        self.top: list[Path] = []  # codebook and load scripts beside the folders
        self.warehouse: OnThread | None = None

    @property
    def reports_staging(self) -> Path:
        """The staging folder of the reports, published with the tables."""
        if self._reports is None:
            self._reports = self.publication.folder("reports")
        return self._reports

    def add(self, tables: dict[str, pd.DataFrame], processes: int | None = None) -> None:
        """Write Parquet and CSV now; start the SPSS/Stata files on ``processes`` forked
        processes (default :func:`pipelines.parallel.workers`)."""
        files = dict(tables)
        if "scores" in files:
            files["scores_wide"] = scores_wide(files["scores"], self.ctx.config.wave_order())
            self.specs["scores_wide"] = scores_wide_spec(files["scores_wide"], self.sets)
        check_documented(files, self.specs)
        for name, frame in files.items():
            self.written += write_open_formats(frame, self.staging, name)
        self.labelled.submit(files, processes or workers())
        self.files.update(files)

    def seal(self) -> None:
        """Every table is in: merge them into the warehouse on a thread while the caller goes on.

        DuckDB reads the staged Parquet files without the GIL, so this overlaps
        with rendering the reports. The warehouse commits before the outputs are
        swapped in: if the run then fails, the next run replaces those rows. The
        run's own ``runs`` row is added after the run's state is written
        (:func:`record_run`), so the table never calls complete a run that was
        not published.
        """
        files = {n: f for n, f in self.ordered_files().items() if n != "runs"}
        parquet = {name: self.staging / f"{name}.parquet" for name in files}
        self.warehouse = OnThread(update_warehouse, self.ctx.config.output_dir / "warehouse.duckdb",
                                  files, self.specs, parquet, name="warehouse")

    def ordered_files(self) -> dict[str, pd.DataFrame]:
        """The tables added so far, in the schema's order (the codebook's)."""
        return {name: self.files[name] for name in self.specs if name in self.files}

    def finish(self) -> list[Path]:
        """Wait for the SPSS/Stata files and the warehouse; stage the codebook and load scripts;
        swap the tables, reports and those files in together (committed by :meth:`commit`)."""
        out = self.ctx.config.output_dir
        if not self.publication.swapped:  # a retried finish goes on from here
            if self.warehouse is None:
                self.seal()
            staged = self.written + self.labelled.wait()
            try:
                self.warehouse.result()
            finally:
                self.stop_warehouse()
            files = self.ordered_files()
            texts = codebook_texts(out, self.specs, files, self.sets, self.ctx.instruments,
                                   self.ctx.config)
            texts["last_run.json"] = json_text(files["runs"].iloc[0].to_dict())
            self.top = [self.publication.file(
                name, lambda path, text=text: path.write_text(text, encoding="utf-8"))
                for name, text in texts.items()]
            self.publication.swap()
            self.written = [out / "tables" / p.relative_to(self.staging) for p in staged]
        return [*self.written, out / "warehouse.duckdb", *self.top]

    def commit(self) -> None:
        """The run's state is written: the swap is final."""
        self.publication.commit()

    def stop_warehouse(self) -> None:
        """Let the warehouse thread end (before its Parquet files move or go)."""
        if self.warehouse is not None:
            self.warehouse.wait()
            self.warehouse = None

    def cancel(self) -> None:
        """The run failed: stop the workers, let the warehouse thread end."""
        self.labelled.cancel()
        self.stop_warehouse()


def check_documented(tables: dict[str, pd.DataFrame], specs: dict) -> None:
    """Refuse to write a table or column the schema does not document (a bug, not a user error)."""
    for name, frame in tables.items():
        spec = specs.get(name)
        missing = [c for c in frame.columns if spec is None or c not in spec.columns]
        if missing:
            raise RuntimeError(f"table {name}: columns not documented in schema.yaml: {missing}")
