"""End to end through Dagster: sandbox -> DuckDB -> dbt -> workbook, against ground truth."""

from __future__ import annotations

import csv
import datetime as dt
import json
import os
from collections import Counter
from decimal import Decimal
from pathlib import Path

import dagster as dg
import duckdb
import pytest
from openpyxl import load_workbook

from sandbox import catalog
from tests.conftest import DBT_PROJECT, read_objects, run_dbt, set_pipeline_env

# Every column but when a row was staged or computed (`staged_at`, `built_at`): the only ones
# two builds of the same rows give otherwise.
BUILD_TIMES = "columns(lambda c: c not in ('staged_at', 'built_at'))"


def run_pipeline():
    from orchestration.definitions import defs

    return defs.resolve_job_def("full_pipeline").execute_in_process(
        instance=dg.DagsterInstance.ephemeral(), raise_on_error=False
    )


def failure_messages(result) -> str:
    return "\n".join(
        str(event.step_failure_data.error.to_string())
        for event in result.all_events
        if event.is_step_failure
    )


def snapshot(database: Path) -> dict:
    con = duckdb.connect(str(database), read_only=True)
    try:
        from warehouse.summary import raw_row_counts, revenue_by_currency

        return {"raw": raw_row_counts(con), "revenue": revenue_by_currency(con)}
    finally:
        con.close()


def query(workdir: Path, sql: str, params: list | None = None) -> list[tuple]:
    """Rows of a read-only query on the run's warehouse."""
    con = duckdb.connect(str(workdir / "warehouse.duckdb"), read_only=True)
    try:
        return con.execute(sql, params or []).fetchall()
    finally:
        con.close()


def stored_definition(workdir: Path, table: str) -> str:
    """The definition an incremental model's table records (macros/incremental.sql)."""
    [(comment,)] = query(
        workdir, "select comment from duckdb_tables() where table_name = ?", [table]
    )
    return comment


@pytest.fixture(scope="module")
def loaded(tmp_path_factory, sandbox, dataset):
    """One full run into a fresh warehouse, shared by the checks of this module."""
    workdir = tmp_path_factory.mktemp("run")
    with pytest.MonkeyPatch.context() as mp:
        set_pipeline_env(mp, workdir, sandbox.url, dataset)
        result = run_pipeline()
        assert result.success, failure_messages(result)
        yield workdir, mp


def test_raw_tables_hold_exactly_the_accounts_objects(loaded, truth):
    workdir, _ = loaded
    raw = snapshot(workdir / "warehouse.duckdb")["raw"]
    for name, count in truth["counts"].items():
        table = "raw_careportals.orders" if name == "orders" else f"raw_stripe.{name}"
        assert raw[table] == count, table


def test_revenue_per_currency_equals_ground_truth(loaded, truth):
    workdir, _ = loaded
    revenue = snapshot(workdir / "warehouse.duckdb")["revenue"]
    assert set(revenue) == set(truth["settlement"])
    for currency, expected in truth["settlement"].items():
        for measure in ("gross", "refunds", "disputes", "fees", "net"):
            assert revenue[currency][measure] == expected[measure], (currency, measure)


def test_charge_mart_outcomes_equal_ground_truth(loaded, truth):
    workdir, _ = loaded
    rows = query(
        workdir,
        "select currency, "
        "count(*) filter (where outcome = 'failed'), "
        "count(*) filter (where outcome = 'uncaptured'), "
        "count(*) filter (where captured), "
        "sum(amount_minor) filter (where captured), "
        "sum(amount_refunded_minor) "
        "from marts.fct_charges group by currency",
    )
    refunds = dict(query(workdir, "select currency, count(*) from marts.fct_refunds group by 1"))
    got = {r[0]: r[1:] for r in rows}
    for currency, t in truth["presentment"].items():
        assert got[currency] == (
            t["failed_charges"],
            t["uncaptured_charges"],
            t["succeeded_charges"],
            t["gross"],
            t["refunded"],
        ), currency
        assert refunds.get(currency, 0) == t["refunds"], currency


