"""A contract test against localstripe, a third-party fake Stripe server: its signed
webhooks verify and land in the receiver, and its objects and events load."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import httpx
import pytest

from ingestion.landing import webhook_landing_source
from ingestion.pipelines import (
    LOADER_FILE_FORMAT,
    run_stripe_account,
    stripe_pipeline,
    stripe_webhooks_pipeline,
)
from ingestion.settings import Secret, StripeSettings
from ingestion.stripe_api import StripeApi
from ingestion.webhooks import ReceiverServer, ReceiverSettings

KEY = "sk_test_localstripe"
SECRET = "whsec_localstripe_contract"
ACCOUNT = "acct_localstripe"
# What localstripe serves with the list semantics the loader needs (no created filters).
LISTS = ("customers", "charges", "refunds", "payment_intents")


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def localstripe():
    port = _port()
    process = subprocess.Popen(
        [sys.executable, "-m", "localstripe", "--port", str(port), "--from-scratch"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            httpx.get(f"{url}/v1/customers", auth=(KEY, ""), timeout=1)
            break
        except httpx.TransportError:
            assert time.monotonic() < deadline and process.poll() is None, "no localstripe"
            time.sleep(0.1)
    try:
        yield url
    finally:
        process.terminate()
        process.wait(10)


def test_localstripe_webhooks_verify_and_land_and_its_objects_load(
    localstripe: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    landing = tmp_path / "landing"
    receiver = ReceiverServer(ReceiverSettings(secrets=(SECRET,), landing_dir=landing, port=0))
    with receiver, httpx.Client(base_url=localstripe, auth=(KEY, "")) as api:
        api.post(
            "/_config/webhooks/stripe_elt", data={"url": receiver.url, "secret": SECRET}
        ).raise_for_status()
        customer = api.post("/v1/customers", data={"email": "ann@example.com"}).json()
        card = api.post(
            "/v1/payment_methods",
            data={"type": "card", "card[number]": "4242424242424242", "card[exp_month]": "12",
                  "card[exp_year]": "2030", "card[cvc]": "123"},
        ).json()  # fmt: skip
        intent = api.post(
            "/v1/payment_intents",
            data={"amount": "2500", "currency": "usd", "customer": customer["id"],
                  "payment_method": card["id"], "confirm": "true",
                  "metadata[resourceId]": "order-1"},
        ).json()  # fmt: skip
        assert intent["status"] == "succeeded", intent
        api.post("/v1/refunds", data={"payment_intent": intent["id"], "amount": "1000"})
        gone = api.post("/v1/customers", data={"email": "bo@example.com"}).json()
        api.delete(f"/v1/customers/{gone['id']}").raise_for_status()

        # localstripe delivers each event about a second after it happens.
        expected = {"customer.created", "payment_intent.succeeded", "customer.deleted"}
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if expected <= _landed_types(landing):
                break
            time.sleep(0.2)
        assert expected <= _landed_types(landing), _landed_types(landing)
        assert receiver.receiver.rejected == {}

    # The landing and the objects load into one warehouse.
    database = tmp_path / "warehouse.duckdb"
    monkeypatch.setenv("DUCKDB_PATH", str(database))
    monkeypatch.setenv("DLT_PIPELINES_DIR", str(tmp_path / "dlt"))
    stripe_webhooks_pipeline().run(
        webhook_landing_source(landing, ACCOUNT), loader_file_format=LOADER_FILE_FORMAT
    )
    settings = StripeSettings(
        api_key=Secret(KEY), api_base=localstripe, sandbox=False, orders_path=None,
        lists=LISTS, account_id=ACCOUNT, full_refresh=True,
    )  # fmt: skip
    api = StripeApi(settings.api_key, localstripe, account_id=ACCOUNT)
    run_stripe_account(stripe_pipeline(), lambda: api, settings)
    api.close()
    con = duckdb.connect(str(database), read_only=True)
    try:
        customers = dict(con.execute("select id, account_id from raw_stripe.customers").fetchall())
        assert customers == {customer["id"]: ACCOUNT}  # the deleted one is not listed
        [(charges, refunded)] = con.execute(
            "select count(*), sum((payload::json->>'amount_refunded')::int) from raw_stripe.charges"
        ).fetchall()
        assert (charges, refunded) == (1, 1000)
        events = dict(
            con.execute("select type, count(*) from raw_stripe.events group by 1").fetchall()
        )
        assert events["customer.created"] == 2 and events["customer.deleted"] == 1
        [(deleted,)] = con.execute(
            "select object_id from raw_stripe.events where type = 'customer.deleted'"
        ).fetchall()
        assert deleted == gone["id"]
    finally:
        con.close()


def _landed_types(folder: Path) -> set[str]:
    return {
        json.loads(line)["event"]["type"]
        for path in folder.glob("events-*.jsonl")
        for line in path.read_text().splitlines()
    }
