"""The sandbox's events and webhooks, and the Events feed's cursor: the overlap, the re-list
when the cursor is older than Stripe keeps events, the rolling re-list, the sensor."""

from __future__ import annotations

import json
import shutil
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import dagster as dg
import duckdb
import httpx
import pytest

from ingestion.pipelines import run_stripe_account, stripe_pipeline
from ingestion.settings import Secret, StripeSettings
from ingestion.stripe_api import StripeApi
from sandbox.generator import DAY
from sandbox.server import SANDBOX_API_KEY, SandboxServer, SandboxState
from sandbox.webhooks import DeliverySettings, sign

AUTH = {"Authorization": f"Bearer {SANDBOX_API_KEY}"}


@pytest.fixture
def own_dataset(tmp_path: Path, dataset: Path) -> Path:
    folder = tmp_path / "sandbox" / dataset.name
    shutil.copytree(dataset, folder)
    return folder


def test_events_list_filters_and_previous_attributes(own_dataset: Path):
    state = SandboxState(own_dataset)
    with SandboxServer(state) as sandbox:
        before = state.now
        result = httpx.post(f"{sandbox.url}/v1/test_helpers/advance", data={"seconds": DAY},
                            headers=AUTH).json()  # fmt: skip
        assert result["now"] == before + DAY
        page = httpx.get(f"{sandbox.url}/v1/events", params={"limit": 100}, headers=AUTH).json()
        events = page["data"]
        assert len(events) == result["events"]
        assert [e["created"] for e in events] == sorted(
            (e["created"] for e in events), reverse=True
        )
        assert all(before < e["created"] < before + DAY for e in events)
        refunded = httpx.get(f"{sandbox.url}/v1/events", params={"type": "charge.refunded"},
                             headers=AUTH).json()["data"]  # fmt: skip
        assert refunded and all(e["type"] == "charge.refunded" for e in refunded)
        for e in refunded:
            previous = e["data"]["previous_attributes"]
            assert previous["amount_refunded"] < e["data"]["object"]["amount_refunded"]
        both = httpx.get(
            f"{sandbox.url}/v1/events",
            params=[("types[]", "customer.deleted"), ("types[]", "refund.created")],
            headers=AUTH,
        ).json()["data"]
        assert {e["type"] for e in both} == {"customer.deleted", "refund.created"}
        wildcard = httpx.get(f"{sandbox.url}/v1/events", params={"type": "customer.*"},
                             headers=AUTH).json()["data"]  # fmt: skip
        assert wildcard and all(e["type"].startswith("customer.") for e in wildcard)
        late = httpx.get(f"{sandbox.url}/v1/events", params={"created[gte]": before + DAY},
                         headers=AUTH).json()["data"]  # fmt: skip
        assert late == []
        deleted = next(e for e in both if e["type"] == "customer.deleted")
        gone = httpx.get(f"{sandbox.url}/v1/customers/{deleted['data']['object']['id']}",
                         headers=AUTH).json()  # fmt: skip
        assert gone == {"id": deleted["data"]["object"]["id"], "object": "customer",
                        "deleted": True}  # fmt: skip
        # The Date header is the account's clock.
        assert httpx.get(f"{sandbox.url}/v1/account", headers=AUTH).headers["date"]
    # A restarted sandbox replays its advances: the same events, the same account.
    again = SandboxState(own_dataset)
    assert again.now == before + DAY
    assert len(again.collections["events"].keys) == result["events"]


def test_webhooks_are_signed_and_retried_until_answered_2xx(own_dataset: Path):
    secret = "whsec_retry"
    received: list[tuple[str, str]] = []
    answers = iter([500, 503])  # the first two deliveries fail

    class Hook(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            status = next(answers, 200)
            received.append((json.loads(body)["id"], self.headers["Stripe-Signature"]))
            t = self.headers["Stripe-Signature"].split(",")[0][2:]
            assert self.headers["Stripe-Signature"] == sign(body, secret, int(t))
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args) -> None:
            pass

    hook = ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=hook.serve_forever, daemon=True).start()
    delivery = DeliverySettings(retry_delays=(0.05, 0.05, 0.05), duplicate_rate=0.0)
    state = SandboxState(own_dataset, delivery=delivery)
    try:
        state.add_endpoint(f"http://127.0.0.1:{hook.server_address[1]}/", ["*"], secret)
        result = state.advance(DAY, 10)
        assert state.deliverer.wait_idle(30)
    finally:
        state.close()
        hook.shutdown()
    ids = [event_id for event_id, _ in received]
    assert len(ids) == result["events"] + 2  # two failed attempts were retried
    assert len(set(ids)) == result["events"]
    assert sum(state.deliverer.failed.values()) == 2 and not state.deliverer.abandoned