def test_workbook_has_one_tab_per_mart_with_every_row(loaded, truth):
    workdir, _ = loaded
    assert (workdir / "marts.xlsx").stat().st_mode & 0o044, "readable by others, as umask allows"
    book = load_workbook(workdir / "marts.xlsx", read_only=True)
    assert book.sheetnames == [
        "Charges",
        "Refunds",
        "payment_succesful",
        "refund.created",
        "Revenue daily",
        "Revenue monthly",
        "Revenue monthly, all accounts",
        "Disputes",
        "Refund metrics",
        "Payments monthly",
        "MRR monthly",
        "Order reconciliation",
        "Customers",
    ]
    assert sum(1 for _ in book["Charges"].iter_rows()) == truth["counts"]["charges"] + 1
    assert sum(1 for _ in book["Refunds"].iter_rows()) == truth["counts"]["refunds"] + 1
    assert sum(1 for _ in book["refund.created"].iter_rows()) == truth["counts"]["refunds"] + 1
    succeeded = sum(t["succeeded_charges"] for t in truth["presentment"].values())
    assert sum(1 for _ in book["payment_succesful"].iter_rows()) == succeeded + 1
    header = next(book["Charges"].iter_rows(max_row=1, values_only=True))
    assert header == (
        "charge_id", "amount", "datetime", "metadata_resource_id", "customer_id", "email",
        "payment_method_type", "card_brand", "status", "refunded", "amount_refunded",
    )  # fmt: skip
    header = next(book["Refunds"].iter_rows(max_row=1, values_only=True))
    assert header == (
        "refund_id", "charge_id", "amount", "datetime", "reason", "status",
        "metadata_resource_id",
    )  # fmt: skip


def test_a_second_run_adds_nothing_twice(loaded):
    workdir, _ = loaded
    before = snapshot(workdir / "warehouse.duckdb")
    result = run_pipeline()
    assert result.success, failure_messages(result)
    assert snapshot(workdir / "warehouse.duckdb") == before


def test_a_wrong_key_fails_clearly_and_leaves_the_warehouse_as_it_was(loaded):
    workdir, mp = loaded
    before = snapshot(workdir / "warehouse.duckdb")
    wrong = "sk_test_wrong_key_that_must_not_be_printed_4242"
    mp.setenv("STRIPE_API_KEY", wrong)
    try:
        result = run_pipeline()
    finally:
        mp.setenv("STRIPE_API_KEY", "sk_test_sandbox")
    assert not result.success
    messages = failure_messages(result)
    assert "Stripe rejected the API key" in messages
    assert wrong not in messages
    assert snapshot(workdir / "warehouse.duckdb") == before
    outcome, error = query(
        workdir,
        "select outcome, error from raw_ops.load_history where pipeline = 'stripe' "
        "order by finished_at desc limit 1",
    )[0]
    assert outcome == "failed" and "StripeAuthError" in error and wrong not in error


def test_an_unreachable_server_fails_clearly_and_leaves_the_warehouse_as_it_was(loaded, free_port):
    workdir, mp = loaded
    before = snapshot(workdir / "warehouse.duckdb")
    base = os.environ["STRIPE_API_BASE"]
    mp.setenv("STRIPE_API_BASE", f"http://127.0.0.1:{free_port}")
    try:
        result = run_pipeline()
    finally:
        mp.setenv("STRIPE_API_BASE", base)
    assert not result.success
    assert "Cannot reach the Stripe API" in failure_messages(result)
    assert snapshot(workdir / "warehouse.duckdb") == before


def test_a_missing_orders_file_is_a_clear_error(pipeline_env, tmp_path):
    pipeline_env.setenv("CAREPORTALS_ORDERS_PATH", str(tmp_path / "nope.csv"))
    from orchestration.definitions import careportals_raw, defs

    result = dg.materialize(
        [careportals_raw],
        resources={"dlt": defs.resources["dlt"]},
        instance=dg.DagsterInstance.ephemeral(),
        raise_on_error=False,
    )
    assert not result.success
    assert "Orders file not found" in failure_messages(result)


def test_the_fee_schedule_estimates_every_sandbox_fee_exactly(loaded):
    workdir, _ = loaded
    captured, mismatched, estimated = query(
        workdir,
        "select count(*), count(*) filter (where estimated_fee_minor != fee_minor), "
        "count(estimated_fee_minor) from marts.fct_charges where captured",
    )[0]
    assert captured > 0 and estimated == captured and mismatched == 0


