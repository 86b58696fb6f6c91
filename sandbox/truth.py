"""Ground truth of a generated account, computed straight from its objects.

Tests compare the warehouse against these numbers, so they are derived here in plain Python,
independently of the pipeline's SQL.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections import defaultdict
from decimal import ROUND_HALF_UP, Decimal
from itertools import pairwise
from typing import Any

from sandbox.generator import CATALOG_LISTS, OBJECT_TYPES, Dataset

_MRR_PLACES = Decimal("0.0001")


def _money() -> dict[str, int]:
    return {"gross": 0, "refunds": 0, "disputes": 0, "fees": 0, "net": 0}


def _month(unix_seconds: int) -> str:
    return utc_date(unix_seconds // 86_400)[:7]


@functools.cache
def utc_date(day: int) -> str:
    """The UTC date ("2026-11-01") of a day counted from the epoch: looked up once per day,
    not once per object (a 1M-charge account has millions of timestamps)."""
    return dt.datetime.fromtimestamp(day * 86_400, dt.UTC).strftime("%Y-%m-%d")


def _month_starts(first: int, last: int) -> list[dt.datetime]:
    """UTC month starts from the month holding `first` to the one holding `last`."""
    month = dt.datetime.fromtimestamp(first, dt.UTC).replace(day=1, hour=0, minute=0, second=0)
    months = []
    while month.timestamp() <= last:
        months.append(month)
        month = month.replace(year=month.year + month.month // 12, month=month.month % 12 + 1)
    return months


def _mrr_of(phase: dict[str, Any]) -> Decimal:
    """A plan phase's MRR less its forever discount, each rounded to 1/10000 of a minor unit."""
    months = Decimal(phase["months_per_interval"])
    recurring = Decimal(phase["recurring_minor"])
    mrr = (recurring / months).quantize(_MRR_PLACES, ROUND_HALF_UP)
    if phase["percent_off"] is not None:
        off = recurring * Decimal(str(phase["percent_off"])) / 100 / months
        mrr -= off.quantize(_MRR_PLACES, ROUND_HALF_UP)
    if phase["amount_off"] is not None:
        off = min(Decimal(phase["amount_off"]), recurring) / months
        mrr -= off.quantize(_MRR_PLACES, ROUND_HALF_UP)
    return mrr


def mrr_monthly(schedule: list[dict[str, Any]], now: int) -> dict[str, dict[str, str]]:
    """MRR per currency and UTC month, measured at the month's end, for every month that ended
    before the sandbox's `now`, from the generator's own billing schedule (not the objects)."""
    if not schedule:
        return {}
    totals: dict[str, dict[str, Decimal]] = defaultdict(dict)
    months = _month_starts(min(p["starts"] for p in schedule), now)
    # Each phase's MRR once, not once per month it is live in.
    phases = [(p["starts"], p["ends"], p["currency"], _mrr_of(p)) for p in schedule]
    # The last month (the current one) has not ended: it is not measured.
    for month, month_end in pairwise(months):
        measured_at = month_end.timestamp()
        key = month.strftime("%Y-%m")
        for starts, ends, currency, mrr in phases:
            if starts < measured_at and (ends is None or measured_at <= ends):
                by_month = totals[currency]
                by_month[key] = by_month.get(key, Decimal(0)) + mrr
    return {
        currency: {m: str(v) for m, v in sorted(by_month.items()) if v}
        for currency, by_month in sorted(totals.items())
    }


def ground_truth(data: Dataset) -> dict[str, Any]:
    """Counts and per-currency totals (minor units) of a generated account."""
    return ground_truth_of(data, [sums(data)], data.mrr_schedule)


def sums(data: Dataset) -> dict[str, Any]:
    """The additive part of the ground truth (counts and totals, nested dicts of integers) of
    an account or of one part of its story: the parts' sums add up to the account's."""
    added = Sums()
    for name in OBJECT_TYPES:
        added.add(name, data.objects[name])
    return added.result(orders=len(data.orders))


# A payment intent's status as the payments ground truth counts it.
_PAYMENT_OUTCOME = {"succeeded": "succeeded", "requires_payment_method": "failed",
                    "requires_capture": "uncaptured"}  # fmt: skip


