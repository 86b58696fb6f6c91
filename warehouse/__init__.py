"""The DuckDB warehouse: where the file is, its schemas, and how to open it.

Ingestion, dbt's profile, the sink and BI users all reach the warehouse through here.
DuckDB allows one writing process per file, and a reader holding the file open blocks the
writer; so BI reads a copy (`reader_path`, `stripe_bi.duckdb` beside the warehouse) that
each successful run replaces atomically. A reader keeps the copy it opened until it opens
again; the pipeline never waits for it.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import duckdb

WAREHOUSE_DIR = Path(__file__).resolve().parent
DEFAULT_DUCKDB_PATH = WAREHOUSE_DIR / "stripe.duckdb"

RAW_STRIPE_SCHEMA = "raw_stripe"
RAW_CAREPORTALS_SCHEMA = "raw_careportals"
MARTS_SCHEMA = "marts"
REFERENCE_SCHEMA = "reference"


class WarehouseLockedError(RuntimeError):
    """Another process holds the DuckDB file for writing."""


def memory_limit() -> str:
    """DuckDB's memory cap for loads (`DUCKDB_MEMORY_LIMIT`); past it DuckDB spills to disk."""
    return os.environ.get("DUCKDB_MEMORY_LIMIT", "512MB")


def duckdb_path() -> Path:
    """The warehouse file: `DUCKDB_PATH`, or warehouse/stripe.duckdb in the project."""
    return Path(os.environ.get("DUCKDB_PATH") or DEFAULT_DUCKDB_PATH).expanduser().resolve()


def reader_path() -> Path:
    """The copy BI reads: `DUCKDB_READER_PATH`, or `<warehouse>_bi.duckdb` beside it."""
    configured = os.environ.get("DUCKDB_READER_PATH")
    if configured:
        return Path(configured).expanduser().resolve()
    main = duckdb_path()
    return main.with_name(f"{main.stem}_bi{main.suffix}")


def refresh_reader_copy(path: Path | None = None, target: Path | None = None) -> Path:
    """Replace the BI copy with the warehouse as it is now, atomically.

    The warehouse is checkpointed (its write-ahead log folded in) under the write lock, so
    the copied file is whole; the copy is renamed over the old one, which a reader still
    holding it keeps reading until it reconnects.
    """
    source = Path(path or duckdb_path())
    target = Path(target or reader_path())
    staging = target.with_name(f".{target.name}.tmp")
    con = connect(source)
    try:
        con.execute("checkpoint")
        shutil.copyfile(source, staging)
    finally:
        con.close()
    with open(staging, "rb+") as f:
        os.fsync(f.fileno())
    os.replace(staging, target)
    return target


def connect(path: Path | None = None, *, read_only: bool = False) -> duckdb.DuckDBPyConnection:
    """Open the warehouse; a lock held by another process becomes a clear error."""
    path = Path(path or duckdb_path())
    if read_only and not path.exists():
        raise FileNotFoundError(f"No warehouse at {path}: run the pipeline first (make run).")
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        return duckdb.connect(str(path), read_only=read_only)
    except duckdb.IOException as err:
        if "lock" in str(err).lower():
            raise WarehouseLockedError(
                f"The warehouse {path} is locked by another process (DuckDB allows one writer): "
                "close the other DuckDB session (CLI, notebook, BI tool) or wait for the "
                "running load to finish."
            ) from None
        raise


def check_writable(path: Path | None = None) -> None:
    """Fail with WarehouseLockedError, before a load starts, if another process holds the file."""
    connect(path).close()


class SandboxDatasetMismatchError(RuntimeError):
    """The warehouse holds another sandbox dataset than the one being loaded."""


def check_sandbox_dataset(dataset: str, path: Path | None = None) -> None:
    """Refuse to mix two generated sandbox accounts in one warehouse.

    A sandbox dataset is named after its format version, seed and size; loading another one
    (a new project version, or other SANDBOX_SEED / SANDBOX_CHARGES) on top of the last would
    merge two unrelated accounts under the same account id.
    """
    path = Path(path or duckdb_path())
    if not path.exists():
        return
    con = connect(path, read_only=True)
    try:
        tables = {
            (schema, name)
            for schema, name in con.execute(
                "select table_schema, table_name from information_schema.tables"
            ).fetchall()
        }
        if ("raw_ops", "sandbox_dataset") in tables:
            held = con.execute("select dataset from raw_ops.sandbox_dataset").fetchone()
            held_name = held[0] if held else None
        elif any(schema == RAW_STRIPE_SCHEMA for schema, _ in tables):
            held_name = "an earlier sandbox dataset"
        else:
            return
    finally:
        con.close()
    if held_name != dataset:
        raise SandboxDatasetMismatchError(
            f"The warehouse {path} holds {held_name!r}, not the sandbox dataset {dataset!r} "
            "being loaded. Delete the file (make clean-warehouse) to start afresh, or set "
            "DUCKDB_PATH to another file."
        )


def record_sandbox_dataset(dataset: str, path: Path | None = None) -> None:
    """Note which sandbox dataset the warehouse holds (see check_sandbox_dataset)."""
    con = connect(path)
    try:
        con.execute("create schema if not exists raw_ops")
        con.execute(
            "create or replace table raw_ops.sandbox_dataset as select ? as dataset", [dataset]
        )
    finally:
        con.close()
