"""The sync history: one row per load of a dlt pipeline, successful or not.

Each raw asset records its load here (when, which tables, how many rows, how long, the
outcome and, for a failure, the error) in `raw_ops.load_history`; dbt's `load_history` mart
reads it. Recording never fails a load: if the warehouse cannot be written (it is locked,
say), the record is skipped with a warning.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from pathlib import Path

import dlt

from warehouse import connect

log = logging.getLogger(__name__)

OPS_SCHEMA = "raw_ops"
_DDL = f"""
create schema if not exists {OPS_SCHEMA};
create table if not exists {OPS_SCHEMA}.load_history (
    load_id varchar,
    pipeline varchar not null,
    started_at timestamptz not null,
    finished_at timestamptz not null,
    outcome varchar not null,
    rows_by_table json,
    error varchar
);
alter table {OPS_SCHEMA}.load_history add column if not exists account_outcomes json;
"""


def rows_by_table(pipeline: dlt.Pipeline) -> dict[str, int]:
    """Rows the pipeline's last run normalised, per table (dlt's own tables left out)."""
    trace = pipeline.last_trace
    info = trace.last_normalize_info if trace else None
    counts = info.row_counts if info else {}
    return {t: n for t, n in sorted(counts.items()) if not t.startswith("_dlt")}


def record_load(
    pipeline: dlt.Pipeline,
    started_at: dt.datetime,
    error: BaseException | None = None,
    database: Path | None = None,
    rows: dict[str, int] | None = None,
    accounts: list[dict] | None = None,
) -> None:
    """Append the pipeline's last load to the history (`rows`: the rows per table of a run
    made of several loads, else those of the last one; `accounts`: each Stripe account's
    outcome). A run that loaded rows and still has an `error` (some accounts failed) is
    `partially_failed`."""
    trace = pipeline.last_trace
    load_info = trace.last_load_info if trace and error is None else None
    load_id = load_info.loads_ids[-1] if load_info and load_info.loads_ids else None
    message = None
    if error is not None:
        # The first line is the cause's own message; it never holds a key (StripeApi).
        cause = error
        while cause.__cause__ is not None:
            cause = cause.__cause__
        message = f"{type(cause).__name__}: {str(cause).splitlines()[0] if str(cause) else ''}"
    if error is None:
        outcome, loaded = "succeeded", rows or rows_by_table(pipeline)
    elif rows:
        outcome, loaded = "partially_failed", rows
    else:
        outcome, loaded = "failed", {}
    row = [
        load_id,
        pipeline.pipeline_name,
        started_at,
        dt.datetime.now(dt.UTC),
        outcome,
        json.dumps(dict(sorted(loaded.items()))),
        message[:1000] if message else None,
        json.dumps(accounts) if accounts is not None else None,
    ]
    try:
        con = connect(database)
    except Exception as err:
        log.warning("Load history not recorded: %s", err)
        return
    try:
        con.execute(_DDL)
        con.execute(
            f"insert into {OPS_SCHEMA}.load_history (load_id, pipeline, started_at, "
            "finished_at, outcome, rows_by_table, error, account_outcomes) "
            "values (?, ?, ?, ?, ?, ?, ?, ?)",
            row,
        )
    finally:
        con.close()


def last_load(pipeline_name: str, database: Path | None = None) -> dict | None:
    """The latest history row of a pipeline (None before its first load)."""
    try:
        con = connect(database, read_only=True)
    except Exception as err:
        log.warning("Load history not read: %s", err)
        return None
    try:
        found = con.execute(
            f"select outcome, error, account_outcomes from {OPS_SCHEMA}.load_history "
            "where pipeline = ? order by finished_at desc limit 1",
            [pipeline_name],
        ).fetchone()
    except Exception:
        return None
    finally:
        con.close()
    if found is None:
        return None
    outcome, error, accounts = found
    return {"outcome": outcome, "error": error,
            "accounts": json.loads(accounts) if accounts else []}  # fmt: skip
