"""The one Dagster `Definitions` of stripe-elt (loaded through workspace.yaml).

Raw Stripe and CarePortals assets (dlt) -> dbt models (dbt tests as asset checks) -> the
published workbook. Every asset that opens the DuckDB file is in the `duckdb` pool, which
runs one step at a time (dagster.yaml). Nothing here opens a connection at import time.
"""

import datetime as dt
import fcntl
import importlib.metadata
import os
import shutil
import sys
from collections.abc import Sequence
from functools import cached_property
from pathlib import Path

import dagster as dg
from dagster_dbt import (
    DagsterDbtTranslator,
    DagsterDbtTranslatorSettings,
    DbtCliResource,
    DbtProject,
    dbt_assets,
    get_asset_key_for_model,
)
from dagster_dlt import DagsterDltResource, DagsterDltTranslator, dlt_assets
from dagster_dlt.translator import DltResourceTranslatorData
from dotenv import load_dotenv
from packaging.version import Version

from ingestion.accounts import AccountsFailedError, raise_if_all_failed
from ingestion.careportals import careportals_source
from ingestion.connect import open_stripe, orders_path
from ingestion.landing import landing_has_work, load_landing
from ingestion.load_history import last_load, record_load
from ingestion.pipelines import (
    LOADER_FILE_FORMAT,
    careportals_pipeline,
    load_stripe_accounts,
    stripe_pipeline,
    stripe_webhooks_pipeline,
)
from ingestion.settings import StripeSettings, configuration_warnings, parse_backfill
from ingestion.stripe_source import stripe_source
from ingestion.webhooks import landing_dir_from_env
from orchestration.dbt_build import DBT_BUILD_ARGS
from publishing.publish import publish_marts
from publishing.settings import PublishSettings
from warehouse import RAW_STRIPE_SCHEMA, check_writable, duckdb_path, refresh_reader_copy

load_dotenv(override=False)

PROJECT_ROOT = Path(__file__).resolve().parents[1]
DUCKDB_POOL = "duckdb"
EVENTS_SOURCE = "source.stripe_elt.stripe.events"
WEBHOOK_LANDING_KEY = dg.AssetKey(["stripe", "webhook_landing"])
# A run with this tag re-reads the mutable Stripe objects created in that many days.
RELIST_TAG = "stripe/relist_days"
# A run with this tag (`2024-01-01..2024-02-01`) re-reads the objects created in that range.
BACKFILL_TAG = "stripe/backfill"


class RawTranslator(DagsterDltTranslator):
    """Raw tables as `<source>/<table>` assets with no phantom upstream keys."""

    def __init__(self, source_name: str) -> None:
        self.source_name = source_name

    def get_asset_spec(self, data: DltResourceTranslatorData) -> dg.AssetSpec:
        return (
            super()
            .get_asset_spec(data)
            .replace_attributes(
                key=dg.AssetKey([self.source_name, data.resource.name]),
                deps=[],
                group_name=f"{self.source_name}_raw",
            )
        )


def _unused_api() -> None:
    raise RuntimeError("the asset definition's source is never run")


