"""Many Stripe accounts: a Connect platform and its connected accounts served by the sandbox,
read through the platform's key (discovered or listed) and through their own keys; each
account's rows and marts equal its own ground truth, the totals equal the sum of them, and an
account that fails is reported while the others load."""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

import orjson
import pytest

from ingestion.webhooks import ReceiverServer, ReceiverSettings
from sandbox.generator import DAY
from sandbox.server import SANDBOX_API_KEY, SandboxServer, SandboxState
from sandbox.store import connected_folders, ensure_dataset, object_files
from tests.conftest import CHARGES, SEED, set_pipeline_env
from tests.test_change_capture import run_job
from tests.test_pipeline import failure_messages, query

SECRET = "whsec_test_accounts"
CONNECTED = 2
MONEY = ("gross", "refunds_period", "refunds_cohort", "disputes", "fees", "net")


@pytest.fixture(scope="module")
def platform(tmp_path_factory) -> Path:
    """A platform account with two connected accounts (its own folder: time advances)."""
    return ensure_dataset(tmp_path_factory.mktemp("connect"), SEED, CHARGES, CONNECTED)


def account_folders(platform: Path) -> dict[str, Path]:
    folders = [platform, *connected_folders(platform)]
    return {json.loads((f / "manifest.json").read_text())["account_id"]: f for f in folders}


def truths(platform: Path) -> dict[str, dict]:
    return {
        account: json.loads((folder / "ground_truth.json").read_text())
        for account, folder in account_folders(platform).items()
    }


def ids(folder: Path, name: str) -> set[str]:
    found = set()
    for path in object_files(folder, name):
        with open(path, "rb") as f:
            found |= {orjson.loads(line)["id"] for line in f}
    return found


def run_stripe_only(webhook_landing_only: bool = False, restage_charges: bool = False):
    """The Stripe assets and their checks only, or only the load of the webhook landing; with
    `restage_charges`, the staged charges (a table) are rebuilt from what was loaded."""
    import dagster as dg

    from orchestration.definitions import WEBHOOK_LANDING_KEY, defs

    job = defs.resolve_job_def("full_pipeline")
    keys = [key for key in job.asset_layer.executable_asset_keys if key.path[0] == "stripe"]
    if restage_charges:
        keys.append(dg.AssetKey(["staging", "stg_stripe__charges"]))
    if webhook_landing_only:
        keys = [WEBHOOK_LANDING_KEY]
    return job.execute_in_process(
        instance=dg.DagsterInstance.ephemeral(), raise_on_error=False, asset_selection=keys
    )


def test_the_sandbox_serves_a_platform_and_its_connected_accounts(platform: Path):
    state = SandboxState(platform)
    connected = list(state.connected)
    assert len(connected) == CONNECTED
    platform_key = f"Bearer {SANDBOX_API_KEY}"

    status, body = state.answer("GET", "/v1/accounts?limit=100", platform_key)
    assert status == 200
    assert {a["id"] for a in orjson.loads(body)["data"]} == set(connected)
    for k, account in enumerate(connected, 1):
        folder = account_folders(platform)[account]
        through_platform = state.answer("GET", "/v1/charges?limit=100", platform_key,
                                        stripe_account=account)  # fmt: skip
        own_key = state.answer("GET", "/v1/charges?limit=100", f"Bearer {SANDBOX_API_KEY}_{k}")
        assert through_platform == own_key
        assert {c["id"] for c in orjson.loads(own_key[1])["data"]} <= ids(folder, "charges")
        status, body = state.answer("GET", "/v1/account", platform_key, stripe_account=account)
        assert orjson.loads(body)["id"] == account
    # A connected account's key cannot read the platform, nor anyone an unknown account.
    status, body = state.answer("GET", "/v1/charges", f"Bearer {SANDBOX_API_KEY}_1",
                                stripe_account=state.account_id)  # fmt: skip
    assert status == 403 and orjson.loads(body)["error"]["code"] == "account_invalid"
    status, _ = state.answer("GET", "/v1/charges", platform_key, stripe_account="acct_missing")
    assert status == 403
    # The orders export is one CarePortals: every account's orders.
    with open(platform / "careportals_orders.csv") as f:
        exported = sum(1 for _ in f) - 1
    assert exported == sum(t["counts"]["orders"] for t in truths(platform).values())