def test_monthly_revenue_equals_ground_truth_in_both_refund_views(loaded, truth):
    workdir, _ = loaded
    rows = query(
        workdir,
        "select currency, strftime(revenue_month, '%Y-%m'), gross_minor, refunds_period_minor, "
        "refunds_cohort_minor, disputes_minor, fees_minor, net_minor from marts.revenue_monthly",
    )
    got = {
        (currency, month): dict(
            zip(
                ("gross", "refunds_period", "refunds_cohort", "disputes", "fees", "net"),
                values,
                strict=True,
            )
        )
        for currency, month, *values in rows
    }
    expected = {
        (currency, month): values
        for currency, months in truth["settlement_monthly"].items()
        for month, values in months.items()
    }
    assert got == expected


def test_the_charge_disputed_twice_shows_once_with_both_disputes(loaded, dataset):
    workdir, _ = loaded
    disputes = read_objects(dataset, "disputes")
    per_charge: dict[str, list[dict]] = {}
    for d in disputes:
        per_charge.setdefault(d["charge"], []).append(d)
    twice = next(charge for charge, ds in per_charge.items() if len(ds) == 2)
    latest = max(per_charge[twice], key=lambda d: d["created"])
    fees = sum(t["fee"] for d in per_charge[twice] for t in d["balance_transactions"])
    row = query(
        workdir,
        "select count(*) over (), latest_dispute_id, dispute_count, dispute_fees_minor "
        "from marts.fct_disputes where charge_id = ?",
        [twice],
    )[0]
    total = query(workdir, "select count(*) from marts.fct_disputes")[0][0]
    assert row == (1, latest["id"], 2, fees)
    assert total == len(per_charge)


def test_payments_at_intent_grain_equal_ground_truth(loaded, truth):
    workdir, _ = loaded
    rows = query(
        workdir,
        "select currency, sum(succeeded_count), sum(failed_count), sum(uncaptured_count), "
        "sum(processed_minor) from marts.payments_monthly group by currency",
    )
    attempts = query(workdir, "select sum(attempt_count) from marts.payments_monthly")[0][0]
    got = {
        currency: dict(zip(("succeeded", "failed", "uncaptured", "processed"), v, strict=True))
        for currency, *v in rows
    }
    assert got == truth["payments"]
    charges_with_intent = truth["counts"]["charges"]  # every sandbox charge has an intent
    assert attempts == charges_with_intent


def expected_reconciliation(dataset: Path) -> Counter:
    """Order reconciliation computed from the orders export and the generated charges."""
    with open(dataset / "careportals_orders.csv", newline="") as f:
        orders = {row["order_id"]: row for row in csv.DictReader(f)}
    charges = [c for c in read_objects(dataset, "charges") if c["status"] != "failed"]
    statuses: Counter = Counter()
    for order_id, order in orders.items():
        mine = [c for c in charges if c["metadata"].get("resourceId") == order_id]
        captured = [c for c in mine if c["captured"]]
        currency = order["currency"].lower()
        exponent = catalog.CURRENCY_EXPONENT[currency]
        total = round(Decimal(order["total"]) * 10**exponent)
        paid = sum(c["amount"] for c in captured)
        refunded = sum(c["amount_refunded"] for c in captured)
        if not captured:
            status = "authorized_only" if mine else "unpaid"
        elif {c["currency"] for c in captured} != {currency} or paid != total:
            status = "amount_mismatch"
        elif len(captured) > 1:
            status = "paid_in_several_charges"
        else:
            status = "paid_in_full"
        state = (
            "none"
            if not refunded
            else "refunded_in_full"
            if refunded >= paid
            else "refunded_in_part"
        )
        statuses[(status, state)] += 1
    for c in charges:
        order_id = c["metadata"].get("resourceId")
        if c["captured"] and order_id not in orders:
            status = "charge_without_order" if not order_id else "charge_with_unknown_order"
            refunded = c["amount_refunded"]
            state = (
                "none" if not refunded
                else "refunded_in_full" if refunded >= c["amount"] else "refunded_in_part"
            )  # fmt: skip
            statuses[(status, state)] += 1
    return statuses