@dlt_assets(
    dlt_source=stripe_source(_unused_api),
    dlt_pipeline=stripe_pipeline(),
    name="stripe_raw",
    dagster_dlt_translator=RawTranslator("stripe"),
    pool=DUCKDB_POOL,
)
def stripe_raw(context: dg.AssetExecutionContext, dlt: DagsterDltResource):
    """Every Stripe list, incrementally by `created`, and the Events feed, merged on
    (account_id, id), for every configured account; each account's lists are committed in
    loads of about `STRIPE_OBJECTS_PER_COMMIT` objects (see `run_stripe_account`). An
    account that fails is reported (metadata, log and the `every_account_loaded` check) and
    the others are loaded."""
    check_writable()
    pipeline, started_at = stripe_pipeline(), dt.datetime.now(dt.UTC)
    tables = {key.path[-1] for key in context.selected_asset_keys}
    try:
        settings = StripeSettings.from_env()
        for warning in configuration_warnings():
            context.log.warning(warning)
        relist_days = int(context.run.tags.get(RELIST_TAG, settings.relist_days))
        backfill = parse_backfill(context.run.tags.get(BACKFILL_TAG, ""))
        report: dict = {}
        outcomes = load_stripe_accounts(
            pipeline, settings, relist_days=relist_days, report=report, tables=tables,
            backfill=backfill,
        )  # fmt: skip
        raise_if_all_failed(outcomes)
        if report.get("unmapped_event_types"):
            context.log.info(f"Event types kept but not applied: {report['unmapped_event_types']}")
        if report.get("events_cursor_stale"):
            context.log.warning(
                "The events cursor was older than 25 days: the mutable lists were re-read in full."
            )
    except Exception as err:
        record_load(pipeline, started_at, error=err)
        raise
    rows: dict[str, int] = {}
    for outcome in outcomes:
        for table, count in outcome.rows.items():
            rows[table] = rows.get(table, 0) + count
    failed = [outcome for outcome in outcomes if outcome.failed]
    accounts = [outcome.as_dict() for outcome in outcomes]
    error = AccountsFailedError(outcomes) if failed else None
    record_load(pipeline, started_at, rows=rows, error=error, accounts=accounts)
    if error:
        context.log.error(str(error))
    for key in sorted(context.selected_asset_keys, key=lambda k: k.path):
        table = key.path[-1]
        yield dg.MaterializeResult(
            asset_key=key,
            metadata={
                "rows_loaded": rows.get(table, 0),
                "rows_by_account": dg.MetadataValue.json(
                    {o.account_id: o.rows.get(table, 0) for o in outcomes if not o.failed}
                ),
                "accounts": dg.MetadataValue.json(accounts),
                "table_name": f"{RAW_STRIPE_SCHEMA}.{table}",
            },
        )


@dg.asset_check(
    asset=dg.AssetKey(["stripe", "events"]),
    name="every_account_loaded",
    description="Every configured Stripe account loaded in the last Stripe run.",
    pool=DUCKDB_POOL,
)
def every_account_loaded() -> dg.AssetCheckResult:
    last = last_load("stripe")
    if last is None:
        return dg.AssetCheckResult(passed=True, metadata={"note": "no Stripe run yet"})
    failed = [a for a in last["accounts"] if a.get("outcome") == "failed"]
    return dg.AssetCheckResult(
        passed=last["outcome"] == "succeeded",
        metadata={
            "outcome": last["outcome"],
            "failed_accounts": dg.MetadataValue.json(failed),
            "accounts": len(last["accounts"]),
        },
    )


@dlt_assets(
    dlt_source=careportals_source(Path("orders.csv")),
    dlt_pipeline=careportals_pipeline(),
    name="careportals_raw",
    dagster_dlt_translator=RawTranslator("careportals"),
    pool=DUCKDB_POOL,
)
def careportals_raw(context: dg.AssetExecutionContext, dlt: DagsterDltResource):
    """The CarePortals orders export, merged on order_id."""
    check_writable()
    pipeline, started_at = careportals_pipeline(), dt.datetime.now(dt.UTC)
    try:
        yield from dlt.run(
            context=context,
            dlt_source=careportals_source(orders_path(StripeSettings.from_env())),
            dlt_pipeline=pipeline,
            loader_file_format=LOADER_FILE_FORMAT,
        )
    except Exception as err:
        record_load(pipeline, started_at, error=err)
        raise
    record_load(pipeline, started_at)


# dbt is installed beside this interpreter; a virtualenv used without activation is not on PATH.
if shutil.which("dbt") is None:
    os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
_dbt_executable = shutil.which("dbt") or "dbt"
dbt_project = DbtProject(
    project_dir=PROJECT_ROOT / "dbt_project", profiles_dir=PROJECT_ROOT / "dbt_project"
)


def _manifest_is_stale() -> bool:
    """No manifest yet, or a model, macro, seed, test or project file changed since."""
    manifest = dbt_project.manifest_path
    if not manifest.exists():
        return True
    built = manifest.stat().st_mtime
    root = dbt_project.project_dir
    sources = [root / "dbt_project.yml"] + [
        path
        for folder in ("models", "macros", "seeds", "tests")
        for path in (root / folder).rglob("*")
        if path.is_file()
    ]
    return any(path.stat().st_mtime > built for path in sources)