@pytest.fixture(scope="module")
def connect_run(tmp_path_factory, platform: Path):
    """The platform's key discovers its connected accounts; one full run, then time advances
    with webhooks delivered, the landing loaded, and an incremental run."""
    workdir = tmp_path_factory.mktemp("connect_run")
    state = SandboxState(platform)
    landing = workdir / "landing"
    receiver = ReceiverServer(ReceiverSettings(secrets=(SECRET,), landing_dir=landing, port=0))
    with SandboxServer(state) as sandbox, receiver, pytest.MonkeyPatch.context() as mp:
        set_pipeline_env(mp, workdir, sandbox.url, platform)
        mp.setenv("STRIPE_CONNECTED_ACCOUNTS", "all")
        result = run_job("full_pipeline")
        assert result.success, failure_messages(result)
        yield workdir, state, sandbox, receiver, mp


def test_each_account_and_the_total_equal_their_ground_truth(connect_run, platform: Path):
    workdir = connect_run[0]
    expected_truths = truths(platform)
    assert len(expected_truths) == 1 + CONNECTED
    for table in ("charges", "refunds", "customers", "balance_transactions", "subscriptions"):
        rows = query(workdir, f"select account_id, id from raw_stripe.{table}")
        got: dict[str, set[str]] = defaultdict(set)
        for account, object_id in rows:
            got[account].add(object_id)
        assert len(rows) == sum(len(v) for v in got.values())
        expected = {a: ids(f, table) for a, f in account_folders(platform).items()}
        assert got == {a: v for a, v in expected.items() if v}, table

    monthly = query(
        workdir,
        "select account_id, currency, strftime(revenue_month, '%Y-%m'), gross_minor, "
        "refunds_period_minor, refunds_cohort_minor, disputes_minor, fees_minor, net_minor "
        "from marts.revenue_monthly",
    )
    got_monthly = {
        (account, currency, month): dict(zip(MONEY, values, strict=True))
        for account, currency, month, *values in monthly
    }
    total: dict[tuple[str, str], dict[str, int]] = defaultdict(lambda: dict.fromkeys(MONEY, 0))
    expected_monthly = {}
    for account, truth in expected_truths.items():
        for currency, months in truth["settlement_monthly"].items():
            for month, values in months.items():
                expected_monthly[(account, currency, month)] = values
                for name in MONEY:
                    total[(currency, month)][name] += values[name]
    assert got_monthly == expected_monthly

    rows = query(
        workdir,
        "select currency, strftime(revenue_month, '%Y-%m'), gross_minor, refunds_period_minor, "
        "refunds_cohort_minor, disputes_minor, fees_minor, net_minor "
        "from marts.revenue_monthly_all_accounts",
    )
    got_total = {
        (currency, month): dict(zip(MONEY, values, strict=True))
        for currency, month, *values in rows
    }
    assert got_total == dict(total)

    # Each order names the account its (not failed) charges were made in.
    paid_by: dict[str, str] = {}
    for account, folder in account_folders(platform).items():
        with open(folder / "objects" / "charges.jsonl", "rb") as f:
            for line in f:
                charge = orjson.loads(line)
                order = charge["metadata"].get("resourceId")
                if order and charge["status"] != "failed":
                    paid_by.setdefault(order, account)
    got_paid_by = dict(
        query(
            workdir,
            "select order_id, account_id from marts.order_reconciliation "
            "where record_type = 'order' and account_id is not null",
        )
    )
    orders = {
        o
        for (o,) in query(
            workdir, "select order_id from marts.order_reconciliation where record_type = 'order'"
        )
    }
    assert got_paid_by == {o: a for o, a in paid_by.items() if o in orders}

    # MRR per account and month equals each account's billing schedule.
    mrr = query(
        workdir,
        "select account_id, currency, strftime(mrr_month, '%Y-%m'), mrr_minor "
        "from marts.mrr_monthly where mrr_month < date '2026-11-01' and mrr_minor != 0",
    )
    got_mrr: dict[str, dict[str, dict[str, str]]] = defaultdict(lambda: defaultdict(dict))
    for account, currency, month, value in mrr:
        got_mrr[account][currency][month] = str(value)
    expected_mrr = {a: t["mrr_monthly"] for a, t in expected_truths.items() if t["mrr_monthly"]}
    assert {a: dict(v) for a, v in got_mrr.items()} == expected_mrr

    [(outcome, accounts)] = query(
        workdir,
        "select outcome, account_outcomes from marts.load_history where pipeline = 'stripe' "
        "order by finished_at desc limit 1",
    )
    assert outcome == "succeeded"
    assert {a["account"] for a in json.loads(accounts)} == set(expected_truths)


