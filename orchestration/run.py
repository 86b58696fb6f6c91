"""`make run`: the whole pipeline once through Dagster, then a summary of what it produced.

In sandbox mode (no STRIPE_API_KEY) the sandbox server is started for the run and stopped
after it, unless one was already running.
"""

import sys

import dagster as dg
from dotenv import load_dotenv

load_dotenv(override=False)

from ingestion.settings import StripeSettings  # noqa: E402 (after .env is read)
from publishing.settings import PublishSettings  # noqa: E402
from sandbox import launcher  # noqa: E402
from warehouse import connect, duckdb_path  # noqa: E402
from warehouse.summary import format_major, raw_row_counts, revenue_by_currency  # noqa: E402


def _counts() -> dict[str, int]:
    if not duckdb_path().exists():
        return {}
    con = connect(read_only=True)
    try:
        return raw_row_counts(con)
    finally:
        con.close()


def main() -> int:
    from orchestration.definitions import defs

    settings = StripeSettings.from_env()
    mode = "the Stripe sandbox" if settings.sandbox else settings.api_base
    print(f"stripe-elt: loading {mode} into {duckdb_path()}", flush=True)
    before = _counts()
    stop_sandbox = None
    if settings.autostart_sandbox:
        stop_sandbox = launcher.start_for_run(settings.sandbox_settings)
    try:
        result = defs.resolve_job_def("full_pipeline").execute_in_process(
            instance=dg.DagsterInstance.get(),
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
        return 1

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
    print(f"\nWarehouse (DuckDB): {duckdb_path()}")
    print(f"Workbook:           {PublishSettings.from_env().workbook_path}")
    print("Query it read-only: duckdb -readonly <warehouse>  or  see README 'Querying'.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