def test_order_reconciliation_equals_an_independent_reckoning(loaded, dataset):
    workdir, _ = loaded
    rows = query(
        workdir,
        "select reconciliation_status, refund_state, count(*) "
        "from marts.order_reconciliation group by all",
    )
    got = Counter({(status, state): n for status, state, n in rows})
    expected = expected_reconciliation(dataset)
    assert got == expected
    assert {status for status, _ in expected} == {
        "paid_in_full", "paid_in_several_charges", "amount_mismatch", "authorized_only",
        "unpaid", "charge_without_order", "charge_with_unknown_order",
    }  # fmt: skip


def test_refund_metrics_equal_ground_truth_in_total_and_per_cohort_month(loaded, truth, dataset):
    workdir, _ = loaded
    totals = query(
        workdir,
        "select currency, sum(gross_minor), sum(period_refunded_minor), sum(refund_count) "
        "from marts.refund_metrics_monthly group by currency",
    )
    cohorts = query(
        workdir,
        "select currency, strftime(metric_month, '%Y-%m'), cohort_refunded_minor, "
        "cohort_refunded_charge_count from marts.refund_metrics_monthly "
        "where cohort_refunded_minor > 0",
    )
    assert {c: tuple(v) for c, *v in totals} == {
        c: (t["gross"], t["refunded"], t["refunds"]) for c, t in truth["presentment"].items()
    }
    expected: dict = {}
    for ch in read_objects(dataset, "charges"):
        if ch["captured"] and ch["amount_refunded"]:
            month = dt.datetime.fromtimestamp(ch["created"], dt.UTC).strftime("%Y-%m")
            amount, count = expected.get((ch["currency"], month), (0, 0))
            expected[(ch["currency"], month)] = (amount + ch["amount_refunded"], count + 1)
    assert {(c, m): (a, n) for c, m, a, n in cohorts} == expected


def test_mrr_in_every_month_equals_the_generators_billing_schedule(loaded, truth):
    """MRR per currency and month, measured at each month's end up to the sandbox's now: plan
    changes priced from the month they were billed, forever discounts taken off."""
    workdir, _ = loaded
    got = query(
        workdir,
        "select currency, strftime(mrr_month, '%Y-%m'), mrr_minor from marts.mrr_monthly "
        "where mrr_month < date '2026-11-01' and mrr_minor != 0",
    )
    by_currency: dict[str, dict[str, str]] = {}
    for currency, month, mrr in got:
        by_currency.setdefault(currency, {})[month] = str(mrr)
    assert truth["mrr_monthly"] and by_currency == truth["mrr_monthly"]


def test_customers_overview_covers_every_customer_and_sums_to_ground_truth(loaded, truth):
    workdir, _ = loaded
    customers = query(workdir, "select count(distinct customer_id) from marts.dim_customers")
    assert customers[0][0] == truth["counts"]["customers"]
    rows = query(
        workdir,
        "select currency, sum(lifetime_gross_minor), sum(lifetime_refunded_minor), "
        "sum(payment_count), sum(failed_payment_count) "
        "from marts.dim_customers where currency is not null group by currency",
    )
    assert {c: tuple(v) for c, *v in rows} == {
        c: (t["gross"], t["refunded"], t["succeeded_charges"], t["failed_charges"])
        for c, t in truth["presentment"].items()
    }


def test_the_load_history_has_a_row_per_load_with_its_rows(loaded, truth):
    workdir, _ = loaded
    first = query(
        workdir,
        "select pipeline, outcome, rows_by_table, duration_seconds from marts.load_history "
        "where pipeline in ('stripe', 'careportals') order by started_at limit 2",
    )
    by_pipeline = {pipeline: (outcome, json.loads(rows)) for pipeline, outcome, rows, _ in first}
    assert by_pipeline["stripe"][0] == "succeeded"
    assert by_pipeline["stripe"][1]["charges"] == truth["counts"]["charges"]
    assert by_pipeline["careportals"] == ("succeeded", {"orders": truth["counts"]["orders"]})


