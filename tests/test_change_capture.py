"""Change capture end to end: the sandbox's clock advances (refunds of old charges,
cancellations, deleted customers, new orders), its signed webhooks reach the receiver, the
landing reaches the marts, and the next incremental load ends with exactly the sandbox's
state, also with faults injected into the API."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import dagster as dg
import pytest

from ingestion.webhooks import ReceiverServer, ReceiverSettings
from sandbox.generator import DAY
from sandbox.server import SandboxServer, SandboxState
from sandbox.webhooks import DeliverySettings, Faults
from tests.conftest import DBT_PROJECT, run_dbt, set_pipeline_env
from tests.test_pipeline import BUILD_TIMES, failure_messages, query

SECRET = "whsec_test_change_capture"
# The models a build after the first makes incrementally: the staging models
# (macros/object_state.sql), and fct_charges and fct_payment_intents from what they staged.
INCREMENTAL_MODELS = (
    "staging.stg_stripe__charges",
    "staging.stg_stripe__payment_intents",
    "staging.stg_stripe__balance_transactions",
    "staging.stg_stripe__refunds",
    "staging.stg_stripe__customers",
    "staging.stg_stripe__invoices",
    "staging.stg_stripe__subscriptions",
    "staging.stg_stripe__invoice_lines",
    "staging.stg_stripe__subscription_items",
    "marts.fct_charges",
    "marts.fct_payment_intents",
    "marts.dim_customers",
    "marts.fct_refunds",
)


def assert_incremental_models_equal_a_full_build(workdir: Path, scratch: Path) -> None:
    """The incremental tables hold exactly what building them again from every raw row
    gives, column by column: nothing missed, nothing doubled, nothing stale."""
    copy = scratch / "rebuilt.duckdb"
    shutil.copyfile(workdir / "warehouse.duckdb", copy)
    run_dbt(copy, scratch / "target", "run", "--full-refresh", "--select",
            " ".join(model.split(".")[1] for model in INCREMENTAL_MODELS))  # fmt: skip
    for model in INCREMENTAL_MODELS:
        [(missing, extra, rows)] = query(
            workdir,
            f"attach '{copy}' as rebuilt (read_only); "
            f"select (select count(*) from (select {BUILD_TIMES} from rebuilt.{model} "
            f"except all select {BUILD_TIMES} from {model})), "
            f"(select count(*) from (select {BUILD_TIMES} from {model} "
            f"except all select {BUILD_TIMES} from rebuilt.{model})), "
            f"(select count(*) from {model})",
        )
        assert (missing, extra) == (0, 0), (model, missing, extra, rows)
    copy.unlink()


def test_no_model_takes_a_value_from_whichever_row_comes_first():
    """An incremental table must equal a full build of the same rows, and a build must
    equal the one before it: no value may depend on the order DuckDB's threads hand rows
    to an aggregate. `any_value()` (DuckDB's `arbitrary()`, which takes the first row,
    null or not) and `first()` or `last()` without an `order by` would: a customer's
    settlement currency was once null or not from one build to the next."""
    found = []
    for folder in ("models", "macros", "tests"):
        for path in sorted((DBT_PROJECT / folder).rglob("*.sql")):
            sql = re.sub(r"--[^\n]*|\{#.*?#\}", "", path.read_text(), flags=re.S)
            for call in re.finditer(r"\b(any_value|arbitrary|first|last)\s*\(", sql, re.I):
                depth, end = 1, call.end()
                while depth and end < len(sql):
                    depth += {"(": 1, ")": -1}.get(sql[end], 0)
                    end += 1
                ordered = re.search(r"\border\s+by\b", sql[call.end() : end], re.I)
                if call.group(1).lower() in ("any_value", "arbitrary") or not ordered:
                    found.append(f"{path.relative_to(DBT_PROJECT)}: {call.group(0)}")
    assert found == []


def run_job(name: str):
    from orchestration.definitions import defs

    return defs.resolve_job_def(name).execute_in_process(
        instance=dg.DagsterInstance.ephemeral(), raise_on_error=False
    )


def sandbox_state(state: SandboxState) -> dict:
    """The sandbox's own objects after its advances: the ground truth of these checks."""
    story = state.story
    charges = {
        ch["id"]: (ch["amount_refunded"], ch["refunded"], ch["disputed"])
        for ch in story.out["charges"]
    }
    subscriptions = {sub["id"]: sub["status"] for sub in story.out["subscriptions"]}
    names = {c["id"]: c["name"] for c in story.out["customers"]}
    return {
        "charges": charges,
        "subscriptions": subscriptions,
        "names": names,
        "deleted": set(story.data.deleted_customers),
        "refunds": {re["id"] for re in story.out["refunds"]},
    }


