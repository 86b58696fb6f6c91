"""What the warehouse holds: raw row counts and revenue per currency, for people and tests."""

from __future__ import annotations

from decimal import Decimal

import duckdb

from warehouse import MARTS_SCHEMA, RAW_CAREPORTALS_SCHEMA, RAW_STRIPE_SCHEMA, REFERENCE_SCHEMA


def raw_row_counts(con: duckdb.DuckDBPyConnection) -> dict[str, int]:
    """Rows per raw table, as `schema.table`, dlt's bookkeeping tables left out."""
    tables = con.execute(
        "select table_schema, table_name from information_schema.tables "
        "where table_schema in (?, ?) and table_name not like '\\_dlt%' escape '\\' "
        "order by 1, 2",
        [RAW_STRIPE_SCHEMA, RAW_CAREPORTALS_SCHEMA],
    ).fetchall()
    return {
        f"{schema}.{table}": con.execute(f'select count(*) from {schema}."{table}"').fetchone()[0]
        for schema, table in tables
    }


def revenue_by_currency(con: duckdb.DuckDBPyConnection) -> dict[str, dict[str, Decimal]]:
    """Gross, refunds, disputes, fees and net per settlement currency in minor units, with
    the currency's exponent (`exponent`) to show them in major units."""
    rows = con.execute(
        "select r.currency, any_value(c.exponent), sum(r.gross_minor), sum(r.refunds_minor), "
        "sum(r.disputes_minor), sum(r.fees_minor), sum(r.net_minor) "
        f"from {MARTS_SCHEMA}.revenue_daily as r "
        f"left join {REFERENCE_SCHEMA}.currency_exponents as c on r.currency = c.currency "
        "group by r.currency order by r.currency"
    ).fetchall()
    names = ("exponent", "gross", "refunds", "disputes", "fees", "net")
    return {row[0]: dict(zip(names, row[1:], strict=True)) for row in rows}


def format_major(amount_minor: int, exponent: int) -> str:
    """A minor-unit amount as major units with the currency's own number of decimals."""
    value = Decimal(amount_minor).scaleb(-exponent)
    return f"{value:,.{exponent}f}"
