"""The dlt source for a Stripe account.

Each Stripe list becomes one raw table with the object kept whole as JSON next to its keys:
`account_id, id, created, livemode, payload, extracted_at`. Rows are yielded as Arrow
tables (dlt skips Python-side normalisation for Arrow) and loaded as parquet, merged on
`(account_id, id)` (with `created`, which never changes for an id: see `RAW_KEY`). dbt's
staging models parse the payload; a field Stripe adds later is already in the warehouse.
The large lists also carry the fields their staging models read as typed columns, so that
a build need not parse every payload (see `ingestion.typed_fields`).

Loads are incremental by `created`: each run asks for `created >= cursor`, so the boundary
second is read again and the merge drops what was already there. Changes to objects created
earlier (a refund of an old charge, a canceled subscription, a deleted customer) come
through the Events feed (`/v1/events`, see `ingestion.events`), read from its own cursor
with an overlap window. When that cursor is older than Stripe keeps events (30 days; 25 is
the margin), the mutable lists are read in full instead; `relist_days` re-reads the objects
created in the last days as a safety net on a slower schedule.

Every raw row carries `observed_at`, the API's clock when it was read, which the models
compare with event times to keep each object's latest state.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import dlt
import orjson
import pyarrow as pa

from ingestion import collector
from ingestion.events import (
    EVENTS_COLUMNS,
    EVENTS_SCHEMA,
    MUTABLE_LISTS,
    RAW_KEY,
    event_batches,
)
from ingestion.stripe_api import StripeApi, StripeApiError
from ingestion.typed_fields import TypedFields, declared_fields

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
DAY = 86_400
# Events are re-read from this long before the cursor: one created late is not missed.
EVENTS_OVERLAP_SECONDS = 300
# Stripe keeps events 30 days; an events cursor older than this re-lists the mutable lists.
EVENTS_STALE_SECONDS = 25 * DAY

# The lists are read one after another, in the order above, and the events last (dlt's
# default interleaves a source's resources): a load's budget (`LoadBudget`) is then spent in
# list order, and the events are read once every list of the load is.
dlt.config["sources.stripe.extract.next_item_mode"] = "fifo"


@dataclass
class LoadBudget:
    """How many objects one load reads before it is committed. A list is always read to its
    end; once `objects` are read, the lists after it wait for the next load (`deferred`, in
    order, the events last). At least one list is read per load; 0 reads one per load."""

    objects: int
    read: int = 0
    lists: list[str] = field(default_factory=list)
    deferred: list[str] = field(default_factory=list)

    def admits(self, name: str) -> bool:
        """Whether the list (or the events) `name` is read in this load."""
        if self.deferred or (self.lists and self.read >= self.objects):
            self.deferred.append(name)
            return False
        self.lists.append(name)
        return True


RAW_SCHEMA = pa.schema(
    [
        pa.field("account_id", pa.string(), nullable=False),
        pa.field("id", pa.string(), nullable=False),
        pa.field("created", pa.int64(), nullable=False),
        pa.field("livemode", pa.bool_()),
        pa.field("payload", pa.string(), nullable=False),
        pa.field("extracted_at", pa.timestamp("us", tz="UTC"), nullable=False),
        pa.field("observed_at", pa.int64()),
    ]
)


def raw_schema(fields: TypedFields | None) -> pa.Schema:
    """A list's raw table: `RAW_SCHEMA`, then its typed fields and their version if it has
    any (see `ingestion.typed_fields`)."""
    return RAW_SCHEMA if fields is None else pa.schema([*RAW_SCHEMA, *fields.arrow_fields()])


def _batches(
    pages: Iterator[list[dict[str, Any]]],
    account_id: str,
    cursor_out: dict[str, int],
    clock: Callable[[], int | None] = lambda: None,
    fields: TypedFields | None = None,
) -> Iterator[pa.Table]:
    schema = raw_schema(fields)
    typed_names = fields.columns if fields is not None else ()
    typed_rows: list[tuple] = []
    versions: list[str | None] = []
    ids: list[str] = []
    created: list[int] = []
    livemode: list[bool | None] = []
    payloads: list[str] = []
    observed: list[int | None] = []
    extracted_at = dt.datetime.now(dt.UTC)
    newest = cursor_out.get("max_created", 0)
    # Each object once per read (a page boundary that shifted repeats one): the merge is then
    # told its staged rows are unique and copies them without ranking every payload.
    seen: set[str] = set()

    def flush() -> pa.Table:
        typed = list(zip(*typed_rows, strict=True)) or [()] * len(typed_names)
        table = pa.Table.from_arrays(
            [
                pa.array([account_id] * len(ids), pa.string()),
                pa.array(ids, pa.string()),
                pa.array(created, pa.int64()),
                pa.array(livemode, pa.bool_()),
                pa.array(payloads, pa.string()),
                pa.array([extracted_at] * len(ids), pa.timestamp("us", tz="UTC")),
                pa.array(observed, pa.int64()),
                *(
                    pa.array(values, schema.field(name).type)
                    for values, name in zip(typed, typed_names, strict=True)
                ),
                *([pa.array(versions, pa.string())] if fields is not None else []),
            ],
            schema=schema,
        )
        ids.clear(), created.clear(), livemode.clear(), payloads.clear(), observed.clear()
        versions.clear(), typed_rows.clear()
        return table

    no_values = (None,) * len(typed_names)
    yielded = False
    pages = iter(pages)
    while True:
        # A page parsed is 300 to 3,000 dicts and lists, none in a cycle: the cyclic
        # collector is paused while it is read and taken apart, and runs as usual between
        # pages, where dlt writes (`ingestion.collector`).
        with collector.paused():
            page = next(pages, None)
            if page is None:
                break
            seen_at = clock()
            for obj in page:
                # Both are the raw table's merge key (`RAW_KEY`): an object without them is
                # the server's error, said as such, not a KeyError from deep in the load.
                key = obj.get("id") if isinstance(obj, dict) else None
                when = obj.get("created") if key is not None else None
                if type(key) is not str or type(when) is not int:
                    raise StripeApiError(
                        "The Stripe API answered an object without a string id and an "
                        f"integer created time (id {str(key)[:40]!r}); this load was not "
                        "written."
                    )
                if key in seen:
                    continue
                seen.add(key)
                observed.append(seen_at)
                ids.append(key)
                created.append(when)
                livemode.append(obj.get("livemode"))
                payloads.append(orjson.dumps(obj).decode())
                if fields is not None:
                    values = fields.values(obj)
                    versions.append(None if values is None else fields.version)
                    typed_rows.append(no_values if values is None else values)
                if when > newest:
                    newest = when
            page = obj = None  # the page's objects go before the collector runs again
        if len(ids) >= BATCH_ROWS:
            yielded = True
            yield flush()
    if ids or not yielded:
        # An empty list still yields its (empty) table, so the raw table always exists.
        yield flush()
    cursor_out["max_created"] = newest


def unread_lists(pipeline_state: dict[str, Any], account_id: str, names: list[str]) -> list[str]:
    """The Stripe lists among `names` that the pipeline has never read to the end for this
    account: no `created` cursor of it in their resource state."""
    resources = pipeline_state.get("sources", {}).get("stripe", {}).get("resources", {})
    return [
        name
        for name in names
        if name in STRIPE_LISTS
        and account_id not in resources.get(name, {}).get("created_cursor", {})
    ]


def stripe_list_resource(
    list_name: str,
    api_factory: Callable[[], StripeApi],
    *,
    read: bool = True,
    from_start: bool = False,
    relist_days: int = 0,
    backfill: tuple[int, int] | None = None,
    budget: LoadBudget | None = None,
    append: bool = False,
) -> Any:
    """A dlt resource that loads one Stripe list incrementally by `created` (or in full with
    `from_start`, or the objects created in the `backfill` range, cursors left alone); with
    `read=False` it only makes sure the (empty) raw table exists. A list the load's `budget`
    defers yields nothing and keeps its cursor. With `append`, for a list never read for
    this account whose table holds none of its rows (see `unread_lists`), the rows are
    copied straight into the table instead of merged through the staging table: there is
    nothing for them to replace, and each object is read once (`_batches`)."""

    @dlt.resource(
        name=list_name,
        table_name=list_name,
        primary_key=RAW_KEY,
        # One resource writes each list's table in a load, one account at a time, each
        # object once (see `_batches`).
        write_disposition=(
            "append"
            if append
            else {"disposition": "merge", "strategy": "delete-insert", "deduplicated": True}
        ),
        columns={"payload": {"data_type": "text", "nullable": False}},
    )
    def objects() -> Iterator[pa.Table]:
        if not read:
            yield raw_schema(declared_fields().get(list_name)).empty_table()
            return
        if budget is not None and not budget.admits(list_name):
            return
        api = api_factory()
        account_id = api.account_id
        started = api.first_server_time or api.now()
        cursors = dlt.current.resource_state().setdefault("created_cursor", {})
        events_cursors = dlt.current.source_state().setdefault("events_cursor", {})
        params: dict[str, Any] = dict(STRIPE_LISTS[list_name])
        previous = cursors.get(account_id)
        events_cursor = events_cursors.get(account_id)
        mutable = list_name in MUTABLE_LISTS
        stale = events_cursor is not None and events_cursor < started - EVENTS_STALE_SECONDS
        if previous is not None and not from_start and not (stale and mutable):
            # Re-read the boundary second: objects created in it after the last run.
            since = previous
            if relist_days and mutable:
                since = min(previous, started - relist_days * DAY)
            params["created[gte]"] = since
        progress: dict[str, int] = {"max_created": previous or 0}
        clock = lambda: api.server_time  # noqa: E731
        if backfill:
            # A range of the past read again: the cursors of the regular runs stay put.
            params["created[gte]"], params["created[lt]"] = backfill
            progress = {}
        pages = api.iter_pages(list_name, params)
        fields = declared_fields().get(list_name)
        for table in _batches(pages, account_id, progress, clock, fields):
            if budget is not None:
                budget.read += table.num_rows
            yield table
        if backfill:
            return
        # Only a list read to its end moves the cursor.
        if progress["max_created"]:
            cursors[account_id] = progress["max_created"]
        # Changes after this read come through the events: the feed starts no later.
        if events_cursor is None or "created[gte]" not in params:
            events_cursors[account_id] = min(events_cursor or started, started)

    return objects


def stripe_events_resource(
    api_factory: Callable[[], StripeApi],
    *,
    read: bool = True,
    report: dict | None = None,
    budget: LoadBudget | None = None,
) -> Any:
    """The Events feed: `/v1/events` from the events cursor (less the overlap) to now; in a
    later load when the `budget` deferred a list (the events come after every list)."""

    @dlt.resource(
        name="events",
        table_name="events",
        primary_key=RAW_KEY,
        write_disposition="merge",
        columns=EVENTS_COLUMNS,
    )
    def events() -> Iterator[pa.Table]:
        if not read:
            yield EVENTS_SCHEMA.empty_table()
            return
        if budget is not None and not budget.admits("events"):
            return
        api = api_factory()
        account_id = api.account_id
        started = api.first_server_time or api.now()
        cursors = dlt.current.source_state().setdefault("events_cursor", {})
        cursor = cursors.get(account_id)
        if cursor is None:
            # No list was read yet: there is nothing for events to change.
            cursors[account_id] = started
            yield EVENTS_SCHEMA.empty_table()
            return
        if cursor < started - EVENTS_STALE_SECONDS and report is not None:
            report["events_cursor_stale"] = True
        params = {"created[gte]": max(0, cursor - EVENTS_OVERLAP_SECONDS)}
        unmapped: dict[str, int] = {}
        pages = api.iter_pages("events", params)
        read_any = False
        for table in event_batches(
            (event for page in pages for event in page), account_id, "api", unmapped
        ):
            read_any = True
            yield table
        if not read_any:
            yield EVENTS_SCHEMA.empty_table()
        if report is not None:
            report["unmapped_event_types"] = unmapped
        # Read to the end: the next run starts where this one started.
        cursors[account_id] = max(cursor, started)

    return events


@dlt.source(name="stripe", max_table_nesting=0)
def stripe_source(
    api_factory: Callable[[], StripeApi],
    lists: tuple[str, ...] = tuple(STRIPE_LISTS),
    from_start: bool = False,
    events: bool = True,
    relist_days: int = 0,
    report: dict | None = None,
    backfill: tuple[int, int] | None = None,
    budget: LoadBudget | None = None,
    append: frozenset[str] = frozenset(),
) -> Any:
    """One raw table per Stripe list, and the `events` table. The lists in `lists` are read
    through the API that `api_factory` builds (lazily: no request is made until the pipeline
    runs); the others are kept as empty tables, so the models build whatever a key may
    read. `from_start` reads every list in full, for servers without `created` filters or
    to re-read after trouble; the merge keeps nothing twice. `relist_days` re-reads the
    mutable objects created in that many days. `backfill` re-reads only the objects created in
    that range (no events: they are for changes since the last run). `report` collects what
    a run noticed. With a `budget`, the load reads lists until it has read that many objects
    and defers the rest (see `LoadBudget`). The lists in `append` are appended, not merged
    (see `stripe_list_resource`)."""
    resources = [
        stripe_list_resource(
            name,
            api_factory,
            read=name in lists,
            from_start=from_start,
            relist_days=relist_days,
            backfill=backfill,
            budget=budget,
            append=name in append,
        )
        for name in STRIPE_LISTS
    ]
    read_events = events and backfill is None
    feed = stripe_events_resource(api_factory, read=read_events, report=report, budget=budget)
    return [*resources, feed]
