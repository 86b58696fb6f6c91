"""The generated account: deterministic, realistic, and its ground truth consistent."""

from __future__ import annotations

import array
import csv
import io
import json
import operator
import random
import re
import subprocess
import sys
from collections import Counter
from decimal import Decimal
from pathlib import Path

import orjson
import pytest

from sandbox import catalog
from sandbox.generator import (
    OBJECT_TYPES,
    _newest_first,
    _order_by_time,
    generate,
    generate_part,
    generate_story,
)
from sandbox.server import SandboxState
from sandbox.store import (
    ORDER_COLUMNS,
    load_ground_truth,
    major_units,
    object_files,
    write_dataset,
    write_dataset_in_parts,
    write_orders_csv,
)
from sandbox.truth import ground_truth
from tests.conftest import read_objects

FIXTURES = Path(__file__).resolve().parents[2] / "shared" / "stripe" / "fixtures3.json"


def test_same_seed_same_bytes(tmp_path: Path):
    write_dataset(generate(3, 200), tmp_path / "a")
    write_dataset(generate(3, 200), tmp_path / "b")
    for name in ("charges", "refunds", "balance_transactions", "subscriptions"):
        a = (tmp_path / "a" / "objects" / f"{name}.jsonl").read_bytes()
        assert a == (tmp_path / "b" / "objects" / f"{name}.jsonl").read_bytes()


def test_ground_truth_net_is_gross_less_refunds_disputes_fees(truth):
    for currency, t in truth["settlement"].items():
        assert t["net"] == t["gross"] - t["refunds"] - t["disputes"] - t["fees"], currency


def test_the_account_has_every_case_the_marts_must_handle(dataset: Path):
    charges = read_objects(dataset, "charges")
    refunds = read_objects(dataset, "refunds")
    disputes = read_objects(dataset, "disputes")
    subs = read_objects(dataset, "subscriptions")
    statuses = Counter(
        "failed" if c["status"] == "failed" else "uncaptured" if not c["captured"] else "ok"
        for c in charges
    )
    assert statuses["failed"] and statuses["uncaptured"] and statuses["ok"]
    assert {c["currency"] for c in charges} >= {"usd", "eur", "jpy", "cad"}
    assert any(not c["metadata"].get("resourceId") for c in charges)
    per_charge = Counter(r["charge"] for r in refunds)
    assert max(per_charge.values()) >= 2, "a charge refunded in several parts"
    assert any(c["refunded"] for c in charges) and any(
        0 < c["amount_refunded"] < c["amount"] for c in charges
    )
    by_id = {c["id"]: c for c in charges}
    assert any(r["created"] - by_id[r["charge"]]["created"] > 30 * 86400 for r in refunds)
    assert max(Counter(d["charge"] for d in disputes).values()) == 2, "a charge disputed twice"
    assert {s["status"] for s in subs} >= {"active", "trialing", "canceled", "past_due"}
    intervals = {s["items"]["data"][0]["price"]["recurring"]["interval"] for s in subs}
    assert intervals == {"month", "year"}
    invoices = read_objects(dataset, "invoices")
    billed: dict[str, set[tuple[str, int]]] = {}
    for inv in invoices:
        for line in inv["lines"]["data"]:
            plan = (line["pricing"]["price_details"]["price"], line["quantity"])
            billed.setdefault(inv["subscription"], set()).add(plan)
    assert any(len(plans) > 1 for plans in billed.values()), "a plan change"
    coupons = {c["id"]: c for c in read_objects(dataset, "coupons")}
    held = [coupons[d["source"]["coupon"]] for s in subs for d in s["discounts"]]
    assert {c["duration"] for c in held} >= {"forever"}
    assert any(c["percent_off"] for c in held) and any(c["amount_off"] for c in held)
    assert any(inv["total_discount_amounts"] for inv in invoices), "discounted invoices"


def test_fees_follow_the_pricing_and_refunds_keep_the_fee(dataset: Path):
    charges = {c["id"]: c for c in read_objects(dataset, "charges")}
    for txn in read_objects(dataset, "balance_transactions"):
        if txn["type"] == "refund":
            assert txn["fee"] == 0
        if txn["type"] != "charge":
            continue
        card_country = charges[txn["source"]]["payment_method_details"]["card"]["country"]
        bps = catalog.FEE_PERCENT_BPS[txn["currency"]]
        bps += catalog.INTERNATIONAL_CARD_BPS if card_country != "US" else 0
        bps += catalog.CURRENCY_CONVERSION_BPS if txn["exchange_rate"] else 0
        expected = (
            int(txn["amount"] * bps / 10_000 + 0.5) + catalog.FEE_FIXED_MINOR[txn["currency"]]
        )
        assert txn["fee"] == expected
        assert txn["net"] == txn["amount"] - txn["fee"]


