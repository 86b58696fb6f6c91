"""Stripe events: which object each event type changes, and events as raw rows.

Both the Events feed (`/v1/events`) and the webhook landing fill one raw table, `events`,
merged on `(account_id, id)`, so an event seen both ways is kept once. Each row carries the
raw table of the object the event changes (`object_table`), the object's id, whether the
event deletes the object, and the object as the event shows it; dbt applies the latest
state of each object over the listed one (see the `stripe_object_state` macro).

The map below is explicit: an event type not in it is kept in the raw table but changes no
object (its `object_table` is null), and the load reports it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Iterator
from typing import Any

import orjson
import pyarrow as pa

# event type -> (raw table of the object it carries, whether it deletes that object)
_SUFFIXES: dict[str, tuple[str, tuple[str, ...], tuple[str, ...]]] = {
    # prefix: (table, event suffixes that update, suffixes that delete)
    "charge": (
        "charges",
        ("captured", "expired", "failed", "pending", "refunded", "succeeded", "updated"),
        (),
    ),
    "charge.dispute": (
        "disputes",
        ("closed", "created", "funds_reinstated", "funds_withdrawn", "updated"),
        (),
    ),
    "charge.refund": ("refunds", ("updated",), ()),
    "refund": ("refunds", ("created", "failed", "updated"), ()),
    "customer": ("customers", ("created", "updated"), ("deleted",)),
    # A canceled subscription is `customer.subscription.deleted`, but the object remains
    # (status `canceled`): it is an update, not a deletion.
    "customer.subscription": (
        "subscriptions",
        (
            "created",
            "deleted",
            "paused",
            "pending_update_applied",
            "pending_update_expired",
            "resumed",
            "trial_will_end",
            "updated",
        ),
        (),
    ),
    "invoice": (
        "invoices",
        (
            "created",
            "finalization_failed",
            "finalized",
            "marked_uncollectible",
            "overdue",
            "paid",
            "payment_action_required",
            "payment_failed",
            "payment_succeeded",
            "sent",
            "updated",
            "voided",
            "will_be_due",
        ),
        ("deleted",),
    ),
    "payment_intent": (
        "payment_intents",
        (
            "amount_capturable_updated",
            "canceled",
            "created",
            "partially_funded",
            "payment_failed",
            "processing",
            "requires_action",
            "succeeded",
        ),
        (),
    ),
    "product": ("products", ("created", "updated"), ("deleted",)),
    "price": ("prices", ("created", "updated"), ("deleted",)),
    "coupon": ("coupons", ("created", "updated"), ("deleted",)),
}
EVENT_TABLES: dict[str, tuple[str, bool]] = {
    f"{prefix}.{suffix}": (table, suffix in deleting)
    for prefix, (table, updating, deleting) in _SUFFIXES.items()
    for suffix in updating + deleting
}
# The Stripe object name each raw table holds (an event whose object is another is not applied).
TABLE_OBJECTS = {
    "charges": "charge",
    "disputes": "dispute",
    "refunds": "refund",
    "customers": "customer",
    "subscriptions": "subscription",
    "invoices": "invoice",
    "payment_intents": "payment_intent",
    "products": "product",
    "prices": "price",
    "coupons": "coupon",
}
# Tables whose objects change after they are created (balance transactions never do).
MUTABLE_LISTS = tuple(TABLE_OBJECTS)

# The merge key of every raw Stripe table. An object is `(account_id, id)`; `created` never
# changes for an id, so adding it keeps the same rows, and gives the merge's delete a range
# that DuckDB's zone maps prune: the staged rows of a run are mostly recent, and the delete
# reads only the row groups of their seconds instead of every key of the table (at 1M
# charges, 51-106 ms for one list's delete against 3-4 ms).
RAW_KEY = ("account_id", "id", "created")

EVENTS_SCHEMA = pa.schema(
    [
        pa.field("account_id", pa.string(), nullable=False),
        pa.field("id", pa.string(), nullable=False),
        pa.field("type", pa.string(), nullable=False),
        pa.field("created", pa.int64(), nullable=False),
        pa.field("object_table", pa.string()),
        pa.field("object_id", pa.string()),
        pa.field("object_deleted", pa.bool_(), nullable=False),
        pa.field("livemode", pa.bool_()),
        pa.field("payload", pa.string(), nullable=False),
        pa.field("object_payload", pa.string()),
        pa.field("source", pa.string(), nullable=False),
        pa.field("extracted_at", pa.timestamp("us", tz="UTC"), nullable=False),
    ]
)
EVENTS_COLUMNS = {
    "payload": {"data_type": "text", "nullable": False},
    "object_payload": {"data_type": "text", "nullable": True},
    "object_table": {"data_type": "text", "nullable": True},
    "object_id": {"data_type": "text", "nullable": True},
}


class MalformedEventError(ValueError):
    """An event without the fields every Stripe event has."""


def object_of(event: dict[str, Any]) -> tuple[str | None, str | None, bool]:
    """(raw table, object id, deletes) of the object an event changes; (None, id, False) for
    a type the map leaves alone or an object that is not the mapped kind."""
    obj = (event.get("data") or {}).get("object") or {}
    object_id = obj.get("id") if isinstance(obj, dict) else None
    mapped = EVENT_TABLES.get(event.get("type", ""))
    if mapped is None or not object_id or obj.get("object") != TABLE_OBJECTS[mapped[0]]:
        return None, object_id, False
    return mapped[0], object_id, mapped[1]


def event_batches(
    events: Iterable[dict[str, Any]],
    account_id: str | None,
    source: str,
    unmapped: dict[str, int] | None = None,
    batch_rows: int = 5_000,
) -> Iterator[pa.Table]:
    """Arrow tables of event rows. `account_id` is used unless the event names its own
    connected account. Types the map leaves alone are counted in `unmapped`."""
    columns: dict[str, list[Any]] = {name: [] for name in EVENTS_SCHEMA.names}
    extracted_at = dt.datetime.now(dt.UTC)

    def flush() -> pa.Table:
        table = pa.Table.from_pydict(columns, schema=EVENTS_SCHEMA)
        for values in columns.values():
            values.clear()
        return table

    for event in events:
        if not isinstance(event, dict) or not all(
            isinstance(event.get(k), t) for k, t in (("id", str), ("type", str), ("created", int))
        ):
            raise MalformedEventError("an event lacks its id, type or created time")
        table, object_id, deleted = object_of(event)
        if table is None and unmapped is not None:
            unmapped[event["type"]] = unmapped.get(event["type"], 0) + 1
        obj = (event.get("data") or {}).get("object")
        columns["account_id"].append(event.get("account") or account_id)
        columns["id"].append(event["id"])
        columns["type"].append(event["type"])
        columns["created"].append(event["created"])
        columns["object_table"].append(table)
        columns["object_id"].append(object_id)
        columns["object_deleted"].append(deleted)
        columns["livemode"].append(event.get("livemode"))
        columns["payload"].append(orjson.dumps(event).decode())
        columns["object_payload"].append(orjson.dumps(obj).decode() if table else None)
        columns["source"].append(source)
        columns["extracted_at"].append(extracted_at)
        if len(columns["id"]) >= batch_rows:
            yield flush()
    if columns["id"]:
        yield flush()