def test_changes_in_every_account_arrive_by_webhook_and_by_the_events_feed(connect_run):
    workdir, state, _, receiver, mp = connect_run
    mp.setenv("WEBHOOK_LANDING_DIR", str(workdir / "landing"))
    state.add_endpoint(receiver.url, ["*"], SECRET)
    advanced = state.advance(DAY, 8)
    assert state.deliverer.wait_idle(60)
    # (test_change_capture follows the landing on to the marts.)
    result = run_stripe_only(webhook_landing_only=True)
    assert result.success, failure_messages(result)

    # Every account's events landed under that account (Connect events name it).
    expected_events = {
        account: len(s.collections["events"].keys)
        for account, s in [(state.account_id, state), *state.connected.items()]
    }
    assert sum(expected_events.values()) == advanced["events"]
    got = dict(query(workdir, "select account_id, count(*) from raw_stripe.events group by 1"))
    assert got == expected_events

    # The incremental run reads each account from its own cursors and ends at its state.
    result = run_stripe_only(restage_charges=True)
    assert result.success, failure_messages(result)
    for account, s in [(state.account_id, state), *state.connected.items()]:
        expected = {ch["id"]: ch["amount_refunded"] for ch in s.story.out["charges"]}
        got_charges = dict(
            query(
                workdir,
                "select charge_id, amount_refunded_minor from staging.stg_stripe__charges "
                "where account_id = ?",
                [account],
            )
        )
        assert got_charges == expected, account
    [(rows, distinct)] = query(
        workdir, "select count(*), count(distinct id) from raw_stripe.events"
    )
    assert rows == distinct == advanced["events"]


def test_a_failing_account_is_reported_and_the_others_load(tmp_path: Path, platform: Path):
    """Key 1 (the platform) reads connected account 1 and one it has no access to; key 2 is
    connected account 2's own key; key 3 is wrong. Three accounts load, two failures show."""
    state = SandboxState(platform)
    first, second = list(state.connected)
    bogus_key = "sk_test_bogus_key_0123456789"
    with SandboxServer(state) as sandbox, pytest.MonkeyPatch.context() as mp:
        set_pipeline_env(mp, tmp_path, sandbox.url, platform)
        mp.setenv("STRIPE_API_KEY", f"{SANDBOX_API_KEY},{SANDBOX_API_KEY}_2,{bogus_key}")
        mp.setenv("STRIPE_CONNECTED_ACCOUNTS", f"{first},acct_revoked0000000")
        result = run_stripe_only()
    # The run goes on with the accounts that loaded (the models and the workbook follow).
    assert result.success, failure_messages(result)
    check = [
        e.asset_check_evaluation_data
        for e in result.all_events
        if e.event_type_value == "ASSET_CHECK_EVALUATION"
        and e.asset_check_evaluation_data.check_name == "every_account_loaded"
    ]
    assert len(check) == 1 and not check[0].passed
    loaded = {a for (a,) in query(tmp_path, "select distinct account_id from raw_stripe.charges")}
    assert loaded == {state.account_id, first, second}
    [(outcome, error, accounts)] = query(
        tmp_path,
        "select outcome, error, account_outcomes from raw_ops.load_history "
        "where pipeline = 'stripe'",
    )
    assert outcome == "partially_failed"
    by_account = {a["account"]: a for a in json.loads(accounts)}
    assert by_account["connected account acct_revoked0000000 (through key 1)"]["outcome"] == (
        "failed"
    )
    assert (
        "does not have access"
        in by_account["connected account acct_revoked0000000 (through key 1)"]["error"]
    )
    assert "rejected the API key" in by_account["the account of key 3"]["error"]
    assert {a for a, v in by_account.items() if v["outcome"] == "loaded"} == loaded
    assert "2 of 5 Stripe accounts failed" in error
    assert bogus_key not in error + accounts