def test_every_model_and_column_is_documented_and_every_mart_has_a_contract(loaded):
    from orchestration.definitions import dbt_project

    workdir, _ = loaded
    manifest = json.loads(Path(dbt_project.manifest_path).read_text())
    built = {}
    for schema, table, column in query(
        workdir,
        "select table_schema, table_name, column_name from information_schema.columns "
        "where table_schema in ('staging', 'intermediate', 'marts')",
    ):
        built.setdefault(table, (schema, set()))[1].add(column)
    models = {
        node["name"]: node
        for node in manifest["nodes"].values()
        if node["resource_type"] == "model" and node["package_name"] == "stripe_elt"
    }
    assert set(models) == set(built)
    keys: dict[str, set[str]] = {}
    for test in manifest["nodes"].values():
        kind = (test.get("test_metadata") or {}).get("name")
        if test["resource_type"] == "test" and kind in ("unique", "unique_combination_of_columns"):
            for model in test["depends_on"]["nodes"]:
                keys.setdefault(model, set()).add(kind)
    for name, node in models.items():
        schema, columns = built[name]
        assert node["description"].strip(), name
        assert set(node["columns"]) == columns, name
        undocumented = [c for c, spec in node["columns"].items() if not spec["description"]]
        assert not undocumented, (name, undocumented)
        if schema == "marts":
            assert node["config"]["contract"]["enforced"], name
            assert keys.get(node["unique_id"]), f"{name} has no primary-key test"


def test_dbt_docs_source_freshness_and_unit_tests_run_on_the_warehouse(loaded, tmp_path):
    """What the pipeline's builds leave out: the docs, the freshness check, and the unit
    tests (fixed inputs, so they check the models' SQL; they need the warehouse only for
    the inputs' column types)."""
    workdir, _ = loaded
    database = workdir / "warehouse.duckdb"
    for command in (["docs", "generate"], ["source", "freshness"],
                    ["test", "--select", "test_type:unit"]):  # fmt: skip
        run_dbt(database, tmp_path / "target", *command)
    catalog = json.loads((tmp_path / "target" / "catalog.json").read_text())
    assert "model.stripe_elt.fct_charges" in catalog["nodes"]
    unit_tests = json.loads((tmp_path / "target" / "run_results.json").read_text())["results"]
    manifest = json.loads((tmp_path / "target" / "manifest.json").read_text())
    assert sorted(r["unique_id"] for r in unit_tests) == sorted(manifest["unit_tests"])
    assert {r["status"] for r in unit_tests} == {"pass"}


def test_a_staging_build_reads_only_what_changed_and_all_again_when_its_definition_changes(
    loaded, tmp_path
):
    """The incremental staging of charges: a build after the first restages the objects
    whose raw row was read again, and leaves the others' rows as they are (a row changed by
    hand stays changed: it was not read); a table made from another definition of the model
    is built again in full. Of invoice lines: an invoice left with none keeps none."""
    import shutil

    workdir, _ = loaded
    shutil.copyfile(workdir / "warehouse.duckdb", tmp_path / "warehouse.duckdb")
    [(first, second)] = query(
        tmp_path,
        "select min(charge_id), max(charge_id) from staging.stg_stripe__charges",
    )

    def tamper(charge_id: str) -> None:
        con = duckdb.connect(str(tmp_path / "warehouse.duckdb"))
        con.execute(
            "update staging.stg_stripe__charges set amount_minor = -1 where charge_id = ?",
            [charge_id],
        )
        con.close()

    def build() -> str:
        return run_dbt(tmp_path / "warehouse.duckdb", tmp_path / "target",
                       "run", "--select", "stg_stripe__charges")  # fmt: skip

    def amounts() -> dict[str, int]:
        return dict(query(
            tmp_path,
            "select charge_id, amount_minor from staging.stg_stripe__charges "
            "where charge_id in (?, ?)",
            [first, second],
        ))  # fmt: skip

    def definition() -> str:
        return stored_definition(tmp_path, "stg_stripe__charges")

    current = definition()
    assert current.startswith("stripe-elt definition ")
    tamper(first)
    tamper(second)
    assert "1 incremental model" in build()
    assert amounts() == {first: -1, second: -1}

    # The first charge read again by a load: restaged from its payload.
    con = duckdb.connect(str(tmp_path / "warehouse.duckdb"))
    con.execute(
        "update raw_stripe.charges set extracted_at = extracted_at + interval 1 second "
        "where id = ?",
        [first],
    )
    con.close()
    build()
    restaged = amounts()
    assert restaged[first] > 0 and restaged[second] == -1

    # A table made from another definition: built again in full, and marked with this one.
    con = duckdb.connect(str(tmp_path / "warehouse.duckdb"))
    con.execute("comment on table staging.stg_stripe__charges is 'stripe-elt definition 0'")
    con.close()
    build()
    assert amounts()[second] > 0
    assert definition() == current

    # An invoice read again with no lines left (a draft's last line deleted): its staged
    # lines go, though no row of the new build replaces them.
    [(invoice, lines)] = query(
        tmp_path,
        "select invoice_id, count(*) from staging.stg_stripe__invoice_lines "
        "group by invoice_id order by invoice_id limit 1",
    )
    assert lines > 0
    con = duckdb.connect(str(tmp_path / "warehouse.duckdb"))
    con.execute(
        "update raw_stripe.invoices set payload = json_merge_patch(payload, ?)::varchar, "
        "extracted_at = extracted_at + interval 1 second where id = ?",
        [json.dumps({"lines": {"data": [], "has_more": False}}), invoice],
    )
    con.close()
    run_dbt(tmp_path / "warehouse.duckdb", tmp_path / "target",
            "run", "--select", "stg_stripe__invoice_lines")  # fmt: skip
    assert query(
        tmp_path,
        "select count(*) from staging.stg_stripe__invoice_lines where invoice_id = ?",
        [invoice],
    ) == [(0,)]


