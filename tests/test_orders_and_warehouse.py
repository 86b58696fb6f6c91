"""CarePortals exports in every supported format, and a locked warehouse file."""

from __future__ import annotations

import json
import time

import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
import pytest

from ingestion.careportals import OrdersFileError, read_orders
from tests.conftest import held_by_another_process
from warehouse import WarehouseLockedError, check_writable

ROWS = {
    "order_id": ["a1", "b2"],
    "customer_email": ["x@example.com", "y@example.com"],
    "total": ["129.00", "12000"],
    "currency": ["USD", "JPY"],
    "status": ["paid", "pending"],
    "created_at": ["2026-01-02T03:04:05Z", "2026-02-03T04:05:06Z"],
}


@pytest.mark.parametrize("suffix", [".csv", ".parquet", ".jsonl"])
def test_orders_read_the_same_from_csv_parquet_and_json_lines(tmp_path, suffix):
    path = tmp_path / f"orders{suffix}"
    table = pa.table(ROWS)
    if suffix == ".csv":
        pa_csv.write_csv(table, path)
    elif suffix == ".parquet":
        pq.write_table(table, path)
    else:
        path.write_text("\n".join(json.dumps(row) for row in table.to_pylist()) + "\n")
    orders = read_orders(path)
    assert orders.column("order_id").to_pylist() == ["a1", "b2"]
    # Money stays exact text: "129.00", never the float 129.0.
    assert orders.column("total").to_pylist() == ["129.00", "12000"]


def test_an_export_without_required_columns_names_them(tmp_path):
    path = tmp_path / "orders.csv"
    path.write_text("order_id,total\na1,1.00\n")
    with pytest.raises(OrdersFileError, match="customer_email, currency, status, created_at"):
        read_orders(path)


def test_an_unknown_file_type_is_refused(tmp_path):
    path = tmp_path / "orders.xls"
    path.write_text("x")
    with pytest.raises(OrdersFileError, match="unknown type"):
        read_orders(path)


def test_a_locked_warehouse_is_a_clear_error(tmp_path):
    database = tmp_path / "locked.duckdb"
    with (
        held_by_another_process(database),
        pytest.raises(WarehouseLockedError, match="locked by another process"),
    ):
        check_writable(database)
    time.sleep(0.1)
    check_writable(database)


def test_a_warehouse_refuses_another_sandbox_dataset(tmp_path):
    from warehouse import (
        SandboxDatasetMismatchError,
        check_sandbox_dataset,
        connect,
        record_sandbox_dataset,
    )

    path = tmp_path / "w.duckdb"
    check_sandbox_dataset("v4-seed1-charges10", path)  # no warehouse yet
    con = connect(path)
    con.execute("create schema raw_stripe; create table raw_stripe.charges (id varchar)")
    con.close()
    with pytest.raises(SandboxDatasetMismatchError, match="earlier sandbox dataset"):
        check_sandbox_dataset("v4-seed1-charges10", path)
    record_sandbox_dataset("v4-seed1-charges10", path)
    check_sandbox_dataset("v4-seed1-charges10", path)
    with pytest.raises(SandboxDatasetMismatchError, match="make clean-warehouse"):
        check_sandbox_dataset("v4-seed2-charges10", path)
