"""The sandbox answers like Stripe's API: list semantics, filters, auth and errors."""

from __future__ import annotations

import shutil
from pathlib import Path

import httpx
import orjson
import pytest

from sandbox.server import SANDBOX_API_KEY, SandboxState
from tests.conftest import read_objects

AUTH = {"Authorization": f"Bearer {SANDBOX_API_KEY}"}


def get(sandbox, path: str, params: dict | None = None, headers: dict | None = None):
    return httpx.get(
        f"{sandbox.url}{path}", params=params, headers=AUTH if headers is None else headers
    )


def all_ids(sandbox, name: str, params: dict | None = None) -> list[str]:
    ids, query = [], {"limit": 100, **(params or {})}
    while True:
        page = get(sandbox, f"/v1/{name}", query).json()
        ids += [o["id"] for o in page["data"]]
        if not page["has_more"]:
            return ids
        query["starting_after"] = page["data"][-1]["id"]


def test_lists_page_newest_first_to_the_end(sandbox, truth):
    ids = all_ids(sandbox, "charges")
    assert len(ids) == len(set(ids)) == truth["counts"]["charges"]
    created = [get(sandbox, f"/v1/charges/{i}").json()["created"] for i in ids[:50]]
    assert created == sorted(created, reverse=True)


def test_limit_defaults_to_10_and_is_bounded(sandbox):
    page = get(sandbox, "/v1/customers").json()
    assert page["object"] == "list" and len(page["data"]) == 10 and page["has_more"] is True
    for bad in (0, 101):
        answer = get(sandbox, "/v1/customers", {"limit": bad})
        assert answer.status_code == 400
        assert answer.json()["error"]["param"] == "limit"


def test_ending_before_pages_back_towards_newer_objects(sandbox):
    first = get(sandbox, "/v1/charges", {"limit": 5}).json()["data"]
    second = get(sandbox, "/v1/charges", {"limit": 5, "starting_after": first[-1]["id"]}).json()
    back = get(sandbox, "/v1/charges", {"limit": 5, "ending_before": second["data"][0]["id"]})
    assert [o["id"] for o in back.json()["data"]] == [o["id"] for o in first]
    assert back.json()["has_more"] is False


def test_both_cursors_at_once_is_a_400(sandbox):
    some = get(sandbox, "/v1/charges", {"limit": 1}).json()["data"][0]["id"]
    answer = get(sandbox, "/v1/charges", {"starting_after": some, "ending_before": some})
    assert answer.status_code == 400


def test_created_filters(sandbox, dataset: Path):
    # What each filter keeps, from the generated files (not one request per charge).
    charges = read_objects(dataset, "charges")
    pivot = sorted(c["created"] for c in charges)[len(charges) // 2]
    for op, keep in {
        "gt": lambda c: c > pivot,
        "gte": lambda c: c >= pivot,
        "lt": lambda c: c < pivot,
        "lte": lambda c: c <= pivot,
    }.items():
        got = set(all_ids(sandbox, "charges", {f"created[{op}]": pivot}))
        assert got == {c["id"] for c in charges if keep(c["created"])}, op


def test_subscriptions_omit_canceled_unless_status_all(sandbox, dataset: Path):
    subs = read_objects(dataset, "subscriptions")
    canceled = {s["id"] for s in subs if s["status"] == "canceled"}
    assert canceled, "the generator makes canceled subscriptions"
    assert set(all_ids(sandbox, "subscriptions")) == {s["id"] for s in subs} - canceled
    assert set(all_ids(sandbox, "subscriptions", {"status": "all"})) == {s["id"] for s in subs}


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer sk_test_wrong_key_1234567890"}],
    ids=["no key", "wrong key"],
)
def test_bad_key_gets_401_in_stripes_error_envelope(sandbox, headers):
    answer = get(sandbox, "/v1/charges", headers=headers)
    assert answer.status_code == 401
    error = answer.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert "sk_test_wrong_key_1234567890" not in answer.text


def test_unknown_object_is_a_404_resource_missing(sandbox):
    answer = get(sandbox, "/v1/charges/ch_doesnotexist")
    assert answer.status_code == 404
    assert answer.json()["error"]["code"] == "resource_missing"


def test_account_endpoint(sandbox, truth):
    assert get(sandbox, "/v1/account").json()["id"] == truth["account_id"]


def test_subscription_discounts_are_ids_unless_expanded(sandbox):
    query = {"limit": 100, "status": "all"}
    plain = get(sandbox, "/v1/subscriptions", query).json()["data"]
    held = [s for s in plain if s["discounts"]]
    assert held and all(isinstance(d, str) for s in held for d in s["discounts"])
    expanded = get(sandbox, "/v1/subscriptions", {**query, "expand[]": "data.discounts"}).json()
    discounts = {d["id"]: d for s in expanded["data"] for d in s["discounts"]}
    assert set(discounts) == {d for s in held for d in s["discounts"]}
    assert all(d["object"] == "discount" and d["source"]["coupon"] for d in discounts.values())
    one = get(sandbox, f"/v1/subscriptions/{held[0]['id']}", {"expand[]": "discounts"}).json()
    assert one["discounts"][0]["object"] == "discount"


def _every_body(state, name: str, expand: list[str] | None = None) -> dict[str, bytes]:
    """Every object of a list as the sandbox answers it, by id."""
    bodies, query = {}, {"limit": "100"}
    while True:
        page = orjson.loads(state.collections[name].list_page(query, f"/v1/{name}", expand))
        for obj in page["data"]:
            bodies[obj["id"]] = orjson.dumps(obj)
        if not page["has_more"]:
            return bodies
        query["starting_after"] = page["data"][-1]["id"]


def test_after_time_advances_the_account_is_served_from_its_live_objects(
    dataset: Path, tmp_path: Path
):
    # The first advance tells the story again and serves its objects instead of the files'
    # bodies: every object the advance did not change must read exactly as before.
    folder = tmp_path / "account"
    shutil.copytree(dataset, folder)
    state = SandboxState(folder)
    names = ["charges", "customers", "invoices", "subscriptions", "balance_transactions"]
    before = {name: _every_body(state, name) for name in names}
    before_expanded = _every_body(state, "subscriptions", ["data.discounts"])
    result = state.advance(2 * 86_400, 30)
    events = orjson.loads(state.collections["events"].list_page({"limit": "100"}, "/v1/events"))
    changed = {e["data"]["object"]["id"] for e in events["data"]}
    assert result["events"] == len(events["data"]) and changed
    for name in names:
        after = _every_body(state, name)
        kept = {i: body for i, body in after.items() if i in before[name] and i not in changed}
        assert kept == {i: b for i, b in before[name].items() if i in kept}, name
        assert len(kept) >= len(before[name]) - len(changed) - 1, name
    expanded = _every_body(state, "subscriptions", ["data.discounts"])
    assert {i: b for i, b in expanded.items() if i not in changed} == {
        i: b for i, b in before_expanded.items() if i not in changed
    }
    # What an event changed reads as the event left it.
    refunded = [e["data"]["object"] for e in events["data"] if e["type"] == "charge.refunded"]
    assert refunded
    for charge in refunded:
        live = orjson.loads(state.collections["charges"].retrieve(charge["id"]))
        assert live["amount_refunded"] == charge["amount_refunded"] > 0