def test_fct_charges_computes_again_only_what_changed_and_all_when_a_seed_it_reads_changes(
    loaded, tmp_path
):
    """fct_charges after its first build: a build computes again the charges staged since
    its last (a row changed by hand stays changed: nothing changed for it), and all of them
    when a seed it reads through a view (the fee schedule) is no longer what it was built
    from."""
    import shutil

    workdir, _ = loaded
    shutil.copyfile(workdir / "warehouse.duckdb", tmp_path / "warehouse.duckdb")
    [(first, second)] = query(
        tmp_path,
        "select min(charge_id), max(charge_id) from marts.fct_charges "
        "where estimated_fee_minor is not null",
    )

    def execute(sql: str, *params: str) -> None:
        con = duckdb.connect(str(tmp_path / "warehouse.duckdb"))
        con.execute(sql, list(params))
        con.close()

    def build(*models: str) -> str:
        return run_dbt(tmp_path / "warehouse.duckdb", tmp_path / "target",
                       "run", "--select", *models)  # fmt: skip

    def estimates() -> dict[str, int]:
        return dict(query(
            tmp_path,
            "select charge_id, estimated_fee_minor from marts.fct_charges "
            "where charge_id in (?, ?)",
            [first, second],
        ))  # fmt: skip

    built = estimates()
    execute("update marts.fct_charges set estimated_fee_minor = -1 where charge_id in (?, ?)",
            first, second)  # fmt: skip
    assert "1 incremental model" in build("fct_charges")
    assert estimates() == {first: -1, second: -1}

    # The first charge read again by a load: staged again, then computed again.
    execute("update raw_stripe.charges set extracted_at = extracted_at + interval 1 second "
            "where id = ?", first)  # fmt: skip
    build("stg_stripe__charges", "fct_charges")
    assert estimates() == {first: built[first], second: -1}

    # The fee schedule changed: every charge computed again from it.
    execute("update reference.fee_schedule set fixed_minor = fixed_minor + 1")
    build("fct_charges")
    assert estimates() == {first: built[first] + 1, second: built[second] + 1}


