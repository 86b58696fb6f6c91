"""The dlt pipelines that land Stripe and CarePortals data in the warehouse's raw schemas."""

from __future__ import annotations

import fcntl
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import dlt
from dlt.pipeline.exceptions import PipelineStepFailed

from ingestion.dlt_config import remember_secret_hints
from ingestion.settings import ConfigurationError, pipelines_dir
from warehouse import RAW_CAREPORTALS_SCHEMA, RAW_STRIPE_SCHEMA, connect, duckdb_path, memory_limit

log = logging.getLogger(__name__)

# Parquet skips dlt's INSERT-statement loader, which is slow and memory-hungry at scale.
LOADER_FILE_FORMAT = "parquet"

# A merge stages its rows in `raw_*_staging` tables and copies them over; dlt empties the
# staging tables at the start of the next load that uses them. Emptied at the end of each
# load instead, before the database is checkpointed, the file does not keep a second copy
# of every staged row, and the first incremental run after a large first load does not
# start by deleting a million staged rows per list (at 1M charges 0.2 s of that run).
dlt.config["load.truncate_staging_dataset"] = True
# dlt keeps every loaded package's files in its working folder unless told otherwise: each
# load's parquet once more beside the warehouse (1.3 GB per full load at 1M charges), and
# every scheduled run adding its own. A package with a failed job keeps them all.
dlt.config["load.delete_completed_jobs"] = True
# dlt asks whether each configuration field is a secret thousands of times a load; the answer
# depends on the field's type alone (`ingestion.dlt_config`).
remember_secret_hints()


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


def _pipeline(
    name: str, dataset: str, database: Path | None, working_dir: Path | None
) -> dlt.Pipeline:
    """The dlt pipeline `name`, its working folder made by one process at a time. dlt makes
    a folder it finds without state by wiping it and writing the state afresh, so two
    processes starting on a new checkout at once (Dagster's webserver and daemon, or test
    workers, each loading the definitions) could wipe the folder under each other's write.
    The second now waits for the first, finds its state, and attaches."""
    folder = Path(working_dir or pipelines_dir())
    try:
        folder.mkdir(parents=True, exist_ok=True)
        lock = open(folder / f".{name}.lock", "w")  # noqa: SIM115 (closed by the with below)
    except OSError as err:
        raise ConfigurationError(
            f"DLT_PIPELINES_DIR: cannot keep dlt's working state in {folder} ({err.strerror})."
        ) from err
    with lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        return dlt.pipeline(
            pipeline_name=name,
            destination=_destination(database),
            dataset_name=dataset,
            pipelines_dir=str(folder),
        )


def stripe_pipeline(database: Path | None = None, working_dir: Path | None = None) -> dlt.Pipeline:
    return _pipeline("stripe", RAW_STRIPE_SCHEMA, database, working_dir)


def careportals_pipeline(
    database: Path | None = None, working_dir: Path | None = None
) -> dlt.Pipeline:
    return _pipeline("careportals", RAW_CAREPORTALS_SCHEMA, database, working_dir)


def run_stripe_account(
    pipeline: dlt.Pipeline,
    api_factory,
    settings,
    *,
    relist_days: int | None = None,
    report: dict | None = None,
    tables: set[str] | None = None,
    backfill: tuple[int, int] | None = None,
) -> dict[str, int]:
    """One account's Stripe run through the API `api_factory` gives, as loads committed one
    after another. Each reads the lists in order until it has read
    `settings.objects_per_commit` objects (the list it is in is read to its end), and the
    events come after every list. A small account, or one caught up, is one load; a first
    load of a large one is several. A run that dies midway resumes after the last committed
    load: those lists are read from their cursors and the events from their old cursor, so
    nothing is missed and at most one load is read twice. `tables` limits the run to those
    raw tables. The rows loaded per table."""
    from ingestion.load_history import rows_by_table
    from ingestion.stripe_source import STRIPE_LISTS, LoadBudget, stripe_source

    pending = [name for name in (*STRIPE_LISTS, "events") if tables is None or name in tables]
    rows: dict[str, int] = {}
    finish_pending(pipeline)
    while pending:
        budget = LoadBudget(settings.objects_per_commit)
        with warehouse_kept_open(pipeline):
            source = stripe_source(
                api_factory,
                lists=settings.lists,
                from_start=settings.full_refresh,
                events=settings.events,
                relist_days=settings.relist_days if relist_days is None else relist_days,
                report=report,
                backfill=backfill or settings.backfill,
                budget=budget,
                append=lists_to_append(pipeline, api_factory().account_id, pending),
            ).with_resources(*pending)
            pipeline.run(source, loader_file_format=LOADER_FILE_FORMAT)
        for table, count in rows_by_table(pipeline).items():
            rows[table] = rows.get(table, 0) + count
        pending = budget.deferred
    return rows