def _raw(database: Path, sql: str) -> list[tuple]:
    con = duckdb.connect(str(database), read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def _load(state: SandboxState, url: str, tmp_path: Path, **settings_args) -> None:
    settings = StripeSettings(api_key=Secret(SANDBOX_API_KEY), api_base=url, sandbox=False,
                              orders_path=None, **settings_args)  # fmt: skip
    api = StripeApi(settings.api_key, url)
    try:
        run_stripe_account(stripe_pipeline(tmp_path / "w.duckdb", tmp_path / "dlt"), lambda: api,
                        settings)  # fmt: skip
    finally:
        api.close()


def _charges_in_sandbox(state: SandboxState) -> dict[str, int]:
    return {ch["id"]: ch["amount_refunded"] for ch in state.story.out["charges"]}


def _charges_in_raw(tmp_path: Path) -> dict[str, int]:
    return dict(
        _raw(tmp_path / "w.duckdb",
             "select id, (payload::json->>'amount_refunded')::bigint from raw_stripe.charges")
    )  # fmt: skip


def test_a_cursor_older_than_25_days_re_lists_the_mutable_objects(own_dataset, tmp_path):
    state = SandboxState(own_dataset)
    with SandboxServer(state) as sandbox:
        _load(state, sandbox.url, tmp_path)
        state.advance(DAY, 12)  # changes whose events will have expired
        state.advance(31 * DAY, 12)
        requests_before = len(state.requests)
        _load(state, sandbox.url, tmp_path)
        charge_reads = [r for r in state.requests[requests_before:] if "/v1/charges" in r]
    # Read in full, not from the cursor: the first advance's refunds are there all the same.
    assert charge_reads and not any("created%5Bgte%5D" in r for r in charge_reads)
    assert _charges_in_raw(tmp_path) == _charges_in_sandbox(state)


def test_the_rolling_re_list_reads_the_recent_objects_again(own_dataset, tmp_path):
    state = SandboxState(own_dataset)
    with SandboxServer(state) as sandbox:
        _load(state, sandbox.url, tmp_path)
        start = len(state.requests)
        _load(state, sandbox.url, tmp_path, events=False, relist_days=30)
        reads = state.requests[start:]
    since = state.now - 30 * DAY
    charge_reads = [r for r in reads if r.startswith("GET /v1/charges")]
    assert charge_reads and all(f"created%5Bgte%5D={since}" in r for r in charge_reads)
    # Balance transactions never change: they are read from their cursor only.
    txn_reads = [r for r in reads if r.startswith("GET /v1/balance_transactions")]
    assert txn_reads and all(f"created%5Bgte%5D={since}" not in r for r in txn_reads)


def test_the_sensor_asks_for_a_run_only_when_events_wait(tmp_path, monkeypatch):
    from orchestration.definitions import webhook_landing_sensor

    landing = tmp_path / "landing"
    monkeypatch.setenv("WEBHOOK_LANDING_DIR", str(landing))
    monkeypatch.setenv("DLT_PIPELINES_DIR", str(tmp_path / "dlt"))
    monkeypatch.setenv("DUCKDB_PATH", str(tmp_path / "w.duckdb"))
    context = dg.build_sensor_context(instance=dg.DagsterInstance.ephemeral())
    assert isinstance(webhook_landing_sensor(context), dg.SkipReason)
    landing.mkdir()
    assert isinstance(webhook_landing_sensor(context), dg.SkipReason)
    (landing / "events-1-1.jsonl").write_text('{"event": {"id": "evt_1"}}\n')
    request = webhook_landing_sensor(context)
    assert isinstance(request, dg.RunRequest) and request.run_key


def test_a_backfill_reads_only_its_date_range_and_leaves_the_cursors(tmp_path: Path, dataset):
    """Rows of one month lost from the warehouse (a bad manual delete, say) come back with
    STRIPE_BACKFILL; nothing outside the range is read, and the cursors stay where they were."""
    import datetime as dt

    from ingestion.settings import parse_backfill

    state = SandboxState(dataset)
    with SandboxServer(state) as sandbox:
        _load(state, sandbox.url, tmp_path)
        pipeline = stripe_pipeline(tmp_path / "w.duckdb", tmp_path / "dlt")
        cursors = json.dumps(pipeline.state["sources"], sort_keys=True, default=str)
        start, end = parse_backfill("2026-03-01..2026-04-01")
        con = duckdb.connect(str(tmp_path / "w.duckdb"))
        expected = dict(con.execute("select id, payload from raw_stripe.charges").fetchall())
        con.execute(f"delete from raw_stripe.charges where created >= {start} and created < {end}")
        lost = len(expected) - con.execute("select count(*) from raw_stripe.charges").fetchone()[0]
        con.close()
        assert lost > 0
        state.requests.clear()
        _load(state, sandbox.url, tmp_path, backfill=(start, end))
        read = [r for r in state.requests if "/v1/charges" in r]
        assert read and all(f"created%5Bgte%5D={start}" in r and f"created%5Blt%5D={end}" in r
                            for r in read)  # fmt: skip
        assert not [r for r in state.requests if "/v1/events" in r]
    got = dict(_raw(tmp_path / "w.duckdb", "select id, payload from raw_stripe.charges"))
    assert got.keys() == expected.keys()
    pipeline = stripe_pipeline(tmp_path / "w.duckdb", tmp_path / "dlt")
    assert json.dumps(pipeline.state["sources"], sort_keys=True, default=str) == cursors
    assert dt.datetime.fromtimestamp(start, dt.UTC).isoformat() == "2026-03-01T00:00:00+00:00"
