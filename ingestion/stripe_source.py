"""The dlt source for a Stripe account.

Each Stripe list becomes one raw table with the object kept whole as JSON next to its keys:
`account_id, id, created, livemode, payload, extracted_at`. Rows are yielded as Arrow
tables (dlt skips Python-side normalisation for Arrow) and loaded as parquet, merged on
`(account_id, id)`. dbt's staging models parse the payload; a field Stripe adds later is
already in the warehouse.

Loads are incremental by `created`: each run asks for `created >= cursor`, so the boundary
second is read again and the merge drops what was already there.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from typing import Any

import dlt
import orjson
import pyarrow as pa

from ingestion.stripe_api import StripeApi

# Stripe list endpoints loaded into raw tables, with the query parameters each needs.
STRIPE_LISTS: dict[str, dict[str, str]] = {
    "customers": {},
    "products": {},
    "prices": {},
    "charges": {},
    "refunds": {},
    "balance_transactions": {},
    "payment_intents": {},
    "disputes": {},
    # The default omits canceled subscriptions; discounts are expanded for their coupons.
    "subscriptions": {"status": "all", "expand[]": "data.discounts"},
    "invoices": {},
    "coupons": {},
}

BATCH_ROWS = 5_000

RAW_SCHEMA = pa.schema(
    [
        pa.field("account_id", pa.string(), nullable=False),
        pa.field("id", pa.string(), nullable=False),
        pa.field("created", pa.int64(), nullable=False),
        pa.field("livemode", pa.bool_()),
        pa.field("payload", pa.string(), nullable=False),
        pa.field("extracted_at", pa.timestamp("us", tz="UTC"), nullable=False),
    ]
)


def _batches(
    pages: Iterator[list[dict[str, Any]]], account_id: str, cursor_out: dict[str, int]
) -> Iterator[pa.Table]:
    ids: list[str] = []
    created: list[int] = []
    livemode: list[bool | None] = []
    payloads: list[str] = []
    extracted_at = dt.datetime.now(dt.UTC)
    newest = cursor_out.get("max_created", 0)

    def flush() -> pa.Table:
        table = pa.Table.from_arrays(
            [
                pa.array([account_id] * len(ids), pa.string()),
                pa.array(ids, pa.string()),
                pa.array(created, pa.int64()),
                pa.array(livemode, pa.bool_()),
                pa.array(payloads, pa.string()),
                pa.array([extracted_at] * len(ids), pa.timestamp("us", tz="UTC")),
            ],
            schema=RAW_SCHEMA,
        )
        ids.clear(), created.clear(), livemode.clear(), payloads.clear()
        return table

    yielded = False
    for page in pages:
        for obj in page:
            ids.append(obj["id"])
            created.append(obj["created"])
            livemode.append(obj.get("livemode"))
            payloads.append(orjson.dumps(obj).decode())
            if obj["created"] > newest:
                newest = obj["created"]
        if len(ids) >= BATCH_ROWS:
            yielded = True
            yield flush()
    if ids or not yielded:
        # An empty list still yields its (empty) table, so the raw table always exists.
        yield flush()
    cursor_out["max_created"] = newest


def stripe_list_resource(
    list_name: str,
    api_factory: Callable[[], StripeApi],
    *,
    read: bool = True,
    from_start: bool = False,
) -> Any:
    """A dlt resource that loads one Stripe list incrementally by `created` (or in full with
    `from_start`); with `read=False` it only makes sure the (empty) raw table exists."""

    @dlt.resource(
        name=list_name,
        table_name=list_name,
        primary_key=("account_id", "id"),
        write_disposition="merge",
        columns={"payload": {"data_type": "text", "nullable": False}},
    )
    def objects() -> Iterator[pa.Table]:
        if not read:
            yield RAW_SCHEMA.empty_table()
            return
        api = api_factory()
        account_id = api.account_id
        cursors = dlt.current.resource_state().setdefault("created_cursor", {})
        params: dict[str, Any] = dict(STRIPE_LISTS[list_name])
        previous = cursors.get(account_id)
        if previous is not None and not from_start:
            # Re-read the boundary second: objects created in it after the last run.
            params["created[gte]"] = previous
        progress: dict[str, int] = {"max_created": previous or 0}
        yield from _batches(api.iter_pages(list_name, params), account_id, progress)
        # Only a list read to its end moves the cursor.
        if progress["max_created"]:
            cursors[account_id] = progress["max_created"]

    return objects


@dlt.source(name="stripe", max_table_nesting=0)
def stripe_source(
    api_factory: Callable[[], StripeApi],
    lists: tuple[str, ...] = tuple(STRIPE_LISTS),
    from_start: bool = False,
) -> Any:
    """One raw table per Stripe list. The lists in `lists` are read through the API that
    `api_factory` builds (lazily: no request is made until the pipeline runs); the others
    are kept as empty tables, so the models build whatever a key may read. `from_start`
    reads every list in full, for servers without `created` filters or to re-read after
    trouble; the merge keeps nothing twice."""
    return [
        stripe_list_resource(name, api_factory, read=name in lists, from_start=from_start)
        for name in STRIPE_LISTS
    ]