@pytest.mark.skipif(not FIXTURES.exists(), reason="needs ../shared/stripe/fixtures3.json")
@pytest.mark.parametrize(
    "resource,list_name",
    [
        ("charge", "charges"),
        ("refund", "refunds"),
        ("customer", "customers"),
        ("balance_transaction", "balance_transactions"),
        ("payment_intent", "payment_intents"),
        ("dispute", "disputes"),
        ("subscription", "subscriptions"),
        ("invoice", "invoices"),
        ("price", "prices"),
        ("product", "products"),
        ("coupon", "coupons"),
    ],
)
def test_objects_carry_stripes_full_field_set(dataset: Path, resource: str, list_name: str):
    example = json.loads(FIXTURES.read_text())["resources"][resource]
    with open(dataset / "objects" / f"{list_name}.jsonl") as f:
        generated = json.loads(f.readline())
    # Stripe's example charge still shows the legacy `source` object; everything else matches.
    assert set(example) <= set(generated), set(example) - set(generated)


def test_the_orders_export_and_charges_hold_every_reconciliation_case(dataset: Path):
    with open(dataset / "careportals_orders.csv", newline="") as f:
        orders = {row["order_id"]: row for row in csv.DictReader(f)}
    charges = read_objects(dataset, "charges")
    paid = [c for c in charges if c["captured"]]
    by_order: dict[str, list[dict]] = {}
    for c in paid:
        by_order.setdefault(c["metadata"].get("resourceId"), []).append(c)

    def total_minor(order: dict) -> int:
        exponent = catalog.CURRENCY_EXPONENT[order["currency"].lower()]
        return round(Decimal(order["total"]) * 10**exponent)

    assert any(order_id not in by_order for order_id in orders), "an order never paid"
    assert any(oid and oid not in orders for oid in by_order), "a charge with an unknown order"
    assert None in by_order, "a charge with no order"
    assert any(oid in orders and len(cs) == 2 for oid, cs in by_order.items()), "paid in two"
    assert any(
        oid in orders and len(cs) == 1 and cs[0]["amount"] != total_minor(orders[oid])
        for oid, cs in by_order.items()
    ), "an amount mismatch"
    assert {o["currency"] for o in orders.values()} >= {"USD", "JPY"}
    assert all(o["product"] and o["category"] for o in orders.values())


def test_the_orders_export_quotes_what_the_csv_module_quotes(tmp_path: Path):
    order = {"order_id": "a1", "customer_email": "ana@example.com", "total_minor": 12345,
             "currency": "usd", "status": "paid", "created_at": 1_790_000_000,
             "product": "Lab panel", "category": "labs"}  # fmt: skip
    orders = [
        order,
        {**order, "product": "Lab panel, full"},
        {**order, "category": 'say "labs"'},
        {**order, "product": "two\nlines", "category": "cr\r"},
        {**order, "product": " spaced ", "currency": "jpy", "total_minor": 5},
    ]
    write_orders_csv(orders, tmp_path / "orders.csv")
    expected = io.StringIO(newline="")
    writer = csv.writer(expected)
    writer.writerow(ORDER_COLUMNS)
    for o in orders:
        total = major_units(o["total_minor"], o["currency"])
        at = "2026-09-21T14:13:20Z"
        writer.writerow([o["order_id"], o["customer_email"], total, o["currency"].upper(),
                         o["status"], at, o["product"], o["category"]])  # fmt: skip
    assert (tmp_path / "orders.csv").read_bytes() == expected.getvalue().encode()


def test_a_data_dir_that_cannot_be_written_is_a_clear_error(tmp_path: Path, capsys):
    from sandbox.__main__ import main

    blocked = tmp_path / "a-file"
    blocked.write_text("not a folder")
    assert main(["generate", "--charges", "50", "--data-dir", str(blocked / "data")]) == 1
    assert "Cannot write the sandbox's dataset under" in capsys.readouterr().err
    assert blocked.read_text() == "not a folder"


def _ids_and_counts(folder: Path) -> tuple[Counter, dict[str, int]]:
    ids: Counter = Counter()
    counts = {}
    for name in OBJECT_TYPES:
        objs = [json.loads(line) for path in object_files(folder, name)
                for line in path.read_text().splitlines()]  # fmt: skip
        ids.update(o["id"] for o in objs)
        counts[name] = len(objs)
    return ids, counts