@contextmanager
def warehouse_kept_open(pipeline: dlt.Pipeline) -> Iterator[None]:
    """The warehouse held open for the block. dlt opens the DuckDB file several times in one
    run (to read its state back, for each step of the load) and closes it after each, and
    every open of a file builds DuckDB's catalog anew: 30-50 ms each, a tenth of a 10k
    first load. While one connection is open, DuckDB hands the others the same database.
    It is closed (and checkpointed) when the block ends, as dlt's last connection was; the
    `duckdb` pool keeps other runs from needing the file meanwhile. Opened as every part of
    the project opens it: a file another process holds is a `WarehouseLockedError`."""
    held = connect(Path(pipeline.sql_client().credentials.database))
    try:
        yield
    finally:
        held.close()


def lists_to_append(pipeline: dlt.Pipeline, account_id: str, names: list[str]) -> frozenset[str]:
    """The Stripe lists among `names` this load appends instead of merging: never read for
    this account (no cursor in the pipeline's state) and without one of its rows in the
    warehouse, so nothing is there for a merge to replace. A first load then copies each
    list's rows into its table once, not into the staging table and again into the table
    (10k charges, alternated: 3.7-3.8 s against 4.3-4.6 s). A table with rows of the
    account (a state lost, a package loaded in part) is merged as always; a full refresh or
    a backfill into a table without them appends just the same (each object once)."""
    from ingestion.stripe_source import unread_lists

    unread = unread_lists(pipeline.state, account_id, names)
    if not unread:
        return frozenset()
    dataset = pipeline.dataset_name
    with pipeline.sql_client() as client:
        found = client.execute_sql(
            "select table_name from information_schema.tables where table_schema = ?", dataset
        )
        tables = {row[0] for row in found or []}
        return frozenset(
            name
            for name in unread
            if name not in tables
            or not client.execute_sql(
                f'select 1 from "{dataset}"."{name}" where account_id = ? limit 1', account_id
            )
        )


def stripe_webhooks_pipeline(
    database: Path | None = None, working_dir: Path | None = None
) -> dlt.Pipeline:
    """Loads the webhook landing into the same raw `events` table as the Events feed."""
    return _pipeline("stripe_webhooks", RAW_STRIPE_SCHEMA, database, working_dir)


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
    loads committed on their own (see `run_stripe_account`). An account that fails is
    recorded in its outcome and the next one is loaded; the outcomes are returned in order.
    `tables` limits the run to those raw tables (a partial materialization); `backfill`
    re-reads a range of the past (also `STRIPE_BACKFILL`)."""
    from ingestion.accounts import AccountOutcome, each_account, error_message, stripe_accounts
    from ingestion.connect import open_stripe

    def open_api(account):
        return open_stripe(settings, account)

    accounts, outcomes = stripe_accounts(settings, open_api)
    loaded: list[AccountOutcome] = []
    for api, outcome in each_account(accounts, open_api, loaded):
        try:
            rows = run_stripe_account(
                pipeline,
                lambda api=api: api,
                settings,
                relist_days=relist_days,
                report=report,
                tables=tables,
                backfill=backfill,
            )
            for table, count in rows.items():
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
    # A run killed after the warehouse committed some of the package's jobs, but before dlt
    # recorded them, has them loaded again now: harmless for a merged table, twice the rows
    # for an appended one (a list's first load). Each object is kept once.
    drop_repeated_rows(pipeline)


def drop_repeated_rows(pipeline: dlt.Pipeline) -> None:
    """Keep one row per object (`account_id, id`) in each raw Stripe list table: the last
    read, or any one of identical copies."""
    from ingestion.stripe_source import STRIPE_LISTS

    dataset = pipeline.dataset_name
    with pipeline.sql_client() as client:
        found = client.execute_sql(
            "select table_name from information_schema.tables where table_schema = ?", dataset
        )
        for name in sorted({row[0] for row in found or []} & set(STRIPE_LISTS)):
            table = f'"{dataset}"."{name}"'
            client.execute_sql(
                f"delete from {table} where rowid in (select rowid from (select rowid, "
                f"row_number() over (partition by account_id, id "
                f"order by extracted_at desc, rowid) as copy from {table}) where copy > 1)"
            )
