"""Reading the marts into tabs: a header and rows of plain Python values."""

from __future__ import annotations

import datetime as dt
import decimal
from dataclasses import dataclass
from typing import Any

import duckdb

from warehouse import MARTS_SCHEMA


@dataclass(frozen=True)
class Tab:
    name: str
    source: str
    columns: list[str]
    rows: list[tuple[Any, ...]]


def _cell(value: Any) -> Any:
    """A value every spreadsheet takes: UTC timestamps without zone, decimals as numbers."""
    if isinstance(value, dt.datetime) and value.tzinfo is not None:
        return value.astimezone(dt.UTC).replace(tzinfo=None)
    if isinstance(value, decimal.Decimal):
        return float(value)
    return value


def _require_mart(con: duckdb.DuckDBPyConnection, mart: str) -> None:
    exists = con.execute(
        "select count(*) from information_schema.tables where table_schema = ? and table_name = ?",
        [MARTS_SCHEMA, mart],
    ).fetchone()[0]
    if not exists:
        raise LookupError(f"Mart {MARTS_SCHEMA}.{mart} does not exist: run the dbt models first.")


# When the pipeline last computed a row (the incremental marts' `built_at`): how the warehouse
# keeps itself up to date, not something the business reads. Left out of the tabs.
BOOKKEEPING_COLUMNS = frozenset({"built_at"})


def _tab_columns(con: duckdb.DuckDBPyConnection, mart: str) -> list[str]:
    described = con.execute(f'select * from {MARTS_SCHEMA}."{mart}" limit 0').description
    return [d[0] for d in described if d[0] not in BOOKKEEPING_COLUMNS]


def mart_shape(con: duckdb.DuckDBPyConnection, mart: str) -> tuple[int, int]:
    """A mart's rows and the columns of its tab, without reading its values."""
    _require_mart(con, mart)
    rows = con.execute(f'select count(*) from {MARTS_SCHEMA}."{mart}"').fetchone()[0]
    return rows, len(_tab_columns(con, mart))


def read_tab(con: duckdb.DuckDBPyConnection, mart: str, tab_name: str) -> Tab:
    """A mart as a tab, in a stable order (by its first column)."""
    _require_mart(con, mart)
    columns = _tab_columns(con, mart)
    selected = ", ".join('"' + c.replace('"', '""') + '"' for c in columns)
    result = con.execute(f'select {selected} from {MARTS_SCHEMA}."{mart}" order by all')
    rows = [tuple(_cell(v) for v in row) for row in result.fetchall()]
    return Tab(name=tab_name, source=mart, columns=columns, rows=rows)
