"""Source adapters: raw exports -> canonical responses (one frame per instrument)."""

from pipelines.ingest.core import KEYS, QUARANTINE_COLUMNS, IngestResult, ingest_program

__all__ = ["KEYS", "QUARANTINE_COLUMNS", "IngestResult", "ingest_program"]