def _prepare_manifest() -> None:
    """Build the manifest on a fresh clone or after the dbt project changed. Processes that
    import this module at once (the UI's code server and run workers, the test suite's
    workers) check and build it in turn: dagster-dbt keeps two builds apart, but dbt writes
    the manifest in place, and a process that found it while another wrote it would read
    half a file. The lock goes with its process, however that process ends."""
    target = dbt_project.manifest_path.parent
    target.mkdir(parents=True, exist_ok=True)
    with open(target / ".manifest.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if _manifest_is_stale():
            os.environ.setdefault("DUCKDB_PATH", str(duckdb_path()))
            dbt_project.preparer.prepare(dbt_project)


# @dbt_assets reads the manifest at import time.
_prepare_manifest()


class DbtCli(DbtCliResource):
    """dagster-dbt's dbt resource without two steps of every `dbt.cli` call that this
    project has no use for, about 7 s of each run that builds the models on a 2-core machine:
    running `dbt --version` in a process of its own to learn the version of the dbt installed
    beside this interpreter, and loading dbt's project, profile and macros into this process
    for an adapter that only fetches column metadata and row counts, which these assets do
    not ask for. dbt still runs as its own process, exactly as with `DbtCliResource`."""

    @cached_property
    def _cli_version(self) -> Version:
        return Version(importlib.metadata.version("dbt-core"))

    def _initialize_dbt_core_adapter(self, args: Sequence[str]) -> None:
        return None


class ModelTranslator(DagsterDbtTranslator):
    """dbt models grouped by layer (staging, marts, reference) as their schemas are named."""

    def get_asset_spec(self, manifest, unique_id, project):
        spec = super().get_asset_spec(manifest, unique_id, project)
        node = manifest["nodes"].get(unique_id) or {}
        schema = node.get("config", {}).get("schema")
        if schema:
            spec = spec.replace_attributes(group_name=schema)
        if EVENTS_SOURCE in node.get("depends_on", {}).get("nodes", []):
            # The raw events table is filled by the Events feed and by the webhook landing.
            spec = spec.merge_attributes(deps=[WEBHOOK_LANDING_KEY])
        return spec


@dbt_assets(
    manifest=dbt_project.manifest_path,
    project=dbt_project,
    dagster_dbt_translator=ModelTranslator(
        settings=DagsterDbtTranslatorSettings(enable_asset_checks=True)
    ),
    pool=DUCKDB_POOL,
)
def dbt_models(context: dg.AssetExecutionContext, dbt: DbtCliResource):
    """Staging, intermediate and mart tables; dbt's data tests run as asset checks, the unit
    tests in `make test` (see `orchestration.dbt_build`)."""
    os.environ["DUCKDB_PATH"] = str(duckdb_path())
    yield from dbt.cli(DBT_BUILD_ARGS, context=context).stream()


PUBLISHED_MARTS = [mart for mart, _ in PublishSettings().tabs]


@dg.asset(
    key="published_marts",
    deps=[get_asset_key_for_model([dbt_models], mart) for mart in PUBLISHED_MARTS],
    group_name="publishing",
    kinds={"googlesheets", "xlsx"},
    pool=DUCKDB_POOL,
)
def published_marts(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
    """The marts, one tab each, in Google Sheets when a spreadsheet is configured, else in the
    local workbook."""
    settings = PublishSettings.from_env()
    report = publish_marts(settings, source_run=context.run_id)
    context.log.info(
        f"Published {len(report.rows_per_tab) - len(report.tabs_skipped)} tabs to "
        f"{report.destination} ({len(report.tabs_skipped)} unchanged, skipped)"
    )
    destination = (
        dg.MetadataValue.url(report.destination)
        if settings.spreadsheet_id
        else dg.MetadataValue.path(report.destination)
    )
    return dg.MaterializeResult(
        metadata={
            "destination": destination,
            "rows_per_tab": dg.MetadataValue.json(report.rows_per_tab),
            "cells_written": report.cells_written,
            "requests_made": report.requests_made,
            "tabs_skipped": dg.MetadataValue.json(report.tabs_skipped),
        }
    )


@dg.asset(
    key=WEBHOOK_LANDING_KEY,
    group_name="stripe_raw",
    kinds={"dlt", "duckdb"},
    pool=DUCKDB_POOL,
)
def webhook_landing(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
    """The events the webhook receiver landed, loaded into raw_stripe.events (the table the
    Events feed fills too), each event once."""
    check_writable()
    pipeline, started_at = stripe_webhooks_pipeline(), dt.datetime.now(dt.UTC)
    if not landing_has_work(landing_dir_from_env(), pipeline):
        return dg.MaterializeResult(metadata={"events_read": 0})
    try:
        read = load_landing(pipeline, landing_dir_from_env(), _account_id)
    except Exception as err:
        record_load(pipeline, started_at, error=err)
        raise
    record_load(pipeline, started_at)
    context.log.info(f"Loaded {read} landed events")
    return dg.MaterializeResult(metadata={"events_read": read})


def _account_id() -> str:
    """The account landed events belong to (unless they name a connected account)."""
    settings = StripeSettings.from_env()
    if settings.account_id:
        return settings.account_id
    with open_stripe(settings) as api:
        return api.account_id


@dg.asset(
    key="warehouse_reader_copy",
    deps=[dbt_models, published_marts],
    group_name="publishing",
    kinds={"duckdb"},
    pool=DUCKDB_POOL,
)
def warehouse_reader_copy() -> dg.MaterializeResult:
    """The copy of the warehouse BI tools read (see README, Querying), replaced atomically
    after the models are built, so a reader never blocks a run and a run never breaks one."""
    target = refresh_reader_copy()
    return dg.MaterializeResult(
        metadata={"path": dg.MetadataValue.path(str(target)), "bytes": target.stat().st_size}
    )


full_pipeline = dg.define_asset_job(
    "full_pipeline",
    selection=dg.AssetSelection.all(),
    description="Load Stripe and orders (incrementally), build the dbt models, publish the marts.",
)

incremental_load = dg.ScheduleDefinition(
    name="incremental_load",
    job=full_pipeline,
    cron_schedule=os.environ.get("STRIPE_LOAD_CRON", "*/15 * * * *"),
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.RUNNING,
)

webhook_to_marts = dg.define_asset_job(
    "webhook_to_marts",
    selection=dg.AssetSelection.assets(webhook_landing)
    | dg.AssetSelection.keys(dg.AssetKey(["stripe", "events"])).downstream(include_self=False),
    description="Load the landed webhook events, rebuild the models they feed, publish.",
    # One process: starting a process per step would cost more than the steps themselves.
    executor_def=dg.in_process_executor,
)


@dg.sensor(
    job=webhook_to_marts,
    minimum_interval_seconds=10,
    default_status=dg.DefaultSensorStatus.RUNNING,
)
def webhook_landing_sensor(context: dg.SensorEvaluationContext):
    """Starts `webhook_to_marts` when the receiver has landed events no load has taken."""
    folder = landing_dir_from_env()
    if not folder.exists():
        return dg.SkipReason(f"No landing folder {folder} yet (start the receiver).")
    if landing_has_work(folder, stripe_webhooks_pipeline()):
        sizes = sorted((p.name, p.stat().st_size) for p in folder.glob("events-*.jsonl"))
        return dg.RunRequest(run_key=f"landing-{hash(tuple(sizes))}")
    # Loaded, but the models after it failed (a locked warehouse, say): run them again.
    last = context.instance.get_runs(dg.RunsFilter(job_name=webhook_to_marts.name), limit=1)
    if last and last[0].status == dg.DagsterRunStatus.FAILURE:
        return dg.RunRequest(run_key=f"retry-{last[0].run_id}")
    return dg.SkipReason("No new landed events.")


rolling_relist = dg.ScheduleDefinition(
    name="rolling_relist",
    job=full_pipeline,
    cron_schedule=os.environ.get("STRIPE_RELIST_CRON", "30 3 * * *"),
    execution_timezone="UTC",
    tags={RELIST_TAG: os.environ.get("STRIPE_RELIST_WINDOW_DAYS", "30")},
    description="The safety net: re-read the Stripe objects created in the last 30 days.",
    default_status=dg.DefaultScheduleStatus.RUNNING,
)

defs = dg.Definitions(
    assets=[
        stripe_raw,
        careportals_raw,
        webhook_landing,
        dbt_models,
        published_marts,
        warehouse_reader_copy,
    ],
    asset_checks=[every_account_loaded],
    jobs=[full_pipeline, webhook_to_marts],
    schedules=[incremental_load, rolling_relist],
    sensors=[webhook_landing_sensor],
    resources={
        "dlt": DagsterDltResource(),
        "dbt": DbtCli(
            project_dir=dbt_project,
            profiles_dir=dbt_project.profiles_dir,
            dbt_executable=_dbt_executable,
        ),
    },
)
