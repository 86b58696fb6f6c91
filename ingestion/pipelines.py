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
            "global_config": {
                # The merge of a large load otherwise takes most of the machine's memory.
                "memory_limit": memory_limit(),
                # Raw strings (the payloads, most of the file) in zstd rather than DuckDB's
                # default dictionary+FSST: at 100k charges the first load is a fifth faster
                # (the checkpoint compresses less expensively), the file a quarter of the
                # size, and dbt reads the payloads no slower. Other types keep their own.
                "force_compression": "zstd",
            },
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


def stripe_load_steps(lists: tuple[str, ...], caught_up: bool = False) -> list[tuple[str, ...]]:
    """The loads one Stripe run makes, each committed on its own: every list, then the
    events. A run that dies midway resumes after the last committed list and reads the
    events from their old cursor, so nothing is fetched twice and nothing is missed.

    An account `caught_up` (every list has its cursor) is read in one load: a run then
    reads only what changed, and one commit costs less than twelve; one that dies reads
    those changes again from the same cursors."""
    from ingestion.stripe_source import STRIPE_LISTS

    if caught_up:
        return [(*STRIPE_LISTS, "events")]
    return [(name,) for name in STRIPE_LISTS] + [("events",)]


def is_caught_up(pipeline: dlt.Pipeline, account_id: str, lists: tuple[str, ...]) -> bool:
    """Whether every list in `lists` has a `created` cursor for the account in the
    pipeline's state (a first load, or one a failure cut short, has not)."""
    try:
        resources = pipeline.state.get("sources", {}).get("stripe", {}).get("resources", {})
    except Exception:  # no state yet
        return False
    return bool(lists) and all(
        account_id in (resources.get(name) or {}).get("created_cursor", {}) for name in lists
    )


def stripe_step_sources(
    api_factory,
    settings,
    relist_days: int | None = None,
    report: dict | None = None,
    backfill: tuple[int, int] | None = None,
    caught_up: bool = False,
):
    """The dlt source of each step of a Stripe run, in order (see `stripe_load_steps`)."""
    from ingestion.stripe_source import stripe_source

    backfill = backfill or settings.backfill
    combine = caught_up and not settings.full_refresh and not backfill
    for step in stripe_load_steps(settings.lists, combine):
        yield stripe_source(
            api_factory,
            lists=settings.lists,
            from_start=settings.full_refresh,
            events=settings.events,
            relist_days=settings.relist_days if relist_days is None else relist_days,
            report=report,
            backfill=backfill,
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
    """One account's Stripe run through the API `api_factory` gives. The rows loaded per
    table."""
    from ingestion.load_history import rows_by_table

    rows: dict[str, int] = {}
    finish_pending(pipeline)
    for source in stripe_step_sources(api_factory, settings):
        pipeline.run(source, loader_file_format=LOADER_FILE_FORMAT)
        rows.update(rows_by_table(pipeline))
    return rows


def load_stripe_accounts(
    pipeline: dlt.Pipeline,
    settings,
    *,
    relist_days: int | None = None,
    report: dict | None = None,
    tables: set[str] | None = None,
    backfill: tuple[int, int] | None = None,
) -> list:
    """A Stripe run over every configured account (see `ingestion.accounts`), each account's
    steps committed on their own. An account that fails is recorded in its outcome and the
    next one is loaded; the outcomes are returned in order. `tables` limits the steps to
    those raw tables (a partial materialization); `backfill` re-reads a range of the past
    (also `STRIPE_BACKFILL`)."""
    from ingestion.accounts import AccountOutcome, each_account, error_message, stripe_accounts
    from ingestion.connect import open_stripe
    from ingestion.load_history import rows_by_table
    from ingestion.stripe_source import STRIPE_LISTS

    def open_api(account):
        return open_stripe(settings, account)

    accounts, outcomes = stripe_accounts(settings, open_api)
    loaded: list[AccountOutcome] = []
    for api, outcome in each_account(accounts, open_api, loaded):
        try:
            finish_pending(pipeline)
            every_table = tables is None or {*STRIPE_LISTS, "events"} <= tables
            caught_up = every_table and is_caught_up(pipeline, outcome.account_id, settings.lists)
            steps = stripe_step_sources(
                lambda api=api: api, settings, relist_days, report, backfill, caught_up
            )
            for source in steps:
                if tables is not None and not set(source.selected_resources) & tables:
                    continue
                pipeline.run(source, loader_file_format=LOADER_FILE_FORMAT)
                for table, count in rows_by_table(pipeline).items():
                    outcome.rows[table] = outcome.rows.get(table, 0) + count
        except Exception as err:
            log.error("Stripe %s failed: %s", outcome.account_id, error_message(err))
            outcome.error, outcome.exception = error_message(err), err
    return outcomes + loaded


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
