"""The measured steps, each run in a process of its own so its peak memory is its own:

    python -m benchmarks.steps load        # this pipeline: every Stripe list, HTTP -> DuckDB
    python -m benchmarks.steps naive       # the naive baseline (see `naive_source`)
    python -m benchmarks.steps orders      # the CarePortals orders (the marts join them)
    python -m benchmarks.steps publish     # the default tabs to a fake Google Sheets
    python -m benchmarks.steps webhook-job # the webhook sensor's job, as the daemon runs it
    python -m benchmarks.steps pace        # the machine's pace: a fixed workload, timed

The warehouse, the dlt state and the sandbox come from the environment (`DUCKDB_PATH`,
`DLT_PIPELINES_DIR`, `STRIPE_API_BASE`, `STRIPE_API_KEY`), set by `benchmarks.__main__`.
Each step prints one JSON line: what it did and how long it took.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Iterator
from typing import Any

import orjson

from ingestion.stripe_source import STRIPE_LISTS


def as_in_a_run_worker() -> None:
    """What the process a Dagster run executes in has imported before any asset runs: its
    instance's storage is SQLAlchemy's. dlt imports SQLAlchemy lazily as a load ends (to
    write its destination's URL into the load info): 0.2-0.3 s inside the timed step of a
    process that had not, which an asset run in Dagster does not pay. Both the pipeline's
    step and the naive baseline's start from here."""
    import sqlalchemy  # noqa: F401


def load() -> dict[str, Any]:
    """This pipeline's Stripe load (full the first time, incremental after), end to end."""
    import datetime as dt

    from ingestion.accounts import raise_if_all_failed
    from ingestion.load_history import record_load
    from ingestion.pipelines import load_stripe_accounts, stripe_pipeline
    from ingestion.settings import StripeSettings

    as_in_a_run_worker()
    settings = StripeSettings.from_env()
    pipeline, started_at = stripe_pipeline(), dt.datetime.now(dt.UTC)
    started = time.perf_counter()
    outcomes = load_stripe_accounts(pipeline, settings)
    seconds = time.perf_counter() - started
    raise_if_all_failed(outcomes)
    rows: dict[str, int] = {}
    for outcome in outcomes:
        for table, count in outcome.rows.items():
            rows[table] = rows.get(table, 0) + count
    # As the Dagster asset does (the load_history mart reads it); not in the timing.
    record_load(pipeline, started_at, rows=rows, accounts=[o.as_dict() for o in outcomes])
    return {"seconds": seconds, "objects": sum(rows.values()), "rows": rows}


def naive_source(api_key: str, api_base: str, deadline: float, progress: dict[str, Any]):
    """The pipeline public examples show: stripe-python's `auto_paging_iter` yielding each
    object as a dict into a dlt resource, with dlt's defaults (nested child tables, the
    INSERT loader), merged on `id`. It reads the same lists with the same parameters as this
    pipeline, and stops reading at `deadline` (the rest of a large account would take hours)."""
    import dlt
    import stripe  # imported by `naive` before its clock starts

    client = stripe.StripeClient(api_key, base_addresses={"api": api_base})

    def objects(name: str) -> Iterator[dict[str, Any]]:
        params: dict[str, Any] = {"limit": 100}
        params.update(
            {
                k.removesuffix("[]"): [v] if k.endswith("[]") else v
                for k, v in STRIPE_LISTS[name].items()
            }
        )
        service = getattr(client.v1, name)
        for obj in service.list(params).auto_paging_iter():
            if time.perf_counter() > deadline:
                progress["complete"] = False
                return
            progress["read"] += 1
            yield obj.to_dict()

    @dlt.source(name="stripe_naive")
    def source():
        for name in STRIPE_LISTS:
            yield dlt.resource(
                objects(name), name=name, write_disposition="merge", primary_key="id"
            )

    return source()


def naive(seconds_budget: float) -> dict[str, Any]:
    import dlt
    import stripe  # noqa: F401 (not timed, as this pipeline's imports are not)

    as_in_a_run_worker()
    progress: dict[str, Any] = {"read": 0, "complete": True}
    pipeline = dlt.pipeline(
        pipeline_name="stripe_naive",
        destination=dlt.destinations.duckdb(os.environ["DUCKDB_PATH"]),
        dataset_name="raw_stripe_naive",
        pipelines_dir=os.environ["DLT_PIPELINES_DIR"],
    )
    started = time.perf_counter()
    source = naive_source(
        os.environ["STRIPE_API_KEY"],
        os.environ["STRIPE_API_BASE"],
        started + seconds_budget,
        progress,
    )
    pipeline.run(source)
    seconds = time.perf_counter() - started
    return {"seconds": seconds, "objects": progress["read"], "complete": progress["complete"]}


def orders() -> dict[str, Any]:
    import datetime as dt

    from ingestion.careportals import careportals_source
    from ingestion.connect import orders_path
    from ingestion.load_history import record_load
    from ingestion.pipelines import LOADER_FILE_FORMAT, careportals_pipeline
    from ingestion.settings import StripeSettings

    pipeline, started_at = careportals_pipeline(), dt.datetime.now(dt.UTC)
    started = time.perf_counter()
    source = careportals_source(orders_path(StripeSettings.from_env()))
    pipeline.run(source, loader_file_format=LOADER_FILE_FORMAT)
    record_load(pipeline, started_at)
    return {"seconds": time.perf_counter() - started}


def publish() -> dict[str, Any]:
    """The default tabs to the fake Sheets API (every request a real HTTP round trip)."""
    from publishing.publish import publish_marts
    from publishing.settings import PublishSettings
    from tests.fakes.sheets import FakeSheets, FakeSheetsServer

    spreadsheet = "bench-spreadsheet"
    fake = FakeSheets()
    fake.create(spreadsheet)
    settings = PublishSettings(spreadsheet_id=spreadsheet)
    with FakeSheetsServer(fake) as server:
        started = time.perf_counter()
        try:
            report = publish_marts(settings, session=server.session())
        except Exception as err:  # the figure is the outcome: a tab over Google's limits, say
            return {"seconds": time.perf_counter() - started, "error": str(err)}
        seconds = time.perf_counter() - started
    return {
        "seconds": seconds,
        "requests": report.requests_made,
        "cells": report.cells_written,
        "tabs": len(report.rows_per_tab),
        "rows": sum(report.rows_per_tab.values()),
    }


def fake_google(sheets_url: str) -> None:
    """Publish to the fake Sheets API at `sheets_url` in place of Google (no credentials)."""
    import requests

    from publishing import sheets
    from tests.fakes.sheets import SHEETS_BASE, _Redirect

    def session(info: dict[str, Any]) -> requests.Session:
        redirected = requests.Session()
        redirected.mount(SHEETS_BASE, _Redirect(SHEETS_BASE, sheets_url))
        return redirected

    sheets.load_service_account = lambda path, inline: {"client_email": "bench@fake"}
    sheets.authorized_session = session
    os.environ["GOOGLE_SERVICE_ACCOUNT_JSON"] = "{}"


def webhook_job(sheets_url: str | None) -> dict[str, Any]:
    """`webhook_to_marts`, as the sensor starts it: the landing, the models after the raw
    events, the publish (to the fake Sheets at `sheets_url`, with its spreadsheet id in
    `GOOGLE_SHEETS_SPREADSHEET_ID`). When each asset was materialized (epoch seconds)."""
    import dagster as dg

    if sheets_url:
        fake_google(sheets_url)
    from orchestration.definitions import defs

    instance = dg.DagsterInstance.ephemeral()
    result = defs.resolve_job_def("webhook_to_marts").execute_in_process(
        instance=instance, raise_on_error=False
    )
    done = {
        "/".join(entry.dagster_event.asset_key.path): entry.timestamp
        for entry in instance.all_logs(result.run_id)
        if entry.dagster_event is not None
        and entry.dagster_event.is_step_materialization
        and entry.dagster_event.asset_key is not None
    }
    return {"success": result.success, "materialized_at": done, "finished_at": time.time()}


# The pace's fixed workload: about a second each on this 2-core machine's fast hours.
PACE_PYTHON_ROWS = 60_000
PACE_DUCKDB_ROWS = 20_000_000


def pace() -> dict[str, Any]:
    """The same work, timed: how fast this machine is right now. Its speed changes by half
    from one hour to the next (on a slow hour the same dbt build takes half as many CPU
    seconds again), and a first build's time with it; the benchmark takes this beside each
    first build, so that a figure can be read against the machine's pace when it was
    measured. Two parts, as a build has: Python (dicts, strings and JSON, as dbt's work
    around each node is) and a DuckDB query on every core (a hash and a distinct count, as
    the models' queries are). `fields` counts what the Python part wrote: all of it, every
    time."""
    import json

    import duckdb

    started = time.perf_counter()
    fields = 0
    for i in range(PACE_PYTHON_ROWS):
        row = {f"column_{j}": f"{i}-{j}" for j in range(16)}
        fields += len(json.dumps(row, sort_keys=True).replace("-", "_").split(","))
    python_seconds = time.perf_counter() - started
    with duckdb.connect() as con:  # DuckDB's threads: one per core, its default
        started = time.perf_counter()
        con.execute(
            "select count(distinct i % 1000003), sum(hash(i::varchar)) from range(?) as t(i)",
            [PACE_DUCKDB_ROWS],
        ).fetchall()
        duckdb_seconds = time.perf_counter() - started
    return {"python_seconds": python_seconds, "duckdb_seconds": duckdb_seconds, "fields": fields}


def own_peak_mb() -> float | None:
    """This process's own peak resident set since it started (VmHWM). `wait4`'s figure also
    counts the parent's memory at the moment it forked this process."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.steps")
    parser.add_argument(
        "step", choices=["load", "naive", "orders", "publish", "webhook-job", "pace"]
    )
    parser.add_argument("--seconds", type=float, default=60.0, help="the naive baseline's budget")
    parser.add_argument("--sheets-url", help="the fake Sheets API the webhook job publishes to")
    args = parser.parse_args(argv)
    if args.step == "load":
        result = load()
    elif args.step == "naive":
        result = naive(args.seconds)
    elif args.step == "orders":
        result = orders()
    elif args.step == "publish":
        result = publish()
    elif args.step == "pace":
        result = pace()
    else:
        result = webhook_job(args.sheets_url)
    result["own_peak_mb"] = own_peak_mb()
    sys.stdout.write("\n" + orjson.dumps(result).decode() + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