class Sums:
    """`sums`, added up list by list as objects are made (`add`): a part of a large account
    counts its objects while they are fresh (sandbox.generator.Written). Nothing it counts
    changes once an object is added."""

    def __init__(self) -> None:
        self.counts = dict.fromkeys(OBJECT_TYPES, 0)
        self.settlement: dict[str, dict[str, int]] = defaultdict(_money)
        self.presentment: dict[str, dict[str, int]] = defaultdict(
            lambda: {
                "succeeded_charges": 0,
                "gross": 0,
                "failed_charges": 0,
                "uncaptured_charges": 0,
                "refunds": 0,
                "refunded": 0,
            }
        )
        self.payments: dict[str, dict[str, int]] = defaultdict(
            lambda: dict.fromkeys(("succeeded", "failed", "uncaptured", "processed"), 0)
        )
        # Per settlement currency and UTC month: gross, refunds in the period view (the
        # refund's month) and the cohort view (the refunded charge's month), disputes, fees
        # and net (the months in order only once `ground_truth_of` has them).
        self.months: dict[str, dict[str, dict[str, int]]] = defaultdict(
            lambda: defaultdict(
                lambda: dict.fromkeys(
                    ("gross", "refunds_period", "refunds_cohort", "disputes", "fees", "net"), 0
                )
            )
        )
        # A refund's cohort is its charge's month: looked up once every list is added.
        self.charge_created: dict[str, int] = {}
        self.refund_charge: dict[str, str] = {}
        self.refunded: list[tuple[str, str, int]] = []  # (currency, refund id, amount)

    def add(self, name: str, objs: list[dict[str, Any]]) -> None:
        self.counts[name] += len(objs)
        if name == "balance_transactions":
            self._transactions(objs)
        elif name == "charges":
            for ch in objs:
                self.charge_created[ch["id"]] = ch["created"]
                totals = self.presentment[ch["currency"]]
                if ch["status"] == "failed":
                    totals["failed_charges"] += 1
                elif not ch["captured"]:
                    totals["uncaptured_charges"] += 1
                else:
                    totals["succeeded_charges"] += 1
                    totals["gross"] += ch["amount"]
        elif name == "refunds":
            for re in objs:
                self.refund_charge[re["id"]] = re["charge"]
                if re["status"] == "succeeded":
                    self.presentment[re["currency"]]["refunds"] += 1
                    self.presentment[re["currency"]]["refunded"] += re["amount"]
        elif name == "payment_intents":
            for pi in objs:
                totals = self.payments[pi["currency"]]
                totals[_PAYMENT_OUTCOME[pi["status"]]] += 1
                totals["processed"] += pi["amount_received"]

    def _transactions(self, objs: list[dict[str, Any]]) -> None:
        for txn in objs:
            totals = self.settlement[txn["currency"]]
            month = self.months[txn["currency"]][_month(txn["created"])]
            if txn["type"] == "charge":
                totals["gross"] += txn["amount"]
                month["gross"] += txn["amount"]
            elif txn["type"] == "refund":
                totals["refunds"] -= txn["amount"]
                month["refunds_period"] -= txn["amount"]
                self.refunded.append((txn["currency"], txn["source"], txn["amount"]))
            elif txn["reporting_category"] in ("dispute", "dispute_reversal"):
                totals["disputes"] -= txn["amount"]
                month["disputes"] -= txn["amount"]
            totals["fees"] += txn["fee"]
            totals["net"] += txn["net"]
            month["fees"] += txn["fee"]
            month["net"] += txn["net"]

    def result(self, orders: int) -> dict[str, Any]:
        for currency, refund, amount in self.refunded:
            charge_month = _month(self.charge_created[self.refund_charge[refund]])
            self.months[currency][charge_month]["refunds_cohort"] -= amount
        self.refunded = []
        return {
            "counts": {**self.counts, "orders": orders},
            "settlement": dict(self.settlement),
            "settlement_monthly": {
                currency: {m: dict(v) for m, v in by_month.items()}
                for currency, by_month in self.months.items()
            },
            "presentment": dict(self.presentment),
            "payments": dict(self.payments),
        }


def _add(total: dict[str, Any], more: dict[str, Any]) -> None:
    for key, value in more.items():
        if isinstance(value, dict):
            _add(total.setdefault(key, {}), value)
        else:
            total[key] = total.get(key, 0) + value


def _in_order(by_key: dict[str, Any]) -> dict[str, Any]:
    return dict(sorted(by_key.items()))


def ground_truth_of(
    data: Dataset, parts: list[dict[str, Any]], mrr_schedule: list[dict[str, Any]]
) -> dict[str, Any]:
    """The ground truth of the account `data` from the `sums` of its story's parts (a part
    counts its own objects, the catalogue's included: the catalogue is counted once) and the
    whole billing schedule."""
    total: dict[str, Any] = {}
    for part in parts:
        _add(total, part)
    for name in CATALOG_LISTS:
        total["counts"][name] = parts[0]["counts"][name]
    return {
        "seed": data.seed,
        "charges_requested": data.charges_requested,
        "account_id": data.account["id"],
        "now": data.now,
        "deleted_customers": sorted(data.deleted_customers),
        "counts": total["counts"],
        "settlement": _in_order(total["settlement"]),
        "settlement_monthly": {
            currency: _in_order(months)
            for currency, months in _in_order(total["settlement_monthly"]).items()
        },
        "presentment": _in_order(total["presentment"]),
        "payments": _in_order(total["payments"]),
        "mrr_monthly": mrr_monthly(mrr_schedule, data.now),
    }
