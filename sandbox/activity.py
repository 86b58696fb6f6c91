"""Time advancing in the sandbox: new activity after the generated history, and its events.

`advance(story, step, seconds, changes)` moves the account's clock forward and makes about
`changes` changes in that window, the kinds a change-capture pipeline must not miss: new paid
orders, refunds of old charges (one of them about a year old when the history has one), a
dispute, subscriptions set to cancel and canceled, customers renamed and deleted. Each change
emits the Stripe event Stripe would send, with the object as it is after the change and, on
`*.updated`, `data.previous_attributes`. Everything is derived from the seed and the step:
replaying the same steps gives the same account and the same events.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass
from typing import Any

import orjson

from sandbox import catalog
from sandbox.generator import DAY, _Story
from sandbox.objects import API_VERSION

# The share of a step's changes each kind takes (each kind happens at least once).
_MIX = {
    "orders": 0.40,
    "refunds": 0.20,
    "disputes": 0.05,
    "subscription_updates": 0.10,
    "subscription_cancels": 0.10,
    "customer_updates": 0.10,
    "customer_deletes": 0.05,
}
# The event that announces a new object of each list (None: Stripe sends none).
_CREATED_EVENTS: dict[str, tuple[str, ...] | None] = {
    "customers": ("customer.created",),
    "payment_intents": ("payment_intent.created",),
    "refunds": ("refund.created",),
    "disputes": ("charge.dispute.created",),
    "balance_transactions": None,
    "invoices": ("invoice.created",),
}
_PI_OUTCOME_EVENTS = {
    "succeeded": "payment_intent.succeeded",
    "requires_payment_method": "payment_intent.payment_failed",
    "requires_capture": "payment_intent.amount_capturable_updated",
}
MIN_SECONDS = 2 * 3600


@dataclass
class Event:
    """One emitted event: its id, type, time and JSON body."""

    id: str
    type: str
    created: int
    body: bytes


@dataclass
class StepResult:
    now: int
    events: list[Event]
    changed: dict[str, set[str]]  # list name -> ids of new or changed objects


def _event_id(seed: int, step: int, n: int) -> str:
    digest = hashlib.blake2b(f"{seed}:evt:{step}:{n}".encode(), digest_size=18).hexdigest()
    return f"evt_{digest[:24]}"


def advance(story: _Story, step: int, seconds: int, changes: int) -> StepResult:
    """Advance the story's clock by `seconds` with about `changes` changes (see module doc)."""
    if seconds < MIN_SECONDS:
        raise ValueError(f"advance by at least {MIN_SECONDS} seconds (two hours)")
    saved_rng = story.rng
    story.rng = rng = random.Random(f"{story.seed}:advance:{step}")
    start = story.now
    story.now = end = start + seconds
    data = story.data
    data.now = end
    emitted: list[tuple[int, str, str, dict[str, Any], dict[str, Any] | None]] = []
    changed: dict[str, set[str]] = {}

    def emit(created: int, type_: str, list_name: str, obj: dict, previous: dict | None = None):
        emitted.append((created, type_, list_name, orjson.loads(orjson.dumps(obj)), previous))
        changed.setdefault(list_name, set()).add(obj["id"])

    def moment() -> int:
        return rng.randint(start + 1, end - 1)

    counts = {kind: max(1, round(changes * share)) for kind, share in _MIX.items()}
    live = [c for c in story.customers if c.id not in data.deleted_customers]
    by_customer = {c.id: c for c in story.customers}
    # Objects changed in this step are not changed twice, so each event shows the object
    # exactly as the change left it.
    touched: set[str] = set()

    # New orders and their payments (refunds of new charges come in later steps).
    before = {name: len(objs) for name, objs in story.out.items()}
    orders_before = len(data.orders)
    story.one_off_orders(
        counts["orders"], window=(start + 1, max(start + 1, end - 3700)), customers=live,
        refunds=False,
    )  # fmt: skip
    for name, objs in story.out.items():
        for obj in objs[before[name] :]:
            touched.add(obj["id"])
            if name == "charges":
                kind = "charge.failed" if obj["status"] == "failed" else "charge.succeeded"
                emit(obj["created"], kind, name, obj)
            elif name == "payment_intents":
                emit(obj["created"], "payment_intent.created", name, obj)
                emit(obj["created"], _PI_OUTCOME_EVENTS[obj["status"]], name, obj)
            elif _CREATED_EVENTS.get(name):
                for kind in _CREATED_EVENTS[name] or ():
                    emit(obj["created"], kind, name, obj)
            else:
                changed.setdefault(name, set()).add(obj["id"])
    for order in data.orders[orders_before:]:
        changed.setdefault("orders", set()).add(order["order_id"])

    # Refunds of old charges: one about a year old first, then any refundable charge.
    refundable = [
        ch
        for ch in story.out["charges"]
        if ch["captured"] and not ch["disputed"] and ch["amount_refunded"] < ch["amount"]
        and ch["id"] not in touched and ch["customer"] in by_customer
    ]  # fmt: skip
    refundable.sort(key=lambda ch: (ch["created"], ch["id"]))
    year_old = [ch for ch in refundable if ch["created"] <= start - 300 * DAY]
    picks = []
    if year_old:
        picks.append(year_old[rng.randrange(len(year_old))])
    pool = [ch for ch in refundable if not picks or ch is not picks[0]]
    picks += rng.sample(pool, min(len(pool), counts["refunds"] - len(picks)))
    for ch in picks:
        touched.add(ch["id"])
        when = moment()
        remaining = ch["amount"] - ch["amount_refunded"]
        # Three-decimal currencies refund in tens, as in the history.
        unit = 10 if catalog.CURRENCY_EXPONENT[ch["currency"]] == 3 else 1
        amount = remaining if rng.random() < 0.6 else max(unit, remaining // 2 // unit * unit)
        previous = {"amount_refunded": ch["amount_refunded"], "refunded": ch["refunded"]}
        story.refund(ch, by_customer[ch["customer"]], amount, when)
        refund = story.out["refunds"][-1]
        changed.setdefault("balance_transactions", set()).add(refund["balance_transaction"])
        emit(when, "refund.created", "refunds", refund)
        emit(when, "charge.refunded", "charges", ch, previous)

    # A dispute on a charge not refunded.
    disputable = [
        ch for ch in story.out["charges"]
        if ch["captured"] and not ch["disputed"] and ch["amount_refunded"] == 0
        and ch["id"] not in touched
    ]  # fmt: skip
    for ch in rng.sample(disputable, min(len(disputable), counts["disputes"])):
        touched.add(ch["id"])
        when = moment()
        bts_before = len(story.out["balance_transactions"])
        story.dispute(ch, when, "needs_response")
        for txn in story.out["balance_transactions"][bts_before:]:
            changed.setdefault("balance_transactions", set()).add(txn["id"])
        emit(when, "charge.dispute.created", "disputes", story.out["disputes"][-1])
        emit(when, "charge.updated", "charges", ch, {"disputed": False})

    # Subscriptions: some set to cancel at the period's end, some canceled now.
    running = [
        sub for sub in story.out["subscriptions"]
        if sub["status"] in ("active", "past_due", "trialing") and not sub["cancel_at_period_end"]
    ]  # fmt: skip
    running.sort(key=lambda sub: sub["id"])
    chosen = rng.sample(
        running,
        min(len(running), counts["subscription_updates"] + counts["subscription_cancels"]),
    )
    for i, sub in enumerate(chosen):
        touched.add(sub["id"])
        when = moment()
        if i < counts["subscription_updates"]:
            item = sub["items"]["data"][0]
            previous = {"cancel_at_period_end": False, "cancel_at": None}
            sub["cancel_at_period_end"] = True
            sub["cancel_at"] = item["current_period_end"]
            emit(when, "customer.subscription.updated", "subscriptions", sub, previous)
            continue
        sub["status"] = "canceled"
        sub["canceled_at"] = sub["ended_at"] = when
        sub["cancellation_details"] = {
            "comment": None, "feedback": None, "reason": "cancellation_requested"
        }  # fmt: skip
        for phase in data.mrr_schedule:
            ends = phase["ends"]
            if phase["subscription"] == sub["id"] and (ends is None or ends > when):
                phase["ends"] = when
        emit(when, "customer.subscription.deleted", "subscriptions", sub)

    # Customers renamed, and customers without subscriptions deleted.
    subscribers = {sub["customer"] for sub in story.out["subscriptions"]}
    candidates = sorted((c for c in live if c.id not in touched), key=lambda c: c.id)
    renamed = rng.sample(candidates, min(len(candidates), counts["customer_updates"]))
    for cus in renamed:
        touched.add(cus.id)
        previous = {"name": cus.obj["name"]}
        cus.obj["name"] = f"{cus.obj['name']} {rng.choice(('Jr.', 'Sr.', 'II'))}"
        emit(moment(), "customer.updated", "customers", cus.obj, previous)
    deletable = [c for c in candidates if c.id not in subscribers and c.id not in touched]
    for cus in rng.sample(deletable, min(len(deletable), counts["customer_deletes"])):
        data.deleted_customers.add(cus.id)
        emit(moment(), "customer.deleted", "customers", cus.obj)

    story.rng = saved_rng
    emitted.sort(key=lambda e: e[0])
    events = []
    for n, (created, type_, _list_name, obj, previous) in enumerate(emitted):
        event_id = _event_id(story.seed, step, n)
        payload: dict[str, Any] = {"object": obj}
        if previous is not None:
            payload["previous_attributes"] = previous
        body = {
            "id": event_id,
            "object": "event",
            "account": None,
            "api_version": API_VERSION,
            "context": None,
            "created": created,
            "data": payload,
            "livemode": False,
            "pending_webhooks": 0,
            "request": {"id": None, "idempotency_key": None},
            "type": type_,
        }
        events.append(Event(event_id, type_, created, orjson.dumps(body)))
    return StepResult(now=end, events=events, changed=changed)
