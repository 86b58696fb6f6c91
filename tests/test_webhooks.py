"""The webhook receiver: every bad input gets its status, bursts with duplicates land each
event once, and what it acknowledged survives a SIGKILL or a SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import orjson
import pytest

from ingestion.events import EVENT_TABLES, object_of
from ingestion.settings import ConfigurationError
from ingestion.webhooks import WEBHOOK_PATH, ReceiverServer, ReceiverSettings
from sandbox.webhooks import sign

SECRET = "whsec_test_receiver"
OLD_SECRET = "whsec_test_rotated_out"


def event(n: int, kind: str = "charge.refunded") -> bytes:
    return orjson.dumps(
        {"id": f"evt_{n:06d}", "object": "event", "type": kind, "created": 1_793_500_000 + n,
         "data": {"object": {"id": f"ch_{n}", "object": "charge"}}}
    )  # fmt: skip


@pytest.fixture
def receiver(tmp_path: Path):
    settings = ReceiverSettings(
        secrets=(SECRET, OLD_SECRET), landing_dir=tmp_path / "landing", port=0,
        max_body_bytes=4096,
    )  # fmt: skip
    with ReceiverServer(settings) as server:
        yield server


def signed(body: bytes) -> dict[str, str]:
    return {"Content-Type": "application/json", "Stripe-Signature": sign(body, SECRET)}


def post(url: str, body: bytes, headers: dict[str, str]) -> int:
    return httpx.post(url, content=body, headers=headers).status_code


def landed(folder: Path) -> list[str]:
    return [
        json.loads(line)["event"]["id"]
        for path in sorted(folder.glob("events-*.jsonl"))
        for line in path.read_text().splitlines()
    ]


def test_every_bad_input_gets_its_status_and_nothing_lands(receiver, tmp_path: Path):
    url = receiver.url
    body = event(1)
    good = {"Content-Type": "application/json", "Stripe-Signature": sign(body, SECRET)}
    base = url.removesuffix(WEBHOOK_PATH)
    cases = {
        "no signature": (body, {"Content-Type": "application/json"}, 400),
        "bad signature": (body, {**good, "Stripe-Signature": sign(body, "whsec_other")}, 400),
        "stale timestamp": (
            body,
            {**good, "Stripe-Signature": sign(body, SECRET, int(time.time()) - 301)},
            400,
        ),
        "garbled header": (body, {**good, "Stripe-Signature": "nonsense"}, 400),
        "tampered body": (event(2), good, 400),
        "malformed JSON": (b"{bad", {**good, "Stripe-Signature": sign(b"{bad", SECRET)}, 400),
        "not an event": (b"[1, 2]", {**good, "Stripe-Signature": sign(b"[1, 2]", SECRET)}, 400),
        "wrong content type": (body, {**good, "Content-Type": "text/plain"}, 415),
        "oversized body": (b"x" * 5000, good, 413),
    }  # fmt: skip
    for name, (payload, headers, status) in cases.items():
        assert post(url, payload, headers) == status, name
    assert httpx.get(url).status_code == 405
    assert httpx.post(f"{base}/elsewhere", content=body, headers=good).status_code == 404
    assert landed(tmp_path / "landing") == []
    # A secret being rotated out still verifies; several v1 signatures, one of them right.
    rotated = {**good, "Stripe-Signature": sign(body, OLD_SECRET)}
    assert post(url, body, rotated) == 200
    t = int(time.time())
    both = sign(body, "whsec_other", t) + "," + sign(body, SECRET, t).split(",")[1]
    assert post(url, event(3), {**good, "Stripe-Signature": both}) == 400
    assert post(url, body, {**good, "Stripe-Signature": both}) == 200
    health = httpx.get(f"{base}/healthz").json()
    assert health["status"] == "ok" and health["landed"] == 1 and health["duplicates"] == 1
    assert landed(tmp_path / "landing") == ["evt_000001"]


def test_a_burst_with_duplicates_out_of_order_lands_each_event_once(receiver, tmp_path: Path):
    bodies = [event(n) for n in range(300)]
    deliveries = bodies + bodies[::3] + bodies[::7]
    deliveries.reverse()
    with httpx.Client() as client, ThreadPoolExecutor(8) as pool:
        statuses = list(
            pool.map(
                lambda b: client.post(
                    receiver.url, content=b,
                    headers=signed(b),
                ).status_code,
                deliveries,
            )
        )  # fmt: skip
    assert statuses == [200] * len(deliveries)
    ids = landed(tmp_path / "landing")
    assert sorted(ids) == [f"evt_{n:06d}" for n in range(300)]


def default_sigterm() -> None:
    """In the child before it runs: SIGTERM stops it even if the test process ignores
    SIGTERM (an ignored signal is inherited, and dropped while the receiver starts)."""
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


@pytest.mark.parametrize("stop", [signal.SIGKILL, signal.SIGTERM], ids=["sigkill", "sigterm"])
def test_every_acknowledged_event_survives_a_stop(tmp_path: Path, free_port: int, stop: int):
    """Killed, or stopped as a supervisor stops it (SIGTERM: the requests in flight are
    answered, then the process exits 0), the receiver has landed every event it
    acknowledged, once."""
    landing = tmp_path / "landing"
    env = {**os.environ, "STRIPE_WEBHOOK_SECRET": SECRET, "WEBHOOK_LANDING_DIR": str(landing),
           "WEBHOOK_PORT": str(free_port)}  # fmt: skip
    root = Path(__file__).resolve().parents[1]
    cmd = [sys.executable, "-m", "ingestion.webhooks"]
    process = subprocess.Popen(
        cmd, cwd=root, env=env, stdout=subprocess.PIPE, preexec_fn=default_sigterm
    )
    url = f"http://127.0.0.1:{free_port}{WEBHOOK_PATH}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            httpx.get(url.removesuffix(WEBHOOK_PATH) + "/healthz")
            break
        except httpx.TransportError:
            time.sleep(0.1)
    acknowledged: list[str] = []
    killed = threading.Event()

    def send(n: int) -> None:
        if killed.is_set():
            return
        body = event(n)
        headers = {"Content-Type": "application/json", "Stripe-Signature": sign(body, SECRET)}
        try:
            if httpx.post(url, content=body, headers=headers, timeout=5).status_code == 200:
                acknowledged.append(f"evt_{n:06d}")
        except httpx.TransportError:
            pass

    with ThreadPoolExecutor(8) as pool:
        futures = [pool.submit(send, n) for n in range(3000)]
        while len(acknowledged) < 200 and time.monotonic() < deadline:
            time.sleep(0.01)
        process.send_signal(stop)
        killed.set()
        returncode = process.wait(15)
        for future in futures:
            future.result()
    assert 200 <= len(acknowledged) < 3000
    assert returncode == (0 if stop == signal.SIGTERM else -signal.SIGKILL)
    # Restarted, the receiver knows what landed: every acknowledged event is there, once.
    process = subprocess.Popen(
        cmd, cwd=root, env=env, stdout=subprocess.PIPE, preexec_fn=default_sigterm
    )
    try:
        ids = landed(landing)
        assert set(acknowledged) <= set(ids)
        assert len(ids) == len(set(ids))
    finally:
        process.terminate()
        process.wait(10)


def test_the_event_map_is_explicit_and_checks_the_object():
    assert EVENT_TABLES["charge.refunded"] == ("charges", False)
    assert EVENT_TABLES["charge.dispute.created"] == ("disputes", False)
    assert EVENT_TABLES["charge.refund.updated"] == ("refunds", False)
    assert EVENT_TABLES["customer.deleted"] == ("customers", True)
    assert EVENT_TABLES["customer.subscription.deleted"] == ("subscriptions", False)
    assert EVENT_TABLES["invoice.deleted"] == ("invoices", True)
    assert "invoice.upcoming" not in EVENT_TABLES  # an invoice preview has no id
    assert "customer.discount.created" not in EVENT_TABLES
    refund = {"type": "charge.refunded", "data": {"object": {"id": "ch_1", "object": "charge"}}}
    assert object_of(refund) == ("charges", "ch_1", False)
    odd = {"type": "charge.refunded", "data": {"object": {"id": "re_1", "object": "refund"}}}
    assert object_of(odd) == (None, "re_1", False)


def test_a_landing_line_that_is_not_an_event_is_a_clear_error(tmp_path: Path):
    from ingestion.landing import read_new_lines

    path = tmp_path / "events-1-1.jsonl"
    path.write_bytes(b'{"event": {"id": "evt_1"}}\n{garbled\n{"event": {"id": "evt_3"}}\n{"ev')
    with pytest.raises(ValueError, match="line 2 after byte 0 is not a landed event"):
        read_new_lines(path, 0)
    # A torn last line (a write in progress) is left for the next load.
    path.write_bytes(b'{"event": {"id": "evt_1"}}\n{"ev')
    events, end = read_new_lines(path, 0)
    assert [e["id"] for e in events] == ["evt_1"] and end == 27


def test_an_accounts_own_endpoint_path_names_the_account_of_its_events(receiver, tmp_path: Path):
    """Several independent accounts: each endpoint's path names its account; an event that
    names its own (Connect) keeps it; a plain path leaves the first key's account."""
    import dlt

    from ingestion.landing import webhook_landing_source

    connect_event = orjson.loads(event(3))
    connect_event["account"] = "acct_connected"
    bodies = {
        receiver.url + "/acct_clinicB": event(1),
        receiver.url: event(2),
        receiver.url + "/acct_clinicC": orjson.dumps(connect_event),
    }
    for url, body in bodies.items():
        assert post(url, body, signed(body)) == 200
    assert post(receiver.url + "/not-an-account", event(4), signed(event(4))) == 404

    pipeline = dlt.pipeline(
        "landing_accounts", destination=dlt.destinations.duckdb(str(tmp_path / "w.duckdb")),
        dataset_name="raw_stripe", pipelines_dir=str(tmp_path / "dlt"),
    )  # fmt: skip
    pipeline.run(webhook_landing_source(tmp_path / "landing", "acct_first_key"))
    with pipeline.sql_client() as client:
        rows = dict(client.execute_sql("select id, account_id from raw_stripe.events"))
    assert rows == {
        "evt_000001": "acct_clinicB",
        "evt_000002": "acct_first_key",
        "evt_000003": "acct_connected",
    }


@pytest.mark.parametrize("name", ["WEBHOOK_PORT", "WEBHOOK_MAX_BODY_BYTES"])
def test_a_setting_that_is_not_a_number_is_a_clear_error(monkeypatch, name: str):
    monkeypatch.setenv("STRIPE_WEBHOOK_SECRET", SECRET)
    monkeypatch.setenv(name, "eighty")
    with pytest.raises(ConfigurationError, match=f"{name} must be a whole number"):
        ReceiverSettings.from_env()
