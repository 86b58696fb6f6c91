"""The dlt pipelines that land Stripe and CarePortals data in the warehouse's raw schemas."""

from __future__ import annotations

from pathlib import Path

import dlt

from ingestion.settings import pipelines_dir
from warehouse import RAW_CAREPORTALS_SCHEMA, RAW_STRIPE_SCHEMA, duckdb_path, memory_limit

# Parquet skips dlt's INSERT-statement loader, which is slow and memory-hungry at scale.
LOADER_FILE_FORMAT = "parquet"


def _destination(database: Path | None) -> dlt.destinations.duckdb:
    return dlt.destinations.duckdb(
        credentials={
            "database": str(database or duckdb_path()),
            # The merge of a large load otherwise takes most of the machine's memory.
            "global_config": {"memory_limit": memory_limit()},
        }
    )


def stripe_pipeline(database: Path | None = None, working_dir: Path | None = None) -> dlt.Pipeline:
    return dlt.pipeline(
        pipeline_name="stripe",
        destination=_destination(database),
        dataset_name=RAW_STRIPE_SCHEMA,
        pipelines_dir=str(working_dir or pipelines_dir()),
    )


def careportals_pipeline(
    database: Path | None = None, working_dir: Path | None = None
) -> dlt.Pipeline:
    return dlt.pipeline(
        pipeline_name="careportals",
        destination=_destination(database),
        dataset_name=RAW_CAREPORTALS_SCHEMA,
        pipelines_dir=str(working_dir or pipelines_dir()),
    )


def stripe_load_steps(lists: tuple[str, ...]) -> list[tuple[str, ...]]:
    """The loads one Stripe run makes, each committed on its own: every list, then the
    events. A run that dies midway resumes after the last committed list and reads the
    events from their old cursor, so nothing is fetched twice and nothing is missed."""
    from ingestion.stripe_source import STRIPE_LISTS

    return [(name,) for name in STRIPE_LISTS] + [("events",)]


def stripe_webhooks_pipeline(
    database: Path | None = None, working_dir: Path | None = None
) -> dlt.Pipeline:
    """Loads the webhook landing into the same raw `events` table as the Events feed."""
    return dlt.pipeline(
        pipeline_name="stripe_webhooks",
        destination=_destination(database),
        dataset_name=RAW_STRIPE_SCHEMA,
        pipelines_dir=str(working_dir or pipelines_dir()),
    )
