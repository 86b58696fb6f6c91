"""The dlt pipelines that land Stripe and CarePortals data in the warehouse's raw schemas."""

from __future__ import annotations

import logging
from pathlib import Path

import dlt
from dlt.pipeline.exceptions import PipelineStepFailed

from ingestion.settings import pipelines_dir
from warehouse import RAW_CAREPORTALS_SCHEMA, RAW_STRIPE_SCHEMA, duckdb_path, memory_limit

log = logging.getLogger(__name__)

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


def stripe_step_sources(api_factory, settings, relist_days: int | None = None,
                        report: dict | None = None):  # fmt: skip
    """The dlt source of each step of a Stripe run, in order (see `stripe_load_steps`)."""
    from ingestion.stripe_source import stripe_source

    for step in stripe_load_steps(settings.lists):
        yield stripe_source(
            api_factory,
            lists=settings.lists,
            from_start=settings.full_refresh,
            events=settings.events,
            relist_days=settings.relist_days if relist_days is None else relist_days,
            report=report,
        ).with_resources(*step)


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


def run_stripe_load(pipeline: dlt.Pipeline, api_factory, settings) -> dict[str, int]:
    """One Stripe run outside Dagster (the Dagster asset makes the same steps). The rows
    loaded per table."""
    from ingestion.load_history import rows_by_table

    rows: dict[str, int] = {}
    finish_pending(pipeline)
    for source in stripe_step_sources(api_factory, settings):
        pipeline.run(source, loader_file_format=LOADER_FILE_FORMAT)
        rows.update(rows_by_table(pipeline))
    return rows


def finish_pending(pipeline: dlt.Pipeline) -> None:
    """Load what a run that died left extracted or normalised, before anything new is read
    (dlt's `run` would otherwise load it in place of the next step and skip that step)."""
    if not pipeline.has_pending_data:
        return
    try:
        pipeline.normalize()
    except PipelineStepFailed as err:
        if err.step != "normalize":
            raise
        # Killed while extracting: the package may not match the saved schema. Nothing of
        # it was loaded, so forget the local state and take the warehouse's (what the last
        # committed load left) on the next step: it reads again from those cursors.
        log.warning("A package a killed run left cannot be normalised (%s); dropped.", err)
        pipeline.drop()
        return
    pipeline.load()