def test_the_marts_contracts_hold_their_not_null_columns_and_a_changed_one_rebuilds_a_mart(
    loaded, tmp_path
):
    """A mart's not-null columns are constraints of its contract, checked by DuckDB as rows
    are written: a null is refused, and a build that would write one fails with DuckDB's
    message and leaves the table as it was. An incremental mart's
    table made under another contract (here, without the constraint on its charge id) is
    built again in full under the contract as it is; a change to a description is not one."""
    import shutil

    workdir, _ = loaded
    shutil.copyfile(workdir / "warehouse.duckdb", tmp_path / "warehouse.duckdb")
    project = tmp_path / "dbt_project"
    shutil.copytree(DBT_PROJECT, project, ignore=shutil.ignore_patterns("target", "logs"))
    marts_yml = project / "models" / "marts" / "_marts.yml"
    as_declared = marts_yml.read_text()
    [(rows,)] = query(tmp_path, "select count(*) from marts.fct_charges")

    def charge_id_nullable() -> str:
        [(nullable,)] = query(
            tmp_path,
            "select is_nullable from information_schema.columns where table_schema = 'marts' "
            "and table_name = 'fct_charges' and column_name = 'charge_id'",
        )
        return nullable

    def definition() -> str:
        return stored_definition(tmp_path, "fct_charges")

    def build() -> None:
        run_dbt(tmp_path / "warehouse.duckdb", tmp_path / "target",
                "run", "--select", "fct_charges", project=project)  # fmt: skip

    def tamper() -> None:
        con = duckdb.connect(str(tmp_path / "warehouse.duckdb"))
        con.execute("update marts.fct_charges set refund_count = -1")
        con.close()

    def tampered() -> int:
        [(count,)] = query(
            tmp_path, "select count(*) from marts.fct_charges where refund_count = -1"
        )
        return count

    assert charge_id_nullable() == "NO"
    con = duckdb.connect(str(tmp_path / "warehouse.duckdb"))
    with pytest.raises(duckdb.ConstraintException, match="NOT NULL"):
        con.execute("update marts.fct_charges set charge_id = null")
    con.close()
    [(after,)] = query(tmp_path, "select count(*) from marts.fct_charges where charge_id is null")
    assert after == 0
    built = definition()

    # A description changed: the same definition, the rows kept (nothing changed for them).
    tamper()
    described = "description: Stripe charge id."
    marts_yml.write_text(as_declared.replace(described, "description: The charge's id.", 1))
    build()
    assert definition() == built and tampered() == rows

    # The constraint taken out of the contract: built again in full, without it.
    tests = "        data_tests: [unique]\n"
    constrained = f"        {described}\n{tests}        constraints: [{{type: not_null}}]\n"
    assert as_declared.index(constrained) < as_declared.index("- name: fct_payment_intents")
    without = as_declared.replace(constrained, f"        {described}\n{tests}", 1)
    marts_yml.write_text(without)
    build()
    assert definition() != built and tampered() == 0 and charge_id_nullable() == "YES"

    # Back to the contract as it is: built again, with the constraint.
    tamper()
    marts_yml.write_text(as_declared)
    build()
    assert definition() == built and tampered() == 0 and charge_id_nullable() == "NO"

    # A build that would write a null (a charge staged again without its amount): the mart
    # fails with DuckDB's message and keeps every row it had, the changed one included.
    tamper()
    con = duckdb.connect(str(tmp_path / "warehouse.duckdb"))
    con.execute(
        "update staging.stg_stripe__charges set amount_minor = null, staged_at = now() "
        "where charge_id = (select min(charge_id) from staging.stg_stripe__charges)"
    )
    con.close()
    failed = run_dbt(tmp_path / "warehouse.duckdb", tmp_path / "target",
                     "run", "--select", "fct_charges", project=project, fails=True)  # fmt: skip
    assert "NOT NULL constraint failed: fct_charges.amount_minor" in failed
    assert tampered() == rows and definition() == built