def warehouse_state(workdir: Path) -> dict:
    charges = {
        cid: (refunded_minor, refunded, disputed)
        for cid, refunded_minor, refunded, disputed in query(
            workdir,
            "select charge_id, amount_refunded_minor, refunded, disputed "
            "from staging.stg_stripe__charges",
        )
    }
    subscriptions = dict(
        query(workdir, "select subscription_id, status from staging.stg_stripe__subscriptions")
    )
    names = dict(query(workdir, "select customer_id, name from staging.stg_stripe__customers"))
    deleted = {
        row[0]
        for row in query(workdir, "select customer_id from marts.dim_customers where is_deleted")
    }
    refunds = {row[0] for row in query(workdir, "select refund_id from marts.fct_refunds")}
    return {
        "charges": charges,
        "subscriptions": subscriptions,
        "names": names,
        "deleted": deleted,
        "refunds": refunds,
    }


@pytest.fixture
def own_dataset(tmp_path: Path, dataset: Path) -> Path:
    """A copy of the test account: advancing time writes to its folder."""
    folder = tmp_path / "sandbox" / dataset.name
    shutil.copytree(dataset, folder)
    return folder


def test_webhooks_reach_the_marts_and_an_incremental_load_ends_at_the_sandbox_state(
    tmp_path: Path, own_dataset: Path, monkeypatch: pytest.MonkeyPatch
):
    state = SandboxState(own_dataset, delivery=DeliverySettings(duplicate_rate=0.3, seed=3))
    landing = tmp_path / "landing"
    receiver = ReceiverServer(ReceiverSettings(secrets=(SECRET,), landing_dir=landing, port=0))
    with SandboxServer(state) as sandbox, receiver:
        set_pipeline_env(monkeypatch, tmp_path, sandbox.url, own_dataset)
        monkeypatch.setenv("WEBHOOK_LANDING_DIR", str(landing))
        result = run_job("full_pipeline")
        assert result.success, failure_messages(result)
        before = warehouse_state(tmp_path)

        state.add_endpoint(receiver.url, ["*"], SECRET)
        advanced = state.advance(DAY, 12)
        assert state.deliverer.wait_idle(60)
        truth = sandbox_state(state)
        # The advance changed old objects the list cursors alone would never see again.
        assert before["charges"] != truth["charges"]
        assert truth["deleted"] and not before["deleted"]

        # Every event landed once, duplicates and shuffled order notwithstanding.
        lines = [
            json.loads(line)["event"]["id"]
            for path in landing.glob("events-*.jsonl")
            for line in path.read_text().splitlines()
        ]
        assert len(lines) == len(set(lines)) == advanced["events"]

        # The sensor's job: landing -> raw events -> models -> workbook.
        result = run_job("webhook_to_marts")
        assert result.success, failure_messages(result)
        after_webhooks = warehouse_state(tmp_path)
        changed_charges = {
            cid for cid, value in truth["charges"].items() if before["charges"].get(cid) != value
        }
        for cid in changed_charges:
            assert after_webhooks["charges"][cid] == truth["charges"][cid], cid
        assert after_webhooks["deleted"] == truth["deleted"]
        assert after_webhooks["subscriptions"] == truth["subscriptions"]
        assert after_webhooks["names"] == truth["names"]
        assert_incremental_models_equal_a_full_build(tmp_path, tmp_path)
        [(rows, distinct, via_webhook)] = query(
            tmp_path,
            "select count(*), count(distinct id), count(*) filter (where source = 'webhook') "
            "from raw_stripe.events",
        )
        assert rows == distinct == via_webhook == advanced["events"]
        # The payment_succesful tab shows the event of each new payment.
        [(with_event,)] = query(
            tmp_path,
            "select count(*) from marts.careportals_payments_succeeded "
            "where recorded_from = 'webhook'",
        )
        assert with_event == sum(
            1 for path in landing.glob("events-*.jsonl")
            for line in path.read_text().splitlines()
            if json.loads(line)["event"]["type"] == "payment_intent.succeeded"
        )  # fmt: skip

        # The scheduled incremental load: new objects by cursor, changes by the Events feed.
        result = run_job("full_pipeline")
        assert result.success, failure_messages(result)
        assert warehouse_state(tmp_path) == truth
        ground = json.loads((own_dataset / "ground_truth.json").read_text())
        counts = dict(
            query(
                tmp_path,
                "select 'charges', count(*) from raw_stripe.charges union all "
                "select 'refunds', count(*) from raw_stripe.refunds union all "
                "select 'balance_transactions', count(*) from raw_stripe.balance_transactions "
                "union all select 'customers', count(*) from raw_stripe.customers",
            )
        )
        for name, count in counts.items():
            assert count == ground["counts"][name], name
        [(rows, distinct)] = query(
            tmp_path, "select count(*), count(distinct id) from raw_stripe.events"
        )
        assert rows == distinct == advanced["events"]
        assert_incremental_models_equal_a_full_build(tmp_path, tmp_path)
        revenue = {
            currency: (gross, refunds, fees, net)
            for currency, gross, refunds, fees, net in query(
                tmp_path,
                "select currency, sum(gross_minor), sum(refunds_minor), sum(fees_minor), "
                "sum(net_minor) from marts.revenue_daily group by currency",
            )
        }
        for currency, totals in ground["settlement"].items():
            assert revenue[currency][0] == totals["gross"], currency
            assert revenue[currency][1] == totals["refunds"], currency