def test_an_account_told_in_parts_is_one_account(tmp_path: Path):
    """A large account is told in parts, side by side in processes of their own; the files,
    the ground truth and the orders are those of the one story the sandbox tells again to
    advance time, and nothing is shared by two parts that should not be."""
    write_dataset_in_parts(7, 2_000, tmp_path / "a", parts=3)
    write_dataset_in_parts(7, 2_000, tmp_path / "b", parts=3)
    for name in OBJECT_TYPES:
        for a, b in zip(
            object_files(tmp_path / "a", name), object_files(tmp_path / "b", name), strict=True
        ):
            assert a.read_bytes() == b.read_bytes(), a.name
    folder = tmp_path / "a"
    assert json.loads((folder / "manifest.json").read_text())["parts"] == 3
    # A part's process writes each object as soon as it is final; the files hold what the
    # part's whole story serialises to once told, disputed charges included.
    for part in range(3):
        told = generate_part(7, 2_000, part, 3).out
        assert any(ch["disputed"] for ch in told["charges"])
        for name in OBJECT_TYPES:
            files = object_files(folder, name)
            if part >= len(files):
                continue  # the catalogue: written by the first part only
            lines = [orjson.dumps(o, option=orjson.OPT_APPEND_NEWLINE) for o in told[name]]
            assert files[part].read_bytes() == b"".join(lines), files[part].name
    assert sorted(p.name for p in folder.iterdir() if p.name.startswith(".")) == []

    story = generate_story(7, 2_000, parts=3)
    truth = load_ground_truth(folder)
    assert truth == ground_truth(story.data)
    ids, counts = _ids_and_counts(folder)
    assert max(ids.values()) == 1
    assert counts == {name: len(story.out[name]) for name in OBJECT_TYPES}
    assert counts == {name: truth["counts"][name] for name in OBJECT_TYPES}
    assert len(object_files(folder, "charges")) == 3
    assert len(object_files(folder, "prices")) == 1
    emails = Counter(c.obj["email"] for c in story.customers)
    assert emails.most_common(1)[0][1] == 1
    write_orders_csv(story.data.orders, tmp_path / "orders.csv")
    assert (tmp_path / "orders.csv").read_bytes() == (
        folder / "careportals_orders.csv"
    ).read_bytes()

    # The sandbox serves every part, and time advancing makes ids no part holds.
    state = SandboxState(folder)
    assert len(state.collections["charges"].keys) == counts["charges"]
    state.advance(7_200, 20)
    served = {k[1] for name in OBJECT_TYPES for k in state.collections[name].keys}
    assert len(served) == sum(len(state.collections[n].keys) for n in OBJECT_TYPES) > len(ids)
    assert load_ground_truth(folder)["counts"]["charges"] > counts["charges"]


def test_a_part_that_fails_leaves_nothing_and_says_so(tmp_path: Path, monkeypatch, capsys):
    from sandbox.__main__ import main

    # Both parts fail; whichever the generator sees end first is the one it names.
    monkeypatch.setattr("sandbox.store.sys.executable", "/bin/false")
    with pytest.raises(RuntimeError, match=r"part [12] of 2 .* failed \(exit code 1\)"):
        write_dataset_in_parts(7, 2_000, tmp_path / "data", parts=2)
    assert list(tmp_path.iterdir()) == []
    # From the command line (a large account: told in parts), a clear error and no folder.
    assert main(["generate", "--charges", "600000", "--data-dir", str(tmp_path / "cli")]) == 1
    err = capsys.readouterr().err
    assert re.search(r"Cannot generate the sandbox's dataset: generating part [12] of 2", err)
    assert list((tmp_path / "cli").iterdir()) == []


def test_a_part_that_fails_says_why_even_when_the_disk_is_full(tmp_path: Path, monkeypatch):
    # What a part prints is read from its pipe as it runs, not from a file on the disk that
    # may be the full one; a long output does not stall the part, and its end is reported.
    noisy = tmp_path / "noisy-python"
    noisy.write_text(
        "#!/bin/sh\nhead -c 300000 /dev/zero | tr '\\0' x\necho\necho the reason\nexit 3\n"
    )
    noisy.chmod(0o755)
    monkeypatch.setattr("sandbox.store.sys.executable", str(noisy))
    with pytest.raises(RuntimeError, match=r"failed \(exit code 3\): x{100,}\nthe reason\Z"):
        write_dataset_in_parts(7, 2_000, tmp_path / "data", parts=2)
    assert not (tmp_path / "data").exists()
    monkeypatch.undo()
    # What the system refuses a part (no space left, a folder gone) comes as one line.
    gone = tmp_path / "gone" / ".tmp-staging"
    done = subprocess.run(
        [sys.executable, "-m", "sandbox.part", str(gone), "7", "2000", "0", "2"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 1
    assert done.stderr == f"No such file or directory (writing the dataset in {gone.parent})\n"


@pytest.mark.parametrize("descending", [True, False])
def test_the_story_is_ordered_as_pythons_sort_orders_it(descending):
    # Many rows share a second, a few share a second and a key: the order must be the one
    # `list.sort` gives (the files' order since the first dataset), ties in their order.
    rng = random.Random(7)
    start = 1_700_000_000
    rows = [
        {"created": rng.randrange(start, start + 40), "id": f"ch_{rng.randrange(60):02d}", "n": n}
        for n in range(2_000)
    ]
    expected = sorted(rows, key=operator.itemgetter("created", "id"), reverse=descending)
    _order_by_time(rows, "created", "id", descending=descending)
    assert [r["n"] for r in rows] == [r["n"] for r in expected]
    for few in ([], [{"created": 1, "id": "a"}]):
        _order_by_time(few, "created", "id", descending=descending)
    if descending:
        # A part's written lists are put in order by their times and ids alone, in Arrow.
        rows.sort(key=operator.itemgetter("n"))
        times = array.array("q", [r["created"] for r in rows])
        order = _newest_first(times, [r["id"] for r in rows]).to_pylist()
        assert [rows[i]["n"] for i in order] == [r["n"] for r in expected]