def test_the_typed_fields_stage_exactly_what_parsing_every_payload_does(loaded, tmp_path):
    """Every row the load wrote to a large list carries its declared fields as typed columns
    with the declaration's version, and the staging models read those: a charge whose
    payload is emptied is still staged whole. Every other row made to look written before
    the declaration (no version) is staged from its payload, and each staging model then
    holds exactly the rows it held from the typed columns."""
    import shutil

    from ingestion.typed_fields import declared_fields

    workdir, _ = loaded
    for list_name, fields in declared_fields().items():
        [(rows, typed)] = query(
            workdir,
            f"select count(*), count(*) filter (where fields_version = ?) "
            f"from raw_stripe.{list_name}",
            [fields.version],
        )
        assert rows > 0 and typed == rows, list_name

    copy = tmp_path / "warehouse.duckdb"
    shutil.copyfile(workdir / "warehouse.duckdb", copy)
    con = duckdb.connect(str(copy))
    [(emptied,)] = con.execute(
        "select min(id) from raw_stripe.charges where id not in "
        "(select object_id from raw_stripe.events where object_table = 'charges')"
    ).fetchall()
    con.execute("update raw_stripe.charges set payload = '{}' where id = ?", [emptied])
    for list_name in declared_fields():
        con.execute(
            f"update raw_stripe.{list_name} set fields_version = null where id != ?", [emptied]
        )
    models = [name for (name,) in con.execute(
        "select table_name from duckdb_tables() where schema_name = 'staging' order by 1"
    ).fetchall()]  # fmt: skip
    con.close()
    run_dbt(copy, tmp_path / "target", "run", "--full-refresh", "--select", "staging")
    for model in models:
        [(missing, extra)] = query(
            workdir,
            f"attach '{copy}' as parsed (read_only); "
            f"select (select count(*) from (select {BUILD_TIMES} from staging.{model} "
            f"except all select {BUILD_TIMES} from parsed.staging.{model})), "
            f"(select count(*) from (select {BUILD_TIMES} from parsed.staging.{model} "
            f"except all select {BUILD_TIMES} from staging.{model}))",
        )
        assert (missing, extra) == (0, 0), model


READER = """
import os, sys, time, duckdb
con = duckdb.connect(sys.argv[1], read_only=True)
print("open", flush=True)
queries = 0
while not os.path.exists(sys.argv[2]):
    con.execute("select count(*), sum(net_minor) from marts.revenue_daily").fetchall()
    queries += 1
    time.sleep(0.05)
print(queries, flush=True)
"""


def test_a_bi_reader_never_blocks_a_run_and_a_run_never_breaks_it(loaded):
    """BI reads the reader copy: one holding it open and querying while a run writes and
    refreshes it goes on answering from what it opened; a new connection sees the new run."""
    import subprocess
    import sys

    workdir, _ = loaded
    copy = workdir / "warehouse_bi.duckdb"
    stop = workdir / "stop-reader"
    con = duckdb.connect(str(copy), read_only=True)
    before = con.execute("select count(*) from marts.load_history").fetchone()[0]
    con.close()
    reader = subprocess.Popen(
        [sys.executable, "-c", READER, str(copy), str(stop)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert reader.stdout.readline().strip() == "open"
        result = run_pipeline()
        assert result.success, failure_messages(result)
    finally:
        stop.touch()
        out, _ = reader.communicate(timeout=60)
    assert reader.returncode == 0 and int(out) > 10, out
    con = duckdb.connect(str(copy), read_only=True)
    after = con.execute("select count(*) from marts.load_history").fetchone()[0]
    con.close()
    assert after > before


def test_the_views_answer_in_the_bi_copy_row_for_row(loaded):
    """The CarePortals tabs and two steps of fct_charges are views. BI opens its copy of the
    warehouse under another name (`warehouse_bi`), where each view still answers from the
    copy's own tables, with the warehouse's rows."""
    workdir, _ = loaded
    views = query(workdir, "select schema_name, view_name from duckdb_views() where not internal")
    assert {
        "careportals_charges_export",
        "careportals_refunds_export",
        "careportals_payments_succeeded",
        "careportals_refunds_created",
    } <= {name for _, name in views}
    con = duckdb.connect(str(workdir / "warehouse_bi.duckdb"), read_only=True)
    try:
        # Attached under a name of its own: were a view bound to the name `warehouse`, it
        # would fail here instead of reading the attached file.
        con.execute(f"attach '{workdir / 'warehouse.duckdb'}' as original (read_only)")
        for schema, view in views:
            rows, missing, extra = con.execute(
                f"select (select count(*) from {schema}.{view}), "
                f"(select count(*) from (from original.{schema}.{view} "
                f"except all from {schema}.{view})), "
                f"(select count(*) from (from {schema}.{view} "
                f"except all from original.{schema}.{view}))"
            ).fetchone()
            assert rows > 0 and (missing, extra) == (0, 0), (view, rows, missing, extra)
    finally:
        con.close()
