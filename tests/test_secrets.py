"""Secrets never show: `make run` with a recognisable fake key and webhook secret, once
accepted and once rejected, then every output searched for them: the console, the Dagster
run storage and logs, dlt's working state, every text column of the warehouse, the
workbook's sheets and the webhook landing."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import duckdb

from sandbox.server import SandboxServer, SandboxState

ROOT = Path(__file__).resolve().parents[1]
MARK = "RECOGNISABLE0SECRET0MARK"
KEY = f"sk_test_51{MARK}q8w7e6r5t4y3u2i1o0p"
WEBHOOK_SECRET = f"whsec_{MARK}z9x8c7v6"


def _run(tmp_path: Path, url: str, dataset: Path, key: str) -> subprocess.CompletedProcess:
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("STRIPE_", "GOOGLE_"))},
        "STRIPE_API_KEY": key,
        "STRIPE_API_BASE": url,
        "STRIPE_WEBHOOK_SECRET": WEBHOOK_SECRET,
        "STRIPE_MAX_RETRIES": "1",
        "CAREPORTALS_ORDERS_PATH": str(dataset / "careportals_orders.csv"),
        "DUCKDB_PATH": str(tmp_path / "warehouse.duckdb"),
        "DLT_PIPELINES_DIR": str(tmp_path / "dlt"),
        "DAGSTER_HOME": str(tmp_path / "dagster"),
        "WORKBOOK_PATH": str(tmp_path / "marts.xlsx"),
        "WEBHOOK_LANDING_DIR": str(tmp_path / "landing"),
    }
    (tmp_path / "dagster").mkdir(exist_ok=True)
    return subprocess.run(
        [sys.executable, "-m", "orchestration.run"], cwd=ROOT, env=env, capture_output=True,
        text=True, timeout=600,
    )  # fmt: skip


def _files_holding(folder: Path, needle: bytes) -> list[Path]:
    found = []
    for path in folder.rglob("*"):
        if not path.is_file() or path.suffix == ".duckdb":
            continue
        data = path.read_bytes()
        if path.suffix == ".xlsx":
            with zipfile.ZipFile(path) as book:
                data = b"".join(book.read(name) for name in book.namelist())
        if needle in data:
            found.append(path)
    return found


def _warehouse_columns_holding(database: Path, needle: str) -> list[str]:
    con = duckdb.connect(str(database), read_only=True)
    try:
        columns = con.execute(
            "select table_schema, table_name, column_name from information_schema.columns "
            "where data_type in ('VARCHAR', 'JSON')"
        ).fetchall()
        return [
            f"{schema}.{table}.{column}"
            for schema, table, column in columns
            if con.execute(
                f'select count(*) from "{schema}"."{table}" where "{column}" like ?',
                [f"%{needle}%"],
            ).fetchone()[0]
        ]
    finally:
        con.close()


def test_no_output_of_a_run_holds_the_key_or_the_webhook_secret(tmp_path: Path, dataset: Path):
    state = SandboxState(dataset, api_keys={KEY})
    with SandboxServer(state) as sandbox:
        good = _run(tmp_path, sandbox.url, dataset, KEY)
        assert good.returncode == 0, good.stderr[-2000:]
        rejected = _run(tmp_path, sandbox.url, dataset, KEY.replace("q8w7", "zzzz"))
        assert rejected.returncode == 1
        assert "rejected the API key" in rejected.stderr
    for run in (good, rejected):
        assert MARK not in run.stdout + run.stderr
    assert _files_holding(tmp_path, MARK.encode()) == []
    assert _warehouse_columns_holding(tmp_path / "warehouse.duckdb", MARK) == []
    # The failed load is in the load history, with its error and without the key.
    con = duckdb.connect(str(tmp_path / "warehouse.duckdb"), read_only=True)
    try:
        errors = con.execute(
            "select error from raw_ops.load_history where outcome = 'failed'"
        ).fetchall()
    finally:
        con.close()
    assert errors and all("401" in error or "rejected" in error for (error,) in errors)
