"""CarePortals orders from an export file: CSV, Parquet or JSON lines.

Every column is kept as text (money stays exact; dbt's staging casts it), merged on
`order_id` so that a re-exported order replaces its earlier version.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dlt
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import pyarrow.json as pa_json
import pyarrow.parquet as pq

REQUIRED_COLUMNS = ("order_id", "customer_email", "total", "currency", "status", "created_at")


class OrdersFileError(ValueError):
    """The orders export is missing or unreadable; the message says which and why."""


def read_orders(path: Path) -> pa.Table:
    """The export as an Arrow table of text columns with lower-case names."""
    path = Path(path)
    if not path.is_file():
        raise OrdersFileError(
            f"Orders file not found: {path}. Set CAREPORTALS_ORDERS_PATH to the CarePortals "
            "export (CSV, Parquet or JSON lines)."
        )
    suffix = path.suffix.lower()
    try:
        if suffix == ".csv":
            with open(path, newline="", encoding="utf-8") as f:
                header = next(csv.reader(f), [])
            table = pa_csv.read_csv(
                path,
                convert_options=pa_csv.ConvertOptions(
                    column_types={name: pa.string() for name in header}
                ),
            )
        elif suffix == ".parquet":
            table = pq.read_table(path)
        elif suffix in (".jsonl", ".ndjson", ".json"):
            table = pa_json.read_json(path)
        else:
            raise OrdersFileError(
                f"Orders file {path} has an unknown type {suffix!r}: use .csv, .parquet or .jsonl."
            )
    except (pa.ArrowInvalid, OSError) as err:
        raise OrdersFileError(f"Orders file {path} cannot be read: {err}") from None
    table = table.rename_columns([name.strip().lower() for name in table.column_names])
    missing = [c for c in REQUIRED_COLUMNS if c not in table.column_names]
    if missing:
        raise OrdersFileError(f"Orders file {path} lacks the columns: {', '.join(missing)}")
    columns = [
        col if pa.types.is_string(col.type) else pc.cast(col, pa.string()) for col in table.columns
    ]
    fields = [
        pa.field(name, pa.string(), nullable=name != "order_id") for name in table.column_names
    ]
    table = pa.Table.from_arrays(columns, schema=pa.schema(fields))
    empty_ids = pc.sum(pc.is_null(table["order_id"])).as_py() or 0
    if empty_ids:
        raise OrdersFileError(f"Orders file {path} has {empty_ids} rows without an order_id")
    return table


@dlt.source(name="careportals", max_table_nesting=0)
def careportals_source(orders_path: Path) -> Any:
    """The CarePortals orders export as the `orders` table."""

    @dlt.resource(name="orders", primary_key="order_id", write_disposition="merge")
    def orders() -> Iterator[pa.Table]:
        yield read_orders(orders_path)

    return orders
