"""Loading the webhook landing files into the raw `events` table (dlt).

Each landing file is read from the byte offset the last committed load reached, up to its
last complete line; the offsets live in the dlt source state, committed with the rows, so a
load that dies is read again from the same place and the merge on `(account_id, id)` keeps
every event once, whether it also came through the Events feed or was delivered twice.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import dlt
import orjson
import pyarrow as pa

from ingestion.events import EVENTS_COLUMNS, EVENTS_SCHEMA, RAW_KEY, event_batches
from ingestion.webhooks import LANDING_GLOB


def pending_bytes(folder: Path, offsets: dict[str, int]) -> int:
    """How many landed bytes no load has committed yet (the sensor's test)."""
    total = 0
    for path in Path(folder).glob(LANDING_GLOB):
        total += max(0, path.stat().st_size - offsets.get(path.name, 0))
    return total


def read_new_lines(
    path: Path, offset: int, accounts: list[str | None] | None = None
) -> tuple[list[dict[str, Any]], int]:
    """The events landed in `path` after `offset`, and the offset after the last whole line.
    `accounts` receives, per event, the account its endpoint's path named (or None)."""
    with open(path, "rb") as f:
        f.seek(offset)
        data = f.read()
    end = data.rfind(b"\n") + 1
    events = []
    for number, line in enumerate(data[:end].splitlines(), 1):
        if not line.strip():
            continue
        try:
            landed = orjson.loads(line)
            events.append(landed["event"])
            if accounts is not None:
                accounts.append(landed.get("account"))
        except (orjson.JSONDecodeError, KeyError, TypeError):
            raise ValueError(
                f"Landing file {path}: line {number} after byte {offset} is not a landed event; "
                "nothing of this load was written. Move the file aside to go on."
            ) from None
    return events, offset + end


@dlt.source(name="stripe_webhooks", max_table_nesting=0)
def webhook_landing_source(folder: Path, account_id: str, report: dict | None = None) -> Any:
    """The landed events not loaded yet, as rows of the raw `events` table."""

    @dlt.resource(
        name="webhook_events",
        table_name="events",
        primary_key=RAW_KEY,
        write_disposition="merge",
        columns=EVENTS_COLUMNS,
    )
    def webhook_events() -> Iterator[pa.Table]:
        offsets: dict[str, int] = dlt.current.source_state().setdefault("offsets", {})
        read = 0
        for path in sorted(Path(folder).glob(LANDING_GLOB)):
            start = offsets.get(path.name, 0)
            if path.stat().st_size <= start:
                continue
            accounts: list[str | None] = []
            events, end = read_new_lines(path, start, accounts)
            read += len(events)
            # An event that names no account belongs to the account its endpoint named, or
            # to the first key's.
            for account in sorted(set(accounts), key=lambda a: a or ""):
                chosen = [e for e, a in zip(events, accounts, strict=True) if a == account]
                yield from event_batches(chosen, account or account_id, "webhook")
            offsets[path.name] = end
        if report is not None:
            report["events_read"] = read
        if not read:
            yield EVENTS_SCHEMA.empty_table()

    return webhook_events


def landing_offsets(pipeline: dlt.Pipeline) -> dict[str, int]:
    """The committed offsets of the landing files (empty before the first load)."""
    try:
        state = pipeline.state.get("sources", {}).get("stripe_webhooks", {})
    except Exception:
        return {}
    return dict(state.get("offsets", {}))


def landing_has_work(folder: Path, pipeline: dlt.Pipeline) -> bool:
    """Landed bytes no load has committed, or a load package a dead run left."""
    waiting = Path(folder).exists() and pending_bytes(folder, landing_offsets(pipeline)) > 0
    return waiting or pipeline.has_pending_data


def load_landing(pipeline: dlt.Pipeline, folder: Path, account_id: Callable[[], str]) -> int:
    """Load what the receiver landed since the last load; the number of events read.
    `account_id` is asked only when there is something to load."""
    from ingestion.pipelines import LOADER_FILE_FORMAT, finish_pending

    if not landing_has_work(folder, pipeline):
        return 0
    report: dict = {}
    finish_pending(pipeline)
    pipeline.run(
        webhook_landing_source(folder, account_id(), report=report),
        loader_file_format=LOADER_FILE_FORMAT,
    )
    return report.get("events_read", 0)
