"""`make run`: the whole pipeline once through Dagster, then a summary of what it produced.

In sandbox mode (no STRIPE_API_KEY) the sandbox server is started for the run and stopped
after it, unless one was already running.
"""

import contextlib
import os
import shutil
import sys
from pathlib import Path

import dagster as dg
from dotenv import load_dotenv

load_dotenv(override=False)

from ingestion.careportals import OrdersFileError  # noqa: E402 (after .env is read)
from ingestion.load_history import last_load  # noqa: E402
from ingestion.settings import (  # noqa: E402
    ConfigurationError,
    StripeSettings,
    configuration_problems,
    configuration_warnings,
)
from orchestration.pool import PoolBusyError, release_stale_claims, run_tags  # noqa: E402
from publishing.settings import PublishSettings  # noqa: E402
from publishing.settings import configuration_problems as publishing_problems  # noqa: E402
from publishing.sheets import spreadsheet_url  # noqa: E402
from sandbox import launcher  # noqa: E402
from warehouse import (  # noqa: E402
    SandboxDatasetMismatchError,
    WarehouseLockedError,
    check_sandbox_dataset,
    connect,
    duckdb_path,
    reader_path,
    record_sandbox_dataset,
)
from warehouse.summary import format_major, raw_row_counts, revenue_by_currency  # noqa: E402


def _counts() -> dict[str, int]:
    if not duckdb_path().exists():
        return {}
    con = connect(read_only=True)
    try:
        return raw_row_counts(con)
    finally:
        con.close()


def _dagster_home() -> None:
    """Use the project's .dagster (with its pool settings) unless DAGSTER_HOME is set."""
    if not os.environ.get("DAGSTER_HOME"):
        root = Path(__file__).resolve().parents[1]
        os.environ["DAGSTER_HOME"] = str(root / ".dagster")
        (root / ".dagster").mkdir(exist_ok=True)
        if not (root / ".dagster" / "dagster.yaml").exists():
            shutil.copy(root / "dagster.yaml", root / ".dagster" / "dagster.yaml")


def main() -> int:
    try:
        return run()
    except (
        ConfigurationError,
        OrdersFileError,
        launcher.SandboxError,
        PoolBusyError,
        SandboxDatasetMismatchError,
        WarehouseLockedError,
    ) as err:
        print(f"\nstripe-elt: {err}", file=sys.stderr)
        return 1


def run() -> int:
    problems = configuration_problems() + publishing_problems()
    if problems:
        print("stripe-elt: the configuration has problems; nothing was run:", file=sys.stderr)
        for problem in problems:
            print(f"  - {problem}", file=sys.stderr)
        return 1
    for warning in configuration_warnings():
        print(f"stripe-elt: warning: {warning}", file=sys.stderr)
    _dagster_home()
    from orchestration.definitions import defs

    settings = StripeSettings.from_env()
    mode = "the Stripe sandbox" if settings.sandbox else settings.api_base
    print(f"stripe-elt: loading {mode} into {duckdb_path()}", flush=True)
    before = _counts()
    instance = dg.DagsterInstance.get()
    for run_id in release_stale_claims(instance):
        print(f"Released the DuckDB pool claim of run {run_id}, which is no longer running.")
    stop_sandbox = None
    sandbox_dataset = None
    if settings.autostart_sandbox:
        sandbox_dataset = launcher.dataset_name(settings.sandbox_settings)
        check_sandbox_dataset(sandbox_dataset)
        stop_sandbox = launcher.start_for_run(settings.sandbox_settings)
    log_path = Path(os.environ["DAGSTER_HOME"]) / "last_run.log"
    print(f"Running the full_pipeline job (dbt's log: {log_path})", flush=True)
    try:
        # dagster-dbt echoes every dbt log line to stdout: keep them in the run log.
        with open(log_path, "w") as log, contextlib.redirect_stdout(log):
            result = defs.resolve_job_def("full_pipeline").execute_in_process(
                instance=instance,
                tags=run_tags(),
                raise_on_error=False,
                run_config={"loggers": {"console": {"config": {"log_level": "WARNING"}}}},
            )
    finally:
        if stop_sandbox:
            stop_sandbox()
    if not result.success:
        for event in result.all_events:
            if event.is_step_failure and event.step_failure_data:
                error = event.step_failure_data.error
                cause = error.cause or error
                print(f"\nFAILED {event.step_key}: {cause.message.strip()}", file=sys.stderr)
        print(f"Details: {log_path} and the Dagster UI (make ui).", file=sys.stderr)
        return 1
    stripe_load = last_load("stripe") or {"outcome": "succeeded", "accounts": []}
    if stripe_load["outcome"] == "succeeded":
        print(f"Run {result.run_id} succeeded.")
    else:
        print(f"Run {result.run_id} finished, but some Stripe accounts failed (below).")
    if sandbox_dataset:
        record_sandbox_dataset(sandbox_dataset)

    after = _counts()
    con = connect(read_only=True)
    try:
        revenue = revenue_by_currency(con)
    finally:
        con.close()
    print("\nRaw tables (rows, new this run):")
    for table, rows in after.items():
        print(f"  {table:<38} {rows:>10,}  (+{rows - before.get(table, 0):,})")
    print("\nRevenue per settlement currency (major units):")
    columns = ("gross", "refunds", "disputes", "fees", "net")
    print("  currency" + "".join(f"{name:>16}" for name in columns))
    for currency, v in revenue.items():
        amounts = "".join(f"{format_major(v[name], v['exponent']):>16}" for name in columns)
        print(f"  {currency.upper():<8}{amounts}")
    if len(stripe_load["accounts"]) > 1 or stripe_load["outcome"] != "succeeded":
        print("\nStripe accounts:")
        for account in stripe_load["accounts"]:
            if account["outcome"] == "failed":
                print(f"  {account['account']:<38} FAILED: {account['error']}")
            else:
                rows = sum(account["rows"].values())
                print(f"  {account['account']:<38} {rows:>10,} rows loaded")
    print(f"\nWarehouse (DuckDB): {duckdb_path()}")
    publish = PublishSettings.from_env()
    if publish.spreadsheet_id:
        print(f"Google Sheet:       {spreadsheet_url(publish.spreadsheet_id)}")
    else:
        print(f"Workbook:           {publish.workbook_path}")
    print(f"For BI (a copy refreshed after each run; never blocks a run): {reader_path()}")
    if stripe_load["outcome"] != "succeeded":
        print(
            "\nstripe-elt: some Stripe accounts failed to load; the others were loaded and "
            "published. Fix them and run again (each account resumes from its own cursors).",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