def test_a_full_and_an_incremental_load_with_faults_end_at_the_ground_truth(
    tmp_path: Path, own_dataset: Path, monkeypatch: pytest.MonkeyPatch
):
    faults = Faults(rate_limited=0.1, server_error=0.08, dropped=0.08, slow=0.05,
                    slow_seconds=0.05, seed=11)  # fmt: skip
    state = SandboxState(own_dataset, faults=faults)
    with SandboxServer(state) as sandbox:
        set_pipeline_env(monkeypatch, tmp_path, sandbox.url, own_dataset)
        monkeypatch.setenv("STRIPE_MAX_RETRIES", "8")
        monkeypatch.setenv("STRIPE_RETRY_BACKOFF_SECONDS", "0.01")
        result = run_job("full_pipeline")
        assert result.success, failure_messages(result)
        state.advance(DAY, 12)
        result = run_job("full_pipeline")
        assert result.success, failure_messages(result)
        assert sum(state.faults.injected.values()) >= 8, state.faults.injected
        assert {"429", "500", "drop"} <= set(state.faults.injected)
        truth = sandbox_state(state)
        assert warehouse_state(tmp_path) == truth
        ground = json.loads((own_dataset / "ground_truth.json").read_text())
        for name, count in ground["counts"].items():
            if name == "orders":
                continue
            [(rows, distinct)] = query(
                tmp_path, f"select count(*), count(distinct id) from raw_stripe.{name}"
            )
            assert rows == distinct == count, name
